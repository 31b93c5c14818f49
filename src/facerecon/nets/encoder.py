"""Encoder F (seed 002, section 1.1): position image (3 x S x S) -> feature vector.

Eleven convolutions.  Layers 1-10 alternate a 4x4 stride-2 conv (padding 1: halves the
map) and a 3x3 stride-1 conv (padding 1: keeps it), each followed by BatchNorm and
LeakyReLU; so 160 -> 80 -> 80 -> 40 -> 40 -> 20 -> 20 -> 10 -> 10 -> 5 -> 5.  Layer 11
is a 5x5 (``input_size / 32``) stride-1 conv without padding to ``feature_dim`` channels
(5x5 -> 1x1) followed by LeakyReLU (``final_activation="tanh"`` gives G's variant,
``"none"`` a linear output).  Channel widths come from the configuration table
(``facerecon/configs/nets.toml``; the paper does not give them).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .configs import NetConfig, net_config


class Encoder(nn.Module):
    """F: ``(B, in_channels, S, S) -> (B, feature_dim)``."""

    def __init__(
        self,
        widths: Sequence[int],
        feature_dim: int = 512,
        input_size: int = 160,
        in_channels: int = 3,
        leaky_slope: float = 0.2,
        final_activation: str = "leaky_relu",
    ):
        super().__init__()
        if len(widths) != 10:
            raise ValueError(f"Encoder needs 10 widths (layers 1-10), got {len(widths)}")
        if input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, got {input_size}")
        self.input_size = int(input_size)
        self.feature_dim = int(feature_dim)
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, c_out in enumerate(widths):
            if i % 2 == 0:
                conv = nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1, bias=False)
            else:
                conv = nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1, bias=False)
            layers += [conv, nn.BatchNorm2d(c_out), nn.LeakyReLU(leaky_slope, inplace=True)]
            c_in = c_out
        k = input_size // 32
        layers.append(nn.Conv2d(c_in, feature_dim, kernel_size=k, stride=1, padding=0, bias=True))
        if final_activation == "leaky_relu":
            layers.append(nn.LeakyReLU(leaky_slope, inplace=True))
        elif final_activation == "tanh":
            layers.append(nn.Tanh())
        elif final_activation != "none":
            raise ValueError(f"final_activation must be leaky_relu, tanh or none, got {final_activation!r}")
        self.net = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=leaky_slope, nonlinearity="leaky_relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @staticmethod
    def from_config(cfg: "str | NetConfig", **kw) -> "Encoder":
        cfg = net_config(cfg)
        return Encoder(cfg.encoder_widths, cfg.feature_dim, cfg.input_size, leaky_slope=cfg.leaky_slope, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and (x.shape[-1] != self.input_size or x.shape[-2] != self.input_size):
            raise ValueError(f"Encoder expects {self.input_size}x{self.input_size} inputs, got {tuple(x.shape[-2:])}")
        return self.net(x).flatten(1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv_macs(module: nn.Module, input_size: int, in_channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass (convolutions and linear layers)."""
    total = 0
    hooks = []

    def conv_hook(m, inp, out):
        nonlocal total
        total += out.numel() // out.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def lin_hook(m, inp, out):
        nonlocal total
        total += m.in_features * m.out_features

    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(lin_hook))
    was_training = module.training
    module.eval()
    with torch.no_grad():
        module(torch.zeros(1, in_channels, input_size, input_size))
    module.train(was_training)
    for h in hooks:
        h.remove()
    return int(total)
