"""DAPoseNet (seed 002): encoder F + MLP 512 -> 256 -> 7 = rotation quaternion + translation.

Outputs (``PoseNetOutput``):

* ``quat`` (B, 4): the first four outputs normalised to unit length, (w, x, y, z), camera
  frame rotation of the head (head-frame point ``v`` -> ``R v + t``).  During training the
  sign is left as the network produces it (labels are canonicalised to ``w >= 0``, see
  :func:`facerecon.nets.losses.pose_loss`); the decode (:mod:`.decode`, NumPy) canonicalises to
  ``w >= 0``.  Head rotations stay well below 120 degrees from frontal (Biwi: yaw +-90,
  pitch +-45), so ``w = cos(angle / 2) > 0.5`` for every real label and the ``w >= 0``
  hemisphere has no discontinuity in the range that matters.
* ``trans`` (B, 3): the head-frame origin in **position-image units relative to the crop
  centre**: ``t_mm = center_mm + trans * scale_mm`` (``PositionImage.center_mm`` /
  ``scale_mm``, 100 mm).  Predicting the offset from the localised centre keeps the
  target small (~[-1, 1]) and independent of distance; it is undone with the
  ``PositionImage`` by :func:`.decode.output_to_pose`.

The last layer is initialised to output the identity rotation (frontal face) and zero
offset, so training starts from the mean pose instead of a random one.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ..geometry.pose import HeadPose
from ..preprocess.position_image import PositionImage
from .configs import NetConfig, net_config
from .encoder import Encoder


class PoseNetOutput(NamedTuple):
    quat: torch.Tensor  # (B, 4) unit quaternion (w, x, y, z), sign as predicted
    trans: torch.Tensor  # (B, 3) head origin - crop centre, position-image units


# ---------------------------------------------------------------------------------------
# torch quaternion helpers (batched, differentiable)


def normalize_quaternion(q: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return q / q.norm(dim=-1, keepdim=True).clamp_min(eps)


def canonicalize_quaternion(q: torch.Tensor) -> torch.Tensor:
    """Flip quaternions (..., 4) to the ``w >= 0`` hemisphere (q and -q are the same rotation)."""
    sign = torch.where(q[..., :1] < 0, -torch.ones_like(q[..., :1]), torch.ones_like(q[..., :1]))
    return q * sign


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternions (w, x, y, z) (normalised here) -> (..., 3, 3) rotation matrices.

    Same formula as :func:`facerecon.geometry.rotations.quat_to_matrix`.
    """
    q = normalize_quaternion(q)
    w, x, y, z = q.unbind(-1)
    r = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    )
    return r.reshape(q.shape[:-1] + (3, 3))


# ---------------------------------------------------------------------------------------


class DAPoseNet(nn.Module):
    """F + MLP (feature_dim -> pose_hidden -> 7) -> :class:`PoseNetOutput`."""

    def __init__(self, config: "str | NetConfig" = "paper"):
        super().__init__()
        cfg = net_config(config)
        self.config = cfg
        self.encoder = Encoder.from_config(cfg)
        self.head = nn.Sequential(
            nn.Linear(cfg.feature_dim, cfg.pose_hidden),
            nn.LeakyReLU(cfg.leaky_slope, inplace=True),
            nn.Linear(cfg.pose_hidden, 7),
        )
        last = self.head[-1]
        with torch.no_grad():
            last.weight.mul_(0.01)
            last.bias.copy_(torch.tensor([1.0, 0, 0, 0, 0, 0, 0]))

    @property
    def input_size(self) -> int:
        return self.config.input_size

    def forward_raw(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, 7) unnormalised outputs.  Inference (eval mode, BatchNorm
        folded, onnxruntime or torch) has one path: :func:`facerecon.pipeline.runtime.load_network`."""
        return self.head(self.encoder(x))

    def forward(self, x: torch.Tensor) -> PoseNetOutput:
        raw = self.forward_raw(x)
        return PoseNetOutput(normalize_quaternion(raw[:, :4]), raw[:, 4:])


def fold_batchnorm(model: DAPoseNet) -> DAPoseNet:
    """Eval-mode copy with every Conv2d + BatchNorm2d pair of the encoder folded into one conv."""
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    m = copy.deepcopy(model).eval()
    mods = list(m.encoder.net)
    out: list[nn.Module] = []
    i = 0
    while i < len(mods):
        if isinstance(mods[i], nn.Conv2d) and i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d):
            out.append(fuse_conv_bn_eval(mods[i], mods[i + 1]))
            i += 2
        else:
            out.append(mods[i])
            i += 1
    m.encoder.net = nn.Sequential(*out)
    return m


def pose_to_target(pose: HeadPose, image: PositionImage) -> tuple[np.ndarray, np.ndarray]:
    """Label for training: ``(q (4,) with w >= 0, t (3,) in position units relative to the centre)``."""
    return pose.quaternion_wxyz.astype(np.float32), ((pose.t_mm - image.center_mm) / image.scale_mm).astype(np.float32)
