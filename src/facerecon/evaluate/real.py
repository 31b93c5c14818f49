"""Accuracy on real geometry: renders of the james scan (poses known) and the real
TrueDepth sweep (reference poses from registration to ``Expected.ply``).

Pose: yaw/pitch/roll MAE against the known/reference poses; for the sweep also the
rotation angle relative to the first frame, which must grow with the frame index.
Shape: the reconstructed face against the real surface (james scan / the mannequin's
fused cloud), rigidly aligned on landmarks and refined by ICP, inside the face region.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import FaceReconError
from ..facemodel import ALIGNMENT_LANDMARKS_9, EVAL_REGION
from ..geometry.pose import HeadPose
from ..geometry.transforms import fit_similarity
from ..metrics.align import icp_to_surface
from ..metrics.pose import pose_errors
from ..metrics.shape import compare_meshes, scan_to_mesh_error
from ..metrics.surface import SurfaceIndex
from ..realdata import EVAL_POSE_KEY
from ..geometry.rotations import rotation_angle_deg

MAX_SCAN_POINTS = 3000  # scan points per frame for the scan-to-mesh error (seeded subsample)


@dataclass
class FramePredictions:
    names: list[str]
    r_pred: np.ndarray
    t_pred: np.ndarray
    r_true: np.ndarray
    t_true: np.ndarray
    failed: list[str]


def predict_frames(estimator, frames) -> FramePredictions:
    """Run a PoseEstimator on frames carrying evaluation poses; failures are kept, not hidden."""
    names, rp, tp, rt, tt, failed = [], [], [], [], [], []
    for f in frames:
        ref = f.meta[EVAL_POSE_KEY]
        try:
            res = estimator.estimate(f)
        except FaceReconError as exc:
            failed.append(f"{f.source}: {exc.one_line()}")
            continue
        names.append(f.source)
        rp.append(res.pose.R)
        tp.append(res.pose.t_mm)
        rt.append(ref.R)
        tt.append(ref.t_mm)
    arr = lambda x, s: np.asarray(x) if x else np.zeros(s)  # noqa: E731
    return FramePredictions(names, arr(rp, (0, 3, 3)), arr(tp, (0, 3)), arr(rt, (0, 3, 3)), arr(tt, (0, 3)), failed)


def pose_on_frames(estimator, frames) -> dict:
    p = predict_frames(estimator, frames)
    out = {"n": len(frames), "n_failed": len(p.failed), "failed": p.failed[:10]}
    if len(p.names):
        out.update(pose_errors(p.r_pred, p.r_true, p.t_pred, p.t_true).to_dict())
    return out


def sweep_angles(estimator, frames) -> dict:
    """Predicted and reference rotation angle relative to the first frame, per frame."""
    p = predict_frames(estimator, frames)
    if len(p.names) < 2:
        return {"n": len(p.names), "failed": p.failed}
    pred = rotation_angle_deg(np.swapaxes(p.r_pred[:1], -1, -2) @ p.r_pred)
    ref = rotation_angle_deg(np.swapaxes(p.r_true[:1], -1, -2) @ p.r_true)
    steps = np.diff(pred)
    return {
        "n": len(p.names), "failed": p.failed, "pred_relative_deg": pred.tolist(), "ref_relative_deg": ref.tolist(),
        "n_decreasing_steps": int((steps < 0).sum()), "monotonic": bool((steps >= 0).all()),
        "spearman": float(np.corrcoef(np.argsort(np.argsort(pred)), np.arange(len(pred)))[0, 1]),
        "pose": pose_errors(p.r_pred, p.r_true, p.t_pred, p.t_true).to_dict(),
    }


class JamesShapeError:
    """The reconstructed face against the james scan placed at a render's pose (compare_meshes
    with landmark alignment + ICP, face regions only): one place for every benchmark."""

    def __init__(self, model, scan):
        self.model, self.scan = model, scan
        self.tris = model.region_triangles("face")
        self.region = model.region_mask(EVAL_REGION)
        self.face_vertices = np.zeros(len(scan.vertices), bool)
        self.face_vertices[np.unique(scan.faces[scan.face_triangle])] = True

    def __call__(self, vertices_camera: np.ndarray, ref: HeadPose):
        gt = self.scan.vertices @ ref.R.T + ref.t_mm
        gt_lm = self.scan.landmarks_68[list(ALIGNMENT_LANDMARKS_9)] @ ref.R.T + ref.t_mm
        return compare_meshes(vertices_camera, self.tris, gt, self.scan.faces, self.model.alignment_landmarks, gt_lm,
                              pred_mask=self.region, gt_mask=self.face_vertices, icp=True)

    @cached_property
    def _scan_surface(self) -> SurfaceIndex:
        """The scan's face surface, indexed once (in the scan's own frame)."""
        return SurfaceIndex(self.scan.vertices.astype(np.float64), self.scan.faces[self.scan.face_triangle])

    def quick_median(self, vertices_camera: np.ndarray, ref: HeadPose, n_icp: int = 1500, icp_iterations: int = 15) -> float:
        """Median distance (mm) of the reconstructed face region to the scan's face surface, after
        the same 9-landmark alignment and ICP as :meth:`__call__` but with a seeded subsample of
        ``n_icp`` vertices driving the ICP and the scan's surface index built once (~1 s instead of
        ~18 s: for benchmarks over many frames; only the prediction -> scan direction)."""
        reg = np.flatnonzero(self.region)
        icp_rows = np.sort(np.random.default_rng(0).choice(reg, size=min(n_icp, len(reg)), replace=False))
        v_head = ref.inverse_apply(vertices_camera)  # the scan's frame
        scan_lm = self.scan.landmarks_68[list(ALIGNMENT_LANDMARKS_9)].astype(np.float64)
        xf = fit_similarity(v_head[self.model.alignment_landmarks], scan_lm)
        xf = icp_to_surface(v_head[icp_rows], self._scan_surface, init=xf, max_iter=icp_iterations).transform
        return float(np.median(self._scan_surface.query(xf.apply(v_head[reg])).distances))


def shape_on_james(reconstructor, frames, scan) -> dict:
    """Reconstructions of james renders against the scan placed at the render's pose."""
    error = JamesShapeError(reconstructor.model, scan)
    rows, failed = [], []
    for f in frames:
        try:
            rec = reconstructor.reconstruct(f)
        except FaceReconError as exc:
            failed.append(exc.one_line())
            continue
        e = error(rec.vertices_camera, f.meta[EVAL_POSE_KEY])
        rows.append((e.pred_to_gt.mean, e.pred_to_gt.median, e.gt_to_pred.mean, e.gt_to_pred.median, e.chamfer.value_mm2))
    return _summary(rows, failed, len(frames))


def shape_on_mannequin(reconstructor, frames, reference, cloud_points: np.ndarray, step: int = 1) -> dict:
    """Reconstructions of the real TrueDepth frames (every ``step``-th) against ``Expected.ply`` (NoW-style, after ICP)."""
    model = reconstructor.model
    tris = model.region_triangles("face")
    lm_idx = model.alignment_landmarks
    ref_lm_head = model.reference_vertices[lm_idx].astype(np.float64)
    rows, failed = [], []
    for i in range(0, len(frames), step):
        try:
            rec = reconstructor.reconstruct(frames[i])
        except FaceReconError as exc:
            failed.append(exc.one_line())
            continue
        ck = reference.camera_to_cloud[i]  # cloud = R_k cam + t_k
        cloud_cam = (cloud_points - ck[:, 3]) @ ck[:, :3]
        r_ref, t_ref = reference.rotations[i], reference.translations[i]
        # the scan's face: cloud points within 100 mm of the reference nose tip (landmark 30)
        nose = model.reference_vertices[model.landmarks_68[30]] @ r_ref.T + t_ref
        face = cloud_cam[np.linalg.norm(cloud_cam - nose, axis=1) < 100.0]
        face = face[np.random.default_rng(i).permutation(len(face))[:MAX_SCAN_POINTS]]  # fixed subsample: ICP cost
        scan_lm = ref_lm_head @ r_ref.T + t_ref  # approximate landmarks from the reference registration
        e = scan_to_mesh_error(face, rec.vertices_camera, tris, lm_idx, scan_lm, icp=True)
        rows.append((e.stats.mean, e.stats.median, np.nan, np.nan, np.nan))
    return _summary(rows, failed, len(range(0, len(frames), step)))


def _summary(rows, failed, n) -> dict:
    if not rows:
        return {"n": n, "n_failed": len(failed), "failed": failed[:5]}
    a = np.asarray(rows, np.float64)
    return {"n": n, "n_failed": len(failed), "failed": failed[:5],
            "pred_to_gt_mean_mm": float(np.nanmean(a[:, 0])), "pred_to_gt_median_mm": float(np.nanmedian(a[:, 1])),
            "gt_to_pred_mean_mm": float(np.nanmean(a[:, 2])) if np.isfinite(a[:, 2]).any() else None,
            "gt_to_pred_median_mm": float(np.nanmedian(a[:, 3])) if np.isfinite(a[:, 3]).any() else None,
            "chamfer_eq8_mm2": float(np.nanmean(a[:, 4])) if np.isfinite(a[:, 4]).any() else None,
            "per_sample_median_mm": a[:, 1].tolist()}
