"""A second landmark source in the iBUG-68 convention: dlib's 68-point shape predictor.

Face Mesh's face oval lies inside the jaw line that iBUG annotators mark (docs/photo.md), so
its 68 points are poor on the outline; dlib's predictor (Kazemi & Sullivan's regression trees,
trained on iBUG 300-W) marks the outline as annotators do.  The two are fused per landmark in
:mod:`facerecon.photo.fusion`.

The model file is read only from the installed ``face-recognition-models`` package's data
(``shape_predictor_68_face_landmarks.dat``, dlib's own serialisation, not pickle); dlib itself
comes from the prebuilt ``dlib-bin`` wheel.  Both install with ``--no-deps`` (Makefile).

The predictor starts from a face box in the convention of dlib's HOG detector, on which it was
trained.  That box is made from landmarks already found (Face Mesh's 68, then dlib's own on a
second pass): a square of ``box_scale`` x the landmarks' size, centred ``box_offset`` sizes from
their centroid (``data/photo_landmarks.toml``, ``[dlib68]``; the constants are measured against
dlib's own detector: ``benchmarks/photo_landmark_calibration.py``).  A face whose box is below
``min_face_px`` is left to Face Mesh alone (``None``).
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AssetError, ConfigError
from ..settings import toml_defaults, with_overrides
from .detect import _as_rgb

BOX_SOURCES = ("landmarks", "mtcnn", "dlib_detector")


@toml_defaults("data/photo_landmarks.toml", "dlib68")
class Dlib68Config:
    """The ``[dlib68]`` table of ``data/photo_landmarks.toml`` (see the comments there)."""

    enabled: bool
    distribution: str
    model: str
    box_from: str
    box_scale: float
    box_offset: tuple[float, float]
    passes: int
    min_face_px: float
    crop_scale: float
    crop_max_px: int

    def __post_init__(self) -> None:
        if self.box_from not in BOX_SOURCES:
            raise ConfigError(f"dlib68.box_from: unknown {self.box_from!r}; choose from {', '.join(BOX_SOURCES)}")
        if (not 0.5 <= self.box_scale <= 5.0 or self.passes < 1 or self.min_face_px < 0 or not 1.2 <= self.crop_scale <= 4.0
                or self.crop_max_px < 64):
            raise ConfigError("dlib68: box_scale must be in [0.5, 5], passes >= 1, min_face_px >= 0, crop_scale in [1.2, 4], "
                              "crop_max_px >= 64")

    @staticmethod
    def from_dict(row: dict, where: str = "photo_landmarks.toml") -> "Dlib68Config":
        return with_overrides(Dlib68Config(), row, f"{where} [dlib68]")


@dataclass
class Dlib68Landmarks:
    """dlib's 68 points of one face (iBUG order, pixels) and the box they came from."""

    points: np.ndarray  # (68, 2)
    box: np.ndarray  # (4,) x0, y0, x1, y1 of the last pass's box


def model_path(cfg: Dlib68Config) -> Path:
    """The 68-point model inside the installed package (the disk is not searched elsewhere)."""
    try:
        p = Path(importlib.metadata.distribution(cfg.distribution).locate_file(cfg.model))
    except importlib.metadata.PackageNotFoundError:
        raise AssetError(f"dlib 68-point model: the {cfg.distribution} package is not installed "
                         f"(pip install --no-deps {cfg.distribution} dlib-bin; or set [dlib68] enabled = false)") from None
    if not p.is_file():
        raise AssetError(f"dlib 68-point model: {p} is missing from the {cfg.distribution} installation")
    return p


def landmark_size(points: np.ndarray) -> float:
    """Size of a face from its 68 points: the square root of their bounding box's area (px)."""
    p = np.asarray(points, np.float64)[:, :2]
    ext = p.max(0) - p.min(0)
    return float(np.sqrt(max(ext[0], 1e-9) * max(ext[1], 1e-9)))


def box_from_landmarks(points: np.ndarray, scale: float, offset) -> np.ndarray:
    """A dlib-detector-like square box (x0, y0, x1, y1) from 68 points."""
    p = np.asarray(points, np.float64)[:, :2]
    s = landmark_size(p)
    c = p.mean(0) + np.asarray(offset, np.float64) * s
    h = 0.5 * scale * s
    return np.array([c[0] - h, c[1] - h, c[0] + h, c[1] + h])


class Dlib68Landmarker:
    """``Dlib68Landmarker.from_package()(rgb, points68=..., box=...)`` -> :class:`Dlib68Landmarks` or None."""

    def __init__(self, path: str | Path, config: Dlib68Config | None = None) -> None:
        try:
            import dlib
        except ImportError:
            raise AssetError("dlib 68-point model: dlib is not installed (pip install --no-deps dlib-bin; "
                             "or set [dlib68] enabled = false)") from None
        self.config = config or Dlib68Config()
        try:
            self.predictor = dlib.shape_predictor(str(path))
        except RuntimeError as exc:
            raise AssetError(f"{path}: cannot load the dlib shape predictor ({' '.join(str(exc).split())[:200]})") from None
        self._dlib = dlib
        self._detector = None

    @staticmethod
    def from_package(config: Dlib68Config | None = None) -> "Dlib68Landmarker":
        cfg = config or Dlib68Config()
        return Dlib68Landmarker(model_path(cfg), cfg)

    def predict(self, rgb: np.ndarray, box) -> np.ndarray:
        """(68, 2) points from one box (x0, y0, x1, y1)."""
        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
        s = self.predictor(rgb, self._dlib.rectangle(x0, y0, x1, y1))
        return np.array([[s.part(i).x, s.part(i).y] for i in range(68)], np.float64)

    def detector_box(self, rgb: np.ndarray, near) -> np.ndarray | None:
        """dlib's own HOG detection nearest ``near`` (x, y), or None (slow on large images)."""
        if self._detector is None:
            self._detector = self._dlib.get_frontal_face_detector()
        dets = list(self._detector(rgb, 1))
        if not dets:
            return None
        c = np.asarray(near, np.float64)
        r = min(dets, key=lambda d: float(np.hypot((d.left() + d.right()) / 2 - c[0], (d.top() + d.bottom()) / 2 - c[1])))
        return np.array([r.left(), r.top(), r.right(), r.bottom()], np.float64)

    def __call__(self, rgb: np.ndarray, points68: np.ndarray | None = None, box=None) -> Dlib68Landmarks | None:
        """dlib's 68 points of the face marked by ``points68`` (another source's iBUG points, for
        ``box_from = "landmarks"``) or ``box`` (MTCNN's, for ``"mtcnn"``).  None when the face is too
        small for dlib (its box under ``min_face_px``) or dlib's detector finds nothing."""
        cfg = self.config
        rgb = _as_rgb(rgb)
        if cfg.box_from == "landmarks":
            if points68 is None:
                raise ValueError("dlib68: box_from = 'landmarks' needs the other source's 68 points")
            b = box_from_landmarks(points68, cfg.box_scale, cfg.box_offset)
        elif cfg.box_from == "mtcnn":
            if box is None:
                raise ValueError("dlib68: box_from = 'mtcnn' needs the face box")
            b = np.asarray(box, np.float64)
        else:
            near = np.asarray(points68, np.float64)[:, :2].mean(0) if points68 is not None else (
                np.asarray(box, np.float64).reshape(2, 2).mean(0))
            b = self.detector_box(rgb, near)
            if b is None:
                return None
        if b[2] - b[0] < cfg.min_face_px:
            return None
        angle = 0.0
        if points68 is not None:  # the eye line (outer corners 36, 45): dlib's predictor wants an upright face
            d = np.asarray(points68, np.float64)[45, :2] - np.asarray(points68, np.float64)[36, :2]
            angle = float(np.arctan2(d[1], d[0]))
        pts = self._predict_upright(rgb, b, angle)
        for _ in range(cfg.passes - 1):  # re-box from dlib's own points (its box convention)
            b = box_from_landmarks(pts, cfg.box_scale, cfg.box_offset)
            pts = self._predict_upright(rgb, b, angle)
        return Dlib68Landmarks(pts, b)

    def _predict_upright(self, rgb: np.ndarray, box: np.ndarray, angle: float) -> np.ndarray:
        """The predictor on a crop turned by ``angle`` (so the eyes are level; a phone held sideways
        gives faces rolled by 90 degrees), ``crop_scale`` x the box, at most ``crop_max_px`` wide;
        the points mapped back into the image."""
        from .landmarks import CropFrame, sample_crop

        cfg = self.config
        side = float(box[2] - box[0])
        frame = CropFrame(center=np.asarray(box, np.float64).reshape(2, 2).mean(0), side=cfg.crop_scale * side, angle=angle)
        n = int(min(round(frame.side), cfg.crop_max_px))
        crop = np.clip(sample_crop(rgb, frame, n), 0, 255).astype(np.uint8)
        h = 0.5 * side * n / frame.side
        pts = self.predict(crop, (n / 2 - h, n / 2 - h, n / 2 + h, n / 2 + h))
        return frame.to_image((pts + 0.5) / n)
