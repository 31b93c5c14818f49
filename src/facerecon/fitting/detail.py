"""The detail layer: a displacement map in ICT's face UV layout from the measured depth.

DECA (seed 003) adds a UV displacement map to its coarse face; here the map is measured, not
regressed: for every texel of the face tile (:mod:`facerecon.facemodel.uv`) the surface point and
the smooth normal of a base mesh (any mesh in ICT topology: the model fit, a corrected mesh),
posed into the camera, and the signed distance along that normal to the measured depth surface
(positive = outwards, out of the head).

How one frame is mapped (:func:`displacement_map`):

1. texels whose base normal is more than ``max_view_angle_deg`` from the view ray (grazing) or that
   lie behind the base mesh's own z-buffer (the nose hides a cheek) are masked;
2. the depth image (cropped to the face) is cleaned for the sensor: depth discontinuities (max - min
   over 3x3 above ``edge_jump_mm + edge_jump_rel * z``, grown by ``edge_dilate_px``: flying / mixed
   pixels, silhouettes, hair and glasses edges) and holes take no part; the rest is smoothed by a
   masked Gaussian of ``smooth_px`` sensor pixels (the noise is per sensor pixel, so it is filtered
   at the sensor's scale, once per pixel rather than once per texel); a pixel whose smoothing window
   is mostly missing (a hole border) is dropped too;
3. ``iterations`` fixed-point steps: the point ``x = p + d n`` is projected, the smoothed depth read
   bilinearly (all four pixels usable, else the texel is a hole: holes stay holes, nothing is
   invented), and ``d = n . (m - p)`` with ``m`` the measured point on the ray through ``x``;
   a texel whose last step still moved more than ``converge_mm`` is masked;
4. ``|d| > max_mm`` is not the skin the base describes (hair, glasses, background): masked, so every
   value is bounded by ``max_mm``.

A stage calls it with the mesh it trusts and the pose it solved (both in the head frame of the
model)::

    from facerecon.fitting.detail import DetailConfig, displacement_map, normal_map

    cfg = DetailConfig()                              # configs/detail.toml; DetailConfig.load({"size": 1024})
    disp = displacement_map(model, result.vertices_head, result.pose, frame, cfg)
    normals = normal_map(model, result.vertices_head, disp)   # (S, S, 3) uint8, glTF tangent space
    disp.stats   # coverage, rms_mm, ... for pose.json

:func:`normal_map` turns the displacement into a tangent-space normal map in glTF's convention
(+X along +u, +Y up the image = +v of the OBJ layout, +Z out of the surface), in the tangent
frame of :func:`facerecon.facemodel.uv.uv_tangents` (the frame the GLB carries as ``TANGENT``).

The per-texel work runs in two numba kernels (like the rasteriser): the same steps as NumPy array
operations cost ~10x more (docs/detail.md, with the cost and accuracy per map size on the james renders).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from ..errors import ConfigError
from ..facemodel import REGIONS, vertex_normals
from ..facemodel.uv import face_triangles, uv_derivatives, uv_raster, uv_tangents
from ..geometry.pose import HeadPose
from ..geometry.raster import rasterize
from ..io.frame import DepthFrame
from ..settings import toml_defaults, with_overrides

# a smoothed pixel whose Gaussian window holds less than this share of usable pixels sits at a
# hole or edge border: its average is one-sided (biased on a slope), so it is not used
_MIN_SUPPORT = 0.75


@toml_defaults("configs/detail.toml", "detail")
class DetailConfig:
    """The ``[detail]`` table of ``configs/detail.toml`` (see the comments there)."""

    size: int
    region: str
    max_view_angle_deg: float
    occlusion_tolerance_mm: float
    edge_jump_mm: float
    edge_jump_rel: float
    edge_dilate_px: int
    smooth_px: float
    iterations: int
    converge_mm: float
    max_mm: float
    normal_smooth_px: float

    def __post_init__(self) -> None:
        if not 8 <= self.size <= 8192:
            raise ConfigError(f"detail: size must be 8..8192 texels, got {self.size}")
        if self.region not in REGIONS:
            raise ConfigError(f"detail: unknown region {self.region!r}; known: {', '.join(REGIONS)}")
        if not 0.0 < self.max_view_angle_deg < 90.0:
            raise ConfigError(f"detail: max_view_angle_deg must be in (0, 90), got {self.max_view_angle_deg}")
        if self.iterations < 1 or self.max_mm <= 0 or self.smooth_px < 0 or self.edge_dilate_px < 0:
            raise ConfigError("detail: iterations >= 1, max_mm > 0, smooth_px >= 0 and edge_dilate_px >= 0 are required")
        if not 0.0 <= self.normal_smooth_px <= 20.0:
            raise ConfigError(f"detail: normal_smooth_px must be 0..20 sensor pixels, got {self.normal_smooth_px}")

    @classmethod
    def load(cls, overrides: dict | None = None) -> "DetailConfig":
        """The packaged configuration with ``overrides`` ({key: value}) on top (checked like every table)."""
        return with_overrides(cls(), overrides, "detail config")


@dataclass
class DisplacementMap:
    """The measured detail of one frame in ICT's face UV layout (rows: image top = v 1, see :mod:`facerecon.facemodel.uv`).

    displacement: (S, S) float32 mm along the base mesh's smooth normal, positive outwards; 0 where masked.
    mask: (S, S) bool, True where measured (holes, grazing, hidden, edges and outliers are False).
    max_mm: the bound of every value (``|displacement| <= max_mm``).
    stats: coverage (measured / region texels), rms_mm, median_abs_mm, p95_abs_mm, texel counts and
        why texels were masked, the sensor's pixel footprint, ms.
    """

    displacement: np.ndarray
    mask: np.ndarray
    max_mm: float
    stats: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.displacement.shape[0])


def _texels(model, size: int, region: str):
    """The texels of ``region`` at ``size``: (rows, cols, corner vertices (N, 3), bary (N, 3) float32,
    index into face_triangles (N,), corner UV indices (N, 3)); cached on the model."""
    cache = model.__dict__.setdefault("_uv_cache", {})
    key = ("detail", size, region)
    if key not in cache:
        ras = uv_raster(model, size)
        ftris = face_triangles(model)
        tris = np.asarray(model.triangles)
        # the region test once per triangle, then per texel through its triangle (the same texels as testing each
        # texel's corners, and the face triangles' positions from a table instead of a search: the first frame's
        # maps paid ~30 ms more here)
        keep = model.region_mask(region)[tris].all(1)[ras.triangle]
        every = bool(keep.all())  # the face region at any size: no selection to copy through

        def sel(a, dtype=None):  # the kept rows as a new C-contiguous array (never the raster's own, maybe read-only)
            return np.array(a, dtype=dtype, order="C") if every else np.ascontiguousarray(a[keep], dtype=dtype)

        tri = sel(ras.triangle, np.int64)
        pos = np.full(len(tris), -1, np.int64)
        pos[ftris] = np.arange(len(ftris))
        ti = pos[tri]
        found = not (ti < 0).any()
        if not found:  # a texel of a triangle outside the face material: its insertion point, as before
            ti = np.searchsorted(ftris, tri)
        i32 = lambda a: np.ascontiguousarray(a, dtype=np.int32)  # noqa: E731 (half the memory of int64: 1024^2 texels)
        tuv = np.asarray(model.triangle_uv)
        cache[key] = (sel(ras.rows, np.int32), sel(ras.cols, np.int32), i32(tris[tri]), sel(ras.bary), i32(ti),
                      i32(tuv[tri] if found else tuv[ftris][ti]))
    return cache[key]


def _region(model, region: str):
    """(vertex indices, triangles, face-material triangles) of ``region``; cached on the model."""
    cache = model.__dict__.setdefault("_uv_cache", {})
    key = ("detail-region", region)
    if key not in cache:
        cache[key] = (model.region_vertices(region), model.region_triangles(region),
                      np.asarray(model.triangles)[face_triangles(model)])
    return cache[key]


def _interp(values: np.ndarray, corners: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """(N, C) barycentric interpolation of per-vertex ``values`` (V, C) at the texels."""
    return (bary[:, 0:1] * values[corners[:, 0]] + bary[:, 1:2] * values[corners[:, 1]]
            + bary[:, 2:3] * values[corners[:, 2]])


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def texel_frame(model, vertices_head: np.ndarray, size: int, region: str = "face"):
    """Head-frame texel points (N, 3) and unit smooth normals (N, 3) of the base mesh, with the
    texels' (rows, cols): the surface a displacement map is measured from and applied to."""
    rows, cols, corners, bary, _, _ = _texels(model, size, region)
    v = np.asarray(vertices_head, np.float64)
    vn = vertex_normals(v, np.asarray(model.triangles)[face_triangles(model)])
    return rows, cols, _interp(v, corners, bary), _unit(_interp(vn, corners, bary))


def displaced_points(model, vertices_head: np.ndarray, disp: DisplacementMap, region: str = "face") -> np.ndarray:
    """(M, 3) head-frame points of the measured texels: base point + displacement x normal."""
    rows, cols, p, n = texel_frame(model, vertices_head, disp.size, region)
    ok = disp.mask[rows, cols]
    return p[ok] + disp.displacement[rows[ok], cols[ok], None].astype(np.float64) * n[ok]


def _clean_depth(depth: np.ndarray, cfg: DetailConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    """(smoothed depth, usable-cell mask: all four pixels of the cell at (r, c)..(r+1, c+1) usable, counts).

    The filters are scipy.ndimage's (``maximum_filter`` / ``minimum_filter``, ``gaussian_filter`` with
    ``truncate=3``, mode ``"reflect"``) bit for bit, without importing it (~90 ms at a cold start): the
    extremes as exact separable passes over the reflected crop, the two Gaussians as
    :func:`_masked_gaussian` on the reflected crop (tests/test_detail.py compares all three with scipy)."""
    valid = depth > 0
    hi = _box_extreme(np.where(valid, depth, 0.0), 1, np.maximum)
    lo = _box_extreme(np.where(valid, depth, np.inf), 1, np.minimum)
    edge = valid & (hi - lo > cfg.edge_jump_mm + cfg.edge_jump_rel * depth)
    if cfg.edge_dilate_px > 0 and edge.any():
        edge = _box_extreme(edge, cfg.edge_dilate_px, np.maximum) & valid
    good = valid & ~edge
    if cfg.smooth_px > 0:
        smooth, den = _reflected_masked_gaussian(depth, good, cfg.smooth_px)
        good &= den >= _MIN_SUPPORT
        smooth[~good] = 0.0
    else:
        smooth = np.where(good, depth, 0.0).astype(np.float32)
    cell = np.zeros_like(good)
    cell[:-1, :-1] = good[:-1, :-1] & good[1:, :-1] & good[:-1, 1:] & good[1:, 1:]
    return smooth, cell, {"edge_pixels": int(edge.sum()), "valid_pixels": int(valid.sum())}


def _box_extreme(a: np.ndarray, radius: int, op) -> np.ndarray:
    """scipy.ndimage's ``maximum_filter`` / ``minimum_filter`` (``op`` np.maximum / np.minimum) of size
    ``2 * radius + 1``, mode ``"reflect"``: the extreme is exact, so a row pass then a column pass over the
    symmetrically padded array give its values."""
    h, w = a.shape
    p = np.pad(a, radius, mode="symmetric")
    t = p[:, :w].copy()
    for k in range(1, 2 * radius + 1):
        op(t, p[:, k:k + w], out=t)
    out = t[:h].copy()
    for k in range(1, 2 * radius + 1):
        op(out, t[k:k + h], out=out)
    return out


def _reflected_masked_gaussian(depth: np.ndarray, good: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(float32 ``num / max(den, 1e-6)`` at ``good``, 0 elsewhere; float32 ``den`` at ``good``) where ``num`` and
    ``den`` are scipy's ``gaussian_filter(..., truncate=3.0)`` (mode ``"reflect"``) of the masked depth in float32
    and of the mask: :func:`_masked_gaussian` (zero padding) on the crop padded by the kernel's radius with its
    mirror image, which is what ``"reflect"`` reads there."""
    w = _gaussian_weights(sigma)
    rad = w.shape[0] // 2
    h, wd = depth.shape
    d = np.pad(np.asarray(depth, np.float32), rad, mode="symmetric")
    m = np.pad(good, rad, mode="symmetric")
    out = np.zeros(d.shape, np.float32)
    den = np.zeros(d.shape, np.float32)
    _masked_gaussian(d, m, w, out, den)
    return np.ascontiguousarray(out[rad:rad + h, rad:rad + wd]), den[rad:rad + h, rad:rad + wd]


# texel outcomes counted by the kernel (stats keys)
_OUTCOMES = ("measured_texels", "grazing_texels", "hidden_texels", "no_depth_texels", "not_converged_texels", "too_far_texels")


@njit(cache=True, nogil=True, inline="always")
def _lerp(x, a, b, c, w0, w1, w2, j):
    """The barycentric interpolation of column ``j`` of per-vertex ``x`` at corners ``a``, ``b``, ``c`` (the
    texel kernels' one formula: ``w0 x_a + w1 x_b + w2 x_c``, left to right)."""
    return w0 * x[a, j] + w1 * x[b, j] + w2 * x[c, j]


@njit(cache=True, nogil=True)
def _grazing_triangles(tris, vc, nc, cos_min):
    """Per triangle: whether every texel in it fails the view-angle test of :func:`_map_texels`
    (``-n . p >= cos_min |n| |p|`` with n, p the interpolated normal and point, camera frame), so it
    can be counted as grazing without its per-texel work.  For barycentric weights w >= 0 summing to 1,
    ``-n . p = -sum w_i w_j n_i . p_j <= max_ij (-n_i . p_j)``, ``|n|^2 = sum w_i w_j n_i . n_j >=
    min_ij n_i . n_j`` and ``|p| >= p_z >= min_j p_j,z``; a triangle whose bound on the left is below
    the bound on the right (by 1e-6, far beyond the per-texel float64 rounding) holds only grazing texels."""
    out = np.zeros(tris.shape[0], np.bool_)
    for t in range(tris.shape[0]):
        worst = -np.inf
        nn_min = np.inf
        pz_min = np.inf
        for i in range(3):
            a = tris[t, i]
            pz_min = min(pz_min, vc[a, 2])
            for j in range(3):
                b = tris[t, j]
                worst = max(worst, -(nc[a, 0] * vc[b, 0] + nc[a, 1] * vc[b, 1] + nc[a, 2] * vc[b, 2]))
                nn_min = min(nn_min, nc[a, 0] * nc[b, 0] + nc[a, 1] * nc[b, 1] + nc[a, 2] * nc[b, 2])
        if pz_min <= 1.0:
            continue
        out[t] = worst < cos_min * np.sqrt(max(nn_min, 0.0)) * pz_min - 1e-6
    return out


@njit(cache=True, nogil=True)
def _map_texels(rows, cols, corners, bary, tri, away, vc, nc, cos_min, fx, fy, cx, cy, zbuf, occ_tol, smooth, cell,
                iterations, converge_mm, max_mm, disp, mask, values, counts):
    """Per texel: base point and smooth normal (camera frame), visibility, the fixed-point distance
    along the normal to the smoothed depth; writes ``disp`` / ``mask`` and the measured values in order.
    ``away[tri[i]]``: every texel of the texel's triangle is grazing (:func:`_grazing_triangles`)."""
    h, w = smooth.shape
    n_ok = 0
    for i in range(rows.shape[0]):
        if away[tri[i]]:
            counts[1] += 1
            continue
        a, b, c = corners[i, 0], corners[i, 1], corners[i, 2]
        w0, w1, w2 = bary[i, 0], bary[i, 1], bary[i, 2]
        px, py, pz = _lerp(vc, a, b, c, w0, w1, w2, 0), _lerp(vc, a, b, c, w0, w1, w2, 1), _lerp(vc, a, b, c, w0, w1, w2, 2)
        nx, ny, nz = _lerp(nc, a, b, c, w0, w1, w2, 0), _lerp(nc, a, b, c, w0, w1, w2, 1), _lerp(nc, a, b, c, w0, w1, w2, 2)
        nn = np.sqrt(nx * nx + ny * ny + nz * nz)
        if nn < 1e-12 or pz <= 1.0:
            counts[1] += 1
            continue
        nx, ny, nz = nx / nn, ny / nn, nz / nn
        npn = nx * px + ny * py + nz * pz
        if -npn < cos_min * np.sqrt(px * px + py * py + pz * pz):
            counts[1] += 1
            continue
        ui = int(np.floor(fx * px / pz + cx + 0.5))
        vi = int(np.floor(fy * py / pz + cy + 0.5))
        if 0 <= ui < w and 0 <= vi < h:
            zb = zbuf[vi, ui]
            if zb > 0.0 and pz > zb + occ_tol:
                counts[2] += 1
                continue
        d = 0.0
        step = 0.0
        ok = True
        for _ in range(iterations):
            xx, xy, xz = px + d * nx, py + d * ny, pz + d * nz
            if xz <= 1.0:
                ok = False
                break
            uu = fx * xx / xz + cx
            vv = fy * xy / xz + cy
            iu = int(np.floor(uu))
            iv = int(np.floor(vv))
            if iu < 0 or iv < 0 or iu >= w - 1 or iv >= h - 1 or not cell[iv, iu]:
                ok = False
                break
            fu, fv = uu - iu, vv - iv
            zs = ((1 - fu) * (1 - fv) * smooth[iv, iu] + fu * (1 - fv) * smooth[iv, iu + 1]
                  + (1 - fu) * fv * smooth[iv + 1, iu] + fu * fv * smooth[iv + 1, iu + 1])
            # m = x * zs / x_z is the measured point on the ray through x; d = n . (m - p) and n . x = n . p + d
            new = zs / xz * (npn + d) - npn
            step = new - d
            d = new
        if not ok:
            counts[3] += 1
        elif abs(step) > converge_mm:
            counts[4] += 1
        elif abs(d) > max_mm:
            counts[5] += 1
        else:
            disp[rows[i], cols[i]] = d
            mask[rows[i], cols[i]] = True
            values[n_ok] = d
            n_ok += 1
    counts[0] = n_ok


def face_normals(model, vertices_head: np.ndarray) -> np.ndarray:
    """(V, 3) vertex normals of ``vertices_head`` over the face-material triangles: what :func:`displacement_map`
    and :func:`normal_map` both start from (a caller making both maps of one mesh passes them to each)."""
    return vertex_normals(np.asarray(vertices_head, np.float64), _region(model, "face")[2])


def displacement_map(model, vertices_head: np.ndarray, pose: HeadPose, frame: DepthFrame,
                     cfg: DetailConfig | None = None, normals: np.ndarray | None = None) -> DisplacementMap:
    """The displacement map of ``frame``'s measured surface over the base mesh ``vertices_head``
    ((V, 3) mm, head frame, ICT topology) posed by ``pose`` (head -> camera); see the module doc.
    ``normals``: :func:`face_normals` of ``vertices_head`` where the caller has them."""
    t0 = time.perf_counter()
    cfg = cfg or DetailConfig()
    k = frame.intrinsics
    if k is None:
        raise ValueError(f"{frame.source}: no intrinsics; the detail layer needs the camera")
    s = cfg.size
    rows, cols, corners, bary, ti, _ = _texels(model, s, cfg.region)
    r = np.asarray(pose.R, np.float64)
    v = np.asarray(vertices_head, np.float64)
    vc = v @ r.T + pose.t_mm
    reg, reg_tris, ftris = _region(model, cfg.region)
    nc = (face_normals(model, v) if normals is None else normals) @ r.T
    cos_min = float(np.cos(np.deg2rad(cfg.max_view_angle_deg)))
    # the crop: the region's vertices that face the camera, projected, plus the filters' reach
    pr, nr = vc[reg], nc[reg]
    front = (pr[:, 2] > 1.0) & (-np.einsum("nc,nc->n", nr, pr) >= cos_min * np.linalg.norm(pr, axis=1))
    pad = int(np.ceil(3.0 * cfg.smooth_px)) + cfg.edge_dilate_px + 3
    x0 = y0 = x1 = y1 = 0
    if front.any():
        uv = k.project(pr[front])
        x0, y0 = max(int(np.floor(uv[:, 0].min())) - pad, 0), max(int(np.floor(uv[:, 1].min())) - pad, 0)
        x1, y1 = min(int(np.ceil(uv[:, 0].max())) + pad + 1, k.width), min(int(np.ceil(uv[:, 1].max())) + pad + 1, k.height)
    disp = np.zeros((s, s), np.float32)
    mask = np.zeros((s, s), bool)
    counts = np.zeros(len(_OUTCOMES), np.int64)
    values = np.empty(len(rows), np.float32)
    stats: dict = {"size": s, "region": cfg.region, "region_texels": int(len(rows))}
    if x1 - x0 >= 2 and y1 - y0 >= 2:
        crop = k.crop(x0, y0, x1 - x0, y1 - y0)
        # the base mesh's own z-buffer over the crop: a texel behind it is hidden (nothing measured it)
        zbuf, _, _ = rasterize(vc, reg_tris, crop)
        smooth, cell, px_counts = _clean_depth(frame.depth_mm[y0:y1, x0:x1], cfg)
        stats.update(px_counts)
        away = _grazing_triangles(ftris, vc, nc, cos_min)  # ~60 % of a frame's face texels, skipped whole
        _map_texels(rows, cols, corners, bary, ti, away, vc, nc, cos_min, float(crop.fx), float(crop.fy), float(crop.cx),
                    float(crop.cy), zbuf, float(cfg.occlusion_tolerance_mm), smooth, cell, int(cfg.iterations),
                    float(cfg.converge_mm), float(cfg.max_mm), disp, mask, values, counts)
        stats["pixel_mm"] = float(np.median(pr[front, 2]) / k.fx)
    else:
        counts[3] = len(rows)  # nothing of the face is in the image
    stats.update({name: int(c) for name, c in zip(_OUTCOMES, counts)})
    vals = np.abs(values[: counts[0]])
    med, p95 = (float(x) for x in np.percentile(vals, (50, 95))) if len(vals) else (0.0, 0.0)
    stats.update({
        "coverage": float(counts[0] / max(len(rows), 1)),
        "rms_mm": float(np.sqrt(np.mean(np.square(vals, dtype=np.float64)))) if len(vals) else 0.0,
        "median_abs_mm": med,
        "p95_abs_mm": p95,
        "ms": (time.perf_counter() - t0) * 1e3,
    })
    return DisplacementMap(disp, mask, float(cfg.max_mm), stats)


@njit(cache=True, nogil=True)
def _normal_texels(rows, cols, corners, bary, tuv, tri, v_n, uv_t, pu_all, pv_all, disp, mask, out):
    """Per texel: the perturbed normal N - grad d in the tangent frame (T, w N x T, N), as RGB.
    In scalars, not 3-vectors: the same operations in the same order."""
    s = disp.shape[0]
    for i in range(rows.shape[0]):
        r, c = rows[i], cols[i]
        if not mask[r, c]:
            continue
        w0, w1, w2 = bary[i, 0], bary[i, 1], bary[i, 2]
        a, b, e = corners[i, 0], corners[i, 1], corners[i, 2]
        ta, tb, te = tuv[i, 0], tuv[i, 1], tuv[i, 2]
        n0, n1, n2 = _lerp(v_n, a, b, e, w0, w1, w2, 0), _lerp(v_n, a, b, e, w0, w1, w2, 1), _lerp(v_n, a, b, e, w0, w1, w2, 2)
        t0, t1, t2 = _lerp(uv_t, ta, tb, te, w0, w1, w2, 0), _lerp(uv_t, ta, tb, te, w0, w1, w2, 1), _lerp(uv_t, ta, tb, te, w0, w1, w2, 2)
        nl = np.sqrt(n0 * n0 + n1 * n1 + n2 * n2)
        if nl < 1e-12:
            continue
        n0, n1, n2 = n0 / nl, n1 / nl, n2 / nl
        tn = t0 * n0 + t1 * n1 + t2 * n2
        t0, t1, t2 = t0 - tn * n0, t1 - tn * n1, t2 - tn * n2
        tl = np.sqrt(t0 * t0 + t1 * t1 + t2 * t2)
        if tl < 1e-12:
            continue
        t0, t1, t2 = t0 / tl, t1 / tl, t2 / tl
        sign = 1.0 if _lerp(uv_t, ta, tb, te, w0, w1, w2, 3) >= 0 else -1.0
        b0 = sign * (n1 * t2 - n2 * t1)
        b1 = sign * (n2 * t0 - n0 * t2)
        b2 = sign * (n0 * t1 - n1 * t0)
        # UV derivatives of d (per unit of u and v): central over measured neighbours, one-sided at the border
        here = disp[r, c]
        du = 0.0
        k = 0
        if c + 1 < s and mask[r, c + 1]:
            du += disp[r, c + 1] - here
            k += 1
        if c >= 1 and mask[r, c - 1]:
            du += here - disp[r, c - 1]
            k += 1
        du = du / max(k, 1) * s
        dv = 0.0
        k = 0
        if r >= 1 and mask[r - 1, c]:  # the row above is +v
            dv += disp[r - 1, c] - here
            k += 1
        if r + 1 < s and mask[r + 1, c]:
            dv += here - disp[r + 1, c]
            k += 1
        dv = dv / max(k, 1) * s
        f = tri[i]
        u0, u1, u2 = pu_all[f, 0], pu_all[f, 1], pu_all[f, 2]
        v0, v1, v2 = pv_all[f, 0], pv_all[f, 1], pv_all[f, 2]
        g11 = u0 * u0 + u1 * u1 + u2 * u2
        g12 = u0 * v0 + u1 * v1 + u2 * v2
        g22 = v0 * v0 + v1 * v1 + v2 * v2
        det = g11 * g22 - g12 * g12
        if det <= 1e-12:
            continue
        gu = (g22 * du - g12 * dv) / det
        gv = (g11 * dv - g12 * du) / det
        q0 = u0 * gu + v0 * gv  # the surface gradient of d
        q1 = u1 * gu + v1 * gv
        q2 = u2 * gu + v2 * gv
        gn = q0 * n0 + q1 * n1 + q2 * n2
        q0, q1, q2 = n0 - (q0 - gn * n0), n1 - (q1 - gn * n1), n2 - (q2 - gn * n2)
        ql = np.sqrt(q0 * q0 + q1 * q1 + q2 * q2)
        x = (q0 * t0 + q1 * t1 + q2 * t2) / ql
        y = (q0 * b0 + q1 * b1 + q2 * b2) / ql
        z = (q0 * n0 + q1 * n1 + q2 * n2) / ql
        out[r, c, 0] = np.uint8(min(max(np.floor((x + 1.0) * 127.5 + 0.5), 0.0), 255.0))
        out[r, c, 1] = np.uint8(min(max(np.floor((y + 1.0) * 127.5 + 0.5), 0.0), 255.0))
        out[r, c, 2] = np.uint8(min(max(np.floor((z + 1.0) * 127.5 + 0.5), 0.0), 255.0))


@njit(cache=True, nogil=True)
def _masked_gaussian(d, mask, w, out, den):
    """``out`` (zeros) at the measured texels: the masked Gaussian of :func:`normal_smoothed` (and of
    :func:`_clean_depth`), the value
    scipy's ``gaussian_filter(..., mode="constant")`` of the masked numerator and of the mask give there,
    bit for bit (``correlate1d``'s symmetric sum in float64, farthest pair first, axis 0 then axis 1, each
    pass rounded to float32), evaluated only where it is read: the axis-0 pass on each row's measured span
    plus the kernel's reach, the axis-1 pass on the measured span; zero padding instead of bounds tests, over the
    measured texels' bounding box only, the padded copy in float32 / uint8 (the same float64 values where read;
    zeroing and filling two padded float64 copies of the whole tile was a third of the kernel's time)."""
    h, wd = d.shape
    rad = w.shape[0] // 2
    first = np.full(h, -1, np.int64)
    last = np.full(h, -1, np.int64)
    r_lo, r_hi, c_lo, c_hi = h, -1, wd, -1
    for r in range(h):
        for c in range(wd):
            if mask[r, c]:
                if first[r] < 0:
                    first[r] = c
                last[r] = c
        if first[r] >= 0:
            r_lo, r_hi = min(r_lo, r), r
            c_lo, c_hi = min(c_lo, first[r]), max(c_hi, last[r])
    if r_hi < 0:
        return
    # the measured texels' bounding box plus the kernel's reach, zero-padded (the image's own zero padding
    # where the reach leaves it); box column = image column - c_lo + rad, box row = image row - r_lo + rad
    bh, bw = r_hi - r_lo + 1 + 2 * rad, c_hi - c_lo + 1 + 2 * rad
    x = np.zeros((bh, bw), np.float32)  # the masked values (float32 -> float64 is exact where they are read)
    m = np.zeros((bh, bw), np.uint8)
    for r in range(r_lo, r_hi + 1):
        if first[r] < 0:
            continue
        for c in range(first[r], last[r] + 1):
            if mask[r, c]:
                x[r - r_lo + rad, c - c_lo + rad] = d[r, c]
                m[r - r_lo + rad, c - c_lo + rad] = 1
    num1 = np.zeros((r_hi - r_lo + 1, bw), np.float32)  # zero outside the image and beyond a row's reach
    den1 = np.zeros((r_hi - r_lo + 1, bw), np.float32)
    acc_n = np.empty(bw)
    acc_d = np.empty(bw)
    eps = np.float32(1e-6)
    for r in range(r_lo, r_hi + 1):
        if first[r] < 0:
            continue
        c0 = max(first[r] - rad, 0) - c_lo + rad
        c1 = min(last[r] + rad + 1, wd) - c_lo + rad
        rr = r - r_lo + rad
        for c in range(c0, c1):
            acc_n[c] = np.float64(x[rr, c]) * w[rad]
            acc_d[c] = np.float64(m[rr, c]) * w[rad]
        an, ad = acc_n[c0:c1], acc_d[c0:c1]
        for j in range(rad, 0, -1):
            wj = w[rad - j]
            xu, xd, mu, md = x[rr - j, c0:c1], x[rr + j, c0:c1], m[rr - j, c0:c1], m[rr + j, c0:c1]
            for c in range(c1 - c0):
                an[c] += (np.float64(xu[c]) + np.float64(xd[c])) * wj
                ad[c] += (np.float64(mu[c]) + np.float64(md[c])) * wj
        for c in range(c0, c1):
            num1[r - r_lo, c] = np.float32(acc_n[c])
            den1[r - r_lo, c] = np.float32(acc_d[c])
    for r in range(r_lo, r_hi + 1):
        if first[r] < 0:
            continue
        c0 = first[r] - c_lo + rad
        c1 = last[r] + 1 - c_lo + rad
        rb = r - r_lo
        for c in range(c0, c1):
            acc_n[c] = np.float64(num1[rb, c]) * w[rad]
            acc_d[c] = np.float64(den1[rb, c]) * w[rad]
        an, ad = acc_n[c0:c1], acc_d[c0:c1]
        for j in range(rad, 0, -1):
            wj = w[rad - j]
            nl, nr, dl, dr = num1[rb, c0 - j:c1 - j], num1[rb, c0 + j:c1 + j], den1[rb, c0 - j:c1 - j], den1[rb, c0 + j:c1 + j]
            for c in range(c1 - c0):
                an[c] += (np.float64(nl[c]) + np.float64(nr[c])) * wj
                ad[c] += (np.float64(dl[c]) + np.float64(dr[c])) * wj
        for c in range(c0, c1):
            if mask[r, c - rad + c_lo]:
                den[r, c - rad + c_lo] = np.float32(acc_d[c])
                out[r, c - rad + c_lo] = np.float32(acc_n[c]) / max(np.float32(acc_d[c]), eps)


def normal_smoothed(disp: DisplacementMap, sigma_texels: float) -> np.ndarray:
    """``disp.displacement`` low-passed by a masked Gaussian of ``sigma_texels``: masked texels take no
    part and stay 0 (the mask is unchanged; a texel's average is over its measured neighbours only).
    A 3-sigma kernel in float32 passes (scipy's ``gaussian_filter`` of the masked map and of the mask,
    ``mode="constant"``, the same values: ``_masked_gaussian``), evaluated only at the measured texels."""
    d = disp.displacement
    if sigma_texels <= 0.0:
        return d
    out = np.zeros_like(d, dtype=np.float32)
    if not disp.mask.any():
        return out
    den = np.empty_like(out)  # the mask's Gaussian, not needed here
    _masked_gaussian(np.ascontiguousarray(d, np.float32), np.ascontiguousarray(disp.mask, bool), _gaussian_weights(sigma_texels), out, den)
    return out


def _gaussian_weights(sigma: float, truncate: float = 3.0) -> np.ndarray:
    """scipy.ndimage's 1-D Gaussian kernel (``_gaussian_kernel1d``, order 0: the same expression, the
    same float64 values) of radius ``int(truncate * sigma + 0.5)``."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (float(sigma) * float(sigma)) * x ** 2)
    return phi / phi.sum()


def normal_sigma_texels(model, vertices_head: np.ndarray, disp: DisplacementMap, smooth_px: float) -> float:
    """The Gaussian sigma, in texels of ``disp``, of ``smooth_px`` sensor pixels at the frame's distance
    (``disp.stats["pixel_mm"]``: the sensor pixel's footprint on the face) over the median texel size
    (mm) of the base mesh's face tile; 0 when the map carries no pixel footprint (not from a frame)."""
    _, pu, pv, _ = _jacobians(model, np.asarray(vertices_head, np.float64))
    return _sigma_texels(model, pu, pv, disp, smooth_px)


def _sigma_texels(model, pu, pv, disp: DisplacementMap, smooth_px: float) -> float:
    pixel_mm = float(disp.stats.get("pixel_mm", 0.0))
    if smooth_px <= 0.0 or pixel_mm <= 0.0:
        return 0.0
    texel_mm = _texel_mm(model, pu, pv, disp.size)
    return smooth_px * pixel_mm / texel_mm if texel_mm > 0 else 0.0


def _jacobians(model, v: np.ndarray):
    """Each face triangle's Jacobian dP/du, dP/dv (mm per unit of UV), the triangles, and the tangent
    sums of :func:`facerecon.facemodel.uv.uv_derivatives` (for ``uv_tangents`` of the same mesh)."""
    pu, pv, acc = uv_derivatives(model, v)
    return np.asarray(model.triangles)[face_triangles(model)], pu, pv, (pu, pv, acc)


@njit(cache=True, nogil=True)
def _cross_norm(a, b):
    """``np.linalg.norm(np.cross(a, b), axis=1)`` of (N, 3) float64 rows in one pass: the cross product's
    terms and the squares summed left to right, as NumPy does them (the same values)."""
    out = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        x = a[i, 1] * b[i, 2] - a[i, 2] * b[i, 1]
        y = a[i, 2] * b[i, 0] - a[i, 0] * b[i, 2]
        z = a[i, 0] * b[i, 1] - a[i, 1] * b[i, 0]
        out[i] = np.sqrt(x * x + y * y + z * z)
    return out


def _texel_mm(model, pu: np.ndarray, pv: np.ndarray, size: int) -> float:
    """Median edge (mm) of a texel of a ``size`` map (sqrt of its area; the face triangles' Jacobians
    ``pu``, ``pv`` of :func:`_jacobians`), the median over the triangles weighted by their texels."""
    area = _cross_norm(np.ascontiguousarray(pu, np.float64), np.ascontiguousarray(pv, np.float64))
    cache = model.__dict__.setdefault("_uv_cache", {})
    key = ("detail-texel-counts", size, len(area))
    if key not in cache:  # texels per face triangle: the model's and the size's alone
        _, _, _, _, ti, _ = _texels(model, size, "face")
        cache[key] = np.bincount(ti, minlength=len(area))
    counts = cache[key]
    order = np.argsort(area)
    cum = np.cumsum(counts[order])
    return float(np.sqrt(area[order][np.searchsorted(cum, cum[-1] / 2.0)])) / size


_FLAT_NORMAL_MAPS: dict = {}


def _flat_normal_map(size: int) -> np.ndarray:
    """A (size, size, 3) map of the flat normal (128, 128, 255), kept per size (read-only): copying it is
    ~1/40 of broadcasting the triple into a new array every frame."""
    flat = _FLAT_NORMAL_MAPS.get(size)
    if flat is None:
        flat = np.empty((size, size, 3), np.uint8)
        flat[:] = (128, 128, 255)
        flat.flags.writeable = False
        _FLAT_NORMAL_MAPS[size] = flat
    return flat


def normal_map(model, vertices_head: np.ndarray, disp: DisplacementMap, cfg: DetailConfig | None = None,
               normals: np.ndarray | None = None) -> np.ndarray:
    """(S, S, 3) uint8 tangent-space normal map of ``disp`` over the base mesh ``vertices_head``.

    glTF convention (glTF 2.0, material.normalTexture: "+X is right and +Y is up, +Z points toward
    the viewer"): red = +u (right in the image), green = +v (up in the image: the OBJ layout's v,
    i.e. glTF's texture v decreasing), blue = out of the surface; ``(c + 1) / 2 * 255``.  The frame
    is the per-corner tangent of :func:`facerecon.facemodel.uv.uv_tangents` interpolated like a
    renderer does (normal, then ``T`` orthogonalised, bitangent ``w N x T``).  The perturbed normal is
    ``N - grad d`` (first order in the slope of the displacement; the surface gradient of ``d``
    from its UV derivatives through each triangle's Jacobian ``[dP/du, dP/dv]``); texels outside
    the mask, and every texel outside the UV triangles, are flat (128, 128, 255).  ``normals``:
    :func:`face_normals` of ``vertices_head`` where the caller has them.
    """
    cfg = cfg or DetailConfig()
    s = disp.size
    rows, cols, corners, bary, ti, tuv = _texels(model, s, "face")
    v = np.asarray(vertices_head, np.float64)
    ftris, pu, pv, deriv = _jacobians(model, v)
    vn = vertex_normals(v, ftris) if normals is None else normals
    tan = uv_tangents(model, v, vn, deriv)
    # the slope of a per-pixel noisy measurement is noise at the texel scale: the normal map reads a
    # low-passed copy (``normal_smooth_px`` sensor pixels; the displacement itself stays as measured)
    sigma = _sigma_texels(model, pu, pv, disp, float(cfg.normal_smooth_px))
    out = _flat_normal_map(s).copy()
    _normal_texels(rows, cols, corners, bary, tuv, ti, vn, tan, pu, pv,
                   normal_smoothed(disp, sigma), disp.mask, out)
    return out


def decode_normal_map(model, vertices_head: np.ndarray, normals: np.ndarray):
    """The normal map ``normals`` ((S, S, 3) uint8, :func:`normal_map`) decoded as a glTF viewer does:
    ``x T + y B + z N`` with the tangent frame the GLB carries, at every face texel.  Returns (rows,
    cols, decoded (N, 3) unit normals, base normals N (N, 3), corner vertices (N, 3), bary (N, 3)), head
    frame; for measuring the map against a true surface (tests, ``benchmarks/detail_normals.py``)."""
    rows, cols, corners, bary, _, tuv = _texels(model, normals.shape[0], "face")
    v = np.asarray(vertices_head, np.float64)
    skin = np.asarray(model.triangles)[face_triangles(model)]
    vn = vertex_normals(v, skin)
    n = _unit(_interp(vn, corners, bary))
    tan = uv_tangents(model, v, vn)
    t = _interp(tan[:, :3], tuv, bary)
    t = _unit(t - np.einsum("nc,nc->n", t, n)[:, None] * n)
    b = np.cross(n, t) * np.where(_interp(tan[:, 3:], tuv, bary)[:, 0] < 0, -1.0, 1.0)[:, None]
    c = normals[rows, cols].astype(np.float64) / 127.5 - 1.0
    decoded = _unit(c[:, :1] * t + c[:, 1:2] * b + c[:, 2:3] * n)
    return rows, cols, decoded, n, corners, bary


def splat_depth_frame(points_camera: np.ndarray, pixel_mm: float, source: str = "splatted points",
                      margin_px: int = 4) -> DepthFrame:
    """A virtual depth frame of a point cloud already in a camera frame (mm, +z forward; e.g. a fused
    head surface seen from in front of the face): a pinhole camera whose focal gives ``pixel_mm`` per
    pixel at the cloud's median depth, the image just covering the projected points (plus ``margin_px``),
    one z-buffer sample per pixel (the nearest point wins).  No hole filling: a pixel no point falls in
    stays 0 (no measurement), so :func:`displacement_map` masks what the cloud did not see."""
    from ..geometry.camera import Intrinsics

    p = np.asarray(points_camera, np.float64)
    p = p[np.isfinite(p).all(axis=1) & (p[:, 2] > 1.0)] if len(p) else p.reshape(0, 3)
    if not len(p) or not pixel_mm > 0:
        return DepthFrame(np.zeros((2, 2), np.float32), Intrinsics(1.0, 1.0, 0.5, 0.5, 2, 2), source)
    f = float(np.median(p[:, 2])) / float(pixel_mm)
    x, y = f * p[:, 0] / p[:, 2], f * p[:, 1] / p[:, 2]
    # the image's origin so that the points' extent plus the margin is inside it (pixel centres at integers)
    cx = margin_px - float(np.floor(x.min()))
    cy = margin_px - float(np.floor(y.min()))
    w = int(np.ceil(x.max() + cx)) + margin_px + 1
    h = int(np.ceil(y.max() + cy)) + margin_px + 1
    cols, rows = np.rint(x + cx).astype(np.int64), np.rint(y + cy).astype(np.int64)
    depth = np.full(h * w, np.inf)
    np.minimum.at(depth, rows * w + cols, p[:, 2])
    depth[~np.isfinite(depth)] = 0.0
    return DepthFrame(depth.reshape(h, w).astype(np.float32), Intrinsics(f, f, cx, cy, w, h), source)
