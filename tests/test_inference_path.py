"""One inference path: what the pipeline ships (the runtime's networks, either backend) against the eager network."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from facerecon.nets import DAPoseNet
from facerecon.nets.argan import DAShapeNet
from facerecon.pipeline.runtime import module_network, weights_path
from facerecon.pipeline.weights import load_weights


def _randomise_bn(net: nn.Module) -> nn.Module:
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding them is really tested
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_removed_parallel_paths():
    import facerecon.nets as nets
    import facerecon.nets.pose as pose
    import facerecon.pipeline.weights as weights

    assert not hasattr(nets, "optimize_for_cpu") and not hasattr(pose, "_RawPose")
    assert not hasattr(DAPoseNet, "predict")
    # the decode is NumPy (nets.decode) only; the torch twins and the old runner entry point are gone
    assert not hasattr(pose, "flip_averaged") and not hasattr(pose, "output_to_poses")
    assert not hasattr(weights, "cpu_inference") and not hasattr(weights, "cached_onnx")


def test_torch_path_matches_eager_network():
    torch.manual_seed(1)
    net = _randomise_bn(DAPoseNet("fast"))
    data = np.random.default_rng(0).normal(size=(2, 3, 160, 160)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(data))
    network = module_network(net, "torch")
    assert network.backend == "torch" and network.kind == "pose"
    quat, trans = network(data)
    np.testing.assert_allclose(quat, ref.quat.numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(trans, ref.trans.numpy(), rtol=1e-3, atol=1e-4)


def test_shipped_estimator_path_matches_eager_network():
    """The PoseEstimator / Reconstructor networks, loaded as shipped (configuration's backend),
    against the plain eager modules with the shipped weights."""
    from facerecon.pipeline.reconstruct import Reconstructor

    rec = Reconstructor.from_pretrained("fast")
    pose_ref = DAPoseNet("fast")
    load_weights(pose_ref, weights_path("pose", "fast"))
    shape_ref = DAShapeNet("fast", rec.subset.n)
    load_weights(shape_ref, weights_path("shape", "fast"))
    data = np.random.default_rng(1).normal(scale=0.5, size=(2, 3, 160, 160)).astype(np.float32)
    with torch.no_grad():
        ref_pose = pose_ref.eval()(torch.from_numpy(data))
        ref_shape = shape_ref.eval()(torch.from_numpy(data))
    quat, trans = rec.pose.network(data)[:2]
    (offsets,) = rec.shape(data)
    np.testing.assert_allclose(quat, ref_pose.quat.numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(trans, ref_pose.trans.numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(offsets, ref_shape.numpy(), rtol=1e-3, atol=2e-4)


def test_unknown_backend_is_a_config_error():
    from facerecon.errors import ConfigError

    with pytest.raises(ConfigError):
        module_network(DAPoseNet("fast"), "tensorrt")
