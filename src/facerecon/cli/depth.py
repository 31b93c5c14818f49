"""``facerecon view-depth FILE -o out.png``: look at a depth frame as any reader sees it.

The quickest check that a file, its unit and its camera are understood: the preview
shows the depth in millimetres, the intrinsics in use and a metric scale bar.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._console import stderr_console
from rich.table import Table

from ..errors import ConfigError

console = stderr_console()

_UNITS = ("mm", "m")


def view_depth(
    file: Path = typer.Argument(..., help="Depth file: .png (16-bit mm), .npy/.npz, .pcd, .ply (TrueDepth), Biwi *_depth.bin."),
    out: Path = typer.Option(..., "-o", "--out", "--output", help="Preview PNG to write."),
    unit: Optional[str] = typer.Option(None, "--unit", help="Stored depth unit for .npy/.npz/.pcd: mm or m (default: from the file)."),
    camera: Optional[str] = typer.Option(None, "--camera", help="Camera preset for the intrinsics (e.g. kinect-v1, truedepth-320x240)."),
    vmin: Optional[float] = typer.Option(None, "--vmin", help="Nearest depth of the colour scale (mm; default: from the nearest surface)."),
    vmax: Optional[float] = typer.Option(None, "--vmax", help="Farthest depth of the colour scale (mm; default: from the nearest surface)."),
    full_range: bool = typer.Option(False, "--full-range", help="Colour scale over the whole frame (2nd-98th percentile "
                                    "of all depth) instead of the nearest surface (1st-95th percentile of the depth "
                                    "cluster nearest the camera: the head, not the room behind it)."),
    title: Optional[str] = typer.Option(None, "--title", help="Figure title (default: the file name)."),
) -> None:
    """Read a depth frame and write a colour preview PNG (depth in mm, intrinsics, scale bar)."""
    from ..geometry.camera import camera_preset
    from ..io import read_depth
    from ..viz.depthmap import save_depth_preview

    if unit is not None and unit.lower() not in _UNITS:
        raise ConfigError(f"--unit must be one of {', '.join(_UNITS)}, got {unit!r}")
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out must be a .png file, got {out}")
    intrinsics = camera_preset(camera) if camera else None
    frame = read_depth(file, unit=unit, intrinsics=intrinsics)
    from ..viz.depthmap import depth_range

    lo, hi = depth_range(frame.depth_mm, vmin, vmax, nearest=not full_range)
    save_depth_preview(frame, out, title=title, vmin=lo, vmax=hi, nearest=not full_range)
    table = _summary_table(frame, camera)
    how = "given" if vmin is not None and vmax is not None else ("whole frame" if full_range else "nearest surface; --full-range: whole frame")
    table.add_row("colour range", f"{lo:.0f}-{hi:.0f} mm ({how})")
    console.print(table)
    console.print(f"wrote [bold]{out}[/bold]")


def _summary_table(frame, camera: Optional[str]) -> Table:
    import numpy as np

    t = Table(title=Path(frame.source).name, show_header=False, title_justify="left")
    t.add_row("format", str(frame.meta.get("format", "?")))
    t.add_row("size", f"{frame.width} x {frame.height}")
    n = int(frame.valid.sum())
    t.add_row("valid pixels", f"{n:,} ({100.0 * n / frame.depth_mm.size:.1f}%)")
    if n:
        p = np.percentile(frame.depth_mm[frame.valid], [0, 2, 50, 98, 100])
        t.add_row("depth (mm)", f"min {p[0]:.0f}  p2 {p[1]:.0f}  median {p[2]:.0f}  p98 {p[3]:.0f}  max {p[4]:.0f}")
    k = frame.intrinsics
    if k is None:
        t.add_row("intrinsics", "none in the file (give --camera)")
    else:
        src = f"preset {camera}" if camera else frame.meta.get("intrinsics_source", "file")
        t.add_row("intrinsics", f"fx {k.fx:.2f}  fy {k.fy:.2f}  cx {k.cx:.2f}  cy {k.cy:.2f}  ({src})")
    if "pose" in frame.meta:
        r, tr = frame.meta["pose"]
        t.add_row("head centre (mm)", " ".join(f"{x:.1f}" for x in tr))
    if frame.meta.get("unit_guessed"):
        t.add_row("unit", f"{frame.meta.get('unit')} (guessed from the values; give --unit to be sure)")
    return t


def register(app: typer.Typer) -> None:
    app.command("view-depth")(view_depth)
