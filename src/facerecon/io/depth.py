"""``read_depth``: one entry point for every depth format facerecon reads.

The format is chosen from the extension and confirmed (or, for an unknown extension,
found) from the first bytes, so a mislabelled file gets a clear one-line error rather
than a parse failure deep inside a reader.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..geometry.camera import Intrinsics
from ..errors import ConfigError, InputFileError, UnsupportedFormatError
from ._common import check_file, guard_reader
from .frame import DepthFrame

SUPPORTED = {
    ".png": "16-bit PNG, millimetres",
    ".npy": "2-D array (unit given or guessed)",
    ".npz": "arrays: depth [, intrinsics, unit, color]",
    ".pcd": "PCL point cloud (organised; metres)",
    ".ply": "iPhone TrueDepth frame (StandardCyborg layout)",
    ".bin": "Biwi Kinect Head Pose frame_XXXXX_depth.bin",
}


def sniff_format(path: Path) -> str | None:
    """Format key ('.png', '.npz', ...) from the file's first bytes, or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise InputFileError(path, f"cannot read: {exc.strerror or exc}") from None
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if head.startswith(b"\x93NUMPY"):
        return ".npy"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return ".npz"
    if head.startswith(b"ply"):
        return ".ply"
    text = head[:512].lstrip()
    if text.startswith(b"# .PCD") or text.startswith(b"VERSION") or b"\nFIELDS " in head[:1024]:
        return ".pcd"
    return None


def _readers() -> dict[str, Callable[..., DepthFrame]]:
    # each reader's module is imported when a frame of its kind is read (a TrueDepth frame imported the PNG, PCD
    # and Biwi readers too: ~10 ms of a cold start)
    def png(p, unit, intr):
        from .images import read_depth_png
        return read_depth_png(p, unit)

    def npy(p, unit, intr):
        from .images import read_depth_npy
        return read_depth_npy(p, unit)

    def npz(p, unit, intr):
        from .images import read_depth_npz
        return read_depth_npz(p, unit)

    def pcd(p, unit, intr):
        from .pcd import read_pcd
        return read_pcd(p, unit, intr)

    def biwi(p, unit, intr):
        from .biwi import read_biwi_frame
        return read_biwi_frame(p, unit)

    return {".png": png, ".npy": npy, ".npz": npz, ".pcd": pcd, ".ply": lambda p, unit, intr: _read_ply(p, unit), ".bin": biwi}


def _read_ply(path: Path, unit: str | None) -> DepthFrame:
    from .truedepth import is_truedepth_ply, read_truedepth_frame

    if not is_truedepth_ply(path):
        raise UnsupportedFormatError(
            path, "PLY file is not a depth frame (no 'metadata'/'depth' elements; a mesh or point cloud?)"
        )
    return read_truedepth_frame(path, unit)


@guard_reader("a depth frame")
def read_depth(path: str | Path, unit: str | None = None, intrinsics: Intrinsics | None = None) -> DepthFrame:
    """Read a depth frame (depth in mm, 0 = no measurement) from any supported file.

    Args:
        path: .png (16-bit mm), .npy/.npz, .pcd, .ply (TrueDepth) or Biwi ``*_depth.bin``.
        unit: stored unit for formats without a fixed one ('mm' or 'm'); refused where
            the format fixes it differently (TrueDepth: m, Biwi: mm).
        intrinsics: replaces whatever the file provides (must match the image size);
            required to project an unorganised PCD cloud.

    Every problem with the file, foreseen or not, is raised as one
    :class:`~facerecon.errors.InputFileError` (or another ``FaceReconError``) naming it.
    """
    p = check_file(path)
    ext = p.suffix.lower()
    sniffed = sniff_format(p)
    readers = _readers()
    if ext not in readers:
        if sniffed is None:
            known = ", ".join(SUPPORTED)
            raise UnsupportedFormatError(p, f"unknown depth format {ext or '(no extension)'!r}; supported: {known}")
        ext = sniffed
    elif sniffed is not None and sniffed != ext:
        raise InputFileError(p, f"file extension says {ext} but the contents look like {sniffed}")
    elif sniffed is None and ext in (".png", ".npy", ".ply"):
        raise InputFileError(p, f"contents are not a valid {ext} file (wrong magic bytes)")
    frame = readers[ext](p, unit, intrinsics)
    if intrinsics is not None and frame.intrinsics is not intrinsics:
        if (intrinsics.width, intrinsics.height) != (frame.width, frame.height):
            raise ConfigError(
                f"{p}: camera intrinsics are for {intrinsics.width}x{intrinsics.height}, the depth image is "
                f"{frame.width}x{frame.height}"
            )
        frame = frame.with_intrinsics(intrinsics)
        frame.meta["intrinsics_source"] = "given"
    return frame
