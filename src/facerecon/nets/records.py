"""Weights files: where the shipped ones are, and the ``facerecon`` record of a weights file or
training checkpoint (safetensors), read without torch.

Shipped weights keep their training record (command, steps, network configuration, subset
vertices) in the safetensors metadata; checkpoints keep ``{"meta": ..., "optimizers": ...}``
there and their tensors under ``model.<module>.`` (:mod:`facerecon.train.checkpoint` writes
both).  The inference runtime reads only this header (no tensors: the networks run from their
ONNX files), so it needs neither torch nor the tensors' bytes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..errors import AssetError, InputFileError
from .configs import NetConfig, net_config, net_config_names

CHECKPOINT_PREFIX = "model."  # a checkpoint's module tensors: model.<module>.<parameter>


def read_header(path: str | Path) -> tuple[dict, list[str]]:
    """(the ``facerecon`` JSON record, the tensor names) of a safetensors file."""
    from safetensors import safe_open  # the reader's Rust extension: loaded only when a file is read

    try:
        with safe_open(str(path), framework="numpy") as f:
            return json.loads((f.metadata() or {}).get("facerecon", "{}")), list(f.keys())
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise InputFileError(path, f"not a facerecon safetensors file ({exc})") from None


def is_checkpoint_keys(keys: list[str]) -> bool:
    """Training checkpoints keep their tensors under ``model.<module>.``; shipped weights do not."""
    return any(k.startswith(CHECKPOINT_PREFIX) for k in keys)


def training_record(path: str | Path) -> tuple[dict, bool]:
    """(the training record, whether the file is a checkpoint): a checkpoint's ``meta``, a
    weights file's whole record."""
    record, keys = read_header(path)
    ckpt = is_checkpoint_keys(keys)
    return (record.get("meta", {}) if ckpt else record), ckpt


KINDS = ("pose", "shape")


def weights_path(kind: str, config: str = "fast") -> Path:
    """Packaged weights file ``weights/<kind>_<config>.safetensors`` (kind: pose | shape)."""
    p = Path(str(resources.files("facerecon").joinpath(f"weights/{kind}_{config}.safetensors")))
    if not p.exists():
        raise AssetError(f"no shipped {kind} weights for configuration {config!r} ({p}); train them with 'facerecon train'")
    return p


def shipped_configs() -> list[str]:
    """The network configurations with shipped pose and shape weights."""
    root = resources.files("facerecon").joinpath("weights")
    return [c for c in net_config_names() if all(root.joinpath(f"{k}_{c}.safetensors").is_file() for k in KINDS)]


def weights_meta(path: str | Path) -> dict:
    """The training record stored in a weights file (command, steps, config, subset vertices)."""
    return training_record(path)[0]


@dataclass(frozen=True)
class WeightsFile:
    """A network's weights (shipped safetensors or a training checkpoint), described by its record."""

    kind: str  # pose | shape
    path: Path
    config: NetConfig
    meta: dict = field(compare=False)
    checkpoint: bool = False

    @property
    def n_vertices(self) -> int:
        """The shape network's output vertices (its subset)."""
        return len(self.meta["subset_vertices"])


def weights_file(kind: str, path: str | Path, config: str | None = None) -> WeightsFile:
    """Describe a weights file without loading it: its network configuration is the one its
    record names (a checkpoint's training configuration, a weights file's ``net``), else ``config``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    path = Path(path)
    meta, ckpt = training_record(path)
    try:
        name = meta["config"]["net"] if ckpt else meta.get("net", config or "fast")
    except (KeyError, TypeError):
        raise InputFileError(path, "a checkpoint without its training configuration (meta.config.net)") from None
    if kind == "shape" and "subset_vertices" not in meta:
        raise InputFileError(path, "not a shape network's weights (its record has no subset_vertices)")
    return WeightsFile(kind, path, net_config(name), meta, ckpt)
