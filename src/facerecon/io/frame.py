"""The depth frame every reader returns and every later stage consumes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..geometry.camera import Intrinsics


@dataclass
class DepthFrame:
    """One depth image.

    Attributes:
        depth_mm: (H, W) float32 depth along the optical axis in millimetres; 0 = no measurement.
        intrinsics: pinhole intrinsics of this image, or None when the file has none
            (pass ``--camera``/``--intrinsics`` then).
        source: where it came from (file path or a description).
        color: optional (H, W, 3) uint8 colour image registered to the depth.
        meta: reader-specific extras (e.g. ``pose`` for Biwi frames, the file header).
    """

    depth_mm: np.ndarray
    intrinsics: Intrinsics | None
    source: str = ""
    color: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        d = np.asarray(self.depth_mm, dtype=np.float32)
        if d.ndim != 2:
            raise ValueError(f"depth must be 2-D, got shape {d.shape}")
        d = np.where(np.isfinite(d) & (d > 0), d, 0).astype(np.float32)
        self.depth_mm = d
        if self.intrinsics is not None and (self.intrinsics.width, self.intrinsics.height) != (d.shape[1], d.shape[0]):
            raise ValueError(
                f"intrinsics are for {self.intrinsics.width}x{self.intrinsics.height}, depth is {d.shape[1]}x{d.shape[0]}"
            )

    @property
    def height(self) -> int:
        return int(self.depth_mm.shape[0])

    @property
    def width(self) -> int:
        return int(self.depth_mm.shape[1])

    @property
    def valid(self) -> np.ndarray:
        return self.depth_mm > 0

    def with_intrinsics(self, intrinsics: Intrinsics) -> "DepthFrame":
        return DepthFrame(self.depth_mm, intrinsics, self.source, self.color, dict(self.meta))

    def points(self) -> np.ndarray:
        """(N, 3) camera-frame points (mm) of the valid pixels."""
        if self.intrinsics is None:
            raise ValueError(f"{self.source}: no intrinsics; give a camera preset or --intrinsics")
        return self.intrinsics.valid_points(self.depth_mm)
