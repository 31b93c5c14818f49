"""Fast parsing of the ICT-FaceKit OBJ files (all share one topology).

Only the neutral mesh needs a full parse (vertices, UVs, faces, material groups); for
the 155 shape OBJs we need just the ``v`` lines, which NumPy parses in one call.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ParsedObj:
    vertices: np.ndarray  # (V, 3) float64, file units
    uv: np.ndarray  # (U, 2) float32
    polygons: np.ndarray  # (F, 4) int32 vertex indices, -1 pads triangles
    polygon_uv: np.ndarray  # (F, 4) int32 uv indices, -1 pads triangles
    polygon_material: np.ndarray  # (F,) int16 index into materials
    materials: list[str]


def parse_vertices(text: str) -> np.ndarray:
    """The ``v x y z`` lines of an OBJ as (V, 3) float64."""
    lines = [ln[2:] for ln in text.splitlines() if ln.startswith("v ")]
    if not lines:
        raise ValueError("no vertices")
    arr = np.array(" ".join(lines).split(), dtype=np.float64)
    if arr.size != 3 * len(lines):
        raise ValueError("vertex lines are not x y z triples")
    return arr.reshape(-1, 3)


def parse_full(text: str) -> ParsedObj:
    verts, uvs, polys, puv, pmat, materials = [], [], [], [], [], []
    current = -1
    for ln in text.splitlines():
        if ln.startswith("v "):
            verts.append(ln[2:])
        elif ln.startswith("vt "):
            uvs.append(ln[3:])
        elif ln.startswith("f "):
            corners = ln[2:].split()
            if not 3 <= len(corners) <= 4:
                raise ValueError(f"face with {len(corners)} corners (only triangles and quads expected)")
            vi = [-1, -1, -1, -1]
            ti = [-1, -1, -1, -1]
            for k, c in enumerate(corners):
                parts = c.split("/")
                vi[k] = int(parts[0]) - 1
                ti[k] = int(parts[1]) - 1 if len(parts) > 1 and parts[1] else -1
            polys.append(vi)
            puv.append(ti)
            pmat.append(current)
        elif ln.startswith("usemtl "):
            materials.append(ln[7:].strip())
            current = len(materials) - 1
    v = np.array(" ".join(verts).split(), dtype=np.float64).reshape(-1, 3)
    uv = np.array(" ".join(uvs).split(), dtype=np.float32).reshape(-1, 2) if uvs else np.zeros((0, 2), np.float32)
    return ParsedObj(
        vertices=v,
        uv=uv,
        polygons=np.asarray(polys, dtype=np.int32),
        polygon_uv=np.asarray(puv, dtype=np.int32),
        polygon_material=np.asarray(pmat, dtype=np.int16),
        materials=materials,
    )


def triangulate(polygons: np.ndarray, polygon_uv: np.ndarray, polygon_material: np.ndarray):
    """Split quads (a, b, c, d) into (a, b, c) and (a, c, d); triangles stay as they are.

    Returns (triangles, triangle_uv, triangle_material, triangle_polygon) where the last maps each
    triangle back to its source polygon.
    """
    tri_a = polygons[:, [0, 1, 2]]
    uv_a = polygon_uv[:, [0, 1, 2]]
    quads = polygons[:, 3] >= 0
    tri_b = polygons[quads][:, [0, 2, 3]]
    uv_b = polygon_uv[quads][:, [0, 2, 3]]
    idx = np.arange(len(polygons))
    src = np.concatenate([idx, idx[quads]])
    order = np.argsort(src, kind="stable")  # keep triangles of one polygon together, in file order
    tris = np.concatenate([tri_a, tri_b])[order]
    tuv = np.concatenate([uv_a, uv_b])[order]
    return tris.astype(np.int32), tuv.astype(np.int32), polygon_material[src[order]], src[order].astype(np.int32)
