"""The shipped networks end to end: PoseEstimator, Reconstructor, and the pose/reconstruct CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facerecon.geometry.camera import camera_preset
from facerecon.cli import main
from facerecon.export.pose_json import validate
from facerecon.io.frame import DepthFrame
from facerecon.geometry.rotations import geodesic_distance_deg


@pytest.fixture(scope="module")
def reconstructor():
    from facerecon.pipeline import Reconstructor

    return Reconstructor.from_pretrained("fast")


@pytest.fixture(scope="module")
def ideal_frames():
    from facerecon.synth.generator import SynthGenerator

    gen = SynthGenerator("facewarehouse", "ideal", seed=4242)
    return [gen.generate(i, keep_render=True) for i in range(6)]


def test_shipped_weights_load_with_their_record():
    from facerecon.nets.pose import DAPoseNet
    from facerecon.pipeline.weights import load_weights, weights_path

    for kind in ("pose", "shape"):
        path = weights_path(kind, "fast")
        assert path.stat().st_size < 30e6
    meta = load_weights(DAPoseNet("fast"), weights_path("pose", "fast"))
    assert meta["net"] == "fast" and meta["steps"] > 0 and "facerecon train pose" in meta["command"]


def _found(reconstructor, frames):
    """Frames where the localiser finds the head (it misses some: a known, reported limitation)."""
    from facerecon.errors import NoFaceFoundError

    out = []
    for s in frames:
        try:
            out.append((s, reconstructor.pose.estimate(DepthFrame(s.depth_mm, s.intrinsics, "synthetic"))))
        except NoFaceFoundError:
            pass
    assert len(out) >= len(frames) // 2, f"head found in only {len(out)} of {len(frames)} frames"
    return out


def test_pose_on_ideal_synthetic_frames(reconstructor, ideal_frames):
    from facerecon.geometry.rotations import quat_to_matrix

    errs = []
    for s, res in _found(reconstructor, ideal_frames):
        r_true = quat_to_matrix(np.asarray(s.labels["quaternion"]))
        errs.append(geodesic_distance_deg(res.pose.R, r_true))
        assert np.linalg.norm(res.pose.t_mm - s.labels["translation_mm"]) < 60
    assert np.median(errs) < 10.0, errs


def test_reconstructed_mesh_lies_on_the_depth_points(reconstructor, ideal_frames):
    from scipy.spatial import cKDTree

    model = reconstructor.model
    face = model.region_vertices("narrow_face")
    medians, refined, shaped = [], [], []
    for s, _ in _found(reconstructor, ideal_frames):
        frame = DepthFrame(s.depth_mm, s.intrinsics, "synthetic")
        pts = frame.points()[s.face_mask[frame.valid]]
        for refine, refine_shape, out in ((0, 0, medians), (10, 0, refined), (10, 8, shaped)):
            rec = reconstructor.reconstruct(frame, refine=refine, refine_shape=refine_shape)
            assert rec.vertices_camera.shape == (model.n_vertices, 3)
            np.testing.assert_allclose(rec.vertices_camera, rec.pose.apply(rec.vertices_head), atol=1e-6)
            d, _ = cKDTree(rec.vertices_camera[face]).query(pts)  # point to nearest vertex (~1 mm spacing)
            out.append(np.median(d))
    # networks alone (measured ~4-6 mm: pose error dominates) and with rigid ICP refinement
    assert np.median(medians) < 8.0, medians
    assert np.median(refined) < 3.0 and np.median(refined) < np.median(medians), (refined, medians)
    # ... and with the joint (identity + expression) stage on top
    assert np.median(shaped) < np.median(refined), (shaped, refined)


def test_cli_reconstruct_real_frame_and_batch_failures(tmp_path, real_dir, capsys):
    good = real_dir / "truedepth-mannequin" / "DepthFrames" / "frame-045.ply"
    bad = tmp_path / "broken.pcd"
    bad.write_bytes(b"# .PCD v0.7\nFIELDS x y z\nSIZE 4 4\n")
    wall = tmp_path / "wall.npz"
    k = camera_preset("kinect-v1")
    np.savez(wall, depth=np.full((k.height, k.width), 1500.0, np.float32), intrinsics=np.array([k.fx, k.fy, k.cx, k.cy]), unit="mm")
    rc = main(["reconstruct", str(good), str(bad), str(wall), "-o", str(tmp_path / "out"), "--format", "obj,ply",
               "--outputs", "all"])
    err = capsys.readouterr().err
    assert rc == 4  # partial: one face, two failed (docs/reliability.md)
    assert "broken.pcd" in err and "wall.npz" in err and "2 of 3 frames failed" in err
    d = tmp_path / "out" / "frame-045"
    for name in ("face.obj", "face.ply", "face_head.obj", "pose.json", "landmarks.json", "overlay.png"):
        assert (d / name).stat().st_size > 0, name
    pose = json.loads((d / "pose.json").read_text())
    assert set(pose["euler_deg"]) == {"yaw", "pitch", "roll"} and len(pose["quaternion_wxyz"]) == 4
    obj = (d / "face.obj").read_text().splitlines()
    assert sum(1 for ln in obj if ln.startswith("v ")) == 26_719 and any(ln.startswith("vt ") for ln in obj)
    assert not list((tmp_path / "out").rglob("*.part*"))  # nothing half-written


def test_cli_pose_json_and_all_failed_exit_code(tmp_path, real_dir, capsys):
    frame = real_dir / "kinect-pcl" / "person.pcd"
    rc = main(["pose", str(frame), "-o", str(tmp_path), "--overlay", str(tmp_path / "axes.png")])
    assert rc == 0
    data = json.loads((tmp_path / "person.pose.json").read_text())
    assert 400 < data["translation_mm"][2] < 1500
    assert (tmp_path / "axes.png").stat().st_size > 0
    rc = main(["pose", str(tmp_path / "missing.pcd")])
    assert rc == 1
    assert "missing.pcd" in capsys.readouterr().err
    # --refine: the rigidly fitted pose, close to the network's on this frame, timed per stage
    assert main(["pose", str(frame), "-o", str(tmp_path / "r"), "--refine", "5"]) == 0
    refined = json.loads((tmp_path / "r" / "person.pose.json").read_text())
    validate(refined)
    assert refined["depth"]["path"]["refine_iterations"] == 5 and "identity" in refined["timings_ms"]
    assert np.linalg.norm(np.subtract(refined["translation_mm"], data["translation_mm"])) < 40
    assert refined["quaternion_wxyz"] != data["quaternion_wxyz"]


def test_fitting_baseline_lies_on_the_points_and_recovers_pose(reconstructor, ideal_frames):
    """The classical baseline (--method fit) from the localiser's frontal start alone."""
    from scipy.spatial import cKDTree

    from facerecon.pipeline import FittingReconstructor
    from facerecon.geometry.rotations import quat_to_matrix

    fitter = FittingReconstructor()
    face = fitter.model.region_vertices("narrow_face")
    dists, angles = [], []
    for s, _ in _found(reconstructor, ideal_frames)[:3]:
        frame = DepthFrame(s.depth_mm, s.intrinsics, "synthetic")
        rec = fitter.reconstruct(frame)
        assert rec.vertices_camera.shape == (fitter.model.n_vertices, 3) and set(rec.timings_ms) >= {"fit", "total"}
        pts = frame.points()[s.face_mask[frame.valid]]
        dists.append(np.median(cKDTree(rec.vertices_camera[face]).query(pts)[0]))
        angles.append(geodesic_distance_deg(rec.pose.R, quat_to_matrix(np.asarray(s.labels["quaternion"]))))
    assert np.median(dists) < 2.5, dists  # measured 1.8-2.9 (networks alone: 4-6)
    assert np.median(angles) < 8.0, angles


def test_cli_reconstruct_method_fit(tmp_path, real_dir, capsys):
    good = real_dir / "truedepth-mannequin" / "DepthFrames" / "frame-045.ply"
    rc = main(["reconstruct", str(good), "-o", str(tmp_path), "--method", "fit", "--no-overlay"])
    pose = json.loads((tmp_path / "frame-045" / "pose.json").read_text())
    assert pose["method"] == "fit" and "fit" in pose["timings_ms"]
    # the baseline's frontal start misses this sideways frame (trimmed residual ~13 mm): the same
    # check as the networks' refuses it ("no face", exit code 3) instead of returning it confidently
    assert (rc, pose["face"]) in ((0, True), (3, False)) and (pose["face"] or pose["depth"]["check"]["trimmed_residual_mm"] > 5.0)
    assert main(["reconstruct", str(good), "-o", str(tmp_path), "--method", "magic"]) == 2  # usage
    assert "--method" in capsys.readouterr().err


def test_inference_thread_limit_is_scoped():
    import torch

    from facerecon.pipeline.weights import torch_threads

    before = torch.get_num_threads()
    seen = []
    with torch_threads(1):
        seen.append(torch.get_num_threads())
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("restored even on errors")
    assert seen == [1] and torch.get_num_threads() == before


def test_cli_set_reaches_the_pipeline_stages(tmp_path, real_dir, capsys):
    """`--set section.key=value` (configs/check.toml) reaches the stages of `pose` and `reconstruct`;
    a misspelt key fails before any model loads, naming the nearest key as --set takes it."""
    frame = real_dir / "kinect-pcl" / "person.pcd"
    assert main(["pose", str(frame), "-o", str(tmp_path / "a"), "--set", "refine.iterations=2", "--set", "shape.iterations=0"]) == 0
    doc = json.loads((tmp_path / "a" / "person.pose.json").read_text())
    validate(doc)
    assert doc["depth"]["path"]["refine_iterations"] == 2 and doc["depth"]["path"]["shape_iterations"] == 0
    for cmd in ("pose", "reconstruct"):
        args = [cmd, str(frame), "--set", "refine.iteration=3"] + (["-o", str(tmp_path / "b")] if cmd == "reconstruct" else [])
        assert main(args) != 0
        assert "did you mean 'refine.iterations'" in capsys.readouterr().err
        assert not (tmp_path / "b").exists()


def readme_flow(tmp_path, inputs, name, capsys):
    """The README's quick start, verbatim: reconstruct (default options) -> view -> animate; returns the folder."""
    import urllib.request

    from facerecon.viewer import start

    out = tmp_path / "out"
    rc = main(["reconstruct", str(inputs), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "INFO: Created TensorFlow Lite" not in err
    d = out / name
    names = {p.name for p in d.iterdir()}
    assert {"face.obj", "face.glb", "pose.json", "landmarks.json", "overlay.png"} <= names, names
    assert not any(n.startswith("face_head") for n in names), names  # head-frame meshes: --outputs all
    srv, _ = start(d)  # what `facerecon view DIR` serves (without opening a browser)
    try:
        with urllib.request.urlopen(srv.url + "manifest.json", timeout=10) as r:
            manifest = json.loads(r.read())
        assert manifest["glbs"][0] == "files/face.glb" and manifest["pose"] == "files/pose.json", manifest
        with urllib.request.urlopen(srv.url + "files/face.glb", timeout=10) as r:
            assert r.read(4) == b"glTF"
    finally:
        srv.shutdown()
        srv.server_close()
    csv = Path(__file__).resolve().parent / "data" / "arkit_performance.csv"
    rc = main(["animate", str(d / "face.glb"), "--arkit-csv", str(csv), "-o", str(tmp_path / "anim.glb")])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "anim.glb").stat().st_size > (d / "face.glb").stat().st_size
    return d


def test_readme_quick_start_on_a_real_depth_frame(tmp_path, real_dir, capsys):
    """Issue 25: `reconstruct frame -o out` then `view out/frame` and `animate out/frame/face.glb`
    failed (no GLB by default); --outputs minimal and all on the same frame."""
    frame = real_dir / "truedepth-mannequin" / "DepthFrames" / "frame-045.ply"
    readme_flow(tmp_path, frame, "frame-045", capsys)
    assert main(["reconstruct", str(frame), "-o", str(tmp_path / "min"), "--outputs", "minimal"]) == 0
    assert {p.name for p in (tmp_path / "min" / "frame-045").iterdir()} == {"face.glb", "pose.json"}
    assert main(["reconstruct", str(frame), "-o", str(tmp_path / "all"), "--outputs", "all", "--format", "obj", "--no-overlay"]) == 0
    assert {p.name for p in (tmp_path / "all" / "frame-045").iterdir()} == {"face.obj", "face_head.obj", "face_model.obj", "pose.json",
                                                                           "landmarks.json", "face.mtl", "face_displacement.png",
                                                                           "face_normal.png"}  # + the detail maps
    doc = json.loads((tmp_path / "min" / "frame-045" / "pose.json").read_text())
    assert "overlay" not in doc
