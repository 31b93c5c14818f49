"""Metric depth image -> coloured point cloud -> surface mesh, with Open3D (seed 001's last step).

Camera frame, millimetres (x right, y down, z forward).  Normals are estimated from each
point's neighbours (hybrid radius / k-NN search) and turned to face the camera (the origin):
every point of a single depth image was seen from there.  The surface is screened Poisson
(Kazhdan & Hoppe 2013) at octree depth ~8-9, whose low-density vertices (the membrane it
spans across holes and beyond the data) are dropped by a quantile, then cropped to the head's
3-D box; ball pivoting (Bernardini et al. 1999) is the alternative that only connects points.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FaceReconError
from ..fileutil import atomic_path
from ..geometry.camera import Intrinsics

SURFACE_METHODS = ("poisson", "ball-pivoting")


@dataclass(frozen=True)
class SurfaceConfig:
    method: str = "poisson"
    poisson_depth: int = 8
    density_quantile: float = 0.05  # drop this fraction of the lowest-density vertices
    normal_radius_mm: float = 6.0
    normal_max_nn: int = 30
    ball_radii_mm: tuple[float, ...] = (1.5, 3.0, 6.0)
    crop_margin_mm: float = 20.0
    max_points: int = 200_000  # depth pixels are subsampled evenly above this

    def __post_init__(self) -> None:
        if self.method not in SURFACE_METHODS:
            raise FaceReconError(f"--surface: unknown {self.method!r}; choose {' or '.join(SURFACE_METHODS)}")
        if not 0.0 <= self.density_quantile < 1.0:
            raise FaceReconError(f"density quantile must be in [0, 1), got {self.density_quantile}")


@dataclass
class Surface:
    """What :func:`reconstruct_surface` returns (Open3D objects + numbers for the report)."""

    cloud: object  # open3d.geometry.PointCloud
    mesh: object  # open3d.geometry.TriangleMesh
    n_points: int
    n_vertices: int
    n_triangles: int
    method: str


def _o3d():
    try:
        import open3d as o3d
    except ImportError as exc:  # e.g. libusb-1.0 missing on a bare machine
        raise FaceReconError(f"Open3D is not importable ({exc}); `make install` installs open3d-cpu and libusb-1.0-0") from None
    return o3d


def point_cloud(depth_mm: np.ndarray, rgb: np.ndarray | None, intrinsics: Intrinsics, mask: np.ndarray | None = None,
                config: SurfaceConfig = SurfaceConfig()):
    """Coloured Open3D point cloud (mm, camera frame) of the valid (and masked) pixels, with
    normals oriented towards the camera."""
    o3d = _o3d()
    d = np.asarray(depth_mm, np.float32)
    pts = intrinsics.depth_to_points(d)
    ok = np.isfinite(d) & (d > 0)
    if mask is not None:
        ok &= np.asarray(mask, bool)
    idx = np.flatnonzero(ok.ravel())
    if idx.size > config.max_points:
        idx = idx[np.linspace(0, idx.size - 1, config.max_points).astype(np.int64)]
    if idx.size < 10:
        raise FaceReconError(f"point cloud: only {idx.size} pixels with depth; nothing to mesh")
    pc = o3d.geometry.PointCloud()
    pc.points = o3d.utility.Vector3dVector(pts.reshape(-1, 3)[idx].astype(np.float64))
    if rgb is not None:
        pc.colors = o3d.utility.Vector3dVector(np.asarray(rgb).reshape(-1, 3)[idx].astype(np.float64) / 255.0)
    pc.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=config.normal_radius_mm, max_nn=config.normal_max_nn))
    pc.orient_normals_towards_camera_location(np.zeros(3))
    return pc


def head_box(vertices_camera: np.ndarray, margin_mm: float = 20.0):
    """Axis-aligned 3-D box around the fitted head (camera frame) plus ``margin_mm``."""
    o3d = _o3d()
    v = np.asarray(vertices_camera, np.float64)
    return o3d.geometry.AxisAlignedBoundingBox(v.min(axis=0) - margin_mm, v.max(axis=0) + margin_mm)


def poisson_mesh(cloud, config: SurfaceConfig = SurfaceConfig(), crop=None):
    """Screened Poisson surface with the lowest-density ``density_quantile`` of vertices dropped,
    cropped to ``crop`` (an Open3D bounding box) when given; colours come from the cloud."""
    o3d = _o3d()
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        mesh, dens = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(cloud, depth=int(config.poisson_depth),
                                                                               n_threads=1)
    dens = np.asarray(dens)
    if config.density_quantile > 0 and dens.size:
        mesh.remove_vertices_by_mask(dens < np.quantile(dens, config.density_quantile))
    if crop is not None:
        mesh = mesh.crop(crop)
    mesh.remove_unreferenced_vertices()
    mesh.compute_vertex_normals()
    return mesh


def ball_pivot_mesh(cloud, config: SurfaceConfig = SurfaceConfig(), crop=None):
    """Ball-pivoting surface over the cloud's points (radii in mm)."""
    o3d = _o3d()
    if crop is not None:
        cloud = cloud.crop(crop)
    mesh = o3d.geometry.TriangleMesh.create_from_point_cloud_ball_pivoting(
        cloud, o3d.utility.DoubleVector([float(r) for r in config.ball_radii_mm]))
    mesh.compute_vertex_normals()
    return mesh


def reconstruct_surface(depth_mm: np.ndarray, rgb: np.ndarray | None, intrinsics: Intrinsics, *,
                        head_vertices: np.ndarray | None = None, mask: np.ndarray | None = None,
                        config: SurfaceConfig = SurfaceConfig()) -> Surface:
    """Point cloud + surface mesh; both cropped to the head box when ``head_vertices`` is given."""
    crop = head_box(head_vertices, config.crop_margin_mm) if head_vertices is not None else None
    cloud = point_cloud(depth_mm, rgb, intrinsics, mask, config)
    if crop is not None:
        cloud = cloud.crop(crop)
        if len(cloud.points) < 10:
            raise FaceReconError("point cloud: no depth inside the fitted head's box (the depth does not match the face)")
    mesh = poisson_mesh(cloud, config, crop) if config.method == "poisson" else ball_pivot_mesh(cloud, config)
    return Surface(cloud, mesh, len(cloud.points), len(mesh.vertices), len(mesh.triangles), config.method)


def mesh_arrays(mesh) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3) float64, triangles (T, 3) int64) of an Open3D mesh."""
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.triangles, np.int64)


def write_cloud_ply(path: str | Path, cloud) -> None:
    """Binary PLY with colours and normals (atomic)."""
    o3d = _o3d()
    with atomic_path(path) as tmp:
        if not o3d.io.write_point_cloud(str(tmp), cloud, write_ascii=False):
            raise FaceReconError(f"{path}: Open3D could not write the point cloud")


def write_mesh_ply(path: str | Path, mesh) -> None:
    """Binary PLY with vertex colours and normals (atomic)."""

    o3d = _o3d()
    with atomic_path(path) as tmp:
        if not o3d.io.write_triangle_mesh(str(tmp), mesh, write_ascii=False, write_vertex_colors=True,
                                          write_vertex_normals=True):
            raise FaceReconError(f"{path}: Open3D could not write the mesh")
