"""Reference head poses of the 30 real TrueDepth mannequin frames (evaluation only, never training labels).

How they are made: see :mod:`.mannequin` ("Reference poses").
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..facemodel.model import FaceModel
from ..geometry.pose import HeadPose
from ..geometry.rotations import _rz, matrix_to_euler, quat_to_matrix, rotation_angle_deg
from ..io import read_depth
from ..metrics.align import CloudTarget, multi_start_icp, start_rotations
from .mannequin import (
    MAX_FRAME_DEPTH_MM,
    MannequinAlignment,
    _file_key,
    _folder,
    _read_cache,
    _write_cache,
    align_mannequin,
    frame_files,
    load_mannequin_cloud,
)
from .scan import upright_roll_deg


@dataclass
class MannequinReference:
    """Reference head poses of the real TrueDepth frames (evaluation only, never training labels).

    Attributes:
        files: frame file names, sweep order.
        rotations, translations: (N, 3, 3), (N, 3) head frame -> camera frame (mm).
        camera_to_cloud: (N, 3, 4) ``[R_k | t_k]`` with ``cloud = R_k cam + t_k``.
        residuals: per frame, robust_rms_mm / inlier_fraction / inlier_rms_mm of the frame's
            points against the cloud.
        timestamps: (N,) frame timestamps (s, the phone's clock).
        relative_angle_deg: (N,) rotation angle of each pose relative to frame 0.
        euler_deg: (N, 3) yaw, pitch, roll (facerecon.geometry.rotations) of the poses.
        image_roll_deg: the camera's roll (multiple of 90) removed in ``upright_euler_deg``.
        upright_euler_deg: (N, 3) Euler angles of ``Rz(-image_roll) @ R`` (head turning = yaw).
        imu_relative_angle_deg: (N,) the phone's rotation angle since frame 0 from
            ``motion-data.json`` (nearest IMU sample), or None without it.
        alignment: the mannequin's head frame in the cloud.
    """

    files: list[str]
    rotations: np.ndarray
    translations: np.ndarray
    camera_to_cloud: np.ndarray
    residuals: list[dict]
    timestamps: np.ndarray
    relative_angle_deg: np.ndarray
    euler_deg: np.ndarray
    image_roll_deg: float
    upright_euler_deg: np.ndarray
    imu_relative_angle_deg: np.ndarray | None
    alignment: MannequinAlignment
    seconds: float = 0.0
    cached: bool = False

    def pose(self, i: int) -> HeadPose:
        return HeadPose(self.rotations[i].copy(), self.translations[i].copy())


def _frame_points(path: Path, n: int = 3000) -> tuple[np.ndarray, float]:

    fr = read_depth(path)
    pts = fr.points()
    pts = pts[pts[:, 2] < MAX_FRAME_DEPTH_MM].astype(np.float64)
    rng = np.random.default_rng(0)
    pts = pts[rng.choice(len(pts), min(n, len(pts)), replace=False)]
    return pts, float(fr.meta.get("truedepth", {}).get("timestamp", np.nan))


def _imu_angles(folder: Path, timestamps: np.ndarray) -> np.ndarray | None:

    p = folder / "DepthFrames" / "motion-data.json"
    try:
        rows = json.loads(p.read_text(encoding="utf-8"))
        ts = np.array([r["timestamp"] for r in rows], np.float64)
        q = np.array([[r["attitude_w"], r["attitude_x"], r["attitude_y"], r["attitude_z"]] for r in rows], np.float64)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not np.isfinite(timestamps).all() or len(ts) == 0:
        return None
    rot = quat_to_matrix(q[np.abs(ts[None, :] - timestamps[:, None]).argmin(axis=1)])
    return rotation_angle_deg(np.swapaxes(rot[:1], -1, -2) @ rot)


def mannequin_reference(
    path: str | Path | None = None, *, model: FaceModel | None = None, use_cache: bool = True
) -> MannequinReference:
    """Register every real frame to ``Expected.ply`` -> reference head poses (see module doc).

    ~5-10 s uncached (plus :func:`align_mannequin`); cached under ``$FACERECON_HOME/realdata``.
    """
    folder = _folder(path)
    folder = folder.parent if folder.is_file() else folder
    align = align_mannequin(folder, model=model, use_cache=use_cache)
    files = frame_files(folder)
    name = f"mannequin-reference-{_file_key(folder / 'Expected.ply', *files)}.json"
    doc = _read_cache(name) if use_cache else None
    cached = doc is not None
    if doc is None:
        t0 = time.perf_counter()
        cloud = load_mannequin_cloud(folder)
        target = CloudTarget(cloud["points"], cloud["normals"])
        rk, tk, res, stamps = [], [], [], []
        pose = None
        for i, f in enumerate(files):
            pts, stamp = _frame_points(f)
            if i == 0:
                pose, _, _ = multi_start_icp(target, pts, start_rotations(24, 3))
            else:
                pose = target.icp(pts, pose, iterations=30, max_dist=(20.0, 4.0))
            rk.append(pose.R)
            tk.append(pose.t_mm)
            res.append(target.residuals(pts, pose))
            stamps.append(stamp)
        doc = {"files": [f.name for f in files], "R": np.asarray(rk).tolist(), "t": np.asarray(tk).tolist(),
               "residuals": res, "timestamps": stamps, "seconds": time.perf_counter() - t0}  # fmt: skip
        _write_cache(name, doc)
    rk, tk = np.asarray(doc["R"]), np.asarray(doc["t"])
    rot = np.swapaxes(rk, -1, -2) @ align.pose.R
    trans = np.einsum("nji,nj->ni", rk, align.pose.t_mm[None] - tk)
    rel = rotation_angle_deg(np.swapaxes(rot[:1], -1, -2) @ rot)

    roll = upright_roll_deg(rot[0])
    upright = matrix_to_euler(_rz(np.deg2rad(-roll)) @ rot)
    stamps = np.asarray(doc["timestamps"], np.float64)
    return MannequinReference(
        files=list(doc["files"]), rotations=rot, translations=trans, camera_to_cloud=np.concatenate([rk, tk[:, :, None]], axis=2),
        residuals=list(doc["residuals"]), timestamps=stamps, relative_angle_deg=rel, euler_deg=matrix_to_euler(rot),
        image_roll_deg=roll if roll <= 180 else roll - 360.0, upright_euler_deg=upright,
        imu_relative_angle_deg=_imu_angles(folder, stamps), alignment=align, seconds=float(doc["seconds"]), cached=cached,
    )  # fmt: skip
