"""Relative inverse depth -> metric depth (mm), against the photo's fitted ICT face.

Monocular networks (DPT, Depth Anything) predict inverse depth up to an unknown scale and
shift: ``1 / z = a * d + b``.  We solve ``a`` and ``b`` at the inner-face pixels, where the
fitted ICT face's rendered depth ``z_ref`` is trustworthy, then apply them to the whole image.

Robust, in two steps:

1. RANSAC on pairs of pixels (exact a, b through two points; seeded) keeps the pair whose
   model has the most pixels within ``inlier_mm`` of ``z_ref``: hair over the forehead,
   glasses or a bad fit patch cannot pull the start.
2. IRLS with Huber weights on the residual in millimetres, linearised: ``z - z_ref ~=
   -z_ref^2 * (a d + b - 1/z_ref)``, so each pixel's inverse-depth equation is weighted by
   ``z_ref^2`` (a millimetre of error counts the same at every distance).  The Huber scale is
   1.345 robust sigmas (MAD), re-estimated every iteration.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import FaceReconError

MIN_PIXELS = 50


class MetricFitError(FaceReconError):
    """Too few usable face pixels, or a depth map that does not vary like a face."""


@dataclass(frozen=True)
class MetricFit:
    """``1 / z_mm = a * d + b``; residuals are ``z - z_ref`` in mm over the pixels used."""

    a: float
    b: float
    n_pixels: int
    n_inliers: int  # |residual| <= inlier_mm
    median_abs_mm: float
    rms_inlier_mm: float
    iterations: int

    def apply(self, d: np.ndarray, max_depth_mm: float | None = None) -> np.ndarray:
        """Metric depth (mm, float32) of relative inverse depth ``d``; 0 where ``a d + b`` is not
        positive (behind the camera / at infinity) or farther than ``max_depth_mm``."""
        inv = self.a * np.asarray(d, np.float64) + self.b
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(inv > 0, 1.0 / inv, 0.0)
        if max_depth_mm is not None:
            z = np.where(z <= max_depth_mm, z, 0.0)
        return np.where(np.isfinite(z), z, 0.0).astype(np.float32)

    def to_json(self) -> dict:
        return {k: (round(v, 9) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _solve(d: np.ndarray, inv_ref: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted least squares of ``a d + b = inv_ref`` (weights ``w`` on squared residuals)."""
    sw = np.sqrt(w)
    a_mat = np.stack([d * sw, sw], axis=1)
    sol, *_ = np.linalg.lstsq(a_mat, inv_ref * sw, rcond=None)
    return float(sol[0]), float(sol[1])


def _residual_mm(a: float, b: float, d: np.ndarray, z_ref: np.ndarray) -> np.ndarray:
    inv = a * d + b
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(inv > 0, 1.0 / inv - z_ref, np.inf)
    return r


def fit_inverse_depth(d: np.ndarray, z_ref_mm: np.ndarray, mask: np.ndarray | None = None, *, inlier_mm: float = 5.0,
                      ransac_iterations: int = 200, irls_iterations: int = 20, seed: int = 0) -> MetricFit:
    """Solve ``a, b`` with ``1/(a d + b) ~= z_ref`` at the pixels of ``mask`` (and ``z_ref > 0``)."""
    d = np.asarray(d, np.float64)
    z = np.asarray(z_ref_mm, np.float64)
    if d.shape != z.shape:
        raise ValueError(f"depth {d.shape} and reference {z.shape} differ in shape")
    use = np.isfinite(d) & np.isfinite(z) & (z > 0)
    if mask is not None:
        use &= np.asarray(mask, bool)
    dv, zv = d[use], z[use]
    if dv.size < MIN_PIXELS:
        raise MetricFitError(f"metric step: only {dv.size} face pixels with both depths (need {MIN_PIXELS})")
    if float(np.ptp(dv)) <= 1e-12 * max(1.0, float(np.abs(dv).max())):
        raise MetricFitError("metric step: the network's depth is constant over the face (no shape to scale)")
    iv = 1.0 / zv
    rng = np.random.default_rng(seed)
    # 1. RANSAC on two-pixel models; the sample favours well-separated d (a stable slope)
    best = (-1, 0.0, 0.0)
    n = dv.size
    for _ in range(int(ransac_iterations)):
        i, j = rng.integers(0, n, 2)
        if abs(dv[i] - dv[j]) < 1e-9 * (abs(dv[i]) + abs(dv[j]) + 1e-12):
            continue
        a = (iv[i] - iv[j]) / (dv[i] - dv[j])
        b = iv[i] - a * dv[i]
        count = int((np.abs(_residual_mm(a, b, dv, zv)) <= inlier_mm).sum())
        if count > best[0]:
            best = (count, a, b)
    if best[0] < 2:
        a, b = _solve(dv, iv, zv**4)
    else:
        _, a, b = best
        inl = np.abs(_residual_mm(a, b, dv, zv)) <= inlier_mm
        if inl.sum() >= 2:
            a, b = _solve(dv[inl], iv[inl], zv[inl] ** 4)
    # 2. IRLS, Huber on the linearised mm residual (weights z_ref^4 * huber on the squared inverse-depth residual)
    it = 0
    for it in range(1, int(irls_iterations) + 1):
        r = zv * zv * (a * dv + b - iv)  # ~ -(z - z_ref) in mm
        sigma = 1.4826 * float(np.median(np.abs(r - np.median(r)))) + 1e-6
        k = 1.345 * sigma
        ar = np.abs(r)
        hub = np.where(ar <= k, 1.0, k / np.maximum(ar, 1e-12))
        a_new, b_new = _solve(dv, iv, hub * zv**4)
        done = abs(a_new - a) <= 1e-9 * abs(a) + 1e-15 and abs(b_new - b) <= 1e-9 * abs(b) + 1e-15
        a, b = a_new, b_new
        if done:
            break
    res = _residual_mm(a, b, dv, zv)
    inl = np.abs(res) <= inlier_mm
    rms = float(np.sqrt(np.mean(res[inl] ** 2))) if inl.any() else float("nan")
    if not np.isfinite(res).any() or a == 0:
        raise MetricFitError("metric step: no scale and shift put the face in front of the camera")
    return MetricFit(a, b, int(dv.size), int(inl.sum()), float(np.median(np.abs(res))), rms, it)


def identity_fit(depth_mm: np.ndarray, z_ref_mm: np.ndarray, mask: np.ndarray, inlier_mm: float = 5.0) -> MetricFit:
    """The "fit" of a depth that is metric already (a = 1 on 1/z, b = 0), with its residual
    against the reference at the mask, for the same report as :func:`fit_inverse_depth`.
    ``d`` for :meth:`MetricFit.apply` is then ``1 / depth_mm``."""
    dm = np.asarray(depth_mm, np.float64)
    z = np.asarray(z_ref_mm, np.float64)
    use = np.asarray(mask, bool) & (dm > 0) & (z > 0)
    res = dm[use] - z[use]
    inl = np.abs(res) <= inlier_mm
    med = float(np.median(np.abs(res))) if res.size else float("nan")
    rms = float(np.sqrt(np.mean(res[inl] ** 2))) if inl.any() else float("nan")
    return MetricFit(1.0, 0.0, int(use.sum()), int(inl.sum()), med, rms, 0)


def metric_depth(d: np.ndarray, kind: str, z_ref_mm: np.ndarray, mask: np.ndarray, *, max_depth_mm: float | None = None,
                 seed: int = 0) -> tuple[np.ndarray, MetricFit]:
    """Depth in mm for either kind: relative inverse depth is fitted, metric depth is checked."""
    if kind == "metric_mm":
        return np.asarray(d, np.float32), identity_fit(d, z_ref_mm, mask)
    if kind != "relative_inverse":
        raise ValueError(f"unknown depth kind {kind!r}")
    fit = fit_inverse_depth(d, z_ref_mm, mask, seed=seed)
    return fit.apply(d, max_depth_mm), fit
