"""Rotation conventions used everywhere in facerecon (fixed once, here).

Frames
------
* **Camera frame** (OpenCV): x right, y down, z forward, millimetres.
* **Canonical head frame** (see :mod:`facerecon.facemodel`): x towards the subject's
  left (image right for a frontal face), y down (towards the chin), z into the head
  (from the face towards the back of the head). A frontal face looking straight at the
  camera therefore has rotation **identity**.  A head-frame point ``v`` maps to the camera
  frame as ``R @ v + t``.

Quaternions
-----------
``(w, x, y, z)``, unit norm, sign fixed so that ``w >= 0``.

Euler angles (degrees)
----------------------
``R = Ry(yaw) @ Rx(pitch) @ Rz(roll)``, each an ordinary right-handed rotation about
the **camera** axes (so roll is applied first, then pitch, then yaw).  With the camera
frame above this means, for a subject facing the camera:

* **yaw > 0**: the face turns towards the image left (the subject's own right);
* **pitch > 0**: the face turns down (chin towards the chest);
* **roll > 0**: the head tilts clockwise as the image is displayed.

Ranges: yaw and roll in (-180, 180], pitch in [-90, 90]; at pitch = +-90 (gimbal lock,
not a pose a head reaches) roll is reported as 0.
"""
from __future__ import annotations

import numpy as np

_EPS = 1e-9


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """Unit quaternion(s) with w >= 0. Shape (..., 4)."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), _EPS)
    return np.where(q[..., :1] < 0, -q, q)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (w, x, y, z) -> (..., 3, 3) rotation matrices."""
    q = quat_normalize(q)
    w, x, y, z = np.moveaxis(q, -1, 0)
    r = np.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    )
    return r.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions with w >= 0.

    Uses the numerically stable branch on the largest diagonal term (Shepperd's method).
    """
    r = np.asarray(r, dtype=np.float64)
    shape = r.shape[:-2]
    m = r.reshape(-1, 3, 3)
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    diag = np.stack([tr, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], axis=1)
    k = np.argmax(diag, axis=1)
    q = np.empty((m.shape[0], 4))
    # Four candidate formulas; each row uses the one with the largest denominator.
    s0 = np.sqrt(np.maximum(1 + tr, _EPS)) * 2
    c0 = np.stack([0.25 * s0, (m[:, 2, 1] - m[:, 1, 2]) / s0, (m[:, 0, 2] - m[:, 2, 0]) / s0, (m[:, 1, 0] - m[:, 0, 1]) / s0], 1)
    s1 = np.sqrt(np.maximum(1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2], _EPS)) * 2
    c1 = np.stack([(m[:, 2, 1] - m[:, 1, 2]) / s1, 0.25 * s1, (m[:, 0, 1] + m[:, 1, 0]) / s1, (m[:, 0, 2] + m[:, 2, 0]) / s1], 1)
    s2 = np.sqrt(np.maximum(1 + m[:, 1, 1] - m[:, 0, 0] - m[:, 2, 2], _EPS)) * 2
    c2 = np.stack([(m[:, 0, 2] - m[:, 2, 0]) / s2, (m[:, 0, 1] + m[:, 1, 0]) / s2, 0.25 * s2, (m[:, 1, 2] + m[:, 2, 1]) / s2], 1)
    s3 = np.sqrt(np.maximum(1 + m[:, 2, 2] - m[:, 0, 0] - m[:, 1, 1], _EPS)) * 2
    c3 = np.stack([(m[:, 1, 0] - m[:, 0, 1]) / s3, (m[:, 0, 2] + m[:, 2, 0]) / s3, (m[:, 1, 2] + m[:, 2, 1]) / s3, 0.25 * s3], 1)
    cands = np.stack([c0, c1, c2, c3], axis=1)
    q = cands[np.arange(m.shape[0]), k]
    return quat_normalize(q).reshape(shape + (4,))


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(a.shape + (3, 3))


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(a.shape + (3, 3))


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(a.shape + (3, 3))


def euler_to_matrix(yaw_deg, pitch_deg, roll_deg) -> np.ndarray:
    """Euler angles in degrees (scalars or arrays) -> rotation matrix ``Ry @ Rx @ Rz``."""
    y, p, r = (np.deg2rad(np.asarray(a, dtype=np.float64)) for a in (yaw_deg, pitch_deg, roll_deg))
    y, p, r = np.broadcast_arrays(y, p, r)
    return _ry(y) @ _rx(p) @ _rz(r)


def matrix_to_euler(r: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3) array of (yaw, pitch, roll) in degrees (see module doc)."""
    r = np.asarray(r, dtype=np.float64)
    sp = np.clip(-r[..., 1, 2], -1.0, 1.0)
    pitch = np.arcsin(sp)
    cp = np.cos(pitch)
    regular = cp > 1e-6
    yaw = np.where(regular, np.arctan2(r[..., 0, 2], r[..., 2, 2]), np.arctan2(sp * r[..., 0, 1], r[..., 0, 0]))
    roll = np.where(regular, np.arctan2(r[..., 1, 0], r[..., 1, 1]), 0.0)
    return np.rad2deg(np.stack([yaw, pitch, roll], axis=-1))


def rotation_angle_deg(r: np.ndarray) -> np.ndarray:
    """Angle of rotation(s) (..., 3, 3) in degrees, in [0, 180]."""
    r = np.asarray(r, dtype=np.float64)
    c = (np.trace(r, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.rad2deg(np.arccos(np.clip(c, -1.0, 1.0)))


def geodesic_distance_deg(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Geodesic distance between rotations (..., 3, 3) in degrees."""
    return rotation_angle_deg(np.swapaxes(np.asarray(r1), -1, -2) @ np.asarray(r2))


def axis_angle_to_matrix(w: np.ndarray) -> np.ndarray:
    """Rotation matrix of an axis-angle vector ``w`` (radians; the SO(3) exponential, Rodrigues)."""
    w = np.asarray(w, dtype=np.float64)
    th = float(np.linalg.norm(w))
    if th < 1e-15:
        return np.eye(3)
    k = w / th
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(th) * kx + (1 - np.cos(th)) * kx @ kx


def random_rotation(rng: np.random.Generator, n: int) -> np.ndarray:
    """n uniformly distributed rotations (n, 3, 3)."""
    return quat_to_matrix(rng.normal(size=(n, 4)))
