"""The on-disk shard container for synthetic samples: deterministic bytes, random access.

Shard file (``shard-000012.fsyn``)::

    b"FRSYN\\x00\\x01\\x00"          magic + format version 1
    uint32 LE  header length
    header     JSON (UTF-8, sorted keys): {"format", "version", "shard", "start", "count",
               "array_schema", "samples": [{"index", "meta", "blobs": {name: [offset, length]}}]}
    payload    blobs; offsets are relative to the start of the payload

Blobs per sample: ``depth`` (uint16 in units of ``depth_unit_mm``, 0 = no measurement)
coded as median-edge-predictor residual bytes with zero runs, then zlib (see
:func:`encode_depth`; ~20-40 KB per 640x480 Kinect frame), ``segment`` (uint8 scene
segments, run-length coded, then zlib; ~2 KB), and ``arrays`` (zlib of the label arrays in ``array_schema`` order,
little-endian).  No timestamps or other run-dependent values are written, so the same
(seed, preset, sensor, indices) always give the same bytes.
"""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
from numba import njit

from ..geometry.camera import Intrinsics
from ..errors import InputFileError
from ..fileutil import write_bytes_atomic

MAGIC = b"FRSYN\x00\x01\x00"
FORMAT = "facerecon-synth-shard"
VERSION = 1

#: Label arrays stored per sample (name, dtype, shape).
ARRAY_SCHEMA: list[tuple[str, str, tuple[int, ...]]] = [
    ("quaternion", "<f8", (4,)),
    ("translation_mm", "<f8", (3,)),
    ("euler_deg", "<f8", (3,)),
    ("identity", "<f4", (-1,)),
    ("expression", "<f4", (-1,)),
    ("landmarks_3d", "<f8", (68, 3)),
    ("landmarks_2d", "<f8", (68, 2)),
    ("landmarks_visible", "|u1", (68,)),
]


# -- maps: MED-predicted residual bytes with zero runs + zlib ----------------------------
# Byte codes: 0..252 residual e = b - 126; 253 n: run of n + 2 zero residuals; 255 lo hi: raw value.
_RUN, _RAW = 253, 255


@njit(cache=True)
def _med_encode(img, scale):
    """Quantise ``img * scale`` to uint16 (out of range -> 0) and code it against the median edge predictor."""
    h, w = img.shape
    q = np.empty((h, w), np.int64)
    out = np.empty(h * w * 3 + 16, np.uint8)
    pos = 0
    run = 0
    for y in range(h):
        for x in range(w):
            v = np.int64(np.floor(img[y, x] * scale + 0.5))
            if v < 0 or v > 65535:
                v = 0
            q[y, x] = v
            if y == 0:
                p = q[y, x - 1] if x > 0 else np.int64(0)
            elif x == 0:
                p = q[y - 1, 0]
            else:
                a, b, c = q[y, x - 1], q[y - 1, x], q[y - 1, x - 1]
                mx, mn = (a, b) if a > b else (b, a)
                p = mn if c >= mx else (mx if c <= mn else a + b - c)
            e = v - p
            if e == 0:
                run += 1
                if run == 257:
                    out[pos] = _RUN
                    out[pos + 1] = 255
                    pos += 2
                    run = 0
                continue
            if run > 0:
                pos = _flush_run(out, pos, run)
                run = 0
            if -126 <= e <= 126:
                out[pos] = e + 126
                pos += 1
            else:
                out[pos] = _RAW
                out[pos + 1] = v & 255
                out[pos + 2] = v >> 8
                pos += 3
    if run > 0:
        pos = _flush_run(out, pos, run)
    return out[:pos].copy()


@njit(cache=True)
def _flush_run(out, pos, run):
    if run <= 2:
        for _ in range(run):
            out[pos] = 126
            pos += 1
    else:
        out[pos] = _RUN
        out[pos + 1] = run - 2
        pos += 2
    return pos


@njit(cache=True)
def _med_decode(buf, out):
    h, w = out.shape
    pos = 0
    zeros = 0
    for y in range(h):
        for x in range(w):
            if y == 0:
                p = np.int64(out[y, x - 1]) if x > 0 else np.int64(0)
            elif x == 0:
                p = np.int64(out[y - 1, 0])
            else:
                a, b, c = np.int64(out[y, x - 1]), np.int64(out[y - 1, x]), np.int64(out[y - 1, x - 1])
                mx, mn = (a, b) if a > b else (b, a)
                p = mn if c >= mx else (mx if c <= mn else a + b - c)
            if zeros > 0:
                out[y, x] = p
                zeros -= 1
                continue
            code = buf[pos]
            if code == _RUN:
                zeros = np.int64(buf[pos + 1]) + 2 - 1
                pos += 2
                out[y, x] = p
            elif code == _RAW:
                out[y, x] = np.int64(buf[pos + 1]) | (np.int64(buf[pos + 2]) << 8)
                pos += 3
            else:
                out[y, x] = p + np.int64(code) - 126
                pos += 1
    return pos


@njit(cache=True)
def _rle_encode(img):
    """Runs over the flattened uint8 map: (value, length lo, length hi), length <= 65535."""
    flat = img.ravel()
    n = flat.shape[0]
    out = np.empty(3 * n + 3, np.uint8)
    pos = 0
    i = 0
    while i < n:
        v = flat[i]
        j = i + 1
        while j < n and flat[j] == v and j - i < 65535:
            j += 1
        out[pos] = v
        out[pos + 1] = (j - i) & 255
        out[pos + 2] = (j - i) >> 8
        pos += 3
        i = j
    return out[:pos].copy()


@njit(cache=True)
def _rle_decode(buf, out):
    flat = out.ravel()
    i = 0
    for k in range(0, buf.shape[0], 3):
        ln = np.int64(buf[k + 1]) | (np.int64(buf[k + 2]) << 8)
        flat[i : i + ln] = buf[k]
        i += ln


def _pack(code: int, shape: tuple[int, int], body: bytes) -> bytes:
    return struct.pack("<BII", code, shape[0], shape[1]) + zlib.compress(body, 1)


def encode_map(img: np.ndarray) -> bytes:
    """Lossless: 2-D uint16 map -> MED residual codes, uint8 label map -> runs; then zlib."""
    img = np.ascontiguousarray(img)
    if img.dtype == np.uint8:
        return _pack(3, img.shape, _rle_encode(img).tobytes())
    if img.dtype != np.uint16:
        raise ValueError(f"encode_map: uint8 or uint16 expected, got {img.dtype}")
    return _pack(2, img.shape, _med_encode(img, 1.0).tobytes())


def encode_depth(depth_mm: np.ndarray, unit_mm: float) -> bytes:
    """float depth (mm, 0 = missing) -> uint16 steps of ``unit_mm`` (beyond the range -> 0), coded as :func:`encode_map`."""
    d = np.ascontiguousarray(depth_mm, np.float32)
    return _pack(2, d.shape, _med_encode(d, 1.0 / float(unit_mm)).tobytes())


def decode_map(blob: bytes) -> np.ndarray:
    code, h, w = struct.unpack_from("<BII", blob, 0)
    body = np.frombuffer(zlib.decompress(blob[9:]), np.uint8)
    if code == 3:
        out = np.zeros((h, w), np.uint8)
        _rle_decode(body, out)
        return out
    out = np.zeros((h, w), np.uint8 if code == 1 else np.uint16)
    _med_decode(body, out)
    return out


# -- samples -------------------------------------------------------------------------------
def jsonable(x):
    """Plain-JSON version of labels/meta (numpy scalars/arrays -> Python numbers/lists)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    return x


@njit(cache=True)
def _quantize(img, scale):
    h, w = img.shape
    out = np.empty((h, w), np.uint16)
    for y in range(h):
        for x in range(w):
            v = np.int64(np.floor(img[y, x] * scale + 0.5))  # same arithmetic as _med_encode
            out[y, x] = v if 0 <= v <= 65535 else 0
    return out


def quantize_depth(depth_mm: np.ndarray, unit_mm: float) -> np.ndarray:
    """float mm -> uint16 in ``unit_mm`` steps, exactly as stored (beyond the uint16 range -> 0 = missing)."""
    return _quantize(np.ascontiguousarray(depth_mm, np.float32), 1.0 / float(unit_mm))


def encode_sample(depth_mm: np.ndarray, segment: np.ndarray, labels: dict, unit_mm: float) -> tuple[dict, dict]:
    """(meta JSON dict, {blob name: bytes}) for one sample."""
    arrays = b"".join(np.ascontiguousarray(np.asarray(labels[n]).astype(dt)).tobytes() for n, dt, _ in ARRAY_SCHEMA)
    names = {n for n, _, _ in ARRAY_SCHEMA}
    meta = jsonable({k: v for k, v in labels.items() if k not in names})
    blobs = {"depth": encode_depth(depth_mm, unit_mm), "segment": encode_map(segment),
             "arrays": zlib.compress(arrays, 6)}  # fmt: skip
    return meta, blobs


def decode_arrays(blob: bytes, n_identity: int, n_expression: int) -> dict:
    raw = zlib.decompress(blob)
    out, pos = {}, 0
    for name, dt, shape in ARRAY_SCHEMA:
        if shape == (-1,):
            shape = (n_identity,) if name == "identity" else (n_expression,)
        count = int(np.prod(shape))
        a = np.frombuffer(raw, dtype=dt, count=count, offset=pos).reshape(shape)
        pos += a.nbytes
        out[name] = a.astype(bool) if name == "landmarks_visible" else a.copy()
    return out


def write_shard(path: str | Path, shard: int, start: int, samples: list[tuple[int, dict, dict]], extra: dict) -> int:
    """Write [(index, meta, blobs)] atomically; returns the file size."""
    payload, entries, off = [], [], 0
    for index, meta, blobs in samples:
        pos = {}
        for name in sorted(blobs):
            pos[name] = [off, len(blobs[name])]
            payload.append(blobs[name])
            off += len(blobs[name])
        entries.append({"index": int(index), "meta": meta, "blobs": pos})
    header = {"format": FORMAT, "version": VERSION, "shard": int(shard), "start": int(start), "count": len(samples),
              "array_schema": [[n, d, list(s)] for n, d, s in ARRAY_SCHEMA], "samples": entries, **extra}  # fmt: skip
    hb = json.dumps(jsonable(header), sort_keys=True, separators=(",", ":")).encode("utf-8")
    data = MAGIC + struct.pack("<I", len(hb)) + hb + b"".join(payload)
    write_bytes_atomic(path, data)
    return len(data)


def read_shard_header(path: str | Path) -> tuple[dict, int]:
    """(header, payload offset) of a shard; raises InputFileError for anything not a complete shard."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:8] != MAGIC:
                raise InputFileError(p, "not a facerecon synthetic shard (bad magic)")
            (n,) = struct.unpack("<I", head[8:12])
            header = json.loads(f.read(n).decode("utf-8"))
            size = p.stat().st_size
    except (OSError, ValueError) as exc:
        raise InputFileError(p, f"cannot read shard: {exc}") from None
    end = max((off + ln for s in header.get("samples", []) for off, ln in s["blobs"].values()), default=0)
    if size < 12 + n + end:
        raise InputFileError(p, "truncated shard")
    return header, 12 + n


class ShardReader:
    """Random access to the samples of one shard (reads blobs on demand)."""

    def __init__(self, path: str | Path, n_identity: int = 100, n_expression: int = 55):
        self.path = Path(path)
        self.header, self._base = read_shard_header(self.path)
        self.n_identity, self.n_expression = n_identity, n_expression

    def __len__(self) -> int:
        return int(self.header["count"])

    def _blob(self, entry: dict, name: str) -> bytes:
        off, ln = entry["blobs"][name]
        with open(self.path, "rb") as f:
            f.seek(self._base + off)
            return f.read(ln)

    def sample(self, i: int, unit_mm: float) -> dict:
        """Raw sample ``{"depth_mm", "intrinsics", "labels", "segment"}`` (see :mod:`.dataset`)."""
        e = self.header["samples"][i]
        labels = dict(e["meta"])
        labels.update(decode_arrays(self._blob(e, "arrays"), self.n_identity, self.n_expression))
        depth = decode_map(self._blob(e, "depth")).astype(np.float32) * np.float32(unit_mm)
        return {"depth_mm": depth, "intrinsics": Intrinsics.from_dict(labels["intrinsics"]), "labels": labels,
                "segment": decode_map(self._blob(e, "segment"))}  # fmt: skip
