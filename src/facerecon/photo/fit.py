"""Fit the ICT face model to 2D landmarks of a photo: identity, expression, head pose, pinhole camera.

Unknowns: head rotation (axis-angle, left-multiplicative updates), translation (mm, camera
frame), identity weights (``n_identity`` modes, Gaussian prior, each mode one standard
deviation) and ARKit expression weights (``n_expression``, kept in [0, 1] by a projected
step with an active set, L2 + L1 prior).  The focal length is fixed (EXIF, ``--focal`` or the
default field of view: :mod:`facerecon.photo.camera`).

Each landmark is a point on the ICT surface (a vertex, or barycentric coordinates in a
triangle; see :class:`LandmarkTargets`).  Only the rows of the model bases for those points
(and the contour candidates) are used (``FaceModel.torch_bases(subset)``), so a step costs
well under a millisecond.

Residual: the 2D reprojection error of each landmark in units of the face size in the image,
robustified per landmark (Geman-McClure by default, iteratively reweighted) and weighted per
landmark.  Contour landmarks (the jaw line) do not have a fixed vertex: a face turned away
shows a different line of the cheek as its outline.  For each contour landmark, the
candidates are the face vertices on a horizontal band (head frame) through its default point,
from the cheek front to the ear, and (``contour_rule = "occluding"``, the default) the face
vertices within ``contour_radius_mm`` of it.  Every iteration picks the candidate on the
occluding contour (seen edge-on: the silhouette on the side turned away, the jaw's lower edge
below the face) that projects nearest the landmark's target, or, with none of those within
``contour_reach`` of the face size (the upper jaw facing the camera), the candidate projecting
nearest the target (a sliding correspondence).  ``contour_rule = "band"``: the band only; on
the side turned away the candidate projecting outermost along the head's x axis (3DDFA's
"landmark marching"), on the side facing the camera the band vertex nearest the target.
Contour landmarks also get ``contour_weight``.

Depth rows (``depth_weight`` > 0): the landmark model's relative depth of each inner point (Face
Mesh's z) against the posed mean face's, an offset and a lean along the face's vertical axis
projected out of both; they constrain the pose only (a turned face's 2D points lean towards a
frontal face, their depth does not; docs/photo.md round 7).  ``depth_stage = "joint"`` (``--method
rgbd``'s colour start): in every step.  ``"pose"`` (photos): after the 2D-only fit, in pose-only
steps with its identity and expression held, so the shape does not bend to meet the biased 2D
points at the corrected pose; weighted by the 2D fit's turn (``depth_turn_deg``) and, with
``depth_turn_only``, kept only when they turn the face further (docs/photo.md round 9).

Solver: Levenberg-Marquardt with analytic Jacobians (torch, float64): the start is a
scaled-orthographic PnP of the mean face's landmarks (least-squares affine camera, then the
nearest rotation), ``rigid_iterations`` pose-only steps, then up to ``iterations`` joint
steps until the cost (after re-picking the contour) has fallen by less than ``tolerance``
(relative) in three steps in a row.

Eye and lip closure need nothing special: when the upper and lower lid (lip) points coincide
in the image, only the blink (jawOpen/mouthClose) expressions move the model's lid (lip) points
together, so the fit turns them on.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from numba import njit

from ..geometry.camera import Intrinsics
from ..errors import ConfigError
from ..facemodel import FaceModel, vertex_normals
from ..geometry.pose import HeadPose
from .config import PhotoFitConfig
from .fusion import head_yaw_deg

@dataclass
class LandmarkTargets:
    """2D landmarks and the ICT surface points they mark.

    ``vertices`` (K, 3) and ``bary`` (K, 3): the model point of landmark k is
    ``sum_j bary[k, j] * V[vertices[k, j]]`` (a vertex: ``(v, v, v)`` and ``(1, 0, 0)``).
    Landmarks with a non-finite point or weight 0 are ignored.  ``depth`` (K,): the landmark
    model's relative depth of each point in the image's pixel scale (Face Mesh's z; NaN = none),
    fitted with ``[fit] depth_weight``.
    """

    points: np.ndarray  # (K, 2) pixels
    vertices: np.ndarray  # (K, 3) int ICT vertex indices
    bary: np.ndarray  # (K, 3)
    weight: np.ndarray  # (K,)
    contour: np.ndarray  # (K,) bool: slides along the silhouette
    depth: np.ndarray | None = None  # (K,) relative depth, px (NaN = none)

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, np.float64).reshape(-1, 2)
        k = len(self.points)
        self.vertices = np.asarray(self.vertices, np.int64).reshape(k, 3)
        self.bary = np.asarray(self.bary, np.float64).reshape(k, 3)
        self.weight = np.broadcast_to(np.asarray(self.weight, np.float64), (k,)).copy()
        self.contour = np.broadcast_to(np.asarray(self.contour, bool), (k,)).copy()
        self.depth = np.broadcast_to(np.asarray(np.nan if self.depth is None else self.depth, np.float64), (k,)).copy()
        self.weight[~np.isfinite(self.points).all(1)] = 0.0

    @classmethod
    def from_vertices(cls, points, vertex_ids, weight=None, contour=None) -> "LandmarkTargets":
        v = np.asarray(vertex_ids, np.int64).reshape(-1)
        bary = np.zeros((len(v), 3))
        bary[:, 0] = 1.0
        return cls(points, np.repeat(v[:, None], 3, 1), bary, 1.0 if weight is None else weight,
                   False if contour is None else contour)

    def subset(self, keep) -> "LandmarkTargets":
        return LandmarkTargets(self.points[keep], self.vertices[keep], self.bary[keep], self.weight[keep], self.contour[keep],
                               self.depth[keep])


@dataclass
class PhotoFit:
    """The fitted model and camera-frame pose (mm; camera x right, y down, z forward)."""

    rotation: np.ndarray  # (3, 3) head -> camera
    translation: np.ndarray  # (3,) mm
    identity: np.ndarray  # (100,)
    expression: np.ndarray  # (55,)
    intrinsics: Intrinsics
    iterations: int  # joint iterations run (after the rigid ones)
    rigid_iterations: int
    converged: bool
    ms: float
    rms_px: float  # RMS 2D error of the non-contour landmarks (weights > 0) at the end
    contour_rms_px: float
    cost_history: list[float] = field(default_factory=list)
    contour_vertices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # silhouette vertices chosen for the contour landmarks on the side turned away
    size_cue: SizeCue | None = None  # the measured eye distance the fit used (the iris), None: the head-size prior alone
    size_cue_note: str = ""  # why there was none (the pipeline's one line)
    depth_iterations: int = 0  # pose-only steps with the depth rows after the 2D fit (depth_stage "pose")

    @property
    def pose(self) -> HeadPose:
        return HeadPose(self.rotation, self.translation)


@dataclass(frozen=True)
class SizeCue:
    """A measurement of the face's scale: the mean camera depth (mm) of the two corneas
    (``eye_depth_mm``, e.g. from the iris: ``f * iris_mm / d_px``) with a relative standard
    deviation ``sd_rel``.  In the fit it is one Gaussian term on ``log`` of the fitted corneas'
    depth, weighted like the identity prior (both negative log-likelihoods on one scale), so the
    fitted size is the head-size prior and this measurement combined (a product of Gaussians).
    ``source``: what it rests on, for the report."""

    eye_depth_mm: float
    sd_rel: float
    source: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.eye_depth_mm > 0 and math.isfinite(self.eye_depth_mm) and self.sd_rel > 0):
            raise ValueError(f"size cue: eye depth {self.eye_depth_mm} mm and sd {self.sd_rel} must be positive")


def cornea_vertices(model: FaceModel) -> np.ndarray:
    """(2,) the front-most eyeball vertex (the cornea's apex) of each eye on the mean face (head frame: -z is the face's front)."""
    from ..facemodel.model import REGIONS

    cache = model.__dict__.setdefault("_photo_cornea", {})
    if "v" not in cache:
        eb = np.arange(*REGIONS["eyeballs"])
        v = model.neutral
        cache["v"] = np.array([s[np.argmin(v[s, 2])] for s in (eb[v[eb, 0] < 0], eb[v[eb, 0] > 0])], np.int64)
    return cache["v"]


# -- helpers ------------------------------------------------------------------------------------
def _rodrigues(w: torch.Tensor) -> torch.Tensor:
    th = torch.linalg.vector_norm(w)
    if float(th) < 1e-12:
        return torch.eye(3, dtype=w.dtype)
    k = w / th
    kx = torch.zeros(3, 3, dtype=w.dtype)
    kx[0, 1], kx[0, 2], kx[1, 0], kx[1, 2], kx[2, 0], kx[2, 1] = -k[2], k[1], k[2], -k[0], -k[1], k[0]
    return torch.eye(3, dtype=w.dtype) + torch.sin(th) * kx + (1 - torch.cos(th)) * (kx @ kx)


def _skew(v: torch.Tensor) -> torch.Tensor:
    z = torch.zeros_like(v[:, 0])
    return torch.stack([z, -v[:, 2], v[:, 1], v[:, 2], z, -v[:, 0], -v[:, 1], v[:, 0], z], 1).reshape(-1, 3, 3)


def landmark_points_head(model: FaceModel, targets: LandmarkTargets, identity=None, expression=None) -> np.ndarray:
    """(K, 3) head-frame model points of the landmarks for the given weights."""
    v = model.vertices(identity, expression, subset=targets.vertices.reshape(-1)).astype(np.float64).reshape(-1, 3, 3)
    return np.einsum("kj,kjc->kc", targets.bary, v)


def contour_bands(model: FaceModel, targets: LandmarkTargets, cfg: PhotoFitConfig) -> tuple[np.ndarray, np.ndarray]:
    """(band vertices (nb,), band index (K, L) into them, -1 = none) for the contour landmarks.

    A band is the face vertices (mean face, head frame) within ``contour_band_mm`` of the
    landmark's height, on its side, from ``contour_front_mm`` in front of it to
    ``contour_back_mm`` behind it.  Landmarks near the middle (|x| < 20 mm: the chin) keep
    their point: their outline is not a left/right silhouette.
    """
    p = landmark_points_head(model, targets)
    face = model.region_vertices("face")
    fv = model.neutral[face].astype(np.float64)
    occluding = cfg.contour_rule == "occluding"
    rows = []
    for k in range(len(p)):
        if not targets.contour[k] or (abs(p[k, 0]) < 20.0 and not occluding):
            rows.append(np.zeros(0, np.int64))
            continue
        x, y, z = p[k]
        m = ((np.abs(fv[:, 1] - y) < cfg.contour_band_mm) & (np.sign(fv[:, 0]) == np.sign(x)) & (np.abs(fv[:, 0]) > 20.0)
             & (fv[:, 2] > z - cfg.contour_front_mm) & (fv[:, 2] < z + cfg.contour_back_mm))
        if occluding:
            # the jaw's lower edge (and the chin's) is an occluding contour too, not on a horizontal
            # line: the vertices around the landmark are candidates as well
            near = np.linalg.norm(fv - p[k], axis=1) < cfg.contour_radius_mm
            if abs(x) >= 20.0:
                near &= np.sign(fv[:, 0]) == np.sign(x)
            m |= near
        rows.append(face[m])
    band = np.unique(np.concatenate(rows)) if rows else np.zeros(0, np.int64)
    width = max([len(r) for r in rows] + [1])
    index = np.full((len(p), width), -1, np.int64)
    for k, r in enumerate(rows):
        index[k, : len(r)] = np.searchsorted(band, r)
    return band, index


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)


@njit(cache=True, nogil=True)
def _occluding_pick(uv, facing, index, target, grazing, reach2):  # pragma: no cover - compiled
    k, width = index.shape
    out = np.zeros(k, np.int64)
    for i in range(k):
        best, best_d = 0, np.inf
        edge, edge_d = 0, np.inf
        for j in range(width):
            b = index[i, j]
            if b < 0:
                continue
            du = uv[b, 0] - target[i, 0]
            dv = uv[b, 1] - target[i, 1]
            d = du * du + dv * dv
            if d < best_d:
                best, best_d = j, d
            if abs(facing[b]) < grazing and d < edge_d:
                edge, edge_d = j, d
        out[i] = edge if edge_d <= reach2 else best
    return out


def occluding_pick(uv, facing, index, target, grazing: float, reach_px: float) -> np.ndarray:
    """Column (K,) into each row of ``index``: the occluding-contour candidate (|facing| <
    ``grazing``: seen edge-on) projecting nearest the row's target when one lies within
    ``reach_px`` of it; else (no contour there: the upper jaw on the side facing the camera,
    whose outline is the ear's or the hair's) the candidate projecting nearest the target (a
    sliding correspondence); the first of equals.  ``uv`` (nb, 2) px and ``facing`` (nb,) (cos of
    the normal with the view ray) of the candidate vertices, ``index`` (K, L) into them (-1 =
    none), ``target`` (K, 2) px; NumPy arrays or torch tensors.  One pass over the candidates
    (numba) instead of gathering a (K, L) block per step: the contour re-picks were the fit's
    costliest part (docs/photo.md, round 4)."""
    def arr(a, dtype):
        a = a.numpy() if isinstance(a, torch.Tensor) else a
        return np.ascontiguousarray(a, dtype)

    reach = float(reach_px)
    return _occluding_pick(arr(uv, np.float64), arr(facing, np.float64), arr(index, np.int64), arr(target, np.float64),
                           float(grazing), reach * reach)


def pnp_start(points_2d: np.ndarray, points_3d: np.ndarray, intrinsics: Intrinsics, weight: np.ndarray | None = None,
              iterations: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and translation of 3D points (head frame, mm) from their 2D projections (POSIT).

    A scaled orthographic camera (affine, fitted by weighted least squares; its nearest
    rotation and mean scale; the depth from the scale and the focal length), then
    ``iterations`` POSIT corrections that scale each image point by its depth relative to the
    centroid's: good to about a degree, which the perspective Gauss-Newton steps then remove.
    """
    w = np.ones(len(points_2d)) if weight is None else np.asarray(weight, np.float64)
    w = w / w.sum()
    sw = np.sqrt(w)[:, None]
    xs = np.asarray(points_3d, np.float64)
    xsm = w @ xs
    d3 = xs - xsm
    # normalised image coordinates
    x = (np.asarray(points_2d, np.float64) - [intrinsics.cx, intrinsics.cy]) / [intrinsics.fx, intrinsics.fy]
    eps = np.zeros(len(x))
    for _ in range(max(iterations, 1)):
        xe = x * (1.0 + eps)[:, None]
        xm = w @ xe
        a, *_ = np.linalg.lstsq(d3 * sw, (xe - xm) * sw, rcond=None)  # (3, 2): xe - xm ~ (X - Xm) @ a
        r1, r2 = a[:, 0], a[:, 1]
        s = max(0.5 * (np.linalg.norm(r1) + np.linalg.norm(r2)), 1e-12)
        m = np.stack([r1, r2, np.cross(r1, r2) / s]) / s
        u, _, vt = np.linalg.svd(m)
        r = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
        zc = 1.0 / s  # depth of the 3D centroid
        eps = (d3 @ r[2]) / zc
    c = r @ xsm
    t = np.array([xm[0] * zc - c[0], xm[1] * zc - c[1], zc - c[2]])
    return r, t


def _robust(e: torch.Tensor, kind: str, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(rho(e) ~ e^2 for small e, IRLS weight rho'(e) / (2 e))."""
    e2 = e * e
    if kind == "geman_mcclure":
        s2 = sigma * sigma
        return s2 * e2 / (s2 + e2), (s2 / (s2 + e2)) ** 2
    if kind == "huber":
        big = e > sigma
        return torch.where(big, 2 * sigma * e - sigma * sigma, e2), torch.where(big, sigma / e.clamp_min(1e-12), torch.ones_like(e))
    return e2, torch.ones_like(e)


def _bounded_step(h: torch.Tensor, g: torch.Tensor, free: torch.Tensor, x_box: torch.Tensor, box: slice, mu: float
                  ) -> torch.Tensor:
    """Damped Gauss-Newton step on the ``free`` parameters with ``box`` ones kept in [0, 1].

    A box parameter the step would push out is set to its bound and fixed, and the rest is
    solved again given that change (a projected Newton step with a growing active set), so the
    other parameters do not rely on a move that the clamp then takes away.
    """
    n = len(g)
    step = torch.zeros(n, dtype=h.dtype)
    free = free.clone()
    box_idx = torch.arange(n)[box]
    # damped once (only the diagonal changes, so the off-diagonal blocks below are h's own)
    hd = h + torch.diag(mu * torch.diagonal(h) + 1e-12)
    for _ in range(5):
        fi = torch.nonzero(free)[:, 0]
        ci = torch.nonzero(~free)[:, 0]
        hfi = hd.index_select(0, fi)
        rhs = -g[fi]
        if len(ci):
            rhs = rhs - hfi.index_select(1, ci) @ step[ci]
        a = hfi.index_select(1, fi)
        # a is symmetric positive definite (J^T W J + priors, damped): Cholesky, LU if rounding says otherwise
        chol, info = torch.linalg.cholesky_ex(a)
        step[fi] = torch.cholesky_solve(rhs[:, None], chol)[:, 0] if int(info) == 0 else torch.linalg.solve(a, rhs)
        new = x_box + step[box]
        out = free[box] & ((new < 0.0) | (new > 1.0))
        if not bool(out.any()):
            break
        step[box_idx[out]] = new[out].clamp(0.0, 1.0) - x_box[out]
        free[box_idx[out]] = False
    return step


# -- the fit ------------------------------------------------------------------------------------
def depth_gain(yaw_deg: float, turn_deg: tuple[float, float]) -> float:
    """Factor of the depth rows' weight for a face turned ``yaw_deg`` (the 2D fit's |yaw|): 0 up to
    ``turn_deg[0]``, 1 from ``turn_deg[1]``, linear between (both 0: always 1)."""
    lo, hi = turn_deg
    if hi <= 0.0:
        return 1.0
    return float(np.clip((abs(yaw_deg) - lo) / max(hi - lo, 1e-9), 0.0, 1.0))


@dataclass
class _Structure:
    """What a fit needs from the model for one landmark layout: built once per layout and cached on the model."""

    band: np.ndarray  # (nb,) band vertices
    band_index: torch.Tensor  # (K, L) into band, -1 = none
    sliding: torch.Tensor  # (K,) bool
    side: torch.Tensor  # (K,) sign of x (head frame) of the mean-face point
    s0: torch.Tensor  # (K + nb, 3) mean-face landmark points, then band vertices
    sb: torch.Tensor  # (M, K + nb, 3) their basis rows
    sb_band: torch.Tensor  # (M, nb * 3)
    normal0: torch.Tensor  # (K, 3) mean-face surface normal at each landmark (head frame)
    normal_band: torch.Tensor  # (nb, 3) mean-face vertex normals of the band vertices (head frame)


def _structure(model: FaceModel, t: LandmarkTargets, cfg: PhotoFitConfig) -> _Structure:
    key = (t.vertices.tobytes(), t.bary.tobytes(), t.contour.tobytes(), cfg.n_identity, cfg.n_expression,
           cfg.contour_band_mm, cfg.contour_front_mm, cfg.contour_back_mm, cfg.contour_rule, cfg.contour_radius_mm)
    cache = model.__dict__.setdefault("_photo_fit_structures", {})
    if key in cache:
        return cache[key]
    k = len(t.points)
    band, band_index = contour_bands(model, t, cfg)
    subset = np.unique(np.r_[t.vertices.reshape(-1), band])
    neutral, bases = model.torch_bases(subset)
    bases = bases.reshape(-1, len(subset), 3)
    nid = model.n_identity
    b = torch.cat([bases[: cfg.n_identity], bases[nid: nid + cfg.n_expression]]).double()  # (M, n, 3)
    neutral = neutral.double()
    tv = torch.from_numpy(np.searchsorted(subset, t.vertices))
    bary = torch.from_numpy(t.bary)
    bv = torch.from_numpy(np.searchsorted(subset, band))
    s0 = torch.cat([(neutral[tv] * bary[..., None]).sum(1), neutral[bv]])
    sb = torch.cat([(b[:, tv] * bary[None, ..., None]).sum(2), b[:, bv]], 1)
    vn = vertex_normals(model.neutral.astype(np.float64), model.region_triangles("face"))
    n0 = np.einsum("kj,kjc->kc", t.bary, vn[t.vertices])
    n0 /= np.maximum(np.linalg.norm(n0, axis=1, keepdims=True), 1e-12)
    st = _Structure(band, torch.from_numpy(band_index), torch.from_numpy((band_index >= 0).any(1)),
                    torch.sign(s0[:k, 0]), s0, sb, sb[:, k:].reshape(sb.shape[0], -1), torch.from_numpy(n0),
                    torch.from_numpy(_unit(vn[band])))
    if len(cache) > 8:
        cache.clear()
    cache[key] = st
    return st


class _Problem:
    """The landmark rows of the model, the contour bands and the cost, for one photo's targets."""

    def __init__(self, model: FaceModel, targets: LandmarkTargets, intrinsics: Intrinsics, cfg: PhotoFitConfig,
                 size_cue: SizeCue | None = None):
        self.cfg = cfg
        self.cue = size_cue
        if size_cue is not None:  # the corneas' rows of the model (mean face and the fitted modes)
            cv = cornea_vertices(model)
            n0, bs = model.torch_bases(cv)
            bs = bs.reshape(-1, len(cv), 3)
            nid = model.n_identity
            self.cue_p0 = n0.double()
            self.cue_pb = torch.cat([bs[: cfg.n_identity], bs[nid: nid + cfg.n_expression]]).double()  # (M, 2, 3)
        self.t = t = targets.subset(targets.weight > 0)
        st = _structure(model, t, cfg)
        self.band, self.band_index, self.sliding, self.side = st.band, st.band_index, st.sliding, st.side
        self.s0, self.sb, self.sb_band, self.normal0, self.normal_band = st.s0, st.sb, st.sb_band, st.normal0, st.normal_band
        self.k, self.kid, self.kex = len(t.points), cfg.n_identity, cfg.n_expression
        self.m = self.kid + self.kex
        self.target = torch.from_numpy(t.points)
        self.sliding_index = self.band_index[self.sliding].contiguous()  # (Ks, L): the sliding landmarks' candidates
        self.sliding_target = np.ascontiguousarray(t.points[self.sliding.numpy()])
        lo, hi = t.points.min(0), t.points.max(0)
        self.scale = float(max(np.linalg.norm(hi - lo) / math.sqrt(2.0), 1.0))  # face size, px
        w = t.weight * np.where(t.contour, cfg.contour_weight, 1.0)
        self.w_all = torch.from_numpy(w / w.sum())
        self.w = self.w_all.clone()
        self.contour_t = torch.from_numpy(t.contour)
        ki = intrinsics
        self.f = torch.tensor([ki.fx, ki.fy], dtype=torch.float64)
        self.c = torch.tensor([ki.cx, ki.cy], dtype=torch.float64)
        # the landmark model's relative depth (Face Mesh's z): centred by fixed weights, in face sizes
        dz = t.depth * cfg.depth_scale
        dm = np.isfinite(dz) & (w > 0) & ~t.contour  # the outline's points slide: their depth is not a fixed point's
        self.has_depth = cfg.depth_weight > 0 and int(dm.sum()) >= 3
        # depth_stage "pose": the rows are off until the pose-only stage after the 2D fit (_fit);
        # depth_gain: their weight there, from the turn (depth_turn_deg)
        self.depth_on = self.has_depth and cfg.depth_stage == "joint"
        self.depth_gain = 1.0
        self._band_shape = None  # (coefficients, the contour band's vertices at them): reused while the shape is held
        if self.has_depth:
            self.dmask = torch.from_numpy(dm)
            wc = w[dm] / w[dm].sum()
            # what the depth rows cannot tell: an offset (the mean depth), and with depth_free_tilt a
            # tilt along the face's vertical axis (the landmark model's depth may lean: Face Mesh's
            # does, ~10 degrees of pitch on real faces) -- both projected out of model and target alike
            basis = [np.ones(int(dm.sum()))] + ([st.s0[: self.k].numpy()[dm, 1]] if cfg.depth_free_tilt else [])
            b = np.stack(basis, 1)
            self.d_basis = torch.from_numpy(b)
            self.d_gram = torch.from_numpy(np.linalg.inv(b.T @ (wc[:, None] * b)))
            self.wc = torch.from_numpy(wc)
            self.zt = self._d_project(torch.from_numpy(dz[dm] / self.scale))
            self.fbar = 0.5 * (ki.fx + ki.fy)

    def _d_project(self, a: torch.Tensor) -> torch.Tensor:
        """``a`` (Kd,) or (Kd, n) less its weighted least-squares fit by the depth rows' basis."""
        wa = self.wc[:, None] * (a[:, None] if a.dim() == 1 else a)
        fit = self.d_basis @ (self.d_gram @ (self.d_basis.T @ wa))
        return a - (fit[:, 0] if a.dim() == 1 else fit)

    def _use_rows(self, rows: torch.Tensor) -> None:
        """Point the K landmarks at their source rows; only the sliding ones ever change, so after
        the first call only their columns are copied."""
        if not hasattr(self, "rows"):
            self.p0 = self.s0[rows].clone()  # (K, 3)
            self.pb3 = self.sb[:, rows].contiguous()  # (M, K, 3)
        else:
            changed = torch.nonzero(rows != self.rows)[:, 0]
            self.p0[changed] = self.s0[rows[changed]]
            self.pb3[:, changed] = self.sb[:, rows[changed]]
        self.rows = rows
        self.pb = self.pb3.reshape(self.m, -1)  # (M, K * 3), a view

    def update_visibility(self, r: torch.Tensor, tr: torch.Tensor, coeffs: torch.Tensor) -> None:
        """Landmarks whose surface faces away from the camera on the current fit (the far side of
        a turned face: the landmark model guesses them, biased towards a frontal face) get
        ``hidden_weight``; contour landmarks keep theirs (they are on the outline by design)."""
        cfg = self.cfg
        if cfg.hidden_weight >= 1.0 or not hasattr(self, "rows"):
            return
        x = (self.p0 + (coeffs @ self.pb).reshape(-1, 3)) @ r.T + tr
        facing = -((self.normal0 @ r.T) * x).sum(1) / torch.linalg.vector_norm(x, dim=1).clamp_min(1e-9)
        hidden = (facing < cfg.hidden_facing) & ~self.contour_t
        self.w = torch.where(hidden, self.w_all * cfg.hidden_weight, self.w_all)

    def select_contour(self, r: torch.Tensor, tr: torch.Tensor, coeffs: torch.Tensor) -> None:
        """Re-pick each sliding landmark's silhouette vertex on its band for the current pose and shape."""
        if not bool(self.sliding.any()):
            if not hasattr(self, "rows"):
                self._use_rows(torch.arange(self.k))
            return
        # the band's shape (M x 3 nb, the re-pick's costliest product) is the mean face's in the
        # pose-only steps, whose coefficients are all 0
        band = self.s0[self.k:]
        if bool(coeffs.any()):
            # the depth stage holds the shape: its band is computed once, not at every pose step
            held = self._band_shape
            if held is not None and torch.equal(held[0], coeffs):
                band = held[1]
            else:
                band = band + (coeffs @ self.sb_band).reshape(-1, 3)
                self._band_shape = (coeffs.clone(), band)
        x = band @ r.T + tr
        uv = self.f * x[:, :2] / x[:, 2:3]
        rows = torch.arange(self.k)
        if self.cfg.contour_rule == "occluding":
            facing = -((self.normal_band @ r.T) * x).sum(1) / torch.linalg.vector_norm(x, dim=1).clamp_min(1e-9)
            idx = self.sliding_index
            pick = torch.from_numpy(occluding_pick(uv + self.c, facing, idx, self.sliding_target, self.cfg.contour_grazing,
                                                   self.cfg.contour_reach * self.scale))
            rows[self.sliding] = self.k + idx.gather(1, pick[:, None])[:, 0]
            if not hasattr(self, "rows") or not torch.equal(rows, self.rows):
                self._use_rows(rows)
            return
        e = r[:2, 0] / torch.linalg.vector_norm(r[:2, 0]).clamp_min(1e-9)  # head x axis in the image
        out = uv @ e  # (nb,)
        # the side turned away: the silhouette on the band.  The side facing the camera has no
        # silhouette on a horizontal line (its outline is the jaw bone's lower edge, seen from
        # the side): there the landmark slides to the band vertex nearest its target, like an
        # ICP correspondence, so the jaw does not pull the pose or shape.
        away = self.sliding & (self.side * r[2, 0] > 0)
        near = self.sliding & ~away
        for mask, outermost in ((away, True), (near, False)):
            if not bool(mask.any()):
                continue
            idx = self.band_index[mask]
            if outermost:
                score = self.side[mask, None] * out[idx.clamp_min(0)]
            else:
                d = uv[idx.clamp_min(0)] + self.c - self.target[mask][:, None, :]
                score = -(d * d).sum(-1)
            score = torch.where(idx >= 0, score, torch.full_like(score, -torch.inf))
            rows[mask] = self.k + idx.gather(1, score.argmax(1, keepdim=True))[:, 0]
        if not hasattr(self, "rows") or not torch.equal(rows, self.rows):
            self._use_rows(rows)

    def residual(self, r, tr, coeffs):
        p = self.p0 + (coeffs @ self.pb).reshape(-1, 3)
        x = p @ r.T + tr
        z = x[:, 2:3]
        uv = self.f * x[:, :2] / z + self.c
        return (uv - self.target) / self.scale, x, p

    def depth_residual(self, r: torch.Tensor, tr: torch.Tensor) -> tuple[torch.Tensor, float, torch.Tensor]:
        """(the depth rows' residual (Kd,) in face sizes, their scale f / mean Z / face size, their
        camera-frame points): the posed **mean face's** points' depth, relative (the basis projected
        out) and in the image's pixel scale, minus the landmark model's.  The mean face's, so the
        depth rows inform the pose only: the landmark model's depth is flatter than the face's
        (Face Mesh's ~0.8 x on the TrueDepth frames) and would flatten the fitted shape."""
        x = self.p0[self.dmask] @ r.T + tr
        z = x[:, 2]
        k = self.fbar / float(self.wc @ z) / self.scale
        return k * self._d_project(z) - self.zt, k, x

    def cost(self, r, tr, coeffs) -> float:
        res, x, _ = self.residual(r, tr, coeffs)
        if bool((x[:, 2] <= 1.0).any()):
            return math.inf
        rho, _ = _robust(torch.linalg.vector_norm(res, dim=1), self.cfg.robust, self.cfg.robust_scale)
        c = float((self.w * rho).sum())
        if self.depth_on:
            e, _, _ = self.depth_residual(r, tr)
            rho_d, _ = _robust(e.abs(), self.cfg.robust, self.cfg.robust_scale)
            c += self.depth_gain * self.cfg.depth_weight * float((self.w[self.dmask] * rho_d).sum())
        if self.cue is not None:
            e, _, _ = self.cue_residual(r, tr, coeffs)
            c += self.cfg.identity_prior * e * e
        return c + self.prior(coeffs)

    def cue_residual(self, r, tr, coeffs):
        """(the size cue's residual (log fitted / measured corneas' depth) / sd, the corneas' camera points
        (2, 3), their head-frame points less the translation's part (for the Jacobian))."""
        p = self.cue_p0 + torch.einsum("m,mkc->kc", coeffs, self.cue_pb)
        x = p @ r.T + tr
        zbar = float(x[:, 2].mean())
        return (math.log(max(zbar, 1e-6)) - math.log(self.cue.eye_depth_mm)) / self.cue.sd_rel, x, zbar

    def prior(self, coeffs) -> float:
        cfg = self.cfg
        ident, expr = coeffs[: self.kid], coeffs[self.kid:]
        return float(cfg.identity_prior * (ident @ ident) + cfg.expression_prior * (expr @ expr) + cfg.expression_l1 * expr.sum())

    def normal_equations(self, r, tr, coeffs, rigid: bool = False):
        res, x, p = self.residual(r, tr, coeffs)
        e = torch.linalg.vector_norm(res, dim=1)
        _, irls = _robust(e, self.cfg.robust, self.cfg.robust_scale)
        a = self.w * irls  # (K,)
        z = x[:, 2]
        fz = self.f[None, :] / z[:, None] / self.scale  # (K, 2)
        dudx = torch.zeros(self.k, 2, 3, dtype=torch.float64)
        dudx[:, 0, 0] = fz[:, 0]
        dudx[:, 1, 1] = fz[:, 1]
        dudx[:, 0, 2] = -fz[:, 0] * x[:, 0] / z
        dudx[:, 1, 2] = -fz[:, 1] * x[:, 1] / z
        j_rot = dudx @ (-_skew(x - tr))  # d/d(delta) of R <- exp(delta) R
        if rigid:  # pose-only steps: only the 6 pose columns (the shape ones are not solved for)
            j = torch.cat([j_rot, dudx], 2)
        else:  # d x / d coeff_m = R b_m, then through the projection (dudx's zeros skipped: its
            # row i is fz_i (e_i - x_i / z e_z)); one contiguous (M, K, 3) product instead of a
            # batched one over a permuted view (same values; no faster measured at load 8)
            rb = self.pb3 @ r.T  # (M, K, 3)
            j_w = torch.stack([fz[:, 0] * (rb[..., 0] - x[:, 0] / z * rb[..., 2]),
                               fz[:, 1] * (rb[..., 1] - x[:, 1] / z * rb[..., 2])], 2)  # (M, K, 2)
            j = torch.cat([j_rot, dudx, j_w.permute(1, 2, 0)], 2)  # (K, 2, 6 + M)
        # J^T A J in float32 (the costliest product, 2K x (6 + M)^2; float64 buys nothing at
        # this conditioning), the gradient and the solve in float64
        j = j.reshape(2 * self.k, -1)
        ja = j * a.repeat_interleave(2)[:, None]
        n = 6 + self.m
        h = torch.zeros(n, n, dtype=torch.float64)
        g = torch.zeros(n, dtype=torch.float64)
        c = j.shape[1]
        h[:c, :c] = (ja.float().T @ j.float()).double()
        g[:c] = ja.T @ res.reshape(-1)
        cfg = self.cfg
        if self.depth_on:  # the depth rows: d z / d params (row 2 of the 2D rows' d x), centred, scaled
            e, k, xd = self.depth_residual(r, tr)
            _, irls_d = _robust(e.abs(), cfg.robust, cfg.robust_scale)
            a_d = self.depth_gain * cfg.depth_weight * self.w[self.dmask] * irls_d
            cols = [(-_skew(xd - tr))[:, 2, :], torch.zeros_like(xd)]  # rotation, translation (pose only)
            cols[1][:, 2] = 1.0
            jd = k * self._d_project(torch.cat(cols, 1))
            jda = jd * a_d[:, None]
            h[:6, :6] += jda.T @ jd
            g[:6] += jda.T @ e
        if self.cue is not None:  # one row: d(log mean z) / d params, over sd
            e, xc, zbar = self.cue_residual(r, tr, coeffs)
            jr = (-_skew(xc - tr))[:, 2, :].mean(0)  # rotation
            jt = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
            parts = [jr, jt] if rigid else [jr, jt, (self.cue_pb @ r.T)[..., 2].mean(1)]
            jc = torch.cat(parts) / (zbar * self.cue.sd_rel)
            h[:c, :c] += cfg.identity_prior * torch.outer(jc, jc)
            g[:c] += cfg.identity_prior * jc * e
        idx_id = slice(6, 6 + self.kid)
        idx_ex = slice(6 + self.kid, 6 + self.m)
        h[idx_id, idx_id] += cfg.identity_prior * torch.eye(self.kid, dtype=torch.float64)
        h[idx_ex, idx_ex] += cfg.expression_prior * torch.eye(self.kex, dtype=torch.float64)
        g[idx_id] += cfg.identity_prior * coeffs[: self.kid]
        g[idx_ex] += cfg.expression_prior * coeffs[self.kid:] + 0.5 * cfg.expression_l1
        return h, g


def fit_photo(model: FaceModel, targets: LandmarkTargets, intrinsics: Intrinsics, cfg: PhotoFitConfig | None = None,
              init: tuple[np.ndarray, np.ndarray] | None = None, size_cue: SizeCue | None = None) -> PhotoFit:
    """Fit pose, identity and expression to ``targets`` seen by a pinhole camera ``intrinsics``.

    ``init``: a (rotation, translation) start instead of the PnP start.  ``size_cue``: a measured
    distance of the eyes (:class:`SizeCue`, the iris) combined with the head-size prior.
    """
    cfg = cfg or PhotoFitConfig.load()
    # the products are small (K x 160): one thread; a second only adds synchronisation, which on
    # a loaded machine costs more than the arithmetic
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(model, targets, intrinsics, cfg, init, size_cue)
    finally:
        torch.set_num_threads(threads)


def _fit(model: FaceModel, targets: LandmarkTargets, intrinsics: Intrinsics, cfg: PhotoFitConfig,
         init: tuple[np.ndarray, np.ndarray] | None, size_cue: SizeCue | None = None,
         shape: tuple[np.ndarray, np.ndarray] | None = None) -> PhotoFit:
    """The fit's stages; ``shape`` (identity, expression) with ``init``: that shape held, only the
    depth stage run from that pose (after the joint fit of several photos)."""
    t0 = time.perf_counter()
    if int((targets.weight > 0).sum()) < 6:
        raise ValueError("the fit needs at least 6 landmarks with weight > 0")
    prob = _Problem(model, targets, intrinsics, cfg, size_cue)
    if init is None:
        fixed = ~prob.t.contour
        if fixed.sum() < 6:
            fixed[:] = True
        r0, t0_ = pnp_start(prob.t.points[fixed], prob.s0[: prob.k].numpy()[fixed], intrinsics, prob.t.weight[fixed])
    else:
        r0, t0_ = init
    r = torch.from_numpy(np.asarray(r0, np.float64).copy())
    tr = torch.from_numpy(np.asarray(t0_, np.float64).copy())
    coeffs = torch.zeros(prob.m, dtype=torch.float64)
    if shape is not None:
        coeffs = torch.from_numpy(np.r_[np.asarray(shape[0], np.float64)[: prob.kid], np.asarray(shape[1], np.float64)[: prob.kex]])
    n_par = 6 + prob.m
    ex = slice(6 + prob.kid, n_par)
    history: list[float] = []
    mu = cfg.damping
    converged = False
    n_rigid = n_joint = n_depth = 0
    stages = [("rigid", cfg.rigid_iterations), ("joint", cfg.iterations)] if shape is None else []
    if prob.has_depth and cfg.depth_stage == "pose":
        stages.append(("depth", cfg.iterations))
    with torch.no_grad():
        if shape is not None:  # no 2D stages ran: the contour picks and visibility of the given pose
            prob.select_contour(r, tr, coeffs)
            prob.update_visibility(r, tr, coeffs)
        for stage, n_iter in stages:
            if stage == "depth":
                # the 2D fit's shape held, its pose refined with the depth rows: the turn the 2D
                # points lean away from is put back without the shape bending to meet them at it
                # (docs/photo.md round 9); their weight rises with the 2D fit's turn
                yaw_2d = head_yaw_deg(r.numpy(), tr.numpy())
                prob.depth_gain = depth_gain(yaw_2d, cfg.depth_turn_deg)
                if prob.depth_gain <= 0.0:
                    break
                prob.depth_on = True
                pose_2d = (r, tr, prob.rows.clone())
                mu = cfg.damping  # a new cost: the damping the 2D fit ended with says nothing of it
            pose_only = stage != "joint"
            free_base = torch.zeros(n_par, dtype=torch.bool)
            free_base[: 6 if pose_only else n_par] = True
            best, stall = math.inf, 0
            for it in range(n_iter):
                # the contour vertices are re-picked each step for the first contour_updates joint
                # steps, then kept: a landmark flipping between two band vertices would otherwise
                # keep the cost from settling
                if pose_only or it < cfg.contour_updates:
                    prob.select_contour(r, tr, coeffs)
                    prob.update_visibility(r, tr, coeffs)
                cost = prob.cost(r, tr, coeffs)
                history.append(cost)
                if stage == "joint":  # converged when the cost (after re-picking) stops falling
                    stall = stall + 1 if cost > best * (1.0 - cfg.tolerance) else 0
                    best = min(best, cost)
                    if stall >= 3:
                        converged = True
                        break
                h, g = prob.normal_equations(r, tr, coeffs, rigid=pose_only)
                free = free_base.clone()
                if stage == "joint":
                    # active set: expressions at a bound whose gradient pushes them out stay there
                    e = coeffs[prob.kid:]
                    ge = g[ex]
                    free[ex] &= ~(((e <= 0) & (ge > 0)) | ((e >= 1) & (ge < 0)))
                accepted = False
                for _try in range(8):
                    step = _bounded_step(h, g, free, coeffs[prob.kid:], ex, mu)
                    r_new = _rodrigues(step[:3]) @ r
                    t_new = tr + step[3:6]
                    c_new = coeffs + step[6:]
                    c_new[prob.kid:] = c_new[prob.kid:].clamp(0.0, 1.0)
                    new_cost = prob.cost(r_new, t_new, c_new)
                    if new_cost < cost:
                        accepted = True
                        mu = max(mu / 5.0, 1e-9)
                        break
                    mu *= 10.0
                if stage == "rigid":
                    n_rigid += 1
                elif stage == "joint":
                    n_joint += 1
                else:
                    n_depth += 1
                if not accepted:
                    converged = converged or stage == "joint"
                    break
                r, tr, coeffs = r_new, t_new, c_new
                # the pose-only start just has to bring the start close: a looser tolerance
                if (cost - new_cost) < (1e-3 if stage == "rigid" else cfg.tolerance) * cost:
                    converged = converged or stage == "joint"
                    break
        if prob.depth_on and cfg.depth_stage == "pose" and cfg.depth_turn_only \
                and head_yaw_deg(r.numpy(), tr.numpy()) < yaw_2d:
            # the 2D points' bias is towards a frontal face (docs/photo.md rounds 7 and 9): depth rows
            # that turn the face further back contradict it, so they are taken as the wrong ones
            r, tr, rows_2d = pose_2d
            prob._use_rows(rows_2d)  # and its contour picks: the result is the 2D fit's
        history.append(prob.cost(r, tr, coeffs))
        res, _, _ = prob.residual(r, tr, coeffs)
    err_px = torch.linalg.vector_norm(res, dim=1).numpy() * prob.scale
    cont = prob.t.contour
    rms = float(np.sqrt(np.mean(err_px[~cont] ** 2))) if (~cont).any() else float("nan")
    crms = float(np.sqrt(np.mean(err_px[cont] ** 2))) if cont.any() else float("nan")
    ident = np.zeros(model.n_identity)
    ident[: prob.kid] = coeffs[: prob.kid].numpy()
    expr = np.zeros(model.n_expression)
    expr[: prob.kex] = coeffs[prob.kid:].numpy()
    slid = prob.rows.numpy() >= prob.k
    chosen = prob.band[prob.rows.numpy()[slid] - prob.k]
    return PhotoFit(r.numpy().copy(), tr.numpy().copy(), ident, expr, intrinsics, n_joint, n_rigid, converged,
                    (time.perf_counter() - t0) * 1e3, rms, crms, history, chosen, size_cue, depth_iterations=n_depth)


# -- several photos of one person ----------------------------------------------------------------
def fit_photos(model: FaceModel, targets: list[LandmarkTargets], intrinsics: list[Intrinsics],
               cfg: PhotoFitConfig | None = None, starts: list[PhotoFit] | None = None) -> list[PhotoFit]:
    """One identity for several photos of one person, a pose and an expression per photo.

    Unknowns: the shared identity weights, and per photo a rotation, a translation and the
    expression weights.  Cost: the sum of the photos' single-photo costs (robust reprojection
    error + expression priors), and the identity prior once (``joint_identity_prior = "once"``:
    more photos weigh the landmarks more against it) or once per photo (``"per_photo"``).  Started from each photo's own fit (``starts``, else made
    here) with the mean of their identities; Levenberg-Marquardt on the joint normal equations
    (identity block shared, pose and expression blocks per photo; the expressions kept in
    [0, 1] by the same projected step).  Then, with ``depth_stage = "pose"``, each photo's depth
    stage from the joint pose with its shape held (as after one photo's 2D fit).  Returns one
    :class:`PhotoFit` per photo, all with the same ``identity``.
    """
    cfg = cfg or PhotoFitConfig.load()
    if len(targets) != len(intrinsics) or not targets:
        raise ValueError("fit_photos needs one intrinsics per targets, and at least one photo")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        starts = starts or [_fit(model, t, k, cfg, None) for t, k in zip(targets, intrinsics)]
        joint = _fit_joint(model, targets, intrinsics, cfg, starts)
        if cfg.depth_stage != "pose" or cfg.depth_weight <= 0 or not any(np.isfinite(t.depth).any() for t in targets):
            return joint
        # the depth rows' pose stage after the joint fit, as after a single photo's 2D fit: each
        # photo's pose refined with its shape (the shared identity, its expression) held
        out = []
        for f, t, k in zip(joint, targets, intrinsics):
            d = _fit(model, t, k, cfg, (f.rotation, f.translation), shape=(f.identity, f.expression))
            out.append(replace(f, rotation=d.rotation, translation=d.translation, depth_iterations=d.depth_iterations,
                               rms_px=d.rms_px, contour_rms_px=d.contour_rms_px, contour_vertices=d.contour_vertices))
        return out
    finally:
        torch.set_num_threads(threads)


def _fit_joint(model: FaceModel, targets, intrinsics, cfg: PhotoFitConfig, starts: list[PhotoFit]) -> list[PhotoFit]:
    t_start = time.perf_counter()
    n = len(targets)
    probs = [_Problem(model, t, k, cfg) for t, k in zip(targets, intrinsics)]
    kid, kex = probs[0].kid, probs[0].kex
    rs = [torch.from_numpy(np.asarray(f.rotation, np.float64).copy()) for f in starts]
    ts = [torch.from_numpy(np.asarray(f.translation, np.float64).copy()) for f in starts]
    ident = torch.from_numpy(np.mean([f.identity[:kid] for f in starts], axis=0))
    exprs = [torch.from_numpy(np.asarray(f.expression[:kex], np.float64).copy()) for f in starts]
    # global parameter order: identity, the n poses (6 each), the n expressions (kex each): the
    # expressions are one contiguous box-constrained block for the projected step
    n_par = kid + 6 * n + kex * n
    pose_at = [kid + 6 * i for i in range(n)]
    expr_at = [kid + 6 * n + kex * i for i in range(n)]
    ex = slice(kid + 6 * n, n_par)
    id_prior = cfg.identity_prior * (n if cfg.joint_identity_prior == "per_photo" else 1)
    eye_id = torch.eye(kid, dtype=torch.float64)

    def coeffs(i, ident_, exprs_):
        return torch.cat([ident_, exprs_[i]])

    def total(rs_, ts_, ident_, exprs_) -> float:
        c = sum(p.cost(r, t, coeffs(i, ident_, exprs_)) - cfg.identity_prior * float(ident_ @ ident_)
                for i, (p, r, t) in enumerate(zip(probs, rs_, ts_)))
        return float(c + id_prior * float(ident_ @ ident_))

    history: list[float] = []
    mu = cfg.damping
    best, stall, it, converged = math.inf, 0, 0, False
    with torch.no_grad():
        for it in range(cfg.iterations):
            if it < cfg.contour_updates:
                for i, p in enumerate(probs):
                    p.select_contour(rs[i], ts[i], coeffs(i, ident, exprs))
                    p.update_visibility(rs[i], ts[i], coeffs(i, ident, exprs))
            cost = total(rs, ts, ident, exprs)
            history.append(cost)
            stall = stall + 1 if cost > best * (1.0 - cfg.tolerance) else 0
            best = min(best, cost)
            if stall >= 3:
                converged = True
                break
            h = torch.zeros(n_par, n_par, dtype=torch.float64)
            g = torch.zeros(n_par, dtype=torch.float64)
            for i, p in enumerate(probs):
                hi, gi = p.normal_equations(rs[i], ts[i], coeffs(i, ident, exprs))
                # the identity prior is added once below, not once per photo
                hi[6:6 + kid, 6:6 + kid] -= cfg.identity_prior * eye_id
                gi[6:6 + kid] -= cfg.identity_prior * ident
                idx = torch.cat([torch.arange(pose_at[i], pose_at[i] + 6), torch.arange(kid),
                                 torch.arange(expr_at[i], expr_at[i] + kex)])
                h[idx[:, None], idx[None, :]] += hi
                g[idx] += gi
            h[:kid, :kid] += id_prior * eye_id
            g[:kid] += id_prior * ident
            free = torch.ones(n_par, dtype=torch.bool)
            e_all = torch.cat(exprs)
            free[ex] &= ~(((e_all <= 0) & (g[ex] > 0)) | ((e_all >= 1) & (g[ex] < 0)))
            accepted = False
            for _try in range(8):
                step = _bounded_step(h, g, free, e_all, ex, mu)
                new_r = [_rodrigues(step[a:a + 3]) @ rs[i] for i, a in enumerate(pose_at)]
                new_t = [ts[i] + step[a + 3:a + 6] for i, a in enumerate(pose_at)]
                new_id = ident + step[:kid]
                new_e = [(exprs[i] + step[a:a + kex]).clamp(0.0, 1.0) for i, a in enumerate(expr_at)]
                new_cost = total(new_r, new_t, new_id, new_e)
                if new_cost < cost:
                    accepted = True
                    mu = max(mu / 5.0, 1e-9)
                    break
                mu *= 10.0
            if not accepted:
                converged = True
                break
            rs, ts, ident, exprs = new_r, new_t, new_id, new_e
            if (cost - new_cost) < cfg.tolerance * cost:
                converged = True
                break
        history.append(total(rs, ts, ident, exprs))
    ms = (time.perf_counter() - t_start) * 1e3
    identity = np.zeros(model.n_identity)
    identity[:kid] = ident.numpy()
    out = []
    for i, p in enumerate(probs):
        res, _, _ = p.residual(rs[i], ts[i], coeffs(i, ident, exprs))
        err_px = torch.linalg.vector_norm(res, dim=1).numpy() * p.scale
        cont = p.t.contour
        expr = np.zeros(model.n_expression)
        expr[:kex] = exprs[i].numpy()
        slid = p.rows.numpy() >= p.k
        out.append(PhotoFit(rs[i].numpy().copy(), ts[i].numpy().copy(), identity.copy(), expr, intrinsics[i], it,
                            starts[i].rigid_iterations, converged, ms,
                            float(np.sqrt(np.mean(err_px[~cont] ** 2))) if (~cont).any() else float("nan"),
                            float(np.sqrt(np.mean(err_px[cont] ** 2))) if cont.any() else float("nan"),
                            history, p.band[p.rows.numpy()[slid] - p.k]))
    return out


# -- what the fit is fitted to, and the 68 landmarks of the fitted face --------------------------
JAW_68 = np.arange(17)  # iBUG jaw-line points: they follow the silhouette
TARGET_MODES = ("dense", "ibug68", "both")


def targets_from_landmarks(model: FaceModel, points_2d: np.ndarray, lmap) -> LandmarkTargets:
    """Fit targets from the landmark model's points (N, >=2) px and a ``LandmarkMap`` (see :mod:`.landmark_map`)."""
    sel = np.asarray(points_2d, np.float64)[np.asarray(lmap.mediapipe_index)]
    tri = np.asarray(lmap.ict_triangle)
    corners = model.triangles[tri] if tri.ndim == 1 else tri  # a triangle index, or its 3 vertices
    depth = sel[:, 2] if sel.shape[1] > 2 else None  # Face Mesh's z, when given
    return LandmarkTargets(sel[:, :2], corners, np.asarray(lmap.ict_bary, np.float64), np.asarray(lmap.weight, np.float64),
                           np.asarray(lmap.is_contour, bool), depth)


def fit_targets(model: FaceModel, points_2d: np.ndarray, lmap, use: str = "both", ibug68_weight: float = 1.0,
                ibug68: np.ndarray | None = None, dense_contour_weight: float = 1.0, ibug68_points=None,
                dense_inner_weight: float = 1.0) -> LandmarkTargets:
    """What the fit is fitted to (``[targets]`` in ``configs/photo_fit.toml``): the dense Face
    Mesh points on the ICT surface, the iBUG 68 made from them on ICT's 68 landmark vertices
    (jaw points sliding), or both (the 68 with ``ibug68_weight`` of the total weight).

    ``ibug68``: other 68 points to use for the 68 (the fusion with dlib's, :mod:`.fusion`);
    ``dense_contour_weight`` then scales the dense face-oval points, which disagree with them, and
    ``dense_inner_weight`` the other dense points after the dense total is made 1 (below 1: the
    68's inner face counts more against Face Mesh's own, worse inner points).
    ``ibug68_points``: where the 68 sit on the ICT surface (a :class:`.landmark_map.Ibug68Points`;
    default ICT's own landmark vertices)."""
    if use not in TARGET_MODES:
        raise ConfigError(f"targets.use: unknown {use!r}; choose from {', '.join(TARGET_MODES)}")
    parts = []
    if use in ("dense", "both"):
        dense = targets_from_landmarks(model, points_2d, lmap)
        dense.weight = np.where(dense.contour, dense.weight * dense_contour_weight, dense.weight)
        dense.weight = dense.weight / max(dense.weight.sum(), 1e-12)
        dense.weight = np.where(dense.contour, dense.weight, dense.weight * dense_inner_weight)
        parts.append(dense)
    if use in ("ibug68", "both"):
        contour = np.zeros(68, bool)
        contour[JAW_68] = True
        p68 = lmap.ibug68(np.asarray(points_2d, np.float64)[:, :2]) if ibug68 is None else np.asarray(ibug68, np.float64)
        if ibug68_points is None:
            t68 = LandmarkTargets.from_vertices(p68, model.landmarks_68, np.full(68, 1.0 / 68), contour)
        else:
            t68 = LandmarkTargets(p68, ibug68_points.triangle_vertices, ibug68_points.bary, np.full(68, 1.0 / 68), contour)
        t68.weight *= ibug68_weight if parts else 1.0
        parts.append(t68)
    return LandmarkTargets(np.concatenate([p.points for p in parts]), np.concatenate([p.vertices for p in parts]),
                           np.concatenate([p.bary for p in parts]), np.concatenate([p.weight for p in parts]),
                           np.concatenate([p.contour for p in parts]), np.concatenate([p.depth for p in parts]))


def silhouette_landmarks(model: FaceModel, fit: PhotoFit, vertices_camera: np.ndarray, cfg: PhotoFitConfig,
                         detected_68: np.ndarray | None = None) -> np.ndarray:
    """The 68 landmark vertex indices of the fitted face: ICT's landmark vertices
    (``FaceModel.landmarks_68``) with the 17 jaw points on the fitted face's outline, where the
    iBUG convention annotates them on a turned face.

    ``contour_rule = "occluding"``: each jaw point goes to the fitted mesh's occluding-contour
    candidate (its own normals) projecting nearest ``detected_68``'s point (without those: its
    ICT landmark vertex's projection), as in the fit.  ``"band"``: jaw points on the side turned
    away go to the silhouette of their horizontal band; on the side facing the camera, with
    ``detected_68``, to the band vertex projecting nearest the detected point, else they keep
    ICT's landmark vertex.
    """
    lm = model.landmarks_68.copy()
    key = (cfg.contour_band_mm, cfg.contour_front_mm, cfg.contour_back_mm, cfg.contour_rule, cfg.contour_radius_mm)
    cache = model.__dict__.setdefault("_photo_jaw_bands", {})
    if key not in cache:
        contour = np.zeros(68, bool)
        contour[JAW_68] = True
        band, index = contour_bands(model, LandmarkTargets.from_vertices(np.zeros((68, 2)), lm, contour=contour), cfg)
        tris = model.region_triangles("face")
        cache[key] = (band, index, tris[np.isin(tris, band).any(1)])  # the triangles around the candidates: their normals
    band, index, band_tris = cache[key]
    if len(band) == 0:
        return lm
    uv = fit.intrinsics.project(vertices_camera[band])
    if cfg.contour_rule == "occluding":
        # the fitted mesh's own normals at the candidates; each jaw point goes to the occluding
        # contour vertex nearest its detected point (without one: nearest ICT's landmark vertex)
        vn = vertex_normals(np.asarray(vertices_camera, np.float64), band_tris)[band]
        x = vertices_camera[band]
        facing = -(vn * x).sum(1) / np.maximum(np.linalg.norm(x, axis=1), 1e-9)
        det = fit.intrinsics.project(vertices_camera[lm]) if detected_68 is None else np.asarray(detected_68, np.float64)[:, :2]
        rows = np.nonzero((index >= 0).any(1) & np.isfinite(det).all(1))[0]
        if len(rows):
            idx = index[rows]
            fin = det[np.isfinite(det).all(1)]
            size = max(float(np.linalg.norm(fin.max(0) - fin.min(0))) / np.sqrt(2.0), 1.0)  # face size px, as the fit's
            pick = occluding_pick(uv, facing, idx, det[rows], cfg.contour_grazing, cfg.contour_reach * size)
            lm[rows] = band[idx[np.arange(len(rows)), pick]]
        return lm
    e = fit.rotation[:2, 0] / max(float(np.linalg.norm(fit.rotation[:2, 0])), 1e-9)
    out = uv @ e
    side = np.sign(model.neutral[lm, 0])
    away = side * fit.rotation[2, 0] > 0
    det = None if detected_68 is None else np.asarray(detected_68, np.float64)
    for k in np.nonzero((index >= 0).any(1))[0]:
        cand = index[k][index[k] >= 0]
        if away[k]:
            lm[k] = band[cand[np.argmax(side[k] * out[cand])]]
        elif det is not None and np.isfinite(det[k]).all():
            lm[k] = band[cand[np.argmin(((uv[cand] - det[k]) ** 2).sum(1))]]
    return lm


# -- the head-size prior ------------------------------------------------------------------------
EYE_CORNERS_68 = (36, 45)  # iBUG outer eye corners: the size measure the prior is stated in


def size_prior(model: FaceModel, n_identity: int = 100, samples: int = 4000, seed: int = 0) -> tuple[float, float]:
    """(mean, standard deviation) in mm of the outer-eye-corner distance of ICT faces drawn from
    the fit's identity prior (each of the first ``n_identity`` weights ~ N(0, 1)), neutral
    expression.  One photo cannot tell a face's size from its distance: the fitted size is this
    prior pulled by the landmarks' shape only, and the distance scales with it."""
    key = (n_identity, samples, seed)
    cache = model.__dict__.setdefault("_photo_size_prior", {})
    if key not in cache:
        vid = np.asarray(model.landmarks_68)[list(EYE_CORNERS_68)]
        neutral, bases = model.torch_bases(vid)
        b = bases.reshape(-1, len(vid), 3)[:n_identity].double().numpy()  # (n, 2, 3)
        w = np.random.default_rng(seed).standard_normal((samples, n_identity))
        v = neutral.double().numpy()[None] + np.einsum("sn,nkc->skc", w, b)
        d = np.linalg.norm(v[:, 0] - v[:, 1], axis=1)
        cache[key] = (float(d.mean()), float(d.std()))
    return cache[key]
