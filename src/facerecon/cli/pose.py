"""``facerecon pose``: head pose per depth frame (JSON, optional overlay)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)


def pose_cmd(
    frames: list[Path] = typer.Argument(..., help="Depth frames or folders (PCD, TrueDepth PLY, Biwi .bin, 16-bit PNG, npy/npz)."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Folder for <frame>.pose.json (default: print only)."),
    camera: Optional[str] = typer.Option(None, help="Camera preset (kinect-v1, kinect-v1-biwi, kinect-v2, realsense-d435, truedepth-320x240)."),
    intrinsics: Optional[str] = typer.Option(None, help="fx,fy,cx,cy in pixels (overrides the file's)."),
    overlay: Optional[Path] = typer.Option(None, help="PNG with the head axes on the depth image (a folder when several frames)."),
    config: str = typer.Option("fast", help="Network configuration (fast | paper, where weights exist)."),
    unit: Optional[str] = typer.Option(None, help="Depth unit for npy/npz/png files (mm | m)."),
    refine: int = typer.Option(0, help="Rigid ICP iterations of the reconstructed face onto the depth points after the networks "
                               "(0 = pose network only). Slower (~12 ms each on 2 cores) and much more accurate on real frames: see docs/benchmarks.md."),
) -> None:
    """Estimate the head pose (quaternion, rotation, translation in mm, Euler angles) in each frame."""
    import json

    from ..errors import FaceReconError
    from ..export import save_pose_overlay, write_json
    from ..pipeline import PoseEstimator, Reconstructor
    from ._frames import expand_inputs, frame_stem, iterate_frames

    paths = expand_inputs(frames)
    if refine > 0:  # the pose of the reconstructed face, rigidly fitted to the frame's points
        rec = Reconstructor.from_pretrained(config)

        def estimate(f):
            r = rec.reconstruct(f, refine=refine)
            r.pose_result.timings_ms.update({k: v for k, v in r.timings_ms.items() if k != "total"})
            return r.pose_result
    else:
        estimate = PoseEstimator.from_pretrained(config).estimate
    table = Table("frame", "yaw", "pitch", "roll", "t (mm)", "conf", "ms")
    used: set[str] = set()
    failures = 0
    for path, frame, error in iterate_frames(paths, camera, intrinsics, unit):
        if error is None:
            try:
                res = estimate(frame)
            except FaceReconError as exc:
                error = exc.one_line()
        if error is not None:
            failures += 1
            console.print(f"{path}: {error}", style="red", markup=False, soft_wrap=True)
            continue
        data = {"frame": str(path), **res.to_json(), "refine_iterations": refine}
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
        table.add_row(path.name, f"{y:.1f}", f"{p:.1f}", f"{r:.1f}", f"{t[0]:.0f} {t[1]:.0f} {t[2]:.0f}", f"{res.confidence:.2f}",
                      f"{sum(res.timings_ms.values()):.1f}")
    console.print(table)
    if failures:
        console.print(f"{failures} of {len(paths)} frames failed")
        raise typer.Exit(1 if failures == len(paths) else 0)


def register(app: typer.Typer) -> None:
    app.command("pose")(pose_cmd)
