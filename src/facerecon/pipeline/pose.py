"""``PoseEstimator``: head pose from one depth frame in one call.

``localize_head -> make_position_image -> DAPoseNet -> HeadPose`` (camera frame), plus a
self-check: the fraction of reference-face landmarks that, under the predicted pose,
have a measured depth point within ``FIT_TOLERANCE_MM`` (a confidence that does not
need labels).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..camera import Intrinsics
from ..facemodel import FaceModel
from ..io.frame import DepthFrame
from ..nets.pose import (DAPoseNet, canonicalize_quaternion, flip_averaged, mirror_position_images, normalize_quaternion,
                         output_to_pose)
from ..pose_types import HeadPose
from ..preprocess.localize import HeadLocation, localize_head
from ..preprocess.position_image import PositionImage, make_position_image
from .weights import cpu_inference, load_weights, network_input, torch_threads, weights_path

FIT_TOLERANCE_MM = 10.0
# inner landmarks (brows, nose, eyes, mouth) used by the self-check
CHECK_LANDMARKS = tuple(range(17, 68))


@dataclass
class PoseResult:
    pose: HeadPose
    location: HeadLocation
    position_image: PositionImage
    confidence: float
    landmark_fit: float  # fraction of inner landmarks with a depth point within FIT_TOLERANCE_MM
    timings_ms: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        q = self.pose.quaternion_wxyz
        yaw, pitch, roll = self.pose.euler_deg
        return {
            "quaternion_wxyz": [float(v) for v in q],
            "rotation_matrix": self.pose.R.tolist(),
            "translation_mm": [float(v) for v in self.pose.t_mm],
            "euler_deg": {"yaw": float(yaw), "pitch": float(pitch), "roll": float(roll)},
            "euler_convention": "R = Ry(yaw) Rx(pitch) Rz(roll) about camera axes (x right, y down, z forward); "
            "yaw>0 face turns to image left, pitch>0 face turns down, roll>0 clockwise",
            "crop_box_px": [float(v) for v in self.position_image.crop_box],
            "head_box_px": [int(v) for v in self.location.box],
            "confidence": float(self.confidence),
            "landmark_fit": float(self.landmark_fit),
            "timings_ms": {k: round(float(v), 3) for k, v in self.timings_ms.items()},
        }


def as_frame(depth, intrinsics: Intrinsics | None = None, source: str = "") -> DepthFrame:
    if isinstance(depth, DepthFrame):
        return depth if intrinsics is None else depth.with_intrinsics(intrinsics)
    return DepthFrame(np.asarray(depth, np.float32), intrinsics, source=source or "array")


def landmark_fit_fraction(ref_landmarks: np.ndarray, pose: HeadPose, pim: PositionImage) -> float:
    """Fraction of head-frame landmarks with a measured point within ``FIT_TOLERANCE_MM`` in a
    5x5 pixel window around their projection into the crop (no search structure: ~0.1 ms)."""
    lm = pose.apply(ref_landmarks)
    uv = np.rint(pim.intrinsics.project(lm)).astype(np.int64)
    s = pim.size
    off = np.arange(-2, 3)
    us = np.clip(uv[:, 0, None, None] + off[None, None, :], 0, s - 1)
    vs = np.clip(uv[:, 1, None, None] + off[None, :, None], 0, s - 1)
    pts = pim.data[:, vs, us].transpose(1, 2, 3, 0) * pim.scale_mm + pim.center_mm  # (L, 5, 5, 3)
    ok = pim.valid[vs, us]
    d = np.linalg.norm(pts - lm[:, None, None, :], axis=-1)
    d[~ok] = np.inf
    return float((d.reshape(len(lm), -1).min(axis=1) <= FIT_TOLERANCE_MM).mean())


def locate_and_crop(depth, intrinsics: Intrinsics | None = None):
    """``(frame, HeadLocation, PositionImage, (t_start, t_located, t_cropped))``: the shared
    front of every predictor (networks and the fitting baseline)."""
    frame = as_frame(depth, intrinsics)
    if frame.intrinsics is None:
        raise ValueError(f"{frame.source}: no intrinsics; pass a camera preset or --intrinsics")
    t0 = time.perf_counter()
    loc = localize_head(frame)
    t1 = time.perf_counter()
    pim = make_position_image(frame, loc.center_mm)
    return frame, loc, pim, (t0, t1, time.perf_counter())


class PoseEstimator:
    """Head pose from a depth frame: ``PoseEstimator.from_pretrained().estimate(depth_mm, intrinsics)``."""

    def __init__(self, net: DAPoseNet, model: FaceModel | None = None, meta: dict | None = None):
        self.net = net.eval()
        self._fast = cpu_inference(self.net)
        self.meta = meta or {}
        self.model = model or FaceModel.load()
        self._ref_lm = self.model.landmarks(self.model.reference_vertices)[list(CHECK_LANDMARKS)].astype(np.float64)

    @classmethod
    def from_pretrained(cls, config: str = "fast", path: str | Path | None = None, model: FaceModel | None = None) -> "PoseEstimator":
        net = DAPoseNet(config)
        meta = load_weights(net, path or weights_path("pose", config))
        return cls(net, model, meta)

    def predict_position_image(self, pim: PositionImage) -> HeadPose:
        flip = self.net.config.test_time_flip
        data = np.stack([pim.data, mirror_position_images(pim.data)]) if flip else pim.data[None]
        with torch.no_grad(), torch_threads(self.net.config.inference_threads):
            quat, trans = self._fast(network_input(data))[:2]
        if flip:
            quat, trans = flip_averaged(quat, trans)
        q = canonicalize_quaternion(normalize_quaternion(quat))[0].double().numpy()
        return output_to_pose(q, trans[0].double().numpy(), pim)

    def landmark_fit(self, pose: HeadPose, pim: PositionImage) -> float:
        return landmark_fit_fraction(self._ref_lm, pose, pim)

    def estimate(self, depth, intrinsics: Intrinsics | None = None) -> PoseResult:
        return self.estimate_cropped(*locate_and_crop(depth, intrinsics))

    def estimate_cropped(self, frame: DepthFrame, loc: HeadLocation, pim: PositionImage, times: tuple[float, float, float]) -> PoseResult:
        """The network and its landmark self-check on what :func:`locate_and_crop` returned."""
        t0, t1, t2 = times
        pose = self.predict_position_image(pim)
        t3 = time.perf_counter()
        fit = self.landmark_fit(pose, pim)
        conf = float(np.clip(0.5 * loc.confidence + 0.5 * fit, 0.0, 1.0))
        timings = {"localize": (t1 - t0) * 1e3, "crop": (t2 - t1) * 1e3, "network": (t3 - t2) * 1e3,
                   "check": (time.perf_counter() - t3) * 1e3}
        return PoseResult(pose, loc, pim, conf, fit, timings)
