"""The torch side of the shipped networks: loading them as torch modules, running them in torch,
building their ONNX files (safetensors only).

The pipeline runs the networks through :mod:`.runtime` (onnxruntime + NumPy, no torch); this
module is imported only for training and evaluation (:func:`load_pose_network`,
:func:`load_shape_network`), for building ONNX files (``facerecon assets build``, or a missing
file at run time with torch installed) and for the ``torch`` / ``auto`` comparison backends.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ..facemodel import FaceModel
from ..facemodel.shape_subset import ShapeSubset
from ..fileutil import atomic_path
from ..nets.argan import DAShapeNet
from ..nets.onnx_export import export_onnx
from ..nets.pose import DAPoseNet, fold_batchnorm
from ..nets.records import WeightsFile, weights_file, weights_meta, weights_path  # noqa: F401 - re-exported (training, benchmarks)
from ..train.checkpoint import load_checkpoint, load_weights

__all__ = ["TorchRunner", "build_onnx", "export_module", "load_module", "load_pose_network", "load_shape_network", "load_weights",
           "module_config", "module_key", "module_runner", "network_input", "torch_threads", "weights_meta", "weights_path"]


@contextmanager
def torch_threads(threads: int):
    """Run the block with torch limited to ``threads`` intra-op threads, restoring the
    caller's setting afterwards (setting it costs well under a microsecond).  The torch
    backend runs each network call this way: see ``inference_threads`` in ``configs/nets.toml``
    for the measurement behind it."""
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
    tensor, the layout the torch backend runs in (saves its conversion)."""
    data = np.asarray(data, np.float32)
    bhwc = np.ascontiguousarray(np.moveaxis(data[None] if data.ndim == 3 else data, 1, -1))
    return torch.from_numpy(bhwc).permute(0, 3, 1, 2)


# -- loading ----------------------------------------------------------------------------------------------------------


def load_module(wf: WeightsFile) -> torch.nn.Module:
    """The eval-mode torch network of a weights file or training checkpoint."""
    if wf.kind == "pose":
        net: torch.nn.Module = DAPoseNet(wf.config)
        modules = {"pose": net}
    else:
        net = DAShapeNet(wf.config, wf.n_vertices)
        modules = {"F": net.encoder, "R": net.regressor}
    if wf.checkpoint:
        load_checkpoint(wf.path, modules)
    else:
        load_weights(net, wf.path)
    return net.eval()


def load_pose_network(path: str | Path, config: str | None = None) -> tuple[DAPoseNet, dict]:
    """A torch pose network from exported weights or a training checkpoint, with its record."""
    wf = weights_file("pose", path, config)
    return load_module(wf), wf.meta


def load_shape_network(path: str | Path, model: FaceModel, config: str | None = None) -> tuple[DAShapeNet, ShapeSubset, dict]:
    """A torch shape network (exported weights or a training checkpoint), its vertex subset and its record."""
    wf = weights_file("shape", path, config)
    subset = ShapeSubset.from_indices(model, np.asarray(wf.meta["subset_vertices"], np.int64))
    return load_module(wf), subset, wf.meta


def module_config(net: torch.nn.Module):
    return getattr(net, "config", None) or net.cfg


# -- ONNX files -------------------------------------------------------------------------------------------------------


def export_module(net: torch.nn.Module, path: Path) -> Path:
    """Export ``net`` to ``path`` atomically (complete or absent)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        export_onnx(net, tmp)
    return path


def build_onnx(wf: WeightsFile, path: Path) -> Path:
    """Build the ONNX file of a weights file (the runtime's ``ensure_onnx`` names ``path``)."""
    return export_module(load_module(wf), path)


def module_key(net: torch.nn.Module, version: int) -> str:
    """A digest of an in-memory network's class, configuration and parameters (its ONNX file's name)."""
    import hashlib

    h = hashlib.sha256(f"{type(net).__name__}|{module_config(net)!r}|{version}".encode())
    for name, tensor in net.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


# -- running in torch -------------------------------------------------------------------------------------------------


class TorchRunner:
    """The torch backend: BatchNorm folded into the convs, channels-last, eager (no TorchScript
    trace: it cost ~7 s at every start and was not faster than eager on this CPU), under
    ``torch.no_grad`` with ``threads`` intra-op threads; the runtime's call convention
    (float32 array in, tuple of arrays out)."""

    def __init__(self, net: torch.nn.Module, threads: int = 1):
        self.module = fold_batchnorm(net).to(memory_format=torch.channels_last).eval()
        self.threads = int(threads)

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        with torch.no_grad(), torch_threads(self.threads):
            out = self.module(network_input(x))
        return tuple(o.numpy() for o in out) if isinstance(out, tuple) else (out.numpy(),)


def _median_ms(fn, x, n: int = 7) -> float:
    import time

    fn(x)
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn(x)
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1e3)


def module_runner(net: torch.nn.Module, choice: str, onnx_runner) -> tuple[str, object]:
    """(the backend chosen, its runner) for ``choice`` = torch | onnxruntime | auto (both timed
    on a batch of 2 at load, the faster kept); ``onnx_runner()`` opens the ONNX session.  Falls
    back to torch with a warning when the ONNX side fails."""
    import warnings

    eager = TorchRunner(net, module_config(net).inference_threads)
    if choice == "torch":
        return "torch", eager
    try:
        runner = onnx_runner()
    except Exception as exc:  # noqa: BLE001 - any failure of the optional backend: the torch path is correct
        warnings.warn(f"onnxruntime backend unavailable ({exc.__class__.__name__}: {exc}); using torch", stacklevel=3)
        return "torch", eager
    if choice == "auto":
        size = module_config(net).input_size
        x = np.zeros((2, 3, size, size), np.float32)
        if _median_ms(eager, x) < _median_ms(runner, x):
            return "torch", eager
    return "onnxruntime", runner
