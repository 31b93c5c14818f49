"""DAPoseNet training, two stages (seed 002, eqs. 6-7).

Stage 1 (supervised): smooth-L1 on ``[q; t]`` with alpha = 350 on labelled synthetic
position images, Adam at a fixed learning rate of 1e-4 (the paper), or decayed along a
cosine to ``lr_min`` (``lr_schedule = "cosine"``: the late, small steps settle the noisy
validation error of a short CPU run).
Stage 2 (self-supervised): the landmark Chamfer loss (eq. 7, epsilon = 30 mm) on
UNLABELLED real-domain position images, with a synthetic supervised batch mixed into
every step so the network does not drift (the issue's rule; the paper fine-tunes on
real data only).  Real images are reused ``real_repeat`` times per epoch (paper: 3).

Everything is counted in steps (one batch of 16 each), checkpointed to safetensors with
the optimiser and batching state, and resumable: re-running the same command continues.
"""
from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..facemodel import FaceModel
from ..metrics.pose import PoseErrors, pose_errors
from ..nets.losses import landmark_chamfer_loss, pose_loss
from ..nets.pose import DAPoseNet, canonicalize_quaternion, flip_averaged, mirror_position_images, normalize_quaternion
from ..rotations import quat_to_matrix
from .checkpoint import load_checkpoint, load_trained, save_checkpoint
from .data import PositionSet
from .loop import Batches, CsvLog, Timer, resume_run, run_state, seed_everything

# Landmarks for eq. 7: the 51 inner Multi-PIE points (brows, nose, eyes, mouth); the 17
# jaw-line points sit on the silhouette, where the nearest depth point is often not theirs.
SELFSUP_LANDMARKS = tuple(range(17, 68))


@dataclass
class PoseTrainConfig:
    net: str = "fast"
    batch: int = 16
    lr: float = 1e-4
    lr_schedule: str = "constant"  # paper: fixed; "cosine": stage 1 decays to lr_min
    lr_min: float = 0.0
    selfsup_lr: float = 0.0  # stage 2 learning rate (0: lr with "constant", 0.1 lr with "cosine")
    alpha: float = 350.0
    supervised_steps: int = 10000
    selfsup_steps: int = 2000
    selfsup_weight: float = 1.0  # eq. 7 (mean over matched landmarks, mm^2) vs eq. 6 on the mixed synthetic batch
    synthetic_in_selfsup: bool = True
    eps_mm: float = 30.0
    real_repeat: int = 3
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500
    threads: int = 2
    # a checkpoint or exported weights that start a fresh run (e.g. stage 2 alone, with
    # supervised_steps = 0, from the shipped supervised model)
    init_from: str = ""
    extra: dict = field(default_factory=dict)


def load_train_config(name: str, section: str = "pose", path: str | Path | None = None) -> dict:
    """A named row of ``configs/train.toml`` (or another TOML file)."""
    from ..errors import ConfigError

    text = Path(path).read_text() if path else resources.files("facerecon").joinpath("configs/train.toml").read_text()
    table = tomllib.loads(text).get(section, {})
    if name not in table:
        raise ConfigError(f"no [{section}.{name}] in the training configuration; known: {', '.join(sorted(table))}")
    return dict(table[name])


def reference_landmarks(model: FaceModel) -> torch.Tensor:
    lm = model.landmarks(model.reference_vertices)[list(SELFSUP_LANDMARKS)]
    return torch.from_numpy(np.asarray(lm, np.float32))


def learning_rate(cfg: PoseTrainConfig, step: int) -> float:
    """Learning rate of (0-based) ``step``."""
    from ..errors import ConfigError

    if step >= cfg.supervised_steps and cfg.selfsup_lr > 0:
        return cfg.selfsup_lr
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule == "cosine":
        if step >= cfg.supervised_steps:
            return cfg.lr * 0.1
        frac = step / max(cfg.supervised_steps, 1)
        return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1.0 + float(np.cos(np.pi * frac)))
    raise ConfigError(f"unknown lr_schedule {cfg.lr_schedule!r} (constant or cosine)")


def predict_poses(net: DAPoseNet, data: PositionSet, batch: int = 64, flip: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(R (N,3,3), t_mm (N,3)) predicted for every image of ``data`` (eval mode), with the
    test-time flip of the network's configuration unless ``flip`` says otherwise (as the
    pipeline predicts)."""
    flip = net.config.test_time_flip if flip is None else flip
    was = net.training
    net.eval()
    qs, ts = [], []
    with torch.no_grad():
        for s in range(0, len(data), batch):
            x = data.images[s : s + batch].astype(np.float32)
            out = net(torch.from_numpy(np.concatenate([x, mirror_position_images(x)]) if flip else x))
            quat, trans = flip_averaged(out.quat, out.trans) if flip else (out.quat, out.trans)
            qs.append(canonicalize_quaternion(normalize_quaternion(quat)).double().numpy())
            ts.append(trans.double().numpy())
    net.train(was)
    q = np.concatenate(qs)
    t = data.center_mm.astype(np.float64) + np.concatenate(ts) * data.scale_mm[:, None]
    return quat_to_matrix(q), t


def evaluate(net: DAPoseNet, data: PositionSet) -> PoseErrors:
    r, t = predict_poses(net, data)
    t_true = data.center_mm.astype(np.float64) + data.trans.astype(np.float64) * data.scale_mm[:, None]
    return pose_errors(r, quat_to_matrix(data.quat.astype(np.float64)), t, t_true)


def train_pose(
    run_dir: str | Path,
    source: PositionSet,
    target: PositionSet | None,
    cfg: PoseTrainConfig,
    model: FaceModel | None = None,
    validation: PositionSet | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
) -> DAPoseNet:
    """Train (or resume) DAPoseNet in ``run_dir``; returns the trained network."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    net = DAPoseNet(cfg.net)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    src = Batches(source, cfg.batch, cfg.seed)
    tgt = Batches(target, cfg.batch, cfg.seed + 1, repeat=cfg.real_repeat) if target is not None and len(target) else None
    ckpt = run_dir / "checkpoint.safetensors"
    step, timer = 0, Timer()
    if ckpt.exists():
        step = resume_run(load_checkpoint(ckpt, {"pose": net}, {"adam": opt}), timer, src, tgt)
    elif cfg.init_from:
        load_trained(cfg.init_from, {"pose": net}, net)
    lm_ref = reference_landmarks(model or FaceModel.load())
    log = CsvLog(run_dir / "log.csv", ["step", "stage", "loss", "sup", "selfsup", "matched", "seconds", "val_mae", "val_geodesic", "val_trans_mm"])
    total = cfg.supervised_steps + (cfg.selfsup_steps if tgt is not None else 0)

    def save(final: bool = False) -> None:
        meta = {**run_state(step, timer, src, tgt), "config": asdict(cfg), "final": final}
        save_checkpoint(ckpt, {"pose": net}, {"adam": opt}, meta)

    net.train()
    while step < total:
        stage = "supervised" if step < cfg.supervised_steps else "selfsup"
        row: dict = {"step": step + 1, "stage": stage}
        loss = torch.zeros(())
        if stage == "supervised" or cfg.synthetic_in_selfsup:
            idx = src.next_indices()
            out = net(src.images(idx))
            sup = pose_loss(out.quat, out.trans, torch.from_numpy(source.quat[idx]), torch.from_numpy(source.trans[idx]), alpha=cfg.alpha)
            loss = loss + sup
            row["sup"] = float(sup.detach())
        if stage == "selfsup":
            idx = tgt.next_indices()
            x = tgt.images(idx)
            out = net(x)
            cham, keep = landmark_chamfer_loss(out.quat, out.trans, lm_ref, x, eps_mm=cfg.eps_mm, reduction="mean", return_matches=True,
                                               scale_mm=float(target.scale_mm[0]))
            loss = loss + cfg.selfsup_weight * cham
            row["selfsup"] = float(cham.detach())
            row["matched"] = float(keep.float().mean())
        for g in opt.param_groups:
            g["lr"] = learning_rate(cfg, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        row["loss"] = float(loss.detach())
        row["seconds"] = timer.elapsed
        if step % cfg.log_every == 0 or step == total:
            if validation is not None and (step % (cfg.log_every * 10) == 0 or step == total):
                e = evaluate(net, validation)
                row.update(val_mae=e.mae, val_geodesic=e.geodesic_mean, val_trans_mm=e.translation_mean_mm)
            log.write(row)
        if progress:
            progress(step, total, row)
        if step % cfg.checkpoint_every == 0 or step == total:
            save(final=step == total)
    log.close()
    net.eval()
    return net


def export_weights(net: torch.nn.Module, path: str | Path, meta: dict, half: bool = True) -> None:
    """Shipped weights: eval-mode state in float16 (halves the file; loaded back as float32)."""
    from safetensors.torch import save_file

    from ..fileutil import atomic_path

    sd = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(sd, str(tmp), metadata={"facerecon": json.dumps(meta, sort_keys=True)})
