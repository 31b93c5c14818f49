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
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError
from ..facemodel import FaceModel
from ..fileutil import atomic_path
from ..geometry.rotations import quat_to_matrix
from ..metrics.pose import PoseErrors, pose_errors
from ..nets.losses import landmark_chamfer_loss, pose_loss
from ..nets.decode import decoded_quaternions, flip_average, mirror_position_images, turn_position_images, turned_labels
from ..nets.pose import DAPoseNet
from .checkpoint import load_checkpoint, load_trained, save_checkpoint
from .data import PositionSet
from .distributed import Dist
from .loop import CsvLog, ShardedBatches, Timer, resume_run, run_state, seed_everything

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
    # data shards of the global batch (see train_pose): a DDP run has one per rank (set from the
    # launcher); a single-process run with the same number reproduces it exactly
    shards: int = 1
    # chance that a labelled sample is seen turned by one of ``turn_quarters`` quarter turns about
    # the view axis (image and labels turned together, :func:`turned_batch`): every preset's heads
    # also as a camera held sideways sees them, where only the truedepth rows draw that roll
    turn_chance: float = 0.0
    turn_quarters: tuple[int, ...] = (1, 3)

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.turn_chance) <= 1.0:
            raise ConfigError(f"turn_chance {self.turn_chance} is not a probability (0 to 1)")
        quarters = tuple(int(k) for k in self.turn_quarters)
        if not quarters or any(k not in (1, 2, 3) for k in quarters):
            raise ConfigError(f"turn_quarters {list(self.turn_quarters)}: quarter turns 1, 2 or 3, at least one")
        self.turn_quarters = quarters


def load_train_config(name: str, section: str = "pose", path: str | Path | None = None) -> dict:
    """A named row of ``configs/train.toml`` (or another TOML file)."""
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
    dev = next(net.parameters()).device
    was = net.training
    net.eval()
    qs, ts = [], []
    with torch.no_grad():
        for s in range(0, len(data), batch):
            x = data.images[s : s + batch].astype(np.float32)
            out = net(torch.from_numpy(np.concatenate([x, mirror_position_images(x)]) if flip else x).to(dev))
            quat, trans = out.quat.cpu().numpy(), out.trans.cpu().numpy()
            quat, trans = flip_average(quat, trans) if flip else (quat, trans)
            qs.append(decoded_quaternions(quat))
            ts.append(trans.astype(np.float64))
    net.train(was)
    q = np.concatenate(qs)
    t = data.center_mm.astype(np.float64) + np.concatenate(ts) * data.scale_mm[:, None]
    return quat_to_matrix(q), t


def evaluate(net: DAPoseNet, data: PositionSet) -> PoseErrors:
    r, t = predict_poses(net, data)
    t_true = data.center_mm.astype(np.float64) + data.trans.astype(np.float64) * data.scale_mm[:, None]
    return pose_errors(r, quat_to_matrix(data.quat.astype(np.float64)), t, t_true)


class _PoseStep(torch.nn.Module):
    """One step's network passes (synthetic batch, real-domain batch) in ONE forward call, so that a
    DDP wrapper sees one forward per backward however many batches a step has."""

    def __init__(self, net: DAPoseNet):
        super().__init__()
        self.net = net

    def forward(self, xs: torch.Tensor | None, xt: torch.Tensor | None):
        return (self.net(xs) if xs is not None else None), (self.net(xt) if xt is not None else None)


def _local_shards(data: PositionSet | dict[int, PositionSet] | None, n_shards: int) -> dict[int, PositionSet] | None:
    if data is None or isinstance(data, dict):
        return data
    return {0: data} if n_shards == 1 else {k: data.shard(k, n_shards) for k in range(n_shards)}


def turned_batch(images: np.ndarray, quat: np.ndarray, trans: np.ndarray, cfg: PoseTrainConfig,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A labelled batch with each sample turned, at ``cfg.turn_chance``, by one of ``cfg.turn_quarters``
    quarter turns (images, quaternions and translations turned together; the rest as given)."""
    turn = rng.random(len(images)) < cfg.turn_chance
    ks = rng.choice(np.asarray(cfg.turn_quarters), size=len(images))
    if not turn.any():
        return images, quat, trans
    images, quat, trans = images.copy(), quat.copy(), trans.copy()
    for i in np.nonzero(turn)[0]:
        images[i] = turn_position_images(images[i], int(ks[i]))
        quat[i], trans[i] = turned_labels(quat[i], trans[i], int(ks[i]))
    return images, quat, trans


def train_pose(
    run_dir: str | Path,
    source: PositionSet | dict[int, PositionSet],
    target: PositionSet | dict[int, PositionSet] | None,
    cfg: PoseTrainConfig,
    model: FaceModel | None = None,
    validation: PositionSet | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
    dist: Dist | None = None,
) -> DAPoseNet:
    """Train (or resume) DAPoseNet in ``run_dir``; returns the trained network.

    Data parallel (:mod:`facerecon.train.ddp`): the global batch ``cfg.batch`` is split over
    ``cfg.shards`` data shards (seed ranges of every recipe row, :func:`~.data.shard_ranges`).
    A single process runs the shards one after the other within each step (each shard's
    forward with its own BatchNorm statistics, gradients averaged); a DDP rank (``dist``)
    runs its own shard, ``source``/``target`` then being ``{rank: shard}``, and DDP
    averages the gradients.  Both give the same losses and weights (tested).  Rank 0
    writes the checkpoint and the log.
    """
    dist = dist or Dist()
    n_shards = dist.world if dist.active else int(cfg.shards)
    run_dir = Path(run_dir)
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    dev = torch.device(dist.device)
    net = DAPoseNet(cfg.net).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    src_sets = _local_shards(source, n_shards)
    tgt_sets = _local_shards(target, n_shards)
    src = ShardedBatches(src_sets, cfg.batch, cfg.seed, n_shards)
    use_tgt = tgt_sets is not None and all(len(t) for t in tgt_sets.values())
    tgt = ShardedBatches(tgt_sets, cfg.batch, cfg.seed + 1, n_shards, repeat=cfg.real_repeat) if use_tgt else None
    ckpt = run_dir / "checkpoint.safetensors"
    step, timer = 0, Timer()
    if ckpt.exists():
        step = resume_run(load_checkpoint(ckpt, {"pose": net}, {"adam": opt}), timer, src, tgt)
    elif cfg.init_from:
        load_trained(cfg.init_from, {"pose": net}, net)
    lm_ref = reference_landmarks(model or FaceModel.load()).to(dev)
    step_module = dist.wrap(_PoseStep(net))
    log = CsvLog(run_dir / "log.csv", ["step", "stage", "loss", "sup", "selfsup", "matched", "seconds", "val_mae", "val_geodesic", "val_trans_mm"]) if dist.main else None
    total = cfg.supervised_steps + (cfg.selfsup_steps if tgt is not None else 0)
    tgt_scale = float(next(iter(tgt_sets.values())).scale_mm[0]) if tgt is not None else 100.0

    def save(final: bool = False) -> None:
        meta = {**run_state(step, timer, src, tgt, dist.gather if dist.active else None), "config": asdict(cfg), "final": final}
        if dist.main:
            save_checkpoint(ckpt, {"pose": net}, {"adam": opt}, meta)

    net.train()
    while step < total:
        stage = "supervised" if step < cfg.supervised_steps else "selfsup"
        with_sup = stage == "supervised" or cfg.synthetic_in_selfsup
        sidx = src.next_indices() if with_sup else None
        tidx = tgt.next_indices() if stage == "selfsup" else None
        for g in opt.param_groups:
            g["lr"] = learning_rate(cfg, step)
        opt.zero_grad(set_to_none=True)
        sums = {"loss": 0.0, "sup": 0.0, "selfsup": 0.0, "matched": 0.0}
        shards = sorted(src.parts)
        for j, k in enumerate(shards):
            # a single process running several shards keeps BatchNorm running statistics of the
            # first only: what DDP does (rank 0's buffers are broadcast at every forward)
            saved = {n: b.clone() for n, b in net.named_buffers()} if j > 0 else None
            xs = lq = lt = None
            if with_sup:
                data = src.parts[k].data
                xs, lq, lt = data.images[sidx[k]].astype(np.float32), data.quat[sidx[k]], data.trans[sidx[k]]
                if cfg.turn_chance > 0:  # seeded by (seed, step, shard): a resumed run turns the same samples
                    xs, lq, lt = turned_batch(xs, lq, lt, cfg, np.random.default_rng([cfg.seed, step, k, 9]))
                xs = torch.from_numpy(xs).to(dev)
            xt = tgt.parts[k].images(tidx[k]).to(dev) if tidx is not None else None
            out_s, out_t = step_module(xs, xt)
            loss = torch.zeros((), device=dev)
            if out_s is not None:
                sup = pose_loss(out_s.quat, out_s.trans, torch.from_numpy(lq).to(dev), torch.from_numpy(lt).to(dev), alpha=cfg.alpha)
                loss = loss + sup
                sums["sup"] += float(sup.detach())
            if out_t is not None:
                cham, keep = landmark_chamfer_loss(out_t.quat, out_t.trans, lm_ref, xt, eps_mm=cfg.eps_mm, reduction="mean",
                                                   return_matches=True, scale_mm=tgt_scale)  # fmt: skip
                loss = loss + cfg.selfsup_weight * cham
                sums["selfsup"] += float(cham.detach())
                sums["matched"] += float(keep.float().mean())
            (loss / len(shards)).backward()
            sums["loss"] += float(loss.detach())
            if saved is not None:  # after backward: autograd checks the buffers' versions
                with torch.no_grad():
                    for n, b in net.named_buffers():
                        b.copy_(saved[n])
        opt.step()
        step += 1
        means = dist.mean_over_ranks({k: v / len(shards) for k, v in sums.items()})
        row: dict = {"step": step, "stage": stage, "loss": means["loss"], "seconds": timer.elapsed}
        if with_sup:
            row["sup"] = means["sup"]
        if stage == "selfsup":
            row.update(selfsup=means["selfsup"], matched=means["matched"])
        if dist.main and (step % cfg.log_every == 0 or step == total):
            if validation is not None and (step % (cfg.log_every * 10) == 0 or step == total):
                e = evaluate(net, validation)
                row.update(val_mae=e.mae, val_geodesic=e.geodesic_mean, val_trans_mm=e.translation_mean_mm)
            log.write(row)
        if progress and dist.main:
            progress(step, total, row)
        if step % cfg.checkpoint_every == 0 or step == total:
            save(final=step == total)
    if log is not None:
        log.close()
    net.eval()
    return net


def export_weights(net: torch.nn.Module, path: str | Path, meta: dict, half: bool = True) -> None:
    """Shipped weights: eval-mode state in float16 (halves the file; loaded back as float32)."""
    from safetensors.torch import save_file


    sd = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(sd, str(tmp), metadata={"facerecon": json.dumps(meta, sort_keys=True)})
