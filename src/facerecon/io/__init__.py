"""Reading and writing depth frames, point clouds and meshes.

``read_depth`` and ``DepthFrame`` are imported eagerly; the format modules (numba,
trimesh, Pillow) load on first use so ``import facerecon.io`` stays cheap.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from .depth import SUPPORTED, read_depth
from .frame import DepthFrame

_LAZY = {
    "read_pcd": "pcd", "read_pcd_points": "pcd", "write_pcd": "pcd",
    "read_truedepth_frame": "truedepth", "read_ply_points": "truedepth",
    "read_biwi_frame": "biwi", "write_biwi_frame": "biwi", "read_biwi_pose": "biwi",
    "read_depth_png": "images", "read_depth_npy": "images", "read_depth_npz": "images",
    "write_depth_png": "images", "write_depth_npz": "images", "write_frame_npz": "images",
    "Mesh": "mesh", "read_mesh": "mesh", "write_mesh": "mesh", "read_ljson_landmarks": "mesh",
}  # fmt: skip

__all__ = ["DepthFrame", "read_depth", "SUPPORTED", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
