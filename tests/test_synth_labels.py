"""Labels of generated frames agree with the rendered depth and with the face model."""
from __future__ import annotations

import numpy as np
import pytest

from facerecon.facemodel import FaceModel
from facerecon.geometry.rotations import euler_to_matrix, matrix_to_euler, quat_to_matrix
from facerecon.synth.generator import SynthGenerator
from facerecon.synth.labels import gt_face_offsets, gt_vertices
from facerecon.synth.scene import FACE_SEGMENTS


@pytest.fixture(scope="session")
def face_model(ict_archive):
    return FaceModel.load()


@pytest.fixture(scope="session")
def ideal_samples(face_model):
    out = []
    for preset in ("biwi", "truedepth", "facewarehouse"):
        gen = SynthGenerator(preset, "ideal", seed=11, model=face_model)
        out += [(gen, gen.generate(i, keep_render=True)) for i in range(3)]
    return out


def test_landmarks_3d_project_to_landmarks_2d(ideal_samples):
    for _, s in ideal_samples:
        uv = s.intrinsics.project(s.labels["landmarks_3d"])
        assert np.abs(uv - s.labels["landmarks_2d"]).max() < 1e-6


def test_ideal_depth_at_face_pixels_lies_on_the_ground_truth_mesh(ideal_samples, face_model):
    for gen, s in ideal_samples:
        r, sc = s.render, s.scene
        face = np.isin(s.segment, FACE_SEGMENTS) & (r.triangle_id >= 0)
        assert face.sum() > 500
        v, u = np.nonzero(face)
        tid = r.triangle_id[face]
        assert (tid < sc.n_head_triangles).all()
        gt = gt_vertices(face_model, s.labels, "camera")  # recomputed from the stored weights + pose
        corners = gt[gen.assets.model_triangles[tid]]  # (n, 3, 3)
        on_mesh = np.einsum("nk,nkc->nc", r.barycentrics[face].astype(np.float64), corners)
        back = s.intrinsics.unproject(np.stack([u, v], 1), s.ideal_depth[face])
        err = np.linalg.norm(back - on_mesh, axis=1)
        assert err.max() < 0.05, err.max()  # sub-millimetre (float32 depth/weights)
        # the ideal sensor changes nothing (a preset may still cut the background, as Biwi's frames)
        kept = s.depth_mm > 0
        assert np.array_equal(s.depth_mm[kept], s.ideal_depth[kept]) and kept[face].all()


def test_pose_labels_map_head_mesh_to_camera_mesh(ideal_samples, face_model):
    for gen, s in ideal_samples:
        lab = s.labels
        r = quat_to_matrix(lab["quaternion"])
        assert np.allclose(euler_to_matrix(*lab["euler_deg"]), r, atol=1e-9)
        assert np.allclose(matrix_to_euler(r), lab["euler_deg"])
        head = gt_vertices(face_model, lab, "head")
        cam = gt_vertices(face_model, lab, "camera")
        assert np.abs(head @ r.T + lab["translation_mm"] - cam).max() < 1e-9
        # and the rendered head (scene vertices) is that mesh
        rendered = s.scene.vertices[: s.scene.n_head_vertices]
        assert np.abs(rendered - cam[gen.assets.subset]).max() < 0.01
        lm = face_model.landmarks(cam)
        assert np.abs(lm - lab["landmarks_3d"]).max() < 0.01
        off = gt_face_offsets(face_model, lab)
        face_idx = face_model.region_vertices("face")
        assert np.abs(off - (head[face_idx] - face_model.neutral[face_idx])).max() < 1e-3


def test_landmark_visibility_and_image_roll(ideal_samples):
    for gen, s in ideal_samples:
        lab = s.labels
        yaw = lab["scene"]["euler_upright"]["yaw"]
        vis = lab["landmarks_visible"]
        if abs(yaw) < 20:
            assert vis.mean() > 0.85
        if abs(yaw) > 60:
            assert vis.mean() < 0.9  # the far side of the face is hidden
        if gen.preset.name == "truedepth":
            # the scene is rolled about the optical axis by the image roll; the pose includes it
            assert abs(lab["image_roll_deg"]) < 100
    rolls = [abs(s.labels["image_roll_deg"]) for g, s in ideal_samples if g.preset.name == "truedepth"]
    assert any(r > 60 for r in rolls)


def test_same_index_same_frame_and_sensor_keeps_scene(face_model):
    a = SynthGenerator("biwi", "kinect-v1", seed=5, model=face_model)
    b = SynthGenerator("biwi", "ideal", seed=5, model=face_model)
    s1, s2, s3 = a.generate(4), a.generate(4), b.generate(4)
    assert np.array_equal(s1.depth_mm, s2.depth_mm)
    assert np.array_equal(s1.labels["quaternion"], s3.labels["quaternion"])  # scene stream independent of sensor
    assert not np.array_equal(s1.depth_mm, s3.depth_mm)
