"""Exact nearest neighbours within a bound, on a grid of cubes (numba): the per-frame lookups of the
fit's joint stage and of the correction.

``BoundedNeighbours(points, bound).query(q, r)`` answers what ``cKDTree(points).query(q,
distance_upper_bound=r)`` answers for any ``r <= bound``: the nearest point strictly closer than
``r`` (distance, index), or ``(inf, len(points))`` when there is none.  The points are sorted into
cubes of side ``bound`` once; a query looks at its own cube and the 26 around it, which hold every
point closer than ``bound``.  Distances are the same float64 sums as the KD-tree's
(``dx*dx + dy*dy + dz*dz``, then one square root), so the pairs are the KD-tree's but for exact ties
(two points at the same distance to the last bit, e.g. duplicated points), which take the lower index
here (the KD-tree's choice among them depends on its partition).

Why: these lookups are a few thousand to 25,000 queries into clouds of 10,000-25,000 points, every
frame; the KD-tree's build and queries were ~18 ms of the default output's ~75 (docs/speed.md).
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["BoundedNeighbours"]

MAX_CELLS = 1 << 21  # cubes of the dense grid at most: a wider cloud gets larger cubes (still exact, slower)


@njit(cache=True, nogil=True)
def _scan(points, order, lo, hi, qx, qy, qz, best, bj):
    # ``points`` in cube order (row k is the point ``order[k]``): a cube's points are read contiguously
    for k in range(lo, hi):
        j = order[k]
        dx = qx - points[k, 0]
        dy = qy - points[k, 1]
        dz = qz - points[k, 2]
        d = dx * dx + dy * dy + dz * dz
        if d < best or (d == best and bj >= 0 and j < bj):
            best, bj = d, j
    return best, bj


@njit(cache=True, nogil=True)
def cube_query(points, order, starts, origin, cell, reach, dims, q, r2):
    """Nearest of ``points`` (sorted into cubes: ``order``, ``starts``) to each row of ``q`` within
    squared distance ``r2``: (squared distances, indices; ``len(points)`` where none).  The kernel
    behind :meth:`BoundedNeighbours.query`, callable from other compiled loops (the joint fit's rows)."""
    n = len(q)
    dist = np.full(n, np.inf)
    idx = np.full(n, len(points), np.int64)
    nx, ny, nz = dims[0], dims[1], dims[2]
    for i in range(n):
        qx, qy, qz = q[i, 0], q[i, 1], q[i, 2]
        if not (np.isfinite(qx) and np.isfinite(qy) and np.isfinite(qz)):
            continue
        fx, fy, fz = (qx - origin[0]) / cell, (qy - origin[1]) / cell, (qz - origin[2]) / cell
        cx, cy, cz = int(np.floor(fx)), int(np.floor(fy)), int(np.floor(fz))
        best, bj = r2, -1
        # the query's own cube first: its nearest point there usually rules out most cubes around
        if 0 <= cx < nx and 0 <= cy < ny and 0 <= cz < nz:
            c = (cx * ny + cy) * nz + cz
            best, bj = _scan(points, order, starts[c], starts[c + 1], qx, qy, qz, best, bj)
        # then only the cubes the ball of the best distance so far reaches (per axis, widened for the
        # rounding of the cube assignment; each still tested against the best below): a near first
        # point leaves one to a few of the 26 neighbours to look at, not all of them
        rb = np.sqrt(best * (1.0 + 1e-6) + 1e-9) / cell + 1e-6
        x0, x1 = max(int(np.floor(fx - rb)), cx - reach, 0), min(int(np.floor(fx + rb)), cx + reach, nx - 1)
        y0, y1 = max(int(np.floor(fy - rb)), cy - reach, 0), min(int(np.floor(fy + rb)), cy + reach, ny - 1)
        z0, z1 = max(int(np.floor(fz - rb)), cz - reach, 0), min(int(np.floor(fz + rb)), cz + reach, nz - 1)
        for ix in range(x0, x1 + 1):
            gx = 0.0 if ix == cx else (fx - (ix + 1) if ix < cx else ix - fx) * cell
            for iy in range(y0, y1 + 1):
                gy = 0.0 if iy == cy else (fy - (iy + 1) if iy < cy else iy - fy) * cell
                for iz in range(z0, z1 + 1):
                    if ix == cx and iy == cy and iz == cz:
                        continue
                    gz = 0.0 if iz == cz else (fz - (iz + 1) if iz < cz else iz - fz) * cell
                    # skip a cube farther than the best so far (with a margin for the rounding of the
                    # cube assignment: a skip must never drop a nearer point)
                    if gx * gx + gy * gy + gz * gz > best * (1.0 + 1e-6) + 1e-9:
                        continue
                    c = (ix * ny + iy) * nz + iz
                    best, bj = _scan(points, order, starts[c], starts[c + 1], qx, qy, qz, best, bj)
        if bj >= 0:
            dist[i] = np.sqrt(best)
            idx[i] = bj
    return dist, idx


@njit(cache=True, nogil=True)
def _build(points, cell, max_cells):
    # the grid in one pass each: the cloud's bounds (``points.min(axis=0)`` / ``max``; numpy's strided column
    # reduction of an (N, 3) array took ~0.6 ms of a 12,000-point build), the cube side doubled until the grid
    # holds at most ``max_cells`` cubes, then a counting sort of the points by cube: the order of a stable argsort
    # of the cube keys, where each cube's run starts (what ``np.searchsorted`` of the sorted keys gives) and the
    # coordinates in that order (a cube's points are read contiguously)
    n = len(points)
    lo, hi = np.zeros(3), np.zeros(3)
    if n > 0:
        lo[:], hi[:] = points[0], points[0]
    for i in range(1, n):
        for c in range(3):
            x = points[i, c]
            if x < lo[c] or np.isnan(x):  # NaN wins, as in numpy's min / max
                lo[c] = lo[c] if np.isnan(lo[c]) else x
            if x > hi[c] or np.isnan(x):
                hi[c] = hi[c] if np.isnan(hi[c]) else x
    extent = hi - lo
    while (np.floor(extent[0] / cell) + 1) * (np.floor(extent[1] / cell) + 1) * (np.floor(extent[2] / cell) + 1) > max_cells:
        cell *= 2.0
    dims = np.empty(3, np.int64)
    for c in range(3):
        dims[c] = np.int64(np.floor(extent[c] / cell) + 1)
    ny, nz = dims[1], dims[2]
    key = np.empty(n, np.int64)
    starts = np.zeros(dims[0] * ny * nz + 1, np.int64)
    for i in range(n):
        c0 = np.int64(np.floor((points[i, 0] - lo[0]) / cell))
        c1 = np.int64(np.floor((points[i, 1] - lo[1]) / cell))
        c2 = np.int64(np.floor((points[i, 2] - lo[2]) / cell))
        k = (c0 * ny + c1) * nz + c2
        key[i] = k
        starts[k + 1] += 1
    for c in range(1, len(starts)):
        starts[c] += starts[c - 1]
    fill = starts[:-1].copy()
    order = np.empty(n, np.int64)
    cube_points = np.empty((n, 3))
    for i in range(n):
        k = key[i]
        j = fill[k]
        fill[k] = j + 1
        order[j] = i
        cube_points[j, 0] = points[i, 0]
        cube_points[j, 1] = points[i, 1]
        cube_points[j, 2] = points[i, 2]
    return lo, cell, dims, order, starts, cube_points


class BoundedNeighbours:
    """Exact nearest neighbours of a fixed cloud ``points`` (N, 3) within ``bound`` (see the module)."""

    def __init__(self, points: np.ndarray, bound: float, split: int = 1):
        self.points = np.ascontiguousarray(points, np.float64)
        self.bound = float(bound)
        # the cloud's corner (origin), the cube side, the grid's size, the points in cube order and where each cube's
        # run starts; ``_cube_points``: the coordinates in that order
        self.origin, self.cell, self.dims, self.order, self.starts, self._cube_points = _build(
            self.points, self.bound / split, float(MAX_CELLS))
        self.reach = int(np.ceil(self.bound / self.cell))  # cubes each side that can hold a point within the bound

    @property
    def grid(self) -> tuple:
        """The grid's arrays in :func:`cube_query`'s order (``points`` .. ``dims``): for compiled loops that query it."""
        return self._cube_points, self.order, self.starts, self.origin, self.cell, self.reach, self.dims

    def query(self, q: np.ndarray, distance_upper_bound: float) -> tuple[np.ndarray, np.ndarray]:
        """(distances (M,), indices (M,)) of the nearest points strictly closer than ``distance_upper_bound``
        (<= the bound this index was built for); ``inf`` / ``len(points)`` where none is."""
        r = float(distance_upper_bound)
        if r > self.bound:
            raise ValueError(f"query radius {r} beyond the index's bound {self.bound}")
        q = np.ascontiguousarray(q, np.float64).reshape(-1, 3)
        return cube_query(*self.grid, q, r * r)
