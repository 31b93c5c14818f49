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
    sigma_facemesh_turned: tuple[float, ...]
    sigma_dlib_turned: tuple[float, ...]
    turned_yaw_deg: tuple[float, float]
    by_yaw: bool
    ibug68_weight: float
    dense_contour_weight: float
    dense_inner_weight: float
    snap_facing_jaw: bool
    ict_points: str

    def __post_init__(self) -> None:
        if self.ict_points not in ("learnt", "ict"):
            raise ConfigError(f"fusion: ict_points must be learnt or ict, not {self.ict_points!r}")
        for s in (self.sigma_facemesh, self.sigma_dlib, self.sigma_facemesh_turned, self.sigma_dlib_turned):
            if len(s) != len(REGIONS) or min(s) <= 0:
                raise ConfigError(f"fusion: sigma_facemesh, sigma_dlib and their _turned need {len(REGIONS)} positive values "
                                  f"({', '.join(REGIONS)})")
        if len(self.turned_yaw_deg) != 2 or not 0 <= self.turned_yaw_deg[0] < self.turned_yaw_deg[1]:
            raise ConfigError("fusion: turned_yaw_deg needs two increasing angles [frontal up to, turned from]")
        if self.dense_contour_weight < 0 or self.dense_inner_weight < 0:
            raise ConfigError("fusion: dense_contour_weight and dense_inner_weight must be >= 0")


def per_landmark(values) -> np.ndarray:
    """(68,) from one value per region."""
    out = np.empty(68)
    for v, idx in zip(values, REGIONS.values()):
        out[idx] = float(v)
    return out


def sigmas(cfg: FusionConfig, yaw_deg: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per landmark (68,) RMS errors of (Face Mesh, dlib) for a face turned ``yaw_deg``: with
    ``by_yaw``, the frontal table up to ``turned_yaw_deg[0]``, the turned table from
    ``turned_yaw_deg[1]``, linear in |yaw| between; else (or yaw None) the frontal table."""
    a = 0.0
    if cfg.by_yaw and yaw_deg is not None and np.isfinite(yaw_deg):
        lo, hi = cfg.turned_yaw_deg
        a = float(np.clip((abs(yaw_deg) - lo) / (hi - lo), 0.0, 1.0))
    fm = (1 - a) * np.asarray(cfg.sigma_facemesh) + a * np.asarray(cfg.sigma_facemesh_turned)
    dl = (1 - a) * np.asarray(cfg.sigma_dlib) + a * np.asarray(cfg.sigma_dlib_turned)
    return per_landmark(fm), per_landmark(dl)


def head_yaw_deg(rotation: np.ndarray, translation: np.ndarray | None = None) -> float:
    """|yaw| of a head pose (head -> camera) in degrees: the angle, about the head's own up axis
    (ICT's +y), between its forward axis (-z) and the ray to the camera.  Not an Euler angle of the
    camera frame, so a photo turned sideways (a phone held in landscape: the face rolled 90
    degrees, the TrueDepth frames) gives the head's turn, not its roll or pitch."""
    r = np.asarray(rotation, np.float64)
    fwd, up = -r[:, 2], r[:, 1]
    to_cam = np.array([0.0, 0.0, -1.0]) if translation is None else -np.asarray(translation, np.float64)
    to_cam = to_cam - (to_cam @ up) * up
    n = float(np.linalg.norm(to_cam))
    if n < 1e-9:
        return 90.0
    return float(np.degrees(np.arccos(np.clip(fwd @ to_cam / n, -1.0, 1.0))))


def fuse68(facemesh68: np.ndarray, dlib68: np.ndarray | None, cfg: FusionConfig | None = None,
           yaw_deg: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(fused (68, 2) points, their sigma (68,) in % of the eye-corner distance); without dlib's
    points, Face Mesh's as they are.  ``yaw_deg``: the face's yaw (an estimate), which picks the
    per-source errors (:func:`sigmas`: dlib's predictor fails on turned faces, Face Mesh less)."""
    cfg = cfg or FusionConfig()
    s_fm, s_dl = sigmas(cfg, yaw_deg)
    fm = np.asarray(facemesh68, np.float64)[:, :2]
    if dlib68 is None:
        return fm.copy(), s_fm
    w_fm, w_dl = 1.0 / s_fm**2, 1.0 / s_dl**2
    fused = (w_fm[:, None] * fm + w_dl[:, None] * np.asarray(dlib68, np.float64)[:, :2]) / (w_fm + w_dl)[:, None]
    return fused, 1.0 / np.sqrt(w_fm + w_dl)
