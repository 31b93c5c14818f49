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
import torch

from ..facemodel import FaceModel
from ..geometry.camera import Intrinsics
from ..geometry.pose import HeadPose
from ..geometry.rotations import euler_to_matrix
from ..nets.pose import (
    _MIRROR_QUAT,
    _MIRROR_TRANS,
    DAPoseNet,
    canonicalize_quaternion,
    flip_averaged,
    mirror_position_images,
    normalize_quaternion,
    output_to_pose,
)
from ..preprocess.position_image import PositionImage
from ..train.checkpoint import is_checkpoint, load_checkpoint, read_meta
from .check import Candidate, FaceRegion, Start, check_config, rotate_position_image
from .frame import DepthPipeline, NetworkPoses, as_frame, crop_at, locate, other_head_regions
from .result import FaceResult
from .weights import cpu_inference, load_weights, network_input, torch_threads, weights_meta, weights_path


class PoseEstimator:
    """Head pose from a depth frame: ``PoseEstimator.from_pretrained().estimate(depth_mm, intrinsics)``.

    ``refine`` (here and in :meth:`estimate`): rigid point-to-plane iterations after the
    network (``None``: the default of ``configs/check.toml`` [refine]; 0: the bare
    network, only checked).  ``search_others``: also report other head-like regions."""

    def __init__(self, net: DAPoseNet, model: FaceModel | None = None, meta: dict | None = None, *,
                 refine: int | None = None, check: dict | None = None, search_others: bool = False):
        self.net = net.eval()
        self._fast = cpu_inference(self.net)
        self.meta = meta or {}
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
        way benchmarks, evaluators and the CLI load a pose network."""
        net, meta = load_pose_network(path, config)
        return cls(net, model, meta, **kw)

    @property
    def default_refine(self) -> int:
        return int(self.check_cfg.refine.iterations if self.refine is None else self.refine)

    def network_poses(self, pim: PositionImage) -> NetworkPoses:
        """The network on one position image (flip-averaged when the configuration says so)."""
        flip = self.net.config.test_time_flip
        data = np.stack([pim.data, mirror_position_images(pim.data)]) if flip else pim.data[None]
        with torch.no_grad(), torch_threads(self.net.config.inference_threads):
            quat, trans = self._fast(network_input(data))[:2]
        alts = []
        if flip:
            # the two halves alone: the direct prediction, and the mirrored one mapped back
            # (when they disagree, their average can be far from both)
            alts.append((Start.DIRECT, quat[:1], trans[:1]))
            alts.append((Start.MIRRORED, normalize_quaternion(quat[1:]) * quat.new_tensor(_MIRROR_QUAT), trans[1:] * trans.new_tensor(_MIRROR_TRANS)))
            quat, trans = flip_averaged(quat, trans)
        q = canonicalize_quaternion(normalize_quaternion(quat))[0].double().numpy()
        more = []
        for start, qk, tk in alts:
            qk = canonicalize_quaternion(normalize_quaternion(qk))[0].double().numpy()
            more.append(Candidate(start, output_to_pose(qk, tk[0].double().numpy(), pim)))
        return NetworkPoses(output_to_pose(q, trans[0].double().numpy(), pim), tuple(more))

    def rotated_network_poses(self, pim: PositionImage, quarter_turns=(1, 2, 3)) -> list[Candidate]:
        """The network on the crop turned by 90/180/270 degrees about the view axis (one batch),
        each pose turned back: candidates for a head the network never saw at that roll
        (an upside-down camera, a phone held sideways)."""
        flip = self.net.config.test_time_flip
        imgs = [rotate_position_image(pim.data, k) for k in quarter_turns]
        data = np.stack(imgs + ([mirror_position_images(i) for i in imgs] if flip else []))
        with torch.no_grad(), torch_threads(self.net.config.inference_threads):
            quat, trans = self._fast(network_input(data))[:2]
        if flip:
            quat, trans = flip_averaged(quat, trans)
        q = canonicalize_quaternion(normalize_quaternion(quat)).double().numpy()
        t = trans.double().numpy()
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


def load_pose_network(path: str | Path, config: str | None = None) -> tuple[DAPoseNet, dict]:
    """A pose network from exported weights or a training checkpoint, with its record."""
    path = Path(path)
    if is_checkpoint(path):
        meta = read_meta(path)
        net = DAPoseNet(meta["config"]["net"])
        load_checkpoint(path, {"pose": net})
        return net.eval(), meta
    meta = weights_meta(path)
    net = DAPoseNet(config or meta.get("net", "fast"))
    load_weights(net, path)
    return net.eval(), meta
