"""ONNX export of the inference networks (DAPoseNet, DAShapeNet): ``export_onnx(net, path)``.

The exported graph is the network as the pipeline runs it: eval mode, every Conv + BatchNorm
pair folded into one conv (:func:`facerecon.nets.pose.fold_batchnorm`), input
``position_image`` (B, 3, S, S) float32 with a dynamic batch axis (the test-time flip runs a
batch of 2).  Outputs: ``quat`` (B, 4, unit quaternion w, x, y, z, sign as predicted) and
``trans`` (B, 3, position-image units) for DAPoseNet; ``offsets`` (B, N, 3) for DAShapeNet.

TorchScript-based export (``dynamo=False``) is used first: measured on this 2-core machine it
takes ~5 s for the fast pose network against ~20 s for the dynamo exporter, with the same
graph; the dynamo exporter is the fallback when the other is unavailable.  Exporting is done
once per weights file (``facerecon assets build``) and run by :mod:`facerecon.pipeline.runtime`.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from .pose import DAPoseNet, fold_batchnorm

INPUT_NAME = "position_image"
OPSET = 17


def output_names(net: nn.Module) -> tuple[str, ...]:
    return ("quat", "trans") if isinstance(net, DAPoseNet) else ("offsets",)


def input_size(net: nn.Module) -> int:
    return int(net.encoder.input_size)


def export_onnx(net: nn.Module, path: str | Path, *, batch: int = 2) -> Path:
    """Write ``net`` (a module with an ``encoder``: DAPoseNet or DAShapeNet) as ONNX to ``path``
    (written in place: callers that need atomicity pass a temporary path)."""
    path = Path(path)
    m = fold_batchnorm(net).eval()
    size = input_size(m)
    x = torch.zeros(batch, 3, size, size)
    kw = dict(input_names=[INPUT_NAME], output_names=list(output_names(net)),
              dynamic_axes={INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in output_names(net)}})
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporters' deprecation and tracer notes
        try:
            torch.onnx.export(m, (x,), str(path), opset_version=OPSET, dynamo=False, **kw)
        except Exception:  # noqa: BLE001 - the TorchScript exporter is gone in this torch: the dynamo one
            torch.onnx.export(m, (x,), str(path), opset_version=18, dynamo=True, **kw)
    return path
