"""facerecon: metric 3D face reconstruction and head pose from a single depth image."""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import FaceReconError, InputFileError  # noqa: E402

__all__ = ["__version__", "Intrinsics", "camera_preset", "FaceReconError", "InputFileError"]


def __getattr__(name: str):
    # imported when asked for: `facerecon --help` then starts without numpy (cold start), and
    # the predictors pull in torch
    if name in ("Intrinsics", "camera_preset"):
        from .geometry import camera

        return getattr(camera, name)
    if name in ("PoseEstimator", "Reconstructor", "FaceResult"):
        from . import pipeline

        return getattr(pipeline, name)
    if name == "PhotoReconstructor":
        from .pipeline.photo import PhotoReconstructor

        return PhotoReconstructor
    raise AttributeError(f"module 'facerecon' has no attribute {name!r}")
