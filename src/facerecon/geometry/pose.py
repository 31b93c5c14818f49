"""``HeadPose``: a rigid head pose in the camera frame (the one type every stage exchanges).

A head-frame point ``v`` (canonical head frame, mm; see :mod:`facerecon.geometry.rotations`) is
``R @ v + t_mm`` in the camera frame (x right, y down, z forward, mm).  Rotation as a
matrix ``R``, a unit quaternion ``(w, x, y, z)`` with ``w >= 0``, and Euler angles
``(yaw, pitch, roll)`` in degrees with ``R = Ry(yaw) @ Rx(pitch) @ Rz(roll)`` about the
camera axes (the convention of :mod:`facerecon.geometry.rotations`; identity = frontal face).

The field names (``R``, ``t_mm``) and the JSON layout match
``facerecon.datasets.folder.HeadPose``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rotations import euler_to_matrix, matrix_to_euler, matrix_to_quat, quat_normalize, quat_to_matrix

EULER_CONVENTION = "R = Ry(yaw) @ Rx(pitch) @ Rz(roll) about the camera axes (x right, y down, z forward), degrees"


def _orthonormalize(r: np.ndarray) -> np.ndarray:
    """Nearest rotation matrix (SVD), so a slightly noisy R stays a rotation."""
    u, _, vt = np.linalg.svd(r)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


@dataclass(frozen=True, eq=False)
class HeadPose:
    """Rigid head pose: ``R`` (3, 3) rotation, ``t_mm`` (3,) translation (camera frame, mm)."""

    R: np.ndarray
    t_mm: np.ndarray

    def __post_init__(self) -> None:
        r = np.asarray(self.R, dtype=np.float64).reshape(3, 3)
        t = np.asarray(self.t_mm, dtype=np.float64).reshape(3)
        if not np.allclose(r @ r.T, np.eye(3), atol=1e-6):
            r = _orthonormalize(r)
        object.__setattr__(self, "R", r)
        object.__setattr__(self, "t_mm", t)

    # -- constructors -------------------------------------------------------------------
    @staticmethod
    def from_quaternion(q_wxyz, t_mm) -> "HeadPose":
        """From a quaternion (w, x, y, z) (normalised here; either sign)."""
        return HeadPose(quat_to_matrix(np.asarray(q_wxyz, dtype=np.float64)), t_mm)

    @staticmethod
    def from_euler(yaw: float, pitch: float, roll: float, t_mm) -> "HeadPose":
        """From Euler angles in degrees (module convention)."""
        return HeadPose(euler_to_matrix(yaw, pitch, roll), t_mm)

    @staticmethod
    def identity(t_mm=(0.0, 0.0, 0.0)) -> "HeadPose":
        return HeadPose(np.eye(3), t_mm)

    # -- views ----------------------------------------------------------------------------
    @property
    def matrix(self) -> np.ndarray:
        """(3, 3) rotation matrix (same as ``R``)."""
        return self.R

    @property
    def quaternion_wxyz(self) -> np.ndarray:
        """(4,) unit quaternion (w, x, y, z), ``w >= 0``."""
        return quat_normalize(matrix_to_quat(self.R))

    @property
    def euler_deg(self) -> np.ndarray:
        """(3,) ``(yaw, pitch, roll)`` in degrees (see module doc)."""
        return matrix_to_euler(self.R)

    @property
    def yaw(self) -> float:
        return float(self.euler_deg[0])

    @property
    def pitch(self) -> float:
        return float(self.euler_deg[1])

    @property
    def roll(self) -> float:
        return float(self.euler_deg[2])

    # -- use ------------------------------------------------------------------------------
    def apply(self, points_head) -> np.ndarray:
        """Head-frame points (..., 3) -> camera frame (..., 3): ``R v + t``."""
        p = np.asarray(points_head, dtype=np.float64)
        # R @ p.T: a 3 x 3 times 3 x N product is ~2x faster than N x 3 times 3 x 3 in numpy
        return (self.R @ p.reshape(-1, 3).T).T.reshape(p.shape) + self.t_mm

    def inverse_apply(self, points_cam) -> np.ndarray:
        """Camera-frame points (..., 3) -> head frame (..., 3): ``R^T (p - t)``."""
        p = np.asarray(points_cam, dtype=np.float64)
        return (p - self.t_mm) @ self.R

    def to_json(self) -> dict:
        y, p, r = (float(a) for a in self.euler_deg)
        return {
            "R": self.R.round(12).tolist(),
            "t_mm": self.t_mm.round(9).tolist(),
            "quaternion_wxyz": self.quaternion_wxyz.round(12).tolist(),
            "euler_deg": {"yaw": y, "pitch": p, "roll": r},
            "euler_convention": EULER_CONVENTION,
        }

    @staticmethod
    def from_json(d: dict) -> "HeadPose":
        """Inverse of :meth:`to_json` (uses ``R``, else ``quaternion_wxyz``, else ``euler_deg``)."""
        t = d["t_mm"]
        if "R" in d:
            return HeadPose(np.asarray(d["R"], dtype=np.float64), t)
        if "quaternion_wxyz" in d:
            return HeadPose.from_quaternion(d["quaternion_wxyz"], t)
        e = d["euler_deg"]
        return HeadPose.from_euler(float(e["yaw"]), float(e["pitch"]), float(e["roll"]), t)

    def __repr__(self) -> str:
        y, p, r = self.euler_deg
        t = self.t_mm
        return f"HeadPose(yaw={y:.2f}, pitch={p:.2f}, roll={r:.2f} deg, t_mm=[{t[0]:.1f}, {t[1]:.1f}, {t[2]:.1f}])"
