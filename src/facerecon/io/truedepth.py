"""iPhone TrueDepth frames (StandardCyborg PLY layout) and fused TrueDepth point clouds.

A frame is a binary PLY with elements ``metadata`` (a JSON document, one char per
row), ``color`` (W*H rows of float r, g, b in 0..1) and ``depth`` (W*H floats, metres),
row-major.  The JSON gives the camera matrix (column-major) at a reference resolution
(3088 x 2316) that we scale down to the depth image.  9999 m is the sentinel for "no
measurement"; real background (walls at 2-8 m) is kept.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..geometry.camera import Intrinsics
from ..errors import InputFileError
from ._common import check_fixed_unit, check_image_size, checked_intrinsics, clean_depth_mm, guard_reader
from .frame import DepthFrame
from .ply import read_ply_elements

# Depth at or beyond this many metres is a sentinel (the files use 9999), not a measurement.
_NO_MEASUREMENT_M = 100.0


def is_truedepth_ply(path: str | Path) -> bool:
    """Cheap sniff: a PLY whose header declares ``metadata`` and ``depth`` elements."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return head.startswith(b"ply") and b"element depth" in head and b"element metadata" in head


def _json_size(value: Any) -> int | None:
    """A JSON image dimension as an int, or None when it is not a whole positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not (np.isfinite(value) and value == int(value) and value > 0):
        return None
    return int(value)


def _intrinsics_from_json(path: Path, info: dict[str, Any], width: int, height: int) -> Intrinsics:
    """Camera matrix scaled from the reference resolution to ``width`` x ``height``.

    ``intrinsic_matrix`` is column-major ``[fx,0,0, 0,fy,0, cx,cy,1]``.  Scaling is plain
    (``cx * w / W_ref``), which is how StandardCyborg and the formats doc use it.
    """
    try:
        cam = info["camera_intrinsics"]
        k = np.asarray(cam["intrinsic_matrix"], dtype=np.float64).reshape(3, 3).T  # column-major -> rows
        ref_w = float(cam.get("intrinsic_matrix_reference_dimensions_width", width))
        ref_h = float(cam.get("intrinsic_matrix_reference_dimensions_height", height))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputFileError(path, f"TrueDepth metadata has no usable camera_intrinsics ({exc.__class__.__name__})") from None
    if not (np.isfinite([ref_w, ref_h]).all() and ref_w > 0 and ref_h > 0):
        raise InputFileError(path, f"TrueDepth metadata has a non-positive or infinite reference size {ref_w:g} x {ref_h:g}")
    sx, sy = width / ref_w, height / ref_h
    return checked_intrinsics(
        path, k[0, 0] * sx, k[1, 1] * sy, k[0, 2] * sx, k[1, 2] * sy, width, height, "TrueDepth intrinsics (scaled to the depth image)"
    )


@guard_reader("TrueDepth PLY frame")
def read_truedepth_frame(path: str | Path, unit: str | None = None) -> DepthFrame:
    """Read one TrueDepth PLY frame: depth (mm), intrinsics from its JSON, colour (uint8).

    ``meta['truedepth']`` holds the JSON document (timestamps, lens distortion tables).
    The phone is usually held sideways, so faces may appear rotated by 90 degrees.
    """
    p = Path(path)
    check_fixed_unit(p, unit, "m", "TrueDepth PLY")
    header, data = read_ply_elements(p)
    for name in ("metadata", "depth"):
        if name not in data:
            raise InputFileError(p, f"not a TrueDepth frame: PLY has no {name!r} element")
    meta_el = data["metadata"]
    if len(meta_el) != 1:
        raise InputFileError(p, "TrueDepth metadata element must have exactly one char property")
    raw = np.asarray(next(iter(meta_el.values()))).astype(np.uint8).tobytes()
    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(p, f"TrueDepth metadata is not valid JSON ({exc.__class__.__name__})") from None
    except RecursionError:
        raise InputFileError(p, "TrueDepth metadata JSON is nested too deeply") from None
    if not isinstance(info, dict):
        raise InputFileError(p, f"TrueDepth metadata must be a JSON object, got {type(info).__name__}")
    cam = info.get("camera_intrinsics")
    cam = cam if isinstance(cam, dict) else {}
    width = _json_size(info.get("width") or cam.get("width"))
    height = _json_size(info.get("height") or cam.get("height"))
    if width is None or height is None:
        raise InputFileError(p, "TrueDepth metadata has no width/height as positive whole numbers")
    check_image_size(p, width, height, "TrueDepth metadata")
    dep_el = data["depth"]
    if len(dep_el) != 1:
        raise InputFileError(p, "TrueDepth depth element must have exactly one property")
    d = np.asarray(next(iter(dep_el.values())), dtype=np.float64)
    if d.size != width * height:
        raise InputFileError(p, f"TrueDepth depth has {d.size} values, metadata says {width} x {height}")
    # 9999 m (anything from 100 m) is the format's "no measurement"; negative or infinite
    # depth is cleaned with a warning
    depth_mm = clean_depth_mm(p, d.reshape(height, width) * 1000.0, silent_above_mm=_NO_MEASUREMENT_M * 1000.0)
    color = None
    col = data.get("color")
    if col and all(c in col for c in "rgb"):
        chans = [np.asarray(col[c]) for c in "rgb"]
        if all(ch.ndim == 1 and len(ch) == width * height and ch.dtype.kind == "f" for ch in chans):
            # the expression below in one compiled pass (the same values), on the reader thread of a batch
            from ._fixed import colour_u8

            color = np.empty((height, width, 3), np.uint8)
            colour_u8(*(np.ascontiguousarray(ch) for ch in chans), color.reshape(-1, 3))
        else:
            rgb = np.stack([np.asarray(ch, dtype=np.float64) for ch in chans], axis=-1)
            if rgb.shape[0] != width * height:
                raise InputFileError(p, f"TrueDepth colour has {rgb.shape[0]} pixels, metadata says {width} x {height}")
            rgb = np.nan_to_num(rgb, nan=0.0)
            color = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8).reshape(height, width, 3)
    k = _intrinsics_from_json(p, info, width, height)
    meta = {
        "format": "truedepth-ply",
        "truedepth": info,
        "ply_comments": header.comments,
        "intrinsics_source": "TrueDepth metadata, scaled from the reference resolution",
        "unit": "m",
    }
    return DepthFrame(depth_mm, k, str(p), color, meta)


@guard_reader("PLY point cloud")
def read_ply_points(path: str | Path, unit: str = "m") -> np.ndarray:
    """(N, 3) float64 vertices of a PLY point cloud, in millimetres.

    For ``Expected.ply`` (StandardCyborg fused cloud, metres).  Extra vertex properties
    (normals, colours, surfel radius) are ignored; use :func:`read_ply_cloud` for them.
    """
    return read_ply_cloud(path, unit)["points"]


@guard_reader("PLY point cloud")
def read_ply_cloud(path: str | Path, unit: str = "m") -> dict[str, np.ndarray]:
    """Vertices of a PLY point cloud: ``points`` (mm), and ``normals`` / ``colors`` (uint8) when present.

    Vertices with a NaN or infinite coordinate are dropped with an :class:`InputWarning`.
    """
    import warnings

    from ..errors import InputWarning
    from ._common import unit_factor

    p = Path(path)
    _, data = read_ply_elements(p)
    v = data.get("vertex")
    if not v or not all(k in v for k in "xyz"):
        raise InputFileError(p, "PLY file has no vertex x/y/z properties")
    with np.errstate(over="ignore", invalid="ignore"):
        pts = np.stack([np.asarray(v[k], dtype=np.float64) for k in "xyz"], axis=-1) * unit_factor(unit, "m")
    out: dict[str, np.ndarray] = {}
    keep = np.isfinite(pts).all(axis=1)
    if not keep.all():
        warnings.warn(f"{p}: {int((~keep).sum())} vertices with NaN or infinite coordinates dropped", InputWarning, stacklevel=2)
    out["points"] = pts[keep]
    if all(k in v for k in ("nx", "ny", "nz")):
        out["normals"] = np.stack([np.asarray(v[k], dtype=np.float64) for k in ("nx", "ny", "nz")], axis=-1)[keep]
    if all(k in v for k in ("red", "green", "blue")):
        out["colors"] = np.stack([np.asarray(v[k]) for k in ("red", "green", "blue")], axis=-1).astype(np.uint8)[keep]
    return out
