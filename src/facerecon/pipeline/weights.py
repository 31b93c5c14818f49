"""Shipped network weights: where they are and how they load (safetensors only)."""
from __future__ import annotations

from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..errors import AssetError, ConfigError
from ..facemodel.ict import facerecon_home
from ..fileutil import atomic_path
from ..nets.onnx_export import export_onnx
from ..nets.pose import fold_batchnorm
from ..train.checkpoint import load_weights, read_record

__all__ = ["INFERENCE_BACKENDS", "OnnxRunner", "blas_threads", "cached_onnx", "cpu_inference", "inference_backend", "load_weights", "network_input",
           "onnx_cache_path", "torch_threads", "weights_meta", "weights_path"]


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


_BLAS_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
                 "openblas_set_num_threads")


def _openblas_handles() -> list:
    """(set, get) function pairs of every OpenBLAS loaded in this process (numpy's and scipy's
    wheels each bundle one); empty where it cannot be found (not Linux, another BLAS)."""
    import ctypes

    if "_handles" in _openblas_handles.__dict__:
        return _openblas_handles._handles
    found = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            libs = sorted({line.split()[-1] for line in fh if "openblas" in line.lower() and line.split()[-1].startswith("/")})
    except OSError:
        libs = []
    for lib in libs:
        try:
            h = ctypes.CDLL(lib)
        except OSError:
            continue
        for name in _BLAS_SETTERS:
            getter = name.replace("set_num", "get_num")
            if hasattr(h, name) and hasattr(h, getter):
                getattr(h, getter).restype = ctypes.c_int
                found.append((getattr(h, name), getattr(h, getter)))
                break
    _openblas_handles._handles = found
    return found


@contextmanager
def blas_threads(threads: int):
    """Run the block with OpenBLAS limited to ``threads`` threads (numpy's and scipy's).
    Measured on the 2-core machine under load: a (600 x 55)^T (600 x 55) product took 65 ms
    with OpenBLAS's default two threads (the second one waits for a busy core) and 0.13 ms
    with one; the tracker's per-frame solves are all this small."""
    handles = _openblas_handles()
    before = [int(get()) for _, get in handles]
    for set_, _ in handles:
        set_(int(threads))
    try:
        yield
    finally:
        for (set_, _), n in zip(handles, before):
            set_(n)


def network_input(data) -> torch.Tensor:
    """(B, 3, S, S) (or one (3, S, S)) float32 position images -> a (B, 3, S, S) channels-last
    tensor, the layout the :func:`cpu_inference` torch path runs in (saves its conversion)."""
    data = np.asarray(data, np.float32)
    bhwc = np.ascontiguousarray(np.moveaxis(data[None] if data.ndim == 3 else data, 1, -1))
    return torch.from_numpy(bhwc).permute(0, 3, 1, 2)


INFERENCE_BACKENDS = ("torch", "onnxruntime")
_ONNX_CACHE_VERSION = 1  # bump when the exported graph changes (invalidates cached files)


def _net_config(net: torch.nn.Module):
    return getattr(net, "config", None) or net.cfg


def inference_backend(net: torch.nn.Module, backend: str | None = None) -> str:
    """The backend a network runs on: ``backend`` if given, else ``$FACERECON_BACKEND`` (for
    comparisons), else the configuration's ``inference_backend`` (``configs/nets.toml``)."""
    import os


    choice = backend or os.environ.get("FACERECON_BACKEND") or _net_config(net).inference_backend
    if choice not in (*INFERENCE_BACKENDS, "auto"):
        raise ConfigError(f"inference backend must be one of {', '.join(INFERENCE_BACKENDS)} or auto, got {choice!r}")
    return choice


def _folded(net: torch.nn.Module) -> torch.nn.Module:

    return fold_batchnorm(net).to(memory_format=torch.channels_last).eval()


def weights_key(net: torch.nn.Module) -> str:
    """A digest of a network's class, configuration and parameters (the ONNX cache key)."""
    import hashlib

    h = hashlib.sha256(f"{type(net).__name__}|{_net_config(net)!r}|{torch.__version__}|{_ONNX_CACHE_VERSION}".encode())
    for name, tensor in net.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def onnx_cache_path(net: torch.nn.Module) -> Path:
    """Where the exported ONNX twin of ``net`` is cached: ``$FACERECON_HOME/onnx/``."""
    return facerecon_home() / "onnx" / f"{type(net).__name__}-{weights_key(net)}.onnx"


def cached_onnx(net: torch.nn.Module) -> Path:
    """The ONNX file of ``net``, exported on first use and cached (atomic write), so no run
    after the first traces or exports anything."""

    path = onnx_cache_path(net)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            export_onnx(net, tmp)
    return path


class OnnxRunner:
    """An onnxruntime (CPU provider) session behind the torch call convention of the pipeline:
    ``runner(x)`` with ``x`` a (B, 3, S, S) tensor -> the outputs as tensors (a tuple when the
    network has several, like the torch module)."""

    def __init__(self, path: str | Path, threads: int = 1):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def run_numpy(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, np.float32)})

    def __call__(self, x: torch.Tensor):
        outs = tuple(torch.from_numpy(o) for o in self.run_numpy(x.detach().numpy()))
        return outs if len(outs) > 1 else outs[0]


def _median_ms(fn, x, n: int = 7) -> float:
    import time

    fn(x)
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn(x)
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1e3)


def cpu_inference(net: torch.nn.Module, backend: str | None = None):
    """The one inference path of the pipeline: the eval-mode twin of a network with an
    ``encoder`` (DAPoseNet, DAShapeNet), called as ``runner(x)`` with a (B, 3, S, S) tensor
    (see :func:`network_input`) and returning what the network returns (as a tuple).

    Backends (``configs/nets.toml`` ``inference_backend``, chosen by measurement there):

    * ``torch``: BatchNorm folded into the convs, channels-last, eager (no TorchScript
      trace: it cost ~7 s at every start and was not faster than eager on this CPU);
    * ``onnxruntime``: the exported ONNX twin (cached under ``$FACERECON_HOME/onnx``),
      onnxruntime's CPU provider with ``inference_threads`` threads;
    * ``auto``: both, timed on a batch of 2 at load, the faster kept.

    Falls back to ``torch`` with a warning when onnxruntime or the export is unavailable."""
    import warnings

    choice = inference_backend(net, backend)
    eager = _folded(net)
    if choice == "torch":
        return eager
    try:
        runner = OnnxRunner(cached_onnx(net), _net_config(net).inference_threads)
    except Exception as exc:  # noqa: BLE001 - any failure of the optional backend: the torch path is correct
        warnings.warn(f"onnxruntime backend unavailable ({exc.__class__.__name__}: {exc}); using torch", stacklevel=2)
        return eager
    if choice == "auto":
        size = eager.encoder.input_size
        x = network_input(np.zeros((2, 3, size, size), np.float32))
        with torch.no_grad(), torch_threads(_net_config(net).inference_threads):
            if _median_ms(eager, x) < _median_ms(runner, x):
                return eager
    return runner
