"""Seed 001's pipeline, made metric: photo -> MTCNN + ICT fit -> monocular depth -> metric depth
-> coloured point cloud -> surface mesh.

``PhotoDepthPipeline.from_pretrained(depth_model, reconstructor=...).run(photo) -> PhotoDepthResult``.

The photo fit (``facerecon.pipeline.photo.PhotoReconstructor``: MTCNN, landmarks, ICT fit) gives the
camera (intrinsics), the head's place in 3-D and a rendered depth of the fitted face.  A
network's relative inverse depth is scaled to that rendered depth at the inner-face pixels
(:mod:`facerecon.photo.metric`), so the cloud and mesh are in millimetres in the camera frame;
``face-model`` uses the rendered depth itself.  ``head_depth_mm`` (the metric depth inside the
fitted head's 3-D box) is what the depth path (``facerecon.pipeline.Reconstructor``) takes.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FaceReconError
from ..facemodel import FaceModel
from ..geometry.camera import Intrinsics
from ..io.frame import DepthFrame
from .depth import AUTO, FACE_MODEL, DepthBackend, known_depth_models, load_depth_backend
from .face_render import FaceRender, render_fitted_face
from .image import read_photo
from .metric import MetricFit, metric_depth
from .surface import Surface, SurfaceConfig, reconstruct_surface

# Metric depth farther than this many times the face's distance is dropped (a far wall in a
# relative map scaled at the face can land at any distance, also behind the camera).
MAX_DEPTH_FACTOR = 3.0
HEAD_MARGIN_MM = 20.0


@dataclass(frozen=True)
class PhotoDepthConfig:
    surface: SurfaceConfig = field(default_factory=SurfaceConfig)
    head_margin_mm: float = HEAD_MARGIN_MM
    max_depth_factor: float = MAX_DEPTH_FACTOR
    make_surface: bool = True
    seed: int = 0


@dataclass
class PhotoDepthResult:
    source: str
    rgb: np.ndarray  # (H, W, 3) uint8, upright
    fit: Any  # the photo fit's result (a FaceResult of facerecon.pipeline.photo)
    intrinsics: Intrinsics
    face: FaceRender  # the fitted face rendered at the photo's camera
    raw_depth: np.ndarray  # the backend's output at the photo size
    kind: str  # relative_inverse | metric_mm
    backend: str
    depth_mm: np.ndarray  # metric depth, whole photo, 0 = none
    head_mask: np.ndarray  # pixels whose 3-D point lies in the fitted head's box
    metric: MetricFit
    surface: Surface | None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def head_depth_mm(self) -> np.ndarray:
        """Metric depth inside the fitted head's box, 0 elsewhere: the depth frame for the depth path."""
        return np.where(self.head_mask, self.depth_mm, 0.0).astype(np.float32)

    def depth_frame(self):
        """The head depth as a :class:`~facerecon.io.frame.DepthFrame` (with the photo's colours)."""
        return DepthFrame(self.head_depth_mm, self.intrinsics, self.source, self.rgb,
                          {"photo_depth": {"backend": self.backend, "kind": self.kind}})

    def summary(self) -> dict:
        m = self.metric
        return {
            "source": self.source, "backend": self.backend, "kind": self.kind, "intrinsics": self.intrinsics.to_dict(),
            "metric": {**m.to_json(), "model": "1/z_mm = a*d + b" if self.kind == "relative_inverse" else "metric input, checked"},
            "head_pixels": int(self.head_mask.sum()), "inner_face_pixels": int(self.face.inner_mask.sum()),
            "surface": None if self.surface is None else {"method": self.surface.method, "points": self.surface.n_points,
                                                          "vertices": self.surface.n_vertices,
                                                          "triangles": self.surface.n_triangles},
            "timings_ms": {k: round(float(v), 2) for k, v in self.timings_ms.items()},
        }


# -- the photo fit's result, read defensively (it is another module's dataclass) -------------------
def fit_intrinsics(res) -> Intrinsics:
    for path in (("intrinsics",), ("camera", "intrinsics"), ("fit", "intrinsics")):
        obj = res
        for name in path:
            obj = getattr(obj, name, None)
        if isinstance(obj, Intrinsics):
            return obj
    raise TypeError(f"photo fit result {type(res).__name__} has no intrinsics")


def fit_timings(res) -> dict[str, float]:
    t = getattr(res, "timings_ms", None) or {}
    return {f"fit.{k}": float(v) for k, v in dict(t).items() if isinstance(v, (int, float))}


def head_points_mask(depth_mm: np.ndarray, intrinsics: Intrinsics, vertices_camera: np.ndarray, margin_mm: float) -> np.ndarray:
    """Pixels whose back-projected point lies inside the fitted head's axis-aligned 3-D box (+ margin)."""
    v = np.asarray(vertices_camera, np.float64)
    lo, hi = v.min(axis=0) - margin_mm, v.max(axis=0) + margin_mm
    pts = intrinsics.depth_to_points(np.asarray(depth_mm, np.float32))
    return (np.asarray(depth_mm) > 0) & np.all((pts >= lo) & (pts <= hi), axis=-1)


def describe_backend(requested: str | Path, backend: DepthBackend) -> tuple[str, bool]:
    """One line saying which depth backend a run uses, and whether it is the face-model
    fallback of ``auto`` (the fitted ICT face rendered back to depth: no monocular network at
    all, though none was asked for by name)."""
    name = str(getattr(backend, "name", backend))
    if name != FACE_MODEL:
        kind = getattr(backend, "kind", None)
        how = {"relative_inverse": "relative inverse depth, scaled to millimetres at the fitted face",
               "metric_mm": "metric depth, checked against the fitted face"}.get(kind, "monocular depth network")
        return f"depth backend: {name} ({how})", False
    what = ("the 'monocular depth' is the fitted ICT face rendered back to depth, not a depth network's view of "
            "the photo: it holds only what the face fit already knows")
    if str(requested).strip() == AUTO:
        looked = ", ".join(known_depth_models()) or "the models of depth_models.toml"
        return (f"depth backend: face-model (fallback: no depth network in the Hugging Face cache; looked for {looked}). "
                f"So {what}. For a real network: --depth-model NAME --download, a save_pretrained folder or an .onnx file "
                "(docs/photo_depth.md)"), True
    return f"depth backend: face-model (as asked): {what}", False


class PhotoDepthPipeline:
    """Photo fit + depth backend + metric step + Open3D surface."""
    def __init__(self, reconstructor, backend: DepthBackend, model: FaceModel, config: PhotoDepthConfig | None = None,
                 requested: str | Path | None = None):
        self.reconstructor = reconstructor
        self.backend = backend
        self.model = model
        self.config = config or PhotoDepthConfig()
        self.requested = requested  # the --depth-model given (``auto``: the backend may be the face-model fallback)

    def describe_backend(self) -> tuple[str, bool]:
        """``(line, is_fallback)``: see :func:`describe_backend`."""
        return describe_backend(self.requested if self.requested is not None else "", self.backend)

    @classmethod
    def from_pretrained(cls, depth_model: str | Path = AUTO, *, reconstructor, allow_download: bool = False,
                        config: PhotoDepthConfig | None = None) -> "PhotoDepthPipeline":
        """``reconstructor``: the photo fit (``facerecon.PhotoReconstructor``), or a function that
        makes one (called after the depth backend loaded: a missing model is reported before the
        slower photo models load)."""
        backend = load_depth_backend(depth_model, allow_download=allow_download)
        if not hasattr(reconstructor, "reconstruct"):
            reconstructor = reconstructor()
        model = getattr(reconstructor, "model", None)
        model = FaceModel.load() if model is None else model
        return cls(reconstructor, backend, model, config, requested=depth_model)

    def run(self, photo, focal_px: float | None = None, fit=None, stage: Callable[[str], None] | None = None
            ) -> PhotoDepthResult:
        """``photo``: a :class:`facerecon.photo.Photo` or a path; ``focal_px`` overrides EXIF / the default field of view;
        ``fit``: the photo fit's result when already made (e.g. one fit for several depth backends);
        ``stage(text)``: called as each stage starts (photo fit, face render, depth, metric, surface), for progress."""

        cfg = self.config
        stage = stage or (lambda _text: None)
        if not hasattr(photo, "rgb"):
            photo = read_photo(photo)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        if fit is None:
            stage("photo fit (face detector, landmarks, ICT fit)")
        res = fit if fit is not None else self.reconstructor.reconstruct(photo, focal_px=focal_px, texture=False)
        t1 = time.perf_counter()
        timings["photo_fit"] = (t1 - t0) * 1e3 if fit is None else float(getattr(res, "timings_ms", {}).get("total", 0.0))
        timings.update(fit_timings(res))
        k = fit_intrinsics(res)
        rgb = np.asarray(photo.rgb)
        stage("rendering the fitted face")
        face = render_fitted_face(res.vertices_camera, k, self.model)
        if int(face.inner_mask.sum()) == 0:
            raise FaceReconError(f"{photo.source}: the fitted face is not visible in the photo's camera")
        t2 = time.perf_counter()
        timings["face_render"] = (t2 - t1) * 1e3
        name = str(getattr(self.backend, "name", "depth"))
        stage("depth: the fitted face rendered back (face-model)" if name == FACE_MODEL else f"monocular depth ({name})")
        pred = self.backend.predict(rgb, face)
        t3 = time.perf_counter()
        timings["depth"] = (t3 - t2) * 1e3
        stage("metric scale at the face")
        z_face = float(np.median(face.depth_mm[face.inner_mask]))
        try:
            depth_mm, mfit = metric_depth(pred.depth, pred.kind, face.depth_mm, face.inner_mask,
                                          max_depth_mm=cfg.max_depth_factor * z_face, seed=cfg.seed)
        except FaceReconError as exc:
            raise FaceReconError(f"{photo.source}: {exc.one_line()}") from None
        head = head_points_mask(depth_mm, k, res.vertices_camera, cfg.head_margin_mm)
        t4 = time.perf_counter()
        timings["metric"] = (t4 - t3) * 1e3
        surface = None
        if cfg.make_surface:
            stage(f"surface mesh ({cfg.surface.method})")
            surface = reconstruct_surface(np.where(head, depth_mm, 0.0), rgb, k, head_vertices=res.vertices_camera,
                                          config=cfg.surface)
        t5 = time.perf_counter()
        timings["surface"] = (t5 - t4) * 1e3
        timings["total"] = (t5 - t0) * 1e3
        return PhotoDepthResult(str(photo.source), rgb, res, k, face, pred.depth, pred.kind, pred.backend, depth_mm, head,
                                mfit, surface, timings)
