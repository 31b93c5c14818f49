"""DAPoseNet training: a short run lowers the loss, checkpoints resume, weights export/load."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facerecon.train.data import PositionSet, build_synthetic_set
from facerecon.train.pose import PoseTrainConfig, evaluate, export_weights, train_pose


@pytest.fixture(scope="module")
def tiny_set() -> PositionSet:
    s = build_synthetic_set("facewarehouse", "kinect-v1", 16, seed=5, workers=1)
    assert len(s) >= 8, s.meta
    return s


def _target(s: PositionSet) -> PositionSet:
    e = np.zeros((0, 4), np.float32)
    return PositionSet(s.images, s.center_mm, s.scale_mm, e, e[:, :3], np.zeros((0, 155), np.float32), s.index, {"kind": "t"})


def test_position_set_roundtrip_is_deterministic(tiny_set, tmp_path):
    tiny_set.save(tmp_path / "a.safetensors")
    again = build_synthetic_set("facewarehouse", "kinect-v1", 16, seed=5, workers=1)
    again.save(tmp_path / "b.safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    back = PositionSet.load(tmp_path / "a.safetensors")
    np.testing.assert_array_equal(back.images, tiny_set.images)
    assert back.labelled and back.meta["preset"] == "facewarehouse"
    # labels are consistent: q unit with w >= 0; translation offsets in position units
    assert np.allclose(np.linalg.norm(back.quat, axis=1), 1, atol=1e-5) and (back.quat[:, 0] >= 0).all()
    assert np.abs(back.trans).max() < 3


@pytest.mark.slow
def test_short_training_lowers_loss_and_resumes(tiny_set, tmp_path):
    cfg = PoseTrainConfig(supervised_steps=30, selfsup_steps=6, batch=8, lr=1e-3, log_every=5, checkpoint_every=10, threads=2)
    net = train_pose(tmp_path / "run", tiny_set, _target(tiny_set), cfg)
    rows = [line.split(",") for line in (tmp_path / "run" / "log.csv").read_text().splitlines()[1:]]
    sup = [float(r[3]) for r in rows if r[1] == "supervised"]
    assert sup[-1] < 0.6 * sup[0], sup
    selfsup = [float(r[4]) for r in rows if r[1] == "selfsup"]
    assert selfsup and all(np.isfinite(selfsup))
    # resume: more steps continue from the checkpoint, the log keeps growing
    cfg.selfsup_steps = 10
    train_pose(tmp_path / "run", tiny_set, _target(tiny_set), cfg)
    steps = [int(line.split(",")[0]) for line in (tmp_path / "run" / "log.csv").read_text().splitlines()[1:]]
    assert steps[-1] == 40 and steps == sorted(steps)
    # export as float16 safetensors and load back into a fresh network
    from facerecon.nets.pose import DAPoseNet
    from facerecon.pipeline.weights import load_weights

    export_weights(net, tmp_path / "w.safetensors", {"net": "fast"})
    fresh = DAPoseNet("fast")
    meta = load_weights(fresh, tmp_path / "w.safetensors")
    assert meta["net"] == "fast"
    x = torch.from_numpy(tiny_set.images[:2].astype(np.float32))
    net.eval()
    with torch.no_grad():
        np.testing.assert_allclose(fresh(x).quat.numpy(), net(x).quat.numpy(), atol=2e-2)
    errors = evaluate(fresh, tiny_set)
    assert np.isfinite(errors.mae)
    # stage 2 alone, started from the exported weights: its first step sees them (the mixed
    # synthetic batch's loss of step 1 is that of the trained network, far below a fresh one's)
    stage2 = PoseTrainConfig(supervised_steps=0, selfsup_steps=1, batch=8, lr=1e-3, log_every=1, threads=2,
                             init_from=str(tmp_path / "w.safetensors"))
    train_pose(tmp_path / "stage2", tiny_set, _target(tiny_set), stage2)
    scratch = PoseTrainConfig(**{**stage2.__dict__, "init_from": ""})
    train_pose(tmp_path / "scratch", tiny_set, _target(tiny_set), scratch)
    first = {name: float((tmp_path / name / "log.csv").read_text().splitlines()[1].split(",")[3])
             for name in ("stage2", "scratch")}
    assert first["stage2"] < 0.5 * first["scratch"], first


def test_cosine_learning_rate_schedule():
    from facerecon.errors import ConfigError
    from facerecon.train.pose import PoseTrainConfig, learning_rate

    cfg = PoseTrainConfig(lr=1e-4, lr_schedule="cosine", lr_min=1e-6, supervised_steps=100)
    lrs = [learning_rate(cfg, s) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[50] == pytest.approx(0.5 * (1e-4 + 1e-6))
    assert all(a >= b for a, b in zip(lrs, lrs[1:])) and lrs[-1] > 1e-6
    assert learning_rate(cfg, 150) == pytest.approx(1e-5)  # stage 2: a tenth of the peak
    assert learning_rate(PoseTrainConfig(supervised_steps=100, selfsup_lr=3e-5), 150) == pytest.approx(3e-5)
    assert learning_rate(PoseTrainConfig(lr=1e-4), 5000) == 1e-4  # the paper: constant
    with pytest.raises(ConfigError):
        learning_rate(PoseTrainConfig(lr_schedule="step"), 0)


def test_set_overrides_parse_toml_values_and_bare_paths():
    from facerecon.cli.train import _overrides
    from facerecon.errors import ConfigError

    got = _overrides(["init_from=runs/a.safetensors", "lambda1=0.3", "gan=false", 'net="fast"'])
    assert got == {"init_from": "runs/a.safetensors", "lambda1": 0.3, "gan": False, "net": "fast"}
    with pytest.raises(ConfigError):
        _overrides(["lambda1"])


def test_unknown_settings_are_errors_with_the_nearest_name():
    from facerecon.cli.train import _overrides
    from facerecon.errors import ConfigError
    from facerecon.train.recipes import pose_config, shape_config

    with pytest.raises(ConfigError, match=r"unknown setting 'lamda1' \(did you mean 'lambda1'\?\)"):
        shape_config("fast", _overrides(["lamda1=0.3"]))
    with pytest.raises(ConfigError, match=r"'selfsup_steps'"):
        pose_config("fast", {"selfsup_step": 0})
    assert shape_config("fast", _overrides(["lambda1=0.3"])).lambda1 == 0.3
