"""``facerecon reconstruct`` on photos: which inputs are photos, and the per-photo output folders.

Same layout as the depth path: ``<out>/<stem>/`` with face.obj/.ply/.glb (camera frame; face_head.*
with ``--outputs all``), pose.json, landmarks.json and overlay.png, plus the UV texture face.png +
face.mtl (with OBJ); with ``--all-faces`` one ``face_<i>/`` sub-folder per face, largest first.
``--method photo`` on an RGB-D frame (TrueDepth PLY) uses its colour image and its intrinsics;
``--method rgbd`` adds its depth.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from rich.console import Console

from ._frames import MAYBE_PHOTO_SUFFIXES, PHOTO_SUFFIXES  # noqa: F401 - re-exported


@lru_cache(maxsize=1)
def _engine():
    """One PhotoReconstructor per process (models and caches load once; tests call the CLI often)."""
    from ..pipeline.photo import PhotoReconstructor

    return PhotoReconstructor.from_pretrained()


def read_photo_input(path: Path):
    """(Photo, calibrated intrinsics or None): an image file, or the colour image of an RGB-D
    frame (TrueDepth PLY) with the frame's own intrinsics."""
    from ..errors import InputFileError
    from ..photo.image import Photo, read_photo

    if path.suffix.lower() == ".ply":
        from ..io.truedepth import read_truedepth_frame

        frame = read_truedepth_frame(path)
        if frame.color is None:
            raise InputFileError(path, "this PLY frame has no colour image to use as a photo")
        return Photo(frame.color, str(path), None), frame.intrinsics
    return read_photo(path), None


def split_photo_inputs(inputs: list[Path], depth_paths: list[Path], method: str) -> tuple[list[Path], list[Path]]:
    """(photos, depth frames) among the inputs: photo files named directly or found in the
    given folders, and 8-bit PNG/TIFF images among the depth candidates; with
    ``--method photo`` every input is a photo (a 16-bit depth image then gets a one-line error)."""
    def is_photo_file(path: Path) -> bool:  # photo.image imported only for a PNG / TIFF to look into (~5 ms)
        from ..photo.image import is_photo_file as read_header

        return read_header(path)

    photos: list[Path] = []
    for p in inputs:
        if p.is_dir():
            photos += sorted(q for q in p.iterdir() if q.is_file() and not q.name.startswith(".")
                             and q.suffix.lower() in PHOTO_SUFFIXES)
    depth: list[Path] = []
    for p in depth_paths:
        suffix = p.suffix.lower()
        if method == "photo" or suffix in PHOTO_SUFFIXES or (
                suffix in MAYBE_PHOTO_SUFFIXES and is_photo_file(p)):
            if p not in photos:
                photos.append(p)
        else:
            depth.append(p)
    return photos, depth


def write_photo_result(rec, model, rgb, d: Path, plan, method: str = "photo") -> None:
    """The per-face folder ``d`` (the caller makes it atomic): meshes (+ texture), pose.json, landmarks.json,
    overlay.png, as ``plan`` (a ``_options.OutputPlan``: ``--outputs``, ``--format``, ``--overlay``) says."""
    from ..export import landmarks_json, write_face_meshes, write_json
    from ..export.pose_json import photo_document
    from ..photo.overlay import save_photo_overlay

    tex = None if rec.texture is None else rec.texture.image
    k, evidence = rec.camera.intrinsics, rec.photo
    write_face_meshes(rec, model, d, plan.formats, texture=tex, intrinsics=k, head_frame=plan.head_frame, rig=plan.rig)
    pose = photo_document(rec, model, method)
    if plan.overlay:
        save_photo_overlay(d / "overlay.png", rgb, model, rec.vertices_camera, k, rec.landmarks_2d, evidence.detected_68, evidence.face_box)
        pose["overlay"] = "overlay.png"
    write_json(d / "pose.json", pose)
    if not plan.landmarks:
        return
    lm = landmarks_json(rec)
    if evidence.detected_68 is not None:
        lm["detected_2d_px"] = [[round(float(x), 2), round(float(y), 2)] for x, y in evidence.detected_68]
    write_json(d / "landmarks.json", lm)


def _report(rec, console: Console, name: str, d: Path) -> None:
    y, p, r = rec.pose.euler_deg
    fit = rec.photo.fit
    # the distance is a measurement only with a known focal length (and even then it scales with the head-size prior)
    dist = f"  distance {float(np.linalg.norm(rec.pose.t_mm)):.0f} mm" if rec.camera.focal_known else ""
    console.print(f"{name}: face {rec.photo.face_index}: yaw {y:.1f} pitch {p:.1f} roll {r:.1f}{dist}  fit {fit.rms_px:.1f} px rms, "
                  f"{fit.iterations} it  {rec.timings_ms['total']:.0f} ms -> {d}", markup=False, soft_wrap=True)


def check_photo_camera(focal: float | None, intrinsics: str | None, method: str, same_person: bool = False,
                       all_faces: bool = False) -> None:
    """Usage errors of the photo options, before any model loads: ``--focal`` and
    ``--intrinsics`` exclude each other, ``--method photo-depth`` takes only ``--focal``,
    ``--same-person`` takes the largest face of photos (not ``--all-faces``, not ``rgbd`` /
    ``photo-depth``): an option is used or refused, never ignored."""
    from ..errors import UsageError

    if same_person and all_faces:
        raise UsageError("--same-person fits the largest face of each photo; it does not take --all-faces")
    if same_person and method not in ("network", "photo"):
        raise UsageError(f"--same-person works on photos (--method photo), not --method {method}")

    if intrinsics and focal is not None:
        raise UsageError("give either --focal or --intrinsics for a photo, not both")
    if intrinsics and method == "photo-depth":
        raise UsageError("--method photo-depth takes the photo's focal length from --focal (or EXIF), not --intrinsics")


def reconstruct_photos(photos: list[Path], out: Path, plan, focal: float | None,
                       all_faces: bool, used: set[str], console: Console, intrinsics: str | None = None) -> tuple[list[str], int]:
    """Reconstruct every photo; returns (one-line failures, number of photos without a face).
    ``intrinsics``: ``--intrinsics fx,fy,cx,cy`` for every photo (pixels of each photo as read).
    The models load with the first photo that reads (a missing file is said at once)."""
    from ..fileutil import atomic_dir
    from ..geometry.camera import parse_intrinsics
    from ._frames import frame_stem, run_batch

    def handle(path: Path, _) -> None:
        photo, calibrated = read_photo_input(path)
        engine = _engine()
        model = engine.model
        if intrinsics:
            k, source = parse_intrinsics(intrinsics, photo.width, photo.height), "--intrinsics"
        else:
            k, source = (None if focal is not None else calibrated), "calibrated"
        recs = engine.reconstruct(photo, focal_px=focal, all_faces=all_faces, intrinsics=k, intrinsics_source=source)
        recs = recs if all_faces else [recs]
        stem = out / frame_stem(path, used)
        with atomic_dir(stem) as tmp:  # complete or absent, as the depth path's frame folders
            for rec in recs:
                write_photo_result(rec, model, photo.rgb, tmp / f"face_{rec.photo.face_index}" if all_faces else tmp, plan)
        for rec in recs:
            _report(rec, console, path.name, stem / f"face_{rec.photo.face_index}" if all_faces else stem)

    return run_batch(console, "photos", ((p, None, None) for p in photos), len(photos), handle)


def reconstruct_rgbd(paths: list[Path], out: Path, plan, camera: str | None,
                     intrinsics: str | None, unit: str | None, used: set[str], console: Console) -> tuple[list[str], int]:
    """``--method rgbd``: depth frames with registered colour (TrueDepth PLY): the photo fit on
    the colour, then the face moved onto the depth by rigid ICP.  Returns (failures, no-face count)."""
    from ..fileutil import atomic_dir
    from ._frames import frame_stem, iterate_frames, run_batch

    def handle(path: Path, frame) -> None:
        engine = _engine()
        rec = engine.reconstruct_rgbd(frame)
        d = out / frame_stem(path, used)
        with atomic_dir(d) as tmp:
            write_photo_result(rec, engine.model, frame.color, tmp, plan, method="rgbd")
        _report(rec, console, path.name, d)

    return run_batch(console, "rgbd frames", iterate_frames(paths, camera, intrinsics, unit), len(paths), handle)


PERSON_DIR = "person"


def reconstruct_same_person(photos: list[Path], out: Path, plan, focal: float | None, intrinsics: str | None,
                            used: set[str], console: Console) -> tuple[list[str], int]:
    """``--same-person``: every photo is the same person.  One identity for all (the joint fit),
    a pose and expression per photo, one texture merged from every view.  Writes each photo's
    folder as without the option (its mesh with the shared identity and the merged texture) and
    ``<out>/person/`` (``person_2``, ... if taken): the shared identity's neutral face in the head
    frame (the meshes of ``--format``, ``face.png``) and ``person.json`` (the identity weights, the
    photos used, each photo's fit before and after).  Returns (failures, photos without a face)."""
    from ..errors import FaceReconError, NoFaceFoundError
    from ..export import write_face_meshes, write_json
    from ..fileutil import atomic_dir
    from ..geometry.camera import parse_intrinsics
    from ._frames import failure_text, frame_stem

    failures: list[str] = []
    read, paths, calibrated = [], [], []
    for path in photos:
        try:
            photo, k = read_photo_input(path)
        except FaceReconError as exc:
            failures.append(f"{path}: {failure_text(path, exc)}")
            console.print(failures[-1], style="red", markup=False, soft_wrap=True)
            continue
        read.append(photo)
        paths.append(path)
        calibrated.append(k)
    if not read:
        return failures, 0
    engine = _engine()
    k = parse_intrinsics(intrinsics, read[0].width, read[0].height) if intrinsics else None
    if k is not None and any((p.width, p.height) != (read[0].width, read[0].height) for p in read):
        raise FaceReconError("--same-person --intrinsics: the photos differ in size; one fx,fy,cx,cy cannot hold for all")
    try:
        sp = engine.reconstruct_same_person(read, focal_px=focal, intrinsics=k, intrinsics_source="--intrinsics",
                                            skip_no_face=True)
    except NoFaceFoundError as exc:
        console.print(f"--same-person: {exc}", style="red", markup=False, soft_wrap=True)
        return failures, len(read)
    for line in sp.skipped:
        console.print(line, style="red", markup=False, soft_wrap=True)
    by_source = {str(p.source): path for p, path in zip(read, paths)}
    used_paths = []
    for rec in sp.faces:
        path = by_source[rec.source]
        used_paths.append(path)
        stem = out / frame_stem(path, used)
        with atomic_dir(stem) as tmp:
            write_photo_result(rec, engine.model, _rgb_of(read, rec.source), tmp, plan)
        _report(rec, console, path.name, stem)
    person = out / frame_stem(Path(PERSON_DIR), used)
    neutral = sp.neutral_result(engine.model)
    with atomic_dir(person) as tmp:
        write_face_meshes(neutral, engine.model, tmp, plan.formats, texture=None if sp.texture is None else sp.texture.image,
                          head_frame=False, rig=plan.rig)
        write_json(tmp / "person.json", {
            "about": "one identity fitted to several photos of one person (facerecon reconstruct --same-person); "
                     "the meshes here are its neutral face in the canonical head frame (mm), textured from every photo",
            "photos": [str(p) for p in used_paths], "skipped": list(sp.skipped),
            "identity": [round(float(x), 6) for x in sp.identity],
            "fit": [{"photo": str(p), "rms_px_alone": round(a, 3), "rms_px_joint": round(float(r.photo.fit.rms_px), 3)}
                    for p, a, r in zip(used_paths, sp.single_rms_px, sp.faces)],
            "texture": None if sp.texture is None else sp.texture.stats(), "ms": round(sp.ms, 1)})
    console.print(f"same person: {len(sp.faces)} photos, one identity -> {person}", markup=False, soft_wrap=True)
    return failures, len(sp.skipped)


def _rgb_of(photos, source: str):
    return next(p.rgb for p in photos if str(p.source) == source)
