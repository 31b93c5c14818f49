"""The pinhole camera of a photo: ``--intrinsics`` (fx, fy, cx, cy), else a focal length from
``--focal``, else EXIF, else a default field of view.

Without ``--intrinsics`` the principal point is the image centre and pixels are square (fx = fy).  The default field
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


DEFAULT_SOURCE = "default"


@dataclass(frozen=True)
class PhotoCamera:
    intrinsics: Intrinsics
    focal_source: str  # "--intrinsics" | "calibrated" | "--focal" | "exif" | "default <fov> deg field of view (longer side)"

    @property
    def focal_known(self) -> bool:
        """True unless the focal length is the default field of view's guess."""
        return not self.focal_source.startswith(DEFAULT_SOURCE)

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
                 default_fov_deg: float | None = None, intrinsics: Intrinsics | None = None,
                 intrinsics_source: str = "--intrinsics") -> PhotoCamera:
    """Intrinsics of a ``width`` x ``height`` photo: ``intrinsics`` (the user's --intrinsics, or a
    calibrated camera's) win, then ``focal_px`` (the user's --focal), then EXIF, then the default FOV.
    ``intrinsics`` and ``focal_px`` together are an error (which one to use is not ours to guess)."""
    if intrinsics is not None:
        if focal_px is not None:
            raise ConfigError("give either --focal or --intrinsics for a photo, not both")
        if not (intrinsics.fx > 0 and intrinsics.fy > 0 and math.isfinite(intrinsics.fx + intrinsics.fy + intrinsics.cx + intrinsics.cy)):
            raise ConfigError(f"--intrinsics: focal lengths must be positive and finite, got fx {intrinsics.fx}, fy {intrinsics.fy}")
        # the user's numbers are for this photo; a calibrated camera keeps its own size
        return PhotoCamera(intrinsics.with_size(width, height) if intrinsics_source == "--intrinsics" else intrinsics, intrinsics_source)
    if focal_px is not None:
        if not (focal_px > 0 and math.isfinite(focal_px)):
            raise ConfigError(f"--focal must be a positive number of pixels, got {focal_px}")
        f, source = float(focal_px), "--focal"
    elif exif_focal_px is not None and exif_focal_px > 0 and math.isfinite(exif_focal_px):
        f, source = float(exif_focal_px), "exif"
    else:
        fov = float(default_fov_deg if default_fov_deg is not None else load_photo_config().camera.default_fov_deg)
        f, source = focal_from_fov(width, height, fov), f"{DEFAULT_SOURCE} {fov:g} deg field of view (longer side)"
    k = Intrinsics(f, f, (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height))
    return PhotoCamera(k, source)
