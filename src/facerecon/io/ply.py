"""A small, strict PLY reader (ascii and binary) for sensor frames and point clouds.

trimesh reads meshes well but not the TrueDepth frame layout (elements ``metadata``,
``color``, ``depth``), and we want truncation reported as a one-line error naming the
file, so the readers here parse PLY themselves.  Only what sensors write is supported:
scalar properties, plus list properties in ascii files (skipped).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputFileError
from ._common import check_count, guard_reader, read_bytes

_SCALARS = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


@dataclass
class PLYElement:
    name: str
    count: int
    properties: list[tuple[str, str]] = field(default_factory=list)  # (name, scalar type)
    lists: list[str] = field(default_factory=list)  # names of list properties
    order: list[tuple[str, bool]] = field(default_factory=list)  # (name, is_list) in file order


@dataclass
class PLYHeader:
    format: str  # ascii | binary_little_endian | binary_big_endian
    elements: list[PLYElement]
    comments: list[str]
    data_offset: int

    def element(self, name: str) -> PLYElement | None:
        return next((e for e in self.elements if e.name == name), None)


def parse_ply_header(path: Path, blob: bytes) -> PLYHeader:
    """Parse the header of a PLY file held in ``blob``."""
    if not blob.startswith(b"ply"):
        raise InputFileError(path, "not a PLY file (no 'ply' magic)")
    end = blob.find(b"end_header", 0, 1 << 20)
    if end < 0:
        raise InputFileError(path, "PLY header has no end_header (truncated or corrupt)")
    nl = blob.find(b"\n", end)
    if nl < 0:
        raise InputFileError(path, "PLY file ends right after its header")
    lines = blob[:end].decode("latin-1").splitlines()
    fmt = ""
    comments: list[str] = []
    elements: list[PLYElement] = []
    for line in lines[1:]:
        parts = line.split()
        if not parts:
            continue
        try:
            if parts[0] == "format":
                fmt = parts[1]
            elif parts[0] in ("comment", "obj_info"):
                comments.append(line.partition(" ")[2])
            elif parts[0] == "element":
                if any(e.name == parts[1] for e in elements):
                    raise ValueError(f"element {parts[1]!r} declared twice")
                count = int(parts[2])
                if count < 0:
                    raise ValueError("negative element count")
                elements.append(PLYElement(parts[1], count))
            elif parts[0] == "property":
                if not elements:
                    raise ValueError("property before any element")
                el = elements[-1]
                name = parts[4] if parts[1] == "list" else parts[2]
                if any(n == name for n, _ in el.order):
                    raise ValueError(f"property {name!r} declared twice in element {el.name!r}")
                if parts[1] == "list":
                    if parts[2] not in _SCALARS or parts[3] not in _SCALARS:
                        raise ValueError(f"unknown list type {parts[2]!r} / {parts[3]!r}")
                    el.lists.append(name)
                else:
                    if parts[1] not in _SCALARS:
                        raise ValueError(f"unknown property type {parts[1]!r}")
                    el.properties.append((name, parts[1]))
                el.order.append((name, parts[1] == "list"))
        except (IndexError, ValueError) as exc:
            raise InputFileError(path, f"malformed PLY header line {line.strip()[:80]!r} ({exc})") from None
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise InputFileError(path, f"unknown PLY format {fmt[:40]!r}")
    for el in elements:
        check_count(path, el.count, f"PLY element {el.name[:40]!r}")
    return PLYHeader(fmt, elements, comments, nl + 1)


@guard_reader("PLY")
def read_ply_elements(path: str | Path) -> tuple[PLYHeader, dict[str, dict[str, np.ndarray]]]:
    """Header plus element name -> {property name -> 1-D array} for scalar properties.

    Binary elements with list properties cannot be skipped without a full parse and are
    refused unless they are empty; ascii list properties are skipped.
    """
    p = Path(path)
    blob = read_bytes(p)
    h = parse_ply_header(p, blob)
    data: dict[str, dict[str, np.ndarray]] = {}
    if h.format == "ascii":
        return h, _read_ascii(p, blob, h)
    order = "<" if h.format == "binary_little_endian" else ">"
    pos = h.data_offset
    for el in h.elements:
        if el.lists:
            if el.count == 0:
                data[el.name] = {}
                continue
            raise InputFileError(p, f"binary PLY element {el.name!r} with list properties is not supported here")
        if not el.properties:  # nothing to read, and a zero-size record cannot be counted
            data[el.name] = {}
            continue
        dt = np.dtype([(name, order + _SCALARS[t]) for name, t in el.properties])
        need = el.count * dt.itemsize
        if pos + need > len(blob):
            raise InputFileError(p, f"PLY data is truncated in element {el.name!r}: needs {need} bytes, {max(len(blob) - pos, 0)} left")
        rec = np.frombuffer(blob, dtype=dt, count=el.count, offset=pos)
        data[el.name] = {name: rec[name].astype(rec[name].dtype.newbyteorder("="), copy=True) for name in dt.names or ()}
        pos += need
    return h, data


def _read_ascii(p: Path, blob: bytes, h: PLYHeader) -> dict[str, dict[str, np.ndarray]]:
    lines = blob[h.data_offset :].split(b"\n")
    data: dict[str, dict[str, np.ndarray]] = {}
    row = 0
    for el in h.elements:
        chunk = lines[row : row + el.count]
        if len(chunk) < el.count or (el.count and not chunk[-1].strip()):
            raise InputFileError(p, f"PLY ascii data is truncated in element {el.name!r} ({len(chunk)} of {el.count} rows)")
        row += el.count
        if not el.properties:
            data[el.name] = {}
            continue
        n = len(el.properties)
        try:
            if el.lists:
                table = _ascii_rows_with_lists(el, chunk)
            else:
                table = np.array(b" ".join(chunk).split(), dtype=np.float64).reshape(el.count, n)
        except (ValueError, IndexError):
            raise InputFileError(p, f"PLY ascii element {el.name!r} has malformed rows") from None
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/huge values in an int property: garbage, not a crash
            data[el.name] = {name: table[:, i].astype(_SCALARS[t]) for i, (name, t) in enumerate(el.properties)}
    return data


def _ascii_rows_with_lists(el: PLYElement, chunk: list[bytes]) -> np.ndarray:
    """(count, n_scalars) float64 of the scalar properties of ascii rows that also hold lists.

    Each row is walked in declaration order (a list is its length, then that many items),
    so scalars before, between or after lists land in their own columns.
    """
    table = np.empty((len(chunk), len(el.properties)), dtype=np.float64)
    for r, ln in enumerate(chunk):
        toks = ln.split()
        i = col = 0
        for _, is_list in el.order:
            if is_list:
                k = float(toks[i])
                if not (k >= 0 and k == int(k)):
                    raise ValueError("bad list length")
                i += 1 + int(k)
            else:
                table[r, col] = float(toks[i])
                col += 1
                i += 1
        if i > len(toks):
            raise IndexError("row too short")
    return table
