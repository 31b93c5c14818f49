"""One-Euro filter on SE(3): steady head poses that do not lag on fast turns.

The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) is a first-order low-pass whose
cutoff rises with the speed of the signal: ``cutoff = min_cutoff + beta * |speed|``.  A
still head gets a low cutoff (jitter removed); a fast turn gets a high one (little lag).

On SE(3) the filter works in the tangent space of the previous *filtered* pose: the new
raw pose's offset from it, ``log(R_f^T R)`` (body-frame rotation vector) and ``t - t_f``,
is the signal's increment; the speed is that increment over the frame interval (itself
low-passed with ``d_cutoff``); the filtered pose moves by the fraction ``alpha(cutoff)``
of the increment along the geodesic.  Rotation and translation have their own parameters
(degrees and millimetres).  The raw pose is never changed: the tracker reports both.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..geometry.pose import HeadPose
from ..geometry.rotations import axis_angle_to_matrix


def rotation_log(r: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle, radians) of a rotation matrix (stable near 0 and pi)."""
    c = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    angle = math.acos(c)
    w = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    if angle < 1e-6:
        return 0.5 * w
    if math.pi - angle < 1e-4:  # near pi: axis from the symmetric part
        m = (r + np.eye(3)) / 2.0
        axis = m[int(np.argmax(np.diag(m)))]
        axis = axis / max(np.linalg.norm(axis), 1e-12)
        return axis * angle
    return w * (angle / (2.0 * math.sin(angle)))


def _alpha(cutoff_hz: float, dt: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


@dataclass
class OneEuroParams:
    """One-Euro constants for one channel (rotation in degrees, translation in mm)."""

    min_cutoff_hz: float
    beta: float  # cutoff increase per unit of speed (Hz per deg/s or per mm/s)
    d_cutoff_hz: float = 1.0


class SE3OneEuroFilter:
    """``filter.update(pose, dt) -> filtered HeadPose``; ``reset()`` after a loss of track."""

    def __init__(self, rotation: OneEuroParams, translation: OneEuroParams):
        self.rp, self.tp = rotation, translation
        self.reset()

    def reset(self) -> None:
        self.pose: HeadPose | None = None
        self._w_speed = 0.0  # low-passed angular speed, deg/s
        self._t_speed = 0.0  # low-passed linear speed, mm/s

    def update(self, raw: HeadPose, dt: float) -> HeadPose:
        if self.pose is None or not (dt > 0):
            self.pose = raw
            return raw
        r_f, t_f = self.pose.R, self.pose.t_mm
        w = rotation_log(r_f.T @ raw.R)  # body-frame increment (radians)
        dtv = raw.t_mm - t_f
        w_speed = math.degrees(float(np.linalg.norm(w))) / dt
        t_speed = float(np.linalg.norm(dtv)) / dt
        self._w_speed += _alpha(self.rp.d_cutoff_hz, dt) * (w_speed - self._w_speed)
        self._t_speed += _alpha(self.tp.d_cutoff_hz, dt) * (t_speed - self._t_speed)
        a_r = _alpha(self.rp.min_cutoff_hz + self.rp.beta * self._w_speed, dt)
        a_t = _alpha(self.tp.min_cutoff_hz + self.tp.beta * self._t_speed, dt)
        self.pose = HeadPose(r_f @ axis_angle_to_matrix(a_r * w), t_f + a_t * dtv)
        return self.pose
