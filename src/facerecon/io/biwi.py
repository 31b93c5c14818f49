"""Biwi Kinect Head Pose database: depth frames, head poses, calibration (read and write).

``frame_XXXXX_depth.bin``: little-endian ``int32 width, int32 height`` then runs of
``int32 n_empty, int32 n_full, int16 depth[n_full]`` filling the image row-major; skipped
pixels are 0.  Depth in millimetres.  ``frame_XXXXX_pose.txt``: the 3x3 head rotation R
(three rows), a blank line, the head centre t (mm) in the depth camera frame; a head
vertex v maps to the camera as ``R v + t``.  ``depth.cal``: K (3x3), distortion, R, t,
then ``width height``.  The writers exist so synthetic data can be exported in the same
layout and so tests can round-trip without the (licensed) database.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from numba import njit

from ..geometry.camera import Intrinsics
from ..errors import InputFileError
from ..fileutil import atomic_path, write_text_atomic
from ._common import check_fixed_unit, check_image_size, checked_intrinsics, clean_depth_mm, guard_reader, read_bytes
from .frame import DepthFrame


@njit(cache=True, nogil=True)
def _decode_runs(buf: np.ndarray, n_pixels: int, out: np.ndarray) -> int:
    """Fill ``out`` (int16, n_pixels) from the run stream in ``buf`` (uint8, after the size header).

    Returns bytes consumed, or -1 (stream ends inside a run), -2 (a run overflows the
    image), -3 (negative run length).
    """
    pos = 0
    p = 0
    n = buf.shape[0]
    while p < n_pixels:
        if pos + 8 > n:
            return -1
        n_empty = np.int64(buf[pos]) | (np.int64(buf[pos + 1]) << 8) | (np.int64(buf[pos + 2]) << 16) | (np.int64(buf[pos + 3]) << 24)
        n_full = np.int64(buf[pos + 4]) | (np.int64(buf[pos + 5]) << 8) | (np.int64(buf[pos + 6]) << 16) | (np.int64(buf[pos + 7]) << 24)
        if n_empty >= 2**31:
            n_empty -= 2**32
        if n_full >= 2**31:
            n_full -= 2**32
        pos += 8
        if n_empty < 0 or n_full < 0:
            return -3
        if p + n_empty + n_full > n_pixels:
            return -2
        p += n_empty  # out is zero-initialised
        if pos + 2 * n_full > n:
            return -1
        for k in range(n_full):
            v = np.int64(buf[pos]) | (np.int64(buf[pos + 1]) << 8)
            if v >= 32768:
                v -= 65536
            out[p + k] = v
            pos += 2
        p += n_full
    return pos


_RUN_ERRORS = {
    -1: "truncated: the depth runs end before the image is full",
    -2: "corrupt: a depth run overflows the image",
    -3: "corrupt: negative run length",
}


@guard_reader("Biwi depth.bin")
def read_biwi_depth(path: str | Path) -> np.ndarray:
    """(H, W) float32 depth in mm from a ``*_depth.bin`` file (0 = no measurement)."""
    p = Path(path)
    blob = read_bytes(p)
    if len(blob) < 8:
        raise InputFileError(p, "Biwi depth file is truncated (no size header)")
    width, height = (int(x) for x in np.frombuffer(blob, dtype="<i4", count=2))
    # runs of empty pixels cost 8 bytes however long, so the file length bounds nothing:
    # the pixel cap is what stops a 16-byte file claiming 16384 x 16384
    check_image_size(p, width, height, "Biwi depth header")
    out = np.zeros(width * height, dtype=np.int16)
    used = int(_decode_runs(np.frombuffer(blob, dtype=np.uint8, offset=8), width * height, out))
    if used < 0:
        raise InputFileError(p, f"Biwi depth file is {_RUN_ERRORS.get(used, f'corrupt (code {used})')}")
    return clean_depth_mm(p, out.reshape(height, width))


def _encode_runs(flat: np.ndarray) -> bytes:
    """Run-length encode int16 depth (0 = empty) as Biwi runs (empty block, full block)."""
    full = flat != 0
    if flat.size == 0:
        return b""
    # A new run starts at 0 and wherever a full pixel is followed by an empty one.
    starts = np.concatenate([[0], np.flatnonzero(full[:-1] & ~full[1:]) + 1])
    lengths = np.diff(np.append(starts, flat.size))
    n_full = np.add.reduceat(full.astype(np.int64), starts)
    n_empty = lengths - n_full
    values = flat[full].astype("<i2")
    chunks: list[bytes] = []
    offset = 0
    for e, f in zip(n_empty.tolist(), n_full.tolist()):
        chunks.append(np.array([e, f], dtype="<i4").tobytes())
        chunks.append(values[offset : offset + f].tobytes())
        offset += f
    return b"".join(chunks)


def write_biwi_depth(path: str | Path, depth_mm: np.ndarray) -> None:
    """Write (H, W) depth in mm as a Biwi ``*_depth.bin`` file (rounded to int16, atomic)."""
    d = np.asarray(depth_mm, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"depth must be 2-D, got shape {d.shape}")
    d = np.where(np.isfinite(d) & (d > 0), np.rint(d), 0)
    if d.max(initial=0) > 32767:
        raise ValueError(f"depth {d.max():.0f} mm does not fit the int16 Biwi format (max 32767)")
    flat = d.astype(np.int16).ravel()
    h, w = d.shape
    with atomic_path(path) as tmp:
        tmp.write_bytes(np.array([w, h], dtype="<i4").tobytes() + _encode_runs(flat))


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", text)]


@guard_reader("Biwi pose.txt")
def read_biwi_pose(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(R 3x3, t (3,) mm) from a ``*_pose.txt`` file; camera point = R v + t."""
    p = Path(path)
    vals = _numbers(read_bytes(p).decode("utf-8", errors="replace"))
    if len(vals) != 12:
        raise InputFileError(p, f"Biwi pose file must hold 12 numbers (R rows, then t), found {len(vals)}")
    rot = np.array(vals[:9], dtype=np.float64).reshape(3, 3)
    t = np.array(vals[9:], dtype=np.float64)
    if not np.isfinite(rot).all() or not np.isfinite(t).all():
        raise InputFileError(p, "Biwi pose file holds a number too large to be finite")
    if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-3) or np.linalg.det(rot) < 0:
        raise InputFileError(p, "Biwi pose file: the 3x3 matrix is not a rotation")
    return rot, t


def write_biwi_pose(path: str | Path, rotation: np.ndarray, translation_mm: np.ndarray) -> None:
    """Write R (3x3) and t (mm) in the Biwi ``*_pose.txt`` layout (atomic)."""
    rot = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    t = np.asarray(translation_mm, dtype=np.float64).reshape(3)
    rows = [" ".join(f"{x:.8g}" for x in r) + " " for r in rot]
    write_text_atomic(path, "\n".join(rows) + "\n\n" + " ".join(f"{x:.8g}" for x in t) + " \n")


@guard_reader("Biwi depth.cal")
def read_biwi_calibration(path: str | Path, width: int | None = None, height: int | None = None) -> Intrinsics:
    """Intrinsics from a Biwi ``depth.cal`` (K, distortion, R, t, ``width height``)."""
    p = Path(path)
    vals = _numbers(read_bytes(p).decode("utf-8", errors="replace"))
    if len(vals) < 9:
        raise InputFileError(p, f"Biwi calibration must start with a 3x3 matrix, found {len(vals)} numbers")
    k = np.array(vals[:9]).reshape(3, 3)
    if len(vals) >= 27:
        w, h = vals[-2], vals[-1]
        if not (np.isfinite([w, h]).all() and w == int(w) and h == int(h)):
            raise InputFileError(p, f"Biwi calibration image size {w:g} x {h:g} is not whole numbers")
        width, height = int(w), int(h)
    if width is None or height is None:
        raise InputFileError(p, "Biwi calibration has no image size (expected 'width height' on the last line)")
    check_image_size(p, width, height, "Biwi calibration image")
    return checked_intrinsics(p, k[0, 0], k[1, 1], k[0, 2], k[1, 2], width, height, "Biwi calibration intrinsics")


def write_biwi_calibration(path: str | Path, intrinsics: Intrinsics) -> None:
    """Write a Biwi-style ``depth.cal`` (no distortion, identity extrinsics)."""
    k = intrinsics
    text = (
        f"{k.fx:.6g} 0 {k.cx:.6g} \n0 {k.fy:.6g} {k.cy:.6g} \n0 0 1 \n\n0 0 0 0 \n\n"
        f"1 0 0 \n0 1 0 \n0 0 1 \n\n0 0 0 \n\n{k.width} {k.height}\n"
    )
    write_text_atomic(path, text)


def biwi_companions(depth_bin: str | Path) -> tuple[Path, Path]:
    """The pose file and ``depth.cal`` that belong beside a ``*_depth.bin`` file."""
    p = Path(depth_bin)
    stem = p.name[: -len("_depth.bin")] if p.name.endswith("_depth.bin") else p.stem
    return p.with_name(f"{stem}_pose.txt"), p.with_name("depth.cal")


@guard_reader("Biwi frame")
def read_biwi_frame(depth_bin: str | Path, unit: str | None = None) -> DepthFrame:
    """A Biwi frame: depth (mm), intrinsics from ``depth.cal`` when present (else None),
    and ``meta['pose'] = (R, t_mm)`` when the ``*_pose.txt`` file is present."""
    p = Path(depth_bin)
    check_fixed_unit(p, unit, "mm", "Biwi depth.bin")
    depth = read_biwi_depth(p)
    pose_path, cal_path = biwi_companions(p)
    meta: dict = {"format": "biwi-bin", "unit": "mm"}
    intr = None
    if cal_path.is_file():
        intr = read_biwi_calibration(cal_path, depth.shape[1], depth.shape[0])
        if (intr.width, intr.height) != (depth.shape[1], depth.shape[0]):
            raise InputFileError(cal_path, f"calibration is for {intr.width}x{intr.height}, {p.name} is {depth.shape[1]}x{depth.shape[0]}")
        meta["intrinsics_source"] = str(cal_path)
    if pose_path.is_file():
        meta["pose"] = read_biwi_pose(pose_path)
        meta["pose_file"] = str(pose_path)
    return DepthFrame(depth, intr, str(p), None, meta)


def write_biwi_frame(
    depth_bin: str | Path,
    depth_mm: np.ndarray,
    pose: tuple[np.ndarray, np.ndarray] | None = None,
    intrinsics: Intrinsics | None = None,
) -> None:
    """Write ``*_depth.bin`` plus, when given, ``*_pose.txt`` and ``depth.cal`` beside it."""
    p = Path(depth_bin)
    if not p.name.endswith("_depth.bin"):
        raise ValueError(f"Biwi depth files are named frame_XXXXX_depth.bin, got {p.name!r}")
    write_biwi_depth(p, depth_mm)
    pose_path, cal_path = biwi_companions(p)
    if pose is not None:
        write_biwi_pose(pose_path, *pose)
    if intrinsics is not None:
        write_biwi_calibration(cal_path, intrinsics)
