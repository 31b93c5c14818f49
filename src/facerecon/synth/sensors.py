"""Depth-sensor models: named, composable stages applied to the exact rendered depth.

A sensor (``configs/sensors.toml``) is an ordered list of stages; each stage is a
function ``stage(state, **params)`` registered in :data:`STAGES` that edits
``state.depth`` in place (0 = no measurement).  Parameters may be ranges, drawn per
frame.  Randomness is reproducible from the frame's sensor Generator (see
:mod:`facerecon.synth.noise`; ``cell_px`` parameters are correlation lengths).

Example::

    depth, applied = apply_sensor(load_sensor("kinect-v1"), ideal_depth, intrinsics, rng,
                                  segment=segment, cos_view=cos_view)
"""
from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
from numba import njit
from scipy.special import ndtri

from ..geometry.camera import Intrinsics
from .noise import _smooth_n, _smooth_u, _u01, coarse_noise, noise_field
from .noise import key as _key
from ..errors import ConfigError
from ..settings import check_keys
from .spec import chance, draw, read_toml

SEG_HAIR = 6  # facerecon.synth.scene.SEG_HAIR (kept literal: numba kernels take plain ints)


@dataclass(frozen=True)
class SensorModel:
    name: str
    table: dict  # description, source, stages

    @property
    def stages(self) -> list[dict]:
        return list(self.table.get("stages", []))

    def to_dict(self) -> dict:
        return {"name": self.name, "table": copy.deepcopy(self.table)}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


@lru_cache(maxsize=4)
def _sensors_cached(path: str | None) -> dict:
    return read_toml(path, "sensors.toml")


def sensor_names(path: str | Path | None = None) -> list[str]:
    return sorted(_sensors_cached(None if path is None else str(path)))


def load_sensor(name: str, path: str | Path | None = None) -> SensorModel:
    """The named sensor model from ``configs/sensors.toml`` (or a user file); stage types are checked."""
    table = _sensors_cached(None if path is None else str(path))
    if name not in table:
        raise ConfigError(f"unknown sensor model {name!r}; known: {', '.join(sorted(table))}")
    import inspect

    check_keys(table[name], ("description", "source", "storage_unit_mm", "stages"), f"sensor {name!r}: ")
    for st in table[name].get("stages", []):
        if st.get("type") not in STAGES:
            raise ConfigError(f"sensor {name!r}: unknown stage type {st.get('type')!r}; known: {', '.join(sorted(STAGES))}")
        params = list(inspect.signature(STAGES[st["type"]]).parameters)[1:]  # after the state
        check_keys([k for k in st if k not in ("type", "prob")], params, f"sensor {name!r} stage {st['type']!r}: ")
    return SensorModel(name, copy.deepcopy(table[name]))


@dataclass
class SensorState:
    """Working buffers of one frame while its sensor stages run."""

    depth: np.ndarray  # (H, W) float32 mm, edited in place
    intrinsics: Intrinsics
    rng: np.random.Generator
    segment: np.ndarray | None = None  # (H, W) uint8 scene segments (hair gets more dropout)
    cos_view: np.ndarray | None = None  # (H, W) float32 |cos| between surface normal and view ray
    applied: list = field(default_factory=list)  # (stage type, drawn params) for the labels
    timings: dict = field(default_factory=dict)  # stage type -> seconds (profiling)
    _edges: dict = field(default_factory=dict)

    def edges(self, jump_rel: float, with_missing: bool = False) -> np.ndarray:
        """Flat indices of depth-jump pixels (``with_missing``: also missing pixels next to valid ones)
        of the depth as it was when first asked for this threshold (cached)."""
        if jump_rel not in self._edges:
            self._edges[jump_rel] = _edge_pixels(self.depth, float(jump_rel))
        jump, border = self._edges[jump_rel]
        return np.concatenate([jump, border]) if with_missing else jump


@njit(cache=True)
def _jitter(depth, edges, gx, gy, cell, sigma, reach):
    """Resample pixels within ``reach`` px of an edge at positions displaced by the coarse fields."""
    h, w = depth.shape
    src = depth.copy()
    done = np.zeros((h, w), np.bool_)
    for e in edges:
        ey, ex = e // w, e % w
        for y in range(max(0, ey - reach), min(h, ey + reach + 1)):
            for x in range(max(0, ex - reach), min(w, ex + reach + 1)):
                if done[y, x]:
                    continue
                done[y, x] = True
                y0, x0 = y // cell, x // cell
                ty, tx = (y - y0 * cell) / cell, (x - x0 * cell) / cell
                ddx = (gx[y0, x0] * (1 - tx) + gx[y0, x0 + 1] * tx) * (1 - ty) + (gx[y0 + 1, x0] * (1 - tx) + gx[y0 + 1, x0 + 1] * tx) * ty
                ddy = (gy[y0, x0] * (1 - tx) + gy[y0, x0 + 1] * tx) * (1 - ty) + (gy[y0 + 1, x0] * (1 - tx) + gy[y0 + 1, x0 + 1] * tx) * ty
                sy = min(max(int(np.floor(y + sigma * ddy + 0.5)), 0), h - 1)
                sx = min(max(int(np.floor(x + sigma * ddx + 0.5)), 0), w - 1)
                depth[y, x] = src[sy, sx]


def lateral_jitter(s: SensorState, sigma_px: float, cell_px: int = 6) -> None:
    """Lateral noise: resample at smoothly displaced positions, so edges become ragged and wobbly.

    Only pixels near depth edges are resampled (elsewhere a sub-pixel shift changes
    nothing visible); segment and view-angle maps stay as rendered.
    """
    h, w = s.depth.shape
    gx, cell = coarse_noise(s.rng, h, w, max(int(cell_px), 2))
    gy, _ = coarse_noise(s.rng, h, w, cell)
    reach = max(1, int(round(1.5 * sigma_px)))
    _jitter(s.depth, s.edges(0.04, True), gx, gy, cell, float(sigma_px), reach)


@njit(cache=True)
def _box_smooth(depth, r, max_rel):
    """Edge-aware box mean over the (2r+1)^2 window's valid pixels (sliding sums: rows, then columns)."""
    h, w = depth.shape
    hs = np.empty((h, w), np.float32)
    hc = np.empty((h, w), np.int16)
    for y in range(h):
        acc = 0.0
        cnt = 0
        for x in range(min(r, w)):
            z = depth[y, x]
            if z > 0:
                acc += z
                cnt += 1
        for x in range(w):
            xa = x + r
            if xa < w and depth[y, xa] > 0:
                acc += depth[y, xa]
                cnt += 1
            xr = x - r - 1
            if xr >= 0 and depth[y, xr] > 0:
                acc -= depth[y, xr]
                cnt -= 1
            hs[y, x] = acc
            hc[y, x] = cnt
    colsum = np.zeros(w)
    colcnt = np.zeros(w, np.int64)
    for y in range(min(r, h)):
        colsum += hs[y]
        colcnt += hc[y]
    half = (2 * r + 1) ** 2 // 2
    for y in range(h):
        ya, yr = y + r, y - r - 1
        if ya < h:
            for x in range(w):
                colsum[x] += hs[ya, x]
                colcnt[x] += hc[ya, x]
        if yr >= 0:
            for x in range(w):
                colsum[x] -= hs[yr, x]
                colcnt[x] -= hc[yr, x]
        for x in range(w):
            z = depth[y, x]
            n = colcnt[x]
            if z > 0 and n > half:
                m = colsum[x] / n
                if abs(m - z) < max_rel * z:
                    depth[y, x] = m


def lateral_smoothing(s: SensorState, radius_px: int = 2, max_jump_rel: float = 0.02) -> None:
    """Block-matching sensors average depth over their correlation window: box mean over
    (2r+1)^2 px, kept only where it stays within ``max_jump_rel`` of the pixel (no bleeding
    across depth edges).  Fine geometry (eyelids, lips, nostrils) blurs as in real frames."""
    if radius_px >= 1:
        _box_smooth(s.depth, int(radius_px), float(max_jump_rel))


@njit(cache=True)
def _shadow(depth, fb, sign, tol):
    """Row-wise projector occlusion; projector on the +x side if sign > 0 (shadows fall left).

    A pixel is lit iff no pixel on its projector side maps to a projector coordinate
    p = x - sign * f b / z at or beyond its own (the projector's epipolar lines are rows).
    """
    h, w = depth.shape
    for y in range(h):
        if sign > 0:
            m = np.inf
            for x in range(w - 1, -1, -1):
                z = depth[y, x]
                if z <= 0:
                    continue
                p = x - fb / z
                if p > m + tol:
                    depth[y, x] = 0.0
                elif p < m:
                    m = p
        else:
            m = -np.inf
            for x in range(w):
                z = depth[y, x]
                if z <= 0:
                    continue
                p = x + fb / z
                if p < m - tol:
                    depth[y, x] = 0.0
                elif p > m:
                    m = p


def projector_shadow(s: SensorState, baseline_mm: float, side: str = "left") -> None:
    """Structured light: pixels the projector (``baseline_mm`` away) cannot light read 0.

    ``side`` is where the shadow falls next to a foreground object in the image: ``left``
    (projector on +x, Kinect v1), ``right``, ``top`` or ``bottom`` (projector on -y).
    Uses the image focal length (the shadow is a geometric effect of the rendered view).
    """
    k = s.intrinsics
    if side in ("left", "right"):
        _shadow(s.depth, k.fx * baseline_mm, 1.0 if side == "left" else -1.0, 0.05)
    elif side in ("top", "bottom"):
        t = np.ascontiguousarray(s.depth.T)
        _shadow(t, k.fy * baseline_mm, 1.0 if side == "top" else -1.0, 0.05)
        s.depth[...] = t.T
    else:
        raise ValueError(f"projector_shadow: side must be left/right/top/bottom, got {side!r}")


@njit(cache=True)
def _grazing(depth, cos, g, cell, start_deg, end_deg):
    h, w = depth.shape
    c0 = np.float32(np.cos(np.deg2rad(start_deg)))
    c1 = np.cos(np.deg2rad(end_deg))
    inv = 1.0 / max(c0 - c1, 1e-6)
    for y in range(h):
        for x in range(w):
            c = cos[y, x]
            if c < c0 and depth[y, x] > 0:
                p = (c0 - c) * inv  # ramps ~linearly in angle from start to end
                if p >= 1.0 or _smooth_u(g, cell, y, x) < p:
                    depth[y, x] = 0.0


def grazing_dropout(s: SensorState, start_deg: float, end_deg: float = 88.0, cell_px: int = 3) -> None:
    """Lose pixels whose surface is seen at a grazing angle (probability ramps start -> end; losses
    come in patches of ~``cell_px``)."""
    g, cell = coarse_noise(s.rng, *s.depth.shape, cell=max(int(cell_px), 2))
    if s.cos_view is not None:
        _grazing(s.depth, s.cos_view, g, cell, float(start_deg), float(end_deg))


@njit(cache=True)
def _mark(mark, out, n, i, bit):
    if not (mark[i] & bit):
        mark[i] |= bit
        out[n] = i
        n += 1
    return n


@njit(cache=True)
def _edge_pixels(depth, jump_rel):
    """(jump, border): flat indices of valid pixels with a valid 4-neighbour whose depth differs by
    more than jump_rel * z (both sides marked), and of missing pixels next to valid ones."""
    h, w = depth.shape
    flat = depth.ravel()
    mark = np.zeros(h * w, np.uint8)
    jump = np.empty(h * w, np.int64)
    border = np.empty(h * w, np.int64)
    nj = 0
    nb = 0
    for y in range(h):
        for x in range(w):
            i = y * w + x
            z = flat[i]
            for k in range(2):
                if k == 0:
                    if x + 1 >= w:
                        continue
                    j = i + 1
                else:
                    if y + 1 >= h:
                        continue
                    j = i + w
                zn = flat[j]
                if z > 0 and zn > 0:
                    if abs(zn - z) > jump_rel * min(z, zn):
                        nj = _mark(mark, jump, nj, i, 1)
                        nj = _mark(mark, jump, nj, j, 1)
                elif z > 0:
                    nb = _mark(mark, border, nb, j, 2)
                elif zn > 0:
                    nb = _mark(mark, border, nb, i, 2)
    return jump[:nj].copy(), border[:nb].copy()


@njit(cache=True)
def _edge_drop(depth, edges, r, thr, g, cell):
    h, w = depth.shape
    for e in edges:
        y, x = e // w, e % w
        for yy in range(max(0, y - r), min(h, y + r + 1)):
            for xx in range(max(0, x - r), min(w, x + r + 1)):
                if depth[yy, xx] > 0 and _smooth_n(g, cell, yy, xx) < thr:
                    depth[yy, xx] = 0.0


def edge_dropout(s: SensorState, jump_rel: float = 0.04, width_px: int = 1, prob_pixel: float = 0.5, cell_px: int = 3) -> None:
    """Lose pixels within ``width_px`` of a depth jump (both sides) with ``prob_pixel``, in runs of ~``cell_px``."""
    g, cell = coarse_noise(s.rng, *s.depth.shape, cell=max(int(cell_px), 2))
    thr = float(ndtri(min(max(prob_pixel, 1e-9), 1 - 1e-9)))  # P(normal < thr) = prob_pixel
    _edge_drop(s.depth, s.edges(float(jump_rel)), max(int(width_px) - 1, 0), thr, g, cell)


@njit(cache=True)
def _flying(depth, edges, jump_rel, prob, key):
    h, w = depth.shape
    src = depth.copy()
    for e in edges:
        y, x = e // w, e % w
        if _u01(key, 2 * e) >= prob:
            continue
        z = src[y, x]
        best = 0.0
        for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            yy, xx = y + dy, x + dx
            if 0 <= yy < h and 0 <= xx < w:
                zn = src[yy, xx]
                if zn > 0 and abs(zn - z) > jump_rel * z and abs(zn - z) > abs(best):
                    best = zn - z
        depth[y, x] = z + (0.1 + 0.8 * _u01(key, 2 * e + 1)) * best


def flying_pixels(s: SensorState, jump_rel: float = 0.05, prob_pixel: float = 0.7) -> None:
    """ToF mixed pixels: edge pixels (either side) read a depth between foreground and background."""
    key = _key(s.rng)
    _flying(s.depth, s.edges(float(jump_rel)), float(jump_rel), float(prob_pixel), key)


def _blur_coarse(depth: np.ndarray, radius_px: int, block: int = 8) -> np.ndarray:
    from scipy.ndimage import uniform_filter

    h, w = depth.shape
    hb, wb = h // block, w // block
    d = depth[: hb * block, : wb * block].reshape(hb, block, wb, block)
    valid = (d > 0).sum(axis=(1, 3))
    mean = np.where(valid > 0, d.sum(axis=(1, 3)) / np.maximum(valid, 1), 0.0)
    r = max(int(round(radius_px / block)), 1)
    num = uniform_filter(mean * (valid > 0), 2 * r + 1, mode="nearest")
    den = uniform_filter((valid > 0).astype(np.float64), 2 * r + 1, mode="nearest")
    coarse = np.where(den > 0, num / np.maximum(den, 1e-9), 0.0)
    full = np.repeat(np.repeat(coarse, block, 0), block, 1)
    return np.pad(full, ((0, h - full.shape[0]), (0, w - full.shape[1])), mode="edge")


def multipath(s: SensorState, gain: float = 0.1, radius_px: int = 24, max_mm: float = 20.0) -> None:
    """ToF multipath: pixels farther than their surroundings (concave corners) read too far."""
    blur = _blur_coarse(s.depth, radius_px)
    bias = np.clip(gain * (s.depth - blur), 0.0, max_mm)
    s.depth[...] = np.where(s.depth > 0, s.depth + bias, 0.0)


@njit(cache=True)
def _disparity(depth, g, fb, sigma, sub):
    h, w = depth.shape
    for y in range(h):
        for x in range(w):
            z = depth[y, x]
            if z <= 0:
                continue
            d = fb / z + sigma * g[y, x]
            d = np.floor(d * sub + 0.5) / sub
            depth[y, x] = fb / d if d > 0 else 0.0


def disparity_noise(s: SensorState, focal_px: float, baseline_mm: float, sigma_px: float, subpixel: int = 8, cell_px: int = 1) -> None:
    """Structured light: noise of ``sigma_px`` on disparity f b / z, then quantisation to 1/subpixel px."""
    g = noise_field(s.rng, *s.depth.shape, cell=cell_px)
    _disparity(s.depth, g, float(focal_px * baseline_mm), float(sigma_px), float(subpixel))


@njit(cache=True)
def _axial(depth, g, s0, s2):
    h, w = depth.shape
    for y in range(h):
        for x in range(w):
            z = depth[y, x]
            if z > 0:
                depth[y, x] = z + (s0 + s2 * (z * 1e-3) ** 2) * g[y, x]


def axial_noise(s: SensorState, sigma0_mm: float, sigma2_mm: float = 0.0, cell_px: int = 1) -> None:
    """z noise with sigma = sigma0 + sigma2 * (z / 1000 mm)^2."""
    g = noise_field(s.rng, *s.depth.shape, cell=cell_px)
    _axial(s.depth, g, float(sigma0_mm), float(sigma2_mm))


def quantize(s: SensorState, step_mm: float) -> None:
    """Round depth to multiples of ``step_mm``."""
    s.depth[...] = np.round(s.depth / step_mm) * step_mm


@njit(cache=True)
def _holes(depth, g, seg, thr, thr_hair, hair):
    h, w = depth.shape
    for y in range(h):
        for x in range(w):
            t = thr_hair if seg[y, x] == hair else thr
            if g[y, x] < t:
                depth[y, x] = 0.0


def dropout_holes(s: SensorState, rate: float, blob_px: int = 8, hair_factor: float = 1.0) -> None:
    """Blob-shaped holes covering roughly ``rate`` of the image (``hair_factor`` x more on hair)."""
    if rate <= 0:
        return
    g = noise_field(s.rng, *s.depth.shape, cell=blob_px)
    seg = s.segment if s.segment is not None else np.zeros(s.depth.shape, np.uint8)
    thr = float(ndtri(min(rate, 0.5)))  # the field is unit-variance normal: P(g < thr) = rate
    thr_hair = float(ndtri(min(rate * hair_factor, 0.5)))
    _holes(s.depth, g, seg, thr, thr_hair, SEG_HAIR)


@njit(cache=True)
def _range(depth, lo, hi):
    h, w = depth.shape
    for y in range(h):
        for x in range(w):
            z = depth[y, x]
            if z < lo or z > hi:
                depth[y, x] = 0.0


def depth_range(s: SensorState, min_mm: float = 0.0, max_mm: float = np.inf) -> None:
    """Measurements only within [min_mm, max_mm]."""
    _range(s.depth, float(min_mm), float(max_mm))


def border(s: SensorState, left: int = 0, right: int = 0, top: int = 0, bottom: int = 0) -> None:
    """Invalid margins (registered Kinect output has a few blank columns/rows)."""
    h, w = s.depth.shape
    s.depth[:, : int(left)] = 0
    if int(right) > 0:
        s.depth[:, w - int(right) :] = 0
    s.depth[: int(top)] = 0
    if int(bottom) > 0:
        s.depth[h - int(bottom) :] = 0


STAGES: dict[str, Callable[..., None]] = {
    "lateral_jitter": lateral_jitter,
    "lateral_smoothing": lateral_smoothing,
    "projector_shadow": projector_shadow,
    "grazing_dropout": grazing_dropout,
    "edge_dropout": edge_dropout,
    "flying_pixels": flying_pixels,
    "multipath": multipath,
    "disparity_noise": disparity_noise,
    "axial_noise": axial_noise,
    "quantize": quantize,
    "dropout_holes": dropout_holes,
    "range": depth_range,
    "border": border,
}


def apply_sensor(
    sensor: SensorModel,
    depth: np.ndarray,
    intrinsics: Intrinsics,
    rng: np.random.Generator,
    *,
    segment: np.ndarray | None = None,
    cos_view: np.ndarray | None = None,
) -> tuple[np.ndarray, list]:
    """Run ``sensor``'s stages on a copy of the exact ``depth``; returns (depth, drawn stage params)."""
    state = SensorState(np.array(depth, np.float32, copy=True), intrinsics, rng, segment, cos_view)
    for st in sensor.stages:
        spec = {k: v for k, v in st.items() if k not in ("type", "prob")}
        run = chance(st.get("prob", 1.0), rng)
        params = {k: draw(v, rng) for k, v in spec.items()}
        if run:
            t0 = time.perf_counter()
            STAGES[st["type"]](state, **params)
            state.applied.append((st["type"], params))
            state.timings[st["type"]] = time.perf_counter() - t0
    apply_sensor.last_timings = state.timings  # type: ignore[attr-defined]
    return state.depth, state.applied
