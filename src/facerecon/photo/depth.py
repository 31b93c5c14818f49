"""Monocular depth from one photo, behind one small interface: ``depth_from_photo(rgb, backend) -> (depth, kind)``.

Backends (``load_depth_backend(spec)``, the CLI's ``--depth-model``):

* ``face-model``: the depth image of the photo's ICT fit (:mod:`facerecon.photo.face_render`);
  metric already (mm), runs on a fresh machine with no network weights.
* a folder saved with ``save_pretrained`` or a Hugging Face hub id in the local cache:
  ``DPTForDepthEstimation`` (DPT-Hybrid/Large, the seed's) or ``DepthAnythingForDepthEstimation``,
  chosen from the config's ``model_type``.  Weights load as safetensors only.  The hub is not
  contacted unless ``allow_download`` is set (these machines have no network; the cache is the
  normal Hugging Face cache, ``HF_HOME``).
* an exported ``.onnx`` file (``export_onnx``), run in onnxruntime, with its pre-processing in a
  ``<name>.json`` file beside it.
* a short name from ``configs/depth_models.toml`` (``dpt-hybrid``, ``depth-anything-v2-small``, ...).

``kind`` says what the numbers are: ``relative_inverse`` (larger = nearer, unknown scale and
shift; DPT and relative Depth Anything) or ``metric_mm`` (millimetres along the optical axis).
Relative output is made metric by :mod:`facerecon.photo.metric`.

Pre-processing follows the model's ``preprocessor_config.json`` when there is one, else the
defaults of the model family (``FAMILY_DEFAULTS``, the values of the published image
processors): resize (optionally keeping the aspect ratio) to a multiple of the patch grid,
scale to 0..1, normalise by mean/std.  The prediction is interpolated back to the photo size.
"""
from __future__ import annotations

import json
import math
import os
import tomllib
import warnings
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import ConfigError, InputFileError
from ..fileutil import atomic_path, write_text_atomic
from ..settings import check_keys

DEPTH_KINDS = ("relative_inverse", "metric_mm")
FACE_MODEL = "face-model"
AUTO = "auto"

# Published image-processor settings per family (used when a model folder has no
# preprocessor_config.json).  DPT (Intel/dpt-*): 384x384 square, mean = std = 0.5, bicubic;
# DPT's ViT backbone needs a square input (its reassembly assumes a square patch grid).
# Depth Anything: 518 on the shorter side keeping the aspect ratio, multiple of 14 (its
# DINOv2 patch), ImageNet mean/std, bicubic.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "dpt": {"height": 384, "width": 384, "keep_aspect_ratio": False, "multiple": 32,
            "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "rescale": 1 / 255.0},
    "depth_anything": {"height": 518, "width": 518, "keep_aspect_ratio": True, "multiple": 14,
                       "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "rescale": 1 / 255.0},
}

_KNOWN_KEYS = {"hub_id", "family", "source"}


def _how_to_provide(spec: str) -> str:
    return (f"depth model {spec!r} not found: give a folder saved with save_pretrained (config.json + model.safetensors), "
            "a hub id already in the Hugging Face cache (fetch it once with `huggingface-cli download <hub-id>` where there is "
            "network, e.g. Intel/dpt-hybrid-midas), an exported .onnx file, or `face-model` (no network weights)")


@lru_cache(maxsize=1)
def known_depth_models() -> dict[str, dict[str, str]]:
    """Short name -> {hub_id, family, source} from ``configs/depth_models.toml``."""
    text = resources.files("facerecon").joinpath("configs/depth_models.toml").read_text(encoding="utf-8")
    table = tomllib.loads(text)
    for name, row in table.items():
        check_keys(row, _KNOWN_KEYS, f"depth_models.toml [{name}]: ")
        if row.get("family") not in FAMILY_DEFAULTS:
            raise ConfigError(f"depth_models.toml [{name}]: family must be one of {', '.join(FAMILY_DEFAULTS)}")
    return table


# -- pre-processing -----------------------------------------------------------------------------
def _constrain_to_multiple(x: float, multiple: int, min_val: int = 0) -> int:
    """Nearest multiple (as the DPT/Depth Anything processors round), at least ``min_val``."""
    y = int(round(x / multiple) * multiple)
    if y < min_val:
        y = int(math.ceil(x / multiple) * multiple)
    return max(y, multiple)


@dataclass(frozen=True)
class Preprocess:
    """How a photo becomes network input: target size, rounding, scaling, normalisation."""

    height: int
    width: int
    keep_aspect_ratio: bool
    multiple: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    rescale: float = 1 / 255.0

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """Network input (rows, cols) for a ``height`` x ``width`` photo (the processors' rule:
        with keep_aspect_ratio the side whose scale is nearer 1 sets the scale of both)."""
        sh, sw = self.height / height, self.width / width
        if self.keep_aspect_ratio:
            if abs(1 - sw) < abs(1 - sh):
                sh = sw
            else:
                sw = sh
        return (_constrain_to_multiple(sh * height, self.multiple), _constrain_to_multiple(sw * width, self.multiple))

    def __call__(self, rgb: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """(H, W, 3) uint8 -> (1, 3, h, w) float32 network input."""
        from PIL import Image

        h, w = size or self.input_size(rgb.shape[0], rgb.shape[1])
        img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).resize((w, h), Image.BICUBIC)
        x = np.asarray(img, dtype=np.float32) * np.float32(self.rescale)
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(d: dict) -> "Preprocess":
        return Preprocess(int(d["height"]), int(d["width"]), bool(d["keep_aspect_ratio"]), int(d["multiple"]),
                          tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["std"]), float(d.get("rescale", 1 / 255.0)))


def preprocess_from_config(family: str, processor: dict | None = None, patch_size: int | None = None) -> Preprocess:
    """A model's pre-processing from its ``preprocessor_config.json`` (dict), else the family defaults."""
    d = dict(FAMILY_DEFAULTS[family])
    p = processor or {}
    size = p.get("size")
    if isinstance(size, dict):
        if "height" in size and "width" in size:
            d["height"], d["width"] = int(size["height"]), int(size["width"])
        elif "shortest_edge" in size:
            d["height"] = d["width"] = int(size["shortest_edge"])
    elif isinstance(size, int):
        d["height"] = d["width"] = int(size)
    if "keep_aspect_ratio" in p:
        d["keep_aspect_ratio"] = bool(p["keep_aspect_ratio"])
    if int(p.get("ensure_multiple_of", 1) or 1) > 1:
        d["multiple"] = int(p["ensure_multiple_of"])
    elif patch_size:
        d["multiple"] = int(patch_size)
    if p.get("do_normalize", True) is False:
        d["mean"], d["std"] = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    else:
        d["mean"] = tuple(float(v) for v in p.get("image_mean", d["mean"]))
        d["std"] = tuple(float(v) for v in p.get("image_std", d["std"]))
    if p.get("do_rescale", True) is False:
        d["rescale"] = 1.0
    else:
        d["rescale"] = float(p.get("rescale_factor", d["rescale"]))
    return Preprocess(**d)


def resize_to(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a float map to the photo size (pixel centres aligned, as torch's
    ``align_corners=False``); bilinear rather than bicubic so no new extremes appear at edges."""
    from PIL import Image

    d = np.asarray(depth, np.float32)
    if d.shape == (height, width):
        return d.copy()
    return np.asarray(Image.fromarray(d, mode="F").resize((width, height), Image.BILINEAR), np.float32)


# -- backends -----------------------------------------------------------------------------------
@dataclass
class DepthPrediction:
    depth: np.ndarray  # (H, W) float32 at the photo size
    kind: str  # one of DEPTH_KINDS
    backend: str  # what produced it (model name/path)
    meta: dict = field(default_factory=dict)


class DepthBackend(Protocol):
    name: str

    def predict(self, rgb: np.ndarray, face=None) -> DepthPrediction: ...


class FaceModelDepth:
    """The depth image of the photo's fitted ICT face (metric, mm); needs the fit (``face``):
    a :class:`facerecon.photo.face_render.FaceRender`."""

    name = FACE_MODEL

    def predict(self, rgb: np.ndarray, face=None) -> DepthPrediction:
        if face is None:
            raise ConfigError("depth model 'face-model' needs the photo's face fit (pass face=FaceRender)")
        if face.depth_mm.shape != tuple(rgb.shape[:2]):
            raise ValueError(f"face render is {face.depth_mm.shape}, photo is {rgb.shape[:2]}")
        return DepthPrediction(face.depth_mm.astype(np.float32), "metric_mm", self.name)


def _family_of(model_type: str, where: str) -> str:
    if model_type in ("dpt",):
        return "dpt"
    if model_type in ("depth_anything",):
        return "depth_anything"
    raise ConfigError(f"{where}: model_type {model_type!r} is not a supported depth network (dpt, depth_anything)")


class TransformersDepth:
    """A ``transformers`` depth network (DPT or Depth Anything) on the CPU."""

    def __init__(self, model, family: str, preprocess: Preprocess, kind: str, name: str, output_scale: float = 1.0):
        self.model = model.eval()
        self.family = family
        self.preprocess = preprocess
        self.kind = kind
        self.name = name
        self.output_scale = output_scale  # metric models predict metres: 1000 -> mm

    @classmethod
    def from_pretrained(cls, source: str | Path, *, local_files_only: bool = True) -> "TransformersDepth":
        """Load from a ``save_pretrained`` folder or a hub id (the local cache only unless
        ``local_files_only`` is False).  Safetensors weights only (never pickle)."""
        from transformers import AutoConfig, DepthAnythingForDepthEstimation, DPTForDepthEstimation

        src = str(source)
        try:
            config = AutoConfig.from_pretrained(src, local_files_only=local_files_only)
        except (OSError, ValueError, EnvironmentError):
            raise ConfigError(_how_to_provide(src)) from None
        family = _family_of(getattr(config, "model_type", ""), src)
        cls_ = DPTForDepthEstimation if family == "dpt" else DepthAnythingForDepthEstimation
        try:
            model = cls_.from_pretrained(src, config=config, local_files_only=local_files_only, use_safetensors=True)
        except (OSError, ValueError, EnvironmentError) as exc:
            raise ConfigError(f"depth model {src!r}: cannot load safetensors weights ({' '.join(str(exc).split())[:200]}); "
                              + _how_to_provide(src).split(": ", 1)[1]) from None
        processor = _read_processor_config(src, local_files_only)
        patch = getattr(getattr(config, "backbone_config", None), "patch_size", None) or getattr(config, "patch_size", None)
        pre = preprocess_from_config(family, processor, patch if family == "depth_anything" else None)
        metric = family == "depth_anything" and getattr(config, "depth_estimation_type", "relative") == "metric"
        return cls(model, family, pre, "metric_mm" if metric else "relative_inverse", src, 1000.0 if metric else 1.0)

    def forward(self, pixel_values: np.ndarray) -> np.ndarray:
        """Raw network output (1, h, w) for pre-processed input (1, 3, h, w)."""
        import torch

        with torch.no_grad():
            out = self.model(pixel_values=torch.from_numpy(pixel_values)).predicted_depth
        return out.numpy().astype(np.float32)

    def predict(self, rgb: np.ndarray, face=None) -> DepthPrediction:
        x = self.preprocess(rgb)
        raw = self.forward(x)[0] * np.float32(self.output_scale)
        return DepthPrediction(resize_to(raw, rgb.shape[0], rgb.shape[1]), self.kind, self.name,
                               {"input_size": list(x.shape[2:])})


def _read_processor_config(src: str, local_files_only: bool) -> dict | None:
    p = Path(src)
    if p.is_dir():
        f = p / "preprocessor_config.json"
        return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else None
    try:
        from transformers.utils import cached_file

        f = cached_file(src, "preprocessor_config.json", local_files_only=local_files_only,
                        _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False)
    except (OSError, ValueError, TypeError):
        return None
    return json.loads(Path(f).read_text(encoding="utf-8")) if f else None


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


class OnnxDepth:
    """An exported depth network run by onnxruntime.  ``<name>.json`` beside the file holds the
    pre-processing, the output kind and the fixed input size (written by :func:`export_onnx`);
    without it: the DPT defaults at the input's static size, relative inverse depth."""

    def __init__(self, path: str | Path):
        import onnxruntime as ort

        p = Path(path)
        if not p.is_file():
            raise ConfigError(_how_to_provide(str(p)))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, min(2, os.cpu_count() or 1))
        try:
            self.session = ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for bad files
            raise InputFileError(p, f"not a loadable ONNX model ({' '.join(str(exc).split())[:160]})") from None
        self.input_name = self.session.get_inputs()[0].name
        meta: dict = {}
        if _sidecar(p).is_file():
            meta = json.loads(_sidecar(p).read_text(encoding="utf-8"))
        shape = self.session.get_inputs()[0].shape
        fixed = meta.get("input_size") or ([int(shape[2]), int(shape[3])] if all(isinstance(s, int) for s in shape[2:]) else None)
        self.fixed_size = tuple(int(s) for s in fixed) if fixed else None
        self.preprocess = Preprocess.from_json(meta["preprocess"]) if "preprocess" in meta else preprocess_from_config("dpt")
        self.kind = meta.get("kind", "relative_inverse")
        if self.kind not in DEPTH_KINDS:
            raise InputFileError(_sidecar(p), f"kind must be one of {', '.join(DEPTH_KINDS)}, got {self.kind!r}")
        self.output_scale = float(meta.get("output_scale", 1.0))
        self.name = str(p)

    def forward(self, pixel_values: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(pixel_values, np.float32)})[0]
        return np.asarray(out, np.float32).reshape(1, *out.shape[-2:])

    def predict(self, rgb: np.ndarray, face=None) -> DepthPrediction:
        x = self.preprocess(rgb, self.fixed_size)
        raw = self.forward(x)[0] * np.float32(self.output_scale)
        return DepthPrediction(resize_to(raw, rgb.shape[0], rgb.shape[1]), self.kind, self.name,
                               {"input_size": list(x.shape[2:])})


def export_onnx(backend: TransformersDepth, path: str | Path, input_size: tuple[int, int] | None = None,
                opset: int = 17) -> Path:
    """Export a transformers depth network to ``path`` (.onnx) at a fixed input size (default:
    the pre-processing's target size) and write the ``.json`` sidecar that :class:`OnnxDepth` reads."""
    import torch


    p = Path(path)
    h, w = input_size or backend.preprocess.input_size(backend.preprocess.height, backend.preprocess.width)

    class _Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):
            return self.m(pixel_values=pixel_values).predicted_depth

    dummy = torch.zeros(1, 3, int(h), int(w))
    with atomic_path(p) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape checks: the export is at one fixed size
        # the TorchScript exporter: one self-contained file (the dynamo exporter may split
        # large weights into a side file that the atomic rename would leave behind)
        torch.onnx.export(_Wrap(backend.model).eval(), (dummy,), str(tmp), input_names=["pixel_values"],
                          output_names=["predicted_depth"], opset_version=opset, dynamo=False)
    meta = {"input_size": [int(h), int(w)], "preprocess": backend.preprocess.to_json(), "kind": backend.kind,
            "output_scale": backend.output_scale, "family": backend.family, "exported_from": backend.name}
    write_text_atomic(_sidecar(p), json.dumps(meta, indent=1))
    return p


def save_tiny_random_model(folder: str | Path, family: str = "dpt", *, metric: bool = False, seed: int = 0) -> Path:
    """Save a tiny randomly initialised DPT / Depth Anything (~40k parameters) with ``save_pretrained``
    and a ``preprocessor_config.json``: the real loading, ONNX export and pipeline code run on it
    where no real weights can be downloaded (tests, smoke benchmarks).  Its depth is meaningless.

    The weights are drawn wider than the default initialisation, whose output is near constant
    after the depth heads' ReLUs, so that equivalence checks compare real variation."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTConfig, DPTForDepthEstimation

    out = Path(folder)
    torch.manual_seed(seed)
    if family == "dpt":
        cfg = DPTConfig(hidden_size=16, num_hidden_layers=4, backbone_out_indices=[0, 1, 2, 3], num_attention_heads=2,
                        intermediate_size=32, image_size=64, patch_size=16, neck_hidden_sizes=[8, 8, 16, 16],
                        fusion_hidden_size=8)
        model = DPTForDepthEstimation(cfg)
        processor = {"size": {"height": 64, "width": 64}, "keep_aspect_ratio": False, "ensure_multiple_of": 1,
                     "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                     "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    elif family == "depth_anything":
        bb = Dinov2Config(hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32, image_size=56,
                          patch_size=14, out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
        cfg = DepthAnythingConfig(backbone_config=bb, reassemble_hidden_size=16, neck_hidden_sizes=[8, 8, 16, 16],
                                  fusion_hidden_size=8, head_hidden_size=8, patch_size=14,
                                  depth_estimation_type="metric" if metric else "relative", max_depth=20)
        model = DepthAnythingForDepthEstimation(cfg)
        processor = {"size": {"height": 70, "width": 70}, "keep_aspect_ratio": True, "ensure_multiple_of": 14,
                     "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
    else:
        raise ConfigError(f"family must be one of {', '.join(FAMILY_DEFAULTS)}, got {family!r}")
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.2 if p.ndim > 1 else 0.05))
    model.save_pretrained(out)  # safetensors
    (out / "preprocessor_config.json").write_text(json.dumps(processor, indent=1), encoding="utf-8")
    return out


# -- choosing a backend -------------------------------------------------------------------------
def _in_hf_cache(hub_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    hit = try_to_load_from_cache(hub_id, "config.json")
    return isinstance(hit, str)


def resolve_auto() -> str:
    """``auto``: the first model of ``depth_models.toml`` present in the Hugging Face cache, else ``face-model``."""
    for row in known_depth_models().values():
        if _in_hf_cache(row["hub_id"]):
            return row["hub_id"]
    return FACE_MODEL


def load_depth_backend(spec: str | Path = AUTO, *, allow_download: bool = False) -> DepthBackend:
    """``face-model`` | ``auto`` | a short name from depth_models.toml | a folder | a hub id | an .onnx file."""
    s = str(spec).strip()
    if s == AUTO:
        s = resolve_auto()
    if s == FACE_MODEL:
        return FaceModelDepth()
    known = known_depth_models()
    if s in known:
        s = known[s]["hub_id"]
    p = Path(s).expanduser()
    if s.lower().endswith(".onnx"):
        return OnnxDepth(p)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ConfigError(f"{p}: no config.json; " + _how_to_provide(str(p)).split(": ", 1)[1])
        return TransformersDepth.from_pretrained(p, local_files_only=True)
    if p.exists() or s.count("/") != 1 or s.startswith((".", "/", "~")):
        # an existing non-folder file, or a path that is not there: never a hub id
        raise ConfigError(_how_to_provide(s))
    return TransformersDepth.from_pretrained(s, local_files_only=not allow_download)


def depth_from_photo(rgb: np.ndarray, backend: DepthBackend | str = AUTO, face=None) -> tuple[np.ndarray, str]:
    """(H, W) depth at the photo size and its kind (``relative_inverse`` or ``metric_mm``)."""
    b = load_depth_backend(backend) if isinstance(backend, (str, Path)) else backend
    pred = b.predict(np.asarray(rgb), face)
    return pred.depth, pred.kind
