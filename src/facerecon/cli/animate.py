"""``facerecon animate``: drive a rigged face GLB with a performance (ARKit CSV or our own reconstructions)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

console = Console(stderr=True)


def animate_cmd(
    glb: Path = typer.Argument(..., help="Rigged face GLB written by facerecon (face.glb / face_head.glb), either rig "
                               "(arkit52 or ict: the targets are matched by name)."),
    out: Path = typer.Option(..., "-o", "--out", help="The animated GLB to write."),
    arkit_csv: Optional[Path] = typer.Option(None, "--arkit-csv", help="Live Link Face CSV (Timecode, 52 ARKit curves; "
                                             "head/eye rotations ignored). See docs/animation.md."),
    from_reconstructions: Optional[Path] = typer.Option(None, "--from-reconstructions", help="Folder of `facerecon reconstruct` "
                                                        "outputs (one sub-folder per frame with pose.json): their expression "
                                                        "weights drive this face (one person's expressions on another's face)."),
    blendshapes: Optional[Path] = typer.Option(None, "--blendshapes", help="JSON of MediaPipe-style blendshapes: a list with "
                                               "one entry per frame, each a list of categories ({\"categoryName\": "
                                               "\"browInnerUp\", \"score\": 0.3}) or a {name: weight} object."),
    fps: Optional[float] = typer.Option(None, help="Frame rate. CSV: overrides the rate read from the timecodes; "
                                        "reconstructions and --blendshapes: default 30."),
    name: str = typer.Option("performance", help="Name of the glTF animation."),
) -> None:
    """Add a glTF animation of the morph target weights (LINEAR keys at the recording's frame times) to a rigged GLB."""
    from ..errors import ConfigError
    from ..export.animation import (add_weight_animation, glb_target_names, read_arkit_csv, read_blendshape_json,
                                    read_reconstruction_sequence, retarget)

    if sum(x is not None for x in (arkit_csv, from_reconstructions, blendshapes)) != 1:
        raise ConfigError("give exactly one of --arkit-csv, --from-reconstructions or --blendshapes")
    if fps is not None and fps <= 0:
        raise ConfigError(f"--fps must be positive, got {fps}")
    targets = glb_target_names(glb)
    if arkit_csv is not None:
        track = read_arkit_csv(arkit_csv, fps)
    elif blendshapes is not None:
        track = read_blendshape_json(blendshapes, fps or 30.0)
    else:
        track = read_reconstruction_sequence(from_reconstructions, fps or 30.0)
    rt = retarget(track, targets)
    if not rt.mapping:
        raise ConfigError(f"{track.source}: none of its curves matches a morph target of {glb}")
    info = add_weight_animation(glb, out, track.times_s, rt.weights, name)
    for note in track.notes:
        console.print(f"note: {note}", markup=False)
    if rt.unused:
        console.print(f"curves without a target (ignored): {', '.join(rt.unused)}", markup=False)
    console.print(f"{track.n_frames} frames at {track.fps:g} fps ({info['duration_s']:.2f} s), {len(rt.mapping)} curves -> "
                  f"{sum(len(v) for v in rt.mapping.values())} of {len(targets)} targets; wrote {out} ({info['bytes']} bytes)",
                  markup=False)


def register(app: typer.Typer) -> None:
    app.command("animate")(animate_cmd)
