"""Accuracy on held-out synthetic position-image sets (labels known exactly).

Pose: yaw/pitch/roll MAE (degrees, project convention), geodesic and translation errors.
Shape: the predicted full ICT mesh (head frame) against the ground-truth mesh, rigidly
aligned on the 9 landmarks, inside the face region without ears and neck
(``EVAL_REGION``): point-to-surface distances both ways and the paper's eq. 8 Chamfer.
Frames where the localiser found no head never reach the network; their count is
reported with the errors (``n_no_head``), never hidden.
"""
from __future__ import annotations

import numpy as np

from ..errors import FaceReconError
from ..facemodel import EVAL_REGION, FaceModel
from ..facemodel.shape_subset import ShapeSubset
from ..geometry.rotations import geodesic_distance_deg, quat_to_matrix
from ..metrics.pose import PoseErrors, pose_errors
from ..metrics.shape import compare_meshes
from ..nets.argan import OFFSET_UNIT_MM, DAShapeNet
from ..nets.pose import DAPoseNet
from ..train.data import PositionSet
from ..train.pose import predict_poses


def pose_accuracy(net: DAPoseNet, data: PositionSet) -> tuple[PoseErrors, dict]:

    r, t = predict_poses(net, data)
    t_true = data.center_mm.astype(np.float64) + data.trans.astype(np.float64) * data.scale_mm[:, None]
    err = pose_errors(r, quat_to_matrix(data.quat.astype(np.float64)), t, t_true)
    extra = {"n": len(data), "n_no_head": int(data.meta.get("n_no_head", 0)), "n_requested": int(data.meta.get("n_requested", len(data)))}
    return err, extra


def predicted_meshes(shape: DAShapeNet, subset: ShapeSubset, images: np.ndarray, batch: int = 64) -> np.ndarray:
    import torch

    shape.eval()
    out = []
    k = subset.model.n_identity
    with torch.no_grad():
        for s in range(0, len(images), batch):
            off = shape(torch.from_numpy(images[s : s + batch].astype(np.float32))).numpy() * OFFSET_UNIT_MM
            w = subset.weights_from_offsets(off)
            out.append(subset.model.vertices(w[:, :k], w[:, k:]))
    return np.concatenate(out)


def shape_accuracy(shape: DAShapeNet, subset: ShapeSubset, data: PositionSet, model: FaceModel, limit: int | None = None) -> dict:
    """Per-sample shape errors (mm, mm^2) and their summary."""
    n = len(data) if limit is None else min(limit, len(data))
    pred = predicted_meshes(shape, subset, data.images[:n])
    k = model.n_identity
    tris = model.region_triangles("face")
    region = model.region_mask(EVAL_REGION)
    lm = model.alignment_landmarks
    rows = []
    for i in range(n):
        gt = model.vertices(data.weights[i, :k], data.weights[i, k:])
        e = compare_meshes(pred[i], tris, gt, tris, lm, lm, gt_mask=region, pred_mask=region)
        rows.append((e.pred_to_gt.mean, e.pred_to_gt.median, e.gt_to_pred.mean, e.gt_to_pred.median, e.chamfer.value_mm2))
    a = np.asarray(rows)
    mean_face = model.reference_vertices
    base = []  # the reference (mean) face as a prediction: what the network must beat
    for i in range(min(n, 20)):
        gt = model.vertices(data.weights[i, :k], data.weights[i, k:])
        e = compare_meshes(mean_face, tris, gt, tris, lm, lm, gt_mask=region, pred_mask=region)
        base.append((e.pred_to_gt.median, e.gt_to_pred.median))
    b = np.asarray(base)
    return {
        "n": n,
        "pred_to_gt_mean_mm": float(a[:, 0].mean()), "pred_to_gt_median_mm": float(np.median(a[:, 1])),
        "gt_to_pred_mean_mm": float(a[:, 2].mean()), "gt_to_pred_median_mm": float(np.median(a[:, 3])),
        "chamfer_eq8_mm2": float(a[:, 4].mean()),
        "mean_face_baseline_median_mm": float(np.median(b)),
        "per_sample": a.tolist(),
    }


def shape_on_synthetic_frames(reconstructor, generator, n: int) -> dict:
    """Whole frames -> any reconstructor (networks or the fitting baseline) -> the mesh
    against the ground truth (9-landmark alignment, ``EVAL_REGION``, surface distances),
    plus the pose error and the seconds per frame.  Frames ``0..n-1`` of the generator;
    frames where no head is found are counted as failures."""
    import time


    model = reconstructor.model
    tris = model.region_triangles("face")
    region = model.region_mask(EVAL_REGION)
    lm = model.alignment_landmarks
    rows, failed, seconds = [], [], []
    for i in range(n):
        s = generator.generate(i)
        t0 = time.perf_counter()
        try:
            rec = reconstructor.reconstruct(s.depth_mm, s.intrinsics)
        except FaceReconError as exc:
            failed.append(exc.one_line())
            continue
        seconds.append(time.perf_counter() - t0)
        gt = model.vertices(s.labels["identity"], s.labels["expression"])
        e = compare_meshes(rec.vertices_head, tris, gt, tris, lm, lm, gt_mask=region, pred_mask=region)
        geo = float(geodesic_distance_deg(rec.pose.R, quat_to_matrix(np.asarray(s.labels["quaternion"], np.float64))))
        rows.append((e.pred_to_gt.mean, e.pred_to_gt.median, e.gt_to_pred.mean, e.gt_to_pred.median, e.chamfer.value_mm2, geo))
    out = {"n": n, "n_failed": len(failed), "failed": failed[:5]}
    if rows:
        a = np.asarray(rows)
        out.update({
            "pred_to_gt_mean_mm": float(a[:, 0].mean()), "pred_to_gt_median_mm": float(np.median(a[:, 1])),
            "gt_to_pred_mean_mm": float(a[:, 2].mean()), "gt_to_pred_median_mm": float(np.median(a[:, 3])),
            "chamfer_eq8_mm2": float(a[:, 4].mean()), "geodesic_mean_deg": float(a[:, 5].mean()),
            "geodesic_median_deg": float(np.median(a[:, 5])), "seconds_per_frame": float(np.median(seconds)),
            "per_sample_median_mm": a[:, 1].tolist(),
        })
    return out
