"""Colour photographs: reading 8-bit RGB images (JPEG, PNG, PPM, ...) with their EXIF focal length.

The depth readers in :mod:`facerecon.io` take 16-bit single-channel images; this module takes
the 8-bit colour (or grey) ones, so :func:`is_photo_file` is how the CLI tells the two apart
without decoding the pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputFileError

MIN_SIDE_PX = 32  # below this no face detector has anything to work with
# Pillow modes that hold 8-bit colour or grey photographs (16-bit and float modes are depth)
_PHOTO_MODES = {"RGB", "RGBA", "RGBX", "L", "LA", "P", "PA", "CMYK", "YCbCr", "1"}
# EXIF tags (numbers from the EXIF 2.3 standard)
_TAG_ORIENTATION = 0x0112
_TAG_EXIF_IFD = 0x8769
_TAG_FOCAL_LENGTH = 0x920A
_TAG_FOCAL_35MM = 0xA405
_TAG_FP_XRES = 0xA20E
_TAG_FP_UNIT = 0xA210
_TAG_PIXEL_X = 0xA002
_TAG_PIXEL_Y = 0xA003


@dataclass
class Photo:
    """An upright 8-bit RGB image (EXIF orientation already applied)."""

    rgb: np.ndarray  # (H, W, 3) uint8
    source: str
    focal_px: float | None = None  # pinhole focal length in pixels of ``rgb`` when EXIF says it, else None

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def _focal_from_exif(exif, width: int, height: int) -> float | None:
    """Focal length in pixels of the (already upright) image from EXIF, or None.

    The 35 mm-equivalent focal length refers to the 36 x 24 mm frame's diagonal (43.27 mm),
    so f_px = f35 / 43.27 * image diagonal in pixels; a true focal length in mm needs the
    sensor's pixel density (FocalPlaneXResolution + unit), scaled to this image's width."""
    try:
        sub = exif.get_ifd(_TAG_EXIF_IFD)
    except Exception:  # noqa: BLE001 - malformed EXIF just means "no focal length"
        return None
    diag = float(np.hypot(width, height))
    try:
        f35 = float(sub.get(_TAG_FOCAL_35MM) or 0)
    except (TypeError, ValueError, ZeroDivisionError):
        f35 = 0.0
    if f35 > 0:
        return f35 / float(np.hypot(36.0, 24.0)) * diag
    try:
        f_mm = float(sub.get(_TAG_FOCAL_LENGTH) or 0)
        xres = float(sub.get(_TAG_FP_XRES) or 0)
        unit = int(sub.get(_TAG_FP_UNIT) or 2)
        px_x = float(sub.get(_TAG_PIXEL_X) or 0)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    unit_mm = {2: 25.4, 3: 10.0, 4: 1.0}.get(unit)
    if f_mm <= 0 or xres <= 0 or unit_mm is None:
        return None
    f_px_sensor = f_mm * xres / unit_mm  # in pixels of the sensor's full-resolution frame
    # the stored image may be downscaled from the sensor frame: scale by the width ratio
    full_w = px_x if px_x > 0 else max(width, height)
    return f_px_sensor * max(width, height) / max(full_w, 1.0)


def read_photo(path: str | Path) -> Photo:
    """Read an 8-bit colour/grey image as upright RGB; one-line :class:`InputFileError` otherwise."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise InputFileError(p, "no such file")
    if not p.is_file():
        raise InputFileError(p, "not a file")
    try:
        with Image.open(p) as im:
            im.load()
            mode = im.mode
            if mode not in _PHOTO_MODES:
                raise InputFileError(p, f"image mode {mode} is not an 8-bit colour photo (16-bit images are read as depth)")
            exif = im.getexif()
            up = ImageOps.exif_transpose(im)
            rgb = np.asarray(up.convert("RGB"), dtype=np.uint8).copy()
    except InputFileError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError, TypeError) as exc:
        raise InputFileError(p, f"cannot decode image ({' '.join(str(exc).split()) or exc.__class__.__name__})") from None
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE_PX:
        raise InputFileError(p, f"image is {w}x{h} pixels, too small for face detection (need at least {MIN_SIDE_PX} on each side)")
    return Photo(rgb=rgb, source=str(p), focal_px=_focal_from_exif(exif, w, h))


def is_photo_file(path: str | Path) -> bool:
    """True for an image file holding 8-bit colour or grey pixels (a photo), False for 16-bit
    depth PNGs, non-images and unreadable files.  Reads the header only."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(Path(path)) as im:
            return im.mode in _PHOTO_MODES
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError, TypeError):
        return False
