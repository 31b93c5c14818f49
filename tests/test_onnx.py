"""ONNX export of both networks and the onnxruntime backend, against torch (atol 1e-4)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from facerecon.nets import DAPoseNet  # noqa: E402
from facerecon.nets.argan import DAShapeNet  # noqa: E402
from facerecon.pipeline.runtime import OnnxRunner, module_network, onnx_dir  # noqa: E402


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FACERECON_HOME", str(tmp_path))
    return tmp_path


def test_pose_and_shape_onnx_match_torch(home):
    torch.manual_seed(3)
    pose = DAPoseNet("fast").eval()
    shape = DAShapeNet("fast", 64).eval()
    data = np.random.default_rng(2).normal(scale=0.5, size=(2, 3, 160, 160)).astype(np.float32)
    with torch.no_grad():
        ref_pose = pose(torch.from_numpy(data))
        ref_shape = shape(torch.from_numpy(data))
    ort_pose = module_network(pose, "onnxruntime")
    ort_shape = module_network(shape, "onnxruntime")
    assert isinstance(ort_pose.runner, OnnxRunner) and isinstance(ort_shape.runner, OnnxRunner)
    quat, trans = ort_pose(data)
    np.testing.assert_allclose(quat, ref_pose.quat.numpy(), atol=1e-4)
    np.testing.assert_allclose(trans, ref_pose.trans.numpy(), atol=1e-4)
    np.testing.assert_allclose(ort_shape(data)[0], ref_shape.numpy(), atol=1e-4)
    # batch of one (the pose path without the flip) through the dynamic batch axis
    q1, _ = ort_pose(data[:1])
    np.testing.assert_allclose(q1, ref_pose.quat[:1].numpy(), atol=1e-4)


def test_module_export_is_cached_and_keyed_by_weights(home):
    net = DAPoseNet("fast").eval()
    path = module_network(net, "onnxruntime").runner.path
    assert path.parent == onnx_dir() == home / "onnx" and path.exists()
    mtime = path.stat().st_mtime_ns
    assert module_network(net, "onnxruntime").runner.path == path and path.stat().st_mtime_ns == mtime  # not exported again
    with torch.no_grad():
        net.head[-1].bias.add_(0.1)
    assert module_network(net, "onnxruntime").runner.path != path  # other weights, other file


def test_cli_export_onnx(tmp_path):
    from facerecon.cli import main

    out = tmp_path / "onnx-out"
    assert main(["export", "onnx", "-o", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["pose_fast.onnx", "shape_fast.onnx"], names
    import onnx

    for p in out.iterdir():
        onnx.checker.check_model(onnx.load(str(p)))
