"""Pictures for humans: depth previews (``depthmap``); matplotlib loads only on use."""
from __future__ import annotations

from .depthmap import depth_to_rgb, save_depth_preview

__all__ = ["depth_to_rgb", "save_depth_preview"]
