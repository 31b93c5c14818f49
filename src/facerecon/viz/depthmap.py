"""Depth images as colour pictures, for eyeballing what a reader or a crop produced.

Near is warm (red/yellow), far is cool (blue); pixels without a measurement are black,
and the colour map stops short of its darkest ends so no valid depth looks missing.
The range defaults to the nearest surface (:func:`nearest_surface`: the depth cluster nearest
the camera, usually the head), so the face is not one blob when the frame also holds metres of
room behind it (a TrueDepth frame: 0.3 m of head, 8 m of background); anything farther takes
the far colour.  Where there is no such cluster, robust percentiles of all valid depth.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..fileutil import atomic_path
from .draw import colormap_at

if TYPE_CHECKING:
    from ..io.frame import DepthFrame

_PERCENTILES = (2.0, 98.0)
_LUT_SIZE = 256


@lru_cache(maxsize=8)
def _lut(cmap: str) -> np.ndarray:
    """(256, 3) float colours: index 0 = near, 255 = far (matplotlib's colours, from a table: no matplotlib here)."""
    return colormap_at(cmap, np.linspace(0.95, 0.08, _LUT_SIZE))


# The nearest surface: depth in 10 mm bins; a gap of this many mm without depth (bins holding
# under max(3, 0.05 % of the valid pixels)) ends it; it must hold >= 1 % of the valid pixels
# (else it is a speck and the next surface is tried) and is cut at NEAREST_SPAN_MM beyond its
# nearest depth (a head and shoulders, not the room).
_BIN_MM = 10.0
NEAREST_GAP_MM = 100.0
NEAREST_SPAN_MM = 500.0
_NEAREST_MIN_FRACTION = 0.01
_NEAREST_PERCENTILES = (1.0, 95.0)  # the far end of a head's cluster is neck and shoulders


def nearest_surface(depth_mm: np.ndarray) -> tuple[float, float] | None:
    """(near, far) mm of the nearest surface of the frame (usually the head), or None when the
    depth has no such cluster (too few pixels, or no gap anywhere): see ``NEAREST_*``."""
    d = np.asarray(depth_mm, dtype=np.float64)
    valid = d[np.isfinite(d) & (d > 0)]
    if valid.size < 50:
        return None
    lo = float(valid.min())
    edges = np.arange(lo, float(valid.max()) + 2 * _BIN_MM, _BIN_MM)
    counts, _ = np.histogram(valid, edges)
    filled = counts >= max(3, int(5e-4 * valid.size))
    gap_bins = int(round(NEAREST_GAP_MM / _BIN_MM))
    i, n = 0, len(counts)
    while i < n:
        while i < n and not filled[i]:
            i += 1
        if i >= n:
            return None
        j, empty = i, 0
        while j + 1 < n and empty < gap_bins:
            j += 1
            empty = 0 if filled[j] else empty + 1
        end = j - empty  # the last filled bin of the cluster
        near, far = edges[i], min(edges[end + 1], edges[i] + NEAREST_SPAN_MM)
        inside = valid[(valid >= near) & (valid <= far)]
        if inside.size >= _NEAREST_MIN_FRACTION * valid.size:
            if far >= edges[-1] - _BIN_MM and near <= lo + _BIN_MM and edges[-1] - lo <= NEAREST_SPAN_MM:
                return None  # one surface spanning everything: the plain percentiles do as well
            a, b = np.percentile(inside, _NEAREST_PERCENTILES)
            return float(a), float(b)
        i = end + 1
    return None


def depth_range(depth_mm: np.ndarray, vmin: float | None = None, vmax: float | None = None,
                nearest: bool = True) -> tuple[float, float]:
    """(vmin, vmax) in mm: the given values, else (``nearest``) the 1st/95th percentile of the
    nearest surface (:func:`nearest_surface`: the head, not 8 m of room behind it), else the
    2nd/98th percentile of all valid depth."""
    d = np.asarray(depth_mm, dtype=np.float64)
    near = nearest_surface(d) if nearest and (vmin is None or vmax is None) else None
    if near is not None:
        lo, hi = near
    else:
        valid = d[np.isfinite(d) & (d > 0)]
        lo, hi = np.percentile(valid, _PERCENTILES) if valid.size else (0.0, 1.0)
    lo = float(lo if vmin is None else vmin)
    hi = float(hi if vmax is None else vmax)
    if hi <= lo:
        lo, hi = lo - 1.0, lo + 1.0
    return lo, hi


def depth_to_rgb(
    depth_mm: np.ndarray, vmin: float | None = None, vmax: float | None = None, cmap: str = "turbo", nearest: bool = True
) -> np.ndarray:
    """(H, W) depth in mm -> (H, W, 3) uint8 colour image; invalid (0/NaN) pixels are black;
    range: :func:`depth_range`."""
    d = np.asarray(depth_mm, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"depth must be 2-D, got shape {d.shape}")
    lo, hi = depth_range(d, vmin, vmax, nearest)
    valid = np.isfinite(d) & (d > 0)
    t = np.clip((np.where(valid, d, lo) - lo) / (hi - lo), 0.0, 1.0)
    idx = np.rint(t * (_LUT_SIZE - 1)).astype(np.int64)
    rgb = (_lut(cmap)[idx] * 255.0 + 0.5).astype(np.uint8)
    rgb[~valid] = 0
    return rgb


def _summary(frame: "DepthFrame") -> str:
    d = frame.depth_mm
    n_valid = int(frame.valid.sum())
    parts = [f"{frame.width}x{frame.height}", f"valid {100.0 * n_valid / d.size:.1f}%"]
    if n_valid:
        lo, med, hi = np.percentile(d[frame.valid], [0, 50, 100])
        parts.append(f"depth {lo:.0f}-{hi:.0f} mm (median {med:.0f})")
    k = frame.intrinsics
    parts.append(f"fx {k.fx:.1f} fy {k.fy:.1f} cx {k.cx:.1f} cy {k.cy:.1f}" if k else "no intrinsics")
    return " | ".join(parts)


def save_depth_preview(
    frame: "DepthFrame",
    path: str | Path,
    title: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "turbo",
    nearest: bool = True,
) -> Path:
    """Write a PNG: the colour-mapped depth with a colour bar in mm, a 100 mm scale bar
    (when intrinsics are known, drawn at the median depth), and the colour image beside
    it when the frame has one.  Uses the Agg canvas directly (no pyplot state); atomic.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap, Normalize
    from matplotlib.figure import Figure

    lo, hi = depth_range(frame.depth_mm, vmin, vmax, nearest)
    rgb = depth_to_rgb(frame.depth_mm, lo, hi, cmap)
    panels = 2 if frame.color is not None else 1
    h_in = 4.8
    w_in = h_in * frame.width / frame.height
    fig = Figure(figsize=(w_in * panels + 1.4, h_in + 0.9), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    ax = axes[0]
    ax.imshow(rgb, interpolation="nearest")
    ax.set_xlabel("u (px)")
    ax.set_ylabel("v (px)")
    mappable = ScalarMappable(Normalize(lo, hi), ListedColormap(_lut(cmap)))
    cbar = fig.colorbar(mappable, ax=ax, fraction=0.046, pad=0.02)
    beyond = bool((frame.depth_mm[frame.valid] > hi).any())
    cbar.set_label("depth (mm); black = no measurement" + (f"; beyond {hi:.0f} mm = the far colour" if beyond else ""))
    k = frame.intrinsics
    if k is not None and frame.valid.any():
        shown = frame.valid & (frame.depth_mm >= lo) & (frame.depth_mm <= hi)  # the scale at the surface in colour
        z = float(np.median(frame.depth_mm[shown if shown.any() else frame.valid]))
        bar_px = 100.0 * k.fx / z
        if 4 <= bar_px <= 0.8 * frame.width:
            x0, y0 = 0.04 * frame.width, 0.95 * frame.height
            ax.plot([x0, x0 + bar_px], [y0, y0], color="white", linewidth=3, solid_capstyle="butt")
            ax.text(x0, y0 - 0.02 * frame.height, f"100 mm at z={z:.0f} mm", color="white", fontsize=8, va="bottom")
    if panels == 2:
        axes[1].imshow(frame.color, interpolation="nearest")
        axes[1].set_title("colour", fontsize=9)
        axes[1].set_axis_off()
    name = Path(frame.source).name if frame.source else "depth"
    fig.suptitle(f"{title or name}\n{_summary(frame)}", fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return Path(path)
