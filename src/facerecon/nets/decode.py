"""What follows the networks, in NumPy (no torch): the pose network's outputs -> head poses
(the shape network's: offsets in :data:`OFFSET_UNIT_MM`).

The runtime (:mod:`facerecon.pipeline.runtime`) runs the networks on onnxruntime and decodes
here; training's evaluation (:func:`facerecon.train.pose.predict_poses`) decodes here too, so
there is one decode.  The arithmetic is float32 as the networks give it, in the order the
torch decode had it (against the torch expressions on 10^5 random quaternions: bit-identical;
``tests/test_runtime.py``).

Network outputs (see :mod:`.pose`): ``quat`` (B, 4) unit quaternion (w, x, y, z), sign as
predicted; ``trans`` (B, 3) head origin minus crop centre in position-image units.
"""
from __future__ import annotations

import numpy as np

from ..geometry.pose import HeadPose
from ..preprocess.position_image import PositionImage

OFFSET_UNIT_MM = 10.0  # the shape network (R) predicts offsets in centimetres (see facerecon.train.shape)

# Test-time flip.  Mirroring a position image left-right (columns reversed, X negated) shows
# the network the mirror scene P p (P = diag(-1, 1, 1)); a face is close to symmetric about
# its head-frame x = 0 plane, so the mirror scene holds a head at rotation P R P and offset
# P t.  Conjugating by P maps a quaternion (w, x, y, z) to (w, x, -y, -z).
MIRROR_QUAT = np.array([1.0, 1.0, -1.0, -1.0], np.float32)
MIRROR_TRANS = np.array([-1.0, 1.0, 1.0], np.float32)


def mirror_position_images(images: np.ndarray) -> np.ndarray:
    """(..., 3, S, S) position images -> their left-right mirror images (X negated)."""
    out = np.ascontiguousarray(np.asarray(images)[..., ::-1])
    out[..., 0, :, :] *= -1
    return out


def turn_position_images(images: np.ndarray, quarter_turns: int) -> np.ndarray:
    """(..., 3, S, S) position images of the scene turned by ``90 * quarter_turns`` degrees about the
    camera z axis through the crop centre (``Rz``: x right, y down, so positive turns are clockwise
    in the image): pixels move on the grid, the x, y channels turn with them (a point at centred
    pixel (a, b) moves to (-b, a)).  The pipeline's turned crops
    (:func:`facerecon.pipeline.check.rotate_position_image`, one image) are made by this function."""
    k = int(quarter_turns) % 4
    out = np.asarray(images)
    for _ in range(k):
        out = np.rot90(out, k=-1, axes=(-2, -1))
        out = np.stack([-out[..., 1, :, :], out[..., 0, :, :], out[..., 2, :, :]], axis=-3)
    return np.ascontiguousarray(out)


def turned_labels(quat: np.ndarray, trans: np.ndarray, quarter_turns: int) -> tuple[np.ndarray, np.ndarray]:
    """Pose labels (quaternion (w, x, y, z), translation in position units from the crop centre) of
    the scene turned as :func:`turn_position_images` turns it: ``R -> Rz R``, ``t -> Rz t``."""
    k = int(quarter_turns) % 4
    half = np.deg2rad(45.0 * k)
    c, s = np.cos(half), np.sin(half)
    w, x, y, z = np.moveaxis(np.asarray(quat, np.float64), -1, 0)
    q = np.stack([c * w - s * z, c * x - s * y, c * y + s * x, c * z + s * w], axis=-1)  # (c, 0, 0, s) * q
    cz, sz = ((1, 0), (0, 1), (-1, 0), (0, -1))[k]  # cos, sin of 90 k exactly
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]], np.float64)
    t = np.asarray(trans, np.float64) @ rz.T
    return q.astype(np.asarray(quat).dtype), t.astype(np.asarray(trans).dtype)


def normalize_quaternions(q: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """(..., 4) -> unit length, in the input's precision (the network's float32); the squares
    summed in order w, x, y, z, as torch's CPU ``norm`` does (bit-identical to it)."""
    q = np.asarray(q)
    sq = q * q
    norm = np.sqrt(((sq[..., 0] + sq[..., 1]) + sq[..., 2]) + sq[..., 3])[..., None]
    return q / np.maximum(norm, q.dtype.type(eps))


def canonicalize_quaternions(q: np.ndarray) -> np.ndarray:
    """Flip quaternions (..., 4) to the ``w >= 0`` hemisphere (q and -q are the same rotation)."""
    return np.where(q[..., :1] < 0, -q, q)


def mirrored_back(quat: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outputs on mirrored position images -> the prediction for the unmirrored scene."""
    return normalize_quaternions(quat) * MIRROR_QUAT, np.asarray(trans) * MIRROR_TRANS


def flip_average(quat: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outputs for ``[images; mirror_position_images(images)]`` (2N rows) -> N averaged
    ``(unit quaternion, offset)``: the mirrored predictions are mapped back and averaged
    with the direct ones (quaternions sign-aligned, then normalised)."""
    n = quat.shape[0] // 2
    q = normalize_quaternions(quat)
    q1, q2 = q[:n], q[n:] * MIRROR_QUAT
    q2 = np.where((q1 * q2).sum(-1, keepdims=True) < 0, -q2, q2)
    trans = np.asarray(trans)
    t = trans.dtype.type(0.5) * (trans[:n] + trans[n:] * MIRROR_TRANS)
    return normalize_quaternions(q1 + q2), t


def decoded_quaternions(quat: np.ndarray) -> np.ndarray:
    """(N, 4) network quaternions -> unit, ``w >= 0``, float64 (what :func:`output_to_pose` takes)."""
    return canonicalize_quaternions(normalize_quaternions(quat)).astype(np.float64)


def output_to_pose(quat, trans, image: PositionImage) -> HeadPose:
    """One (4,) quaternion and (3,) normalised offset -> :class:`HeadPose` in the camera frame."""
    q = np.asarray(quat, dtype=np.float64)
    t = image.center_mm + np.asarray(trans, dtype=np.float64) * image.scale_mm
    return HeadPose.from_quaternion(q, t)

