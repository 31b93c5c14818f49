"""Depth as images and arrays: 16-bit PNG (mm), ``.npy`` and ``.npz`` (unit stated).

A PNG holds integer millimetres (the Kinect/OpenNI/Biwi convention).  Arrays carry no
unit, so the caller states it (``unit='mm'|'m'``), an ``.npz`` may store it under
``unit``, and otherwise it is guessed from the values; a claim that contradicts the
values (e.g. "mm" for an array whose median is 0.8) is refused rather than silently
producing a head one millimetre away.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from ..camera import Intrinsics
from ..errors import InputFileError
from ..fileutil import atomic_path
from ._common import check_file, check_plausible_mm, guess_unit, normalise_unit, unit_factor
from .frame import DepthFrame


def read_depth_png(path: str | Path, unit: str | None = None) -> DepthFrame:
    """A 16-bit single-channel PNG of depth in millimetres (0 = no measurement)."""
    from PIL import Image, UnidentifiedImageError

    p = check_file(path)
    u = normalise_unit(unit) or "mm"
    try:
        with Image.open(p) as im:
            im.load()
            mode = im.mode
            arr = np.asarray(im)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise InputFileError(p, f"cannot decode image ({' '.join(str(exc).split()) or exc.__class__.__name__})") from None
    if mode not in ("I;16", "I;16B", "I;16L", "I"):
        raise InputFileError(p, f"image mode {mode} is not 16-bit single-channel depth (expected 16-bit greyscale PNG in mm)")
    if arr.ndim != 2:
        raise InputFileError(p, f"depth image must be single-channel, got shape {arr.shape}")
    depth = arr.astype(np.float64)
    depth[depth < 0] = 0
    depth = depth * unit_factor(u, "mm")
    check_plausible_mm(p, depth, u)
    return DepthFrame(depth.astype(np.float32), None, str(p), None, {"format": "png16", "unit": u})


def _array_to_frame(
    p: Path, arr: np.ndarray, unit: str | None, intrinsics: Intrinsics | None, fmt: str, extra: dict | None = None
) -> DepthFrame:
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise InputFileError(p, f"depth array has dtype {arr.dtype}, expected numbers")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise InputFileError(p, f"depth array must be 2-D (H, W), got shape {arr.shape}")
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise InputFileError(p, f"depth array is too small: shape {arr.shape}")
    depth = arr.astype(np.float64)
    meta: dict = {"format": fmt, **(extra or {})}
    u = normalise_unit(unit)
    if u is None:
        u = guess_unit(depth) if arr.dtype.kind == "f" else "mm"
        meta["unit_guessed"] = True
    meta["unit"] = u
    depth = depth * unit_factor(u, "mm")
    check_plausible_mm(p, depth, u)
    if intrinsics is not None and (intrinsics.width, intrinsics.height) != (arr.shape[1], arr.shape[0]):
        raise InputFileError(p, f"stored intrinsics are for {intrinsics.width}x{intrinsics.height}, depth is {arr.shape[1]}x{arr.shape[0]}")
    return DepthFrame(depth.astype(np.float32), intrinsics, str(p), None, meta)


def read_depth_npy(path: str | Path, unit: str | None = None) -> DepthFrame:
    """A 2-D ``.npy`` depth array; ``unit`` 'mm' or 'm' (guessed from the values when None)."""
    p = check_file(path)
    try:
        arr = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputFileError(p, f"not a readable .npy array ({' '.join(str(exc).split())[:120]})") from None
    return _array_to_frame(p, np.asarray(arr), unit, None, "npy")


def _intrinsics_from_array(p: Path, k: np.ndarray, width: int, height: int) -> Intrinsics:
    k = np.asarray(k, dtype=np.float64)
    if k.shape == (3, 3):
        fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    elif k.size in (4, 6):  # fx, fy, cx, cy [, width, height]
        fx, fy, cx, cy = k.ravel()[:4]
    else:
        raise InputFileError(p, f"'intrinsics' must be [fx, fy, cx, cy] or a 3x3 matrix, got shape {k.shape}")
    if not (fx > 0 and fy > 0):
        raise InputFileError(p, "'intrinsics' has a non-positive focal length")
    return Intrinsics(float(fx), float(fy), float(cx), float(cy), width, height)


def read_depth_npz(path: str | Path, unit: str | None = None) -> DepthFrame:
    """An ``.npz`` with key ``depth`` (2-D), optional ``intrinsics`` (fx, fy, cx, cy or 3x3),
    optional ``unit`` string and optional ``color`` (H, W, 3) uint8.

    An explicit ``unit`` argument wins over the stored one.
    """
    p = check_file(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = list(z.keys())
            if "depth" not in keys:
                raise InputFileError(p, f"npz has no 'depth' array (keys: {', '.join(keys) or 'none'})")
            depth = np.asarray(z["depth"])
            stored_unit = str(z["unit"]) if "unit" in keys else None
            k = np.asarray(z["intrinsics"]) if "intrinsics" in keys else None
            color = np.asarray(z["color"]) if "color" in keys else None
    except InputFileError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise InputFileError(p, f"not a readable .npz archive ({' '.join(str(exc).split())[:120]})") from None
    if depth.ndim == 3 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    intr = None
    if k is not None and depth.ndim == 2:
        intr = _intrinsics_from_array(p, k, depth.shape[1], depth.shape[0])
    frame = _array_to_frame(p, depth, unit or stored_unit, intr, "npz")
    if color is not None:
        if color.shape != (frame.height, frame.width, 3):
            raise InputFileError(p, f"'color' must be {frame.height}x{frame.width}x3, got shape {color.shape}")
        frame.color = color.astype(np.uint8)
    if intr is not None:
        frame.meta["intrinsics_source"] = "stored in the npz"
    return frame


def write_depth_png(path: str | Path, depth_mm: np.ndarray) -> None:
    """Write depth (mm) as a 16-bit greyscale PNG, rounded to whole millimetres (atomic)."""
    from PIL import Image

    d = np.asarray(depth_mm, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"depth must be 2-D, got shape {d.shape}")
    d = np.where(np.isfinite(d) & (d > 0), np.rint(d), 0)
    if d.max(initial=0) > 65535:
        raise ValueError(f"depth {d.max():.0f} mm does not fit a 16-bit PNG (max 65535)")
    img = Image.fromarray(d.astype(np.uint16))
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def write_depth_npz(
    path: str | Path, depth_mm: np.ndarray, intrinsics: Intrinsics | None = None, color: np.ndarray | None = None
) -> None:
    """Write ``depth`` (float32 mm), ``unit='mm'`` and optional ``intrinsics``/``color`` (atomic)."""
    d = np.asarray(depth_mm, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"depth must be 2-D, got shape {d.shape}")
    arrays: dict[str, np.ndarray] = {"depth": d, "unit": np.array("mm")}
    if intrinsics is not None:
        arrays["intrinsics"] = np.array([intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy], dtype=np.float64)
    if color is not None:
        arrays["color"] = np.asarray(color, dtype=np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def write_frame_npz(path: str | Path, frame: DepthFrame) -> None:
    """Write a :class:`DepthFrame` (depth, intrinsics, colour) as ``.npz``."""
    write_depth_npz(path, frame.depth_mm, frame.intrinsics, frame.color)


__all__ = [
    "read_depth_png", "read_depth_npy", "read_depth_npz",
    "write_depth_png", "write_depth_npz", "write_frame_npz",
]  # fmt: skip
