"""The bottom floor: the geometry every stage above shares, with its conventions written beside it.

* :mod:`.rotations`: quaternions, Euler angles, axis-angle (the one Euler convention).
* :mod:`.pose`: ``HeadPose``, the rigid head pose every stage exchanges (no bare ``(R, t)`` tuples).
* :mod:`.camera`: pinhole ``Intrinsics``, camera presets, depth <-> points, projection.
* :mod:`.raster`: the z-buffer rasterizer (depth, triangle ids, barycentrics) used by the
  check at inference and by the synthetic renderer.
* :mod:`.transforms`: ``SimilarityTransform`` and its least-squares fit (Kabsch / Umeyama).
* :mod:`.icp`: the one rigid ICP loop (``rigid_icp``) and its point-to-plane step; the
  association (which target point pairs with which source point) is a strategy passed in.

Nothing here imports another facerecon floor except :mod:`facerecon.errors`.
"""
from __future__ import annotations

from .camera import Intrinsics
from .pose import HeadPose

__all__ = ["HeadPose", "Intrinsics"]
