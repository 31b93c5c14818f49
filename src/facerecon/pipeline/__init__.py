"""One-call predictors over the depth frame pipeline (:mod:`.frame`): ``PoseEstimator`` (pose only),
``Reconstructor`` (pose + shape) and the classical ``FittingReconstructor``; each returns the one
result type ``FaceResult``."""
from .fit import FittingReconstructor
from .pose import PoseEstimator
from .reconstruct import Reconstructor
from .result import FaceResult, FramePath

__all__ = ["PoseEstimator", "Reconstructor", "FittingReconstructor", "FaceResult", "FramePath"]
