"""``facerecon track``: head pose, expression and one identity over a depth sequence."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._console import stderr_console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

console = stderr_console()


def _parse_sets(items: list[str]) -> dict:
    from ._options import sets

    return sets(items, "configs/track.toml", "track config")


def track_cmd(
    sequence: Path = typer.Argument(..., help="A folder of depth frames (any supported format; ordered by the timestamps "
                                    "the format carries, else by name), a Biwi sequence folder, or a stacked .npz."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder: track.csv, track.json, identity.obj/.ply/.glb "
                             "(+ identity_model.obj), pose_over_time.png."),
    camera: Optional[str] = typer.Option(None, help="Camera preset when the frames have no intrinsics."),
    intrinsics: Optional[str] = typer.Option(None, help="fx,fy,cx,cy in pixels (overrides the frames')."),
    unit: Optional[str] = typer.Option(None, help="Depth unit for npy/npz/png files (mm | m)."),
    fps: float = typer.Option(30.0, help="Frame rate for frames without timestamps."),
    refine: bool = typer.Option(True, "--refine/--no-refine", help="Per-frame refinement from the previous solution (rigid + "
                                "expression). --no-refine: networks + warm start + filter only (faster, less accurate)."),
    config: str = typer.Option("fast", help="Network configuration."),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="Write pose_over_time.png."),
    detail: str = typer.Option("on", "--detail", metavar="on|off", help="on: identity.* carry the person's surface (the fused identity's model "
                               "face plus the out-of-span correction solved once against the head surface fused over the "
                               "frames; the model face alone in identity_model.obj); off: the model face. The pose is the same."),
    rig: str = typer.Option("arkit52", help="identity.glb's morph targets: arkit52 (ARKit's 52) | ict (ICT-FaceKit's 55)."),
    set_: list[str] = typer.Option([], "--set", help="Tracker setting section.key=value (configs/track.toml), repeatable, "
                                   "e.g. --set warm_start.check_every=15."),
) -> None:
    """Track the head through a depth sequence: warm-started crops, refinement from the previous
    frame, one fused identity, One-Euro filtered pose (raw pose kept), loss and recovery."""
    import time

    from . import _options

    # the options first: a usage error (exit 2) comes before any model loads
    _options.camera(camera, intrinsics)
    unit = _options.unit(unit)
    with_detail = _options.detail(detail)
    rig = _options.rig(rig)
    if fps <= 0:
        from ..errors import UsageError

        raise UsageError(f"--fps must be positive, got {fps:g}")
    overrides = _parse_sets(set_)
    if not sequence.exists():
        from ..errors import InputFileError

        raise InputFileError(sequence, "no such file or folder")

    from ..tracking import DepthSequence, Tracker, open_sequence
    from ..export.track import write_track_outputs
    from ._frames import PIPELINE_AHEAD, InterruptReport, read_ahead

    overrides.setdefault("refine", {})["enabled"] = refine
    if camera or intrinsics:
        from ..geometry.camera import camera_preset, parse_intrinsics

        def prepare(frame):
            if camera:
                k = camera_preset(camera)
                k = k if (k.width, k.height) == (frame.width, frame.height) else k.resize(frame.width, frame.height)
            else:
                k = parse_intrinsics(intrinsics, frame.width, frame.height)
            return frame.with_intrinsics(k)
    else:
        prepare = None
    frames = open_sequence(sequence, fps=fps, unit=unit, prepare=prepare)
    # the next frames read (and parsed) on a reader thread while the tracker runs
    seq = DepthSequence(lambda: read_ahead(iter(frames), PIPELINE_AHEAD), frames.name, frames.length)
    tracker = Tracker.from_pretrained(config, overrides)
    tracks = []
    t0 = time.perf_counter()
    interrupted = InterruptReport(console, seq.length, after="nothing written (track writes its files when the sequence ends)")
    with interrupted, Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                               console=console, disable=(seq.length or 0) < 2) as bar:
        task = interrupted.watch(bar, bar.add_task("tracking", total=seq.length))
        for item, tr in tracker.run(seq):
            tracks.append(tr)
            if not tr.tracked:
                console.print(f"{item.name}: {tr.message or 'lost'}", style="yellow", markup=False, soft_wrap=True)
            bar.advance(task)
    seconds = time.perf_counter() - t0
    paths = write_track_outputs(out, tracks, tracker, sequence=str(sequence), seconds=seconds, plot=plot,
                                detail=None if with_detail else False, rig=rig)  # on: as [fused_face] correct says
    n_ok = sum(t.tracked for t in tracks)
    console.print(f"{n_ok} of {len(tracks)} frames tracked ({sum(t.recovered for t in tracks)} recoveries), "
                  f"{len(tracks) / max(seconds, 1e-9):.1f} frames/s; identity {'frozen' if tracker.identity_frozen else 'not frozen'} "
                  f"-> {', '.join(str(p) for p in paths.values())}")
    if n_ok == 0:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("track")(track_cmd)
