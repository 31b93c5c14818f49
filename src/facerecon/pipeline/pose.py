"""``PoseEstimator``: head pose from one depth frame in one call (the pose-only configuration of :mod:`.frame`).

``locate -> crop -> DAPoseNet -> robust check + rigid refinement (:mod:`.check`, with the
reference face) -> result``.  The confidence, the landmark self-check and the face / no-face
decision describe the pose that is returned; the networks' own pose and its check are kept
beside it (``network_pose``, ``network_check``).  ``facerecon pose`` writes what
:meth:`PoseEstimator.estimate` returns, and ``facerecon eval pose --method facerecon`` measures it.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..facemodel import FaceModel
from ..geometry.camera import Intrinsics
from ..geometry.pose import HeadPose
from ..geometry.rotations import euler_to_matrix
from ..nets.decode import decoded_quaternions, flip_average, mirror_position_images, mirrored_back, output_to_pose
from ..preprocess.position_image import PositionImage
from .check import Candidate, FaceRegion, Start, check_config, rotate_position_image
from .frame import DepthPipeline, NetworkPoses, as_frame, crop_at, locate, other_head_regions
from .result import FaceResult
from .runtime import Network, load_network, module_network, weights_path


class PoseEstimator:
    """Head pose from a depth frame: ``PoseEstimator.from_pretrained().estimate(depth_mm, intrinsics)``.

    ``net``: the pose network as the runtime runs it (:class:`.runtime.Network`, what
    :meth:`from_files` loads, no torch), or a torch ``DAPoseNet`` (training, benchmarks: run
    through :func:`.runtime.module_network`).  ``refine`` (here and in :meth:`estimate`): rigid
    point-to-plane iterations after the network (``None``: the default of ``configs/check.toml``
    [refine]; 0: the bare network, only checked).  ``search_others``: also report other
    head-like regions."""

    def __init__(self, net, model: FaceModel | None = None, meta: dict | None = None, *,
                 refine: int | None = None, check: dict | None = None, search_others: bool = False):
        self.network: Network = net if isinstance(net, Network) else module_network(net.eval())
        self.meta = meta or self.network.meta
        self.model = model or FaceModel.load()
        self.check_cfg = check_config(check)
        self.refine = refine
        self.search_others = search_others
        c = self.check_cfg
        self.region = FaceRegion(self.model, c.check.region, c.refine.n_points, central_radius_mm=c.check.central_radius_mm)
        self.pipeline = self.make_pipeline()

    def make_pipeline(self, shape_network=None, shape_worker=None) -> DepthPipeline:
        """The frame pipeline with this pose network (and, for the reconstructor, a shape network)."""
        return DepthPipeline(self.model, self.region, self.check_cfg, self.network_poses, self.rotated_network_poses, shape_network,
                             shape_worker, self.search_others, self.default_refine)

    @classmethod
    def from_pretrained(cls, config: str = "fast", path: str | Path | None = None, model: FaceModel | None = None,
                        **kw) -> "PoseEstimator":
        """The shipped weights of ``config`` (or the weights file ``path``)."""
        return cls.from_files(path or weights_path("pose", config), model, config=config, **kw)

    @classmethod
    def from_files(cls, path: str | Path, model: FaceModel | None = None, *, config: str | None = None, **kw) -> "PoseEstimator":
        """Exported weights or a training checkpoint (``runs/*/checkpoint.safetensors``): the one
        way benchmarks, evaluators and the CLI load a pose network (its ONNX file on
        onnxruntime: :func:`.runtime.load_network`)."""
        return cls(load_network("pose", path, config), model, **kw)

    @property
    def default_refine(self) -> int:
        return int(self.check_cfg.refine.iterations if self.refine is None else self.refine)

    def network_poses(self, pim: PositionImage, flip: bool | None = None) -> NetworkPoses:
        """The network on one position image (flip-averaged when ``flip``, None: when the configuration says so)."""
        flip = self.network.config.test_time_flip if flip is None else bool(flip)
        data = np.stack([pim.data, mirror_position_images(pim.data)]) if flip else pim.data[None]
        both_q, both_t = self.network(data)[:2]

        def alternatives() -> list[Candidate]:
            # the two halves alone: the direct prediction, and the mirrored one mapped back
            # (when they disagree, their average can be far from both)
            if not flip:
                return []
            alts = [(Start.DIRECT, both_q[:1], both_t[:1]), (Start.MIRRORED, *mirrored_back(both_q[1:], both_t[1:]))]
            return [Candidate(start, output_to_pose(decoded_quaternions(qk)[0], tk[0].astype(np.float64), pim)) for start, qk, tk in alts]

        quat, trans = flip_average(both_q, both_t) if flip else (both_q, both_t)
        return NetworkPoses(output_to_pose(decoded_quaternions(quat)[0], trans[0].astype(np.float64), pim), alternatives)

    def rotated_network_poses(self, pim: PositionImage, quarter_turns=(1, 2, 3)) -> list[Candidate]:
        """The network on the crop turned by 90/180/270 degrees about the view axis (one batch),
        each pose turned back: candidates for a head the network never saw at that roll
        (an upside-down camera, a phone held sideways)."""
        flip = self.network.config.test_time_flip
        imgs = [rotate_position_image(pim.data, k) for k in quarter_turns]
        data = np.stack(imgs + ([mirror_position_images(i) for i in imgs] if flip else []))
        quat, trans = self.network(data)[:2]
        if flip:
            quat, trans = flip_average(quat, trans)
        q = decoded_quaternions(quat)
        t = trans.astype(np.float64)
        out = []
        c = pim.center_mm
        for i, k in enumerate(quarter_turns):
            p = output_to_pose(q[i], t[i], pim)
            qz = euler_to_matrix(0.0, 0.0, 90.0 * k)  # the turn of the scene the network saw
            out.append(Candidate(Start.TURNED_CROP, HeadPose(qz.T @ p.R, c + qz.T @ (p.t_mm - c)), turn_deg=90.0 * k))
        return out

    def estimate(self, depth, intrinsics: Intrinsics | None = None, refine: int | None = None) -> FaceResult:
        return self.pipeline.run(locate(depth, intrinsics), refine)

    def estimate_all(self, depth, intrinsics: Intrinsics | None = None, refine: int | None = None) -> list[FaceResult]:
        """Every head in the frame: the best-ranked one first, then each other head-like
        region (:func:`.frame.other_head_regions`) through the same network and check; only
        regions judged a face are kept (the first is returned whatever its decision)."""
        return run_all(self.pipeline, as_frame(depth, intrinsics), refine)


def run_all(pipeline: DepthPipeline, frame, refine: int | None = None, refine_shape: int | None = None) -> list[FaceResult]:
    """The frame pipeline on the best-ranked head, then on each other head-like region; the first
    result lists the other faces found (``other_heads``)."""
    first = pipeline.run(locate(frame), refine, refine_shape)
    others = [r for r in (pipeline.run(crop_at(frame, h), refine, refine_shape) for h in other_head_regions(frame, first.location)) if r.face]
    return [replace(first, other_heads=tuple(r.location for r in others)), *others]

