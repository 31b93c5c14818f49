"""Classical model fitting: the ICT model fitted to depth points (baseline and refinement)."""
from .gauss_newton import FitConfig, FitResult, fit_face

__all__ = ["FitConfig", "FitResult", "fit_face"]
