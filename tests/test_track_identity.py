"""``track``'s identity face (issue 20 item 4): the out-of-span correction solved once against the head
surface fused over the frames.  A short synthetic sweep of a face with a bump the model does not have
(the project's rasteriser and Kinect v1 sensor model): identity.obj/.ply/.glb are written, the bump is
recovered from the fused surface, ``detail`` off writes the model face, and the pose is the same."""
from __future__ import annotations

import json

import numpy as np
import pytest
from gltf_helpers import validate

from facerecon.facemodel import RENDER_REGIONS, vertex_normals
from facerecon.geometry.camera import camera_preset
from facerecon.geometry.pose import HeadPose
from facerecon.geometry.raster import render_mesh
from facerecon.geometry.rotations import euler_to_matrix
from facerecon.io.frame import DepthFrame
from facerecon.io.mesh import read_mesh
from facerecon.synth.sensors import apply_sensor, load_sensor

BUMP_MM, BUMP_SIGMA_MM = 3.5, 12.0
YAWS = (-24.0, -16.0, -8.0, 0.0, 8.0, 16.0, 24.0, 16.0, 8.0, 0.0)


def _bumped_face(model) -> tuple[np.ndarray, np.ndarray]:
    """The ICT mean face with a Gaussian bump on the left cheek (outside the model's span), and the bump (V,)."""
    v = model.neutral.astype(np.float64)
    lm = v[model.landmarks_68]
    face = model.region_vertices("narrow_face")
    centre = face[np.argmin(np.linalg.norm(v[face] - 0.5 * (lm[2] + lm[30]), axis=1))]
    h = BUMP_MM * np.exp(-np.sum((v - v[centre]) ** 2, axis=1) / (2 * BUMP_SIGMA_MM**2))
    h[~model.region_mask("face")] = 0.0
    return v + h[:, None] * vertex_normals(v, model.triangles), h


@pytest.fixture(scope="module")
def sweep(ict_archive):
    """The bumped face turned from one side to the other at 700 mm (Kinect v1), tracked once."""
    from facerecon.tracking import Tracker

    tracker = Tracker.from_pretrained("fast")
    model = tracker.model
    v_true, h = _bumped_face(model)
    k = camera_preset("kinect-v1")
    tris = model.region_triangles(*RENDER_REGIONS)
    tracks = []
    for i, yaw in enumerate(YAWS):
        pose = HeadPose(euler_to_matrix(yaw, 5.0, 0.0), np.array([0.0, 0.0, 700.0]))
        depth = render_mesh(pose.apply(v_true), tris, k, barycentrics=False).depth
        depth, _ = apply_sensor(load_sensor("kinect-v1"), depth, k, np.random.default_rng(i))
        tracks.append(tracker.update(DepthFrame(depth, k, f"bumped #{i}"), time_s=i / 30.0))
    return tracker, tracks, v_true, h


def test_identity_face_recovers_the_bump_from_the_fused_surface(sweep):
    from facerecon.metrics.surface import SurfaceIndex

    tracker, tracks, v_true, h = sweep
    assert all(t.tracked for t in tracks), [t.message for t in tracks]
    face = tracker.identity_face()
    assert face.detail == "on" and face.frames_fused >= 5 and face.correction.seen_fraction > 0.3
    model = tracker.model
    truth = SurfaceIndex(v_true, model.triangles)
    bump = h > 0.5 * BUMP_MM

    far = np.zeros(len(h), bool)
    far[model.region_vertices("narrow_face")] = True
    far &= h < 0.05 * BUMP_MM

    def err(v, rows):  # the tracked head frame is the true one up to the pose error: no registration needed here
        return float(np.median(truth.query(v[rows]).distances))

    e_model, e_corr = err(face.model_vertices_head, bump), err(face.vertices_head, bump)
    assert e_model > 1.5, e_model  # the model face has no bump ...
    assert e_corr < 0.5 * e_model, (e_corr, e_model)  # ... the fused surface puts most of it back
    # and invents none elsewhere (the rest of the face is in the model's span)
    assert err(face.vertices_head, far) < err(face.model_vertices_head, far) + 0.3
    off = np.linalg.norm(face.vertices_head - face.model_vertices_head, axis=1)
    assert np.all(off[~model.region_mask("face")] == 0.0)  # only the face region moves


def test_identity_outputs_and_detail_off(sweep, tmp_path):
    from facerecon.export.maps import read_displacement_png
    from facerecon.export.track import write_track_outputs

    tracker, tracks, _, _ = sweep
    paths = write_track_outputs(tmp_path / "on", tracks, tracker, sequence="bumped", plot=False)
    face = tracker.identity_face()
    for key in ("identity", "identity_ply", "identity_glb", "identity_model"):
        assert paths[key].is_file(), key
    written = read_mesh(paths["identity"]).vertices
    np.testing.assert_allclose(written, face.vertices_head, atol=1e-3)  # the corrected face
    assert np.abs(written - tracker.identity_vertices()).max() > 1.0
    np.testing.assert_allclose(read_mesh(paths["identity_model"]).vertices, tracker.identity_vertices(), atol=1e-3)
    doc = json.loads(paths["json"].read_text())
    assert doc["identity_face"]["detail"] == "on" and doc["identity_face"]["correction"]["points"] > 1000
    report = validate(paths["identity_glb"])[0]
    assert report["errors"] == 0 and report["warnings"] == 0, report["messages"]
    # the detail maps of the fused surface over the corrected face (a virtual front-view depth frame)
    dm = doc["identity_face"]["detail_map"]
    assert dm["written"], dm
    assert dm["coverage"] > 0.2 and dm["rms_mm"] < 1.5, dm
    for key in ("identity_displacement", "identity_normal"):
        assert paths[key].is_file(), key
    disp = read_displacement_png(paths["identity_displacement"], dm["scale_mm"], dm["offset_mm"])
    assert disp.shape == (dm["size"], dm["size"]) and np.abs(disp).max() > 0.0
    assert b"normalTexture" in paths["identity_glb"].read_bytes()

    off = write_track_outputs(tmp_path / "off", tracks, tracker, sequence="bumped", plot=False, detail=False)
    np.testing.assert_allclose(read_mesh(off["identity"]).vertices, tracker.identity_vertices(), atol=1e-3)
    assert "identity_model" not in off and not (tmp_path / "off" / "identity_model.obj").exists()
    assert json.loads(off["json"].read_text())["identity_face"]["detail"] == "off"
    assert "detail_map" not in json.loads(off["json"].read_text())["identity_face"]
    assert not list((tmp_path / "off").glob("identity_*.png"))
    assert b"normalTexture" not in off["identity_glb"].read_bytes()
    # the per-frame outputs are the same whatever the identity face is
    assert (tmp_path / "on" / "track.csv").read_text() == (tmp_path / "off" / "track.csv").read_text()


def test_too_little_fused_keeps_the_model_face_and_says_why(sweep):
    from facerecon.tracking import Tracker

    fresh = Tracker(sweep[0].rec)  # nothing tracked yet: nothing fused
    face = fresh.identity_face()
    assert face.detail.startswith("off: 0 fused points") and face.correction is None
    np.testing.assert_array_equal(face.vertices_head, fresh.identity_vertices())
