"""``facerecon reconstruct``: depth frame(s) -> posed metric 3D face mesh + pose + landmarks + overlay."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

console = Console(stderr=True)


def reconstruct_cmd(
    frames: list[Path] = typer.Argument(..., help="Depth frames or folders of frames."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder: one sub-folder per frame."),
    camera: Optional[str] = typer.Option(None, help="Camera preset when the file has no intrinsics."),
    intrinsics: Optional[str] = typer.Option(None, help="fx,fy,cx,cy in pixels (overrides the file's)."),
    formats: str = typer.Option("obj,ply", "--format", help="Mesh formats, comma-separated: obj, ply, glb."),
    overlay: bool = typer.Option(True, "--overlay/--no-overlay", help="Write overlay.png (mesh over depth, residual map)."),
    method: str = typer.Option("network", help="network (DAPoseNet + DAShapeNet, ~30 ms) | fit (the classical baseline: "
                               "ICT model fitting by ICP + Gauss-Newton from the head localisation, ~1 s, no network)."),
    config: str = typer.Option("fast", help="Network configuration."),
    refine: int = typer.Option(0, help="Rigid ICP iterations of the predicted face onto the depth points after the networks (0 = networks only; ~12 ms each on 2 cores)."),
    refine_shape: int = typer.Option(0, help="After --refine: Gauss-Newton iterations of pose + identity + expression on the depth points "
                                     "(the fitting baseline's joint stage started from the networks; ~20-40 ms each). 12 is a good value."),
    unit: Optional[str] = typer.Option(None, help="Depth unit for npy/npz/png files (mm | m)."),
) -> None:
    """Reconstruct the face in each frame: face.obj/.ply (camera frame, ICT UVs), face_head.*, pose.json, landmarks.json, overlay.png."""
    from ..errors import ConfigError, FaceReconError
    from ..export import MESH_FORMATS, landmarks_json, save_overlay, write_face_meshes, write_json
    from ..pipeline import FittingReconstructor, Reconstructor
    from ._frames import expand_inputs, frame_stem, iterate_frames

    fmts = tuple(f.strip().lower() for f in formats.split(",") if f.strip())
    bad = [f for f in fmts if f not in MESH_FORMATS]
    if bad:
        raise ConfigError(f"--format: unknown {', '.join(bad)}; choose from {', '.join(MESH_FORMATS)}")
    if method not in ("network", "fit"):
        raise ConfigError(f"--method: unknown {method!r}; choose network or fit")
    paths = expand_inputs(frames)
    rec_engine = Reconstructor.from_pretrained(config) if method == "network" else FittingReconstructor()
    used: set[str] = set()
    failures: list[str] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console,
                  disable=len(paths) < 2) as bar:
        task = bar.add_task("reconstructing", total=len(paths))
        for path, frame, error in iterate_frames(paths, camera, intrinsics, unit):
            if error is None:
                try:
                    rec = rec_engine.reconstruct(frame, refine=refine, refine_shape=refine_shape)
                    d = out / frame_stem(path, used)
                    write_face_meshes(rec, rec_engine.model, d, fmts, intrinsics=frame.intrinsics)
                    pose = {"frame": str(path), "method": method, **rec.pose_result.to_json(), "timings_ms": rec.timings_ms}
                    # ICT expression weights by name: `facerecon animate --from-reconstructions` reads them
                    pose["expression"] = {n: round(float(w), 6) for n, w in zip(rec_engine.model.expression_names, rec.expression)}
                    if overlay:
                        pose["overlay"] = save_overlay(rec, rec_engine.model, frame, d / "overlay.png")
                    write_json(d / "pose.json", pose)
                    write_json(d / "landmarks.json", landmarks_json(rec))
                    console.print(f"{path.name}: yaw {rec.pose.euler_deg[0]:.1f} pitch {rec.pose.euler_deg[1]:.1f} "
                                  f"roll {rec.pose.euler_deg[2]:.1f}  conf {rec.confidence:.2f}  {rec.timings_ms['total']:.1f} ms -> {d}")
                except FaceReconError as exc:
                    error = exc.one_line()
            if error is not None:
                failures.append(f"{path}: {error}")
                console.print(f"{path}: {error}", style="red", markup=False, soft_wrap=True)
            bar.advance(task)
    if failures:
        console.print(f"{len(failures)} of {len(paths)} frames failed")
        raise typer.Exit(1 if len(failures) == len(paths) else 0)


def register(app: typer.Typer) -> None:
    app.command("reconstruct")(reconstruct_cmd)
