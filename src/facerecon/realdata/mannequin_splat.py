"""Splats of the TrueDepth mannequin's fused cloud at any head pose, through a sensor model."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..geometry.camera import Intrinsics
from ..geometry.pose import HeadPose
from ..geometry.raster import rasterize, splat_points
from ..io.frame import DepthFrame
from ..synth.presets import load_sensor
from ..synth.sensors import apply_sensor
from . import EVAL_POSE_KEY
from .mannequin import align_mannequin, load_mannequin_cloud


def _cos_from_depth(depth: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """|cos| of the view angle per pixel from depth-image normals (central differences)."""
    pts = intr.depth_to_points(depth).astype(np.float64)
    dx = np.zeros_like(pts)
    dy = np.zeros_like(pts)
    dx[:, 1:-1] = pts[:, 2:] - pts[:, :-2]
    dy[1:-1] = pts[2:] - pts[:-2]
    n = np.cross(dx, dy)
    nn = np.linalg.norm(n, axis=-1) * np.linalg.norm(pts, axis=-1)
    valid = depth > 0
    ok = valid & np.roll(valid, 1, 0) & np.roll(valid, -1, 0) & np.roll(valid, 1, 1) & np.roll(valid, -1, 1) & (nn > 0)
    cos = np.ones(depth.shape, np.float32)
    cos[ok] = np.abs(np.einsum("ijk,ijk->ij", n, pts)[ok] / nn[ok])
    return cos


def splat_mannequin(
    pose: HeadPose,
    intrinsics: Intrinsics,
    sensor_name: str = "ideal",
    rng: np.random.Generator | None = None,
    *,
    radius_mm: float = 1.6,
    background: str = "none",
    wall_gap_mm: float = 600.0,
    path: str | Path | None = None,
) -> DepthFrame:
    """Depth frame of ``Expected.ply`` with the mannequin's head at ``pose`` through a sensor model.

    Points whose normal faces away from the camera are dropped, the rest are splatted as
    discs of ``radius_mm`` (the cloud's median spacing is ~1.1 mm).  ``background``:
    ``'none'`` or ``'wall'`` (a plane ``wall_gap_mm`` behind the head origin).  The
    cloud covers the front and sides of the head (the real sweep spans ~110 degrees),
    neck and the top of the shoulders; views from behind show holes.
    ``meta[EVAL_POSE_KEY] = pose`` is the exact head pose (evaluation only).
    """

    rng = rng if rng is not None else np.random.default_rng(0)
    r, t = pose.R, pose.t_mm
    align = align_mannequin(path)
    cloud = load_mannequin_cloud(path)
    # cloud -> head -> camera
    rc = r @ align.pose.R.T
    tc = t - rc @ align.pose.t_mm
    pts = cloud["points"] @ rc.T + tc
    nrm = cloud["normals"] @ rc.T
    front = np.einsum("ij,ij->i", nrm, pts) < 0
    depth = splat_points(pts[front], intrinsics, radius_mm)
    if background == "wall":
        from .scan import _wall

        wv, wt = _wall(float(t[2]) + float(wall_gap_mm), intrinsics)
        wd, _, _ = rasterize(wv, wt, intrinsics)
        depth = np.where((depth > 0) & ((wd == 0) | (depth < wd)), depth, wd).astype(np.float32)
    elif background != "none":
        raise ValueError(f"background must be 'none' or 'wall', got {background!r}")
    cos = _cos_from_depth(depth, intrinsics)
    out, applied = apply_sensor(load_sensor(sensor_name), depth, intrinsics, rng, cos_view=cos)
    meta = {
        "format": "render",
        "domain": "real-splat",
        "subject": "truedepth-mannequin",
        "sensor": sensor_name,
        "background": background,
        EVAL_POSE_KEY: pose,
        "sensor_params": [[name, prm] for name, prm in applied],
    }
    return DepthFrame(out, intrinsics, f"truedepth-mannequin splat ({sensor_name})", None, meta)
