"""The inference runtime: the networks on onnxruntime + NumPy, without torch.

``reconstruct``, ``pose`` and ``track`` run the shipped networks from their ONNX files:
:func:`load_network` reads the weights file's record (safetensors header only,
:mod:`facerecon.nets.records`), finds the ONNX file built from it and opens an onnxruntime
session; what follows the network is NumPy (:mod:`facerecon.nets.decode`, and the shape
network's offsets -> model weights in ``Reconstructor``).  This module imports no torch: torch
is for training and for building the ONNX files (:mod:`.weights`, imported only then).

The ONNX files live in ``$FACERECON_HOME/onnx`` (default ``~/.cache/facerecon/onnx``), named by
a digest that needs no torch: the weights file's SHA-256, the network's graph configuration and
:data:`ONNX_CACHE_VERSION`.  ``facerecon assets build`` (``make assets``) builds them at install
time; when one is missing at run time it is built on the spot if torch is installed (one line on
stderr says so), otherwise the run stops with a one-line error asking for ``facerecon assets build``.

Backends (``configs/nets.toml`` ``inference_backend``, or ``$FACERECON_BACKEND`` for
comparisons): ``onnxruntime`` (the default, no torch), ``torch`` (the network in eager torch,
BatchNorm folded, channels-last) and ``auto`` (both timed at load, the faster kept); the last two
need torch.

Precision (``configs/nets.toml`` ``precision``, or ``$FACERECON_PRECISION``): ``fp32`` (the default)
or ``int8``, the onnxruntime backend running a static int8 version of the ONNX file
(:mod:`.quantise`; opt-in: faster, not numerically the same, docs/speed.md "Quantisation (item 5)").
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from ..errors import AssetError, ConfigError
from ..facemodel.ict import facerecon_home
from ..nets.configs import NetConfig
from ..nets.records import KINDS, WeightsFile, shipped_configs, weights_file, weights_meta, weights_path
from .quantise import INT8_VERSION, PRECISIONS, calibration_images, quantise_int8

__all__ = ["INFERENCE_BACKENDS", "KINDS", "ONNX_CACHE_VERSION", "Network", "OnnxRunner", "WeightsFile", "blas_threads", "build_onnx_files",
           "ensure_onnx", "inference_backend", "load_network", "module_network", "onnx_dir", "onnx_file", "onnx_path", "onnx_precision",
           "shipped_configs", "weights_file", "weights_meta", "weights_path"]

INFERENCE_BACKENDS = ("torch", "onnxruntime")
ONNX_CACHE_VERSION = 2  # bump when the exported graph changes (invalidates built files)
_CLASS = {"pose": "DAPoseNet", "shape": "DAShapeNet"}
# NetConfig fields that do not change the graph (how it runs, what it is called)
_RUN_ONLY = ("name", "inference_threads", "test_time_flip", "inference_backend", "source",
             "precision")  # precision: the int8 file is named after the float32 one (onnx_file)


# -- weights files and their ONNX files -------------------------------------------------------------------------------


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def graph_key(kind: str, config: NetConfig) -> str:
    """What of a configuration shapes the exported graph, as text (part of the ONNX file's digest)."""
    graph = {k: v for k, v in config.to_dict().items() if k not in _RUN_ONLY}
    return f"{_CLASS[kind]}|{json.dumps(graph, sort_keys=True)}|v{ONNX_CACHE_VERSION}"


def onnx_dir() -> Path:
    return facerecon_home() / "onnx"


def onnx_path(wf: WeightsFile) -> Path:
    """Where the ONNX file of ``wf`` lives: ``$FACERECON_HOME/onnx/<class>-<digest>.onnx``, the
    digest of the weights file's bytes, the graph configuration and the cache version."""
    digest = hashlib.sha256(f"{graph_key(wf.kind, wf.config)}|{_file_sha256(wf.path)}".encode()).hexdigest()[:20]
    return onnx_dir() / f"{_CLASS[wf.kind]}-{digest}.onnx"


def _torch_installed() -> bool:
    return find_spec("torch") is not None


def ensure_onnx(wf: WeightsFile, *, quiet: bool = False) -> tuple[Path, bool]:
    """(the ONNX file of ``wf``, whether it was built now).  Built here (with torch, written
    atomically) when missing; without torch, a one-line error asking for ``facerecon assets build``."""
    path = onnx_path(wf)
    if path.exists():
        return path, False
    if not _torch_installed():
        raise AssetError(f"{wf.path}: its ONNX file {path} is not built and torch is not installed to build it; "
                         "run 'facerecon assets build' where torch is installed (make assets), then copy $FACERECON_HOME/onnx")
    if not quiet:
        print(f"building the ONNX file of {wf.path.name} (once; 'facerecon assets build' does it at install) -> {path}",
              file=sys.stderr, flush=True)
    from . import weights  # torch: only to build

    weights.build_onnx(wf, path)
    return path, True


def onnx_precision(config: NetConfig, precision: str | None = None) -> str:
    """The precision of the ONNX file a network runs from: ``precision`` if given, else
    ``$FACERECON_PRECISION`` (for comparisons), else the configuration's ``precision``."""
    choice = precision or os.environ.get("FACERECON_PRECISION") or config.precision
    if choice not in PRECISIONS:
        raise ConfigError(f"network precision must be one of {', '.join(PRECISIONS)}, got {choice!r}")
    return choice


def onnx_file(wf: WeightsFile, precision: str | None = None, *, quiet: bool = False) -> tuple[Path, bool]:
    """(the ONNX file ``wf`` runs from at its precision, whether it was built now): the float32
    file of :func:`ensure_onnx`, or its static int8 version beside it (``<float32 name>.int8-v<N>.onnx``,
    built from it here when missing: :mod:`.quantise`)."""
    path, built = ensure_onnx(wf, quiet=quiet)
    if onnx_precision(wf.config, precision) == "fp32":
        return path, built
    q = path.with_name(f"{path.stem}.int8-v{INT8_VERSION}.onnx")
    if q.exists():
        return q, built
    if find_spec("onnx") is None:
        raise AssetError(f"{wf.path}: its int8 ONNX file {q} is not built and the onnx package is not installed to build it; "
                         "run 'facerecon assets build' where facerecon's export extra is installed (make assets)")
    if not quiet:
        print(f"building the int8 ONNX file of {wf.path.name} (once; calibrated on synthetic renders) -> {q}", file=sys.stderr, flush=True)
    batch = 2 if wf.kind == "pose" and wf.config.test_time_flip else 1
    quantise_int8(path, q, calibration_images(), batch)
    return q, True


def build_onnx_files(config: str = "fast") -> list[tuple[WeightsFile, Path, bool]]:
    """The ONNX files of the shipped pose and shape weights of ``config`` at its precision (``facerecon assets build``)."""
    out = []
    for kind in KINDS:
        wf = weights_file(kind, weights_path(kind, config), config)
        path, built = onnx_file(wf, quiet=True)
        out.append((wf, path, built))
    return out


# -- running ----------------------------------------------------------------------------------------------------------


class OnnxRunner:
    """An onnxruntime session (CPU provider, ``threads`` intra-op threads): ``runner(x)`` with
    ``x`` a (B, 3, S, S) float32 array -> the network's outputs, a tuple of arrays."""

    def __init__(self, path: str | Path, threads: int = 1):
        import onnxruntime as ort  # ~0.2 s: loaded when a network is

        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(self.session.run(None, {self.input_name: np.ascontiguousarray(x, np.float32)}))


@dataclass(frozen=True)
class Network:
    """A network as the pipeline runs it: ``network(x)``, ``x`` (B, 3, S, S) float32 position
    images -> its outputs as arrays: ``(quat (B, 4), trans (B, 3))`` for the pose network,
    ``(offsets (B, n, 3),)`` for the shape network (decoded by the caller, in NumPy)."""

    kind: str
    config: NetConfig
    runner: Callable[[np.ndarray], tuple]
    backend: str
    meta: dict = field(default_factory=dict, compare=False)
    source: Path | None = None

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        return self.runner(x)

    @property
    def threads(self) -> int:
        return self.config.inference_threads


def inference_backend(config: NetConfig, backend: str | None = None) -> str:
    """The backend a network runs on: ``backend`` if given, else ``$FACERECON_BACKEND`` (for
    comparisons), else the configuration's ``inference_backend`` (``configs/nets.toml``)."""
    choice = backend or os.environ.get("FACERECON_BACKEND") or config.inference_backend
    if choice not in (*INFERENCE_BACKENDS, "auto"):
        raise ConfigError(f"inference backend must be one of {', '.join(INFERENCE_BACKENDS)} or auto, got {choice!r}")
    return choice


def _onnxruntime_or_torch(choice: str) -> str:
    """``onnxruntime`` unless it is not installed: then ``torch`` with a warning (when torch is)."""
    if choice != "onnxruntime" or find_spec("onnxruntime") is not None:
        return choice
    if not _torch_installed():
        raise AssetError("neither onnxruntime nor torch is installed: install facerecon's dependencies (make install)")
    warnings.warn("onnxruntime is not installed; the networks run in torch", stacklevel=3)
    return "torch"


def load_network(kind: str, path: str | Path, config: str | None = None, backend: str | None = None) -> Network:
    """The network of a weights file or training checkpoint, ready to run (see the module's
    docstring for the backends and where the ONNX file comes from)."""
    wf = weights_file(kind, path, config)
    choice = _onnxruntime_or_torch(inference_backend(wf.config, backend))
    if choice == "onnxruntime":
        onnx_precision(wf.config)  # an unknown precision is an error, not a reason to fall back to torch
        try:
            runner = OnnxRunner(onnx_file(wf)[0], wf.config.inference_threads)
            return Network(kind, wf.config, runner, choice, wf.meta, wf.path)
        except AssetError:
            raise
        except Exception as exc:  # noqa: BLE001 - building or opening the ONNX file failed: torch is correct too
            if not _torch_installed():
                raise
            warnings.warn(f"{wf.path.name}: onnxruntime backend unavailable ({exc.__class__.__name__}: {exc}); using torch", stacklevel=2)
            choice = "torch"
    from . import weights  # torch: the comparison backends

    module = weights.load_module(wf)
    chosen, runner = weights.module_runner(module, choice, lambda: OnnxRunner(ensure_onnx(wf)[0], wf.config.inference_threads))
    return Network(kind, wf.config, runner, chosen, wf.meta, wf.path)


def module_network(net, backend: str | None = None) -> Network:
    """A torch network made in memory (DAPoseNet or DAShapeNet: training, benchmarks, tests) as a
    :class:`Network`; its ONNX file is exported once per parameter set into the same folder."""
    from . import weights  # the caller has torch already

    kind = "pose" if type(net).__name__ == "DAPoseNet" else "shape"
    config = weights.module_config(net)
    choice = _onnxruntime_or_torch(inference_backend(config, backend))

    def onnx_runner() -> OnnxRunner:
        path = onnx_dir() / f"{_CLASS[kind]}-m{weights.module_key(net, ONNX_CACHE_VERSION)}.onnx"
        if not path.exists():
            weights.export_module(net, path)
        return OnnxRunner(path, config.inference_threads)

    chosen, runner = weights.module_runner(net, choice, onnx_runner)
    return Network(kind, config, runner, chosen)


# -- BLAS threads -----------------------------------------------------------------------------------------------------


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
