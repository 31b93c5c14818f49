"""The open face model (ICT-FaceKit Light): loading, conversion, geometry."""
from .model import (
    ALIGNMENT_LANDMARKS_7,
    ALIGNMENT_LANDMARKS_9,
    EVAL_REGION,
    REGIONS,
    RENDER_REGIONS,
    FaceModel,
    vertex_normals,
)

__all__ = ["FaceModel", "REGIONS", "RENDER_REGIONS", "EVAL_REGION", "ALIGNMENT_LANDMARKS_9", "ALIGNMENT_LANDMARKS_7", "vertex_normals"]
