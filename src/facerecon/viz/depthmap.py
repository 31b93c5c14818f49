"""Depth images as colour pictures, for eyeballing what a reader or a crop produced.

Near is warm (red/yellow), far is cool (blue); pixels without a measurement are black,
and the colour map stops short of its darkest ends so no valid depth looks missing.
The range defaults to robust percentiles of the valid depth, so a few far outliers (a
wall, a sensor sentinel) do not wash out the face.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..fileutil import atomic_path

if TYPE_CHECKING:
    from ..io.frame import DepthFrame

_PERCENTILES = (2.0, 98.0)
_LUT_SIZE = 256


@lru_cache(maxsize=8)
def _lut(cmap: str) -> np.ndarray:
    """(256, 3) float colours: index 0 = near, 255 = far."""
    import matplotlib

    base = matplotlib.colormaps[cmap]
    return np.asarray(base(np.linspace(0.95, 0.08, _LUT_SIZE)))[:, :3]


def depth_range(depth_mm: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> tuple[float, float]:
    """(vmin, vmax) in mm: the given values, else the 2nd/98th percentile of valid depth."""
    d = np.asarray(depth_mm, dtype=np.float64)
    valid = d[np.isfinite(d) & (d > 0)]
    if valid.size:
        lo, hi = np.percentile(valid, _PERCENTILES)
    else:
        lo, hi = 0.0, 1.0
    lo = float(lo if vmin is None else vmin)
    hi = float(hi if vmax is None else vmax)
    if hi <= lo:
        lo, hi = lo - 1.0, lo + 1.0
    return lo, hi


def depth_to_rgb(
    depth_mm: np.ndarray, vmin: float | None = None, vmax: float | None = None, cmap: str = "turbo"
) -> np.ndarray:
    """(H, W) depth in mm -> (H, W, 3) uint8 colour image; invalid (0/NaN) pixels are black."""
    d = np.asarray(depth_mm, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"depth must be 2-D, got shape {d.shape}")
    lo, hi = depth_range(d, vmin, vmax)
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
) -> Path:
    """Write a PNG: the colour-mapped depth with a colour bar in mm, a 100 mm scale bar
    (when intrinsics are known, drawn at the median depth), and the colour image beside
    it when the frame has one.  Uses the Agg canvas directly (no pyplot state); atomic.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap, Normalize
    from matplotlib.figure import Figure

    lo, hi = depth_range(frame.depth_mm, vmin, vmax)
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
    cbar.set_label("depth (mm); black = no measurement")
    k = frame.intrinsics
    if k is not None and frame.valid.any():
        z = float(np.median(frame.depth_mm[frame.valid]))
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
