"""The robust check after the networks: does the returned face lie on the frame's points?

The networks give a pose (and a shape) from one look at the position image; nothing in
them says whether the result agrees with the measured surface.  This module does, cheaply
(a few ms on one core), on the position image the networks saw (an organised 160 x 160
grid of camera-frame points: no search structure is needed):

* :func:`surface_check` renders the face (``[check] region`` of ``configs/check.toml``)
  of the posed mesh into the crop and compares it with the measured depth pixel by pixel:
  the **trimmed residual** (mean of the smallest 80 % of ``|measured - rendered|`` where
  both exist), the **free-space violations** (fraction of those pixels where the mesh lies
  more than 10 mm *in front of* the measured surface: the sensor saw through where the
  face is claimed to be, which an occluder cannot explain) and the **coverage** (fraction
  of rendered face pixels with a measurement at all).
* :func:`refine_rigid` is a short rigid point-to-plane ICP with projective association:
  face vertices are projected into the crop and paired with the measured point (and its
  grid normal) at that pixel; a configuration of the project's one rigid ICP loop
  (:func:`facerecon.geometry.icp.rigid_icp`).  ~0.3-0.5 ms per iteration: cheap
  enough to run by default.  (The fitter's rigid stage, :func:`facerecon.fitting.fit_face`,
  pairs by KD-tree and re-evaluates the shape every iteration: measured ~200 ms for 3
  iterations on the loaded 2-core machine, against ~13 ms for 6 here.)
* :func:`robust_pose` refines the networks' pose; when the result fails the acceptance
  test it also refines the alternatives (the un-averaged direct and mirrored network
  predictions, rolls of 90/180/270 degrees about the view axis: upside-down heads,
  phones held sideways; the networks on turned crops; :func:`patch_start`, the measured
  patch's principal axes matched to the face's, and :func:`search_grid`, a yaw x pitch
  grid of turns about the head's origin: face-only surfaces the networks miss by 30-50
  degrees) and keeps the best by score that does not raise the trimmed residual; cheapest
  first, stopping at the first that passes clearly (:func:`passes_clearly`).  When nothing
  passes clearly and the score's choice is no face by the check, the most confident pose it
  checked that is one is returned instead.
* :func:`confidence_from` turns the final pose's check (and the landmark self-check over the
  landmarks in view, the identity / expression plausibility) into the confidence;
  :func:`face_decision` says "face" or "no face" with a reason.  Thresholds are data
  (``configs/check.toml``), chosen on the calibration set of ``benchmarks/face_calibration.py``
  and evaluated by ``benchmarks/saying_no.py`` (``docs/confidence.md``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache

import numpy as np
from numba import njit

from ..facemodel import FaceModel
from ..facemodel.model import csr_unit_normals, incidence_csr, triangle_normals
from ..geometry.icp import Pairs, Rejection, partition_median, rigid_icp
from ..geometry.pose import HeadPose
from ..geometry.raster import rasterize
from ..geometry.rotations import axis_angle_to_matrix
from ..geometry.transforms import SimilarityTransform
from ..nets.decode import turn_position_images
from ..preprocess.position_image import PositionImage
from ..settings import from_toml, packaged_toml, with_overrides

FIT_TOLERANCE_MM = 10.0
# inner landmarks (brows, nose, eyes, mouth) used by the landmark self-check
CHECK_LANDMARKS = tuple(range(17, 68))


@njit(cache=True, nogil=True)
def _window_hits(lm, uv, data, valid, scale, f32, center, tol):
    """For each landmark (camera frame ``lm``, pixel ``uv``): a measured point within ``tol`` in the 5 x 5 pixel
    window around it (clipped to the crop)?  The measured points as the NumPy form made them (``data * scale``
    in float32 when ``f32``, the product's float64 plus ``center``), the distance as ``np.linalg.norm``'s
    (squares summed in order, the root)."""
    n_lm, s = lm.shape[0], data.shape[-1]
    hits = np.zeros(n_lm, np.bool_)
    s32 = np.float32(scale)
    for i in range(n_lm):
        best = np.inf
        for dv in range(-2, 3):
            v = min(max(uv[i, 1] + dv, 0), s - 1)
            for du in range(-2, 3):
                u = min(max(uv[i, 0] + du, 0), s - 1)
                if not valid[v, u]:
                    continue
                if f32:
                    e0 = np.float64(np.float32(data[0, v, u]) * s32) + center[0] - lm[i, 0]
                    e1 = np.float64(np.float32(data[1, v, u]) * s32) + center[1] - lm[i, 1]
                    e2 = np.float64(np.float32(data[2, v, u]) * s32) + center[2] - lm[i, 2]
                else:
                    e0 = np.float64(data[0, v, u]) * scale + center[0] - lm[i, 0]
                    e1 = np.float64(data[1, v, u]) * scale + center[1] - lm[i, 1]
                    e2 = np.float64(data[2, v, u]) * scale + center[2] - lm[i, 2]
                best = min(best, np.sqrt(e0 * e0 + e1 * e1 + e2 * e2))
        hits[i] = best <= tol
    return hits


def landmark_hits(landmarks_head: np.ndarray, pose: HeadPose, pim: PositionImage) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which head-frame landmarks have a measured point within ``FIT_TOLERANCE_MM`` in a 5x5 pixel
    window around their projection into the crop (no search structure: ~0.1 ms); also their
    camera-frame positions and (rounded) pixels.  The window's points and distances in one compiled pass
    (:func:`_window_hits`, the NumPy form's values: tests/test_check_speed.py)."""
    lm = pose.apply(landmarks_head)
    uv = np.rint(pim.intrinsics.project(lm)).astype(np.int64)
    f32 = np.result_type(pim.data, pim.scale_mm) == np.float32  # a float32 crop times a Python float stays float32
    hits = _window_hits(lm, uv, pim.data, pim.valid, float(pim.scale_mm), bool(f32), np.asarray(pim.center_mm, np.float64),
                        float(FIT_TOLERANCE_MM))
    return hits, lm, uv


# at least this share of the inner landmarks is counted by the visible-landmark fit (a face seen
# so far from the side that only a few landmarks face the camera cannot get full credit from them)
MIN_VISIBLE_SHARE = 1.0 / 3.0


def visible_landmark_fit(hits: np.ndarray, lm_cam: np.ndarray, uv: np.ndarray, rendered_depth: np.ndarray,
                         in_image: np.ndarray | None = None, facing_away: np.ndarray | None = None) -> float:
    """The landmark self-check over the landmarks the sensor could have measured: not hidden by the
    face itself (a landmark whose pixel the rendered face covers more than ``FIT_TOLERANCE_MM`` in
    front of it: the far eye and mouth corner behind the nose and cheek of a face turned towards
    profile) and, when it found no point, ``in_image`` (:func:`landmarks_in_image`: a face cut by
    the image border) and not ``facing_away`` (its vertex normal turned away from the camera: the
    nose ridge and lips of a true profile, just past the silhouette, where no sensor measures).
    Such a landmark cannot find its measured point, whatever the pose; counting it refuses turned
    and cut faces for being turned or cut.  The denominator is at least
    ``MIN_VISIBLE_SHARE`` of the landmarks (a pose that hides or cuts most of them gains nothing)."""
    everywhere = np.ones(len(hits), np.bool_)
    return _visible_share(hits, np.ascontiguousarray(lm_cam[:, 2], np.float64), np.ascontiguousarray(uv, np.int64), rendered_depth,
                          everywhere if in_image is None else in_image, ~everywhere if facing_away is None else facing_away,
                          float(FIT_TOLERANCE_MM), int(np.ceil(MIN_VISIBLE_SHARE * len(hits))))


@njit(cache=True, nogil=True)
def _visible_share(hits, lm_z, uv, depth, in_image, facing_away, tol, min_n):
    """:func:`visible_landmark_fit`'s count in one pass (a landmark the rendered face covers more than ``tol`` in
    front of it is hidden; a miss out of the image or facing away is not counted; at least ``min_n`` counted)."""
    s = depth.shape[0]
    n, n_hit = 0, 0
    for i in range(len(hits)):
        u, v = uv[i, 0], uv[i, 1]
        front = depth[min(max(v, 0), s - 1), min(max(u, 0), s - 1)]
        hidden = 0 <= u < s and 0 <= v < s and front > 0 and front < lm_z[i] - tol
        if hidden or not (hits[i] or (in_image[i] and not facing_away[i])):
            continue
        n += 1
        n_hit += hits[i]
    return float(n_hit / max(n, min_n))


def landmarks_in_image(lm_cam: np.ndarray, pim: PositionImage) -> np.ndarray:
    """Which camera-frame landmarks project inside the sensor's image (the frame the crop was cut
    from): a face partly outside it (a phone held close, a head at the frame's edge) has no
    measurement there, whatever its pose.  This follows from the pose and the camera alone, never
    from the measurement.  (Discounting misses at grazing view angles too, 70 degrees, kept the
    near-profile TrueDepth #6 but lifted three of the 440 calibration objects above the threshold:
    a wrong pose on a blob has grazing landmarks to spare; docs/confidence.md.  Misses of landmarks
    facing away, past 90 degrees, are not counted: :func:`surface_check`.)"""
    k = pim.source_intrinsics
    z = np.maximum(lm_cam[:, 2], 1e-9)
    u = k.fx * lm_cam[:, 0] / z + k.cx
    v = k.fy * lm_cam[:, 1] / z + k.cy
    return (u >= -0.5) & (u <= k.width - 0.5) & (v >= -0.5) & (v <= k.height - 0.5)


# -- configuration ------------------------------------------------------------------------------------------------


# The settings of ``configs/check.toml`` (the only place their values are written; see the
# comments there): one frozen dataclass per table.
@dataclass(frozen=True)
class CheckSettings:
    region: str
    central_radius_mm: float
    trim: float
    free_space_mm: float
    min_pixels: int


@dataclass(frozen=True)
class RefineSettings:
    iterations: int
    n_points: int
    max_distance_mm: tuple[float, float]
    min_pairs: int
    planes: str


@dataclass(frozen=True)
class FallbackSettings:
    accept_residual_mm: float
    accept_free_space: float
    accept_coverage: float
    rolls_deg: tuple[float, ...]
    central_weight: float
    free_space_weight_mm: float
    coverage_weight_mm: float
    landmark_weight_mm: float
    margin_mm: float
    residual_slack_mm: float


@dataclass(frozen=True)
class SearchSettings:
    yaw_deg: tuple[float, ...]
    pitch_deg: tuple[float, ...]
    iterations: int
    keep: int
    stop_confidence: float
    check_best: int  # 0: every cell gets the rendered check
    patch_radii_mm: tuple[float, ...]  # the patch's own starts (:func:`patch_start`), one per radius (0: the whole patch)
    patch_passes: int  # their visible-face passes
    rolls_after_a_face: bool  # False: the rolls and turned crops only while no pose tried is a face by its check alone
    ring_full: bool  # after each ring of grid cells its best (when a face) refined fully at once (:func:`search_grid`)
    yaw_first: bool  # the grid's pure yaw turns (pitch 0) before the cells with a pitch (:func:`search_grid`)


@dataclass(frozen=True)
class ShapeSettings:
    iterations: int
    identity_modes: int
    expression_modes: int
    max_distance_mm: tuple[float, float]
    n_points: int
    point_stride: int
    region: str
    sampling: str


@dataclass(frozen=True)
class ConfidenceSettings:
    residual_good_mm: float
    residual_bad_mm: float
    free_space_good: float
    free_space_bad: float
    coverage_good: float
    coverage_bad: float
    central_good_mm: float
    central_bad_mm: float
    landmark_good: float
    landmark_bad: float
    identity_good: float
    identity_bad: float
    expression_good: float
    expression_bad: float


@dataclass(frozen=True)
class DecisionSettings:
    face_threshold: float


@dataclass(frozen=True)
class CheckConfig:
    """``configs/check.toml``: the check, the refinement, its fallback and grid search, the joint shape stage, the confidence."""

    check: CheckSettings
    refine: RefineSettings
    fallback: FallbackSettings
    search: SearchSettings
    shape: ShapeSettings
    confidence: ConfidenceSettings
    decision: DecisionSettings


@lru_cache(maxsize=1)
def _packaged() -> CheckConfig:
    return from_toml(CheckConfig, packaged_toml("configs/check.toml"), None, "configs/check.toml")


def check_config(overrides: dict | None = None) -> CheckConfig:
    """``configs/check.toml`` with ``overrides`` (``{section: {key: value}}``) on top; unknown keys are errors."""
    return with_overrides(_packaged(), overrides, "check config") if overrides else _packaged()


# -- the measured surface ---------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _grid_normals(points, valid, max_jump_mm):
    """Central-difference normals of every interior pixel of an organised (S, S, 3) grid and where
    they exist (see :meth:`MeasuredSurface.normals_at`); rows ``v * S + u``.  The float64 operations
    of the NumPy form (``np.cross``, ``np.linalg.norm``'s sum of squares, the division, the sign) in
    its order: the same values bit for bit (tests/test_speed_identity.py)."""
    s = valid.shape[0]
    n_all = np.zeros((s * s, 3))
    ok_all = np.zeros(s * s, np.bool_)
    for v in range(1, s - 1):
        for u in range(1, s - 1):
            if not (valid[v, u] and valid[v, u + 1] and valid[v, u - 1] and valid[v + 1, u] and valid[v - 1, u]):
                continue
            dx0 = points[v, u + 1, 0] - points[v, u - 1, 0]
            dx1 = points[v, u + 1, 1] - points[v, u - 1, 1]
            dx2 = points[v, u + 1, 2] - points[v, u - 1, 2]
            dy0 = points[v + 1, u, 0] - points[v - 1, u, 0]
            dy1 = points[v + 1, u, 1] - points[v - 1, u, 1]
            dy2 = points[v + 1, u, 2] - points[v - 1, u, 2]
            if not (abs(dx2) < max_jump_mm and abs(dy2) < max_jump_mm):
                continue
            n0 = dx1 * dy2 - dx2 * dy1
            n1 = dx2 * dy0 - dx0 * dy2
            n2 = dx0 * dy1 - dx1 * dy0
            nn = np.sqrt(n0 * n0 + n1 * n1 + n2 * n2)
            if not nn > 1e-9:
                continue
            n0, n1, n2 = n0 / nn, n1 / nn, n2 / nn
            if n0 * points[v, u, 0] + n1 * points[v, u, 1] + n2 * points[v, u, 2] > 0:  # face the camera (at the origin)
                n0, n1, n2 = -n0, -n1, -n2
            k = v * s + u
            n_all[k, 0], n_all[k, 1], n_all[k, 2] = n0, n1, n2
            ok_all[k] = True
    return n_all, ok_all


@njit(cache=True, nogil=True)
def _grid_points(data, valid, scale, centre):
    """(S, S, 3) camera-frame points of a position image (``data * scale + centre``, float64) and (S, S) their
    depth where valid, 0 elsewhere: the NumPy form's float64 operations (``moveaxis``, widen, multiply, add, ``where``)
    in one pass."""
    s = valid.shape[0]
    pts = np.empty((s, s, 3))
    depth = np.empty((s, s))
    for v in range(s):
        for u in range(s):
            for k in range(3):
                pts[v, u, k] = np.float64(data[k, v, u]) * scale + centre[k]
            depth[v, u] = pts[v, u, 2] if valid[v, u] else 0.0
    return pts, depth


@njit(cache=True, nogil=True)
def _projective_pairs(p, nm, points, n_all, ok_all, s, fx, fy, cx, cy, max_distance):
    """:class:`ProjectivePairs` for posed points ``p`` with posed normals ``nm``: (rows, measured
    points, their normals, distances), the NumPy form's float64 operations in its order."""
    n = len(p)
    idx = np.empty(n, np.int64)
    q = np.empty((n, 3))
    nq = np.empty((n, 3))
    d = np.empty(n)
    m = 0
    for i in range(n):
        x, y, z = p[i, 0], p[i, 1], p[i, 2]
        if not (z > 1.0 and nm[i, 0] * x + nm[i, 1] * y + nm[i, 2] * z < 0):  # model normal faces the camera
            continue
        zc = max(z, 1.0)
        uf = np.rint(fx * x / zc + cx)
        vf = np.rint(fy * y / zc + cy)
        if not (1.0 <= uf <= s - 2 and 1.0 <= vf <= s - 2):  # a normal needs the pixel's four neighbours
            continue
        u, v = int(uf), int(vf)
        k = v * s + u
        if not ok_all[k]:
            continue
        a0, a1, a2 = n_all[k, 0], n_all[k, 1], n_all[k, 2]
        q0, q1, q2 = points[v, u, 0], points[v, u, 1], points[v, u, 2]
        e0, e1, e2 = q0 - x, q1 - y, q2 - z
        dist = np.sqrt(e0 * e0 + e1 * e1 + e2 * e2)
        if not (dist < max_distance and a0 * nm[i, 0] + a1 * nm[i, 1] + a2 * nm[i, 2] > 0.5):
            continue
        idx[m] = i
        q[m, 0], q[m, 1], q[m, 2] = q0, q1, q2
        nq[m, 0], nq[m, 1], nq[m, 2] = a0, a1, a2
        d[m] = dist
        m += 1
    return idx[:m], q[:m], nq[:m], d[:m]


@dataclass
class MeasuredSurface:
    """The crop's measured points as an organised grid (camera frame, mm), with the grid's
    normals (central differences, computed for the whole grid at the first question: one compiled
    pass over its 25,600 pixels costs less than NumPy's over the ~1,000 the refinement asks for)."""

    points: np.ndarray  # (S, S, 3)
    valid: np.ndarray  # (S, S) bool
    depth: np.ndarray  # (S, S) z in mm, 0 where invalid
    pim: PositionImage
    max_jump_mm: float = 20.0
    # the grid's normals and where they exist, rows v * S + u (:func:`_grid_normals`, made at the first question)
    _normal_grid: tuple | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_position_image(cls, pim: PositionImage, max_jump_mm: float = 20.0) -> "MeasuredSurface":
        pts, depth = _grid_points(pim.data, pim.valid, float(pim.scale_mm), np.asarray(pim.center_mm, np.float64))
        return cls(pts, pim.valid, depth, pim, max_jump_mm)

    def normal_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """((S*S, 3) unit normals, (S*S,) where they exist) of every pixel, rows ``v * S + u``."""
        if self._normal_grid is None:
            self._normal_grid = _grid_normals(self.points, self.valid, float(self.max_jump_mm))
        return self._normal_grid

    def normals_at(self, v: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit normals (facing the camera) at pixels (v, u) by central differences, and where
        they exist: the pixel and its four neighbours measured, no depth jump between them."""
        s = self.valid.shape[0]
        v, u = np.asarray(v), np.asarray(u)
        inside = (u >= 1) & (u < s - 1) & (v >= 1) & (v < s - 1)
        at = np.clip(v, 1, s - 2) * s + np.clip(u, 1, s - 2)
        n_all, ok_all = self.normal_grid()
        return n_all[at], inside & ok_all[at]


# -- the face model's part used by the check and the refinement --------------------------------------------------


class FaceRegion:
    """The ICT face region's triangles and a fixed vertex subsample for the refinement."""

    def __init__(self, model: FaceModel, region: str = "narrow_face", n_points: int = 1200, seed: int = 0,
                 central_radius_mm: float = 40.0):
        self.model = model
        self.region = region
        self.triangles = np.ascontiguousarray(model.region_triangles(region), np.int32)
        used = np.unique(self.triangles)  # the region's vertices that belong to a triangle (normals need one)
        rng = np.random.default_rng(seed)
        self.sample = np.sort(rng.choice(used, size=min(n_points, len(used)), replace=False))
        # a compact copy of the region's mesh (rendering and normals touch only these vertices)
        self._used = used
        remap = np.full(model.n_vertices, -1, np.int64)
        remap[used] = np.arange(len(used))
        self._tris_local = remap[self.triangles]
        self._sample_local = remap[self.sample]
        self.local_triangles = np.ascontiguousarray(self._tris_local, np.int32)
        # the check and the refinement read a mesh's vertices up to this one (region and inner landmarks)
        self.n_leading = int(max(used.max(), model.landmarks_68[list(CHECK_LANDMARKS)].max())) + 1
        # the central face (nose, eyes, mouth): where a face differs from any smooth blob; the
        # trimmed residual over the whole region can hide a nose that floats in front of a ball
        ref = model.reference_vertices.astype(np.float64)
        nose = ref[model.landmarks_68[30]]
        cen = ref[self.triangles].mean(axis=1)
        self.central = np.linalg.norm(cen[:, :2] - nose[:2], axis=1) < central_radius_mm
        # sample vertex x region triangle incidence: the sample's normals in one sparse product
        rows, cols = [], []
        pos = np.full(len(used), -1, np.int64)
        pos[self._sample_local] = np.arange(len(self.sample))
        for k in range(3):
            hit = pos[self._tris_local[:, k]]
            ok = hit >= 0
            rows.append(hit[ok])
            cols.append(np.flatnonzero(ok))
        r, c = np.concatenate(rows), np.concatenate(cols)
        self._incidence = incidence_csr(r, c, (len(self.sample), len(self._tris_local)))
        self._triangles64 = self.triangles.astype(np.int64)
        # the inner landmarks' vertex normals: the whole mesh's triangles around each landmark vertex
        lm = np.asarray(model.landmarks_68)[list(CHECK_LANDMARKS)]
        tris = np.asarray(model.triangles, np.int64)
        at = np.isin(tris, lm)
        self._lm_tris = tris[at.any(axis=1)]
        li, ti = [], []
        for j, v in enumerate(lm):
            t = np.flatnonzero((self._lm_tris == v).any(axis=1))
            li.append(np.full(len(t), j))
            ti.append(t)
        li, ti = np.concatenate(li), np.concatenate(ti)
        self._lm_incidence = incidence_csr(li, ti, (len(lm), len(self._lm_tris)))

    @property
    def landmark_triangles(self) -> np.ndarray:
        """(m, 3) the whole mesh's triangles around the inner landmarks (what their normals read)."""
        return self._lm_tris

    def landmark_normals(self, v_head: np.ndarray, triangles: np.ndarray | None = None) -> np.ndarray:
        """(51, 3) head-frame unit vertex normals (outward) of the inner landmarks (CHECK_LANDMARKS).
        ``triangles``: :attr:`landmark_triangles` renumbered into the rows of ``v_head`` when it holds only
        some of the mesh's vertices (the tracker's); the same arithmetic either way."""
        t = self._lm_tris if triangles is None else triangles
        m = self._lm_incidence
        fn = triangle_normals(np.ascontiguousarray(v_head, np.float64), np.ascontiguousarray(t, np.int64))
        return csr_unit_normals(fn, m.indptr, m.indices, m.data, False)

    def posed(self, v_head: np.ndarray, pose: HeadPose) -> np.ndarray:
        """Camera-frame vertices of the region only (rows of ``local_triangles``)."""
        return np.asarray(v_head, np.float64)[self._used] @ pose.R.T + pose.t_mm

    def sample_with_normals(self, v_head: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 3) head-frame sample vertices and their unit vertex normals (outward)."""
        v = np.ascontiguousarray(v_head, np.float64)
        m = self._incidence  # the region's triangles in the whole mesh's numbering: its local ones mapped back
        return v[self.sample], csr_unit_normals(triangle_normals(v, self._triangles64), m.indptr, m.indices, m.data, False)


# -- the check -----------------------------------------------------------------------------------------------------


@dataclass
class SurfaceCheck:
    """Agreement of a posed face with the measured surface of the crop (see module doc)."""

    residual_mm: float  # trimmed mean |measured - rendered| over face pixels where both exist (inf: none)
    free_space: float  # fraction of those pixels where the mesh is > free_space_mm in front of the measurement
    coverage: float  # fraction of rendered face pixels with a measurement
    n_pixels: int  # pixels compared
    central_residual_mm: float = float("inf")  # median |measured - rendered| over the central face (nose, eyes, mouth)
    landmark_fit: float = 0.0  # fraction of the mesh's inner landmarks with a measured point within FIT_TOLERANCE_MM
    # the same over the landmarks the face does not hide itself (visible_landmark_fit): what the confidence reads;
    # the fallback's score keeps landmark_fit (the poses it chooses were measured with it)
    visible_landmark_fit: float = 0.0

    def score(self, cfg: CheckConfig) -> float:
        """Lower is better: the residual plus penalties for free space and missing coverage (mm)."""
        f = cfg.fallback
        return float(self.residual_mm + f.central_weight * self.central_residual_mm + f.free_space_weight_mm * self.free_space
                     + f.coverage_weight_mm * (1.0 - self.coverage) + f.landmark_weight_mm * (1.0 - self.landmark_fit))

    def accepted(self, cfg: CheckConfig) -> bool:
        f = cfg.fallback
        return bool(self.residual_mm <= f.accept_residual_mm and self.free_space <= f.accept_free_space
                    and self.coverage >= f.accept_coverage)

    def to_json(self) -> dict:
        r = self.residual_mm
        c = self.central_residual_mm
        return {"trimmed_residual_mm": round(float(r), 3) if np.isfinite(r) else None,
                "central_residual_mm": round(float(c), 3) if np.isfinite(c) else None,
                "free_space_violation": round(float(self.free_space), 4),
                "coverage": round(float(self.coverage), 4), "pixels_compared": int(self.n_pixels),
                "visible_landmark_fit": round(float(self.visible_landmark_fit), 4)}


@dataclass(frozen=True)
class CheckedFace:
    """What :func:`surface_check` reads of a head-frame mesh, gathered once for the many poses a
    search checks it at (the same values as gathering them at every check)."""
    region: FaceRegion
    used: np.ndarray  # (n, 3) float64: the region's vertices (rows of ``region.local_triangles``)
    landmarks: np.ndarray  # (51, 3) float64: the inner landmarks (CHECK_LANDMARKS)
    landmark_normals: np.ndarray  # (51, 3) float64: their unit vertex normals

    @classmethod
    def of(cls, v_head, region: FaceRegion) -> "CheckedFace":
        if isinstance(v_head, CheckedFace) and v_head.region is region:
            return v_head
        v = np.asarray(v_head, np.float64)
        return cls(region, v[region._used], v[region.model.landmarks_68[list(CHECK_LANDMARKS)]], region.landmark_normals(v))


@njit(cache=True, nogil=True)
def _compare_depth(depth, tid, valid, measured, central, free_space_mm):
    """The rendered face's depth against the measured depth in one pass over the crop: (|measured - rendered|
    where both exist, in row order; the same over the central face's triangles; how many of them the mesh
    lies more than ``free_space_mm`` in front of; rendered pixels).  The float64 differences of the NumPy
    form (the float32 render promoted), so :func:`surface_check`'s statistics over them are the same bit for bit."""
    h, w = depth.shape
    diffs = np.empty(h * w)
    cen = np.empty(h * w)
    n_rendered, n, m, free = 0, 0, 0, 0
    for v in range(h):
        for u in range(w):
            if depth[v, u] > 0:
                n_rendered += 1
                if valid[v, u]:
                    d = measured[v, u] - np.float64(depth[v, u])  # > 0: the mesh is in front of the measured surface
                    diffs[n] = abs(d)
                    if d > free_space_mm:
                        free += 1
                    if central[tid[v, u]]:
                        cen[m] = abs(d)
                        m += 1
                    n += 1
    return diffs[:n], cen[:m], free, n_rendered


def surface_check(v_head, pose: HeadPose, region: FaceRegion, surf: MeasuredSurface, cfg: CheckConfig) -> SurfaceCheck:
    """Render the face region of the head-frame mesh ``v_head`` (an array, or its :class:`CheckedFace`)
    at ``pose`` into the crop and compare with the measured surface; the landmark self-check of the
    same mesh (see module doc)."""

    c = cfg.check
    face = CheckedFace.of(v_head, region)
    verts = np.ascontiguousarray(face.used @ pose.R.T + pose.t_mm, np.float64)  # FaceRegion.posed
    if not np.isfinite(verts).all() or (verts[:, 2] <= 1.0).any():
        return SurfaceCheck(float("inf"), 1.0, 0.0, 0)
    hits, lm_cam, lm_uv = landmark_hits(face.landmarks, pose, surf.pim)
    lm = float(hits.mean())
    depth, tid, _ = rasterize(verts, region.local_triangles, surf.pim.intrinsics)
    facing_away = np.einsum("ij,ij->i", face.landmark_normals @ pose.R.T, lm_cam) > 0.0
    lm_vis = visible_landmark_fit(hits, lm_cam, lm_uv, depth, landmarks_in_image(lm_cam, surf.pim), facing_away)
    absdiff, central, n_free, n_rendered = _compare_depth(depth, tid, surf.valid, surf.depth, region.central, float(c.free_space_mm))
    n = len(absdiff)
    coverage = n / n_rendered if n_rendered else 0.0
    if n < c.min_pixels:
        return SurfaceCheck(float("inf"), 1.0, float(coverage), n, landmark_fit=lm, visible_landmark_fit=lm_vis)
    a = np.sort(absdiff)
    k = max(1, int(np.ceil(c.trim * n)))
    cres = partition_median(central) if len(central) >= c.min_pixels // 5 else float("inf")  # np.median's value, one partition
    return SurfaceCheck(float(a[:k].mean()), n_free / n, float(coverage), n, cres, lm, lm_vis)


# -- rigid refinement -----------------------------------------------------------------------------------------------


class ProjectivePairs:
    """:func:`~facerecon.geometry.icp.rigid_icp` association: posed sample vertices projected into the
    crop's grid, paired with the measured point (and grid normal) at that pixel; only vertices in
    front of the camera whose normal faces it, and grid normals within 60 degrees of theirs."""

    def __init__(self, surf: MeasuredSurface):
        self.surf = surf

    def __call__(self, p: np.ndarray, nm: np.ndarray, max_distance: float) -> Pairs:
        surf = self.surf
        k = surf.pim.intrinsics
        n_all, ok_all = surf.normal_grid()
        idx, q, nq, d = _projective_pairs(np.ascontiguousarray(p, np.float64), np.ascontiguousarray(nm, np.float64), surf.points,
                                          n_all, ok_all, int(surf.pim.size), float(k.fx), float(k.fy), float(k.cx), float(k.cy),
                                          float(max_distance))
        return Pairs(idx, q, nq, d)


@lru_cache(maxsize=16)
def _icp_schedule(max_distance_mm: tuple[float, float], n_iter: int) -> tuple[np.ndarray, Rejection]:
    """:func:`refine_rigid`'s pair gates (first -> last, geometric) and outlier rule, made once per setting
    (a grid search refines ~40 starts per frame; ``np.geomspace`` alone costs ~30 us)."""
    near = max_distance_mm[1]
    thresholds = np.geomspace(*max_distance_mm, n_iter) if n_iter > 1 else np.array([near])
    thresholds.flags.writeable = False
    return thresholds, Rejection(2.5, floor=near * 0.5, min_pairs=12)


def refine_rigid(pose: HeadPose, v_sample: np.ndarray, n_sample: np.ndarray, surf: MeasuredSurface, cfg: CheckConfig,
                 iterations: int | None = None, planes: str | None = None) -> HeadPose:
    """Rigid point-to-plane ICP of head-frame sample vertices (with normals) onto the crop's
    points, pairs found by projecting into the organised grid (:class:`ProjectivePairs`; see
    module doc).  ``planes`` (default ``[refine] planes``): ``model``, the planes through the
    measured points have the sample's normals (exact for a mesh; the measured normals, central
    differences of single pixels, then only gate the pairs: on real sensors they are noisy enough
    to bias the step); ``measured``, the grid's central-difference normals (for samples whose own
    normals are estimates, e.g. a fused point cloud)."""
    planes = cfg.refine.planes if planes is None else planes
    if planes not in ("model", "measured"):
        raise ValueError(f"refine planes must be 'model' or 'measured', not {planes!r}")
    r_cfg = cfg.refine
    n_iter = int(r_cfg.iterations if iterations is None else iterations)
    if n_iter <= 0:
        return pose
    thresholds, reject = _icp_schedule(tuple(r_cfg.max_distance_mm), n_iter)
    init = SimilarityTransform(np.asarray(pose.R, np.float64), np.asarray(pose.t_mm, np.float64))
    return rigid_icp(v_sample, ProjectivePairs(surf), normals=n_sample, init=init, iterations=n_iter, max_distance=thresholds,
                     reject=reject, min_pairs=0, min_inliers=r_cfg.min_pairs,
                     planes="source" if planes == "model" else "target", damping=1e-6, damping_floor=1.0,
                     tol_step=(1e-5, 1e-3)).pose


def _turned(r: np.ndarray, t: np.ndarray, axis: np.ndarray, angle_deg: float, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) turned by ``angle_deg`` about the camera-frame ``axis`` through ``c`` (float64
    arrays; no :class:`HeadPose` built: the grid turns 34 of them per search)."""
    a = np.asarray(axis, np.float64)
    q = axis_angle_to_matrix(np.deg2rad(angle_deg) * a / np.linalg.norm(a))
    return q @ r, q @ (t - c) + c


def turn_about(pose: HeadPose, axis: np.ndarray, angle_deg: float, centre: np.ndarray) -> HeadPose:
    """``pose`` turned by ``angle_deg`` about the camera-frame ``axis`` through ``centre``."""
    return HeadPose(*_turned(pose.R, pose.t_mm, axis, angle_deg, np.asarray(centre, np.float64)))


def roll_about_view_axis(pose: HeadPose, angle_deg: float, centre: np.ndarray) -> HeadPose:
    """``pose`` turned by ``angle_deg`` about the camera ray through ``centre`` (the head stays in place)."""
    return turn_about(pose, centre, angle_deg, centre)


class Start(str, Enum):
    """Where the returned pose started: the path a frame took is data, never a parsed string."""

    NETWORK = "network"  # the pose network (flip-averaged where the configuration says so)
    DIRECT = "direct"  # the un-averaged direct prediction
    MIRRORED = "mirrored"  # the mirrored input's prediction, mapped back
    ROLLED = "rolled"  # the networks' pose rolled about the view axis (``turn_deg``)
    TURNED_CROP = "turned_crop"  # the networks on the crop turned by ``turn_deg`` (a quarter turn), turned back
    GRID = "grid"  # the networks' pose turned by (``yaw_deg``, ``pitch_deg``) about the head origin
    PATCH = "patch"  # the measured patch's own shape: its principal axes matched to the face's (:func:`patch_start`)
    FIT = "fit"  # the fitting baseline's frontal start (no network)
    TRACK = "track"  # the previous frame's pose (warm start)
    LANDMARKS = "landmarks"  # the photo fit to the detected landmarks (no depth)
    RGBD = "rgbd"  # the photo fit on the colour image, then ICP on the registered depth


@dataclass(frozen=True)
class Candidate:
    """A start for the rigid refinement and where it came from."""

    start: Start
    pose: HeadPose
    turn_deg: float = 0.0  # ROLLED, TURNED_CROP
    yaw_deg: float = 0.0  # GRID
    pitch_deg: float = 0.0  # GRID

    @property
    def label(self) -> str:
        return start_label(self.start, self.turn_deg, self.yaw_deg, self.pitch_deg)


def start_label(start: Start, turn_deg: float = 0.0, yaw_deg: float = 0.0, pitch_deg: float = 0.0) -> str:
    """A start in words (JSON ``label``, logs, tables); code reads the fields, never this."""
    if start is Start.ROLLED:
        return f"network rolled {turn_deg:g}"
    if start is Start.TURNED_CROP:
        return f"network on input turned {turn_deg:g}"
    if start is Start.GRID:
        return f"network yaw {yaw_deg:+g} pitch {pitch_deg:+g}"
    return start.value


@dataclass
class RobustFit:
    """What :func:`robust_pose` chose, and what it tried."""

    pose: HeadPose
    check: SurfaceCheck
    chosen: Candidate  # the start the returned pose came from
    network_check: SurfaceCheck  # the networks' own pose, before refinement
    tried: list = field(default_factory=list)  # (label, score) of every candidate refined


def robust_pose(candidates: list[Candidate], v_head: np.ndarray, region: FaceRegion, surf: MeasuredSurface,
                cfg: CheckConfig, iterations: int | None = None, centre: np.ndarray | None = None,
                more: Callable[[], list[Candidate]] | None = None,
                alternatives: Callable[[], list[Candidate]] | None = None) -> RobustFit:
    """Refine the first candidate (the networks' pose); if it fails the acceptance test,
    refine the other candidates, the patch's own starts (:func:`patch_start`), the grid
    (:func:`search_grid`), rolls of the first about the view axis and ``more()`` (e.g. the network
    on rotated inputs), in that order and each group computed only when reached, until one passes
    clearly (the rolls and ``more()`` only while no pose tried is a face, unless ``[search]
    rolls_after_a_face``); keep the best score.
    ``iterations`` = 0: the networks' pose is only checked, never changed.  ``alternatives()``: more candidates
    after ``candidates[1:]`` in the first group, made only when it is reached (the networks' un-averaged poses)."""
    vs, ns = region.sample_with_normals(v_head)
    nose = np.asarray(v_head[region.model.landmarks_68[30]], np.float64)
    v_head = CheckedFace.of(v_head, region)  # gathered once for every check below

    def evaluate(p: HeadPose) -> SurfaceCheck:
        return surface_check(v_head, p, region, surf, cfg)

    first = candidates[0]
    pose0 = first.pose
    check0 = evaluate(pose0)
    n_iter = int(cfg.refine.iterations if iterations is None else iterations)
    if n_iter <= 0:
        return RobustFit(pose0, check0, first, check0, [(first.label, check0.score(cfg))])
    best_pose = refine_rigid(pose0, vs, ns, surf, cfg, n_iter)
    best = evaluate(best_pose)
    chosen = first
    tried = [(f"{first.label}+refine", best.score(cfg))]
    if best.accepted(cfg):
        return RobustFit(best_pose, best, chosen, check0, tried)
    centre = np.asarray(centre if centre is not None else surf.pim.center_mm, np.float64)

    # an alternative must beat the networks' refined pose clearly: a face-like surface also fits
    # a turned face moderately well, and the networks are right far more often than not
    # and it must lie on the points at least about as well (trimmed residual): the penalty terms
    # (free space, landmarks, coverage) are noisy near profile, where a face turned 50 degrees
    # wrong can trade a worse residual for fewer penalties
    best_score = best.score(cfg) - cfg.fallback.margin_mm
    max_residual = best.residual_mm + cfg.fallback.residual_slack_mm
    # the most confident pose the search checked (coarse grid cells included) that passes the
    # acceptance test and lies on the points about as well as the networks' refined pose
    sure = (check_confidence(best, cfg), best_pose, best, chosen)

    def consider(q: HeadPose, ch: SurfaceCheck, cand: Candidate) -> None:
        nonlocal sure
        if ch.accepted(cfg) and ch.residual_mm <= max_residual and (c := check_confidence(ch, cfg)) > sure[0]:
            sure = (c, q, ch, cand)

    # the alternatives, cheapest and likeliest first; each group is computed only when the ones
    # before it found nothing that passes clearly (:func:`passes_clearly`): the un-averaged
    # predictions, the patch's own shape and the grid (face-only surfaces), the rolls, the networks
    # on turned crops (a network run each)
    def groups():
        yield list(candidates[1:]) + (alternatives() if alternatives is not None else [])
        yield [Candidate(Start.PATCH, p) for r in cfg.search.patch_radii_mm
               if (p := patch_start(pose0, vs, ns, nose, surf, r, cfg.search.patch_passes)) is not None]
        yield search_grid(pose0, vs, ns, v_head, region, surf, cfg, consider)
        if not cfg.search.rolls_after_a_face and max(check_confidence(best, cfg), sure[0]) >= cfg.decision.face_threshold:
            return
        yield [Candidate(Start.ROLLED, roll_about_view_axis(pose0, a, centre), turn_deg=float(a)) for a in cfg.fallback.rolls_deg]
        yield more() if more is not None else []

    for group in groups():
        for cand in group:
            q = refine_rigid(cand.pose, vs, ns, surf, cfg, n_iter)
            ch = evaluate(q)
            sc = ch.score(cfg)
            tried.append((f"{cand.label}+refine", sc))
            consider(q, ch, cand)
            if sc < best_score and ch.residual_mm <= max_residual:
                best_pose, best, best_score, chosen = q, ch, sc, cand
                if passes_clearly(ch, cfg):
                    return RobustFit(best_pose, best, chosen, check0, tried)
    # no clear pass: the score's choice stands unless the check calls it no face and calls another
    # pose tried a face.  The score's landmark term counts every landmark, the check only those in
    # view: near profile (real Kinect face patches) the score ranks a frontal pose that leaves a
    # 4 mm residual over the profile pose the check accepts (docs/confidence.md)
    if check_confidence(best, cfg) < cfg.decision.face_threshold <= sure[0]:
        _, best_pose, best, chosen = sure
    return RobustFit(best_pose, best, chosen, check0, tried)


def check_confidence(check: SurfaceCheck, cfg: CheckConfig) -> float:
    """The confidence from a check alone (the [confidence] terms without the shape plausibility,
    which is the same for every pose of one face)."""
    return confidence_from(confidence_terms(check, {}, cfg))


def passes_clearly(check: SurfaceCheck, cfg: CheckConfig) -> bool:
    """Whether a candidate is good enough to stop the search at: it passes the acceptance test and
    the check alone (the confidence without the shape's plausibility, the same for every candidate)
    gives it at least ``[search] stop_confidence``."""
    return check.accepted(cfg) and check_confidence(check, cfg) >= cfg.search.stop_confidence


def _grid_turns(pose0: HeadPose, g: SearchSettings) -> tuple[list[tuple[float, float]], np.ndarray, np.ndarray]:
    """The grid's cells (yaw, pitch) and the networks' pose turned to each: rotations (K, 3, 3),
    translations (K, 3); yaw about the head's vertical axis, then pitch about its (turned)
    ear-to-ear axis, both through the head's origin."""
    origin = np.asarray(pose0.t_mm, np.float64)
    cells, rs, ts = [], [], []
    for a in [0.0, *g.yaw_deg]:
        # the yaw once per column (the arithmetic of turn_about, without a HeadPose per turn)
        r_a, t_a = _turned(pose0.R, origin, pose0.R[:, 1], a, origin)
        for b in [0.0, *g.pitch_deg]:
            if a == 0.0 and b == 0.0:
                continue
            r, t = _turned(r_a, t_a, r_a[:, 0], b, origin)
            cells.append((float(a), float(b)))
            rs.append(r)
            ts.append(t)
    return cells, np.asarray(rs, np.float64).reshape(-1, 3, 3), np.asarray(ts, np.float64).reshape(-1, 3)


def pair_fit(pose: HeadPose, v_sample: np.ndarray, n_sample: np.ndarray, pairs: "ProjectivePairs", cfg: CheckConfig) -> float:
    """A cheap stand-in for :meth:`SurfaceCheck.score` (lower is better, mm): the refinement's own
    association at ``pose`` (the last, nearest gate), its trimmed mean pair distance plus the
    coverage penalty on the sample's unpaired fraction.  It ranks a grid's coarse cells about as
    the rendered check's score does (Spearman 0.5-0.9 per frame, docs/speed.md) for ~0.1 ms."""
    pr = pairs(v_sample @ pose.R.T + pose.t_mm, n_sample @ pose.R.T, float(cfg.refine.max_distance_mm[1]))
    d = np.sort(pr.distances)
    if not len(d):
        return float("inf")
    k = max(1, int(np.ceil(cfg.check.trim * len(d))))
    return float(d[:k].mean() + cfg.fallback.coverage_weight_mm * (1.0 - len(d) / len(v_sample)))


def search_grid(pose0: HeadPose, v_sample: np.ndarray, n_sample: np.ndarray, v_head: np.ndarray, region: FaceRegion,
                surf: MeasuredSurface, cfg: CheckConfig,
                on_check: Callable[[HeadPose, SurfaceCheck, Candidate], None] | None = None) -> Iterator[Candidate]:
    """The networks' pose turned over a grid of yaws x pitches about the head's own axes
    through its origin, each given ``[search] iterations`` coarse refinement steps, nearest turn
    first (with ``[search] yaw_first`` the pure yaw turns before the cells with a pitch), until one passes clearly (:func:`passes_clearly`); yields the cells to be refined fully:
    with ``[search] ring_full``, after each ring of cells (the same turn) the best by score of the cells
    so far whose coarse check makes them a face (``[decision] face_threshold``), at once (the caller stops at a
    full refinement that passes clearly, and so this search); then the ``[search] keep`` best by
    score of those tried not yielded yet.  ``on_check(pose, check, candidate)`` sees every cell's
    coarse result.

    Why the head origin and not the face: on surfaces the networks did not learn (a face
    patch without hair or shoulders) they miss mostly the rotation (typically 30-50 degrees
    of yaw towards frontal) while the head's position is roughly right; turning about the
    face instead carries the face sideways with the wrong rotation and ICP then slides.
    The grid does not need the networks' rotation to be near: it is what saves a frame
    the networks have never seen anything like."""
    g = cfg.search
    if not g.yaw_deg and not g.pitch_deg:
        return
    cells, rs, ts = _grid_turns(pose0, g)
    # nearest turns first (the networks are off by less more often than by more), and stop at the
    # first cell whose coarse refinement passes clearly: a wide grid costs its far cells only on
    # frames the near ones cannot explain
    turn = np.arccos(np.clip((np.einsum("kij,ij->k", rs, pose0.R) - 1.0) / 2.0, -1.0, 1.0))
    ring = np.round(np.rad2deg(turn), 3)
    # with ``yaw_first`` the pure yaw turns come first, nearest first, then the cells with a pitch:
    # on face-only patches the networks miss mostly the yaw (they answer near frontal), and a
    # profile is reached only from the farthest yaw columns, which nearest-first ordering leaves
    # behind 20 pitched cells
    order = np.lexsort((turn, [b != 0.0 for _, b in cells])) if g.yaw_first else np.argsort(turn, kind="stable")
    v_head = CheckedFace.of(v_head, region)
    pairs = ProjectivePairs(surf) if g.check_best > 0 else None
    fits: list[float] = []
    scored = []
    for n, i in enumerate(order):
        a, b = cells[i]
        q = refine_rigid(HeadPose(rs[i], ts[i]), v_sample, n_sample, surf, cfg, g.iterations)
        checked = pairs is None
        if pairs is not None:
            # the rendered check (~1.5 ms) only for cells whose pair fit is among the best
            # `check_best` of the cells refined so far: the nearest cells are always checked
            # (the search still stops there), far cells only where they compete
            fit = pair_fit(q, v_sample, n_sample, pairs, cfg)
            fits.append(fit)
            checked = sum(f < fit for f in fits) < g.check_best
        if checked:
            ch = surface_check(v_head, q, region, surf, cfg)
            cand = Candidate(Start.GRID, q, yaw_deg=a, pitch_deg=b)
            scored.append([ch.score(cfg), cand, check_confidence(ch, cfg), False])
            if on_check is not None:
                on_check(q, ch, cand)
            if passes_clearly(ch, cfg):
                break
        if g.ring_full and scored and (n + 1 == len(order) or ring[order[n + 1]] != ring[i]):
            # the ring's end: the best face so far refined fully now, not after the far rings
            top = min((c for c in scored if not c[3] and c[2] >= cfg.decision.face_threshold), key=lambda c: c[0], default=None)
            if top is not None:
                top[3] = True
                yield top[1]
    scored.sort(key=lambda c: c[0])
    yield from [c[1] for c in scored if not c[3]][: g.keep]


def _principal_axes(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroid and principal axes (columns, largest variance first) of (n, 3) points."""
    c = p.mean(axis=0)
    q = p - c
    return c, np.linalg.eigh(q.T @ q)[1][:, ::-1]


# the four proper sign changes of three axes: a principal axis' sign is arbitrary
_AXIS_SIGNS = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], np.float64)


def _matched_axes(data_axes: np.ndarray, face_axes: np.ndarray, near: np.ndarray) -> np.ndarray:
    """The rotation taking ``face_axes`` onto ``data_axes`` (each column onto its counterpart, signs free)
    nearest ``near``."""
    flip = np.sign(np.linalg.det(data_axes) * np.linalg.det(face_axes))  # a proper rotation for every sign choice
    rs = np.einsum("ij,kj,lj->kil", data_axes, _AXIS_SIGNS * flip, face_axes)
    return rs[int(np.argmax(np.einsum("kij,ij->k", rs, near)))]


def patch_start(pose0: HeadPose, v_sample: np.ndarray, n_sample: np.ndarray, nose_head: np.ndarray, surf: MeasuredSurface,
                radius_mm: float, passes: int, min_points: int = 100) -> HeadPose | None:
    """A head pose from the measured patch's shape alone: the face's sample vertices placed so that
    their principal axes and centroid are the crop's points' (None: too few points).

    A face-only patch (no hair, no shoulders: where the networks miss by 30-50 degrees) is a shallow
    cap whose axes (the least-variance one its mean normal, the largest its long side) fix a pose but
    for the axes' signs; of those the one nearest the networks' rotation is taken (they are off by
    far less than the 180 degrees between the others).  ``radius_mm`` > 0: only the points within it
    of the nose tip (the points that stand out furthest towards the camera along the mean normal)
    and the sample vertices within it of the face's nose: the same part of the face on both sides,
    whatever else of the head the patch holds.  The camera sees only the part of the face that faces
    it, so the visible part's axes differ from the whole face's when it is turned: ``passes`` times
    the face's axes are taken again over the sample vertices that face the camera at the pose found,
    and matched again."""
    pts = surf.points[surf.valid]
    if len(pts) < min_points:
        return None
    c_data, a_data = _principal_axes(pts)
    if radius_mm > 0:
        towards = a_data[:, 2] * -np.sign(a_data[:, 2] @ c_data)
        tip = pts[np.argpartition((pts - c_data) @ towards, len(pts) - 5)[-5:]].mean(axis=0)
        pts = pts[np.einsum("ij,ij->i", pts - tip, pts - tip) < radius_mm**2]
        near = np.einsum("ij,ij->i", v_sample - nose_head, v_sample - nose_head) < radius_mm**2
        v_sample, n_sample = v_sample[near], n_sample[near]
        if len(pts) < min_points or len(v_sample) < min_points:
            return None
        c_data, a_data = _principal_axes(pts)
    c_face, a_face = _principal_axes(v_sample)
    r = _matched_axes(a_data, a_face, pose0.R)
    t = c_data - r @ c_face
    for _ in range(passes):
        facing = np.einsum("ij,ij->i", n_sample @ r.T, v_sample @ r.T + t) < 0.0
        if facing.sum() < min_points:
            break
        c_face, a_face = _principal_axes(v_sample[facing])
        r = _matched_axes(a_data, a_face, r)
        t = c_data - r @ c_face
    return HeadPose(r, t)


def rotate_position_image(data: np.ndarray, quarter_turns: int) -> np.ndarray:
    """(3, S, S) position image of the scene turned by ``90 * quarter_turns`` degrees about the
    camera z axis through the crop centre (``Rz``: x right, y down, so positive turns are
    clockwise in the image): pixels move on the grid, the x, y channels turn with them.  The turn the
    pose training's augmentation applies (:func:`facerecon.nets.decode.turn_position_images`), as float32."""
    return turn_position_images(data, quarter_turns).astype(np.float32, copy=False)


# -- confidence and the face decision --------------------------------------------------------------------------------


def _ramp(x: float, good: float, bad: float) -> float:
    """1 at ``good``, 0 at ``bad``, linear between (either direction); NaN/inf count as bad."""
    if not np.isfinite(x):
        return 0.0
    return float(np.clip((x - bad) / (good - bad), 0.0, 1.0))


def plausibility(identity: np.ndarray | None, expression: np.ndarray | None) -> dict:
    """Identity Mahalanobis norm (ICT identity weights are N(0, 1)) and expression weight outside [0, 1]."""
    out: dict = {}
    if identity is not None:
        out["identity_norm"] = float(np.linalg.norm(np.asarray(identity, np.float64)))
    if expression is not None:
        e = np.asarray(expression, np.float64)
        out["expression_outside"] = float(np.clip(-e, 0, None).sum() + np.clip(e - 1.0, 0, None).sum())
    return out


def confidence_terms(check: SurfaceCheck, plaus: dict, cfg: CheckConfig) -> dict:
    c = cfg.confidence
    terms = {
        "residual": _ramp(check.residual_mm, c.residual_good_mm, c.residual_bad_mm),
        "free_space": _ramp(check.free_space, c.free_space_good, c.free_space_bad),
        "coverage": _ramp(check.coverage, c.coverage_good, c.coverage_bad),
        "landmarks": _ramp(check.visible_landmark_fit, c.landmark_good, c.landmark_bad),
        "central": _ramp(check.central_residual_mm, c.central_good_mm, c.central_bad_mm),
    }
    if "identity_norm" in plaus:
        terms["identity"] = _ramp(plaus["identity_norm"], c.identity_good, c.identity_bad)
    if "expression_outside" in plaus:
        terms["expression"] = _ramp(plaus["expression_outside"], c.expression_good, c.expression_bad)
    return terms


def confidence_from(terms: dict) -> float:
    return float(np.prod(list(terms.values()))) if terms else 0.0


_REASONS = {
    "residual": "the face does not lie on the measured surface (trimmed residual {residual_mm:.1f} mm)",
    "free_space": "the face lies in front of the measured surface ({free_space:.0%} of its pixels)",
    "coverage": "little measured surface where the face would be ({coverage:.0%} covered)",
    "landmarks": "the inner landmarks find no surface ({visible_landmark_fit:.0%} of those in view within 10 mm)",
    "central": "nose, eyes and mouth do not match the measured surface (median {central_residual_mm:.1f} mm)",
    "identity": "implausible face shape (identity norm {identity_norm:.1f})",
    "expression": "implausible expression weights",
}


def face_decision(confidence: float, terms: dict, check: SurfaceCheck, plaus: dict, cfg: CheckConfig) -> tuple[bool, str]:
    """``(face, reason)``: face when the confidence reaches ``[decision] face_threshold``;
    the reason names the weakest term."""
    if confidence >= cfg.decision.face_threshold:
        return True, ""
    worst = min(terms, key=terms.get) if terms else "residual"
    values = {"residual_mm": check.residual_mm, "central_residual_mm": check.central_residual_mm, "free_space": check.free_space, "coverage": check.coverage,
              "landmark_fit": check.landmark_fit, "visible_landmark_fit": check.visible_landmark_fit, **{"identity_norm": float("nan"), **plaus}}
    return False, f"no face: {_REASONS[worst].format(**values)}; confidence {confidence:.2f}"
