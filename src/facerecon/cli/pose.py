"""``facerecon pose``: head pose per depth frame (JSON, optional overlay)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._console import stderr_console
from rich.table import Table

console = stderr_console()


def pose_cmd(
    frames: list[Path] = typer.Argument(..., help="Depth frames or folders (PCD, TrueDepth PLY, Biwi .bin, 16-bit PNG, npy/npz); "
                                   "photos: facerecon reconstruct."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Folder for <frame>.pose.json (default: print only)."),
    camera: Optional[str] = typer.Option(None, help="Camera preset (kinect-v1, kinect-v1-biwi, kinect-v2, realsense-d435, truedepth-320x240)."),
    intrinsics: Optional[str] = typer.Option(None, help="fx,fy,cx,cy in pixels (overrides the file's)."),
    overlay: Optional[Path] = typer.Option(None, help="PNG with the head axes on the depth image (a folder when several frames)."),
    config: str = typer.Option("fast", help="Network configuration (fast | paper, where weights exist)."),
    unit: Optional[str] = typer.Option(None, help="Depth unit for npy/npz/png files (mm | m)."),
    refine: Optional[int] = typer.Option(None, help="Rigid point-to-plane iterations of the reconstructed face onto the depth points after "
                                         "the networks, with the robust check and its fallback (default: configs/check.toml, 6; "
                                         "~5 ms). See docs/confidence.md."),
    no_refine: bool = typer.Option(False, "--no-refine", help="The bare networks' pose (checked and scored, never changed)."),
    all_faces: bool = typer.Option(False, "--all-faces", help="Every head in the frame (each other head-like region through the "
                                   "same networks and check): JSON field all_faces. Without it, other head-like regions are counted."),
    set_: list[str] = typer.Option([], "--set", help="A setting of the depth pipeline's stages, section.key=value (configs/check.toml: "
                                   "check, refine, fallback, search, shape, confidence, decision), repeatable, e.g. --set refine.iterations=3."),
) -> None:
    """Estimate the head pose (quaternion, rotation, translation in mm, Euler angles) in each frame.

    Each result says whether it is a face (JSON "face", "reason", "confidence"; see
    docs/confidence.md). Exit code (docs/reliability.md): 0 when every frame gave a face, 1 when
    no frame could be read or located, 2 for an option the command cannot take (said before any
    model loads), 3 when frames were read but none was a face, 4 when
    some frames gave a face and others failed or had none (those are listed on stderr)."""
    import json

    from . import _options

    # the options first: a usage error (exit 2) comes before any model loads
    _options.camera(camera, intrinsics)
    unit = _options.unit(unit)
    overrides = _options.sets(set_, "configs/check.toml", "check config")

    from ..export import save_pose_overlay, write_json
    from ..export.pose_json import depth_document
    from ._frames import (PIPELINE_AHEAD, RECONSTRUCT_HINT, Lazy, expand_inputs, failure_text, finish_batch, frame_stem, is_photo_path,
                          iterate_frames, raise_if_interrupt, read_ahead)

    paths = expand_inputs(frames, photos=False)
    def make_predictor():
        from ..pipeline.reconstruct import PosePredictor

        return PosePredictor(config, 0 if no_refine else refine, search_others=True, check=overrides)

    predictor = Lazy(make_predictor)  # loaded by the first frame that reads: unreadable inputs are said at once
    table = Table("frame", "face", "yaw", "pitch", "roll", "t (mm)", "conf", "ms")
    used: set[str] = set()
    failures = no_face = 0
    for path, frame, error in read_ahead(iterate_frames(paths, camera, intrinsics, unit), PIPELINE_AHEAD):  # the next frames read meanwhile
        if error is None:
            try:
                res = predictor()(frame)
                others = predictor().all_faces(frame)[1:] if all_faces and res.face else []
            except Exception as exc:  # one frame's failure never stops the batch
                raise_if_interrupt(exc)
                error = failure_text(path, exc)
        elif is_photo_path(path):
            error = f"a photo, not a depth frame: {RECONSTRUCT_HINT}"
        if error is not None:
            failures += 1
            console.print(f"{path}: {error}", style="red", markup=False, soft_wrap=True)
            continue
        data = depth_document(res, str(path), "pose", all_faces=[depth_document(r, str(path), "pose") for r in others] if all_faces else None)
        if not res.face:
            no_face += 1
            console.print(f"{path}: {res.reason}", style="red", markup=False, soft_wrap=True)
        name = frame_stem(path, used)
        if out:
            write_json(out / f"{name}.pose.json", data)
        else:
            typer.echo(json.dumps(data))
        if overlay:
            target = overlay if len(paths) == 1 and overlay.suffix == ".png" else overlay / f"{name}.pose.png"
            save_pose_overlay(frame, res.pose, res.location.box, target)
        y, p, r = res.pose.euler_deg
        t = res.pose.t_mm
        table.add_row(path.name, "yes" if res.face else "no", f"{y:.1f}", f"{p:.1f}", f"{r:.1f}", f"{t[0]:.0f} {t[1]:.0f} {t[2]:.0f}",
                      f"{res.confidence:.2f}", f"{res.timings_ms.get('total', sum(res.timings_ms.values())):.1f}")
    if table.row_count:  # no table of nothing: a batch where every frame failed has its lines and the summary
        console.print(table)
    finish_batch(console, len(paths), failures, no_face)


def register(app: typer.Typer) -> None:
    app.command("pose")(pose_cmd)
