"""The detail layer's images: ``face_displacement.png`` (16-bit) and ``face_normal.png`` (RGB), atomic.

Both are ICT's face UV tile (:mod:`facerecon.facemodel.uv`: row 0 = the top of the image = v 1,
the OBJ/glTF image convention), the size of the map.

``face_displacement.png``: one 16-bit grey channel, ``displacement_mm = offset_mm + scale_mm * code``
with ``offset_mm = -32768 * scale_mm`` and ``scale_mm = max_mm / 32767``: code 32768 is exactly
0 mm, codes 1..65535 span ``[-max_mm, +max_mm]`` and texels without a measurement are written as
0 mm (so the image can be used as a displacement texture as it is; the optional mask image says
which texels were measured).  :func:`write_displacement_png` returns ``scale_mm`` / ``offset_mm``
for pose.json; :func:`read_displacement_png` inverts it (within half a step, ``scale_mm / 2``).

:func:`detail_maps` makes both maps of one result (``rec.vertices_head``, the corrected surface, at
``rec.pose`` against the frame's depth) and judges them (``[maps]`` of ``configs/detail.toml``):
``reconstruct`` calls it where it writes a frame's files (the batch's writer thread, not the frame
pipeline), and an API user calls it the same way::

    from facerecon.export.maps import detail_maps
    maps = detail_maps(rec, model, frame)      # DetailMaps: .written, .reason, .displacement, .normals
    write_face_meshes(rec, model, out, ("obj", "glb"), intrinsics=frame.intrinsics, maps=maps)
    maps.to_json()                             # pose.json's depth.detail_map block
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numba import njit

from ..errors import InputFileError
from ..fileutil import write_bytes_atomic
from ..io.png import png_bytes
from ..settings import toml_defaults

ZERO_CODE = 32768
# zlib level of the maps written per frame (facerecon.io.png: Up filter, RLE strategy; docs/speed.md "Detail maps,
# round 4"): PIL's adaptive filters at level 1 were ~half the time of its default 6 (docs/detail.md), io.png ~a third of that
PNG_LEVEL = 1
DISPLACEMENT_FILE = "face_displacement.png"
NORMAL_FILE = "face_normal.png"


@toml_defaults("configs/detail.toml", "maps")
class MapsConfig:
    """The ``[maps]`` table of ``configs/detail.toml``: when a frame's maps are plausible enough to write."""

    min_coverage: float
    max_rms_mm: float


@dataclass
class DetailMaps:
    """The detail layer of one result, ready to write: ``displacement`` (a
    :class:`facerecon.fitting.detail.DisplacementMap`), ``normals`` ((S, S, 3) uint8, glTF tangent
    space; None when refused), ``written`` (whether the maps pass ``[maps]``), ``reason`` (why not),
    ``ms`` (the time to make them), ``encoding`` (filled by :func:`write_detail_maps`)."""

    displacement: object
    normals: np.ndarray | None
    written: bool
    reason: str = ""
    ms: dict = field(default_factory=dict)
    encoding: dict = field(default_factory=dict)
    normal_png: bytes | None = None

    def png(self) -> bytes | None:
        """The normal map as PNG bytes (encoded once: the file and the GLBs share them)."""
        if self.normal_png is None and self.normals is not None:
            self.normal_png = png_bytes(self.normals, PNG_LEVEL, "normal map")
        return self.normal_png

    def to_json(self) -> dict:
        """pose.json's ``depth.detail_map`` block."""
        st = self.displacement.stats
        out = {"written": bool(self.written)}
        if not self.written:
            out["reason"] = self.reason
        else:
            out.update(displacement=DISPLACEMENT_FILE, normal=NORMAL_FILE, **self.encoding)
        out.update(size=int(self.displacement.size), max_mm=float(self.displacement.max_mm),
                   coverage=round(float(st.get("coverage", 0.0)), 4),
                   **{k: round(float(st[k]), 4) for k in ("rms_mm", "median_abs_mm", "p95_abs_mm") if k in st},
                   ms={k: round(float(v), 2) for k, v in self.ms.items()})
        return out


def detail_maps(rec, model, frame, cfg=None, maps_cfg: MapsConfig | None = None) -> DetailMaps:
    """The displacement and normal maps of ``rec``'s returned surface (``rec.vertices_head`` at
    ``rec.pose``) against ``frame``'s depth (:mod:`facerecon.fitting.detail`, ``cfg`` a
    ``DetailConfig``), judged by ``maps_cfg``: a map with too little coverage or too large a
    residual is not written (``written`` False, ``reason`` says why; no normal map is made)."""
    from ..fitting.detail import displacement_map, face_normals, normal_map

    mc = maps_cfg or MapsConfig()
    t0 = time.perf_counter()
    vn = face_normals(model, rec.vertices_head)  # both maps start from them: made once
    disp = displacement_map(model, rec.vertices_head, rec.pose, frame, cfg, vn)
    ms = {"displacement": (time.perf_counter() - t0) * 1e3}
    st = disp.stats
    cov, rms = float(st.get("coverage", 0.0)), float(st.get("rms_mm", 0.0))
    reason = ""
    if cov < mc.min_coverage:
        reason = f"coverage {cov:.3f} < {mc.min_coverage:g}: too little of the face measured"
    elif rms > mc.max_rms_mm:
        reason = f"rms {rms:.2f} mm > {mc.max_rms_mm:g} mm: not the skin of the corrected surface"
    normals = None
    if not reason:
        t1 = time.perf_counter()
        normals = normal_map(model, rec.vertices_head, disp, cfg, vn)
        ms["normal"] = (time.perf_counter() - t1) * 1e3
    return DetailMaps(disp, normals, not reason, reason, ms)


def write_detail_maps(out_dir: str | Path, maps: DetailMaps) -> list[Path]:
    """``face_displacement.png`` and ``face_normal.png`` of written ``maps`` (atomic); nothing when refused.
    Fills ``maps.encoding`` (scale_mm, offset_mm, zero_code) and ``maps.ms['png']``."""
    if not maps.written:
        return []
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    maps.encoding = write_displacement_png(out_dir / DISPLACEMENT_FILE, maps.displacement)
    write_bytes_atomic(out_dir / NORMAL_FILE, maps.png())
    maps.ms["png"] = (time.perf_counter() - t0) * 1e3
    return [out_dir / DISPLACEMENT_FILE, out_dir / NORMAL_FILE]


def displacement_encoding(max_mm: float) -> dict:
    """``{"scale_mm", "offset_mm", "zero_code"}`` of a displacement map bounded by ``max_mm``."""
    if not max_mm > 0:
        raise ValueError(f"max_mm must be positive, got {max_mm}")
    scale = float(max_mm) / 32767.0
    return {"scale_mm": scale, "offset_mm": -ZERO_CODE * scale, "zero_code": ZERO_CODE}


def encode_displacement(displacement_mm: np.ndarray, max_mm: float, mask: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """(uint16 codes, encoding) of a displacement map; values beyond ``max_mm`` are clamped, unmeasured texels are 0 mm."""
    enc = displacement_encoding(max_mm)
    d = np.asarray(displacement_mm)
    if d.ndim != 2:
        raise ValueError(f"displacement must be 2-D, got shape {d.shape}")
    d = np.ascontiguousarray(d, d.dtype if d.dtype in (np.float32, np.float64) else np.float64)
    m = np.ones((1, 1), bool) if mask is None else np.ascontiguousarray(np.broadcast_to(np.asarray(mask, bool), d.shape))
    code = np.empty(d.shape, np.uint16)
    _encode(d, m, mask is not None, float(max_mm), float(enc["scale_mm"]), code)
    return code, enc


@njit(cache=True, nogil=True)
def _encode(d, mask, masked, max_mm, scale, out):
    """Per texel, in float64: non-finite or unmasked -> 0, clamped to +-max_mm, ``rint(d / scale) + 32768``
    clamped to 1..65535 (one pass; the values of the NumPy expression it replaced, element for element)."""
    h, w = d.shape
    for r in range(h):
        for c in range(w):
            x = np.float64(d[r, c])
            if not np.isfinite(x) or (masked and not mask[r, c]):
                x = 0.0
            else:
                x = min(max(x, -max_mm), max_mm)
            q = np.rint(x / scale) + 32768.0
            out[r, c] = np.uint16(min(max(q, 1.0), 65535.0))


def write_displacement_png(path: str | Path, disp, mask_path: str | Path | None = None) -> dict:
    """Write a :class:`facerecon.fitting.detail.DisplacementMap` as a 16-bit PNG (atomic); with
    ``mask_path`` also its mask (8-bit, 255 = measured).  Returns the encoding (scale_mm, offset_mm,
    zero_code) for pose.json."""
    code, enc = encode_displacement(disp.displacement, disp.max_mm, disp.mask)
    write_bytes_atomic(path, png_bytes(code, PNG_LEVEL, "displacement map"))  # one 16-bit grey channel
    if mask_path is not None:
        write_bytes_atomic(mask_path, png_bytes(np.where(disp.mask, 255, 0).astype(np.uint8), 6, "mask"))
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
    write_bytes_atomic(path, png_bytes(normal_map, 6, "normal map"))
