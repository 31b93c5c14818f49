"""AR-GAN training of DAShapeNet: losses, update order, and that a short run learns.

The training tests build a tiny network (64 px input, narrow encoder widths, 32-d embedding; the
default 1024-wide offset MLPs): the update order, the loss terms and the checkpoint round trip do
not depend on the size, and a step costs a few hundredths of the ``fast`` network's.  One thread:
these small tensors gain nothing from a second, and lose much to it on a busy machine.
`test_shapes_and_ranges` keeps the ``fast`` configuration (one forward pass).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facerecon.nets.argan import OFFSET_UNIT_MM, POSITION_RANGE, DAShapeNet, Discriminator, Generator, domain_code
from facerecon.nets.configs import net_config
from facerecon.train.shape import ARGAN, ShapeTrainConfig

N_V = 32
S = 64  # image side of the tiny network
TINY_NET = {"name": "tiny", "encoder_widths": [4, 4, 8, 8, 8, 8, 16, 16, 16, 16], "feature_dim": 32, "input_size": S,
            "pose_hidden": 16}  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model():
    from facerecon.facemodel import FaceModel

    return FaceModel.load()


@pytest.fixture()
def tiny():
    torch.manual_seed(0)
    cfg = ShapeTrainConfig(net=TINY_NET, n_vertices=N_V, batch=4)
    gan = ARGAN(cfg)
    xs = torch.randn(4, 3, S, S) * 0.5
    vs = torch.randn(4, N_V, 3) * 0.3
    xt = torch.randn(4, 3, S, S) * 0.5
    return gan, xs, vs, xt


def test_shapes_and_ranges():
    cfg = net_config("fast")
    net = DAShapeNet(cfg, N_V)
    x = torch.randn(2, 3, 160, 160)
    assert net(x).shape == (2, N_V, 3)
    g = Generator(cfg)
    f = net.encoder(x)
    img = g(f, torch.randn(2, g.noise_dim), domain_code(2, 0))
    assert img.shape == (2, 3, 160, 160) and img.abs().max() <= POSITION_RANGE
    adv, reg = Discriminator(cfg, N_V)(img)
    assert adv.shape == (2,) and reg.shape == (2, N_V, 3)
    assert OFFSET_UNIT_MM == 10.0


def test_update_order_and_each_step_moves_only_its_module(tiny, monkeypatch):
    gan, xs, vs, xt = tiny
    order: list[str] = []
    modules = gan.modules()
    real_step = ARGAN._step

    def spy(self, name, loss):
        before = {k: [p.detach().clone() for p in m.parameters()] for k, m in modules.items()}
        real_step(self, name, loss)
        for k, m in modules.items():
            changed = any(not torch.equal(a, p) for a, p in zip(before[k], m.parameters()))
            assert changed == (k == name), f"step {name} changed {k}: {changed}"
        order.append(name)

    monkeypatch.setattr(ARGAN, "_step", spy)
    logs = gan.train_batch(xs, vs, xt, xt.flip(0))
    # eqs. 1-5 order, then D and F again on the extra real-domain batch
    assert order == ["D", "G", "R", "F", "D", "F"]
    for key in ("L_Dadv", "L_Dreg", "L_G", "L_R", "L_F", "L_Dadv_t"):
        assert np.isfinite(logs[key])
    # eq. 1: three BCE terms, each ~ln 2 for an untrained D
    assert 0.5 < logs["L_Dadv"] < 6.0


def test_adversarial_signs():
    """D is rewarded for calling generations fake; F for target generations D calls source."""
    import torch.nn.functional as Fn

    real_logit = torch.tensor([5.0])
    fake_logit = torch.tensor([-5.0])
    # D's loss on a generated image is small when D says fake (negative logit)
    assert Fn.binary_cross_entropy_with_logits(fake_logit, torch.zeros(1)) < Fn.binary_cross_entropy_with_logits(real_logit, torch.zeros(1))
    # F's adversarial term is small when D takes the target generation for source
    assert Fn.binary_cross_entropy_with_logits(real_logit, torch.ones(1)) < Fn.binary_cross_entropy_with_logits(fake_logit, torch.ones(1))
    # G's loss (eq. 3, log(1 - D)) falls as D's logit rises
    assert (-Fn.softplus(real_logit)) < (-Fn.softplus(fake_logit))


def test_short_argan_run_lowers_regression_loss(tiny):
    gan, xs, vs, xt = tiny
    first = gan.train_batch(xs, vs, xt, None)["L_R"]
    for _ in range(8):
        last = gan.train_batch(xs, vs, xt, None)["L_R"]
    assert last < 0.5 * first  # seeds 0-5 measured: 0.10-0.28 after 8 steps


def test_source_only_mode_trains_f_and_r_only(tiny):
    gan, xs, vs, _ = tiny
    gan.cfg.gan = False
    g_before = [p.clone() for p in gan.G.parameters()]
    first = gan.train_batch(xs, vs, None, None)["L_R"]
    for _ in range(10):
        last = gan.train_batch(xs, vs, None, None)["L_R"]
    assert last < first
    assert all(torch.equal(a, b) for a, b in zip(g_before, gan.G.parameters()))


def test_tangent_weighted_offset_loss(model):
    from facerecon.facemodel.shape_subset import ShapeSubset
    from facerecon.train.shape import offset_loss_frames

    subset = ShapeSubset.build(model, N_V)
    frames = offset_loss_frames(subset)
    assert frames.shape == (N_V, 3, 3)
    assert torch.allclose(frames @ frames.transpose(1, 2), torch.eye(3).expand(N_V, 3, 3), atol=1e-5)
    target = torch.zeros(2, N_V, 3)
    along_normal = frames[:, 0].expand(2, N_V, 3) * 0.5
    along_tangent = frames[:, 1].expand(2, N_V, 3) * 0.5
    plain = ARGAN(ShapeTrainConfig(net=TINY_NET, n_vertices=N_V), frames)  # tangent_weight 1: the paper's loss
    assert plain.frames is None
    assert float(plain._reg(along_tangent, target)) == pytest.approx(float(torch.nn.functional.smooth_l1_loss(along_tangent, target, beta=0.1)))
    weighted = ARGAN(ShapeTrainConfig(net=TINY_NET, n_vertices=N_V, tangent_weight=0.0), frames)
    assert float(weighted._reg(along_tangent, target)) == pytest.approx(0.0, abs=1e-6)
    # a pure normal error of 0.5 (cm) costs 0.5 - beta/2 on one of three components, x3 / sum(weights)
    assert float(weighted._reg(along_normal, target)) == pytest.approx(0.45, rel=1e-4)


def test_init_from_exported_weights_or_checkpoint(tiny, tmp_path):
    from facerecon.errors import InputFileError
    from facerecon.train.checkpoint import save_checkpoint
    from facerecon.train.pose import export_weights

    gan = tiny[0]
    vertices = list(range(N_V))
    export_weights(gan.shape.eval(), tmp_path / "w.safetensors", {"subset_vertices": vertices})
    save_checkpoint(tmp_path / "c.safetensors", gan.modules())
    for name, tol in (("w", 1e-2), ("c", 0.0)):
        torch.manual_seed(1)
        fresh = ARGAN(ShapeTrainConfig(net=TINY_NET, n_vertices=N_V, batch=4))
        w0 = {k: v.clone() for k, v in fresh.R.state_dict().items()}
        fresh.init_networks(tmp_path / f"{name}.safetensors", vertices)
        for key, ref in gan.shape.state_dict().items():
            got = fresh.shape.state_dict()[key]
            assert torch.allclose(got.float(), ref.float(), atol=tol * ref.float().abs().max().item() + 1e-6), key
        assert fresh.shape.training
        assert any(not torch.equal(w0[k], fresh.R.state_dict()[k]) for k in w0)
    with pytest.raises(InputFileError, match="another vertex subset"):
        fresh.init_networks(tmp_path / "w.safetensors", vertices[::-1])
