"""``facerecon reconstruct``: depth frame(s) -> posed metric 3D face mesh + pose + landmarks + overlay."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import _options
from ._console import stderr_console

console = stderr_console()


def reconstruct_cmd(
    frames: list[Path] = typer.Argument(..., help="Depth frames, photos (8-bit colour images: JPEG, PNG, ...) or folders of them."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder: one sub-folder per frame."),
    camera: Optional[str] = typer.Option(None, help="Camera preset when the file has no intrinsics."),
    intrinsics: Optional[str] = typer.Option(None, help="fx,fy,cx,cy in pixels (overrides the file's; photos: the whole "
                                             "camera instead of --focal / EXIF / the default field of view)."),
    formats: str = typer.Option(_options.DEFAULT_FORMATS, "--format", help="Mesh formats, comma-separated: obj, ply, glb "
                                "(glb: the rig, ARKit's 52 morph targets by default (--rig), that facerecon view and animate take)."),
    outputs: str = typer.Option("default", "--outputs", help="What each frame's folder holds: minimal (face.glb, else the "
                                "first --format, and pose.json) | default (the camera-frame meshes, pose.json, landmarks.json, "
                                "overlay.png, the detail maps face_displacement.png / face_normal.png) | all (default + the head-frame meshes face_head.*, which eval shape reads)."),
    rig: str = typer.Option("arkit52", help="GLB morph targets: arkit52 (ARKit's 52 blendshape names and order, what ARKit / "
                            "MediaPipe drivers set) | ict (ICT-FaceKit's 55: browInnerUp and cheekPuff split left/right, "
                            "pupils). docs/animation.md."),
    overlay: bool = typer.Option(True, "--overlay/--no-overlay", help="Write overlay.png (mesh over depth, residual map)."),
    method: str = typer.Option("network", help="network (DAPoseNet + DAShapeNet, ~30 ms) | fit (the classical baseline: "
                               "ICT model fitting by ICP + Gauss-Newton from the head localisation, ~1 s, no network) | photo "
                               "(every input is a photo: MTCNN + Face Mesh landmarks + ICT fit + UV texture; photos are "
                               "recognised without it) | rgbd (depth frames with registered colour, e.g. TrueDepth PLY: the "
                               "photo fit on the colour, then rigid ICP onto the depth; docs/photo.md) | photo-depth (every input is a "
                               "photo: its metric monocular depth through the networks + refine, with depth.png, cloud.ply and "
                               "surface.ply beside the mesh; docs/photo_depth.md)."),
    config: str = typer.Option("fast", help="Network configuration."),
    refine: Optional[int] = typer.Option(None, help="Rigid point-to-plane iterations of the predicted face onto the depth points after the "
                                         "networks, with the robust check and its fallback (default: configs/check.toml, 6; ~5 ms). "
                                         "See docs/confidence.md."),
    no_refine: bool = typer.Option(False, "--no-refine", help="The bare networks' pose (checked and scored, never changed)."),
    refine_shape: Optional[int] = typer.Option(None, help="After --refine: Gauss-Newton iterations of pose + identity on the depth points "
                                               "(the fitting baseline's joint stage started from the networks; default: configs/check.toml "
                                               "[shape], 6; 0: off; --no-refine: off)."),
    unit: Optional[str] = typer.Option(None, help="Depth unit for npy/npz/png files (mm | m)."),
    focal: Optional[float] = typer.Option(None, help="Photos: focal length in pixels (default: EXIF, else a 60 degree field of "
                                          "view across the longer side; docs/photo.md)."),
    all_faces: bool = typer.Option(False, "--all-faces", help="Photos: every face, in face_0/, face_1/, ... (largest first); "
                                   "default: the largest face only."),
    same_person: bool = typer.Option(False, "--same-person", help="Photos: all show one person: one identity fitted to all "
                                     "of them, a pose and expression per photo, one texture merged from every view; each "
                                     "photo's folder as usual plus person/ (the neutral face, head frame, and person.json). "
                                     "docs/photo.md."),
    detail: str = typer.Option("on", "--detail", metavar="on|off", help="on: face.* carry the person's surface (the model fit plus the out-of-span "
                               "correction solved against the depth; the model fit alone in face_model.*; pose.json 'detail' says "
                               "'off: <reason>' where a frame's residual made it refuse) and, with --outputs default or all, the detail "
                               "maps face_displacement.png (16-bit) and face_normal.png (also the GLB's normal texture; pose.json "
                               "depth.detail_map: the encoding, or why a frame wrote none); off: the model fit only, no maps (the pose is the same). "
                               "Depth frames with --method network."),
    set_: list[str] = typer.Option([], "--set", help="A setting of the depth pipeline's stages, section.key=value (configs/check.toml: "
                                   "check, refine, fallback, search, shape, confidence, decision), repeatable, e.g. --set refine.iterations=3."),
) -> None:
    """Reconstruct the face in each frame: face.obj and face.glb (camera frame, ICT UVs; the GLB is the rig),
    pose.json, landmarks.json, overlay.png (--outputs, --format: more or less).

    A frame judged "no face" (pose.json "face": false and a "reason"; docs/confidence.md) gets
    only its pose.json. Each frame's folder is written under a temporary name and renamed into
    place when complete (an existing one is replaced). Exit code (docs/reliability.md): 0 when
    every frame gave a face, 1 when no frame could be read or located, 2 for an option the command
    cannot take (said before any model loads), 3 when frames were read but none was a face, 4 when
    some frames gave a face and others failed or had none."""
    # the options first: a usage error (exit 2) comes before any model loads
    from ..export.rig import use_rig

    plan = _options.OutputPlan(outputs, _options.formats(formats), overlay, _options.rig(rig))
    _options.method(method)
    _options.camera(camera, intrinsics)
    from ._photo import check_photo_camera

    check_photo_camera(focal, intrinsics, method, same_person, all_faces)
    unit = _options.unit(unit)
    with_detail = _options.detail(detail)
    overrides = _options.sets(set_, "configs/check.toml", "check config")

    from ..export import landmarks_json, save_overlay, write_face_meshes, write_json
    from ..export.maps import detail_maps
    from ..export.pose_json import depth_document
    from ..fileutil import atomic_dir
    from ._frames import PIPELINE_AHEAD, PIPELINE_WRITERS, Lazy, Outcome, expand_inputs, finish_batch, frame_stem, iterate_frames, run_batch

    if method == "photo-depth":
        from .photo_depth import reconstruct_photo_depth

        with use_rig(plan.rig):  # its GLBs take the rig from here
            return reconstruct_photo_depth(frames, out, config, 0 if no_refine else refine, refine_shape, focal, plan)
    from ._photo import reconstruct_photos, reconstruct_rgbd, split_photo_inputs

    photos, paths = split_photo_inputs(frames, expand_inputs(frames), method)
    rgbd, paths = (paths, []) if method == "rgbd" else ([], paths)
    if not (paths or photos or rgbd):  # folders only, none with an input (expand_inputs names them)
        from ..errors import InputFileError
        from ._frames import DEPTH_TYPES, PHOTO_TYPES

        raise InputFileError(frames[0], f"no {DEPTH_TYPES} and no {PHOTO_TYPES} to read")

    def make_engine():
        from ..pipeline import FittingReconstructor, Reconstructor

        return Reconstructor.from_pretrained(config, search_others=True, check=overrides) if method == "network" else FittingReconstructor(check=overrides)

    engine = Lazy(make_engine)  # loaded by the first frame that reads: unreadable inputs are said at once
    n_iter = 0 if no_refine else refine
    used: set[str] = set()

    def handle(path: Path, frame):
        """The frame pipeline here; its outputs written by the job returned (on the writer thread)."""
        rec_engine = engine()
        rec = rec_engine.reconstruct(frame, refine=n_iter, refine_shape=refine_shape, detail=with_detail)
        d = out / frame_stem(path, used)  # named here: in input order, whatever the writer does
        return lambda: write(path, frame, rec, rec_engine.model, d)

    def write(path: Path, frame, rec, model, d: Path) -> Outcome:
        if not rec.face:  # refused: the reason and the numbers behind it, no mesh
            with atomic_dir(d) as tmp:  # replaces any earlier folder of this frame (old meshes)
                write_json(tmp / "pose.json", depth_document(rec, str(path), method))
            return Outcome(refused=f"{path}: {rec.reason}")
        # the detail maps here, on the writer thread: ~30 ms a frame that the frame pipeline does not wait for (docs/detail.md)
        maps = detail_maps(rec, model, frame) if plan.maps and rec.detail == "on" and frame.intrinsics is not None else None
        with atomic_dir(d) as tmp:  # complete or absent: never a half-filled frame folder
            write_face_meshes(rec, model, tmp, plan.formats, intrinsics=frame.intrinsics, head_frame=plan.head_frame,
                              rig=plan.rig, model_surface=plan.model_surface, maps=maps)
            # with the ICT expression weights by name: `facerecon animate --from-reconstructions` reads them
            pose = depth_document(rec, str(path), method, model, detail_map=maps)
            if plan.overlay:
                pose["overlay"] = save_overlay(rec, model, frame, tmp / "overlay.png")
            write_json(tmp / "pose.json", pose)
            if plan.landmarks:
                write_json(tmp / "landmarks.json", landmarks_json(rec))
        return Outcome(line=f"{path.name}: yaw {rec.pose.euler_deg[0]:.1f} pitch {rec.pose.euler_deg[1]:.1f} "
                            f"roll {rec.pose.euler_deg[2]:.1f}  conf {rec.confidence:.2f}  {rec.timings_ms['total']:.1f} ms -> {d}")

    # pipelined: the next frames read on a reader thread, the outputs written on a writer thread,
    # while the pipeline runs here (docs/speed.md; the same files and lines as one after the other)
    failures, no_face = run_batch(console, "reconstructing", iterate_frames(paths, camera, intrinsics, unit), len(paths), handle,
                                  no_face_errors=False, ahead=PIPELINE_AHEAD, writers=PIPELINE_WRITERS)
    if photos:
        if same_person:
            from ._photo import reconstruct_same_person

            photo_failures, photo_no_face = reconstruct_same_person(photos, out, plan, focal, intrinsics, used, console)
        else:
            photo_failures, photo_no_face = reconstruct_photos(photos, out, plan, focal, all_faces, used, console, intrinsics)
        failures += photo_failures
        no_face += photo_no_face
    if rgbd:
        rgbd_failures, rgbd_no_face = reconstruct_rgbd(rgbd, out, plan, camera, intrinsics, unit, used, console)
        failures += rgbd_failures
        no_face += rgbd_no_face
    finish_batch(console, len(paths) + len(photos) + len(rgbd), len(failures), no_face)


def register(app: typer.Typer) -> None:
    app.command("reconstruct")(reconstruct_cmd)
