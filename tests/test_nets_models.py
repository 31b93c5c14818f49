"""Encoder F / DAPoseNet structure and shapes, configuration table, output -> HeadPose."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from facerecon.errors import ConfigError
from facerecon.nets import DAPoseNet, Encoder, net_config, net_config_names, output_to_pose, pose_to_target
from facerecon.geometry.pose import HeadPose
from facerecon.preprocess import make_position_image


def test_config_table():
    assert {"paper", "fast"} <= set(net_config_names())
    paper = net_config("paper")
    assert paper.encoder_widths == (64, 64, 128, 128, 256, 256, 512, 512, 512, 512)
    assert paper.feature_dim == 512 and paper.input_size == 160 and paper.pose_hidden == 256
    assert paper.final_kernel == 5
    with pytest.raises(ConfigError, match="unknown network configuration"):
        net_config("nope")
    with pytest.raises(ConfigError):
        net_config({"name": "bad", "encoder_widths": [8] * 9})


@pytest.mark.parametrize("name", ["paper", "fast"])
def test_encoder_structure_as_seed_002(name):
    cfg = net_config(name)
    enc = Encoder.from_config(cfg)
    convs = [m for m in enc.net if isinstance(m, nn.Conv2d)]
    assert len(convs) == 11
    for i, c in enumerate(convs[:10]):
        k, s = (4, 2) if i % 2 == 0 else (3, 1)
        assert c.kernel_size == (k, k) and c.stride == (s, s) and c.padding == (1, 1)
        assert c.out_channels == cfg.encoder_widths[i]
    assert convs[10].kernel_size == (5, 5) and convs[10].stride == (1, 1) and convs[10].padding == (0, 0)
    assert convs[10].out_channels == 512
    mods = list(enc.net)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in mods) == 10
    assert sum(isinstance(m, nn.LeakyReLU) for m in mods) == 11
    assert isinstance(mods[-1], nn.LeakyReLU) and isinstance(mods[-2], nn.Conv2d)  # no BN after the last conv
    # 160 -> 5x5 after the ten layers -> 1x1 after the 5x5 conv
    x = torch.zeros(2, 3, 160, 160)
    with torch.no_grad():
        pre = nn.Sequential(*mods[:-2]).eval()(x)
        assert pre.shape[-2:] == (5, 5)
        assert enc.eval()(x).shape == (2, 512)


@pytest.mark.parametrize("name", ["paper", "fast"])
def test_pose_net_output_shapes(name):
    torch.manual_seed(0)
    net = DAPoseNet(name)
    x = torch.randn(3, 3, 160, 160)
    out = net(x)  # train mode (batch statistics)
    assert out.quat.shape == (3, 4) and out.trans.shape == (3, 3)
    torch.testing.assert_close(out.quat.norm(dim=1), torch.ones(3))
    out.quat.sum().backward()  # differentiable
    net.eval()
    with torch.no_grad():
        o = net(x)
    # initialised to the identity rotation (frontal) and zero offset
    assert torch.all(o.quat[:, 0] > 0.99) and torch.all(o.trans.abs() < 0.5)
    mlp = [m for m in net.head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in mlp] == [(512, 256), (256, 7)]


def test_output_to_pose_and_target_roundtrip():
    from facerecon.geometry.camera import camera_preset
    from facerecon.io.frame import DepthFrame

    k = camera_preset("kinect-v1")
    frame = DepthFrame(np.full((480, 640), 800.0, np.float32), k, "plane")
    pim = make_position_image(frame, np.array([20.0, -30.0, 850.0]))
    pose = HeadPose.from_euler(30.0, -10.0, 5.0, [35.0, -40.0, 900.0])
    q, t = pose_to_target(pose, pim)
    assert q[0] >= 0
    np.testing.assert_allclose(t, (np.array([35.0, -40.0, 900.0]) - pim.center_mm) / 100.0, atol=1e-6)
    back = output_to_pose(-q, t, pim)  # either quaternion sign gives the same pose
    np.testing.assert_allclose(back.R, pose.R, atol=1e-6)
    np.testing.assert_allclose(back.t_mm, pose.t_mm, atol=1e-4)
    assert back.quaternion_wxyz[0] >= 0
