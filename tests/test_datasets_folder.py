"""Folder dataset format: write -> read round trip, validation, partial samples."""
from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from facerecon.geometry.camera import Intrinsics
from facerecon.datasets.folder import FolderDataset, FolderWriter, HeadPose
from facerecon.errors import InputFileError
from facerecon.io.frame import DepthFrame
from facerecon.geometry.rotations import euler_to_matrix

K = Intrinsics(300.0, 300.0, 31.5, 23.5, 64, 48)


def _depth(rng, frac=True):
    d = rng.uniform(500, 1500, size=(48, 64))
    d[rng.random((48, 64)) < 0.3] = 0
    return d if frac else np.rint(d)


def test_round_trip_png_and_npz(tmp_path):
    rng = np.random.default_rng(0)
    pose = HeadPose.from_euler(25.0, -10.0, 3.0, [10.0, -5.0, 900.0])
    lm = rng.normal(size=(68, 3)) * 30 + [0, 0, 900]
    sphere = trimesh.creation.icosphere(subdivisions=1, radius=80.0)
    d_int, d_frac = _depth(rng, frac=False), _depth(rng)
    k2 = Intrinsics(310.0, 311.0, 32.0, 24.0, 64, 48)
    with FolderWriter(tmp_path / "ds", intrinsics=K, description="unit test") as w:
        w.write("a0", d_int, pose=pose, landmarks_mm=lm, mesh=(sphere.vertices, sphere.faces), extra={"expr": [0.1, 0.2]})
        w.write("b1", DepthFrame(d_frac.astype(np.float32), k2))  # unlabelled, own intrinsics
    with FolderWriter(tmp_path / "ds", exist_ok=True, intrinsics=K, depth_format="npz") as w:
        w.write("c2", d_frac, pose=(pose.R, pose.t_mm))

    ds = FolderDataset(tmp_path / "ds")
    assert ds.names == ["a0", "b1", "c2"] and len(ds) == 3
    assert ds.intrinsics == K and ds.description == ""  # second writer rewrote the manifest
    a = ds["a0"]
    np.testing.assert_array_equal(a.frame.depth_mm, d_int.astype(np.float32))
    assert a.frame.intrinsics == K
    np.testing.assert_allclose(a.pose.R, pose.R, atol=1e-12)
    np.testing.assert_allclose(a.pose.t_mm, pose.t_mm)
    np.testing.assert_allclose(a.pose.euler_deg, [25.0, -10.0, 3.0], atol=1e-9)
    np.testing.assert_allclose(a.landmarks_mm, lm, atol=1e-6)
    assert a.extra == {"expr": [0.1, 0.2]}
    m = trimesh.load(a.mesh_path, process=False)
    np.testing.assert_allclose(m.vertices, sphere.vertices, atol=1e-5)
    assert a.frame.meta["pose"][1].tolist() == pose.t_mm.tolist()

    b = ds[1]
    assert b.pose is None and b.mesh_path is None and b.landmarks_mm is None
    assert b.frame.intrinsics == k2
    np.testing.assert_array_equal(b.frame.depth_mm, np.rint(d_frac.astype(np.float32)))  # PNG = integer mm

    c = ds["c2"]
    np.testing.assert_allclose(c.frame.depth_mm, d_frac.astype(np.float32))  # npz keeps sub-mm
    assert [s.name for s in ds] == ds.names


def test_pose_json_variants_and_validation(tmp_path):
    rng = np.random.default_rng(1)
    with FolderWriter(tmp_path, intrinsics=K) as w:
        w.write("s", _depth(rng))
    # A user-written pose with only Euler angles (and a shared mesh reference).
    (tmp_path / "meshes").mkdir()
    trimesh.creation.box().export(tmp_path / "meshes" / "head.obj")
    doc = {"euler_deg": {"yaw": 10, "pitch": 20, "roll": -30}, "t_mm": [0, 0, 700], "mesh": "meshes/head.obj"}
    (tmp_path / "s.pose.json").write_text(json.dumps(doc))
    s = FolderDataset(tmp_path)["s"]
    np.testing.assert_allclose(s.pose.R, euler_to_matrix(10, 20, -30), atol=1e-12)
    assert s.mesh_path.name == "head.obj"
    # Inconsistent R and Euler angles are refused with the file named.
    doc["R"] = np.eye(3).tolist()
    (tmp_path / "s.pose.json").write_text(json.dumps(doc))
    with pytest.raises(InputFileError, match="s.pose.json.*disagrees"):
        FolderDataset(tmp_path)["s"]
    # Not a rotation.
    (tmp_path / "s.pose.json").write_text(json.dumps({"R": (2 * np.eye(3)).tolist(), "t_mm": [0, 0, 1]}))
    with pytest.raises(InputFileError, match="not a rotation"):
        FolderDataset(tmp_path)["s"]
    # Mesh reference escaping the dataset folder.
    (tmp_path / "s.pose.json").write_text(json.dumps({"quaternion_wxyz": [1, 0, 0, 0], "t_mm": [0, 0, 1], "mesh": "../x.obj"}))
    with pytest.raises(InputFileError, match="inside"):
        FolderDataset(tmp_path)["s"]


def test_partial_samples_and_bad_folders(tmp_path):
    with pytest.raises(InputFileError, match="manifest.json"):
        FolderDataset(tmp_path)
    rng = np.random.default_rng(2)
    with FolderWriter(tmp_path, intrinsics=K) as w:
        w.write("ok", _depth(rng))
    # A pose without its depth file (an interrupted export) is not a sample.
    (tmp_path / "orphan.pose.json").write_text(json.dumps({"R": np.eye(3).tolist(), "t_mm": [0, 0, 1]}))
    assert FolderDataset(tmp_path).names == ["ok"]
    with pytest.raises(FileExistsError):
        FolderWriter(tmp_path, intrinsics=K)
    with FolderWriter(tmp_path, intrinsics=K, exist_ok=True) as w:
        with pytest.raises(ValueError, match="sample name"):
            w.write("bad.name", _depth(rng))
        with pytest.raises(ValueError, match="intrinsics"):
            w.write("x", np.zeros((10, 10)))
        with pytest.raises(ValueError, match="16-bit"):
            w.write("x", np.full((48, 64), 70000.0))
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(InputFileError, match="not a facerecon-depth-folder"):
        FolderDataset(tmp_path)
    # No temporary files are left behind by the atomic writes.
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]
