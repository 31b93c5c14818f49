"""Photo front end: read a colour photo, find faces (MTCNN), dense landmarks (MediaPipe Face
Mesh), and the map from those landmarks to the ICT face model and the iBUG 68 layout.

Submodules load on first use so ``import facerecon.photo`` stays cheap (torch, LiteRT).
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Photo": "image",
    "read_photo": "image",
    "is_photo_file": "image",
    "FaceBox": "detect",
    "MTCNN": "detect",
    "detect_faces": "detect",
    "FaceMeshLandmarks": "landmarks",
    "FaceMeshLandmarker": "landmarks",
    "LandmarkMap": "landmark_map",
    "load_landmark_map": "landmark_map",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'facerecon.photo' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{mod}", __name__), name)
