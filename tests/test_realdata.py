"""Real-domain data: james scan alignment and renders, mannequin registration, the target set."""
from __future__ import annotations

import os

import numpy as np
import pytest

from facerecon.geometry.camera import camera_preset
from facerecon.errors import NoFaceFoundError
from facerecon.facemodel import FaceModel
from facerecon.facemodel.model import ALIGNMENT_LANDMARKS_9
from facerecon.preprocess import localize_head
from facerecon.realdata import EVAL_POSE_KEY
from facerecon.geometry.pose import HeadPose


@pytest.fixture(scope="module", autouse=True)
def _real_data(real_dir, ict_archive):
    old = os.environ.get("FACERECON_REAL_DATA")
    os.environ["FACERECON_REAL_DATA"] = str(real_dir)
    yield
    if old is None:
        os.environ.pop("FACERECON_REAL_DATA", None)
    else:
        os.environ["FACERECON_REAL_DATA"] = old


@pytest.fixture(scope="module")
def model():
    return FaceModel.load()


@pytest.fixture(scope="module")
def scan(model):
    from facerecon.realdata.scan import load_james_scan

    return load_james_scan(model=model)


def test_james_landmarks_land_on_ict_neutral(scan, model):
    idx = list(ALIGNMENT_LANDMARKS_9)
    ict = model.neutral[model.landmarks_68[idx]].astype(np.float64)
    err = np.linalg.norm(scan.landmarks_68[idx] - ict, axis=1)
    rms = float(np.sqrt(np.mean(err**2)))
    print(f"james 9-landmark RMS: {rms:.2f} mm (Kabsch only {scan.landmark_rms_kabsch_mm:.2f} mm), "
          f"ICP surface RMS {scan.icp_rms_mm:.2f} mm; per landmark {np.round(err, 1)}")  # fmt: skip
    assert rms == pytest.approx(scan.landmark_rms_mm)
    # rigid, no scale: james's face is ~20 % longer than the ICT mean (chin, nasion off most)
    assert rms < 8.0 and scan.landmark_rms_kabsch_mm < 7.0
    eyes_mouth = [0, 1, 2, 3, 6, 7]  # eye corners and mouth corners
    assert err[eyes_mouth].max() < 9.0
    assert scan.icp_rms_mm is not None and scan.icp_rms_mm < 3.0
    # head-frame axes: nose in front (-z) of the eyes, chin below (+y) them, subject's right eye at -x
    lm = scan.landmarks_68
    assert lm[30, 2] < lm[36:48, 2].mean() - 15
    assert lm[8, 1] > lm[36:48, 1].mean() + 80
    assert lm[36, 0] < -30 < 30 < lm[45, 0]
    # the transform is rigid (no scale) and maps the file's vertices to the stored ones
    assert scan.transform.scale == 1.0
    np.testing.assert_allclose(np.linalg.det(scan.transform.R), 1.0, atol=1e-9)


def test_james_render_back_projects_onto_scan(scan):
    from facerecon.realdata.scan import render_scan

    k = camera_preset("kinect-v1")
    pose = HeadPose.from_euler(30.0, -10.0, 5.0, [40.0, -20.0, 750.0])
    r, t = pose.R, pose.t_mm
    fr = render_scan(scan, pose, k, "ideal", np.random.default_rng(0), background="none", close_back=False)
    assert fr.meta[EVAL_POSE_KEY] is pose
    pts = fr.points()
    assert len(pts) > 5000
    head = (pts - t) @ r  # camera -> head frame
    d = scan.surface().query(head).distances
    print(f"ideal james render: {len(d)} px, back-projection to the scan: median {np.median(d):.1e} mm, max {d.max():.1e} mm")
    assert d.max() < 0.5 and np.median(d) < 0.05

    # with the wall and body proxy: the scan's pixels still lie on it, the rest is proxy/background
    fr2 = render_scan(scan, pose, k, "ideal", np.random.default_rng(0), background="wall", wall_gap_mm=800.0)
    seg = fr2.meta["segment_for_eval_only"]
    assert (seg == 9).mean() > 0.5 and (seg == 7).any() and (seg == 1).any()
    loc = localize_head(fr2)
    assert np.linalg.norm(loc.center_mm - t) < 80.0

    # a real sensor model changes the depth but keeps the pose
    fr3 = render_scan(scan, pose, k, "kinect-v1", np.random.default_rng(0))
    assert not np.array_equal(fr3.depth_mm, fr2.depth_mm) and fr3.meta[EVAL_POSE_KEY] is pose


@pytest.fixture(scope="module")
def mannequin_ref(model):
    from facerecon.realdata.mannequin_poses import mannequin_reference

    return mannequin_reference(model=model)


def test_mannequin_registration_puts_nose_on_the_nose(mannequin_ref, model):
    from facerecon.realdata.mannequin import load_mannequin_cloud

    a = mannequin_ref.alignment
    print(f"mannequin alignment ({a.n_starts} starts, {a.seconds:.1f} s, cached={a.cached}): {a.residuals}")
    assert a.residuals["inlier_fraction"] > 0.6 and a.residuals["inlier_rms_mm"] < 3.5
    cloud = a.cloud_to_head(load_mannequin_cloud()["points"])
    nose = model.neutral[model.landmarks_68[30]].astype(np.float64)
    # the cloud's most protruding facial point: farthest in front of the plane fitted to the
    # cloud within 50 mm of the ICT nose tip
    near = cloud[np.linalg.norm(cloud - nose, axis=1) < 50.0]
    c = near.mean(axis=0)
    normal = np.linalg.svd(near - c)[2][2]
    normal = normal if normal[2] < 0 else -normal  # towards the front (head -z)
    tip = near[np.argmax((near - c) @ normal)]
    gap = float(np.min(np.linalg.norm(cloud - nose, axis=1)))
    print(f"ICT nose tip {nose.round(1)}, cloud's most protruding facial point {tip.round(1)} "
          f"({np.linalg.norm(tip - nose):.1f} mm apart), ICT nose tip to the cloud {gap:.1f} mm")  # fmt: skip
    # Not a gross failure (upside down, on a cheek or the back of the head): the tip is on the
    # midline, near the ICT nose tip, and the face plane faces head -z.
    assert abs(tip[0]) < 6.0
    assert np.linalg.norm(tip - nose) < 12.0 and gap < 8.0
    assert np.degrees(np.arccos(-normal[2])) < 15.0
    # the symmetry stage found the mannequin's mirror plane and kept the fit as good as the plain one
    assert a.symmetry["applied"] and a.symmetry["residuals"]["inlier_fraction"] > 0.9
    assert a.residuals["robust_rms_mm"] <= a.unconstrained["residuals"]["robust_rms_mm"] + 1e-6


def test_truedepth_sweep_reference_poses(mannequin_ref):
    ref = mannequin_ref
    rel = ref.relative_angle_deg
    print("relative angle to frame 0 (deg):", np.round(rel, 1))
    imu = ref.imu_relative_angle_deg
    print("IMU relative angle (deg):       ", None if imu is None else np.round(imu, 1))
    assert len(ref.files) == 30 and rel[0] == pytest.approx(0.0, abs=1e-3)
    assert np.all(np.diff(rel) > -1.0)  # (nearly) monotonic
    assert 95.0 < rel[-1] < 125.0  # "about 110 degrees in all"
    assert all(r["inlier_fraction"] > 0.9 and r["inlier_rms_mm"] < 2.0 for r in ref.residuals)
    assert abs(ref.image_roll_deg) == pytest.approx(90.0)  # phone held sideways
    # upright yaw sweeps ear to ear through frontal
    yaw = ref.upright_euler_deg[:, 0]
    assert yaw.min() < -45 and yaw.max() > 30
    if ref.imu_relative_angle_deg is not None:  # independent check by the phone's attitude
        assert np.max(np.abs(ref.imu_relative_angle_deg - rel)) < 5.0


def test_mannequin_splat_has_known_pose(mannequin_ref):
    from facerecon.realdata.mannequin_splat import splat_mannequin

    k = camera_preset("truedepth-320x240")
    pose = mannequin_ref.pose(10)
    fr = splat_mannequin(pose, k, "ideal")
    real = mannequin_ref.files[10]
    assert fr.meta[EVAL_POSE_KEY] is pose and pose.R is not mannequin_ref.pose(10).R
    # the splat at the reference pose overlaps the real frame's head pixels
    from facerecon.io import read_depth
    from facerecon.realdata.mannequin import frame_files

    obs = read_depth([f for f in frame_files() if f.name == real][0]).depth_mm
    both = (fr.depth_mm > 0) & (obs > 0) & (obs < 600)
    diff = np.abs(fr.depth_mm[both] - obs[both])
    print(f"splat vs real frame 10: {both.sum()} px, median |dz| {np.median(diff):.2f} mm")
    assert both.sum() > 5000 and np.median(diff) < 3.0


def test_real_domain_frames_deterministic_and_localisable():
    from facerecon.realdata.target import james_eval_frames, real_domain_frames, strip_eval_labels

    a = real_domain_frames(8, seed=3)
    b = real_domain_frames(8, seed=3, include_real=False)
    assert len(a) == 31 + 8 and len(b) == 8
    for fa, fb in zip(a[31:], b):
        np.testing.assert_array_equal(fa.depth_mm, fb.depth_mm)
        np.testing.assert_array_equal(fa.meta[EVAL_POSE_KEY].R, fb.meta[EVAL_POSE_KEY].R)
    c = real_domain_frames(2, seed=4, include_real=False)
    assert not np.array_equal(c[0].depth_mm, b[0].depth_mm)
    ev = james_eval_frames(2, seed=3)
    assert not np.allclose(ev[0].meta[EVAL_POSE_KEY].R, b[0].meta[EVAL_POSE_KEY].R)
    assert {f.meta["domain"] for f in a} == {"real-truedepth", "real-kinect", "real-scan", "real-splat"}
    assert {f.meta.get("preset") for f in b} == {"biwi", "truedepth"}
    assert sum(EVAL_POSE_KEY in f.meta for f in a) == 30 + 8  # person.pcd has no pose
    clean = strip_eval_labels(a)
    assert not any(k.endswith("_for_eval_only") for f in clean for k in f.meta)

    found = []
    for f in a + ev:
        try:
            loc = localize_head(f)
        except NoFaceFoundError:
            found.append(False)
            continue
        pose = f.meta.get(EVAL_POSE_KEY)
        found.append(pose is None or np.linalg.norm(loc.center_mm - pose.t_mm) < 120.0)
    rate = float(np.mean(found))
    print(f"localiser found the head in {sum(found)}/{len(found)} real-domain frames ({100 * rate:.0f} %)")
    assert rate >= 0.8
