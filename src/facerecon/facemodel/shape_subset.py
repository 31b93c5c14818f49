"""The vertex subset the shape network predicts, and its fixed upsampling to the face.

Predicting 3 x 9,409 face-region offsets from a 1024-wide layer would need ~29 M weights
(> 110 MB); the shape network therefore predicts offsets for a documented subset of
``n`` face vertices (farthest-point sampling over the ``face`` region, seeded at
the nose tip, on the neutral mesh) and a FIXED linear map brings them back to every
vertex of the model:

    w    = argmin_w ||B_sub w - o_sub||^2 + ridge * ||w||^2     (B = the 155 model modes)
    o    = B w                                                   (all vertices)

For offsets that the model can express (all synthetic training targets) the map is
exact up to the tiny ridge (measured: < 0.01 mm on the face region for n = 1024); for anything else it returns the closest model shape. The map
is two small matrices (155 x 3n and 3V x 155), never the 3V x 3n product.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import FaceModel

NOSE_TIP_LANDMARK = 30


def farthest_point_sampling(points: np.ndarray, n: int, start: int) -> np.ndarray:
    """Indices (into ``points``) of ``n`` points spread evenly, deterministic from ``start``."""
    chosen = np.empty(n, dtype=np.int64)
    chosen[0] = start
    d = np.linalg.norm(points - points[start], axis=1)
    for i in range(1, n):
        chosen[i] = int(np.argmax(d))
        d = np.minimum(d, np.linalg.norm(points - points[chosen[i]], axis=1))
    return chosen


_SUBSET_CACHE_VERSION = 1


def _subset_file(rows: np.ndarray, indices: np.ndarray, ridge: float):
    """(the disk cache file of the subset map of these basis ``rows`` (K, n, 3), its key as text), or (None, "").
    The key is the solve's whole input (CRC-32 of the rows and indices, the ridge) and what may change its last
    bits: numpy's version and OpenBLAS's thread count as the environment sets it (a GEMM split over two threads
    gave 3 of 476,160 coefficients different)."""
    import hashlib
    import json
    import os
    import zlib

    from .ict import facerecon_home

    try:
        r = np.ascontiguousarray(rows)
        key = json.dumps({"version": _SUBSET_CACHE_VERSION, "rows": [r.dtype.str, list(r.shape), zlib.crc32(memoryview(r).cast("B"))],
                          "indices": zlib.crc32(np.ascontiguousarray(indices, np.int64).tobytes()), "ridge": float(ridge).hex(),
                          "numpy": np.__version__, "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", ""),
                          "cpus": os.cpu_count()}, sort_keys=True)
    except (OSError, TypeError, ValueError):
        return None, ""
    return facerecon_home() / "subset" / f"subset-{hashlib.sha256(key.encode()).hexdigest()[:24]}.bin", key


@dataclass
class ShapeSubset:
    """Subset vertex indices and the projection that upsamples subset offsets."""

    vertices: np.ndarray  # (n,) model vertex indices
    coeffs_from_subset: np.ndarray  # (K, 3n): subset offsets (flattened xyz) -> model weights
    model: FaceModel

    @classmethod
    def build(cls, model: FaceModel, n: int = 1024, region: str = "face", ridge: float = 1e-6) -> "ShapeSubset":
        region_idx = model.region_vertices(region)
        start = int(np.flatnonzero(region_idx == model.landmarks_68[NOSE_TIP_LANDMARK])[0])
        sel = np.sort(region_idx[farthest_point_sampling(model.neutral[region_idx].astype(np.float64), n, start)])
        return cls.from_indices(model, sel, ridge)

    @classmethod
    def from_indices(cls, model: FaceModel, indices: np.ndarray, ridge: float = 1e-6) -> "ShapeSubset":
        """The map of the subset ``indices``; its solve (~30-60 ms of every cold start) is kept on disk in
        ``$FACERECON_HOME/subset``, keyed by the exact inputs (:func:`_subset_file`)."""
        k = model.n_identity + model.n_expression
        indices = np.asarray(indices, dtype=np.int64)
        # the subset's rows only (casting the whole (K, V, 3) basis first cost ~0.2 s at every start)
        # (np.take of the flat bases: the same values as the two bases' fancy-indexed rows concatenated, ~4x faster)
        rows = np.take(model._flat_bases.reshape(k, model.n_vertices, -1), indices, axis=1)  # (K, n, 3)
        path, key = _subset_file(rows, indices, ridge)
        if path is not None:
            from ..fileutil import read_cache_file

            got = read_cache_file(path, key)
            if got is not None and len(got[1]) == 1 and got[1][0].shape == (k, 3 * len(indices)) and got[1][0].dtype == np.float32:
                # a copy, not the view into the file's bytes: OpenBLAS's products round differently with the
                # data at another alignment (the view gave other last bits of the weights, so other poses)
                return cls(indices, np.array(got[1][0]), model)
        b_sub = rows.astype(np.float64).reshape(k, -1).T  # (3n, K)
        gram = b_sub.T @ b_sub
        coeffs = np.linalg.solve(gram + ridge * np.trace(gram) / k * np.eye(k), b_sub.T).astype(np.float32)  # (K, 3n)
        if path is not None:
            from ..fileutil import write_cache_file

            write_cache_file(path, key, {}, [coeffs])
        return cls(indices, coeffs, model)

    @property
    def n(self) -> int:
        return int(len(self.vertices))

    def reference_normals(self) -> np.ndarray:
        """(n, 3) unit normals of the neutral face at the subset vertices (area-weighted)."""
        import trimesh

        mesh = trimesh.Trimesh(self.model.neutral.astype(np.float64), self.model.triangles, process=False)
        return np.asarray(mesh.vertex_normals[self.vertices], np.float64)

    def offsets_from_weights(self, identity: np.ndarray, expression: np.ndarray) -> np.ndarray:
        """Ground-truth subset offsets (..., n, 3) from model weights (the training target)."""
        v = self.model.vertices(identity, expression, subset=self.vertices)
        return v - self.model.neutral[self.vertices]

    def weights_from_offsets(self, offsets: np.ndarray) -> np.ndarray:
        """(..., n, 3) subset offsets -> (..., K) model weights (identity then expression)."""
        flat = np.asarray(offsets, np.float32).reshape(*np.shape(offsets)[:-2], -1)
        return flat @ self.coeffs_from_subset.T
