"""The photo fit seen as a depth image: what the ``face-model`` backend returns and what the
metric step fits network depth against.

The fitted ICT mesh (camera frame, mm) is rendered with the photo's intrinsics over the
surfaces a sensor would see (skin and eyeballs).  The *inner face* mask is the narrow face
(no ears, neck or scalp) minus a band along its outline: at the silhouette both the fit and
a depth network are least reliable (mixed foreground/background pixels, the jaw line).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..facemodel import FaceModel
from ..facemodel.model import EVAL_REGION, RENDER_REGIONS
from ..geometry.camera import Intrinsics
from ..geometry.raster import render_mesh

# Width of the band along the inner-face outline that is left out, as a fraction of the
# face's size in pixels (sqrt of its area): 4 % ~ 6 mm on an adult face.
CONTOUR_BAND = 0.04


@dataclass
class FaceRender:
    """depth_mm: (H, W) float32 rendered depth of the fitted head, 0 = not covered.
    inner_mask: (H, W) bool inner-face pixels (narrow face minus the contour band).
    head_mask: (H, W) bool all covered pixels."""

    depth_mm: np.ndarray
    inner_mask: np.ndarray
    head_mask: np.ndarray
    intrinsics: Intrinsics
    vertices_camera: np.ndarray


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return mask.copy()
    from scipy.ndimage import binary_erosion

    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return binary_erosion(mask, structure=(xx * xx + yy * yy) <= radius * radius, border_value=0)


def render_fitted_face(vertices_camera: np.ndarray, intrinsics: Intrinsics, model: FaceModel | None = None,
                       contour_band: float = CONTOUR_BAND) -> FaceRender:
    """Render the fitted ICT mesh (camera frame, mm) at ``intrinsics``; see the module doc."""
    model = model or FaceModel.load()
    tris = model.region_triangles(*RENDER_REGIONS)
    out = render_mesh(np.asarray(vertices_camera, np.float64), tris, intrinsics, barycentrics=False)
    covered = out.triangle_id >= 0
    inner_tri = model.region_mask(EVAL_REGION)[tris].all(axis=1)
    # the visible triangle must be narrow-face (a nose in front of the cheek hides it, not the ear)
    narrow = covered & inner_tri[np.maximum(out.triangle_id, 0)]
    size_px = float(np.sqrt(max(int(narrow.sum()), 1)))
    inner = _erode(narrow, int(round(contour_band * size_px)))
    return FaceRender(out.depth.astype(np.float32), inner, covered, intrinsics, np.asarray(vertices_camera, np.float64))
