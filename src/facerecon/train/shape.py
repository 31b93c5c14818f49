"""DAShapeNet training with AR-GAN (seed 002, eqs. 1-5), in the paper's order per batch.

Per source batch ``x_s`` (labels ``dV_s``: subset offsets) and target batch ``x_t``:

1. **D** on ``L_D = L_Dadv + L_Dreg`` (eqs. 1-2), with ``x_sg = G(F(x_s), z, c_s)`` and
   ``x_tg = G(F(x_t), z, c_t)`` held fixed;
2. **G** on ``L_G = log(1 - D_adv(x_sg)) + smoothL1(D_reg(x_sg) - dV_s)`` (eq. 3, as written:
   the saturating form);
3. **R** on ``L_R = smoothL1(R(F(x_s)) - dV_s)`` (eq. 4), F fixed;
4. **F** on ``L_F = L_R + lambda1 L_Dadv,t + lambda2 L_Dreg`` (eq. 5), G, R, D fixed;
5. then, on a further **real-domain batch** with G and R fixed, **D** and **F** again
   (D: the target term of eq. 1; F: ``lambda1 L_Dadv,t``).

Sign of ``L_Dadv,t`` for F: the text says F should make "the generated image as source-like
as possible", as in Generate-To-Adapt; minimising the printed ``E[-log(1 - D(x_tg))]``
would push target generations towards *fake*, the opposite. We follow the stated aim:
F minimises ``E[-log D(x_tg)]`` (D's target term with the label flipped). With
``lambda1 = lambda2 = 0`` and ``gan = false`` the loop reduces to source-only training of
F + R (the baseline the paper compares against).

Units: offsets are in centimetres (``OFFSET_UNIT_MM`` = 10) with smooth-L1 ``beta`` =
0.1 (1 mm), so ``L_R`` reads roughly as the mean absolute error in cm and the paper's
lambda1 = 0.03 / lambda2 = 0.1 give the adversarial terms ~10 % of the weight.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as Fn

from ..errors import InputFileError
from ..facemodel import FaceModel
from ..facemodel.shape_subset import ShapeSubset
from ..nets.argan import OFFSET_UNIT_MM, SOURCE, TARGET, DAShapeNet, Discriminator, Generator, domain_code
from ..nets.configs import net_config
from .checkpoint import load_checkpoint, load_trained, save_checkpoint
from .data import PositionSet
from .loop import Batches, CsvLog, Timer, resume_run, run_state, seed_everything



@dataclass
class ShapeTrainConfig:
    net: str = "fast"
    n_vertices: int = 1024
    batch: int = 16
    lr: float = 5e-4
    lr_decay: float = 0.2  # paper: rate "changes every 10 epochs" over {5e-4, 1e-4, 5e-5}
    lr_step_epochs: float = 10.0
    lr_min: float = 5e-5
    steps: int = 5000
    gan: bool = True
    lambda1: float = 0.03
    lambda2: float = 0.1
    beta: float = 0.1
    # weight of the two tangential components of the offset error against the normal one
    # (1.0 = the paper's plain smooth-L1 on x, y, z); see offset_loss_frames
    tangent_weight: float = 1.0
    real_repeat: int = 3
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 250
    threads: int = 2
    init_from: str = ""  # a checkpoint or exported weights whose F and R start this run


def offset_targets(subset: ShapeSubset, data: PositionSet) -> np.ndarray:
    """(N, n, 3) float32 subset offsets (in OFFSET_UNIT_MM) from the set's model weights."""
    k = subset.model.n_identity
    out = np.empty((len(data), subset.n, 3), np.float32)
    for s in range(0, len(data), 256):
        w = data.weights[s : s + 256]
        out[s : s + 256] = subset.offsets_from_weights(w[:, :k], w[:, k:]) / OFFSET_UNIT_MM
    return out


def offset_loss_frames(subset: ShapeSubset) -> torch.Tensor:
    """(n, 3, 3) per-vertex orthonormal frames (rows: normal, two tangents) of the neutral face.

    Why: vertices of different identities slide *along* the face surface by several mm
    (measured on the facewarehouse validation set: 5.9 mm mean per-vertex offset left after
    rigid alignment, against a 1.6 mm median point-to-surface distance of the mean face),
    and that sliding is invisible in depth.  Plain smooth-L1 on x, y, z spends most of its
    gradient on it; weighting the tangential components down (``tangent_weight``) lets R
    learn the observable, normal part that the surface-distance metric measures.
    """
    n = subset.reference_normals()
    helper = np.where(np.abs(n[:, :1]) < 0.9, np.array([[1.0, 0, 0]]), np.array([[0, 1.0, 0]]))
    t1 = np.cross(n, helper)
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    t2 = np.cross(n, t1)
    return torch.from_numpy(np.stack([n, t1, t2], 1).astype(np.float32))


class ARGAN:
    """F, R (the DAShapeNet), G, D and their optimisers, with the per-batch update order."""

    def __init__(self, cfg: ShapeTrainConfig, frames: torch.Tensor | None = None):
        self.cfg = cfg
        self.frames = frames if cfg.tangent_weight != 1.0 else None
        self.component_weights = torch.tensor([1.0, cfg.tangent_weight, cfg.tangent_weight])
        ncfg = net_config(cfg.net)
        self.shape = DAShapeNet(ncfg, cfg.n_vertices)
        self.F, self.R = self.shape.encoder, self.shape.regressor
        self.G = Generator(ncfg)
        self.D = Discriminator(ncfg, cfg.n_vertices)
        self.noise_dim = self.R.noise_dim
        adam = lambda p: torch.optim.Adam(p, lr=cfg.lr, betas=(0.5, 0.999))  # noqa: E731 (GAN-usual beta1)
        self.opt = {"F": adam(self.F.parameters()), "R": adam(self.R.parameters()),
                    "G": adam(self.G.parameters()), "D": adam(self.D.parameters())}

    def init_networks(self, path: str | Path, subset_vertices: list[int]) -> None:
        """Start F and R from a run checkpoint or from exported DAShapeNet weights (e.g. the
        shipped source-only model); G and D keep their fresh initialisation."""
        meta = load_trained(path, {"F": self.F, "R": self.R}, self.shape)
        if meta.get("subset_vertices", subset_vertices) != subset_vertices:
            raise InputFileError(path, "its network predicts another vertex subset than this run")

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"F": self.F, "R": self.R, "G": self.G, "D": self.D}

    def set_lr(self, lr: float) -> None:
        for o in self.opt.values():
            for g in o.param_groups:
                g["lr"] = lr

    def _step(self, name: str, loss: torch.Tensor) -> None:
        for o in self.opt.values():
            o.zero_grad(set_to_none=True)
        loss.backward()
        self.opt[name].step()

    def _reg(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Offset regression loss (L_R, L_Dreg and the regression part of L_G)."""
        if self.frames is None:
            return Fn.smooth_l1_loss(pred, target, beta=self.cfg.beta)
        local = torch.einsum("bnj,nkj->bnk", pred - target, self.frames)
        per = Fn.smooth_l1_loss(local, torch.zeros_like(local), beta=self.cfg.beta, reduction="none")
        return (per * self.component_weights).mean() * 3.0 / float(self.component_weights.sum())

    def train_batch(self, xs: torch.Tensor, vs: torch.Tensor, xt: torch.Tensor | None, xt2: torch.Tensor | None) -> dict:
        cfg = self.cfg
        b = xs.shape[0]
        zs = torch.randn(b, self.noise_dim)
        cs = domain_code(b, SOURCE)
        logs: dict = {}
        if not cfg.gan:
            fs = self.F(xs)
            l_r = self._reg(self.R(fs, zs, cs), vs)
            for o in (self.opt["F"], self.opt["R"]):
                o.zero_grad(set_to_none=True)
            l_r.backward()
            self.opt["F"].step()
            self.opt["R"].step()
            return {"L_R": float(l_r.detach())}
        bt = xt.shape[0]
        zt = torch.randn(bt, self.noise_dim)
        ct = domain_code(bt, TARGET)
        ones, zeros = torch.ones(b), torch.zeros(b)
        # 1. D (eqs. 1-2) on fixed generations
        with torch.no_grad():
            fs0, ft0 = self.F(xs), self.F(xt)
            xsg0, xtg0 = self.G(fs0, zs, cs), self.G(ft0, zt, ct)
        a_s, _ = self.D(xs)
        a_sg, r_sg = self.D(xsg0)
        a_tg, _ = self.D(xtg0)
        l_dadv = (Fn.binary_cross_entropy_with_logits(a_s, ones) + Fn.binary_cross_entropy_with_logits(a_sg, zeros)
                  + Fn.binary_cross_entropy_with_logits(a_tg, torch.zeros(bt)))
        l_dreg = self._reg(r_sg, vs)
        self._step("D", l_dadv + l_dreg)
        logs.update(L_Dadv=float(l_dadv.detach()), L_Dreg=float(l_dreg.detach()))
        # 2. G (eq. 3): log(1 - sigmoid(a)) = -softplus(a)
        xsg = self.G(fs0, zs, cs)
        a_sg, r_sg = self.D(xsg)
        l_g = (-Fn.softplus(a_sg)).mean() + self._reg(r_sg, vs)
        self._step("G", l_g)
        logs["L_G"] = float(l_g.detach())
        # 3. R (eq. 4) with F fixed
        l_r = self._reg(self.R(fs0, zs, cs), vs)
        self._step("R", l_r)
        logs["L_R"] = float(l_r.detach())
        # 4. F (eq. 5) through R, G, D held fixed (only F's optimiser steps)
        fs, ft = self.F(xs), self.F(xt)
        l_rf = self._reg(self.R(fs, zs, cs), vs)
        _, r_sg = self.D(self.G(fs, zs, cs))
        a_tg, _ = self.D(self.G(ft, zt, ct))
        l_adv_t = Fn.binary_cross_entropy_with_logits(a_tg, torch.ones(bt))  # -log D(x_tg): look like source
        l_f = l_rf + cfg.lambda1 * l_adv_t + cfg.lambda2 * self._reg(r_sg, vs)
        self._step("F", l_f)
        logs.update(L_F=float(l_f.detach()), L_Dadv_t=float(l_adv_t.detach()))
        # 5. a further real-domain batch: D, then F, with G and R fixed
        if xt2 is not None:
            b2 = xt2.shape[0]
            z2, c2 = torch.randn(b2, self.noise_dim), domain_code(b2, TARGET)
            with torch.no_grad():
                xtg2 = self.G(self.F(xt2), z2, c2)
            a2, _ = self.D(xtg2)
            self._step("D", Fn.binary_cross_entropy_with_logits(a2, torch.zeros(b2)))
            a2, _ = self.D(self.G(self.F(xt2), z2, c2))
            self._step("F", cfg.lambda1 * Fn.binary_cross_entropy_with_logits(a2, torch.ones(b2)))
        return logs


def predict_offsets(shape: DAShapeNet, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """(N, n, 3) predicted subset offsets in mm (eval mode, z = 0, source code)."""
    was = shape.training
    shape.eval()
    outs = []
    with torch.no_grad():
        for s in range(0, len(images), batch):
            outs.append(shape(torch.from_numpy(images[s : s + batch].astype(np.float32))).numpy())
    shape.train(was)
    return np.concatenate(outs) * OFFSET_UNIT_MM


def subset_errors_mm(shape: DAShapeNet, data: PositionSet, targets_unit: np.ndarray, normals: np.ndarray) -> tuple[float, float]:
    """Mean per-vertex error (mm) of the predicted subset offsets: Euclidean, and its
    component along the reference face normal (what depth can see)."""
    err = predict_offsets(shape, data.images) - targets_unit * OFFSET_UNIT_MM
    return float(np.linalg.norm(err, axis=-1).mean()), float(np.abs((err * normals).sum(-1)).mean())


def train_shape(
    run_dir: str | Path,
    source: PositionSet,
    target: PositionSet | None,
    cfg: ShapeTrainConfig,
    model: FaceModel | None = None,
    validation: PositionSet | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
) -> tuple[DAShapeNet, ShapeSubset]:
    """Train (or resume) DAShapeNet with AR-GAN in ``run_dir``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    model = model or FaceModel.load()
    subset = ShapeSubset.build(model, cfg.n_vertices)
    targets = offset_targets(subset, source)
    val_targets = offset_targets(subset, validation) if validation is not None else None
    normals = subset.reference_normals()
    gan = ARGAN(cfg, offset_loss_frames(subset) if cfg.tangent_weight != 1.0 else None)
    if cfg.gan and (target is None or not len(target)):
        raise ValueError("AR-GAN training needs real-domain (target) images")
    src = Batches(source, cfg.batch, cfg.seed)
    tgt = Batches(target, cfg.batch, cfg.seed + 1, repeat=cfg.real_repeat) if cfg.gan else None
    ckpt = run_dir / "checkpoint.safetensors"
    step, timer = 0, Timer()
    if ckpt.exists():
        step = resume_run(load_checkpoint(ckpt, gan.modules(), gan.opt), timer, src, tgt)
    elif cfg.init_from:
        gan.init_networks(cfg.init_from, subset.vertices.tolist())
    log = CsvLog(run_dir / "log.csv", ["step", "epoch", "lr", "L_R", "L_F", "L_G", "L_Dadv", "L_Dreg", "L_Dadv_t", "seconds", "val_mm", "val_normal_mm"])

    def save(final: bool = False) -> None:
        meta = {**run_state(step, timer, src, tgt), "config": asdict(cfg), "subset_vertices": subset.vertices.tolist(), "final": final}
        save_checkpoint(ckpt, gan.modules(), gan.opt, meta)

    for m in gan.modules().values():
        m.train()
    while step < cfg.steps:
        epoch = step * cfg.batch / max(len(source), 1)
        lr = max(cfg.lr * cfg.lr_decay ** math.floor(epoch / cfg.lr_step_epochs), cfg.lr_min)
        gan.set_lr(lr)
        idx = src.next_indices()
        xs, vs = src.images(idx), torch.from_numpy(targets[idx])
        xt = xt2 = None
        if tgt is not None:
            xt = tgt.images(tgt.next_indices())
            xt2 = tgt.images(tgt.next_indices())
        row = gan.train_batch(xs, vs, xt, xt2)
        step += 1
        row.update(step=step, epoch=round(epoch, 3), lr=lr, seconds=timer.elapsed)
        if step % cfg.log_every == 0 or step == cfg.steps:
            if validation is not None and (step % (cfg.log_every * 10) == 0 or step == cfg.steps):
                row["val_mm"], row["val_normal_mm"] = subset_errors_mm(gan.shape, validation, val_targets, normals)
            log.write(row)
        if progress:
            progress(step, cfg.steps, row)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save(final=step == cfg.steps)
    log.close()
    gan.shape.eval()
    return gan.shape, subset
