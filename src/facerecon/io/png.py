"""PNG bytes of an image written per frame (the detail maps): one filter for every row and zlib's RLE strategy.

Pillow's encoder picks one of the five PNG filters per row by trying them all, then deflates with
zlib's default strategy; for the detail maps (a 512 x 512 RGB normal map, mostly the flat
(128, 128, 255) outside the measured face, and a 16-bit displacement map, zero outside it) the
"Up" filter on every row and ``Z_RLE`` (runs only, no string matching) give smaller files at about a
third of the CPU (docs/speed.md, "Detail maps, round 4").  The pixels are the same: any PNG reader
decodes the array that was given.  ``zlib`` releases the GIL while it deflates, so a writer thread's
encoding overlaps with the frame pipeline.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPE = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type (grey, RGB, RGBA)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF)


def png_bytes(image: np.ndarray, level: int = 1, what: str = "image") -> bytes:
    """PNG bytes of ``image``: (H, W) uint8 or uint16 grey, (H, W, 3) / (H, W, 4) uint8 RGB / RGBA.

    Every row is "Up"-filtered (its bytes minus the row above's) and the stream deflated at zlib
    ``level`` with the RLE strategy; no ancillary chunks."""
    img = np.asarray(image)
    channels = 1 if img.ndim == 2 else (img.shape[2] if img.ndim == 3 else 0)
    ok = img.ndim == 2 and img.dtype in (np.uint8, np.uint16) or img.ndim == 3 and img.dtype == np.uint8 and channels in (3, 4)
    if not ok or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"{what} must be an (H, W) uint8/uint16 or (H, W, 3|4) uint8 image, got {img.shape} {img.dtype}")
    if not 0 <= int(level) <= 9:
        raise ValueError(f"zlib level must be 0..9, got {level}")
    h, w = img.shape[:2]
    depth = 16 if img.dtype == np.uint16 else 8
    raw = np.ascontiguousarray(img, dtype=">u2" if depth == 16 else np.uint8).view(np.uint8).reshape(h, -1)
    rows = np.empty((h, raw.shape[1] + 1), np.uint8)
    rows[:, 0] = 2  # filter type Up (PNG spec 9.2; bytewise, modulo 256, whatever the bit depth)
    rows[0, 1:] = raw[0]
    np.subtract(raw[1:], raw[:-1], out=rows[1:, 1:])
    z = zlib.compressobj(int(level), zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    idat = z.compress(rows) + z.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, depth, _COLOUR_TYPE[channels], 0, 0, 0)
    return _SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
