"""facerecon: metric 3D face reconstruction and head pose from a single depth image."""
from __future__ import annotations

__version__ = "0.1.0"

from .camera import Intrinsics, camera_preset  # noqa: E402
from .errors import FaceReconError, InputFileError  # noqa: E402

__all__ = ["__version__", "Intrinsics", "camera_preset", "FaceReconError", "InputFileError"]


def __getattr__(name: str):
    # the predictors pull in torch: import them only when asked for
    if name in ("PoseEstimator", "Reconstructor", "FaceReconstruction"):
        from . import pipeline

        return getattr(pipeline, name)
    if name in ("PhotoReconstructor", "PhotoReconstruction"):
        from .photo import reconstruct

        return getattr(reconstruct, name)
    raise AttributeError(f"module 'facerecon' has no attribute {name!r}")
