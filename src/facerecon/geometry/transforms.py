"""Similarity transforms ``x -> scale * R @ x + t`` and their least-squares fit from pairs (Kabsch / Umeyama)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SimilarityTransform:
    """``x -> scale * R @ x + t`` (rotation (3, 3), translation (3,) in mm)."""

    R: np.ndarray
    t: np.ndarray
    scale: float = 1.0

    @staticmethod
    def identity() -> "SimilarityTransform":
        return SimilarityTransform(np.eye(3), np.zeros(3), 1.0)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Transform points (..., 3)."""
        return self.scale * np.asarray(x, dtype=np.float64) @ self.R.T + self.t

    def then(self, other: "SimilarityTransform") -> "SimilarityTransform":
        """The transform applying ``self`` first, then ``other``."""
        return SimilarityTransform(other.R @ self.R, other.scale * other.R @ self.t + other.t, other.scale * self.scale)

    def inverse(self) -> "SimilarityTransform":
        rt = self.R.T
        return SimilarityTransform(rt, -(rt @ self.t) / self.scale, 1.0 / self.scale)

    def matrix(self) -> np.ndarray:
        """4x4 homogeneous matrix."""
        m = np.eye(4)
        m[:3, :3] = self.scale * self.R
        m[:3, 3] = self.t
        return m


def fit_similarity(
    src: np.ndarray, dst: np.ndarray, *, scale: bool = False, weights: np.ndarray | None = None
) -> SimilarityTransform:
    """Least-squares transform mapping ``src`` (N, 3) onto ``dst`` (N, 3) (Kabsch / Umeyama).

    Reflections are excluded (det R = +1).  With ``scale=True`` a uniform scale is fitted
    too (Umeyama 1991).  Needs N >= 3 non-collinear points.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3:
        raise ValueError(f"src {src.shape} and dst {dst.shape} must both be (N, 3)")
    if src.shape[0] < 3:
        raise ValueError(f"need at least 3 corresponding points, got {src.shape[0]}")
    w = np.ones(src.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s, dst - mu_d
    cov = (xd * w[:, None]).T @ xs
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2] = -1.0
    r = (u * d) @ vt
    s = 1.0
    if scale:
        var_s = float(w @ (xs * xs).sum(axis=1))
        s = float((sig * d).sum() / var_s) if var_s > 0 else 1.0
    return SimilarityTransform(r, mu_d - s * r @ mu_s, s)
