"""DAShapeNet and its AR-GAN parts (seed 002, section 1.1): F, R, G, D.

* **F** (:class:`~facerecon.nets.encoder.Encoder`): position image -> 512-d embedding.
* **R**: three-layer MLP ``[F(x), z, c] -> 1024 -> 3n`` per-vertex offsets (mm, head frame)
  of the :class:`~facerecon.facemodel.shape_subset.ShapeSubset` vertices; LeakyReLU
  between the hidden and the last layer, as the paper states.
* **G**: a generator "sharing a similar structure with F": the mirror image of F
  (transposed convolutions, 1x1 -> 5x5 -> ... -> 160x160), input ``[F(x), z, c]``,
  BatchNorm + LeakyReLU, last layer followed by tanh and scaled by ``POSITION_RANGE`` so
  that it can reach the value range of real position images.
* **D**: an F-like trunk -> 512-d embedding -> (a) real/fake probability (FC + sigmoid)
  and (b) offsets through an MLP shaped like R.

Choices the paper leaves open, made as in "Generate To Adapt" (Sankaranarayanan et al.,
CVPR 2018), whose G takes ``[embedding, noise, one-hot]`` and whose D has a data head and
an auxiliary head:

* the one-hot ``c`` encodes the **domain** of the input (source = synthetic, target =
  real); regression has no classes for it to encode;
* ``z`` is ``noise_dim`` standard-normal numbers; at inference R gets ``z = 0`` and the
  source one-hot (we ask for the shape a synthetic image would have given);
* D returns logits; the sigmoid is applied inside the loss (numerically stable BCE).
"""
from __future__ import annotations

import torch
from torch import nn

from .configs import NetConfig, net_config
from .decode import OFFSET_UNIT_MM  # noqa: F401 - R and D_reg predict offsets in centimetres (re-exported for train)
from .encoder import Encoder

POSITION_RANGE = 2.0  # G's output bound: position images are centred, in units of 100 mm
N_DOMAINS = 2
SOURCE, TARGET = 0, 1


def domain_code(batch: int, domain: int, device=None) -> torch.Tensor:
    c = torch.zeros(batch, N_DOMAINS, device=device)
    c[:, domain] = 1.0
    return c


class OffsetMLP(nn.Module):
    """R (and D's regression head): ``in -> hidden -> LeakyReLU -> 3n``."""

    def __init__(self, in_dim: int, hidden: int, n_vertices: int, leaky_slope: float = 0.2):
        super().__init__()
        self.n_vertices = n_vertices
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.LeakyReLU(leaky_slope, inplace=True), nn.Linear(hidden, 3 * n_vertices))
        nn.init.zeros_(self.net[-1].bias)
        nn.init.normal_(self.net[-1].weight, std=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1, self.n_vertices, 3)


class Regressor(nn.Module):
    """R: ``[F(x), z, c] -> (B, n, 3)`` offsets, in units of ``offset_scale_mm``."""

    def __init__(self, cfg: NetConfig, n_vertices: int):
        super().__init__()
        self.noise_dim = int(cfg.extra.get("noise_dim", 16))
        hidden = int(cfg.extra.get("shape_hidden", 1024))
        self.mlp = OffsetMLP(cfg.feature_dim + self.noise_dim + N_DOMAINS, hidden, n_vertices, cfg.leaky_slope)

    def forward(self, feat: torch.Tensor, z: torch.Tensor | None = None, c: torch.Tensor | None = None) -> torch.Tensor:
        b = feat.shape[0]
        z = feat.new_zeros(b, self.noise_dim) if z is None else z
        c = domain_code(b, SOURCE, feat.device) if c is None else c
        return self.mlp(torch.cat([feat, z, c], 1))


class Generator(nn.Module):
    """G: ``[F(x), z, c] -> (B, 3, S, S)`` position image, the mirror of F."""

    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.noise_dim = int(cfg.extra.get("noise_dim", 16))
        widths = list(cfg.encoder_widths)[::-1]  # deepest first
        slope = cfg.leaky_slope
        k = cfg.input_size // 32
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(cfg.feature_dim + self.noise_dim + N_DOMAINS, widths[0], k, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.LeakyReLU(slope, inplace=True),
        ]
        c_in = widths[0]
        # Mirror of F's layers 10..1: 3x3 stride-1 convs and 4x4 stride-2 up-convolutions alternate.
        for i, c_out in enumerate(widths[1:] + [3]):
            last = i == len(widths) - 1
            if i % 2 == 0:
                conv: nn.Module = nn.Conv2d(c_in, c_out, 3, 1, 1, bias=last)
            else:
                conv = nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=last)
            layers.append(conv)
            if not last:
                layers += [nn.BatchNorm2d(c_out), nn.LeakyReLU(slope, inplace=True)]
            c_in = c_out
        self.net = nn.Sequential(*layers)
        self.out_size = cfg.input_size

    def forward(self, feat: torch.Tensor, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        x = torch.cat([feat, z, c], 1)[:, :, None, None]
        y = self.net(x)
        return POSITION_RANGE * torch.tanh(y)


class Discriminator(nn.Module):
    """D: F-like trunk -> 512 -> (real/fake logit, offsets)."""

    def __init__(self, cfg: NetConfig, n_vertices: int):
        super().__init__()
        self.trunk = Encoder.from_config(cfg)
        self.adv = nn.Linear(cfg.feature_dim, 1)
        self.reg = OffsetMLP(cfg.feature_dim, int(cfg.extra.get("shape_hidden", 1024)), n_vertices, cfg.leaky_slope)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.adv(h).squeeze(1), self.reg(h)


class DAShapeNet(nn.Module):
    """Inference part of DAShapeNet: F + R (G and D exist only for training)."""

    def __init__(self, cfg: "str | NetConfig", n_vertices: int):
        super().__init__()
        self.cfg = net_config(cfg)
        self.encoder = Encoder.from_config(self.cfg)
        self.regressor = Regressor(self.cfg, n_vertices)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.regressor(self.encoder(x))
