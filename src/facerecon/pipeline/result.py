"""The one result of every path (depth: networks, pose only, fitting baseline; photo; rgbd) and the path a frame took.

A :class:`FaceResult` is built once, by the last stage of :mod:`.frame` (depth) or :mod:`.photo`
(photo, rgbd), and never patched.
Millimetres; camera frame x right, y down, z forward; head frame of :mod:`facerecon.facemodel`.
The JSON written for it is :func:`facerecon.export.pose_json.pose_document` (one schema,
``facerecon/data/pose.schema.json``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..fitting.correction import Correction
from ..geometry.pose import HeadPose
from ..preprocess.localize import HeadLocation
from ..preprocess.position_image import PositionImage
from .check import Candidate, Start, SurfaceCheck, start_label

if TYPE_CHECKING:
    from ..photo.camera import PhotoCamera
    from ..photo.fit import PhotoFit
    from ..photo.texture import PhotoTexture


@dataclass(frozen=True)
class FramePath:
    """Which stages ran and where the returned pose started (data, not a display string)."""

    start: Start
    turn_deg: float = 0.0  # Start.ROLLED / TURNED_CROP: the turn about the view axis
    yaw_deg: float = 0.0  # Start.GRID: the grid cell
    pitch_deg: float = 0.0
    refine_iterations: int = 0  # rigid point-to-plane iterations (0: the start was only checked)
    shape_on_turned_crop: bool = False  # the shape network ran again on the turned crop
    shape_iterations: int = 0  # joint pose + identity Gauss-Newton iterations after the check

    @property
    def label(self) -> str:
        """The path in words, e.g. ``network on input turned 90+refine+refine-shape 3``."""
        out = start_label(self.start, self.turn_deg, self.yaw_deg, self.pitch_deg)
        if self.refine_iterations > 0:
            out += "+refine"
        if self.shape_iterations > 0:
            out += f"+refine-shape {self.shape_iterations}"
        return out

    @staticmethod
    def of(c: Candidate, refine_iterations: int, shape_on_turned_crop: bool = False, shape_iterations: int = 0) -> "FramePath":
        return FramePath(c.start, c.turn_deg, c.yaw_deg, c.pitch_deg, int(refine_iterations), shape_on_turned_crop, int(shape_iterations))

    def to_json(self) -> dict:
        out = {"start": self.start.value, "label": self.label, "refine_iterations": int(self.refine_iterations),
               "shape_iterations": int(self.shape_iterations)}
        if self.start in (Start.ROLLED, Start.TURNED_CROP):
            out["turn_deg"] = float(self.turn_deg)
        if self.start is Start.GRID:
            out["yaw_deg"], out["pitch_deg"] = float(self.yaw_deg), float(self.pitch_deg)
        if self.shape_on_turned_crop:
            out["shape_on_turned_crop"] = True
        return out


@dataclass(frozen=True, eq=False)
class PhotoEvidence:
    """What a photo result was made from: the fit to its landmarks and the face it found."""

    fit: PhotoFit  # the fit's statistics (rgbd: its pose refined on the depth)
    face_box: np.ndarray  # (4,) x0, y0, x1, y1 of the detected face, px
    detected_68: np.ndarray | None  # (68, 2) the landmark model's points in the iBUG layout (what was fitted), px
    face_index: int = 0  # rank by face size in the photo (0 = largest)
    landmark_sources: tuple[str, ...] = ("facemesh",)  # the landmark models fused into detected_68 ("facemesh", "dlib68")


@dataclass(frozen=True, eq=False)
class FaceResult:
    """One face: pose, the decision about it, the mesh (unless pose only), and the evidence of the
    method that made it (depth: the check against the measured surface; photo: camera, fit, texture)."""

    pose: HeadPose
    confidence: float  # depth: from the check (configs/check.toml); photo: face detector score x landmark model score
    face: bool  # the face / no-face decision (depth: confidence >= configs/check.toml [decision] face_threshold; photo: always)
    reason: str  # why not a face (empty for a face)
    path: FramePath  # the stages the frame went through and where the returned pose started
    vertices_head: np.ndarray | None = None  # (V, 3) canonical head frame, the returned (person-specific) surface; None for pose only
    vertices_camera: np.ndarray | None = None  # (V, 3) camera frame
    landmarks_3d: np.ndarray | None = None  # (68, 3) camera frame, vertices of the returned surface
    landmarks_2d: np.ndarray | None = None  # (68, 2) pixels
    identity: np.ndarray | None = None  # (100,) identity weights of the returned shape
    expression: np.ndarray | None = None  # (55,) expression weights (first 53 ARKit-named)
    # depth evidence (None / empty for a photo)
    check: SurfaceCheck | None = None  # the returned face against the measured surface
    confidence_terms: dict = field(default_factory=dict)
    plausibility: dict = field(default_factory=dict)
    location: HeadLocation | None = None
    position_image: PositionImage | None = None
    network_pose: HeadPose | None = None  # the networks' pose before refinement / fallback (None: no network)
    network_check: SurfaceCheck | None = None
    other_heads: tuple = ()  # HeadLocation of other head-like regions (when searched)
    timings_ms: dict = field(default_factory=dict)  # per stage, and "total"
    source: str = ""
    # the out-of-span correction (depth, pose + shape): the model-only surface, the detail status and the field
    model_vertices_head: np.ndarray | None = None  # (V, 3) head frame: the model fit alone (= vertices_head unless detail is "on")
    detail: str = "off"  # "on" | "off" (not asked for) | "off: <reason>" (asked for, refused: the model surface is returned)
    correction: Correction | None = None  # the solved field and its statistics (None: not run)
    # photo evidence (None for a depth frame)
    camera: PhotoCamera | None = None  # the photo's camera (intrinsics, where the focal length came from)
    texture: PhotoTexture | None = None  # the UV texture sampled from the photo (None: not asked for)
    photo: PhotoEvidence | None = None

    @property
    def model_vertices_camera(self) -> np.ndarray | None:
        """The model-only surface in the camera frame (what ``--detail off`` returns)."""
        return None if self.model_vertices_head is None else self.pose.apply(self.model_vertices_head)

    @property
    def landmark_fit(self) -> float:
        """Fraction of the inner landmarks with a measured point within 10 mm (returned pose; depth only)."""
        return float("nan") if self.check is None else self.check.landmark_fit

    @property
    def refine_iterations(self) -> int:
        return self.path.refine_iterations

    @property
    def chosen(self) -> str:
        """The path in words (for tables and logs)."""
        return self.path.label
