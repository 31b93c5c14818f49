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


def test_turned_batch_turns_images_and_labels_together(tiny_set):
    """A quarter-turned sample is the same head seen by a camera turned about its view axis: every
    valid pixel gives the same head-frame point with the turned labels, and the pixel grid still
    runs with the x / y channels (columns right with x, rows down with y)."""
    from facerecon.geometry.rotations import quat_to_matrix
    from facerecon.train.pose import turned_batch

    imgs = tiny_set.images[:4].astype(np.float32)
    quat, trans = tiny_set.quat[:4], tiny_set.trans[:4]
    cfg = PoseTrainConfig(turn_chance=1.0, turn_quarters=(1, 3))
    ti, tq, tt = turned_batch(imgs, quat, trans, cfg, np.random.default_rng(0))
    s = imgs.shape[-1]
    cols, rows = np.meshgrid(np.arange(s), np.arange(s))
    for i in range(4):
        valid = np.abs(ti[i]).sum(axis=0) > 0
        assert valid.sum() == (np.abs(imgs[i]).sum(axis=0) > 0).sum() > 100
        assert not np.allclose(ti[i], imgs[i]) and not np.allclose(tq[i], quat[i])
        head_old = (imgs[i].reshape(3, -1).T[(np.abs(imgs[i]).sum(axis=0) > 0).ravel()] - trans[i]) @ quat_to_matrix(quat[i])
        head_new = (ti[i].reshape(3, -1).T[valid.ravel()] - tt[i]) @ quat_to_matrix(tq[i])
        np.testing.assert_allclose(np.sort(head_new, axis=0), np.sort(head_old, axis=0), atol=1e-4)
        assert np.corrcoef(cols[valid], ti[i][0][valid])[0, 1] > 0.8 and np.corrcoef(rows[valid], ti[i][1][valid])[0, 1] > 0.8
    same = turned_batch(imgs, quat, trans, PoseTrainConfig(turn_chance=0.0), np.random.default_rng(0))
    assert all(a is b for a, b in zip(same, (imgs, quat, trans)))


def test_turn_and_rehearsal_recipes_parse_and_bad_turn_settings_are_errors():
    from facerecon.errors import ConfigError
    from facerecon.train.pose import load_train_config
    from facerecon.train.recipes import DATA_KEYS, ROW_KEYS, check_keys, pose_config

    cfg = pose_config("faces-turn")
    assert cfg.turn_chance == 0.25 and cfg.turn_quarters == (1, 3) and cfg.init_from.endswith("pose_fast.safetensors")
    assert pose_config("faces-finetune").turn_chance == 0.0
    data = load_train_config("faces-rehearse", "data")
    check_keys(data, DATA_KEYS, "")
    for part in ("train", "validation", "test"):
        for row in data[part]:
            check_keys(row, ROW_KEYS, "")
    mix = load_train_config("faces-mix", "data")
    # the rehearsal recipe is faces-mix plus the shipped recipe's own sideways full heads
    assert data["train"] == mix["train"] + [r for r in load_train_config("fast", "data")["train"] if r["preset"] == "truedepth"]
    assert data["test"] == mix["test"] and {r["preset"] for r in data["test"]} >= {"truedepth", "truedepth-faces"}
    with pytest.raises(ConfigError, match="probability"):
        PoseTrainConfig(turn_chance=1.5)
    with pytest.raises(ConfigError, match="quarter turns"):
        PoseTrainConfig(turn_quarters=(4,))
    with pytest.raises(ConfigError, match="did you mean 'turn_chance'"):
        pose_config("faces-turn", {"turn_chanse": 0.5})
