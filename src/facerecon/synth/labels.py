"""Labels of a synthetic frame, and the large ones recomputed from the stored small ones.

Stored per sample (small): pose (quaternion w,x,y,z; translation mm; Euler yaw/pitch/roll
in degrees, :mod:`facerecon.geometry.rotations` convention), identity (100) and expression (55)
weights, 68 landmarks in 3D (camera frame, mm) and 2D (pixels) with visibility,
intrinsics, preset, sensor, seed, index.  Large labels are NOT stored; recompute them
with the same :class:`~facerecon.facemodel.FaceModel` (deterministic, ~1-5 ms):

* :func:`gt_vertices` - the ground-truth mesh (head or camera frame);
* :func:`gt_face_offsets` - per-vertex offsets of the ICT ``face`` region from the
  reference (neutral, all weights 0) face, in the head frame: the shape network's target.
"""
from __future__ import annotations

import numpy as np

from ..geometry.camera import Intrinsics
from ..facemodel.model import FaceModel
from ..geometry.rotations import matrix_to_euler, matrix_to_quat, quat_to_matrix

#: Depth tolerance (mm) of the landmark visibility test against the exact z-buffer.
LANDMARK_VISIBILITY_TOL_MM = 10.0


def pose_labels(rotation: np.ndarray, translation: np.ndarray) -> dict:
    r = np.asarray(rotation, np.float64)
    return {
        "quaternion": matrix_to_quat(r).astype(np.float64),
        "translation_mm": np.asarray(translation, np.float64),
        "euler_deg": matrix_to_euler(r).astype(np.float64),
    }


def rotation_of(labels: dict) -> np.ndarray:
    """(3, 3) head-to-camera rotation from the stored quaternion."""
    return quat_to_matrix(np.asarray(labels["quaternion"], np.float64))


def landmark_labels(
    landmarks_cam: np.ndarray, intrinsics: Intrinsics, ideal_depth: np.ndarray, tol_mm: float = LANDMARK_VISIBILITY_TOL_MM
) -> tuple[np.ndarray, np.ndarray]:
    """(68, 2) pixel positions and (68,) visibility: inside the image and not behind the z-buffer."""
    uv = intrinsics.project(landmarks_cam)
    h, w = ideal_depth.shape
    ui = np.rint(uv[:, 0]).astype(np.int64)
    vi = np.rint(uv[:, 1]).astype(np.int64)
    inside = (ui >= 0) & (ui < w) & (vi >= 0) & (vi < h) & (landmarks_cam[:, 2] > 0)
    visible = np.zeros(len(uv), bool)
    zb = ideal_depth[vi[inside], ui[inside]]
    visible[inside] = (zb > 0) & (landmarks_cam[inside, 2] <= zb + tol_mm)
    return uv, visible


def gt_vertices(model: FaceModel, labels: dict, frame: str = "camera", subset: np.ndarray | None = None,
                scans: dict[str, np.ndarray] | None = None) -> np.ndarray:  # fmt: skip
    """Ground-truth mesh vertices (float64, mm) of a sample, in the ``camera`` or ``head`` frame.

    Includes the sample's out-of-span deformation (``labels["deform"]``); a sample whose identity
    is a real scan (``labels["identity_source"] = "scan:NAME"``) needs that scan's displacement in
    ``scans`` (the same one the generator had).
    """
    from ..errors import ConfigError
    from .deform import displacement

    v = model.vertices(labels["identity"], labels["expression"], subset=subset).astype(np.float64)
    rows = np.arange(model.n_vertices) if subset is None else np.asarray(subset)
    source = labels.get("identity_source", "model")
    if source.startswith("scan:"):
        if not scans or source[5:] not in scans:
            raise ConfigError(f"sample identity is {source}: pass its displacement (scans=) to rebuild the mesh")
        v = v + np.asarray(scans[source[5:]], np.float64)[rows]
    if labels.get("deform"):
        v = v + displacement(model.neutral[rows], labels["deform"])
    if frame == "head":
        return v
    if frame != "camera":
        raise ValueError(f"frame must be 'camera' or 'head', got {frame!r}")
    return v @ rotation_of(labels).T + np.asarray(labels["translation_mm"], np.float64)


def gt_face_offsets(model: FaceModel, labels: dict, scans: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """(n_face, 3) float32 head-frame offsets of the ICT ``face`` region from the reference face
    (out-of-span deformation and scan identity included, as in :func:`gt_vertices`)."""
    idx = model.region_vertices("face")
    v = gt_vertices(model, labels, "head", subset=idx, scans=scans)
    return (v - model.reference_vertices[idx]).astype(np.float32)
