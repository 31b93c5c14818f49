"""``Reconstructor``: depth frame -> posed metric 3D face (ICT topology) in one call.

``localize -> position image -> DAPoseNet (pose) + DAShapeNet (subset offsets) ->
fixed upsampling to every ICT vertex (``ShapeSubset``) -> head-frame mesh -> robust check
and rigid refinement of the pose with this mesh (:mod:`.check`) -> joint pose + identity
refinement on the frame's points (``[shape]`` of ``configs/check.toml``) -> R v + t``.
The confidence, landmark self-check and face decision describe the returned pose.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..geometry.camera import Intrinsics
from ..facemodel import FaceModel
from ..facemodel.shape_subset import ShapeSubset
from ..nets.argan import OFFSET_UNIT_MM, DAShapeNet
from ..geometry.pose import HeadPose
from ..preprocess.position_image import make_position_image
from .check import MeasuredSurface, rotate_position_image, surface_check
from .pose import TURNED_PREFIX, NetworkPoses, PoseEstimator, PoseResult, as_frame, locate_and_crop, other_head_regions
from .weights import blas_threads, cpu_inference, load_weights, network_input, torch_threads, weights_meta, weights_path



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
                        model: FaceModel | None = None, **kw) -> "Reconstructor":
        """The shipped weights of ``config`` (either file may be replaced by a path)."""
        return cls.from_files(pose_path or weights_path("pose", config), shape_path or weights_path("shape", config), model,
                              config=config, **kw)

    @classmethod
    def from_files(cls, pose_path: str | Path, shape_path: str | Path, model: FaceModel | None = None, *,
                   config: str | None = None, **kw) -> "Reconstructor":
        """Pose and shape networks from exported weights or training checkpoints; ``kw`` go to
        :class:`PoseEstimator` (``refine``, ``check``, ``search_others``)."""
        model = model or FaceModel.load()
        pose = PoseEstimator.from_files(pose_path, model, config=config, **kw)
        shape, subset, _ = load_shape_network(shape_path, model, config)
        return cls(pose, shape, subset)

    def shape_offsets(self, data: np.ndarray) -> np.ndarray:
        with torch.no_grad(), torch_threads(self.shape.cfg.inference_threads):
            out = self._fast_shape(network_input(data))
        return out[0].numpy() * OFFSET_UNIT_MM

    def _timed_shape_offsets(self, data: np.ndarray) -> tuple[np.ndarray, float]:
        t = time.perf_counter()
        return self.shape_offsets(data), (time.perf_counter() - t) * 1e3

    def reconstruct(self, depth, intrinsics: Intrinsics | None = None, refine: int | None = None,
                    refine_shape: int | None = None) -> FaceReconstruction:
        """``refine``: rigid point-to-plane iterations of the reconstructed face onto the
        frame's points after the networks, with the robust check and its fallback
        (``None``: the default of ``configs/check.toml``; 0: the bare networks, only
        checked); ``refine_shape``: then that many Gauss-Newton iterations of pose + identity
        (+ expression where ``[shape] expression_modes`` > 0) on the frame's points, the
        fitter's joint stage started from the networks' shape (``None``: ``[shape]
        iterations`` of ``configs/check.toml`` when ``refine`` is not 0; 0: none)."""
        # torch's thread count is process-wide: set it once for the frame, so the two network
        # threads do not switch it under each other; OpenBLAS likewise (the frame's solves are
        # small: measured, refine 98 -> 39 ms and mesh 62 -> 12 ms with one BLAS thread on 2 cores)
        n = self.pose.net.config.inference_threads
        with torch_threads(n), blas_threads(n):
            return self._reconstruct(as_frame(depth, intrinsics), refine, refine_shape)

    def reconstruct_all(self, depth, intrinsics: Intrinsics | None = None, refine: int | None = None,
                        refine_shape: int | None = None) -> list[FaceReconstruction]:
        """Every face in the frame: the best-ranked head first, then each other head-like region
        (:func:`other_head_regions`) through the same networks, check and refinement; only
        regions judged a face are kept (the first is returned whatever its decision)."""
        n = self.pose.net.config.inference_threads
        with torch_threads(n), blas_threads(n):
            frame = as_frame(depth, intrinsics)
            first = self._reconstruct(frame, refine, refine_shape)
            out = [first]
            for h in other_head_regions(frame, first.pose_result.location):
                r = self._reconstruct_at(frame, h, refine, refine_shape)
                if r.pose_result.face:
                    out.append(r)
        first.pose_result.other_heads = [r.pose_result.location for r in out[1:]]
        return out

    def _reconstruct_at(self, frame, location, refine, refine_shape) -> FaceReconstruction:
        t0 = time.perf_counter()
        pim = make_position_image(frame, location.center_mm)
        return self._reconstruct(frame, refine, refine_shape, (frame, location, pim, (t0, t0, time.perf_counter())))

    def _reconstruct(self, frame, refine: int | None, refine_shape: int | None, located: tuple | None = None) -> FaceReconstruction:
        t0 = time.perf_counter()
        shape_cfg = self.pose.check_cfg["shape"]
        if refine_shape is None:  # the joint stage follows the rigid refinement: none without it
            refine_shape = 0 if (self.pose.default_refine if refine is None else int(refine)) == 0 else int(shape_cfg["iterations"])
        frame, loc, pim, times = located if located is not None else locate_and_crop(frame)
        if self._shape_worker is None:
            self._shape_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facerecon-shape")
        shape_job = self._shape_worker.submit(self._timed_shape_offsets, pim.data)
        try:
            net = self.pose.network_poses(pim)
        finally:
            offsets, shape_ms = shape_job.result()
        t1 = time.perf_counter()
        w = self.subset.weights_from_offsets(offsets).astype(np.float64)
        k = self.model.n_identity
        v_head = self.model.vertices(w[:k], w[k:]).astype(np.float64)
        t2 = time.perf_counter()
        pr = self.pose.finish(frame, loc, pim, net, v_head, w[:k], w[k:], refine=refine)
        if pr.chosen.startswith(TURNED_PREFIX):
            # the head is at a roll the networks never saw upright: the shape network's answer
            # on the original crop is as wrong as the pose's was; ask it again on the turned crop
            # (its output is in the head frame, nothing to turn back), then refine with that face
            turns = int(round(float(pr.chosen[len(TURNED_PREFIX):].split("+")[0]) / 90.0))
            w = self.subset.weights_from_offsets(self.shape_offsets(rotate_position_image(pim.data, turns))).astype(np.float64)
            v_head = self.model.vertices(w[:k], w[k:]).astype(np.float64)
            again = self.pose.finish(frame, loc, pim, NetworkPoses(pr.pose), v_head, w[:k], w[k:], refine=refine)
            again.network_pose, again.network_check, again.chosen = pr.network_pose, pr.network_check, pr.chosen
            again.other_heads = pr.other_heads
            again.timings_ms = {key: pr.timings_ms.get(key, 0.0) + v for key, v in again.timings_ms.items()}
            pr = again
        t3 = time.perf_counter()
        if refine_shape > 0:
            from ..fitting import FitConfig, fit_face

            fit = fit_face(pim.points_mm(), self.model, pr.pose.R, pr.pose.t_mm,
                           FitConfig(n_identity=int(shape_cfg["identity_modes"]), n_expression=int(shape_cfg["expression_modes"]),
                                     n_model_points=int(shape_cfg["n_points"]), rigid_iterations=0, iterations=int(refine_shape),
                                     max_distance_mm=tuple(shape_cfg["max_distance_mm"]), region=str(shape_cfg["region"])),
                           identity=w[:k], expression=w[k:])
            w = np.r_[fit.identity, fit.expression]
            v_head = self.model.vertices(w[:k], w[k:]).astype(np.float64)
            pose = HeadPose(fit.rotation, fit.translation)
            check = surface_check(v_head, pose, self.pose.region, MeasuredSurface.from_position_image(pim), self.pose.check_cfg)
            final = self.pose.describe(loc, pim, pose, check, w[:k], w[k:])  # the confidence of what is returned
            final.network_pose, final.network_check, final.other_heads = pr.network_pose, pr.network_check, pr.other_heads
            final.chosen, final.refine_iterations = f"{pr.chosen}+refine-shape {int(refine_shape)}", pr.refine_iterations
            final.timings_ms = pr.timings_ms
            pr = final
        v_cam = pr.pose.apply(v_head)
        lm3 = v_cam[self.model.landmarks_68]
        lm2 = frame.intrinsics.project(lm3)
        t4 = time.perf_counter()
        la, cr = times[1] - times[0], times[2] - times[1]
        # shape_network overlaps the pose network (it ran beside it): the stages add up to more than total
        timings = {"localize": la * 1e3, "crop": cr * 1e3, "network": (t1 - times[2]) * 1e3, "shape_network": shape_ms,
                   **pr.timings_ms, "mesh_and_refine": (t2 - t1 + t4 - t3) * 1e3, "total": (t4 - t0) * 1e3}
        pr.timings_ms = {k2: v for k2, v in timings.items() if k2 != "total"}
        return FaceReconstruction(pr.pose, v_head, v_cam, lm3, lm2, w[:k], w[k:], pr.confidence, pr, timings, frame.source)


def load_shape_network(path: str | Path, model: FaceModel, config: str | None = None) -> tuple[DAShapeNet, ShapeSubset, dict]:
    """A shape network (exported weights or a training checkpoint), its vertex subset and its record."""
    from ..train.checkpoint import is_checkpoint, load_checkpoint, read_meta

    path = Path(path)
    if is_checkpoint(path):
        meta = read_meta(path)
        cfg = meta["config"]
        net = DAShapeNet(cfg["net"], int(cfg["n_vertices"]))
        load_checkpoint(path, {"F": net.encoder, "R": net.regressor})
    else:
        meta = weights_meta(path)
        net = DAShapeNet(meta.get("net", config or "fast"), len(meta["subset_vertices"]))
        load_weights(net, path)
    subset = ShapeSubset.from_indices(model, np.asarray(meta["subset_vertices"], np.int64))
    return net.eval(), subset, meta
