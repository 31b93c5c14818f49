"""Drawing without matplotlib (Pillow + NumPy), for the pictures written per frame: colour maps
from a table (``data/colormaps.json``, matplotlib's own 256 entries), dots, legend strips,
colour bars, text.  matplotlib stays for plots in reports and benchmarks."""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np


@lru_cache(maxsize=8)
def colormap(name: str) -> np.ndarray:
    """(256, 3) float64 RGB in [0, 1]: matplotlib's colour map ``name`` (turbo and RdBu_r are
    tabled; any other is asked of matplotlib)."""
    doc = _tables()
    if name in doc:
        return np.asarray(doc[name], np.float64)
    import matplotlib

    cmap = matplotlib.colormaps[name].resampled(256)
    return np.asarray(cmap(np.arange(256) / 256.0 + 1 / 512))[:, :3]


@lru_cache(maxsize=1)
def _tables() -> dict:
    doc = json.loads(resources.files("facerecon").joinpath("data/colormaps.json").read_text(encoding="utf-8"))
    return {k: v for k, v in doc.items() if k != "note"}


def colormap_at(name: str, x: np.ndarray) -> np.ndarray:
    """Colours (..., 3) float in [0, 1] of ``x`` in [0, 1] (clipped), entry ``min(int(x * 256), 255)``
    as matplotlib picks it."""
    lut = colormap(name)
    n = len(lut)
    idx = np.minimum((np.clip(np.asarray(x, np.float64), 0.0, 1.0) * n).astype(np.int64), n - 1)
    return lut[idx]


def font(size: int):
    """Pillow's default font at ``size`` px (the fixed bitmap font where Pillow lacks FreeType)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):
        return ImageFont.load_default()


def draw_points(draw, pts: np.ndarray | None, colour, r: float, scale: float = 1.0, offset=(0.0, 0.0)) -> None:
    """Filled dots of radius ``r`` at ``(pts - offset) * scale`` (non-finite points skipped)."""
    if pts is None:
        return
    for x, y in np.asarray(pts, np.float64).reshape(-1, 2):
        if np.isfinite(x) and np.isfinite(y):
            x, y = (x - offset[0]) * scale, (y - offset[1]) * scale
            # a dark rim where the dot is big enough to keep its colour inside it
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline=(0, 0, 0) if r >= 2.5 else None)


def legend_strip(width: int, font_size: int, items):
    """A dark strip, ``width`` wide, one line per ``(kind, colour, text)`` item (kind 'mesh': a
    swatch, 'dot': a dot) naming each mark."""
    from PIL import Image, ImageDraw

    f = font(font_size)
    line = int(font_size * 1.45)
    pad = font_size // 2
    strip = Image.new("RGB", (width, pad * 2 + line * len(items)), (24, 24, 24))
    draw = ImageDraw.Draw(strip)
    r = max(3.0, font_size * 0.3)
    for i, (kind, colour, text) in enumerate(items):
        cy = pad + line * i + line / 2
        cx = pad + font_size * 0.6
        if kind == "mesh":
            draw.rectangle([cx - font_size * 0.5, cy - font_size * 0.35, cx + font_size * 0.5, cy + font_size * 0.35], fill=colour)
        else:
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour, outline=(0, 0, 0))
        draw.text((cx + font_size * 1.0, cy), text, fill=(235, 235, 235), font=f, anchor="lm")
    return strip


def colour_bar(height: int, name: str, vmin: float, vmax: float, label: str, font_size: int = 12, ticks: int = 5):
    """A vertical colour bar (``vmax`` at the top) with ``ticks`` labelled values and ``label``, on black."""
    from PIL import Image, ImageDraw

    f = font(font_size)
    bar_w, pad = max(10, font_size), font_size // 2
    width = pad + bar_w + 6 + font_size * 4
    top, bottom = font_size, height - font_size
    img = Image.new("RGB", (width, height), (0, 0, 0))
    rows = np.linspace(1.0, 0.0, max(bottom - top, 2))
    bar = (colormap_at(name, rows)[:, None, :] * 255 + 0.5).astype(np.uint8).repeat(bar_w, 1)
    img.paste(Image.fromarray(bar), (pad, top))
    draw = ImageDraw.Draw(img)
    for t in np.linspace(0.0, 1.0, ticks):
        y = bottom - t * (bottom - top - 1)
        draw.line([pad + bar_w, y, pad + bar_w + 4, y], fill=(220, 220, 220))
        draw.text((pad + bar_w + 6, y), f"{vmin + t * (vmax - vmin):g}", fill=(220, 220, 220), font=f, anchor="lm")
    draw.text((width - 2, top - 2), label, fill=(220, 220, 220), font=f, anchor="rs")
    return img
