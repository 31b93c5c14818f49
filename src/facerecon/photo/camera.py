"""The pinhole camera of a photo: focal length from ``--focal``, else EXIF, else a default field of view.

The principal point is the image centre.  Pixels are square (fx = fy).  The default field
of view (``[camera] default_fov_deg`` in ``configs/photo_fit.toml``, 60 degrees across the
longer image side) is a guess between a phone's main camera (~70 degrees) and a portrait lens;
a wrong guess changes the perspective the fit assumes (how much nearer the nose is than the
ears), not the face's size, which comes from the metric model (see ``docs/photo.md``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..geometry.camera import Intrinsics
from ..errors import ConfigError
from .config import load_photo_config


@dataclass(frozen=True)
class PhotoCamera:
    intrinsics: Intrinsics
    focal_source: str  # "--focal" | "exif" | "default <fov> deg horizontal field of view"

    @property
    def fov_deg(self) -> float:
        """Field of view across the longer image side, degrees."""
        k = self.intrinsics
        return math.degrees(2 * math.atan(max(k.width, k.height) / (2 * k.fx)))

    def to_json(self) -> dict:
        return {**self.intrinsics.to_dict(), "focal_source": self.focal_source, "fov_deg_long_side": round(self.fov_deg, 3)}


def focal_from_fov(width: int, height: int, fov_deg: float) -> float:
    """Focal length (px) that gives a field of view of ``fov_deg`` across the longer image side."""
    if not 1.0 < fov_deg < 179.0:
        raise ConfigError(f"field of view must be between 1 and 179 degrees, got {fov_deg}")
    return max(width, height) / (2.0 * math.tan(math.radians(fov_deg) / 2.0))


def photo_camera(width: int, height: int, focal_px: float | None = None, exif_focal_px: float | None = None,
                 default_fov_deg: float | None = None) -> PhotoCamera:
    """Intrinsics of a ``width`` x ``height`` photo: ``focal_px`` (the user's --focal) wins, then EXIF, then the default FOV."""
    if focal_px is not None:
        if not (focal_px > 0 and math.isfinite(focal_px)):
            raise ConfigError(f"--focal must be a positive number of pixels, got {focal_px}")
        f, source = float(focal_px), "--focal"
    elif exif_focal_px is not None and exif_focal_px > 0 and math.isfinite(exif_focal_px):
        f, source = float(exif_focal_px), "exif"
    else:
        fov = float(default_fov_deg if default_fov_deg is not None else load_photo_config().camera.default_fov_deg)
        f, source = focal_from_fov(width, height, fov), f"default {fov:g} deg field of view (longer side)"
    k = Intrinsics(f, f, (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height))
    return PhotoCamera(k, source)
