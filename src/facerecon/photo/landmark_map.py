"""Where MediaPipe Face Mesh's 468 points sit on the ICT-FaceKit surface, and the iBUG 68
points as weights of those 468.

The shipped table ``data/mediapipe_ict_map.json`` is built by ``scripts/build_landmark_map.py``
(render ICT faces, run the photo front end on them, read the surface under each point, take a
robust consensus): see that script and ``docs/photo_frontend.md`` for the method and its
validation against hand-labelled photos.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import AssetError

N_MEDIAPIPE = 468
N_IBUG = 68
MAP_FILE = "data/mediapipe_ict_map.json"


@dataclass
class LandmarkMap:
    """Face Mesh -> ICT correspondences (K = 468 rows, one per Face Mesh point, in order)."""

    mediapipe_index: np.ndarray  # (K,) Face Mesh point index
    ict_vertex: np.ndarray  # (K,) nearest ICT vertex
    ict_triangle: np.ndarray  # (K,) index into FaceModel.triangles
    ict_bary: np.ndarray  # (K, 3) barycentrics on that triangle (corners: ict_triangle_vertices)
    weight: np.ndarray  # (K,) reliability in (0, 1]: lower for points that wander between renders and for contour points
    is_contour: np.ndarray  # (K,) bool: face-oval (silhouette) points, which slide along the surface with pose
    ibug68_weights: np.ndarray  # (68, 468): iBUG point j = ibug68_weights[j] @ points468
    ibug68_is_contour: np.ndarray  # (68,) bool: jaw 0-16
    ict_triangle_vertices: np.ndarray  # (K, 3) vertex ids of ict_triangle (to check against the model)
    meta: dict
    mirror: np.ndarray | None = None  # (K,) Face Mesh index of each point's left/right mirror partner, -1 = not paired

    @property
    def ibug68_from_mediapipe(self) -> np.ndarray:
        """(68, 468) weights (rows sum to 1); the contract's name for ``ibug68_weights``."""
        return self.ibug68_weights

    def ibug68(self, points468: np.ndarray) -> np.ndarray:
        """(68, D) iBUG points from (468, D) Face Mesh points."""
        return self.ibug68_weights @ np.asarray(points468, dtype=np.float64)

    def surface_points(self, vertices: np.ndarray) -> np.ndarray:
        """(K, 3) the mapped surface points on an ICT mesh with these (V, 3) vertices."""
        v = np.asarray(vertices, dtype=np.float64)
        return np.einsum("kc,kcd->kd", self.ict_bary, v[self.ict_triangle_vertices])

    def check_model(self, model) -> None:
        """Raise AssetError when the map was built for a different ICT topology."""
        tris = np.asarray(model.triangles)[self.ict_triangle]
        if model.n_vertices != self.meta.get("ict_vertices", model.n_vertices) or not np.array_equal(tris, self.ict_triangle_vertices):
            raise AssetError("the Face Mesh -> ICT landmark map does not match this face model's triangles; rebuild it with scripts/build_landmark_map.py")


def _parse(doc: dict, where: str) -> LandmarkMap:
    try:
        k = len(doc["mediapipe_index"])
        w68 = np.zeros((N_IBUG, N_MEDIAPIPE))
        for j, row in enumerate(doc["ibug68_weights"]):
            for i, w in row:
                w68[j, int(i)] = float(w)
        m = LandmarkMap(
            mediapipe_index=np.asarray(doc["mediapipe_index"], dtype=np.int64),
            ict_vertex=np.asarray(doc["ict_vertex"], dtype=np.int64),
            ict_triangle=np.asarray(doc["ict_triangle"], dtype=np.int64),
            ict_bary=np.asarray(doc["ict_bary"], dtype=np.float64).reshape(k, 3),
            weight=np.asarray(doc["weight"], dtype=np.float64),
            is_contour=np.asarray(doc["is_contour"], dtype=bool),
            ibug68_weights=w68,
            ibug68_is_contour=np.asarray(doc["ibug68_is_contour"], dtype=bool),
            ict_triangle_vertices=np.asarray(doc["ict_triangle_vertices"], dtype=np.int64).reshape(k, 3),
            mirror=np.asarray(doc["mediapipe_mirror"], dtype=np.int64) if "mediapipe_mirror" in doc else None,
            meta={key: doc[key] for key in ("about", "command", "renders", "identities", "seed", "ict_vertices") if key in doc},
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise AssetError(f"{where}: malformed landmark map ({exc})") from None
    if k != N_MEDIAPIPE or len(m.ibug68_is_contour) != N_IBUG or not np.allclose(w68.sum(1), 1.0, atol=1e-3):
        raise AssetError(f"{where}: landmark map needs {N_MEDIAPIPE} rows and 68 iBUG rows of weights summing to 1")
    return m


def load_landmark_map(path: str | Path | None = None) -> LandmarkMap:
    """The shipped map (or one at ``path``, e.g. a rebuilt one)."""
    if path is None:
        return _load_shipped()
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AssetError(f"{p}: cannot read the landmark map ({exc})") from None
    return _parse(doc, str(p))


@lru_cache(maxsize=1)
def _load_shipped() -> LandmarkMap:
    res = resources.files("facerecon").joinpath(MAP_FILE)
    try:
        doc = json.loads(res.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AssetError(f"{MAP_FILE}: cannot read the shipped landmark map ({exc}); rebuild it with scripts/build_landmark_map.py") from None
    return _parse(doc, MAP_FILE)


IBUG68_POINTS_FILE = "data/photo_ibug68_ict.json"


@dataclass(frozen=True)
class Ibug68Points:
    """Where on the ICT surface each iBUG-68 landmark of the photo path sits: landmark k is
    ``bary[k] @ V[triangle_vertices[k]]`` (a vertex: ``(v, v, v)``, ``(1, 0, 0)``)."""

    triangle_vertices: np.ndarray  # (68, 3)
    bary: np.ndarray  # (68, 3)

    def points(self, vertices: np.ndarray) -> np.ndarray:
        """(68, 3) the landmarks on an ICT mesh with these (V, 3) vertices."""
        return np.einsum("kc,kcd->kd", self.bary, np.asarray(vertices, np.float64)[self.triangle_vertices])

    @classmethod
    def vertices(cls, vertex_ids) -> "Ibug68Points":
        v = np.asarray(vertex_ids, np.int64).reshape(68)
        bary = np.zeros((68, 3))
        bary[:, 0] = 1.0
        return cls(np.repeat(v[:, None], 3, 1), bary)


def load_ibug68_points(model, which: str = "learnt") -> Ibug68Points:
    """``"ict"``: ICT's own 68 landmark vertices; ``"learnt"``: the shipped table learnt on renders
    (``benchmarks/photo_correspondence.py``; the jaw rows are ICT's vertices)."""
    if which == "ict":
        return Ibug68Points.vertices(model.landmarks_68)
    res = resources.files("facerecon").joinpath(IBUG68_POINTS_FILE)
    try:
        doc = json.loads(res.read_text(encoding="utf-8"))
        tv = np.asarray(doc["triangle_vertices"], np.int64).reshape(68, 3)
        bary = np.asarray(doc["bary"], np.float64).reshape(68, 3)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AssetError(f"{IBUG68_POINTS_FILE}: cannot read the learnt landmark points ({exc}); rebuild it with "
                         "benchmarks/photo_correspondence.py --write") from None
    if doc.get("ict_vertices", model.n_vertices) != model.n_vertices or tv.min() < 0 or tv.max() >= model.n_vertices \
            or not np.allclose(bary.sum(1), 1.0, atol=1e-4):
        raise AssetError(f"{IBUG68_POINTS_FILE}: the learnt landmark points do not match this face model; rebuild them "
                         "with benchmarks/photo_correspondence.py --write")
    return Ibug68Points(tv, bary)
