"""The depth frame pipeline: named stages with typed inputs and outputs, composed per method.

    locate -> crop -> networks -> check / refine -> identity -> correct -> result   (the default: pose + shape)
    locate -> crop -> networks -> check / refine ------------------------> result   (pose only)
    locate -> crop -> model fit ---------------------------------------> result   (the fitting baseline)

``correct`` (:mod:`facerecon.fitting.correction`) runs after the pose and the face decision are
final: it changes the returned surface only, never the pose, the confidence or the decision.

Each stage is a function; what crosses between them is a small frozen record
(:class:`Located`, :class:`NetworkOutput`, :class:`Checked`), and the last one builds the one
:class:`~.result.FaceResult` (never patched afterwards).  The path a frame took is the
result's :class:`~.result.FramePath` (data).  :class:`DepthPipeline` composes the stages for
the networks; ``PoseEstimator`` (pose only) and ``Reconstructor`` (pose + shape) are its two
configurations, ``FittingReconstructor`` composes ``locate`` and ``describe`` around the
model fit.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from ..errors import NoFaceFoundError
from ..facemodel import FaceModel
from ..fitting import FitConfig, fit_face
from ..fitting.correction import Correction, CorrectionConfig, correct_surface, grid_noise_mm, source_grid
from ..geometry.camera import Intrinsics
from ..geometry.pose import HeadPose
from ..io.frame import DepthFrame
from ..preprocess.localize import HeadLocation, localize_head
from ..preprocess.position_image import PositionImage, make_position_image
from .check import (Candidate, CheckConfig, FaceRegion, MeasuredSurface, RobustFit, Start, SurfaceCheck, confidence_from, confidence_terms,
                    face_decision, plausibility, robust_pose, rotate_position_image, surface_check)
from .result import FaceResult, FramePath

# other head-like regions are reported from this localiser confidence on (measured: after the
# found head and neck are removed, the shoulders of a single person score 0.45-0.6, a second
# person's head 0.75-0.97)
OTHER_HEAD_MIN_CONFIDENCE = 0.7


def _ms(t0: float, t1: float) -> float:
    return (t1 - t0) * 1e3


# -- locate, crop -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Located:
    """A frame with its head found and cropped into the networks' position image."""

    frame: DepthFrame
    location: HeadLocation
    position_image: PositionImage
    timings_ms: dict


def as_frame(depth, intrinsics: Intrinsics | None = None, source: str = "") -> DepthFrame:
    if isinstance(depth, DepthFrame):
        return depth if intrinsics is None else depth.with_intrinsics(intrinsics)
    return DepthFrame(np.asarray(depth, np.float32), intrinsics, source=source or "array")


def locate(depth, intrinsics: Intrinsics | None = None) -> Located:
    """Stage ``locate`` + ``crop``: the head localiser, then the position image about its centre."""
    frame = as_frame(depth, intrinsics)
    if frame.intrinsics is None:
        raise ValueError(f"{frame.source}: no intrinsics; pass a camera preset or --intrinsics")
    t0 = time.perf_counter()
    loc = localize_head(frame)
    t1 = time.perf_counter()
    pim = make_position_image(frame, loc.center_mm)
    return Located(frame, loc, pim, {"localize": _ms(t0, t1), "crop": _ms(t1, time.perf_counter())})


def crop_at(frame: DepthFrame, location: HeadLocation, centre_mm: np.ndarray | None = None) -> Located:
    """Stage ``crop`` alone, at a head found otherwise (another head of the frame), or about ``centre_mm``
    (the tracker's warm start: where the previous pose puts the head)."""
    t0 = time.perf_counter()
    pim = make_position_image(frame, location.center_mm if centre_mm is None else centre_mm)
    return Located(frame, location, pim, {"localize": 0.0, "crop": _ms(t0, time.perf_counter())})


def other_head_regions(frame: DepthFrame, loc: HeadLocation, max_heads: int = 3, radius_mm: float = 250.0) -> list[HeadLocation]:
    """Other head-like regions: the localiser run again with the found heads' surroundings
    (points within ``radius_mm`` of each found centre: head and neck) removed, until it
    finds nothing (at most ``max_heads``).  The localiser returns one head per call; this is
    how a frame with several people reports the others."""
    k = frame.intrinsics
    depth = np.array(frame.depth_mm, np.float32, copy=True)
    found: list[HeadLocation] = []
    centre = np.asarray(loc.center_mm, np.float64)
    for _ in range(max_heads):
        # only the pixels whose rays can meet the ball: its projection's bounding box
        z_near = max(centre[2] - radius_mm, 1.0)
        half_u, half_v = k.fx * radius_mm / z_near, k.fy * radius_mm / z_near
        uc, vc = k.fx * centre[0] / centre[2] + k.cx, k.fy * centre[1] / centre[2] + k.cy
        u0, u1 = int(max(np.floor(uc - half_u), 0)), int(min(np.ceil(uc + half_u) + 1, frame.width))
        v0, v1 = int(max(np.floor(vc - half_v), 0)), int(min(np.ceil(vc + half_v) + 1, frame.height))
        if u0 < u1 and v0 < v1:
            z = depth[v0:v1, u0:u1]
            x = (np.arange(u0, u1, dtype=np.float32)[None, :] - k.cx) / k.fx * z
            y = (np.arange(v0, v1, dtype=np.float32)[:, None] - k.cy) / k.fy * z
            c = centre.astype(np.float32)
            z[(x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 < radius_mm**2] = 0.0
        try:
            h = localize_head(DepthFrame(depth, frame.intrinsics, frame.source))
        except NoFaceFoundError:
            break
        found.append(h)
        centre = np.asarray(h.center_mm, np.float64)
    return found


# -- networks ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkPoses:
    """The pose network's answer: the flip-averaged pose and, with test-time flip, the direct
    and the mirrored-back predictions (alternatives for the robust check).  ``alternatives_of``: the
    alternatives made when first asked (the robust check asks only when the first pose fails; decoding
    them is ~0.15 ms of a frame)."""

    pose: HeadPose
    alternatives_of: Callable[[], tuple] | None = field(default=None, repr=False, compare=False)

    @cached_property
    def alternatives(self) -> tuple:  # Candidate
        return () if self.alternatives_of is None else tuple(self.alternatives_of())

    @property
    def candidates(self) -> list[Candidate]:
        return [Candidate(Start.NETWORK, self.pose), *self.alternatives]


@dataclass(frozen=True)
class NetworkOutput:
    """Stage ``networks``: the pose network's candidates and the shape network's model weights."""

    poses: NetworkPoses
    weights: np.ndarray | None  # (n_identity + n_expression,) from the shape network; None: pose only
    timings_ms: dict


# -- check / refine, identity, result ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    """Stage ``check / refine``: the robust check's pose and the head-frame mesh it was checked with."""

    fit: RobustFit
    v_head: np.ndarray  # (V, 3), or only its first FaceRegion.n_leading rows (check_refine(whole_mesh=False))
    weights: np.ndarray | None
    shape_on_turned_crop: bool
    surface: MeasuredSurface  # the crop's measured surface (the identity stage checks against it too)
    timings_ms: dict


@dataclass(frozen=True)
class Decision:
    confidence: float
    face: bool
    reason: str
    terms: dict
    plausibility: dict


def describe(cfg: CheckConfig, check: SurfaceCheck, identity: np.ndarray | None = None, expression: np.ndarray | None = None) -> Decision:
    """Confidence and the face decision of a posed face from its check (which holds the
    landmark self-check of the same mesh at the same pose): the one place every method
    (networks, fitting baseline, tracker) gets them from."""
    plaus = plausibility(identity, expression)
    terms = confidence_terms(check, plaus, cfg)
    conf = confidence_from(terms)
    face, reason = face_decision(conf, terms, check, plaus, cfg)
    return Decision(conf, face, reason, terms, plaus)


def build_result(model: FaceModel, located: Located, pose: HeadPose, check: SurfaceCheck, decision: Decision, path: FramePath, *,
                 network_pose: HeadPose | None = None, network_check: SurfaceCheck | None = None, v_head: np.ndarray | None = None,
                 weights: np.ndarray | None = None, other_heads: tuple = (), timings_ms: dict | None = None,
                 model_v_head: np.ndarray | None = None, detail: str = "off", correction: Correction | None = None) -> FaceResult:
    """Stage ``result``: the one :class:`FaceResult` (posed mesh and landmarks when ``v_head`` is given;
    ``model_v_head``: the model-only surface when ``v_head`` is the corrected one, else ``v_head``)."""
    v_cam = lm3 = lm2 = ident = expr = None
    if v_head is not None:
        v_cam = pose.apply(v_head)
        lm3 = v_cam[model.landmarks_68]
        lm2 = located.frame.intrinsics.project(lm3)
    if weights is not None:
        k = model.n_identity
        ident, expr = weights[:k], weights[k:]
    return FaceResult(pose, decision.confidence, decision.face, decision.reason, path, v_head, v_cam, lm3, lm2, ident, expr,
                      check=check, confidence_terms=decision.terms, plausibility=decision.plausibility, location=located.location,
                      position_image=located.position_image, network_pose=network_pose, network_check=network_check,
                      other_heads=tuple(other_heads), timings_ms=dict(timings_ms or {}), source=located.frame.source,
                      model_vertices_head=v_head if model_v_head is None else model_v_head, detail=detail, correction=correction)


@dataclass
class DepthPipeline:
    """``locate -> crop -> networks -> check / refine -> identity -> correct -> result`` for one frame.

    ``pose_network`` maps a position image to :class:`NetworkPoses`; ``turned_network`` gives
    the candidates of the network on turned crops (asked only when the check fails);
    ``shape_network`` (None: pose only, checked with the reference face) maps position image
    data to model weights and runs beside the pose network on ``shape_worker``; ``correction``: the
    ``correct`` stage's settings (it runs for pose + shape unless ``run(detail=False)``)."""

    model: FaceModel
    region: FaceRegion
    check_cfg: CheckConfig
    pose_network: Callable[[PositionImage], NetworkPoses]
    turned_network: Callable[[PositionImage], list[Candidate]]
    shape_network: Callable[[np.ndarray], np.ndarray] | None = None
    shape_worker: Callable | None = None  # a concurrent.futures executor's submit, or None: run in line
    search_others: bool = False
    default_refine: int = 6
    correction: CorrectionConfig = field(default_factory=CorrectionConfig)
    _reference: np.ndarray | None = field(default=None, repr=False)

    def run(self, located: Located, refine: int | None = None, refine_shape: int | None = None, detail: bool | None = None) -> FaceResult:
        """The stages after ``locate`` / ``crop``: ``networks -> check / refine -> identity -> correct -> result``.
        ``refine``: rigid iterations (None: ``[refine] iterations``; 0: the networks only checked);
        ``refine_shape``: joint pose + identity iterations (None: ``[shape] iterations`` after a refinement);
        ``detail``: the out-of-span correction of the returned surface (None: on with a shape network;
        False: the model surface, ``detail`` "off")."""
        t0 = time.perf_counter()
        n_refine = self.default_refine if refine is None else int(refine)
        if refine_shape is None:  # the joint stage follows the rigid refinement: none without it
            refine_shape = 0 if n_refine == 0 or self.shape_network is None else int(self.check_cfg.shape.iterations)
        net = self.networks(located)
        # with the identity stage after it, the check's mesh is read only on the face region (the identity's mesh is returned)
        checked = self.check_refine(located, net, n_refine, whole_mesh=refine_shape <= 0)
        pose, check, v_head, weights = checked.fit.pose, checked.fit.check, checked.v_head, checked.weights
        timings = {**located.timings_ms, **net.timings_ms, **checked.timings_ms}
        if refine_shape > 0:
            t = time.perf_counter()
            pose, v_head, weights = self.identity(located, pose, weights, int(refine_shape), checked.surface, checked.v_head)
            check = surface_check(v_head, pose, self.region, checked.surface, self.check_cfg)
            timings["identity"] = _ms(t, time.perf_counter())
        k = self.model.n_identity
        decision = describe(self.check_cfg, check, *((weights[:k], weights[k:]) if weights is not None else (None, None)))
        pose_only = self.shape_network is None  # checked with the reference face: no mesh of the person to return
        model_v_head, status, correction = v_head, "off", None
        if not pose_only and detail is not False:
            if decision.face:
                t = time.perf_counter()
                correction = self.correct(located, pose, v_head)
                timings["correct"] = _ms(t, time.perf_counter())
                status = correction.status
                if correction.on:
                    v_head = v_head + correction.offsets
            else:
                status = "off: not a face"
        # the detail layer (displacement / normal maps of the residual to the corrected surface) is made where
        # the files are written (facerecon.export.maps.detail_maps, on the batch's writer thread): only files need it
        others: tuple = ()
        if self.search_others:
            t = time.perf_counter()
            others = tuple(h for h in other_head_regions(located.frame, located.location) if h.confidence >= OTHER_HEAD_MIN_CONFIDENCE)
            timings["other_heads"] = _ms(t, time.perf_counter())
        timings["total"] = sum(located.timings_ms.values()) + _ms(t0, time.perf_counter())
        path = FramePath.of(checked.fit.chosen, n_refine, checked.shape_on_turned_crop, refine_shape)
        return build_result(self.model, located, pose, check, decision, path, network_pose=net.poses.pose,
                            network_check=checked.fit.network_check, v_head=None if pose_only else v_head,
                            weights=None if pose_only else weights, other_heads=others, timings_ms=timings,
                            model_v_head=None if pose_only else model_v_head, detail=status, correction=correction)

    def correct(self, located: Located, pose: HeadPose, v_head: np.ndarray) -> Correction:
        """Stage ``correct``: the out-of-span correction field of the fitted surface against the measured
        points of the crop (the source frame's own pixels, :func:`~facerecon.fitting.correction.source_grid`),
        smoothed for the frame's own noise level (:mod:`facerecon.fitting.correction`)."""
        pim = located.position_image
        zc = float(pim.center_mm[2])
        pts, valid = source_grid(located.frame.depth_mm, located.frame.intrinsics, pim.crop_box,
                                 (zc - pim.band_mm[0], zc + pim.band_mm[1]), pim.size)
        return correct_surface(pts[valid], v_head, pose, self.model, self.correction, grid_noise_mm(pts, valid))

    def networks(self, located: Located) -> NetworkOutput:
        """Stage ``networks``: the pose network (and the shape network beside it)."""
        t0 = time.perf_counter()
        pim = located.position_image
        weights, shape_ms = None, None
        if self.shape_network is None:
            poses = self.pose_network(pim)
        elif self.shape_worker is None:
            poses = self.pose_network(pim)
            t = time.perf_counter()
            weights = self.shape_network(pim.data)
            shape_ms = _ms(t, time.perf_counter())
        else:
            job = self.shape_worker(_timed, self.shape_network, pim.data)
            try:
                poses = self.pose_network(pim)
            finally:
                weights, shape_ms = job.result()
        out = {"network": _ms(t0, time.perf_counter())}
        if shape_ms is not None:
            out["shape_network"] = shape_ms  # overlaps the pose network (it ran beside it)
        return NetworkOutput(poses, weights, out)

    def mesh(self, weights: np.ndarray | None, leading: int | None = None) -> np.ndarray:
        """The head-frame mesh of the model ``weights`` (None: the reference face); ``leading``: only its
        first vertices (the same values)."""
        if weights is None:
            if self._reference is None:
                self._reference = self.model.reference_vertices.astype(np.float64)
            return self._reference
        k = self.model.n_identity
        return self.model.vertices(weights[:k], weights[k:], leading=leading).astype(np.float64)

    def check_refine(self, located: Located, net: NetworkOutput, n_refine: int, whole_mesh: bool = True) -> Checked:
        """Stage ``check / refine``: the robust check and rigid refinement of the networks' pose
        with the networks' face (:func:`.check.robust_pose`).  ``whole_mesh`` False: ``Checked.v_head``
        holds only the vertices the check reads (:attr:`.check.FaceRegion.n_leading`; a quarter of the mesh)."""
        t0 = time.perf_counter()
        pim = located.position_image
        surf = MeasuredSurface.from_position_image(pim)
        weights = net.weights
        leading = None if whole_mesh else self.region.n_leading
        v_head = self.mesh(weights, leading)
        more = lambda: self.turned_network(pim)  # noqa: E731
        fit = robust_pose([Candidate(Start.NETWORK, net.poses.pose)], v_head, self.region, surf, self.check_cfg, n_refine,
                          centre=located.location.center_mm, more=more, alternatives=lambda: list(net.poses.alternatives))
        again = False
        if fit.chosen.start is Start.TURNED_CROP and self.shape_network is not None:
            # the head is at a roll the networks never saw upright: the shape network's answer
            # on the original crop is as wrong as the pose's was; ask it again on the turned crop
            # (its output is in the head frame, nothing to turn back), then refine with that face
            weights = self.shape_network(rotate_position_image(pim.data, int(round(fit.chosen.turn_deg / 90.0))))
            v_head = self.mesh(weights, leading)
            second = robust_pose([Candidate(Start.NETWORK, fit.pose)], v_head, self.region, surf, self.check_cfg, n_refine,
                                 centre=located.location.center_mm, more=more)
            fit = replace(second, chosen=fit.chosen, network_check=fit.network_check, tried=fit.tried + second.tried)
            again = True
        return Checked(fit, v_head, weights, again, surf, {"refine": _ms(t0, time.perf_counter())})

    def identity(self, located: Located, pose: HeadPose, weights: np.ndarray, iterations: int,
                 surface: MeasuredSurface | None = None, start_mesh: np.ndarray | None = None) -> tuple[HeadPose, np.ndarray, np.ndarray]:
        """Stage ``identity``: joint pose + identity (+ expression) Gauss-Newton on the frame's points,
        started from the networks' shape (``[shape]`` of ``configs/check.toml``).  ``surface``: the crop's
        measured surface the check already made (its valid points are ``PositionImage.points_mm()``, the same
        values in the same order: not computed again).  ``start_mesh``: the mesh of ``weights`` the check made
        (its leading rows, :attr:`Checked.v_head`): the fit's normals start from it and the returned mesh's rows
        there are it moved by the fitted modes' change (:meth:`FaceModel.vertices_moved`), instead of products
        over all 155 modes (the same values to float32 rounding)."""
        c = self.check_cfg.shape
        k = self.model.n_identity
        s = max(int(c.point_stride), 1)
        if surface is None:
            points = located.position_image.points_mm(stride=s)
        else:
            points = surface.points[::s, ::s][surface.valid[::s, ::s]]
        fit = fit_face(points, self.model, pose,
                       FitConfig(n_identity=int(c.identity_modes), n_expression=int(c.expression_modes), n_model_points=int(c.n_points),
                                 rigid_iterations=0, iterations=int(iterations), max_distance_mm=tuple(c.max_distance_mm), region=str(c.region),
                                 sampling=str(c.sampling)),
                       identity=weights[:k], expression=weights[k:], start_mesh=start_mesh)
        w = np.r_[fit.identity, fit.expression]
        if start_mesh is None:
            return fit.pose, self.mesh(w), w
        return fit.pose, self.model.vertices_moved(start_mesh, w[:k], w[k:], weights[:k], weights[k:]), w


def _timed(fn, data):
    t = time.perf_counter()
    return fn(data), _ms(t, time.perf_counter())
