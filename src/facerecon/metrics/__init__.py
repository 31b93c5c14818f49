"""Evaluation metrics: head pose errors and shape errors between meshes of any topology.

* :mod:`.pose`: geodesic / per-axis Euler (facerecon convention) / translation errors.
* :mod:`.surface`: exact point-to-triangle-mesh distances (vectorised, KD-tree candidates
  with a correctness certificate).
* :mod:`.align`: rigid ICP to a surface or a cloud (configurations of ``geometry.icp.rigid_icp``;
  landmark alignment, ``fit_similarity``, is in ``geometry.transforms``).
* :mod:`.shape`: :func:`compare_meshes` (both-way surface distances in a region, the
  paper's eq. 8 Chamfer) and the NoW-style :func:`scan_to_mesh_error`.

All distances in millimetres, the Chamfer value in mm^2, angles in degrees.
"""
from __future__ import annotations

from .align import NINE_LANDMARKS_68, NOW_LANDMARKS_68, icp_to_surface
from .pose import PoseErrors, euler_abs_errors_deg, geodesic_errors_deg, pose_errors, translation_errors_mm, wrap_deg
from .shape import (
    DEFAULT_CHAMFER_EPS_MM2,
    ChamferResult,
    DistanceStats,
    ScanErrors,
    ShapeErrors,
    chamfer_eq8,
    compare_meshes,
    scan_to_mesh_error,
)
from .surface import ClosestPoints, SurfaceIndex, closest_points_on_triangles, point_to_surface, triangulate_faces

__all__ = [
    "NINE_LANDMARKS_68", "NOW_LANDMARKS_68", "icp_to_surface",
    "PoseErrors", "euler_abs_errors_deg", "geodesic_errors_deg", "pose_errors", "translation_errors_mm", "wrap_deg",
    "DEFAULT_CHAMFER_EPS_MM2", "ChamferResult", "DistanceStats", "ScanErrors", "ShapeErrors", "chamfer_eq8",
    "compare_meshes", "scan_to_mesh_error",
    "ClosestPoints", "SurfaceIndex", "closest_points_on_triangles", "point_to_surface", "triangulate_faces",
]
