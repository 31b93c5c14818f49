"""Fuse two iBUG-68 landmark sources (Face Mesh through the landmark map, dlib's predictor).

Per landmark, the inverse-variance weighted mean of the two: each source's error is a measured
RMS per face region (``[fusion]`` of ``data/photo_landmarks.toml``, measured on calibration renders by
``benchmarks/photo_landmark_calibration.py``), so the jaw comes mostly from dlib, whose outline
is the annotators', and the inner face from both.  The fused points' own RMS (the combined
sigma) goes with them.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..settings import toml_defaults

REGIONS = {
    "jaw": np.arange(0, 17),
    "brows": np.arange(17, 27),
    "nose": np.arange(27, 36),
    "eyes": np.arange(36, 48),
    "mouth": np.arange(48, 68),
}


@toml_defaults("data/photo_landmarks.toml", "fusion")
class FusionConfig:
    """The ``[fusion]`` table of ``data/photo_landmarks.toml``."""

    sigma_facemesh: tuple[float, ...]
    sigma_dlib: tuple[float, ...]
    ibug68_weight: float
    dense_contour_weight: float
    snap_facing_jaw: bool

    def __post_init__(self) -> None:
        for s in (self.sigma_facemesh, self.sigma_dlib):
            if len(s) != len(REGIONS) or min(s) <= 0:
                raise ConfigError(f"fusion: sigma_facemesh and sigma_dlib need {len(REGIONS)} positive values "
                                  f"({', '.join(REGIONS)})")
        if self.dense_contour_weight < 0:
            raise ConfigError("fusion: dense_contour_weight must be >= 0")


def per_landmark(values) -> np.ndarray:
    """(68,) from one value per region."""
    out = np.empty(68)
    for v, idx in zip(values, REGIONS.values()):
        out[idx] = float(v)
    return out


def fuse68(facemesh68: np.ndarray, dlib68: np.ndarray | None, cfg: FusionConfig | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """(fused (68, 2) points, their sigma (68,) in % of the eye-corner distance); without dlib's
    points, Face Mesh's as they are."""
    cfg = cfg or FusionConfig()
    s_fm = per_landmark(cfg.sigma_facemesh)
    fm = np.asarray(facemesh68, np.float64)[:, :2]
    if dlib68 is None:
        return fm.copy(), s_fm
    s_dl = per_landmark(cfg.sigma_dlib)
    w_fm, w_dl = 1.0 / s_fm**2, 1.0 / s_dl**2
    fused = (w_fm[:, None] * fm + w_dl[:, None] * np.asarray(dlib68, np.float64)[:, :2]) / (w_fm + w_dl)[:, None]
    return fused, 1.0 / np.sqrt(w_fm + w_dl)
