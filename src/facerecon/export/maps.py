"""The detail layer's images: ``face_displacement.png`` (16-bit) and ``face_normal.png`` (RGB), atomic.

Both are ICT's face UV tile (:mod:`facerecon.facemodel.uv`: row 0 = the top of the image = v 1,
the OBJ/glTF image convention), the size of the map.

``face_displacement.png``: one 16-bit grey channel, ``displacement_mm = offset_mm + scale_mm * code``
with ``offset_mm = -32768 * scale_mm`` and ``scale_mm = max_mm / 32767``: code 32768 is exactly
0 mm, codes 1..65535 span ``[-max_mm, +max_mm]`` and texels without a measurement are written as
0 mm (so the image can be used as a displacement texture as it is; the optional mask image says
which texels were measured).  :func:`write_displacement_png` returns ``scale_mm`` / ``offset_mm``
for pose.json; :func:`read_displacement_png` inverts it (within half a step, ``scale_mm / 2``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputFileError
from ..fileutil import atomic_path, write_bytes_atomic
from .gltf import _png_bytes

ZERO_CODE = 32768


def displacement_encoding(max_mm: float) -> dict:
    """``{"scale_mm", "offset_mm", "zero_code"}`` of a displacement map bounded by ``max_mm``."""
    if not max_mm > 0:
        raise ValueError(f"max_mm must be positive, got {max_mm}")
    scale = float(max_mm) / 32767.0
    return {"scale_mm": scale, "offset_mm": -ZERO_CODE * scale, "zero_code": ZERO_CODE}


def encode_displacement(displacement_mm: np.ndarray, max_mm: float, mask: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """(uint16 codes, encoding) of a displacement map; values beyond ``max_mm`` are clamped, unmeasured texels are 0 mm."""
    enc = displacement_encoding(max_mm)
    d = np.asarray(displacement_mm, np.float64)
    if d.ndim != 2:
        raise ValueError(f"displacement must be 2-D, got shape {d.shape}")
    d = np.where(np.isfinite(d), np.clip(d, -max_mm, max_mm), 0.0)
    if mask is not None:
        d = np.where(mask, d, 0.0)
    code = np.clip(np.rint(d / enc["scale_mm"]) + ZERO_CODE, 1, 65535).astype(np.uint16)
    return code, enc


def write_displacement_png(path: str | Path, disp, mask_path: str | Path | None = None) -> dict:
    """Write a :class:`facerecon.fitting.detail.DisplacementMap` as a 16-bit PNG (atomic); with
    ``mask_path`` also its mask (8-bit, 255 = measured).  Returns the encoding (scale_mm, offset_mm,
    zero_code) for pose.json."""
    from PIL import Image

    code, enc = encode_displacement(disp.displacement, disp.max_mm, disp.mask)
    with atomic_path(path) as tmp:
        Image.fromarray(code).save(tmp, format="PNG")  # uint16 -> mode I;16, one 16-bit grey channel
    if mask_path is not None:
        with atomic_path(mask_path) as tmp:
            Image.fromarray(np.where(disp.mask, 255, 0).astype(np.uint8)).save(tmp, format="PNG")
    return enc


def read_displacement_png(path: str | Path, scale_mm: float, offset_mm: float) -> np.ndarray:
    """(S, S) float32 mm of a ``face_displacement.png`` with the encoding pose.json gives."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    try:
        with Image.open(p) as im:
            if im.mode not in ("I;16", "I;16B", "I;16L", "I"):
                raise InputFileError(p, f"image mode {im.mode} is not a 16-bit grey displacement map")
            code = np.asarray(im, dtype=np.float64)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputFileError(p, f"not a readable PNG ({exc})") from None
    return (offset_mm + scale_mm * code).astype(np.float32)


def write_normal_png(path: str | Path, normal_map: np.ndarray) -> None:
    """Write a tangent-space normal map ((S, S, 3) uint8, :func:`facerecon.fitting.detail.normal_map`) as PNG (atomic)."""
    write_bytes_atomic(path, _png_bytes(normal_map, "normal map"))
