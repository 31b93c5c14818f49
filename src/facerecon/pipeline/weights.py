"""Shipped network weights: where they are and how they load (safetensors only)."""
from __future__ import annotations

from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..errors import AssetError
from ..train.checkpoint import load_weights, read_record

__all__ = ["cpu_inference", "load_weights", "network_input", "torch_threads", "weights_meta", "weights_path"]


def weights_path(kind: str, config: str = "fast") -> Path:
    """Packaged weights file ``weights/<kind>_<config>.safetensors`` (kind: pose | shape)."""
    p = Path(str(resources.files("facerecon").joinpath(f"weights/{kind}_{config}.safetensors")))
    if not p.exists():
        raise AssetError(f"no shipped {kind} weights for configuration {config!r} ({p}); train them with 'facerecon train'")
    return p


def weights_meta(path: str | Path) -> dict:
    """The training record stored in a weights file (command, steps, config, subset vertices)."""
    return read_record(path)[0]


@contextmanager
def torch_threads(threads: int):
    """Run the block with torch limited to ``threads`` intra-op threads, restoring the
    caller's setting afterwards (setting it costs well under a microsecond).  The pipeline
    runs each frame this way: see ``inference_threads`` in ``configs/nets.toml`` for the
    measurement behind it."""
    before = torch.get_num_threads()
    if before == threads:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def network_input(data) -> torch.Tensor:
    """(B, 3, S, S) (or one (3, S, S)) float32 position images -> a (B, 3, S, S) channels-last
    tensor, the layout :func:`cpu_inference` networks are traced for (saves their conversion)."""
    data = np.asarray(data, np.float32)
    bhwc = np.ascontiguousarray(np.moveaxis(data[None] if data.ndim == 3 else data, 1, -1))
    return torch.from_numpy(bhwc).permute(0, 3, 1, 2)


def cpu_inference(net: torch.nn.Module) -> torch.nn.Module:
    """Fast eval-mode twin of a network with an ``encoder`` (BatchNorm folded into the convs,
    channels-last, frozen TorchScript trace when available): same outputs, ~2x faster on a CPU.
    Falls back to the folded eager module if tracing fails."""
    import warnings

    from ..nets.pose import fold_batchnorm

    m = fold_batchnorm(net).to(memory_format=torch.channels_last).eval()
    size = m.encoder.input_size
    x = torch.zeros(1, 3, size, size).contiguous(memory_format=torch.channels_last)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            return torch.jit.freeze(torch.jit.trace(m, x, strict=False))
    except Exception:  # noqa: BLE001 - TorchScript unavailable: the eager folded module is correct
        return m
