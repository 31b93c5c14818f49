"""PCD v0.7 (Point Cloud Library) reader: ascii, binary and binary_compressed.

Organised clouds (HEIGHT > 1, e.g. a Kinect frame) become a :class:`DepthFrame` whose
depth is z and whose intrinsics are fitted to the cloud itself, since PCD files carry no
camera model.  Unorganised clouds (HEIGHT 1, e.g. the ``object_template_*.pcd`` face
patches) are point sets: read them with :func:`read_pcd_points`, or project them into a
depth image by giving intrinsics.  PCL stores metres; NaN marks a missing point.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..geometry.camera import Intrinsics, fit_intrinsics
from ..errors import ConfigError, InputFileError
from ._common import (
    check_bytes,
    check_count,
    check_file,
    check_plausible_mm,
    checked_intrinsics,
    clean_depth_mm,
    guard_reader,
    read_bytes,
    unit_factor,
)
from .frame import DepthFrame
from .lzf import LZFError, lzf_decompress

_TYPES = {
    ("F", 4): "<f4", ("F", 8): "<f8",
    ("U", 1): "u1", ("U", 2): "<u2", ("U", 4): "<u4", ("U", 8): "<u8",
    ("I", 1): "i1", ("I", 2): "<i2", ("I", 4): "<i4", ("I", 8): "<i8",
}  # fmt: skip

# Most bytes a binary_compressed block may expand to (512 MiB: 16 Mpx of 32-byte points).
_MAX_UNCOMPRESSED = 512 * 2**20

# Above this RMS reprojection error (pixels) an organised cloud is not a pinhole image
# (e.g. it was transformed after capture) and no intrinsics are reported.
_MAX_FIT_RMS_PX = 1.0


@dataclass
class PCDHeader:
    """The parsed header; ``data_offset`` is where the payload starts in the file."""

    fields: list[str]
    sizes: list[int]
    types: list[str]
    counts: list[int]
    width: int
    height: int
    points: int
    data: str
    viewpoint: tuple[float, ...] = (0, 0, 0, 1, 0, 0, 0)
    version: str = ""
    data_offset: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def organised(self) -> bool:
        return self.height > 1

    def dtypes(self) -> list[np.dtype]:
        return [np.dtype(_TYPES[(t, s)]) for t, s in zip(self.types, self.sizes)]

    @property
    def point_step(self) -> int:
        return sum(s * c for s, c in zip(self.sizes, self.counts))


def _parse_header(path: Path, blob: bytes) -> PCDHeader:
    values: dict[str, list[str]] = {}
    version = ""
    pos = 0
    while True:
        end = blob.find(b"\n", pos)
        if end < 0:
            raise InputFileError(path, "PCD header has no DATA line (truncated or not a PCD file)")
        line = blob[pos:end].decode("ascii", errors="replace").strip()
        pos = end + 1
        if not line or line.startswith("#"):
            continue
        key, *rest = line.split()
        key = key.upper()
        if key == "VERSION":
            version = " ".join(rest)
        values[key] = rest
        if key == "DATA":
            break
        if pos > 65536:
            raise InputFileError(path, "no PCD header found in the first 64 KiB")
    try:
        fields = values.get("FIELDS") or values["COLUMNS"]
        sizes = [int(s) for s in values["SIZE"]]
        types = [t.upper() for t in values["TYPE"]]
        counts = [int(c) for c in values.get("COUNT", ["1"] * len(fields))]
        width = int(values["WIDTH"][0])
        height = int(values.get("HEIGHT", ["1"])[0])
        points = int(values.get("POINTS", [str(width * height)])[0])
        data = values["DATA"][0].lower()
        viewpoint = tuple(float(v) for v in values.get("VIEWPOINT", ["0", "0", "0", "1", "0", "0", "0"]))
    except (KeyError, IndexError, ValueError) as exc:
        raise InputFileError(path, f"PCD header is incomplete or malformed ({exc.__class__.__name__}: {exc})") from None
    if not (len(fields) == len(sizes) == len(types) == len(counts)):
        raise InputFileError(path, "PCD header: FIELDS, SIZE, TYPE and COUNT have different lengths")
    if any(c < 1 for c in counts):
        raise InputFileError(path, f"PCD header: COUNT must be at least 1 for every field, got {' '.join(map(str, counts))}")
    if any(c > 1024 for c in counts):  # PCL's widest fields (histograms) have a few hundred values
        raise InputFileError(path, f"PCD header: COUNT {max(counts)} is over the cap of 1024 values per field")
    check_count(path, points, "PCD point")
    for t, s in zip(types, sizes):
        if (t, s) not in _TYPES:
            raise InputFileError(path, f"PCD header: unsupported field type {t}{s}")
    if width <= 0 or height <= 0 or width * height != points:
        raise InputFileError(path, f"PCD header: WIDTH x HEIGHT = {width} x {height} does not match POINTS {points}")
    if data not in ("ascii", "binary", "binary_compressed"):
        raise InputFileError(path, f"PCD DATA type {data!r} is not ascii, binary or binary_compressed")
    extra = {k: " ".join(v) for k, v in values.items() if k not in {"FIELDS", "SIZE", "TYPE", "COUNT", "DATA"}}
    return PCDHeader(fields, sizes, types, counts, width, height, points, data, viewpoint, version, pos, extra)


def _read_fields(path: Path, blob: bytes, h: PCDHeader) -> dict[str, np.ndarray]:
    """Field name -> (POINTS, COUNT) array, for every field (padding ``_`` fields dropped)."""
    n = h.points
    out: dict[str, np.ndarray] = {}
    payload = memoryview(blob)[h.data_offset :]
    if h.data == "ascii":
        # every value takes at least one character and one separator: refuse before splitting
        check_bytes(path, n * sum(h.counts) * 2 - 1, len(payload), "PCD ascii data")
        try:
            flat = np.array(bytes(payload).split(), dtype=np.float64)
        except ValueError:
            raise InputFileError(path, "PCD ascii data contains a value that is not a number") from None
        per_point = sum(h.counts)
        if flat.size != n * per_point:
            raise InputFileError(path, f"PCD ascii data has {flat.size} values, header announces {n} x {per_point}")
        table = flat.reshape(n, per_point)
        col = 0
        for name, c, dt in zip(h.fields, h.counts, h.dtypes()):
            out.setdefault(name, table[:, col : col + c].astype(dt) if dt.kind != "f" else table[:, col : col + c])
            col += c
    elif h.data == "binary":
        need = n * h.point_step
        if len(payload) < need:
            raise InputFileError(path, f"PCD binary data is truncated: {len(payload)} bytes, need {need}")
        records = np.frombuffer(payload, dtype=np.uint8, count=need).reshape(n, h.point_step)
        col = 0
        for name, s, c, dt in zip(h.fields, h.sizes, h.counts, h.dtypes()):
            chunk = np.ascontiguousarray(records[:, col : col + s * c])
            out.setdefault(name, chunk.view(dt).reshape(n, c))
            col += s * c
    else:  # binary_compressed: uint32 compressed size, uint32 raw size, LZF; fields one after another
        if len(payload) < 8:
            raise InputFileError(path, "PCD binary_compressed data is truncated (no size header)")
        csize, usize = struct.unpack("<II", payload[:8])
        if csize > len(payload) - 8:
            raise InputFileError(path, f"PCD compressed block is truncated: {len(payload) - 8} of {csize} bytes present")
        need = n * h.point_step
        if usize != need:
            raise InputFileError(path, f"PCD compressed block expands to {usize} bytes, header implies {need}")
        # an LZF back reference of 3 bytes yields at most 264: no valid block expands more than 88-fold
        if usize > 88 * csize + 1:
            raise InputFileError(path, f"PCD compressed block of {csize} bytes cannot expand to {usize}")
        check_count(path, usize, "PCD uncompressed byte", _MAX_UNCOMPRESSED)
        try:
            raw = lzf_decompress(payload[8 : 8 + csize], usize)
        except LZFError as exc:
            raise InputFileError(path, f"corrupt PCD compressed block: {exc}") from None
        offset = 0
        for name, s, c, dt in zip(h.fields, h.sizes, h.counts, h.dtypes()):
            out.setdefault(name, np.frombuffer(raw, dtype=dt, count=n * c, offset=offset).reshape(n, c))
            offset += n * s * c
    out.pop("_", None)
    return out


def _xyz(path: Path, fields: dict[str, np.ndarray]) -> np.ndarray:
    missing = [k for k in "xyz" if k not in fields]
    if missing:
        raise InputFileError(path, f"PCD file has no {'/'.join(missing)} field (fields: {', '.join(fields)})")
    return np.stack([fields[k][:, 0].astype(np.float64) for k in "xyz"], axis=-1)


def _colour(fields: dict[str, np.ndarray]) -> np.ndarray | None:
    """(N, 3) uint8 from a packed ``rgb``/``rgba`` field, or None."""
    for key in ("rgb", "rgba"):
        if key in fields and fields[key].dtype.itemsize == 4:
            packed = np.ascontiguousarray(fields[key][:, 0]).view(np.uint32)
            return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=-1).astype(np.uint8)
        if key in fields and fields[key].dtype.kind == "f" and fields[key].dtype.itemsize == 8:  # ascii
            packed = fields[key][:, 0].astype(np.float32).view(np.uint32)
            return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=-1).astype(np.uint8)
    return None


@guard_reader("PCD")
def read_pcd_header(path: str | Path) -> PCDHeader:
    """Only the header (cheap: for sniffing and listing)."""
    p = check_file(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(65536 + 1024)
    except OSError as exc:
        raise InputFileError(p, f"cannot read: {exc.strerror or exc}") from None
    return _parse_header(p, head)


@guard_reader("PCD")
def read_pcd_points(path: str | Path, unit: str | None = None) -> np.ndarray:
    """(N, 3) float64 points in millimetres (camera frame), NaN points dropped.

    Works for organised and unorganised clouds; ``unit`` is the stored unit (PCL: 'm').
    """
    p = Path(path)
    blob = read_bytes(p)
    h = _parse_header(p, blob)
    pts = _xyz(p, _read_fields(p, blob, h)) * unit_factor(unit, "m")
    finite = np.isfinite(pts).all(axis=1)
    if not finite.all() and not np.isnan(pts[~finite]).any(axis=1).all():
        _warn_infinite(p, int((~np.isnan(pts[~finite]).any(axis=1)).sum()))
    pts = pts[finite]
    check_plausible_mm(p, pts[:, 2][pts[:, 2] > 0] if pts.size else pts, unit or "m")
    return pts


def _warn_infinite(path: Path, n: int) -> None:
    import warnings

    from ..errors import InputWarning

    warnings.warn(f"{path}: {n} points with infinite coordinates dropped", InputWarning, stacklevel=3)


def points_to_depth(points_mm: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Z-buffer an (N, 3) camera-frame cloud into an (H, W) depth image (nearest point wins)."""
    pts = np.asarray(points_mm, dtype=np.float64)
    pts = pts[np.isfinite(pts).all(axis=1) & (pts[:, 2] > 0)]
    depth = np.zeros((intrinsics.height, intrinsics.width), dtype=np.float32)
    if pts.size == 0:
        return depth
    uv = np.rint(intrinsics.project(pts)).astype(np.int64)
    ok = (uv[:, 0] >= 0) & (uv[:, 0] < intrinsics.width) & (uv[:, 1] >= 0) & (uv[:, 1] < intrinsics.height)
    uv, z = uv[ok], pts[ok, 2]
    order = np.argsort(-z)  # far first, so nearer points overwrite them
    depth[uv[order, 1], uv[order, 0]] = z[order]
    return depth


@guard_reader("PCD")
def read_pcd(path: str | Path, unit: str | None = None, intrinsics: Intrinsics | None = None) -> DepthFrame:
    """Read a PCD file as a depth frame (depth = z in mm).

    Organised clouds give one pixel per point and intrinsics fitted to the points
    (``meta['intrinsics_fit_rms_px']`` says how well); a given ``intrinsics`` overrides
    them.  Unorganised clouds need ``intrinsics`` and are projected (z-buffer).
    """
    p = Path(path)
    blob = read_bytes(p)
    h = _parse_header(p, blob)
    fields = _read_fields(p, blob, h)
    scale = unit_factor(unit, "m")
    pts = _xyz(p, fields) * scale
    colour = _colour(fields)
    meta: dict = {"format": f"pcd-{h.data}", "pcd_header": h.extra, "viewpoint": h.viewpoint, "unit": unit or "m"}
    if not h.organised:
        if intrinsics is None:
            raise InputFileError(
                p, f"unorganised point cloud ({h.points} points, HEIGHT 1) is not a depth image; "
                "give intrinsics/--camera to project it, or use read_pcd_points"
            )
        depth = points_to_depth(pts, intrinsics)
        check_plausible_mm(p, depth, unit or "m")
        depth = clean_depth_mm(p, depth)
        meta["projected_points"] = int(np.isfinite(pts).all(axis=1).sum())
        return DepthFrame(depth, intrinsics, str(p), None, meta)

    cloud = pts.reshape(h.height, h.width, 3)
    check_plausible_mm(p, cloud[..., 2], unit or "m")
    depth = clean_depth_mm(p, cloud[..., 2])  # NaN = no point (PCL); negative/infinite z warned about
    fitted: Intrinsics | None = None
    try:
        with np.errstate(all="ignore"):
            fitted = fit_intrinsics(cloud)
            rms = _fit_rms(cloud, fitted)
        meta["intrinsics_fit_rms_px"] = rms
        if not rms <= _MAX_FIT_RMS_PX:
            fitted = None
        else:  # a mirrored or degenerate cloud can fit a negative or zero focal length
            fitted = checked_intrinsics(p, fitted.fx, fitted.fy, fitted.cx, fitted.cy, h.width, h.height, "fitted intrinsics")
    except (ValueError, np.linalg.LinAlgError):  # too few valid points
        fitted = None
    except InputFileError:
        fitted = None
    if fitted is not None:
        meta["intrinsics_source"] = "fitted to the organised cloud"
    if intrinsics is not None:
        if (intrinsics.width, intrinsics.height) != (h.width, h.height):
            raise ConfigError(
                f"{p}: camera intrinsics are for {intrinsics.width}x{intrinsics.height}, the cloud is {h.width}x{h.height}"
            )
        meta["intrinsics_source"] = "given"
        fitted = intrinsics
    rgb = colour.reshape(h.height, h.width, 3) if colour is not None else None
    return DepthFrame(depth, fitted, str(p), rgb, meta)


def _fit_rms(cloud: np.ndarray, k: Intrinsics) -> float:
    ok = np.isfinite(cloud).all(-1) & (cloud[..., 2] > 0)
    vv, uu = np.nonzero(ok)
    uv = k.project(cloud[ok])
    return float(np.sqrt(np.mean((uv[:, 0] - uu) ** 2 + (uv[:, 1] - vv) ** 2)))


def write_pcd(path: str | Path, points_mm: np.ndarray, data: str = "binary_compressed") -> None:
    """Write x, y, z (float32, metres as PCL expects) to a PCD v0.7 file (atomic).

    ``points_mm`` is (H, W, 3) for an organised cloud or (N, 3); NaN marks missing points.
    ``binary_compressed`` uses literal-only LZF runs (valid, not smaller).
    """
    from ..fileutil import atomic_path
    from .lzf import lzf_compress_literal

    pts = np.asarray(points_mm, dtype=np.float64)
    if pts.ndim == 3 and pts.shape[-1] == 3:
        height, width = pts.shape[:2]
    elif pts.ndim == 2 and pts.shape[-1] == 3:
        height, width = 1, pts.shape[0]
    else:
        raise ValueError(f"points must be (H, W, 3) or (N, 3), got {pts.shape}")
    xyz = (pts.reshape(-1, 3) / 1000.0).astype("<f4")
    n = xyz.shape[0]
    header = (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\n"
        f"COUNT 1 1 1\nWIDTH {width}\nHEIGHT {height}\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {data}\n"
    ).encode("ascii")
    if data == "ascii":
        body = "".join(" ".join("nan" if not np.isfinite(c) else f"{c:.7g}" for c in row) + "\n" for row in xyz.tolist()).encode()
    elif data == "binary":
        body = xyz.tobytes()
    elif data == "binary_compressed":
        raw = np.ascontiguousarray(xyz.T).tobytes()  # field after field
        comp = lzf_compress_literal(raw)
        body = struct.pack("<II", len(comp), len(raw)) + comp
    else:
        raise ValueError(f"data must be ascii, binary or binary_compressed, got {data!r}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(header + body)
