"""One-call predictors: ``PoseEstimator`` and ``Reconstructor``."""
from .pose import PoseEstimator, PoseResult
from .reconstruct import FaceReconstruction, Reconstructor

__all__ = ["PoseEstimator", "PoseResult", "Reconstructor", "FaceReconstruction"]
