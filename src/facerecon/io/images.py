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
import zlib
from pathlib import Path

import numpy as np

from ..geometry.camera import Intrinsics
from ..errors import InputFileError
from ..fileutil import atomic_path
from ._common import (
    MAX_PIXELS,
    check_bytes,
    check_count,
    check_file,
    check_image_size,
    check_plausible_mm,
    checked_intrinsics,
    clean_depth_mm,
    guard_reader,
    guess_unit,
    normalise_unit,
    read_bytes,
    unit_factor,
)
from .frame import DepthFrame

# An array member may hold a colour image (3 values per pixel) of the largest frame.
_MAX_ARRAY_ELEMENTS = 3 * MAX_PIXELS
# Most bytes one .npz member may expand to: the largest frame as float64, plus its header.
_MAX_MEMBER_BYTES = 8 * MAX_PIXELS + 65536


@guard_reader("16-bit PNG depth")
def read_depth_png(path: str | Path, unit: str | None = None) -> DepthFrame:
    """A 16-bit single-channel PNG of depth in millimetres (0 = no measurement)."""
    from PIL import Image, UnidentifiedImageError

    p = check_file(path)
    u = normalise_unit(unit) or "mm"
    blob = read_bytes(p)
    _check_png_chunks(p, blob)
    try:
        # from memory: Pillow reads some chunk lengths with fp.read(n), which on a file
        # allocates n bytes up front (4 GB from a 200-byte file with a lying IDAT length)
        with Image.open(io.BytesIO(blob), formats=["PNG"]) as im:
            check_image_size(p, im.width, im.height, "PNG")  # from the header, before decoding
            im.load()
            mode = im.mode
            arr = np.asarray(im)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise InputFileError(p, f"cannot decode image ({' '.join(str(exc).split()) or exc.__class__.__name__})") from None
    if mode not in ("I;16", "I;16B", "I;16L", "I"):
        raise InputFileError(p, f"image mode {mode} is not 16-bit single-channel depth (expected 16-bit greyscale PNG in mm)")
    if arr.ndim != 2:
        raise InputFileError(p, f"depth image must be single-channel, got shape {arr.shape}")
    depth = arr.astype(np.float64) * unit_factor(u, "mm")
    check_plausible_mm(p, depth, u)  # before cleaning: a wrong unit shows in the median, then as "beyond range"
    depth = clean_depth_mm(p, depth)
    return DepthFrame(depth, None, str(p), None, {"format": "png16", "unit": u})


def _check_png_chunks(p: Path, blob: bytes) -> None:
    """Every PNG chunk's declared length must fit in the file (checked before decoding)."""
    if not blob.startswith(b"\x89PNG\r\n\x1a\n"):
        raise InputFileError(p, "not a PNG file (wrong magic bytes)")
    pos = 8
    while pos + 8 <= len(blob):
        n = int.from_bytes(blob[pos : pos + 4], "big")
        kind = blob[pos + 4 : pos + 8]
        if pos + 12 + n > len(blob):
            name = kind.decode("latin-1") if kind.isalpha() else repr(kind)
            raise InputFileError(p, f"PNG chunk {name} claims {n:,} bytes, {max(len(blob) - pos - 12, 0):,} present (truncated or corrupt)")
        pos += 12 + n
        if kind == b"IEND":
            break


def _array_to_frame(
    p: Path, arr: np.ndarray, unit: str | None, intrinsics: Intrinsics | None, fmt: str, extra: dict | None = None
) -> DepthFrame:
    if arr.dtype.hasobject or arr.dtype.kind not in "biuf":
        raise InputFileError(p, f"depth array has dtype {arr.dtype}, expected numbers")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise InputFileError(p, f"depth array must be 2-D (H, W), got shape {arr.shape}")
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise InputFileError(p, f"depth array is too small: shape {arr.shape}")
    check_image_size(p, arr.shape[1], arr.shape[0], "depth array")
    depth = arr.astype(np.float64)
    meta: dict = {"format": fmt, **(extra or {})}
    u = normalise_unit(unit)
    if u is None:
        u = guess_unit(depth) if arr.dtype.kind == "f" else "mm"
        meta["unit_guessed"] = True
    meta["unit"] = u
    depth = depth * unit_factor(u, "mm")
    check_plausible_mm(p, depth, u)  # before cleaning: a wrong unit shows in the median, then as "beyond range"
    depth = clean_depth_mm(p, depth)
    if intrinsics is not None and (intrinsics.width, intrinsics.height) != (arr.shape[1], arr.shape[0]):
        raise InputFileError(p, f"stored intrinsics are for {intrinsics.width}x{intrinsics.height}, depth is {arr.shape[1]}x{arr.shape[0]}")
    return DepthFrame(depth, intrinsics, str(p), None, meta)


def _read_npy(p: Path, fh, available: int, what: str) -> np.ndarray:
    """One array from an open ``.npy`` stream of ``available`` bytes, its header checked first.

    The shape in the header is checked against :data:`MAX_PIXELS` and the bytes present
    before numpy allocates anything; object arrays (pickles) are refused.
    """
    fmt = np.lib.format
    start = fh.tell()
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fh, max_header_size=10000)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fh, max_header_size=10000)
        else:
            raise InputFileError(p, f"{what}: unsupported .npy format version {version[0]}.{version[1]}")
    except InputFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - ValueError, SyntaxError, tokenize.TokenError, EOFError ...
        raise InputFileError(p, f"{what}: not a readable .npy header ({exc.__class__.__name__})") from None
    if dtype.hasobject:
        raise InputFileError(p, f"{what}: object arrays (pickles) are not read")
    if any(int(n) < 0 for n in shape):
        raise InputFileError(p, f"{what}: negative dimension in shape {shape}")
    count = check_count(p, int(np.prod(shape, dtype=object)), f"{what} element", _MAX_ARRAY_ELEMENTS)
    check_bytes(p, count * dtype.itemsize, available - (fh.tell() - start), what)
    fh.seek(start)
    return fmt.read_array(fh, allow_pickle=False)


@guard_reader(".npy depth array")
def read_depth_npy(path: str | Path, unit: str | None = None) -> DepthFrame:
    """A 2-D ``.npy`` depth array; ``unit`` 'mm' or 'm' (guessed from the values when None)."""
    p = check_file(path)
    try:
        with open(p, "rb") as fh:
            arr = _read_npy(p, fh, p.stat().st_size, ".npy array")
    except OSError as exc:
        raise InputFileError(p, f"cannot read: {exc.strerror or exc}") from None
    return _array_to_frame(p, np.asarray(arr), unit, None, "npy")


def _intrinsics_from_array(p: Path, k: np.ndarray, width: int, height: int) -> Intrinsics:
    k = np.asarray(k)
    if k.dtype.kind not in "biuf":
        raise InputFileError(p, f"'intrinsics' must be numbers, got dtype {k.dtype}")
    k = k.astype(np.float64)
    if k.shape == (3, 3):
        fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    elif k.size in (4, 6):  # fx, fy, cx, cy [, width, height]
        fx, fy, cx, cy = k.ravel()[:4]
    else:
        raise InputFileError(p, f"'intrinsics' must be [fx, fy, cx, cy] or a 3x3 matrix, got shape {k.shape}")
    return checked_intrinsics(p, fx, fy, cx, cy, width, height, "'intrinsics'")


def _npz_arrays(p: Path, wanted: tuple[str, ...]) -> tuple[list[str], dict[str, np.ndarray]]:
    """(all keys, the ``wanted`` arrays present) of an ``.npz``, each member's size checked
    against its zip entry and :data:`MAX_PIXELS` before it is decompressed."""
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise InputFileError(p, f"not a readable .npz archive ({' '.join(str(exc).split())[:120] or exc.__class__.__name__})") from None
    with zf:
        members = {info.filename[:-4] if info.filename.endswith(".npy") else info.filename: info for info in zf.infolist()}
        out: dict[str, np.ndarray] = {}
        for key in wanted:
            info = members.get(key)
            if info is None:
                continue
            if info.file_size > _MAX_MEMBER_BYTES:
                raise InputFileError(p, f"npz member {key!r} is {info.file_size:,} bytes, over the cap of {_MAX_MEMBER_BYTES:,}")
            try:
                with zf.open(info) as fh:
                    # read() stops at the cap even if the entry lies about its size (a zip bomb)
                    blob = fh.read(_MAX_MEMBER_BYTES + 1)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
                detail = " ".join(str(exc).split())[:120] or exc.__class__.__name__
                raise InputFileError(p, f"npz member {key!r} is corrupt ({detail})") from None
            if len(blob) > _MAX_MEMBER_BYTES:
                raise InputFileError(p, f"npz member {key!r} expands beyond the cap of {_MAX_MEMBER_BYTES:,} bytes")
            out[key] = _read_npy(p, io.BytesIO(blob), len(blob), f"npz member {key!r}")
    return list(members), out


def _stored_unit(p: Path, arr: np.ndarray) -> str:
    if arr.dtype.kind not in "US" or arr.size != 1:
        raise InputFileError(p, f"'unit' must be a string such as 'mm' or 'm', got dtype {arr.dtype} shape {arr.shape}")
    text = str(arr.reshape(()).item() if arr.dtype.kind == "U" else arr.reshape(()).item().decode("latin-1"))
    try:
        return normalise_unit(text)  # type: ignore[return-value]
    except Exception:  # noqa: BLE001 - a stored unit is part of the file: name the file
        raise InputFileError(p, f"stored unit {text[:20]!r} is not mm, cm or m") from None


@guard_reader(".npz depth archive")
def read_depth_npz(path: str | Path, unit: str | None = None) -> DepthFrame:
    """An ``.npz`` with key ``depth`` (2-D; or ``depth_mm``, millimetres), optional ``intrinsics`` (fx, fy, cx, cy or 3x3),
    optional ``unit`` string and optional ``color`` (H, W, 3) uint8.

    An explicit ``unit`` argument wins over the stored one.
    """
    p = check_file(path)
    keys, arrays = _npz_arrays(p, ("depth", "depth_mm", "unit", "intrinsics", "color"))
    if "depth" not in arrays and "depth_mm" not in arrays:
        raise InputFileError(p, f"npz has no 'depth' (or 'depth_mm') array (keys: {', '.join(keys) or 'none'})")
    # 'depth_mm' (the folder dataset format's key) is millimetres by its name
    depth = arrays["depth"] if "depth" in arrays else arrays["depth_mm"]
    stored_unit = _stored_unit(p, arrays["unit"]) if "unit" in arrays and unit is None else None
    if "depth" not in arrays and unit is None and stored_unit is None:
        stored_unit = "mm"
    k = arrays.get("intrinsics")
    color = arrays.get("color")
    if depth.ndim == 3 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    intr = None
    if k is not None and depth.ndim == 2:
        intr = _intrinsics_from_array(p, k, depth.shape[1], depth.shape[0])
    frame = _array_to_frame(p, depth, unit or stored_unit, intr, "npz")
    if color is not None:
        if color.shape != (frame.height, frame.width, 3) or color.dtype.kind not in "biuf":
            raise InputFileError(p, f"'color' must be {frame.height}x{frame.width}x3 numbers, got shape {color.shape} dtype {color.dtype}")
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
    path: str | Path, depth_mm: np.ndarray, intrinsics: Intrinsics | None = None, color: np.ndarray | None = None,
    depth_key: str = "depth",
) -> None:
    """Write ``depth`` (float32 mm), ``unit='mm'`` and optional ``intrinsics``/``color`` (atomic).

    ``depth_key='depth_mm'`` writes the folder dataset format's layout (that key alone)."""
    d = np.asarray(depth_mm, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"depth must be 2-D, got shape {d.shape}")
    if depth_key not in ("depth", "depth_mm"):
        raise ValueError(f"depth_key must be 'depth' or 'depth_mm', got {depth_key!r}")
    arrays: dict[str, np.ndarray] = {"depth": d, "unit": np.array("mm")} if depth_key == "depth" else {"depth_mm": d}
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
