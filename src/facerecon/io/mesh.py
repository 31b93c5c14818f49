"""Triangle meshes: OBJ (own parser/writer, per-corner UVs), PLY/GLB/STL via trimesh.

Vertex order is the contract with the face rig: ICT-FaceKit's blendshapes are indexed by
vertex, and its OBJ has more UVs (28,911) than vertices (26,719) because UV seams give
one vertex several texture coordinates.  trimesh would split such vertices, so OBJ is
read and written here with separate vertex and UV indices per face corner; formats that
need one UV per vertex (GLB) split vertices only in the exported file.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConfigError, InputFileError, UnsupportedFormatError
from ..fileutil import atomic_path
from ._common import check_file, guard_reader, read_bytes, unit_factor

# OBJ indices are 1-based and may be negative (relative); beyond this they index nothing a
# file could hold, and they would overflow int64 arrays (the audit's crash)
_MAX_OBJ_INDEX = 2**31

_TRIMESH_FORMATS = {".ply", ".glb", ".gltf", ".stl", ".off"}


@dataclass
class Mesh:
    """A triangle mesh; polygons are fan-triangulated on read.

    Attributes:
        vertices: (V, 3) float64, millimetres, in file order.
        faces: (F, 3) int64 vertex indices.
        uv: (T, 2) float64 texture coordinates, or None.
        face_uv: (F, 3) int64 indices into ``uv`` per face corner, or None.
        source: the file it came from.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray | None = None
    face_uv: np.ndarray | None = None
    source: str = ""

    @property
    def n_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def n_faces(self) -> int:
        return int(self.faces.shape[0])


def _fan(poly: Sequence[int]) -> list[tuple[int, int, int]]:
    return [(poly[0], poly[i], poly[i + 1]) for i in range(1, len(poly) - 1)]


def _parse_obj(path: Path, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    verts: list[list[str]] = []
    uvs: list[list[str]] = []
    faces: list[tuple[int, int, int]] = []
    face_uv: list[tuple[int, int, int]] = []
    missing_uv = False
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith("v "):
            verts.append(line.split()[1:4])
        elif line.startswith("vt "):
            uvs.append(line.split()[1:3])
        elif line.startswith("f "):
            vi: list[int] = []
            ti: list[int] = []
            try:
                for tok in line.split()[1:]:
                    parts = tok.split("/")
                    a = int(parts[0])
                    if not -_MAX_OBJ_INDEX < a < _MAX_OBJ_INDEX:
                        raise ValueError("index out of range")
                    vi.append(a - 1 if a > 0 else len(verts) + a)
                    if len(parts) > 1 and parts[1]:
                        b = int(parts[1])
                        if not -_MAX_OBJ_INDEX < b < _MAX_OBJ_INDEX:
                            raise ValueError("index out of range")
                        ti.append(b - 1 if b > 0 else len(uvs) + b)
            except ValueError:
                raise InputFileError(path, f"line {lineno}: malformed face {line.strip()[:60]!r}") from None
            if len(vi) < 3:
                raise InputFileError(path, f"line {lineno}: a face needs at least 3 vertices")
            faces.extend(_fan(vi))
            if len(ti) == len(vi):
                face_uv.extend(_fan(ti))
            else:
                missing_uv = True
                face_uv.extend([(-1, -1, -1)] * (len(vi) - 2))
    try:
        v = np.array(verts, dtype=np.float64)
        t = np.array(uvs, dtype=np.float64) if uvs else None
    except ValueError:
        raise InputFileError(path, "OBJ has a vertex or texture line that is not numbers") from None
    if v.ndim != 2 or v.shape[0] == 0 or v.shape[1] != 3:
        raise InputFileError(path, "OBJ has no vertices (or a vertex with fewer than 3 coordinates)")
    bad = ~np.isfinite(v).all(axis=1)
    if bad.any():  # faces index vertices, so a NaN one cannot be dropped: refuse the file
        raise InputFileError(path, f"OBJ vertex {int(np.argmax(bad)) + 1} has a NaN or infinite coordinate ({int(bad.sum())} such vertices)")
    if t is not None and (t.ndim != 2 or t.shape[1] != 2):
        raise InputFileError(path, "OBJ has a texture coordinate with fewer than 2 values")
    f = np.array(faces, dtype=np.int64).reshape(-1, 3)
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise InputFileError(path, f"OBJ face refers to vertex {int(f.max()) + 1}, file has {len(v)} (truncated?)")
    ft = None
    if t is not None and not missing_uv and f.size:
        ft = np.array(face_uv, dtype=np.int64).reshape(-1, 3)
        if ft.min() < 0 or ft.max() >= len(t):
            raise InputFileError(path, f"OBJ face refers to texture coordinate {int(ft.max()) + 1}, file has {len(t)}")
    return v, f, t, ft


@guard_reader("mesh")
def read_mesh(path: str | Path, unit: str = "mm") -> Mesh:
    """Read OBJ (own parser; keeps vertex order and per-corner UVs) or PLY/GLB/STL/OFF.

    ``unit`` is the file's length unit ('mm', 'cm' for ICT-FaceKit, 'm'); vertices are
    returned in millimetres.
    """
    p = check_file(path)
    scale = unit_factor(unit, "mm")
    ext = p.suffix.lower()
    if ext == ".obj":
        text = read_bytes(p).decode("utf-8", errors="replace")
        v, f, t, ft = _parse_obj(p, text)
        if f.size == 0:
            raise InputFileError(p, "OBJ has no faces")
        return Mesh(v * scale, f, t, ft, str(p))
    if ext not in _TRIMESH_FORMATS:
        raise UnsupportedFormatError(p, f"unknown mesh format {ext or '(none)'!r}; supported: .obj, {', '.join(sorted(_TRIMESH_FORMATS))}")
    import trimesh

    if ext == ".ply":
        _check_ply_sizes(p)
    try:
        m = trimesh.load(p, force="mesh", process=False, maintain_order=True)
        if not isinstance(m, trimesh.Trimesh) or len(m.vertices) == 0 or len(m.faces) == 0:
            raise InputFileError(p, "file holds no triangle mesh")
        # trimesh computes some of these lazily: a malformed file can fail here too
        uv = getattr(m.visual, "uv", None)
        uv = None if uv is None or len(uv) != len(m.vertices) else np.asarray(uv, dtype=np.float64)
        faces = np.asarray(m.faces, dtype=np.int64)
        verts = np.asarray(m.vertices, dtype=np.float64)
    except InputFileError:
        raise
    except Exception as exc:  # trimesh raises many types for malformed files
        raise InputFileError(p, f"cannot read mesh ({exc.__class__.__name__}: {' '.join(str(exc).split())[:120]})") from None
    if not np.isfinite(verts).all():
        raise InputFileError(p, f"mesh has {int((~np.isfinite(verts).all(axis=1)).sum())} vertices with a NaN or infinite coordinate")
    if faces.size and (faces.min() < 0 or faces.max() >= len(verts)):
        raise InputFileError(p, f"mesh face refers to vertex {int(faces.max())}, file has {len(verts)}")
    return Mesh(np.asarray(m.vertices, dtype=np.float64) * scale, faces, uv, faces.copy() if uv is not None else None, str(p))


def _check_ply_sizes(p: Path) -> None:
    """A PLY mesh's header checked (strictly, see :mod:`.ply`) and its element counts bounded by
    the file length before trimesh allocates for them."""
    from .ply import _SCALARS, parse_ply_header

    blob = read_bytes(p)
    h = parse_ply_header(p, blob)
    left = len(blob) - h.data_offset
    if h.format == "ascii":  # every row is at least one character and a newline
        need = 2 * sum(el.count for el in h.elements if el.properties or el.lists) - 1
    else:  # scalars at full size, lists at least their length field
        need = 0
        for el in h.elements:
            row = sum(np.dtype(_SCALARS[t]).itemsize for _, t in el.properties) + len(el.lists)
            need += el.count * row
    if need > left:
        raise InputFileError(p, f"PLY header announces {need:,} bytes of data or more, {left:,} present (truncated?)")


def _flatten(faces) -> tuple[np.ndarray, np.ndarray]:
    """(the corners of every face in order, int64; each face's corner count): from an (F, K) array
    (-1 pads a face of fewer corners, e.g. ICT's triangles among its quads) or a sequence of faces."""
    if isinstance(faces, np.ndarray) and faces.ndim == 2:
        a = faces.astype(np.int64, copy=False)
        pad = a == -1
        if pad.any():
            return a[~pad], (~pad).sum(1).astype(np.int64)
        return a.ravel(), np.full(len(a), a.shape[1], np.int64)
    if len(faces) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lens = np.fromiter((len(f) for f in faces), np.int64, len(faces))
    return np.concatenate([np.asarray(f, np.int64).reshape(-1) for f in faces]), lens


def _fan_triangles(flat: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """(T, 3) fan triangles of the faces, (first, k, k + 1) for k = 1 .. n - 2, in face order."""
    if not len(lens):
        return np.zeros((0, 3), np.int64)
    starts = np.cumsum(lens) - lens
    n_tri = np.maximum(lens - 2, 0)
    first = np.repeat(starts, n_tri)
    k = np.arange(int(n_tri.sum())) - np.repeat(np.cumsum(n_tri) - n_tri, n_tri) + 1  # 1 .. n - 2 within each face
    return np.stack([flat[first], flat[first + k], flat[first + k + 1]], 1)


_INT3 = np.array([list(f"{i:03d}".encode()) for i in range(1000)], np.uint8)  # "000" .. "999"
_INT3_BARE = np.array([[0] * (3 - len(str(i))) + list(str(i).encode()) for i in range(1000)], np.uint8)  # no leading zeros, 0 bytes
_INT3_BARE[0] = 0


def _digits(x: np.ndarray) -> np.ndarray:
    """(n, w) uint8: the decimal digits of the positive integers ``x``, right-aligned, 0 bytes before them
    (below a million: two 3-digit groups from tables, one division per number)."""
    if len(x) and int(x.max()) < 1_000_000:
        hi, lo = np.divmod(x.astype(np.int32), 1000)
        d = np.empty((len(x), 6), np.uint8)
        d[:, :3] = _INT3_BARE[hi]
        d[:, 3:] = np.where((hi > 0)[:, None], _INT3[lo], _INT3_BARE[lo])
        return d
    w = len(str(int(x.max()))) if len(x) else 1
    p = 10 ** np.arange(w - 1, -1, -1, dtype=np.int64)
    d = ((x[:, None] // p) % 10 + ord("0")).astype(np.uint8)
    d[x[:, None] < p] = 0  # leading zeros (x >= 1 keeps its last digit)
    return d


def _obj_face_block(flat: np.ndarray, lens: np.ndarray, flat_uv: np.ndarray | None) -> tuple[bytes, np.ndarray]:
    """(the ``f`` lines of the faces, ``f a b c`` or ``f a/t b/u c/v`` (1-based); the byte offset where each
    face's line starts, and the end).  Built as one byte table (each corner a fixed-width row, 0 bytes where a
    shorter number leaves room, dropped at the end): ~20 ms for ICT's 26,385 polygons against ~100 ms for a
    format per polygon (the first frame of a batch pays it)."""
    if not len(lens):
        return b"", np.zeros(1, np.int64)
    ends = np.cumsum(lens)
    lead = np.zeros((len(flat), 2), np.uint8)
    lead[:, 0] = ord(" ")
    lead[ends - lens] = (ord("f"), ord(" "))
    tail = np.zeros((len(flat), 1), np.uint8)
    tail[ends - 1] = ord("\n")
    cols = [lead, _digits(flat + 1)]
    if flat_uv is not None:
        cols += [np.full((len(flat), 1), ord("/"), np.uint8), _digits(flat_uv + 1)]
    table = np.concatenate([*cols, tail], 1)
    keep = table != 0
    starts = np.concatenate([[0], np.cumsum(keep.sum(1))[ends - 1]])
    return table[keep].tobytes(), starts


def _with_materials(text: bytes, starts: np.ndarray, materials: tuple[str, ...]) -> bytes:
    """The face block ``text`` (faces starting at byte ``starts``) with ``usemtl NAME`` before each run of
    faces of one material (``materials``: a name per face)."""
    names = np.asarray(materials)
    runs = np.concatenate([[0], np.flatnonzero(names[1:] != names[:-1]) + 1, [len(names)]]).tolist()
    parts = []
    for a, b in zip(runs[:-1], runs[1:]):
        parts += [f"usemtl {materials[a]}\n".encode("utf-8"), text[starts[a]: starts[b]]]
    return b"".join(parts)


class _Topology:
    """Everything a writer derives from the faces alone (corners, fan triangles, index ranges, the
    OBJ face block, the PLY face bytes), computed once per faces object: a face model's topology
    is written for every frame (measured: recomputing it cost ~0.5 s per file)."""

    def __init__(self, faces, face_uv):
        self.source = (faces, face_uv)  # held, so the ids in the cache key stay theirs
        # arrays can be changed in place under the same id: keep a copy to compare with
        self.copies = tuple(np.array(x, copy=True) if isinstance(x, np.ndarray) else None for x in (faces, face_uv))
        self.flat, self.lens = _flatten(faces)
        if len(self.lens) and self.lens.min() < 3:
            raise ValueError("every face needs at least 3 vertices")
        self.flat_uv = None
        if face_uv is not None:
            self.flat_uv, lens_uv = _flatten(face_uv)
            if not np.array_equal(lens_uv, self.lens):
                raise ValueError("face_uv must have the same shape as faces")
        self.n_faces = len(self.lens)
        self.v_range = (int(self.flat.min()), int(self.flat.max())) if self.flat.size else (0, -1)
        f_uv = self.flat_uv
        self.t_range = None if f_uv is None else ((int(f_uv.min()), int(f_uv.max())) if f_uv.size else (0, -1))
        self._tris = self._tuv = None
        self._obj: dict = {}
        self._ply: bytes | None = None

    @property
    def tris(self) -> np.ndarray:
        if self._tris is None:
            self._tris = _fan_triangles(self.flat, self.lens)
        return self._tris

    @property
    def tuv(self) -> np.ndarray | None:
        if self._tuv is None and self.flat_uv is not None:
            self._tuv = _fan_triangles(self.flat_uv, self.lens)
        return self._tuv

    def obj_faces(self, with_uv: bool, materials: tuple[str, ...] | None = None, cache_dir: Path | None = None) -> bytes:
        """The OBJ face block (``f`` lines, ``v/vt`` corners with UVs: the faces' own UV indices, else
        the vertex indices), ``usemtl NAME`` before each run of faces of one material (``materials``:
        one name per face); with ``cache_dir``, the block is kept there between processes (:meth:`_cached_block`)."""
        if with_uv not in self._obj:
            uv = (self.flat_uv if self.flat_uv is not None else self.flat) if with_uv else None
            got = None if cache_dir is None else self._cached_block(Path(cache_dir), uv)
            self._obj[with_uv] = got if got is not None else _obj_face_block(self.flat, self.lens, uv)
            if got is None and cache_dir is not None:
                self._cached_block(Path(cache_dir), uv, self._obj[with_uv])
        text, starts = self._obj[with_uv]
        if materials is None:
            return text
        key = (with_uv, materials)
        if key not in self._obj:
            if len(materials) != self.n_faces:
                raise ValueError(f"{len(materials)} materials for {self.n_faces} faces")
            self._obj[key] = _with_materials(text, starts, materials)
        return self._obj[key]

    def _cached_block(self, folder: Path, uv: np.ndarray | None, block: tuple[bytes, np.ndarray] | None = None):
        """The face block of :func:`_obj_face_block` read from ``folder`` (None: no whole file of these faces and this
        code), or with ``block`` written there. A process's first OBJ of a model built it (~30 ms for ICT's 26,385
        polygons); the file is keyed by the faces (CRC-32 and shape of the corners, the face sizes and the UV
        corners) and this module's code, and checked on reading (``fileutil.read_cache_file``)."""
        import hashlib
        import zlib

        from ..fileutil import read_cache_file, write_cache_file

        try:
            parts = [f"{name}:{a.dtype.str}:{a.shape}:{zlib.crc32(np.ascontiguousarray(a).view(np.uint8)):08x}"
                     for name, a in (("flat", self.flat), ("lens", self.lens), ("uv", uv)) if a is not None]
            key = json.dumps({"version": _OBJ_BLOCK_CACHE_VERSION, "faces": parts, "with_uv": uv is not None,
                              "code": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:20]})
        except (OSError, ValueError, TypeError):
            return None
        path = folder / f"objfaces-{hashlib.sha256(key.encode()).hexdigest()[:24]}.bin"
        if block is not None:
            write_cache_file(path, key, {}, [block[0], block[1]])
            return None
        got = read_cache_file(path, key)
        if got is None or len(got[1]) != 2 or not isinstance(got[1][0], bytes):
            return None
        text, starts = got[1][0], np.array(got[1][1])
        if (starts.shape != (self.n_faces + 1,) or starts.dtype.kind != "i" or starts[0] != 0 or starts[-1] != len(text)
                or (np.diff(starts) <= 0).any()):
            return None
        return text, starts

    def ply_faces(self) -> bytes:
        if self._ply is None:
            tris = self.tris
            rec = np.empty(len(tris), dtype=[("n", "u1"), ("i", "<i4", (3,))])
            rec["n"] = 3
            rec["i"] = tris
            self._ply = rec.tobytes()
        return self._ply


_TOPOLOGIES: dict = {}
_OBJ_BLOCK_CACHE_VERSION = 1
_MAX_TOPOLOGIES = 8


def _topology(faces, face_uv) -> _Topology:
    key = (id(faces), id(face_uv))
    topo = _TOPOLOGIES.get(key)
    stale = topo is None or topo.source[0] is not faces or topo.source[1] is not face_uv or topo.n_faces != len(faces)
    if not stale:
        stale = any(c is not None and not np.array_equal(c, x) for c, x in zip(topo.copies, (faces, face_uv)))
    if stale:
        topo = _Topology(faces, face_uv)
        if len(_TOPOLOGIES) >= _MAX_TOPOLOGIES:
            _TOPOLOGIES.pop(next(iter(_TOPOLOGIES)))
        _TOPOLOGIES[key] = topo
    return topo


_NUMBA = True  # False: the NumPy path of _fixed_point_lines (the tests compare the two)
_DIGITS3 = np.array([list(f"{i:03d}".encode()) for i in range(1000)], np.uint8)  # "000" .. "999"
_DIGITS3_LEAD = np.array([list(f"{i:3d}".encode()) for i in range(1000)], np.uint8)  # "  0" .. "999"
_LO_TABLE = np.concatenate([_DIGITS3, _DIGITS3_LEAD])  # units group: zero-padded, or blank-padded (+1000)
_HI_TABLE = np.concatenate([_DIGITS3_LEAD, np.full((1, 3), ord(" "), np.uint8)])  # thousands group, or blank (1000)


def _fixed_point_lines(prefix: bytes, a: np.ndarray, decimals: int = 6) -> bytes:
    """Lines ``prefix x y ...`` with every value as ``%.6f`` (right-aligned in a fixed width;
    no sign on zero), built from a table of 3-digit groups instead of one format call per
    number (26,719 vertices: ~13 ms of CPU on the loaded 2-core machine against ~30 ms for
    one ``%`` call and ~70 ms for an f-string per vertex).  Other precisions, non-finite
    values and magnitudes of a million or more take the plain formatting path."""
    a = np.asarray(a, np.float64)
    n, k = a.shape
    width = 15  # separator, sign, 6 integer digits, '.', 6 decimals
    if _NUMBA and n and decimals == 6:  # the same bytes as below in one pass over the values (~1 ms against ~13),
        # without the GIL (a batch's writer thread); False: a value for the plain formatting
        from ._fixed import fixed_point_text

        line = np.empty((n, len(prefix) + k * width + 1), np.uint8)
        if fixed_point_text(np.frombuffer(prefix, np.uint8), np.ascontiguousarray(a), line, _DIGITS3, *_NO_LAST) >= 0:
            return line.tobytes()
    if n == 0 or decimals != 6 or not np.isfinite(a).all() or np.abs(a).max() >= 999999.0:
        fmt = prefix.decode() + (" %." + str(decimals) + "f") * k + "\n"
        return ((fmt * n) % tuple(a.ravel().tolist())).encode() if n else b""
    fixed = np.rint(np.abs(a) * 1e6)  # integral floats, exact below 2^53
    ip = np.floor((fixed + 0.5) * 1e-6)  # + 0.5: away from the rounding boundary of the product
    frac = (fixed - ip * 1e6).astype(np.int32)
    ip = ip.astype(np.int32)
    neg = (a < 0) & (fixed > 0)
    line = np.empty((n, len(prefix) + k * width + 1), np.uint8)
    hi = ip // 1000
    lo = ip - hi * 1000
    fhi = frac // 1000
    flo = frac - fhi * 1000
    big = hi > 0
    field = np.empty((n, k, width), np.uint8)
    field[..., :2] = ord(" ")
    field[..., 2:5] = _HI_TABLE[np.where(big, hi, 1000)]
    field[..., 5:8] = _LO_TABLE[lo + 1000 * ~big]
    field[..., 8] = ord(".")
    field[..., 9:12] = _DIGITS3[fhi]
    field[..., 12:15] = _DIGITS3[flo]
    if neg.any():
        r, c = np.nonzero(neg)
        field[r, c, 1 + (field[r, c, 2:8] == ord(" ")).sum(axis=-1)] = ord("-")
    line[:, : len(prefix)] = np.frombuffer(prefix, np.uint8)
    line[:, len(prefix): -1] = field.reshape(n, k * width)
    line[:, -1] = ord("\n")
    return line.tobytes()


_LAST_VERTEX_LINES = threading.local()  # per thread (a batch's writer): the last OBJ vertex block, (values, lines)


def _vertex_lines(v: np.ndarray):
    """The ``v`` lines of ``v`` ((V, 3) float64) as a buffer, reusing the lines of the last block this thread
    wrote where a row has the same bits: a frame's ``face.obj`` and ``face_model.obj`` differ only where the
    out-of-span correction moved the surface (~15-25 % of ICT's rows), and a line's text is its row's alone
    (fixed width).  Bits, not values: -0.0 and 0.0 print differently.  Blocks of the plain formatting path
    (not fixed width) are neither kept nor reused."""
    v = np.ascontiguousarray(v, np.float64)
    n, row = len(v), 1 + 3 * 15 + 1  # "v", three 15-byte fields, "\n"
    if not (_NUMBA and n and v.shape[1] == 3):
        return _fixed_point_lines(b"v", v)
    from ._fixed import fixed_point_text

    last = getattr(_LAST_VERTEX_LINES, "block", None)
    lines = np.empty((n, row), np.uint8)
    previous = (last[0].view(np.int64), last[1]) if last is not None and last[0].shape == v.shape else _NO_LAST[1:]
    if fixed_point_text(_PREFIX_V, v, lines, _DIGITS3, v.view(np.int64), *previous) < 0:
        _LAST_VERTEX_LINES.block = None
        return _fixed_point_lines(b"v", v)
    _LAST_VERTEX_LINES.block = (v.copy(), lines)  # ``lines`` is never written again: the file reads it as it is
    return memoryview(lines).cast("B")


_PREFIX_V = np.frombuffer(b"v", np.uint8)
_NO_LAST = (np.zeros((0, 0), np.int64), np.zeros((0, 0), np.int64), np.zeros((0, 0), np.uint8))  # fixed_point_text: no block to reuse
_UV_TEXT: dict = {}


def _uv_lines(t: np.ndarray, source) -> bytes:
    """The ``vt`` block, cached per UV array (a face model's UVs are written for every frame)."""
    key = id(source)
    hit = _UV_TEXT.get(key)
    if hit is not None and hit[0] is source and hit[1].shape == t.shape and np.array_equal(hit[1], t):
        return hit[2]
    text = _fixed_point_lines(b"vt", t)
    if len(_UV_TEXT) >= _MAX_TOPOLOGIES:
        _UV_TEXT.pop(next(iter(_UV_TEXT)))
    _UV_TEXT[key] = (source, t.copy(), text)
    return text


def _ply_bytes(v: np.ndarray, topo: _Topology, header: str) -> bytes:
    comments = "".join(f"comment {line}\n" for line in header.splitlines()) if header else ""
    head = (f"ply\nformat binary_little_endian 1.0\n{comments}element vertex {len(v)}\nproperty double x\nproperty double y\n"
            f"property double z\nelement face {len(topo.tris)}\nproperty list uchar int vertex_indices\nend_header\n")
    return head.encode("ascii", "replace") + np.ascontiguousarray(v, "<f8").tobytes() + topo.ply_faces()


def write_mesh(
    path: str | Path,
    vertices: np.ndarray,
    faces: np.ndarray | Sequence[Sequence[int]],
    uv: np.ndarray | None = None,
    face_uv: np.ndarray | Sequence[Sequence[int]] | None = None,
    header: str = "",
    mtllib: str | None = None,
    materials: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
) -> None:
    """Write a mesh atomically; the format follows the extension (.obj, .ply, .glb, .stl, .off).

    ``faces`` may be triangles, quads or mixed polygons (a sequence of faces, or an (F, K) array
    where -1 pads a face of fewer corners, as ICT's ``polygons``); ``face_uv`` gives UV indices per
    face corner (same shape as ``faces``).  When ``uv`` has one row per vertex,
    ``face_uv`` may be omitted.  OBJ keeps vertex count, order and polygons exactly; PLY
    keeps vertices (UVs only if per vertex); GLB splits vertices on UV seams.  What depends
    on the faces alone is computed once per faces object and reused (do not modify a faces
    list in place between calls).  OBJ only: ``mtllib`` (a material library file name) becomes the
    first line, ``materials`` (a material name per face) ``usemtl`` lines before each run of faces
    of one material; ``cache_dir``: a folder where the OBJ face block of these faces is kept between processes
    (written by the first process, read back by the next: a face model's topology).
    """
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {v.shape}")
    topo = _topology(faces, face_uv if uv is not None else None)
    if topo.n_faces and (topo.v_range[0] < 0 or topo.v_range[1] >= len(v)):
        raise ValueError("a face index is out of range")
    t = None if uv is None else np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    puv = None  # whether the faces carry UVs (their own indices, or the vertices' where the UVs are per vertex)
    if t is not None:
        if face_uv is None:
            if len(t) != len(v):
                raise ValueError(f"{len(t)} UVs for {len(v)} vertices: give face_uv (per-corner UV indices)")
            puv = True
        else:
            puv = True
            if topo.n_faces and (topo.t_range[0] < 0 or topo.t_range[1] >= len(t)):
                raise ValueError("a face_uv index is out of range")
    ext = Path(path).suffix.lower()
    if ext == ".obj":
        head = (f"mtllib {mtllib}\n" if mtllib else "") + "".join(f"# {line}\n" for line in header.splitlines())
        parts = [head.encode("utf-8"), _vertex_lines(v)]
        if t is not None:
            parts.append(_uv_lines(t, uv))
        parts.append(topo.obj_faces(puv is not None, None if materials is None else tuple(materials), cache_dir))
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:  # the parts as they are: no 3 MB concatenation
                fh.writelines(parts)
        return
    if ext not in _TRIMESH_FORMATS:
        raise UnsupportedFormatError(path, f"cannot write mesh format {ext or '(none)'!r}; use .obj, {', '.join(sorted(_TRIMESH_FORMATS))}")
    tris = topo.tris
    if ext == ".ply" and (t is None or puv is None or not np.array_equal(topo.tuv if face_uv is not None else tris, tris)):
        # no per-vertex UVs to store (per-corner UVs cannot be stored per vertex without splitting;
        # PLY keeps the vertex order instead): binary PLY written directly, without trimesh
        with atomic_path(path) as tmp:
            tmp.write_bytes(_ply_bytes(v, topo, header))
        return
    import trimesh

    visual = None
    if t is not None and puv is not None and ext in (".glb", ".gltf", ".ply"):
        tuv = topo.tuv if face_uv is not None else tris
        if not np.array_equal(tuv, tris):
            pairs, inverse = np.unique(np.stack([tris.ravel(), tuv.ravel()], 1), axis=0, return_inverse=True)
            v, t, tris = v[pairs[:, 0]], t[pairs[:, 1]], inverse.reshape(-1, 3)
        else:
            t = t[: len(v)] if len(t) >= len(v) else None
        if t is not None:
            visual = trimesh.visual.TextureVisuals(uv=t)
    mesh = trimesh.Trimesh(vertices=v, faces=tris, visual=visual, process=False)
    with atomic_path(path) as tmp:
        mesh.export(tmp, file_type=ext.lstrip("."))


@guard_reader("menpo .ljson landmarks")
def read_ljson_landmarks(path: str | Path, order: str = "ibug68") -> np.ndarray:
    """(68, 3) float64 landmarks from a menpo ``.ljson`` file (version 1-3).

    ``order='ibug68'`` returns the standard iBUG/Multi-PIE order (0-16 jaw, 17-26 brows,
    27-35 nose, 36-47 eyes, 48-67 mouth), reordering by the file's labelled groups when
    the file stores them in another order (james.ljson does: jaw, eyes, brows, nose, ...).
    ``order='file'`` returns the points as stored.
    """
    p = check_file(path)
    try:
        doc = json.loads(read_bytes(p).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(p, f"not valid JSON ({exc.__class__.__name__})") from None
    try:
        if "landmarks" in doc:  # version 1/2
            pts, labels = doc["landmarks"]["points"], doc.get("labels", [])
        else:  # version 3: groups -> name -> {landmarks, labels}
            group = next(iter(doc["groups"].values()))
            pts, labels = group["landmarks"]["points"], group.get("labels", [])
        arr = np.array([[np.nan if c is None else c for c in q] for q in pts], dtype=np.float64)
    except (KeyError, TypeError, ValueError, StopIteration, AttributeError):
        raise InputFileError(p, "not a menpo landmark file (no landmarks.points)") from None
    if arr.shape != (68, 3):
        raise InputFileError(p, f"expected 68 3D landmarks, found shape {arr.shape}")
    if order == "file":
        return arr
    if order != "ibug68":
        raise ConfigError(f"order must be 'ibug68' or 'file', got {order!r}")
    return arr[_ibug_permutation(p, labels)]


# Group names used by menpo for the iBUG 68 layout (image-side naming) -> iBUG index range.
_IBUG_RANGES = {
    "jaw": range(0, 17), "chin": range(0, 17),
    "left_eyebrow": range(17, 22), "leyebrow": range(17, 22),
    "right_eyebrow": range(22, 27), "reyebrow": range(22, 27),
    "nose": range(27, 36),
    "left_eye": range(36, 42), "leye": range(36, 42),
    "right_eye": range(42, 48), "reye": range(42, 48),
    "mouth": range(48, 68),
}  # fmt: skip


def _ibug_permutation(path: Path, labels: list) -> np.ndarray:
    """Index array mapping iBUG slots to stored points, from the labelled groups."""
    if not labels:
        return np.arange(68)
    if not isinstance(labels, list) or not all(isinstance(lab, dict) for lab in labels):
        raise InputFileError(path, "landmark 'labels' must be a list of {label, mask} objects")
    perm = np.full(68, -1, dtype=np.int64)
    for lab in labels:
        name, mask = str(lab.get("label", "")).lower(), lab.get("mask", [])
        slots = _IBUG_RANGES.get(name)
        if slots is None:
            continue
        if not isinstance(mask, list) or not all(isinstance(m, int) and not isinstance(m, bool) and 0 <= m < 68 for m in mask):
            raise InputFileError(path, f"landmark group {name!r} has a mask that is not point indices 0..67")
        if len(mask) != len(slots):
            raise InputFileError(path, f"landmark group {name!r} has {len(mask)} points, iBUG has {len(slots)}")
        perm[list(slots)] = mask
    if (perm < 0).any():
        # Unknown group names (e.g. a 'mouth' split into outer/inner): keep the stored order.
        return np.arange(68)
    return perm
