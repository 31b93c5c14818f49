"""A small, seeded mutation fuzzer for every public reader (used by the test suite and
``benchmarks/fuzz.py``).

The contract it checks: whatever bytes a file holds, a reader returns a value or raises
a :class:`~facerecon.errors.FaceReconError`; it never raises anything else, never runs
past a time cap and never allocates past a memory cap.  Cases are a pure function of
``(master seed, case index, corpus)``, so any failure is replayed from its index alone.

Seeds are small valid files the project's writers produce (plus a hand-made TrueDepth
PLY, point clouds, Biwi companions, landmark JSON and hostile variants that once crashed
a reader); callers may add real files.  Mutations: truncation, bit and byte flips,
interesting integers and floats (0, -1, 2^31, NaN, Inf, ...) written over the bytes,
inserted/deleted/duplicated ranges, edits of the numbers and words of a text header,
re-zipped ``.npz`` members, and content written under another format's extension.
"""
from __future__ import annotations

import io
import json
import random
import re
import signal
import struct
import time
import traceback
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import FaceReconError
from ..geometry.camera import Intrinsics
from ..io import biwi, images, mesh, pcd, ply, read_depth, truedepth
from ..io.biwi import write_biwi_frame
from ..io.images import write_depth_npz, write_depth_png
from ..io.mesh import write_mesh
from ..io.pcd import write_pcd

#: Per-case caps the fuzzer enforces (``benchmarks/fuzz.py`` and the test use these).
TIME_CAP_S = 10.0
MEMORY_CAP_BYTES = 1 << 30


# -- seed files ------------------------------------------------------------------------


@dataclass
class Seed:
    """One seed file: ``name`` is the file name it is written under (the suffix matters)."""

    name: str
    data: bytes
    kind: str  # which readers take it: png, npy, npz, pcd, truedepth, plycloud, bin, pose, cal, obj, plymesh, ljson


def truedepth_ply_bytes(
    depth_m: np.ndarray, info: dict | None = None, color: np.ndarray | None = None, raw_meta: bytes | None = None
) -> bytes:
    """A TrueDepth frame in the StandardCyborg PLY layout (binary little endian).

    ``info`` is the metadata JSON (default: a camera like the real files', scaled to the
    image); ``raw_meta`` replaces the encoded JSON bytes verbatim (for hostile metadata).
    """
    h, w = depth_m.shape
    if info is None:
        info = {
            "camera_intrinsics": {
                "width": w, "height": h,
                "intrinsic_matrix": [2881.16, 0, 0, 0, 2881.16, 0, 1536.59, 1149.33, 1],
                "intrinsic_matrix_reference_dimensions_width": 3088.0,
                "intrinsic_matrix_reference_dimensions_height": 2316.0,
            }
        }  # fmt: skip
    meta = raw_meta if raw_meta is not None else json.dumps(info).encode()
    if color is None:
        color = np.full((h, w, 3), 0.5, np.float32)
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment StandardCyborgFusionVersion 1.2.0\n"
        f"element metadata {len(meta)}\nproperty uchar char\nelement color {h * w}\nproperty float r\nproperty float g\n"
        f"property float b\nelement depth {h * w}\nproperty float d\nend_header\n"
    ).encode()
    return header + meta + np.asarray(color, "<f4").reshape(-1, 3).tobytes() + np.asarray(depth_m, "<f4").ravel().tobytes()


def _head_depth_mm(h: int = 12, w: int = 16) -> np.ndarray:
    """A small synthetic 'head': a sphere cap 600 mm away with a few holes."""
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    d = np.where(r2 < 1, 600 - 80 * np.sqrt(np.clip(1 - r2, 0, 1)), 1500.0)
    d[0, 0] = d[3, 5] = 0
    return d.astype(np.float32)


def build_corpus(folder: Path, real_dir: Path | None = None, big: bool = False) -> list[Seed]:
    """Seed files written by the project's writers into ``folder`` and read back as bytes.

    ``real_dir`` (the development data's ``data/real`` folder) adds real files: the small ones always, the
    ~1 MB ones (``person.pcd``, a TrueDepth frame, ``james.obj``) only when ``big``.
    """

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    d = _head_depth_mm()
    h, w = d.shape
    k = Intrinsics(20.0, 20.0, w / 2 - 0.5, h / 2 - 0.5, w, h)
    seeds: list[Seed] = []

    def add(name: str, kind: str, data: bytes | None = None) -> None:
        seeds.append(Seed(name, data if data is not None else (folder / name).read_bytes(), kind))

    write_depth_png(folder / "frame.png", d)
    add("frame.png", "png")
    buf = io.BytesIO()
    np.save(buf, d)
    add("frame.npy", "npy", buf.getvalue())
    buf = io.BytesIO()
    np.save(buf, (d / 1000).astype(np.float64))
    add("metres.npy", "npy", buf.getvalue())
    write_depth_npz(folder / "frame.npz", d, k, np.zeros((h, w, 3), np.uint8))
    add("frame.npz", "npz")
    buf = io.BytesIO()
    np.savez(buf, depth=d, intrinsics=np.array([20.0, 20.0, 7.5, 5.5]), unit=np.array("mm"))  # stored, not deflated
    add("stored.npz", "npz", buf.getvalue())
    # organised clouds (one per DATA encoding) and an unorganised one
    vv, uu = np.mgrid[0:h, 0:w]
    z = np.where(d > 0, d, np.nan)
    cloud = np.stack([(uu - k.cx) * z / k.fx, (vv - k.cy) * z / k.fy, z], -1)
    for data in ("ascii", "binary", "binary_compressed"):
        write_pcd(folder / f"cloud_{data}.pcd", cloud, data)
        add(f"cloud_{data}.pcd", "pcd")
    write_pcd(folder / "points.pcd", cloud.reshape(-1, 3)[:40], "ascii")
    add("points.pcd", "pcd")
    add("frame.ply", "truedepth", truedepth_ply_bytes(np.where(d > 0, d / 1000, 9999.0)))
    pts = cloud.reshape(-1, 3)[:30] / 1000
    pts = pts[np.isfinite(pts).all(1)]
    rows = "\n".join(f"{x:.5f} {y:.5f} {zz:.5f} 0 0 1 200 100 50" for x, y, zz in pts)
    add("cloud_ascii.ply", "plycloud", (
        f"ply\nformat ascii 1.0\nelement vertex {len(pts)}\nproperty float x\nproperty float y\nproperty float z\n"
        "property float nx\nproperty float ny\nproperty float nz\nproperty uchar red\nproperty uchar green\n"
        "property uchar blue\nelement face 1\nproperty list uchar int vertex_indices\nproperty uchar flag\nend_header\n"
        f"{rows}\n3 0 1 2 7\n"
    ).encode())  # fmt: skip
    add("cloud_binary.ply", "plycloud", (
        f"ply\nformat binary_big_endian 1.0\nelement vertex {len(pts)}\nproperty double x\nproperty double y\n"
        "property double z\nend_header\n"
    ).encode() + pts.astype(">f8").tobytes())  # fmt: skip
    write_biwi_frame(folder / "frame_00001_depth.bin", d, (np.eye(3), np.array([1.0, 2.0, 600.0])), k)
    add("frame_00001_depth.bin", "bin")
    add("frame_00001_pose.txt", "pose")
    add("depth.cal", "cal")
    verts = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [10, 10, 5]], float)
    write_mesh(folder / "quad.obj", verts, [[0, 1, 3, 2]], uv=np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float),
               face_uv=[[0, 1, 3, 2]])  # fmt: skip
    add("quad.obj", "obj")
    write_mesh(folder / "tri.ply", verts, [[0, 1, 2], [1, 3, 2]])
    add("tri.ply", "plymesh")
    lm = [[float(i), float(i % 7), 1.5] for i in range(68)]
    add("face.ljson", "ljson", json.dumps({"landmarks": {"points": lm}, "labels": [
        {"label": "jaw", "mask": list(range(17))}, {"label": "nose", "mask": list(range(27, 36))}]}).encode())
    # hostile variants that once crashed a reader: the mutations start from them too
    add("deep.ply", "truedepth", truedepth_ply_bytes(d[:2, :2] / 1000, raw_meta=b"[" * 5000 + b"]" * 5000))
    add("wrongtype.ply", "truedepth", truedepth_ply_bytes(d[:2, :2] / 1000, raw_meta=b"[1, 2, 3]"))
    add("huge_00002_depth.bin", "bin", struct.pack("<ii", 16384, 16384) + struct.pack("<ii", 16384 * 16384, 0))
    if real_dir is not None:
        real = Path(real_dir)
        small = [("kinect-pcl/object_template_0.pcd", "pcd"), ("kinect-pcl/object_template_3.pcd", "pcd"),
                 ("scan-james/james.ljson", "ljson")]  # fmt: skip
        large = [("kinect-pcl/person.pcd", "pcd"), ("truedepth-mannequin/DepthFrames/frame-000.ply", "truedepth"),
                 ("scan-james/james.obj", "obj")]  # fmt: skip
        for rel, kind in small + (large if big else []):
            f = real / rel
            if f.is_file():
                add(f"real_{f.name}", kind, f.read_bytes())
    return seeds


# -- readers under test ----------------------------------------------------------------

_DEPTH_KINDS = ("png", "npy", "npz", "pcd", "truedepth", "bin")


def _readers() -> dict[str, tuple[tuple[str, ...], Callable[[Path], object]]]:
    """Reader name -> (seed kinds it takes, call on a path)."""

    def pcd_projected(p: Path):
        return pcd.read_pcd(p, intrinsics=Intrinsics(20.0, 20.0, 7.5, 5.5, 16, 12))

    return {
        "read_depth": (_DEPTH_KINDS, read_depth),
        "read_depth_png": (("png",), images.read_depth_png),
        "read_depth_npy": (("npy",), images.read_depth_npy),
        "read_depth_npz": (("npz",), images.read_depth_npz),
        "read_pcd": (("pcd",), pcd.read_pcd),
        "read_pcd(intrinsics)": (("pcd",), pcd_projected),
        "read_pcd_points": (("pcd",), pcd.read_pcd_points),
        "read_truedepth_frame": (("truedepth",), truedepth.read_truedepth_frame),
        "read_ply_cloud": (("plycloud", "truedepth"), truedepth.read_ply_cloud),
        "read_ply_elements": (("plycloud", "truedepth", "plymesh"), ply.read_ply_elements),
        "read_biwi_frame": (("bin",), biwi.read_biwi_frame),
        "read_biwi_pose": (("pose",), biwi.read_biwi_pose),
        "read_biwi_calibration": (("cal",), lambda p: biwi.read_biwi_calibration(p, 16, 12)),
        "read_mesh": (("obj", "plymesh"), mesh.read_mesh),
        "read_ljson_landmarks": (("ljson",), mesh.read_ljson_landmarks),
    }  # fmt: skip


READER_NAMES = tuple(_readers())


# -- mutations -------------------------------------------------------------------------

_INT_BYTES = [struct.pack("<i", v) for v in (0, -1, 1, 2**31 - 1, -(2**31), 65535, 65536, 16384, 3)] + [
    struct.pack("<I", 0xFFFFFFFF), struct.pack("<q", 2**62), struct.pack(">i", 2**30)]  # fmt: skip
_FLOAT_BYTES = [struct.pack("<f", v) for v in (float("nan"), float("inf"), -float("inf"), 0.0, -1.0, 3.4e38, 1e-30)] + [
    struct.pack("<d", v) for v in (float("nan"), float("inf"), 1e308, -0.0)]  # fmt: skip
_TOKENS = ["0", "-1", "1", "-2147483649", "2147483648", "99999999999999999999999", "1e309", "-1e309", "nan", "NaN",
           "inf", "Infinity", "-Infinity", "3.5", "", "x", "16384", "1e-320", "null", "[]", "{}", '"640"', "true"]  # fmt: skip
_NUMBER = re.compile(rb"-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")
_WORD = re.compile(rb"[A-Za-z_][A-Za-z_0-9]*")


def _header_len(data: bytes) -> int:
    """Length of the text-like head of a file (header of PLY/PCD/npy, or the whole text file)."""
    for marker in (b"end_header\n", b"\nDATA ascii\n", b"\nDATA binary\n", b"\nDATA binary_compressed\n"):
        i = data.find(marker)
        if 0 <= i < 65536:
            return i + len(marker)
    if data.startswith(b"\x93NUMPY") and len(data) > 10:
        return min(len(data), 10 + int.from_bytes(data[8:10], "little"))
    sample = data[:4096]
    if sample and sum(32 <= c < 127 or c in (9, 10, 13) for c in sample) > 0.95 * len(sample):
        return len(data)
    return min(len(data), 64)


def _m_truncate(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    hl = _header_len(data)
    cut = rng.randrange(0, hl + 1) if rng.random() < 0.4 else rng.randrange(0, len(data))
    return data[:cut]


def _m_flip(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    b = bytearray(data)
    hl = _header_len(data)
    for _ in range(rng.randint(1, 16)):
        i = rng.randrange(0, hl) if rng.random() < 0.5 and hl else rng.randrange(0, len(b))
        b[i] = b[i] ^ (1 << rng.randrange(8)) if rng.random() < 0.6 else rng.randrange(256)
    return bytes(b)


def _m_interesting(data: bytes, rng: random.Random) -> bytes:
    if len(data) < 8:
        return data
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        val = rng.choice(_INT_BYTES + _FLOAT_BYTES)
        i = rng.randrange(0, len(b) - len(val) + 1)
        if rng.random() < 0.6:
            i -= i % len(val)
        b[i : i + len(val)] = val
    return bytes(b)


def _m_nan_payload(data: bytes, rng: random.Random) -> bytes:
    """NaN/Inf/huge floats over aligned 4- or 8-byte words after the header."""
    hl = _header_len(data)
    if len(data) - hl < 8:
        return _m_interesting(data, rng)
    b = bytearray(data)
    width = rng.choice((4, 8))
    for _ in range(rng.randint(1, 32)):
        i = hl + rng.randrange(0, (len(b) - hl) // width) * width
        val = struct.pack("<f" if width == 4 else "<d", rng.choice([float("nan"), float("inf"), -float("inf"), 1e30, -5.0]))
        b[i : i + width] = val
    return bytes(b)


def _m_range(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    i = rng.randrange(0, len(data))
    j = min(len(data), i + rng.choice((1, 2, 4, 8, 64, 1024)))
    op = rng.randrange(3)
    if op == 0:  # delete
        return data[:i] + data[j:]
    if op == 1:  # duplicate
        return data[:j] + data[i:j] + data[j:]
    return data[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))) + data[i:]  # insert


def _m_header_token(data: bytes, rng: random.Random) -> bytes:
    hl = _header_len(data)
    head, tail = data[:hl], data[hl:]
    nums = list(_NUMBER.finditer(head))
    words = list(_WORD.finditer(head))
    lines = head.split(b"\n")
    op = rng.randrange(5)
    if op <= 1 and nums:
        m = rng.choice(nums)
        head = head[: m.start()] + rng.choice(_TOKENS).encode() + head[m.end() :]
    elif op == 2 and len(words) > 1:
        m, other = rng.choice(words), rng.choice(words)
        head = head[: m.start()] + other.group() + head[m.end() :]
    elif op == 3 and len(lines) > 2:
        i = rng.randrange(len(lines) - 1)
        if rng.random() < 0.5:
            lines.insert(i, lines[i])  # duplicate a line (duplicate properties, elements)
        else:
            del lines[i]
        head = b"\n".join(lines)
    elif words:
        m = rng.choice(words)
        head = head[: m.start()] + b"[" * rng.choice((1, 100, 3000)) + head[m.end() :]
    return head + tail


def _m_rezip(data: bytes, rng: random.Random) -> bytes:
    """Mutate one member of a zip (``.npz``) and zip it again, stored or deflated."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = [(i.filename, zf.read(i)) for i in zf.infolist()]
    except Exception:  # noqa: BLE001 - not a (readable) zip: fall back to a byte mutation
        return _m_flip(data, rng)
    if not members:
        return data
    k = rng.randrange(len(members))
    name, blob = members[k]
    members[k] = (name, rng.choice((_m_header_token, _m_truncate, _m_interesting, _m_nan_payload, _m_flip))(blob, rng))
    if rng.random() < 0.1:
        members.append((name, blob))  # duplicate member name
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names
        with zipfile.ZipFile(out, "w", rng.choice((zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED))) as zf:
            for n, b in members:
                zf.writestr(n, b)
    return out.getvalue()


_MUTATIONS: list[tuple[str, Callable[[bytes, random.Random], bytes], float]] = [
    ("truncate", _m_truncate, 1.0),
    ("flip", _m_flip, 1.5),
    ("interesting", _m_interesting, 1.5),
    ("nan", _m_nan_payload, 1.0),
    ("range", _m_range, 1.0),
    ("header", _m_header_token, 2.5),
    ("rezip", _m_rezip, 0.0),  # weight set per seed (npz only)
]


def _fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk CRC of a (mutated) PNG, so the decoder looks past the checksums
    at the mutated sizes and pixels instead of refusing every case at the first chunk."""
    import zlib

    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data
    out, pos = bytearray(data[:8]), 8
    while pos + 12 <= len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        end = pos + 8 + n
        if end + 4 > len(data):
            break
        body = data[pos + 4 : end]
        out += data[pos : end] + zlib.crc32(body).to_bytes(4, "big")
        pos = end + 4
    return bytes(out + data[pos:])


@dataclass
class Case:
    index: int
    reader: str
    seed: str
    name: str  # file name the mutated bytes are written under
    data: bytes
    mutations: list[str] = field(default_factory=list)


def make_case(corpus: list[Seed], index: int, master_seed: int = 0, readers: tuple[str, ...] = READER_NAMES) -> Case:
    """Case ``index``: readers take turns; the seed, mutations and any renaming are drawn
    from a generator seeded by ``(master_seed, index)``."""
    rng = random.Random(f"facerecon-fuzz:{master_seed}:{index}")
    reader = readers[index % len(readers)]
    kinds = _readers()[reader][0]
    pool = [s for s in corpus if s.kind in kinds]
    seed = rng.choice(pool)
    data = seed.data
    names: list[str] = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        weights = [wt if name != "rezip" else (3.0 if seed.kind == "npz" else 0.0) for name, _, wt in _MUTATIONS]
        name, fn, _ = rng.choices(_MUTATIONS, weights=weights)[0]
        data = fn(data, rng)
        names.append(name)
    if rng.random() < 0.7:
        data = _fix_png_crcs(data)
    file_name = seed.name
    if reader == "read_depth" and rng.random() < 0.08:  # content under another format's extension
        file_name = Path(seed.name).stem + rng.choice((".png", ".npy", ".npz", ".pcd", ".ply", ".bin", ".txt", ""))
        names.append(f"renamed:{file_name}")
    return Case(index, reader, seed.name, file_name, data, names)


# -- running a case --------------------------------------------------------------------


@dataclass
class Outcome:
    """``kind``: ok | refused (a FaceReconError: the contract) | crash | hang | memory."""

    index: int
    reader: str
    seed: str
    mutations: list[str]
    kind: str
    detail: str = ""
    seconds: float = 0.0
    peak_bytes: int = 0
    #: refused only by :func:`~facerecon.io._common.guard_reader`'s safety net (a
    #: malformation no explicit check names yet): within the contract, but worth a check
    fallback: bool = False


class _Timeout(BaseException):
    """Raised by the alarm inside a case (BaseException so readers' handlers cannot swallow it)."""


def _on_alarm(signum, frame):  # pragma: no cover - only on a hang
    raise _Timeout()


def _memory_error_in_chain(exc: BaseException) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, MemoryError):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def run_case(case: Case, folder: Path, time_cap_s: float = TIME_CAP_S, memory_cap: int = MEMORY_CAP_BYTES,
             trace_memory: bool = True, extra_files: dict[str, bytes] | None = None) -> Outcome:
    """Write the case's file into an emptied ``folder`` (with ``extra_files`` beside it, e.g.
    the Biwi companions) and run its reader.

    Time is capped with SIGALRM when called from the main thread (compiled numba loops
    cannot be interrupted that way: ``benchmarks/fuzz.py`` also kills a stuck worker);
    memory is the tracemalloc peak (numpy reports its buffers to tracemalloc).
    """
    import threading
    import tracemalloc

    folder = Path(folder)
    for old in folder.iterdir():
        if old.is_file():
            old.unlink()
    for name, blob in (extra_files or {}).items():
        (folder / name).write_bytes(blob)
    path = folder / case.name
    path.write_bytes(case.data)
    _, fn = _readers()[case.reader]
    use_alarm = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    out = Outcome(case.index, case.reader, case.seed, case.mutations, "ok")
    if trace_memory:
        tracemalloc.start()
        tracemalloc.reset_peak()
    previous = signal.signal(signal.SIGALRM, _on_alarm) if use_alarm else None
    t0 = time.perf_counter()
    try:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, time_cap_s)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # cleaning warnings are part of the contract
            fn(path)
    except _Timeout:
        out.kind, out.detail = "hang", f"over {time_cap_s:g} s"
    except FaceReconError as exc:
        out.kind, out.detail = "refused", exc.one_line()[:300]
        out.fallback = exc.__cause__ is not None and not isinstance(exc.__cause__, FaceReconError)
        if _memory_error_in_chain(exc):
            out.kind = "memory"
    except MemoryError as exc:
        out.kind, out.detail = "memory", f"MemoryError: {exc}"[:300]
    except Exception as exc:  # noqa: BLE001 - this is what the fuzzer looks for
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        out.kind = "crash"
        out.detail = f"{exc.__class__.__name__}: {' '.join(str(exc).split())[:200]} at {Path(tb.filename).name}:{tb.lineno}"
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        out.seconds = time.perf_counter() - t0
        if trace_memory:
            out.peak_bytes = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    if out.kind in ("ok", "refused") and out.seconds > time_cap_s:
        out.kind, out.detail = "hang", f"{out.seconds:.1f} s (cap {time_cap_s:g} s)"
    if out.kind in ("ok", "refused") and out.peak_bytes > memory_cap:
        out.kind, out.detail = "memory", f"peak {out.peak_bytes / 2**20:.0f} MiB (cap {memory_cap / 2**20:.0f} MiB)"
    return out


def companions(corpus: list[Seed], case: Case) -> dict[str, bytes]:
    """Files that sit beside a case's file: the Biwi pose and calibration for a depth.bin."""
    if not case.name.endswith("_depth.bin"):
        return {}
    out = {}
    for s in corpus:
        if s.kind == "pose":
            out[case.name.replace("_depth.bin", "_pose.txt")] = s.data
        elif s.kind == "cal":
            out[s.name] = s.data
    return out


def run_cases(corpus: list[Seed], indices, folder: Path, master_seed: int = 0, **kwargs) -> list[Outcome]:
    """Run cases in-process (the test suite's path); returns one outcome per index."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for i in indices:
        case = make_case(corpus, i, master_seed)
        results.append(run_case(case, folder, extra_files=companions(corpus, case), **kwargs))
    return results
