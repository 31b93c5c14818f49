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
def _query(points, order, starts, origin, cell, reach, dims, q, r2):
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
        # the query's own cube first: its nearest point there usually rules out the cubes around
        if 0 <= cx < nx and 0 <= cy < ny and 0 <= cz < nz:
            c = (cx * ny + cy) * nz + cz
            best, bj = _scan(points, order, starts[c], starts[c + 1], qx, qy, qz, best, bj)
        for ix in range(max(cx - reach, 0), min(cx + reach + 1, nx)):
            gx = 0.0 if ix == cx else (fx - (ix + 1) if ix < cx else ix - fx) * cell
            for iy in range(max(cy - reach, 0), min(cy + reach + 1, ny)):
                gy = 0.0 if iy == cy else (fy - (iy + 1) if iy < cy else iy - fy) * cell
                for iz in range(max(cz - reach, 0), min(cz + reach + 1, nz)):
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


class BoundedNeighbours:
    """Exact nearest neighbours of a fixed cloud ``points`` (N, 3) within ``bound`` (see the module)."""

    def __init__(self, points: np.ndarray, bound: float, split: int = 1):
        self.points = np.ascontiguousarray(points, np.float64)
        self.bound = float(bound)
        if len(self.points) == 0:
            lo, hi = np.zeros(3), np.zeros(3)
        else:
            lo, hi = self.points.min(axis=0), self.points.max(axis=0)
        cell = self.bound / split
        extent = hi - lo
        while np.prod(np.floor(extent / cell) + 1) > MAX_CELLS:
            cell *= 2.0
        self.cell = cell
        self.reach = int(np.ceil(self.bound / cell))  # cubes each side that can hold a point within the bound
        self.origin = lo
        self.dims = (np.floor(extent / cell) + 1).astype(np.int64)
        c = np.floor((self.points - lo) / cell).astype(np.int64)
        key = (c[:, 0] * self.dims[1] + c[:, 1]) * self.dims[2] + c[:, 2]
        self.order = np.argsort(key, kind="stable")
        self._cube_points = np.ascontiguousarray(self.points[self.order])  # the same coordinates, read in cube order
        self.starts = np.searchsorted(key[self.order], np.arange(int(np.prod(self.dims)) + 1)).astype(np.int64)

    def query(self, q: np.ndarray, distance_upper_bound: float) -> tuple[np.ndarray, np.ndarray]:
        """(distances (M,), indices (M,)) of the nearest points strictly closer than ``distance_upper_bound``
        (<= the bound this index was built for); ``inf`` / ``len(points)`` where none is."""
        r = float(distance_upper_bound)
        if r > self.bound:
            raise ValueError(f"query radius {r} beyond the index's bound {self.bound}")
        q = np.ascontiguousarray(q, np.float64).reshape(-1, 3)
        return _query(self._cube_points, self.order, self.starts, self.origin, self.cell, self.reach, self.dims, q, r * r)
