"""Shared CLI plumbing: expand inputs to frames, resolve intrinsics, per-frame failure reporting."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..camera import camera_preset, parse_intrinsics
from ..errors import ConfigError, FaceReconError
from ..io.frame import DepthFrame

DEPTH_SUFFIXES = (".png", ".npy", ".npz", ".pcd", ".ply", ".bin")


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given; folders become their depth files (sorted by name, not recursive)."""
    out: list[Path] = []
    for p in inputs:
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in DEPTH_SUFFIXES
                          and not q.name.startswith(".") and q.name != "Expected.ply")
        else:
            out.append(p)
    return out


def load_frame(path: Path, camera: str | None, intrinsics: str | None, unit: str | None = None) -> DepthFrame:
    from ..io import read_depth

    if camera and intrinsics:
        raise ConfigError("give either --camera or --intrinsics, not both")
    frame = read_depth(path, unit=unit)
    if camera:
        k = camera_preset(camera)
        if (k.width, k.height) != (frame.width, frame.height):
            k = k.resize(frame.width, frame.height)
        frame = frame.with_intrinsics(k)
    elif intrinsics:
        frame = frame.with_intrinsics(parse_intrinsics(intrinsics, frame.width, frame.height))
    if frame.intrinsics is None:
        raise ConfigError(f"{path}: the file has no intrinsics; give --camera PRESET or --intrinsics fx,fy,cx,cy")
    return frame


def frame_stem(path: Path, used: set[str]) -> str:
    """A per-frame output folder name, unique within a batch."""
    stem = path.stem.replace(".", "_")
    name, k = stem, 1
    while name in used:
        k += 1
        name = f"{stem}_{k}"
    used.add(name)
    return name


def iterate_frames(paths: list[Path], camera: str | None, intrinsics: str | None, unit: str | None = None
                   ) -> Iterator[tuple[Path, DepthFrame | None, str | None]]:
    """(path, frame, None) or (path, None, error message): a bad frame never stops a batch."""
    for p in paths:
        try:
            yield p, load_frame(p, camera, intrinsics, unit), None
        except FaceReconError as exc:
            yield p, None, exc.one_line()
