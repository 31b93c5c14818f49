"""``PoseEstimator``: head pose from one depth frame in one call.

``localize_head -> make_position_image -> DAPoseNet -> robust check + rigid refinement
(:mod:`.check`) -> HeadPose`` (camera frame).  The confidence, the landmark self-check
(the fraction of reference-face landmarks that, under the *returned* pose, have a
measured depth point within ``FIT_TOLERANCE_MM``) and the face / no-face decision all
describe the pose that is returned; the networks' own pose and its check are reported
beside it (``network`` in the JSON).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..geometry.camera import Intrinsics
from ..facemodel import FaceModel
from ..io.frame import DepthFrame
from ..nets.pose import (_MIRROR_QUAT, _MIRROR_TRANS, DAPoseNet, canonicalize_quaternion, flip_averaged, mirror_position_images, normalize_quaternion,
                         output_to_pose)
from ..geometry.pose import HeadPose
from ..preprocess.localize import HeadLocation, localize_head
from ..preprocess.position_image import PositionImage, make_position_image
from .check import (CHECK_LANDMARKS, FaceRegion, MeasuredSurface, SurfaceCheck, check_config, confidence_from, confidence_terms,
                    face_decision, landmark_fit_fraction, plausibility, robust_pose, rotate_position_image)
from .weights import cpu_inference, load_weights, network_input, torch_threads, weights_path

# other head-like regions are reported from this localiser confidence on (measured: after the
# found head and neck are removed, the shoulders of a single person score 0.45-0.6, a second
# person's head 0.75-0.97)
OTHER_HEAD_MIN_CONFIDENCE = 0.7
TURNED_PREFIX = "network on input turned "  # name of the candidates from turned crops (+ the angle)


@dataclass
class PoseResult:
    pose: HeadPose
    location: HeadLocation
    position_image: PositionImage
    confidence: float
    landmark_fit: float  # fraction of inner landmarks with a depth point within FIT_TOLERANCE_MM (returned pose)
    timings_ms: dict = field(default_factory=dict)
    face: bool = True  # the face / no-face decision (confidence >= configs/check.toml [decision] face_threshold)
    reason: str = ""  # why not a face (empty for a face)
    check: SurfaceCheck | None = None  # the returned pose against the measured surface
    network_pose: HeadPose | None = None  # the networks' pose before refinement / fallback
    network_check: SurfaceCheck | None = None
    chosen: str = "network"  # which candidate was returned (network+refine, ... rolled 180+refine, ...)
    refine_iterations: int = 0
    confidence_terms: dict = field(default_factory=dict)
    plausibility: dict = field(default_factory=dict)
    other_heads: list = field(default_factory=list)  # HeadLocation of other head-like regions (when searched)

    def to_json(self) -> dict:
        out = {"face": bool(self.face), **({"reason": self.reason} if self.reason else {}), **_pose_json(self.pose),
               "euler_convention": "R = Ry(yaw) Rx(pitch) Rz(roll) about camera axes (x right, y down, z forward); "
               "yaw>0 face turns to image left, pitch>0 face turns down, roll>0 clockwise",
               "crop_box_px": [float(v) for v in self.position_image.crop_box],
               "head_box_px": [int(v) for v in self.location.box],
               "confidence": float(self.confidence),
               "confidence_terms": {k: round(float(v), 4) for k, v in self.confidence_terms.items()},
               "landmark_fit": float(self.landmark_fit)}
        if self.check is not None:
            out["check"] = self.check.to_json()
        out.update({k: round(float(v), 4) for k, v in self.plausibility.items()})
        out["refine_iterations"] = int(self.refine_iterations)
        out["returned"] = self.chosen
        if self.network_pose is not None:
            out["network"] = {**_pose_json(self.network_pose), **({"check": self.network_check.to_json()} if self.network_check else {})}
        out["other_head_regions"] = len(self.other_heads)
        if self.other_heads:
            out["other_heads"] = [{"head_box_px": [int(v) for v in h.box], "center_mm": [float(v) for v in h.center_mm]}
                                  for h in self.other_heads]
        out["timings_ms"] = {k: round(float(v), 3) for k, v in self.timings_ms.items()}
        return out


def _pose_json(pose: HeadPose) -> dict:
    yaw, pitch, roll = pose.euler_deg
    return {"quaternion_wxyz": [float(v) for v in pose.quaternion_wxyz], "rotation_matrix": pose.R.tolist(),
            "translation_mm": [float(v) for v in pose.t_mm], "euler_deg": {"yaw": float(yaw), "pitch": float(pitch), "roll": float(roll)}}


def as_frame(depth, intrinsics: Intrinsics | None = None, source: str = "") -> DepthFrame:
    if isinstance(depth, DepthFrame):
        return depth if intrinsics is None else depth.with_intrinsics(intrinsics)
    return DepthFrame(np.asarray(depth, np.float32), intrinsics, source=source or "array")


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


def other_head_regions(frame: DepthFrame, loc: HeadLocation, max_heads: int = 3, radius_mm: float = 250.0) -> list[HeadLocation]:
    """Other head-like regions: the localiser run again with the found heads' surroundings
    (points within ``radius_mm`` of each found centre: head and neck) removed, until it
    finds nothing (at most ``max_heads``).  The localiser returns one head per call; this is
    how a frame with several people reports the others."""
    from ..errors import NoFaceFoundError

    k = frame.intrinsics
    depth = np.array(frame.depth_mm, np.float32, copy=True)
    found: list[HeadLocation] = []
    centre = np.asarray(loc.center_mm, np.float64)
    for _ in range(max_heads):
        # only the pixels whose rays can meet the ball: its projection's bounding box
        z_near = max(centre[2] - radius_mm, 1.0)
        half_u, half_v = k.fx * radius_mm / z_near, k.fy * radius_mm / z_near
        uc, vc = k.fx * centre[0] / centre[2] + k.cx, k.fy * centre[1] / centre[2] + k.cy
        u0, u1 = int(max(np.floor(uc - half_u), 0)), int(min(np.ceil(uc + half_u) + 1, frame.width))
        v0, v1 = int(max(np.floor(vc - half_v), 0)), int(min(np.ceil(vc + half_v) + 1, frame.height))
        if u0 < u1 and v0 < v1:
            z = depth[v0:v1, u0:u1]
            x = (np.arange(u0, u1, dtype=np.float32)[None, :] - k.cx) / k.fx * z
            y = (np.arange(v0, v1, dtype=np.float32)[:, None] - k.cy) / k.fy * z
            c = centre.astype(np.float32)
            z[(x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 < radius_mm**2] = 0.0
        try:
            h = localize_head(DepthFrame(depth, frame.intrinsics, frame.source))
        except NoFaceFoundError:
            break
        found.append(h)
        centre = np.asarray(h.center_mm, np.float64)
    return found


@dataclass
class NetworkPoses:
    """The pose network's answer: the flip-averaged pose and, with test-time flip, the direct
    and the mirrored-back predictions (alternatives for the robust check)."""

    pose: HeadPose
    alternatives: list = field(default_factory=list)  # (name, HeadPose)


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
        self._ref_lm = self.model.landmarks(self.model.reference_vertices)[list(CHECK_LANDMARKS)].astype(np.float64)
        self.check_cfg = check_config(check)
        self.refine = refine
        self.search_others = search_others
        c = self.check_cfg
        self.region = FaceRegion(self.model, c["check"]["region"], c["refine"]["n_points"], central_radius_mm=c["check"]["central_radius_mm"])

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
        return int(self.check_cfg["refine"]["iterations"] if self.refine is None else self.refine)

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
            alts.append(("direct", quat[:1], trans[:1]))
            alts.append(("mirrored", normalize_quaternion(quat[1:]) * quat.new_tensor(_MIRROR_QUAT), trans[1:] * trans.new_tensor(_MIRROR_TRANS)))
            quat, trans = flip_averaged(quat, trans)
        q = canonicalize_quaternion(normalize_quaternion(quat))[0].double().numpy()
        out = NetworkPoses(output_to_pose(q, trans[0].double().numpy(), pim))
        for name, qk, tk in alts:
            qk = canonicalize_quaternion(normalize_quaternion(qk))[0].double().numpy()
            out.alternatives.append((name, output_to_pose(qk, tk[0].double().numpy(), pim)))
        return out

    def rotated_network_poses(self, pim: PositionImage, quarter_turns=(1, 2, 3)) -> list[tuple[str, HeadPose]]:
        """The network on the crop turned by 90/180/270 degrees about the view axis (one batch),
        each pose turned back: candidates for a head the network never saw at that roll
        (an upside-down camera, a phone held sideways)."""
        from ..geometry.rotations import euler_to_matrix

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
            out.append((f"{TURNED_PREFIX}{90 * k}", HeadPose(qz.T @ p.R, c + qz.T @ (p.t_mm - c))))
        return out

    def predict_position_image(self, pim: PositionImage) -> HeadPose:
        return self.network_poses(pim).pose

    def landmark_fit(self, pose: HeadPose, pim: PositionImage) -> float:
        return landmark_fit_fraction(self._ref_lm, pose, pim)

    def estimate(self, depth, intrinsics: Intrinsics | None = None, refine: int | None = None) -> PoseResult:
        return self.estimate_cropped(*locate_and_crop(depth, intrinsics), refine=refine)

    def estimate_all(self, depth, intrinsics: Intrinsics | None = None, refine: int | None = None) -> list[PoseResult]:
        """Every head in the frame: the best-ranked one first, then each other head-like
        region (:func:`other_head_regions`) through the same network and check; each result
        says whether it is a face."""
        first = self.estimate(depth, intrinsics, refine)
        frame = as_frame(depth, intrinsics)
        out = [first]
        for h in other_head_regions(frame, first.location):
            t0 = time.perf_counter()
            pim = make_position_image(frame, h.center_mm)
            res = self.estimate_cropped(frame, h, pim, (t0, t0, time.perf_counter()), refine=refine)
            if res.face:
                out.append(res)
        first.other_heads = [r.location for r in out[1:]]
        return out

    def estimate_cropped(self, frame: DepthFrame, loc: HeadLocation, pim: PositionImage, times: tuple[float, float, float],
                         refine: int | None = None) -> PoseResult:
        """The network, the robust check / refinement (with the reference face) on what :func:`locate_and_crop` returned."""
        t0, t1, t2 = times
        net = self.network_poses(pim)
        t3 = time.perf_counter()
        res = self.finish(frame, loc, pim, net, self.model.reference_vertices, refine=refine)
        res.timings_ms = {"localize": (t1 - t0) * 1e3, "crop": (t2 - t1) * 1e3, "network": (t3 - t2) * 1e3, **res.timings_ms}
        return res

    def finish(self, frame: DepthFrame, loc: HeadLocation, pim: PositionImage, net: NetworkPoses, v_head: np.ndarray,
               identity: np.ndarray | None = None, expression: np.ndarray | None = None, refine: int | None = None) -> PoseResult:
        """Robust check + refinement of the networks' pose with the head-frame mesh ``v_head``
        (the reconstruction, or the reference face), then the confidence, the landmark
        self-check and the face decision of the *returned* pose."""
        t0 = time.perf_counter()
        cfg = self.check_cfg
        n_iter = self.default_refine if refine is None else int(refine)
        surf = MeasuredSurface.from_position_image(pim)
        cands = [("network", net.pose), *net.alternatives]
        fit = robust_pose(cands, v_head, self.region, surf, cfg, n_iter, centre=loc.center_mm,
                          more=lambda: self.rotated_network_poses(pim))
        t1 = time.perf_counter()
        res = self.describe(loc, pim, fit.pose, fit.check, identity, expression)
        res.network_pose, res.network_check, res.chosen, res.refine_iterations = net.pose, fit.network_check, fit.chosen, n_iter
        t2 = time.perf_counter()
        res.timings_ms = {"refine": (t1 - t0) * 1e3, "check": (t2 - t1) * 1e3}
        if self.search_others:
            res.other_heads = [h for h in other_head_regions(frame, loc) if h.confidence >= OTHER_HEAD_MIN_CONFIDENCE]
            res.timings_ms["other_heads"] = (time.perf_counter() - t2) * 1e3
        return res

    def describe(self, loc: HeadLocation, pim: PositionImage, pose: HeadPose, check: SurfaceCheck,
                 identity: np.ndarray | None = None, expression: np.ndarray | None = None) -> PoseResult:
        return describe_pose(self.check_cfg, loc, pim, pose, check, identity, expression)


def describe_pose(cfg: dict, loc: HeadLocation, pim: PositionImage, pose: HeadPose, check: SurfaceCheck,
                  identity: np.ndarray | None = None, expression: np.ndarray | None = None) -> PoseResult:
    """Confidence and the face decision of ``pose`` from its check (which holds the landmark
    self-check of the same mesh at the same pose): the one place every predictor (networks,
    fitting baseline) gets them from."""
    plaus = plausibility(identity, expression)
    terms = confidence_terms(check, plaus, cfg)
    conf = confidence_from(terms)
    face, reason = face_decision(conf, terms, check, plaus, cfg)
    return PoseResult(pose, loc, pim, conf, check.landmark_fit, {}, face, reason, check, confidence_terms=terms, plausibility=plaus)


def load_pose_network(path: str | Path, config: str | None = None) -> tuple[DAPoseNet, dict]:
    """A pose network from exported weights or a training checkpoint, with its record."""
    from ..train.checkpoint import is_checkpoint, load_checkpoint, read_meta
    from .weights import weights_meta

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
