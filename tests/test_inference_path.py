"""One inference path: what the pipeline ships (``cpu_inference``, either backend) against the eager network."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from facerecon.nets import DAPoseNet
from facerecon.nets.argan import DAShapeNet
from facerecon.pipeline.weights import cpu_inference, load_weights, network_input, weights_path


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

    assert not hasattr(nets, "optimize_for_cpu") and not hasattr(pose, "_RawPose")
    assert not hasattr(DAPoseNet, "predict")


def test_torch_path_matches_eager_network():
    torch.manual_seed(1)
    net = _randomise_bn(DAPoseNet("fast"))
    data = np.random.default_rng(0).normal(size=(2, 3, 160, 160)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(data))
        out = cpu_inference(net, "torch")(network_input(data))
    torch.testing.assert_close(out[0], ref.quat, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(out[1], ref.trans, rtol=1e-3, atol=1e-4)


def test_shipped_estimator_path_matches_eager_network():
    """The PoseEstimator / Reconstructor runners, built as shipped (configuration's backend),
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
        quat, trans = rec.pose._fast(network_input(data))[:2]
        offsets = rec._fast_shape(network_input(data))
    torch.testing.assert_close(quat, ref_pose.quat, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(trans, ref_pose.trans, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(offsets, ref_shape, rtol=1e-3, atol=2e-4)


def test_unknown_backend_is_a_config_error():
    from facerecon.errors import ConfigError

    with pytest.raises(ConfigError):
        cpu_inference(DAPoseNet("fast"), "tensorrt")
