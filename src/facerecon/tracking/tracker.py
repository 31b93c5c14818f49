"""``Tracker.update(frame) -> FaceTrack``: head pose, expression and one identity over a depth sequence.

What the tracker carries from frame to frame (``configs/track.toml``):

* **start and restart through the single-frame default**: the first frame and the frame after a
  loss go through the whole frame pipeline of ``reconstruct`` (``[warm_start] start_with_default``):
  the track begins wherever the per-frame default would, with its robust check and fallbacks;
* **warm start**: the crop is centred where the previous pose puts the head (the crop
  centre is kept in head coordinates, measured on localised frames); the head localiser
  runs only on the first frame, after a loss, and every ``check_every`` frames as a check
  (a localised centre far from the tracked one re-initialises the track);
* **per-frame refinement from the previous solution**: the pose network runs on the crop (once
  the identity froze, without the test-time flip pair: ``[refine] network_flip``; it only watches);
  the previous refined pose is the start unless the network disagrees with it by more than
  ``max_network_gap_deg`` (a fast turn or a bad previous frame); then rigid point-to-plane
  iterations (``pipeline.check.refine_rigid``, pairs by projection into the crop) and a few
  Gauss-Newton steps of the expression weights with the identity fixed (a prior towards
  neutral and one towards the previous frame's expression);
* **identity fused over the sequence**: the shape network's identity of every confident
  frame votes; the fused identity is the per-mode median of the votes; it freezes when a new
  vote moves the fused face by less than ``stable_mm`` (RMS over the face) after
  ``min_frames`` votes, or after ``max_frames``; after that the shape network is not run;
* **the person's face**: when the identity freezes and when asked (:meth:`Tracker.identity_face`,
  what ``track`` writes as identity.*), the out-of-span correction of the fused identity's model face
  solved once against the fused head surface (``[fused_face]``); the pose never reads it;
* **pose filter**: One-Euro on SE(3) (:mod:`.filters`); the raw pose is kept beside it;
* **loss and recovery**: a frame whose confidence (the pipeline's surface check, landmark
  self-check and plausibility: ``pipeline.frame.describe``) is below ``[loss]
  min_confidence``, an empty frame or a frame without a head is lost; the next frame
  starts from the localiser and is flagged ``recovered``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
from numba import njit

from ..errors import FaceReconError
from ..fitting.correction import Correction, CorrectionConfig, correct_surface
from ..io.frame import DepthFrame
from ..geometry.pose import HeadPose
from ..metrics.align import CloudTarget
from ..facemodel import vertex_normals
from ..pipeline.check import CHECK_LANDMARKS, CheckedFace, FaceRegion, MeasuredSurface, ProjectivePairs, refine_rigid, surface_check
from ..pipeline.frame import Located, NetworkOutput, crop_at, describe
from ..pipeline.reconstruct import Reconstructor
from ..pipeline.runtime import blas_threads
from ..preprocess.localize import localize_head
from ..geometry.rotations import axis_angle_to_matrix, geodesic_distance_deg, rotation_angle_deg
from ..settings import from_toml, packaged_toml
from .filters import OneEuroParams, SE3OneEuroFilter, rotation_log
from .sources import frame_time, open_sequence

# head-frame crop centre before the first localisation measured it: the localiser's head
# centre sits in front of the ICT origin (~130 mm behind the nose tip)
DEFAULT_CROP_OFFSET_HEAD = np.array([0.0, 0.0, -40.0])


# The settings of ``configs/track.toml`` (the only place their values are written; see the
# comments there): one frozen dataclass per table.
@dataclass(frozen=True)
class WarmStartSettings:
    check_every: int
    check_distance_mm: float
    fps: float
    start_with_default: bool


@dataclass(frozen=True)
class TrackRefineSettings:
    enabled: bool
    rigid_iterations: int
    expression_iterations: int
    expression_min_pairs: int
    after_expression_iterations: int
    expression_prior: float
    expression_temporal: float
    constant_velocity: bool
    max_network_gap_deg: float
    network_flip: bool
    planes: str


@dataclass(frozen=True)
class SurfaceSettings:
    enabled: bool
    voxel_mm: float
    max_points: int
    min_points: int
    sample_points: int
    iterations: int
    model_iterations: int
    radius_mm: float
    min_confidence: float
    fuse_every_deg: float
    fuse_every_mm: float


@dataclass(frozen=True)
class IdentitySettings:
    min_frames: int
    max_frames: int
    stable_mm: float
    min_confidence: float


@dataclass(frozen=True)
class FusedFaceSettings:
    correct: bool
    min_points: int
    register_iterations: int
    register_points: int
    register_mm: tuple[float, float]
    noise_passes: int
    distance_mm: float


@dataclass(frozen=True)
class LossSettings:
    min_valid_pixels: int
    min_confidence: float


@dataclass(frozen=True)
class FilterSettings:
    rotation_min_cutoff_hz: float
    rotation_beta: float
    translation_min_cutoff_hz: float
    translation_beta: float
    d_cutoff_hz: float


@dataclass(frozen=True)
class TrackConfig:
    """``configs/track.toml``: warm start, refinement, fused surface, identity, fused face, loss, filter."""

    warm_start: WarmStartSettings
    refine: TrackRefineSettings
    surface: SurfaceSettings
    identity: IdentitySettings
    fused_face: FusedFaceSettings
    loss: LossSettings
    filter: FilterSettings


def track_config(overrides: dict | None = None) -> TrackConfig:
    """The packaged ``configs/track.toml`` with ``overrides`` ({section: {key: value}}, values may be
    strings as ``--set`` gives them) applied; unknown sections or keys are a :class:`ConfigError`
    naming the nearest valid name."""
    return from_toml(TrackConfig, packaged_toml("configs/track.toml"), overrides, "track config")


@dataclass
class FaceTrack:
    """The tracker's answer for one frame (millimetres, camera frame)."""

    index: int
    time_s: float
    source: str
    tracked: bool  # a pose is reported for this frame
    status: str  # init | tracked | recovered | lost
    localised: bool  # the head localiser ran on this frame
    warm_start: bool  # the crop came from the previous pose
    pose: HeadPose | None  # filtered (One-Euro on SE(3))
    raw_pose: HeadPose | None  # before the filter
    network_pose: HeadPose | None
    expression: np.ndarray | None  # (55,) weights (first 53 ARKit-named)
    confidence: float
    residual_mm: float  # trimmed depth residual of the face against the measured surface
    identity_frozen: bool
    timings_ms: dict = field(default_factory=dict)
    message: str = ""  # why the frame is lost

    @property
    def recovered(self) -> bool:
        return self.status == "recovered"


@dataclass(frozen=True, eq=False)
class IdentityFace:
    """The person's neutral face from the whole track (head frame of the model, mm, ICT topology):
    the fused identity's model face plus the out-of-span correction solved once against the fused
    head surface (:meth:`Tracker.identity_face`)."""

    vertices_head: np.ndarray  # (V, 3) the written face: corrected when ``detail`` is "on", else the model's
    model_vertices_head: np.ndarray  # (V, 3) the fused identity's model face alone
    detail: str  # "on" | "off" (not asked for) | "off: <reason>"
    correction: Correction | None
    registration: HeadPose | None  # fused surface (tracked head frame) -> the model's head frame
    frames_fused: int
    points: int  # fused points the correction was solved against
    # the fused points as the correction saw them (camera FRONT_VIEW_MM in front of the face, ``view_pose``:
    # head -> that camera) and their spacing (the fusion voxel): what ``track``'s detail maps are made from
    view_points: np.ndarray | None = None
    view_pose: HeadPose | None = None
    spacing_mm: float = 0.0

    def stats(self) -> dict:
        out = {"detail": self.detail, "frames_fused": int(self.frames_fused), "points": int(self.points)}
        if self.correction is not None:
            out["correction"] = self.correction.stats()
        if self.registration is not None:
            out["registration"] = {"rotation_deg": round(float(rotation_angle_deg(self.registration.R)), 4),
                                   "translation_mm": round(float(np.linalg.norm(self.registration.t_mm)), 4)}
        return out


# the fused surface is solved as if seen by a camera this far in front of the face (head -z): the
# correction pairs only the face vertices that look towards it, i.e. the front of the head
FRONT_VIEW_MM = 1000.0


@njit(cache=True, nogil=True)
def _merge_keys(old_keys, new_sorted, order):
    """Merge strictly increasing voxel keys with sorted new keys (``new_sorted = new_keys[order]``):
    the number of distinct keys and each old and new row's rank among them."""
    n_old, n_new = len(old_keys), len(new_sorted)
    inv_old = np.empty(n_old, np.int64)
    inv_new = np.empty(n_new, np.int64)
    i = j = m = 0
    while i < n_old or j < n_new:
        key = old_keys[i] if j >= n_new or (i < n_old and old_keys[i] <= new_sorted[j]) else new_sorted[j]
        if i < n_old and old_keys[i] == key:
            inv_old[i] = m
            i += 1
        while j < n_new and new_sorted[j] == key:
            inv_new[order[j]] = m
            j += 1
        m += 1
    return m, inv_old, inv_new


@njit(cache=True, nogil=True)
def _voxel_sums(inv_old, inv_new, points, normals, weights, pts_new, nrm_new, m):
    """Per voxel: the weight, the weighted point and normal sums, rows in order (old, then new)."""
    ws = np.zeros(m)
    ps = np.zeros((m, 3))
    ns = np.zeros((m, 3))
    for i in range(len(inv_old)):
        j, w = inv_old[i], weights[i]
        ws[j] += w
        for k in range(3):
            ps[j, k] += points[i, k] * w
            ns[j, k] += normals[i, k] * w
    for i in range(len(inv_new)):
        j = inv_new[i]
        ws[j] += 1.0
        for k in range(3):
            ps[j, k] += pts_new[i, k]
            ns[j, k] += nrm_new[i, k]
    return ws, ps, ns


@njit(cache=True, nogil=True)
def _near_points(points, valid, n_all, ok_all, centre, radius):
    """The measured points of an organised grid within ``radius`` of ``centre`` that have a grid
    normal (rows ``v * S + u`` of ``n_all`` / ``ok_all``), in pixel order, and those normals."""
    s = valid.shape[0]
    pts = np.empty((s * s, 3))
    nrm = np.empty((s * s, 3))
    m = 0
    for v in range(s):
        for u in range(s):
            if not (valid[v, u] and ok_all[v * s + u]):
                continue
            d0, d1, d2 = points[v, u, 0] - centre[0], points[v, u, 1] - centre[1], points[v, u, 2] - centre[2]
            if not np.sqrt(d0 * d0 + d1 * d1 + d2 * d2) < radius:
                continue
            for k in range(3):
                pts[m, k] = points[v, u, k]
                nrm[m, k] = n_all[v * s + u, k]
            m += 1
    return pts[:m], nrm[:m]


class HeadSurface:
    """The measured head surface fused over the tracked frames, in head coordinates: points and
    normals averaged per ``voxel_mm`` cube.  Registering each new frame to it (rather than to
    the face model, whose shape is never exactly the person's) makes the relative poses
    consistent: the model anchors the head frame, the person's own surface carries the track."""

    def __init__(self, voxel_mm: float, max_points: int):
        self.voxel = float(voxel_mm)
        self.max_points = int(max_points)
        self.points = np.zeros((0, 3))
        self.normals = np.zeros((0, 3))
        self.weights = np.zeros(0)
        self.frames = 0

    def __len__(self) -> int:
        return len(self.points)

    def add(self, pts_head: np.ndarray, nrm_head: np.ndarray) -> None:
        """Average new head-frame points and normals into the voxels.  The voxels stay sorted by their
        key; the new points' keys are sorted and merged in (what ``np.unique`` over all the keys gives,
        without sorting the fused points again), and each voxel's sums run in the order of the rows,
        the fused points first (what ``np.bincount`` sums)."""
        pts_head = np.ascontiguousarray(pts_head, np.float64)
        nrm_head = np.ascontiguousarray(nrm_head, np.float64)
        old_keys, new_keys = self._keys(self.points), self._keys(pts_head)
        if len(old_keys) < 2 or bool(np.all(old_keys[1:] > old_keys[:-1])):
            order = np.argsort(new_keys)
            m, inv_old, inv_new = _merge_keys(old_keys, new_keys[order], order)
        else:  # a fused point's mean crossed into another voxel (or the voxels were trimmed): sort all of them
            _, inv = np.unique(np.concatenate([old_keys, new_keys]), return_inverse=True)
            inv = inv.reshape(-1)
            m = int(inv.max()) + 1 if len(inv) else 0
            inv_old, inv_new = inv[:len(old_keys)], inv[len(old_keys):]
        self.frames += 1
        ws, ps, ns = _voxel_sums(inv_old, inv_new, self.points, self.normals, self.weights, pts_head, nrm_head, m)
        self.points = ps / ws[:, None]
        self.normals = ns / np.maximum(np.linalg.norm(ns, axis=1, keepdims=True), 1e-12)
        self.weights = ws
        if len(self.points) > self.max_points:  # keep the best-supported voxels
            keep = np.argsort(-self.weights, kind="stable")[: self.max_points]
            self.points, self.normals, self.weights = self.points[keep], self.normals[keep], self.weights[keep]

    def _keys(self, pts: np.ndarray) -> np.ndarray:
        cells = np.floor(pts / self.voxel).astype(np.int64) + (1 << 20)
        return (cells[:, 0] << 42) | (cells[:, 1] << 21) | cells[:, 2]  # one int64 per voxel (+-2.6 km at 2.5 mm)

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.points) <= n:
            return self.points, self.normals
        idx = np.random.default_rng(seed).choice(len(self.points), n, replace=False)
        return self.points[idx], self.normals[idx]


class Tracker:
    """``Tracker.from_pretrained().update(frame)`` per frame, or ``for t in tracker.run(sequence)``."""

    def __init__(self, reconstructor, config: dict | None = None):
        self.rec = reconstructor
        self.est = reconstructor.pose
        self.model = reconstructor.model
        self.cfg = track_config(config)
        self.check_cfg = self.est.check_cfg
        # the settings of the single-frame ``correct`` stage: one correction, one set of settings
        self._correction_cfg = getattr(getattr(reconstructor, "pipeline", None), "correction", None) or CorrectionConfig()
        self.region = FaceRegion(self.model, self.check_cfg.check.region, self.check_cfg.refine.n_points)
        # the rows of the head mesh the check reads: the region's vertices, the 68 landmarks and their triangles
        region_rows = np.unique(self.region.triangles)
        self._used = np.union1d(np.union1d(region_rows, np.asarray(self.model.landmarks_68, np.int64)),
                                self.region.landmark_triangles.ravel())
        # the landmarks' triangles (their normals: which landmarks face away) renumbered into those rows
        self._lm_tris_at = np.searchsorted(self._used, self.region.landmark_triangles)
        # where the check's rows (CheckedFace: the region's vertices, the inner landmarks) sit in those
        self._at_region = np.searchsorted(self._used, region_rows)
        self._at_landmarks = np.searchsorted(self._used, np.asarray(self.model.landmarks_68, np.int64)[list(CHECK_LANDMARKS)])
        n_ex = self.model.n_expression
        # expression bases of the refinement sample (n, 3, 55) and of the region's vertices (55, U*3)
        self._bs = np.ascontiguousarray(self.model.expression_basis[:, self.region.sample].astype(np.float64).transpose(1, 2, 0))
        self._bu = self.model.expression_basis[:, self._used].astype(np.float64).reshape(n_ex, -1)
        self._b_id = self.model.identity_basis[:, self.region.sample].astype(np.float64)  # (100, n, 3)
        self._mesh_key: bytes | None = None
        ref = self.model.reference_vertices.astype(np.float64)
        self._face_centre = ref[self.region.sample].mean(axis=0)  # head-frame centre of the face region
        f = self.cfg.filter
        self.filter = SE3OneEuroFilter(OneEuroParams(f.rotation_min_cutoff_hz, f.rotation_beta, f.d_cutoff_hz),
                                       OneEuroParams(f.translation_min_cutoff_hz, f.translation_beta, f.d_cutoff_hz))
        self.reset()

    @classmethod
    def from_pretrained(cls, config: str = "fast", track: dict | None = None, model=None) -> "Tracker":
        return cls(Reconstructor.from_pretrained(config, model=model), track)

    # -- state ---------------------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the sequence (identity included)."""
        self._index = 0
        self._prev: HeadPose | None = None  # last tracked raw pose
        self._velocity: tuple[np.ndarray, np.ndarray, float] | None = None  # (rotation vector/s, mm/s, dt) of the last step
        self._loc = None  # last HeadLocation
        self._last_localised = -(10**9)
        self._offset_head = DEFAULT_CROP_OFFSET_HEAD.copy()
        self._offset_measured = False
        self._expression: np.ndarray | None = None
        self._votes: list[np.ndarray] = []
        self.identity: np.ndarray | None = None  # fused (100,)
        self.identity_frozen = False
        self._had_track = False
        self._last_time: float | None = None
        c = self.cfg.surface
        self.surface = HeadSurface(c.voxel_mm, c.max_points)
        self._last_fused: HeadPose | None = None
        self.filter.reset()

    def _lose(self) -> None:
        self._prev = None
        self._velocity = None
        self._expression = None
        self.filter.reset()

    # -- one frame -----------------------------------------------------------------------------------------------

    def update(self, frame: DepthFrame | None, time_s: float | None = None) -> FaceTrack:
        """Track one frame (``None`` or an empty frame: no data, the track is lost)."""
        idx = self._index
        self._index += 1
        t_frame = frame_time(frame) if frame is not None else None
        t = float(time_s if time_s is not None else t_frame if t_frame is not None else idx / self.cfg.warm_start.fps)
        src = frame.source if frame is not None else ""
        if frame is None or frame.intrinsics is None or int(np.count_nonzero(frame.depth_mm)) < self.cfg.loss.min_valid_pixels:
            return self._lost(idx, t, src, "no depth data" if frame is None or frame.intrinsics is not None else "no intrinsics")
        try:
            with blas_threads(self.est.network.threads):
                return self._update(frame, idx, t)
        except FaceReconError as exc:
            return self._lost(idx, t, src, exc.one_line())
        except ValueError as exc:  # degenerate geometry in a stage (a crop centre behind the camera, ...)
            return self._lost(idx, t, src, str(exc).splitlines()[0])

    def _lost(self, idx: int, t: float, src: str, why: str, localised: bool = False, timings: dict | None = None,
              confidence: float = 0.0, residual: float = float("nan"), network_pose: HeadPose | None = None) -> FaceTrack:
        self._lose()
        self._last_time = t
        return FaceTrack(idx, t, src, False, "lost", localised, False, None, None, network_pose, None, float(confidence),
                         float(residual), self.identity_frozen, timings or {}, why)

    def _update(self, frame: DepthFrame, idx: int, t: float) -> FaceTrack:
        """The frame pipeline's stages with the track's state: ``locate`` (only when due) -> ``crop``
        (warm start: where the previous pose puts the head) -> ``networks`` -> ``refine`` (onto the
        face model or the fused surface, from the previous pose) -> ``check`` -> the frame's answer."""
        t0 = time.perf_counter()
        tracking = self._prev is not None
        need_loc = not tracking or idx - self._last_localised >= self.cfg.warm_start.check_every
        try:
            located, warm = self._locate_and_crop(frame, idx, tracking, need_loc)
        except FaceReconError as exc:  # no head where the localiser looked, and no track to fall back on
            return self._lost(idx, t, frame.source, exc.one_line(), True, {"localize": (time.perf_counter() - t0) * 1e3})
        c_ref = self.cfg.refine
        if not tracking and c_ref.enabled and self.cfg.warm_start.start_with_default:
            return self._start(located, idx, t, t0)
        with_shape = not self.identity_frozen or not c_ref.enabled
        if tracking and not with_shape and not c_ref.network_flip:
            # a tracked frame: the pose network only watches the track (max_network_gap_deg)
            tn = time.perf_counter()
            poses = self.est.network_poses(located.position_image, flip=False)
            net = NetworkOutput(poses, None, {"network": (time.perf_counter() - tn) * 1e3})
        else:
            net = (self.rec.pipeline if with_shape else self.est.pipeline).networks(located)
        t1 = time.perf_counter()
        timings = {**located.timings_ms, **net.timings_ms}
        k = self.model.n_identity
        w_net = net.weights
        ident = self.identity if self.identity is not None else w_net[:k]
        surf = MeasuredSurface.from_position_image(located.position_image)
        pose, model_pose, expr = self._refine(net, w_net, ident, surf, tracking, idx)
        check = surface_check(self._checked_face(expr), model_pose, self.region, surf, self.check_cfg)
        timings["refine_and_check"] = (time.perf_counter() - t1) * 1e3
        res = describe(self.check_cfg, check, ident, expr)
        net_pose = net.poses.pose
        if res.confidence < self.cfg.loss.min_confidence:
            timings["total"] = (time.perf_counter() - t0) * 1e3
            return self._lost(idx, t, frame.source, f"lost: confidence {res.confidence:.2f}" + (f" ({res.reason})" if res.reason else ""),
                              need_loc, timings, res.confidence, check.residual_mm, net_pose)
        status = "tracked" if tracking else ("recovered" if self._had_track else "init")
        self._remember(located.location, need_loc, pose, surf, res.confidence, w_net)
        dt = t - self._last_time if (self._last_time is not None and tracking) else 0.0
        filtered = self.filter.update(pose, dt)
        self._velocity = self._motion(pose, dt) if tracking else None
        self._prev, self._expression, self._had_track, self._last_time = pose, np.asarray(expr, np.float64), True, t
        timings["total"] = (time.perf_counter() - t0) * 1e3
        return FaceTrack(idx, t, frame.source, True, status, need_loc, warm, filtered, pose, net_pose, np.asarray(expr, np.float64),
                         float(res.confidence), float(check.residual_mm), self.identity_frozen, timings)

    def _start(self, located: Located, idx: int, t: float, t0: float) -> FaceTrack:
        """Start (or restart after a loss) through the single-frame default output, the frame pipeline of
        ``reconstruct`` (networks, robust check with its fallback and grid search, rigid refinement, joint
        pose + identity): the track begins wherever ``reconstruct`` would, and only where it finds a face."""
        res = self.rec.pipeline.run(located, detail=False)  # the pose and the identity weights only: no surface correction
        timings = {**res.timings_ms, "total": (time.perf_counter() - t0) * 1e3}
        if not res.face:
            return self._lost(idx, t, located.frame.source, f"lost: {res.reason}", True, timings, res.confidence,
                              res.check.residual_mm, res.network_pose)
        expr = np.clip(res.expression, 0.0, 1.0)
        self._identity_mesh(self.identity if self.identity is not None else res.identity)
        self._remember(located.location, True, res.pose, MeasuredSurface.from_position_image(located.position_image), res.confidence, None)
        filtered = self.filter.update(res.pose, 0.0)
        status = "recovered" if self._had_track else "init"
        self._velocity = None
        self._prev, self._expression, self._had_track, self._last_time = res.pose, expr, True, t
        return FaceTrack(idx, t, located.frame.source, True, status, True, False, filtered, res.pose, res.network_pose, expr,
                         float(res.confidence), float(res.check.residual_mm), self.identity_frozen, timings)

    # -- stages --------------------------------------------------------------------------------------------------

    def _locate_and_crop(self, frame: DepthFrame, idx: int, tracking: bool, need_loc: bool) -> tuple[Located, bool]:
        """Stages ``locate`` (first frame, after a loss, every ``check_every`` frames) and ``crop``: the
        warm start crops where the previous pose puts the head unless the localiser disagrees."""
        c_ws = self.cfg.warm_start
        t0 = time.perf_counter()
        loc = None
        if need_loc:
            try:
                loc = localize_head(frame)
                self._last_localised = idx
            except FaceReconError:
                if not tracking:
                    raise
        t1 = time.perf_counter()
        warm = tracking
        if warm:
            centre = self._prev.apply(self._offset_head[None])[0]
            if loc is not None and np.linalg.norm(loc.center_mm - centre) > c_ws.check_distance_mm:
                warm = False  # the check disagrees: the localiser wins
        if not warm:
            centre = loc.center_mm
        if loc is None:
            loc = replace(self._loc, center_mm=np.asarray(centre, np.float64), source=frame.source)
        located = crop_at(frame, loc, centre)
        return Located(frame, loc, located.position_image, {"localize": (t1 - t0) * 1e3, "crop": located.timings_ms["crop"]}), warm

    def _refine(self, net, w_net, ident, surf, tracking: bool, idx: int) -> tuple[HeadPose, HeadPose, np.ndarray]:
        """Stage ``refine``: rigid point-to-plane from the previous pose (moved on by the last step's
        velocity) onto the fused surface once it has grown, else onto the face model; the model then at
        its own best fit near that pose, with a few expression steps.  When the network disagrees with
        the track by more than ``max_network_gap_deg`` (a fast turn, or a surface the network does not
        know), both starts are refined and the one whose face lies better on the points is kept.
        Returns (pose, model pose, expression)."""
        c_ref = self.cfg.refine
        k = self.model.n_identity
        net_pose = net.poses.pose
        if not c_ref.enabled:
            self._identity_mesh(ident)
            return net_pose, net_pose, w_net[k:]
        if self._expression is not None:
            expr = self._expression
        else:  # start of a track: the shape network's expression (neutral once it is no longer run)
            expr = np.clip(w_net[k:], 0.0, 1.0) if w_net is not None else np.zeros(self.model.n_expression)
        mesh = self._identity_mesh(ident)
        if not tracking:
            return self._refine_from(net_pose, True, expr, mesh, surf, idx)
        track_start = self._predicted() if c_ref.constant_velocity else self._prev
        if float(geodesic_distance_deg(self._prev.R, net_pose.R)) < c_ref.max_network_gap_deg:
            return self._refine_from(track_start, False, expr, mesh, surf, idx)
        tries = [self._refine_from(start, far, expr, mesh, surf, idx) for start, far in ((track_start, False), (net_pose, True))]
        return min(tries, key=lambda r: surface_check(self._checked_face(r[2]), r[1], self.region, surf, self.check_cfg).score(self.check_cfg))

    def _refine_from(self, start: HeadPose, far: bool, expr: np.ndarray, mesh: tuple[np.ndarray, np.ndarray], surf,
                     idx: int) -> tuple[HeadPose, HeadPose, np.ndarray]:
        """The refinement from one start (``far``: a start that may be far from the fused surface's pose)."""
        c_ref, c_surf, planes = self.cfg.refine, self.cfg.surface, self.cfg.refine.planes
        vs0, ns = mesh  # the identity's neutral sample vertices and normals (_identity_mesh)
        use_surface = c_surf.enabled and len(self.surface) >= c_surf.min_points
        if use_surface:
            if far:  # the model finds the neighbourhood first
                start = refine_rigid(start, vs0 + self._bs @ expr, ns, surf, self.check_cfg, c_ref.rigid_iterations, planes=planes)
            sp, sn = self.surface.sample(c_surf.sample_points, idx)
            pose = refine_rigid(start, sp, sn, surf, self.check_cfg, c_surf.iterations, planes=planes)
            # the face model at its own best fit near the pose: expression, check and confidence (with the
            # fused surface carrying the pose, the model may sit a few degrees off it: the person is not the model)
            model_pose = refine_rigid(pose, vs0 + self._bs @ expr, ns, surf, self.check_cfg, c_surf.model_iterations, planes=planes)
        else:
            pose = model_pose = refine_rigid(start, vs0 + self._bs @ expr, ns, surf, self.check_cfg, c_ref.rigid_iterations, planes=planes)
        if c_ref.expression_iterations > 0:
            expr = self._expression_steps(model_pose, vs0, ns, expr, surf, c_ref)
            model_pose = refine_rigid(model_pose, vs0 + self._bs @ expr, ns, surf, self.check_cfg, c_ref.after_expression_iterations, planes=planes)
        if not use_surface:
            pose = model_pose
        return pose, model_pose, expr

    def _remember(self, loc, localised: bool, pose: HeadPose, surf, confidence: float, w_net) -> None:
        """What the next frame starts from: the localiser's head centre in head coordinates (the warm
        start's crop centre), the fused surface, the identity votes."""
        if localised and loc is not None and self._loc is not loc:
            off = pose.R.T @ (np.asarray(loc.center_mm, np.float64) - pose.t_mm)
            self._offset_head = off if not self._offset_measured else 0.5 * (self._offset_head + off)
            self._offset_measured = True
        self._loc = loc
        c_surf = self.cfg.surface
        if self.cfg.refine.enabled and c_surf.enabled and confidence >= c_surf.min_confidence:
            last = self._last_fused
            if (last is None or len(self.surface) < c_surf.min_points
                    or float(geodesic_distance_deg(last.R, pose.R)) >= c_surf.fuse_every_deg
                    or float(np.linalg.norm(last.t_mm - pose.t_mm)) >= c_surf.fuse_every_mm):
                self._fuse_surface(surf, pose)
                self._last_fused = pose
        if not self.identity_frozen and w_net is not None and confidence >= self.cfg.identity.min_confidence:
            self._vote(w_net[:self.model.n_identity])

    # -- pieces --------------------------------------------------------------------------------------------------

    def _fuse_surface(self, surf, pose: HeadPose) -> None:
        """Add the crop's measured points near the face (head coordinates) to the fused surface."""
        centre = pose.apply(self._face_centre[None])[0]
        n_all, ok_all = surf.normal_grid()
        pts, nrm = _near_points(surf.points, surf.valid, n_all, ok_all, np.asarray(centre, np.float64), float(self.cfg.surface.radius_mm))
        self.surface.add((pts - pose.t_mm) @ pose.R, nrm @ pose.R)

    def _motion(self, pose: HeadPose, dt: float):
        """The last step's camera-frame angular velocity (rad/s, about the head origin) and linear velocity (mm/s)."""
        if not dt > 0:
            return None
        w = rotation_log(pose.R @ self._prev.R.T) / dt
        return w, (pose.t_mm - self._prev.t_mm) / dt, dt

    def _predicted(self) -> HeadPose:
        """The previous pose moved on by the last step's velocity over one frame interval (constant velocity)."""
        if self._velocity is None:
            return self._prev
        w, v, dt = self._velocity
        return HeadPose(axis_angle_to_matrix(w * dt) @ self._prev.R, self._prev.t_mm + v * dt)

    def _identity_mesh(self, ident: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Neutral-expression sample vertices and normals of an identity (cached while it stays):
        the expression moves the sample vertices linearly; the normals are the neutral ones
        (they only gate pairs: the residuals use the measured normals)."""
        key = np.asarray(ident, np.float64).tobytes()
        if key != self._mesh_key:
            v = np.zeros((self.model.n_vertices, 3), np.float64)
            v[self._used] = self.model.vertices(ident, None, subset=self._used)
            self._base_used = v[self._used].copy()
            self._vs0, self._ns = self.region.sample_with_normals(v)
            self._mesh_key = key
        return self._vs0, self._ns

    def _checked_face(self, expr: np.ndarray) -> CheckedFace:
        """What the check reads of the head-frame face (the region's vertices, the inner landmarks) for the
        current identity and ``expr``: only the rows it reads are evaluated."""
        vu = self._base_used + (np.asarray(expr, np.float64) @ self._bu).reshape(-1, 3)
        return CheckedFace(self.region, vu[self._at_region], vu[self._at_landmarks],
                           self.region.landmark_normals(vu, self._lm_tris_at))

    def _expression_steps(self, pose: HeadPose, vs0: np.ndarray, ns: np.ndarray, expr: np.ndarray, surf, c: dict) -> np.ndarray:
        """Gauss-Newton steps of the expression weights, pose and identity fixed; pairs by
        projecting the sample into the crop (the rigid refinement's association, :class:`ProjectivePairs`)."""
        e = np.asarray(expr, np.float64).copy()
        e_prev = e.copy()
        gate = float(self.check_cfg.refine.max_distance_mm[1])
        nm = ns @ pose.R.T
        pairs = ProjectivePairs(surf)
        lam_p, lam_t = float(c.expression_prior), float(c.expression_temporal)
        for _ in range(int(c.expression_iterations)):
            p = (vs0 + self._bs @ e) @ pose.R.T + pose.t_mm
            pr = pairs(p, nm, gate)
            idx, q, nq = pr.index, pr.points, pr.normals
            if len(idx) < c.expression_min_pairs:
                break
            r = np.einsum("ij,ij->i", nq, q - p[idx])
            nh = nq @ pose.R  # measured normals in head coordinates
            jac = np.einsum("ijk,ij->ik", self._bs[idx], nh)  # (pairs, 55)
            h = jac.T @ jac + (lam_p + lam_t) * np.eye(len(e))
            g = jac.T @ r - lam_p * e - lam_t * (e - e_prev)
            e = np.clip(e + np.linalg.solve(h, g), 0.0, 1.0)
        return e

    def _vote(self, ident: np.ndarray) -> None:
        c = self.cfg.identity
        old = self.identity
        self._votes.append(np.asarray(ident, np.float64))
        self.identity = np.median(np.stack(self._votes), axis=0)
        n = len(self._votes)
        if old is not None and n >= c.min_frames:
            moved = np.sqrt(np.mean(np.sum(np.tensordot(self.identity - old, self._b_id, 1) ** 2, axis=-1)))
            if moved < c.stable_mm:
                self.identity_frozen = True
        if n >= c.max_frames:
            self.identity_frozen = True

    # -- sequences -----------------------------------------------------------------------------------------------

    def run(self, source, **kw):
        """Track every frame of a sequence (see :func:`facerecon.tracking.sources.open_sequence`);
        yields ``(SequenceFrame, FaceTrack)``; frames that could not be read are lost frames."""
        for item in open_sequence(source, **kw):
            if item.frame is None:
                tr = self.update(None, item.time_s)
                tr.source, tr.message = item.name, item.error or tr.message
                yield item, tr
            else:
                yield item, self.update(item.frame, item.time_s)

    def identity_vertices(self) -> np.ndarray:
        """The fused identity's neutral face (head frame, mm, all ICT vertices)."""
        ident = self.identity if self.identity is not None else np.zeros(self.model.n_identity)
        return self.model.vertices(ident, None).astype(np.float64)

    def identity_face(self, correct: bool | None = None) -> IdentityFace:
        """The fused identity's neutral face with the out-of-span correction solved once against the
        fused head surface (``[fused_face]`` of configs/track.toml; ``correct`` None: its ``correct``).

        Many frames averaged per voxel hold far less noise than one frame and more of the face (a sweep
        sees both cheeks).  The fused surface lives in the tracked head frame, which the fused surface
        itself carries and the face model may sit a little off (docs/tracking.md), so it is first
        registered rigidly onto the model face (point-to-plane ICP, the mannequin's tool); the
        correction (:func:`~facerecon.fitting.correction.correct_surface`, the settings of the ``correct``
        stage) then solves the rest, seen from in front of the face.  Its noise level: the robust scale
        of the residual to the model face first, then (``noise_passes`` > 1) that of the residual after
        the previous solve (a fused cloud's own noise is the registration's, not one sensor frame's)."""
        c = self.cfg.fused_face
        model_v = self.identity_vertices()
        n_frames = self.surface.frames

        def model_only(detail: str) -> IdentityFace:
            return IdentityFace(model_v, model_v, detail, None, None, n_frames, 0)

        if not (c.correct if correct is None else correct):
            return model_only("off")
        face = self.model.region_vertices(self._correction_cfg.region)
        nrm = vertex_normals(model_v, self.model.triangles)[face]
        target = CloudTarget(model_v[face], nrm)
        pts = self.surface.points
        if len(pts):
            d, _ = target.tree.query(pts, distance_upper_bound=c.distance_mm)
            pts = pts[np.isfinite(d)]  # near the face: not the neck, hair or shoulders
        if len(pts) < c.min_points:
            return model_only(f"off: {len(pts)} fused points near the face (< {c.min_points})")
        reg = HeadPose(np.eye(3), np.zeros(3))
        if c.register_iterations > 0:
            sub = pts if len(pts) <= c.register_points else pts[np.random.default_rng(0).choice(len(pts), c.register_points, replace=False)]
            reg = target.icp(sub, reg, iterations=c.register_iterations, max_dist=tuple(c.register_mm))
        view = HeadPose(np.eye(3), np.array([0.0, 0.0, FRONT_VIEW_MM]))
        pts_view = view.apply(reg.apply(pts))
        noise = None
        corr = None
        for _ in range(max(int(c.noise_passes), 1)):
            corr = correct_surface(pts_view, model_v, view, self.model, self._correction_cfg, noise)
            if not np.isfinite(corr.residual_after_mm):
                break
            noise = 1.4826 * corr.residual_after_mm
        if not corr.on:
            return IdentityFace(model_v, model_v, corr.status, corr, reg, n_frames, len(pts))
        return IdentityFace(model_v + corr.offsets, model_v, "on", corr, reg, n_frames, len(pts), pts_view, view,
                            self.surface.voxel)
