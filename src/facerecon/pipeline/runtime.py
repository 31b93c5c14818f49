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


_SHA_CACHE = "weights-sha256.json"  # in onnx_dir(): file identity -> SHA-256 of its bytes
_SHA_CACHE_ENTRIES = 64


def _file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, remembered in ``onnx_dir()/weights-sha256.json`` by the file's path, size,
    inode and modification / change times (hashing the two shipped weights files is ~35 ms of every cold
    start; any write to a file changes its ctime, so a remembered digest is of the bytes as they are)."""
    p = Path(path).resolve()
    try:
        st = p.stat()
        ident = [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]
    except OSError:
        ident = None
    cache_file = onnx_dir() / _SHA_CACHE
    cache: dict = {}
    if ident is not None:
        try:
            cache = json.loads(cache_file.read_text(encoding="utf-8"))
            hit = cache.get(str(p)) if isinstance(cache, dict) else None
            if isinstance(hit, dict) and hit.get("ident") == ident and isinstance(hit.get("sha256"), str):
                return hit["sha256"]
        except (OSError, ValueError):
            cache = {}
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    if ident is not None:
        from ..fileutil import write_text_atomic

        cache = {k: v for k, v in (cache.items() if isinstance(cache, dict) else ()) if k != str(p)}
        cache = dict(list(cache.items())[-(_SHA_CACHE_ENTRIES - 1):])
        cache[str(p)] = {"ident": ident, "sha256": digest}
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(cache_file, json.dumps(cache, indent=1))
        except OSError:  # a cache that cannot be written: hashed again next time
            pass
    return digest


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

        self.path = Path(path)
        self.threads = int(threads)
        optimized = _optimized_path(self.path, ort.__version__)
        self.session = None
        if optimized is not None and optimized.exists():
            try:  # the graph as onnxruntime optimised it on this machine before: no optimisation now
                self.session = self._session(optimized, False)
                self.session_path = optimized
            except Exception:  # noqa: BLE001 - unreadable: the source graph, optimised here as before
                self.session = None
        if self.session is None:
            self.session = self._session(self.path, True)
            self.session_path = self.path
            if optimized is not None:
                _save_optimized(self, optimized)
        self.input_name = self.session.get_inputs()[0].name

    def _session(self, path: Path, optimize: bool, save_to: Path | None = None):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        level = ort.GraphOptimizationLevel
        so.graph_optimization_level = level.ORT_ENABLE_ALL if optimize else level.ORT_DISABLE_ALL
        so.log_severity_level = 3
        if save_to is not None:
            so.optimized_model_filepath = str(save_to)
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(self.session.run(None, {self.input_name: np.ascontiguousarray(x, np.float32)}))


# Opening a session optimises its graph (ORT_ENABLE_ALL: ~30-45 ms per network of every cold start).  The optimised
# graph is saved once beside the ONNX file and opened with no optimisation after that: it holds this machine's
# layout choices (onnxruntime: "only for the same hardware"), so its name carries the source file's identity,
# the onnxruntime version and the CPU's model and flags, and it is kept only where its outputs equal the source
# session's bit for bit on a test input (else a ".differs" marker: the source graph is optimised every time).
_OPTIMIZED_VERSION = 1


def _cpu_identity() -> str:
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            head = fh.read().split("\n\n", 1)[0]
        keep = [line for line in head.splitlines() if line.split(":")[0].strip() in ("vendor_id", "model name", "flags")]
        return "|".join(keep) or platform.processor() or platform.machine()
    except OSError:
        return f"{platform.machine()}|{platform.processor()}"


def _optimized_path(path: Path, ort_version: str) -> Path | None:
    """Where the optimised graph of the ONNX file ``path`` is kept for this onnxruntime and CPU (None: not kept)."""
    try:
        st = path.stat()
    except OSError:
        return None
    key = f"{path.name}|{st.st_size}|{st.st_mtime_ns}|{ort_version}|{_cpu_identity()}|v{_OPTIMIZED_VERSION}"
    return path.with_name(f"{path.stem}.opt-{hashlib.sha256(key.encode()).hexdigest()[:16]}.onnx")


def _save_optimized(runner: "OnnxRunner", optimized: Path) -> None:
    """Save ``runner``'s graph as onnxruntime optimises it to ``optimized`` (atomic), if a session of the saved
    graph gives the outputs of ``runner.session`` bit for bit on a seeded test input; a cache that cannot be
    written is left alone."""
    marker = optimized.with_suffix(".differs")
    if marker.exists():
        return
    tmp = optimized.with_name(f".{optimized.name}.{os.getpid()}.tmp")
    try:
        runner._session(runner.path, True, save_to=tmp)
        inp = runner.session.get_inputs()[0]
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
        x = np.random.default_rng(0).normal(scale=0.5, size=shape).astype(np.float32)
        want = runner.session.run(None, {inp.name: x})
        got = runner._session(tmp, False).run(None, {inp.name: x})
        if len(got) == len(want) and all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(got, want)):
            os.replace(tmp, optimized)
        else:
            marker.write_text("the optimised graph's outputs differ from the source graph's on this machine\n", encoding="utf-8")
    except Exception:  # noqa: BLE001 - no cache: the source graph is optimised when opened, as before
        pass
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


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
