"""benchmarks/photo_eval.py's ``truedepth_shape`` measure: a photo fit's shape against its frame's own depth."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from facerecon.facemodel import FaceModel
from facerecon.facemodel.model import RENDER_REGIONS
from facerecon.geometry.camera import Intrinsics
from facerecon.geometry.pose import HeadPose
from facerecon.geometry.raster import render_mesh
from facerecon.geometry.rotations import euler_to_matrix
from facerecon.io.frame import DepthFrame

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from photo_eval import depth_scan, depth_shape_errors, face_turn_deg


@pytest.fixture(scope="module")
def model(ict_archive) -> FaceModel:
    return FaceModel.load()


def _frame(model, vertices_head, pose):
    k = Intrinsics(300.0, 300.0, 159.5, 119.5, 320, 240)
    v = pose.apply(vertices_head)
    depth = render_mesh(v, model.region_triangles(*RENDER_REGIONS), k, barycentrics=False).depth
    depth = np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)
    return DepthFrame(depth, k, "synthetic"), k.project(v[model.landmarks_68])


def test_depth_scan_scores_the_true_face_near_zero_and_another_face_worse(model):
    rng = np.random.default_rng(3)
    ident = rng.standard_normal(model.n_identity) * 1.5
    truth = model.vertices(ident, None).astype(np.float64)
    pose = HeadPose(euler_to_matrix(15.0, -5.0, 90.0), [10.0, -5.0, 380.0])  # a phone held sideways, as the TrueDepth frames
    frame, lm2d = _frame(model, truth, pose)
    scan = depth_scan(frame, lm2d)
    assert scan is not None
    points, lms, ids = scan
    assert len(ids) == 7 and 300 < len(points) < 5000
    # the landmarks are the depth under the 2D points: on the true surface, up to the 5 x 5 window's
    # median depth (the inner eye corners sit in a hollow: ~3.4 mm deeper around them)
    assert np.abs(lms - pose.apply(truth[model.landmarks_68[ids]])).max() < 5.0
    tris = model.region_triangles(*RENDER_REGIONS)
    own = depth_shape_errors(scan, pose.apply(truth), model, tris)
    mean = depth_shape_errors(scan, model.neutral.astype(np.float64), model, tris)
    assert own["rigid"]["median_mm"] < 0.05
    assert mean["rigid"]["median_mm"] > 3 * own["rigid"]["median_mm"] + 0.2
    assert face_turn_deg(pose.R, pose.t_mm) == pytest.approx(np.degrees(np.arccos(
        np.cos(np.radians(15)) * np.cos(np.radians(5)))), abs=2.0)


def test_depth_scan_needs_the_nose_tip_depth(model):
    pose = HeadPose(np.eye(3), [0.0, 0.0, 400.0])
    frame, lm2d = _frame(model, model.neutral.astype(np.float64), pose)
    lm2d = lm2d.copy()
    lm2d[30] = [-50.0, -50.0]  # outside the image
    assert depth_scan(frame, lm2d) is None
