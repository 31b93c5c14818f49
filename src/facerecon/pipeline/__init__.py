"""One-call predictors: ``PoseEstimator``, ``Reconstructor`` and the classical ``FittingReconstructor``."""
from .fit import FittingReconstructor
from .pose import PoseEstimator, PoseResult
from .reconstruct import FaceReconstruction, Reconstructor

__all__ = ["PoseEstimator", "PoseResult", "Reconstructor", "FaceReconstruction", "FittingReconstructor"]
