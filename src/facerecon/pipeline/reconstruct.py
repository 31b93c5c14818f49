"""``Reconstructor``: depth frame -> posed metric 3D face (ICT topology) in one call.

``localize -> position image -> DAPoseNet (pose) + DAShapeNet (subset offsets) ->
fixed upsampling to every ICT vertex (``ShapeSubset``) -> head-frame mesh -> R v + t``.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..camera import Intrinsics
from ..facemodel import FaceModel
from ..facemodel.shape_subset import ShapeSubset
from ..nets.argan import OFFSET_UNIT_MM, DAShapeNet
from ..pose_types import HeadPose
from .pose import PoseEstimator, PoseResult, as_frame, locate_and_crop
from .weights import cpu_inference, load_weights, network_input, torch_threads, weights_meta, weights_path



@dataclass
class FaceReconstruction:
    """One reconstructed face. Millimetres; camera frame x right, y down, z forward."""

    pose: HeadPose
    vertices_head: np.ndarray  # (V, 3) canonical head frame
    vertices_camera: np.ndarray  # (V, 3) camera frame
    landmarks_3d: np.ndarray  # (68, 3) camera frame
    landmarks_2d: np.ndarray  # (68, 2) pixels
    identity: np.ndarray  # (100,) model weights of the reconstructed shape
    expression: np.ndarray  # (55,)
    confidence: float
    pose_result: PoseResult
    timings_ms: dict = field(default_factory=dict)
    source: str = ""


class Reconstructor:
    """``Reconstructor.from_pretrained().reconstruct(depth_mm, intrinsics) -> FaceReconstruction``."""

    def __init__(self, pose: PoseEstimator, shape: DAShapeNet, subset: ShapeSubset):
        self.pose = pose
        self.shape = shape.eval()
        self._fast_shape = cpu_inference(self.shape)
        self.subset = subset
        self.model = subset.model
        # The shape network needs only the position image, not the pose: it runs on a second
        # core while the pose network runs on this one (torch releases the GIL in both).
        self._shape_worker: ThreadPoolExecutor | None = None

    @classmethod
    def from_pretrained(cls, config: str = "fast", pose_path: str | Path | None = None, shape_path: str | Path | None = None,
                        model: FaceModel | None = None) -> "Reconstructor":
        model = model or FaceModel.load()
        pose = PoseEstimator.from_pretrained(config, pose_path, model)
        path = shape_path or weights_path("shape", config)
        meta = weights_meta(path)
        subset = ShapeSubset.from_indices(model, np.asarray(meta["subset_vertices"], np.int64))
        shape = DAShapeNet(meta.get("net", config), subset.n)
        load_weights(shape, path)
        return cls(pose, shape, subset)

    def shape_offsets(self, data: np.ndarray) -> np.ndarray:
        with torch.no_grad(), torch_threads(self.shape.cfg.inference_threads):
            out = self._fast_shape(network_input(data))
        return out[0].numpy() * OFFSET_UNIT_MM

    def _timed_shape_offsets(self, data: np.ndarray) -> tuple[np.ndarray, float]:
        t = time.perf_counter()
        return self.shape_offsets(data), (time.perf_counter() - t) * 1e3

    def reconstruct(self, depth, intrinsics: Intrinsics | None = None, refine: int = 0, refine_shape: int = 0) -> FaceReconstruction:
        """``refine`` > 0 adds that many rigid point-to-plane ICP iterations of the predicted
        face onto the frame's points (the classical fitter's rigid stage), after the networks;
        ``refine_shape`` > 0 then that many Gauss-Newton iterations of pose + identity +
        expression (the fitter's joint stage, started from the networks' shape)."""
        # torch's thread count is process-wide: set it once for the frame, so the two network
        # threads do not switch it under each other
        with torch_threads(self.pose.net.config.inference_threads):
            return self._reconstruct(as_frame(depth, intrinsics), refine, refine_shape)

    def _reconstruct(self, frame, refine: int, refine_shape: int) -> FaceReconstruction:
        t0 = time.perf_counter()
        crop = locate_and_crop(frame)
        if self._shape_worker is None:
            self._shape_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facerecon-shape")
        shape_job = self._shape_worker.submit(self._timed_shape_offsets, crop[2].data)
        try:
            pr = self.pose.estimate_cropped(*crop)
        finally:
            offsets, shape_ms = shape_job.result()
        t2 = time.perf_counter()
        w = self.subset.weights_from_offsets(offsets).astype(np.float64)
        k = self.model.n_identity
        if refine > 0 or refine_shape > 0:
            from ..fitting import FitConfig, fit_face

            fit = fit_face(pr.position_image.points_mm(), self.model, pr.pose.R, pr.pose.t_mm,
                           FitConfig(rigid_iterations=int(refine), iterations=int(refine_shape), max_distance_mm=(15.0, 5.0)),
                           identity=w[:k], expression=w[k:])
            pr.pose = HeadPose(fit.rotation, fit.translation)
            w = np.r_[fit.identity, fit.expression]
        v_head = self.model.vertices(w[:k], w[k:]).astype(np.float64)
        v_cam = pr.pose.apply(v_head)
        lm3 = v_cam[self.model.landmarks_68]
        lm2 = frame.intrinsics.project(lm3)
        t3 = time.perf_counter()
        # shape_network overlaps the pose network and check (it ran beside them): the stages add up to more than total
        timings = {**pr.timings_ms, "shape_network": shape_ms, "mesh_and_refine": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3}
        return FaceReconstruction(pr.pose, v_head, v_cam, lm3, lm2, w[:k], w[k:], pr.confidence, pr, timings, frame.source)
