"""``FittingReconstructor``: the classical baseline, with the same outputs as ``Reconstructor``.

``localize_head -> crop -> initial pose from the localisation -> model fitting``
(:func:`facerecon.fitting.fit_face`: rigid point-to-plane ICP, then identity + expression
by regularised Gauss-Newton).  No network is involved, so it measures what the networks
buy: ``facerecon reconstruct --method fit``.

Initial pose (no learned prior): the face looks at the camera (yaw = pitch = 0); the roll
puts the head's up opposite to the body the localiser found attached below it (a phone
held sideways gives roll +-90 degrees); the head origin is placed so that the model's
head-volume centre, estimated the way the localiser estimates it (visible surface
centroid pushed back ``centre_offset_mm``), lands on the localised centre.  Rigid ICP from
there converges for heads turned up to ~30-40 degrees; beyond that it can lock onto a
wrong minimum (measured and reported by the benchmark, not hidden).
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import NoFaceFoundError
from ..facemodel import FaceModel
from ..fitting import FitConfig, fit_face
from ..geometry.pose import HeadPose
from ..preprocess.localize import DEFAULT_PARAMS
from ..geometry.rotations import euler_to_matrix
from .check import FaceRegion, MeasuredSurface, Start, check_config, surface_check
from .frame import build_result, describe, locate
from .result import FaceResult, FramePath


def model_head_centre(model: FaceModel, offset_mm: float = DEFAULT_PARAMS.centre_offset_mm,
                      radius_mm: float = DEFAULT_PARAMS.collect_radius_mm) -> np.ndarray:
    """(3,) head-frame point that the localiser reports as the head centre of a frontal head.

    The camera sees the reference head from the front (head z points into the head, as the
    camera's z does for a frontal pose): the localiser's estimate is the centroid of the
    visible surface within ``radius_mm`` of itself (mean shift), pushed back by ``offset_mm``.
    """
    v = model.reference_vertices.astype(np.float64)
    idx = model.region_vertices("face", "head_and_neck")
    pts = v[idx]
    # visible from the front: the nearest surface point in each 4 mm (x, y) cell
    cell = np.floor(pts[:, :2] / 4.0).astype(np.int64)
    key = cell[:, 0] * 100003 + cell[:, 1]
    order = np.lexsort((pts[:, 2], key))
    first = order[np.r_[True, key[order][1:] != key[order][:-1]]]
    front = pts[first]
    est = front.mean(0)
    for _ in range(20):
        sel = np.linalg.norm(front - est, axis=1) <= radius_mm
        new = front[sel].mean(0)
        if np.linalg.norm(new - est) < 0.1:
            break
        est = new
    return est + np.array([0.0, 0.0, offset_mm])


# The baseline's schedule (measured on synthetic facewarehouse frames, seed 1003: from the
# localiser's frontal start, 8 rigid iterations with a 25 -> 6 mm threshold left 5-20
# degree errors; 20 rigid iterations from 40 mm, then 12 joint ones, reach 1-4 degrees).
BASELINE_FIT = FitConfig.preset("baseline")  # configs/fit.toml [baseline]


class FittingReconstructor:
    """``FittingReconstructor().reconstruct(depth_mm, intrinsics) -> FaceResult``."""

    def __init__(self, model: FaceModel | None = None, config: FitConfig | None = None, check: dict | None = None):
        self.model = model or FaceModel.load()
        self.config = config or BASELINE_FIT
        self._centre = model_head_centre(self.model)
        self.check_cfg = check_config(check)
        c = self.check_cfg
        self.region = FaceRegion(self.model, c.check.region, c.refine.n_points, central_radius_mm=c.check.central_radius_mm)

    def initial_poses(self, location) -> list[HeadPose]:
        """Frontal starts: the roll from the body direction and, when that is far from
        upright (a misread body direction: hair, a raised hand), upright as well."""
        rolls = [0.0]
        if location.body_direction is not None:
            bx, by = (float(v) for v in location.body_direction)
            roll = float(np.degrees(np.arctan2(-bx, by)))  # Rz(roll) maps image-down (0, 1) onto the body direction
            rolls = [roll] + ([0.0] if abs(roll) > 45.0 else [])
        out = []
        for roll in rolls:
            r0 = euler_to_matrix(0.0, 0.0, roll)
            out.append(HeadPose(r0, np.asarray(location.center_mm, np.float64) - r0 @ self._centre))
        return out

    def reconstruct(self, depth, intrinsics=None, refine: int | None = None, refine_shape: int | None = None,
                    detail: bool | None = None) -> FaceResult:
        """``locate -> crop -> model fit -> result``; ``refine`` / ``refine_shape`` / ``detail`` are accepted
        for interface compatibility (fitting is all refinement; the baseline returns the model surface)."""
        located = locate(depth, intrinsics)
        t0 = time.perf_counter()
        starts = self.initial_poses(located.location)
        pts = located.position_image.points_mm()
        # several starts: the lowest residual among fits that kept at least half the inliers
        try:
            fits = [fit_face(pts, self.model, p, self.config) for p in starts]
        except ValueError as exc:  # too few points in the crop
            raise NoFaceFoundError(f"{located.frame.source or 'depth frame'}: model fitting failed ({exc})") from None
        most = max(f.n_inliers for f in fits)
        fit = min((f for f in fits if f.n_inliers >= 0.5 * most), key=lambda f: f.rms_mm)
        t1 = time.perf_counter()
        pose = fit.pose
        v_head = self.model.vertices(fit.identity, fit.expression).astype(np.float64)
        # the same check, confidence and face decision as the networks' path, on the fitted face
        check = surface_check(v_head, pose, self.region, MeasuredSurface.from_position_image(located.position_image), self.check_cfg)
        decision = describe(self.check_cfg, check, fit.identity, fit.expression)
        t2 = time.perf_counter()
        timings = {**located.timings_ms, "fit": (t1 - t0) * 1e3, "check": (t2 - t1) * 1e3}
        timings["total"] = sum(timings.values())
        return build_result(self.model, located, pose, check, decision, FramePath(Start.FIT), v_head=v_head,
                            weights=np.r_[fit.identity, fit.expression], timings_ms=timings)
