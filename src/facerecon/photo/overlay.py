"""Pictures of a photo fit: the shaded fitted mesh, semi-transparent, and the 68 landmarks over
the photo (the face crop enlarged to 640-1024 px, with a legend naming each mark); the textured
mesh seen from another side.  Pillow only: no matplotlib on the per-photo path."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..facemodel import RENDER_REGIONS, FaceModel
from ..facemodel.uv import face_triangles
from ..fileutil import atomic_path
from ..geometry.camera import Intrinsics
from ..geometry.raster import render_mesh
from ..geometry.rotations import euler_to_matrix
from ..viz.draw import draw_points, legend_strip
from ..viz.shaded import shade

# Marks of the photo overlay: (RGB, legend text); the legend under the picture names each one.
MESH_TINT = (140, 191, 255)  # a light blue, distinct from skin
FITTED_COLOUR = (40, 255, 40)
DETECTED_COLOUR = (255, 60, 60)
LEGEND = (("mesh", MESH_TINT, "fitted face mesh (shaded, half transparent)"),
          ("dot", FITTED_COLOUR, "fitted 68 landmarks (the mesh's)"),
          ("dot", DETECTED_COLOUR, "detected 68 landmarks (what the mesh was fitted to)"))
# The saved overlay's long side: a small face crop is enlarged to at least this ...
MIN_LONG_SIDE = 640
# ... and a large one reduced to at most this.
MAX_LONG_SIDE = 1024


def _blend_mesh(rgb: np.ndarray, model: FaceModel, vertices_camera: np.ndarray, intrinsics: Intrinsics, alpha: float) -> np.ndarray:
    img = np.asarray(rgb, np.float32).copy()
    g = shade(vertices_camera, model.region_triangles(*RENDER_REGIONS), intrinsics)
    m = np.isfinite(g)
    tint = np.array(MESH_TINT, np.float32)
    img[m] = (1 - alpha) * img[m] + alpha * g[m, None] * tint
    return np.clip(img, 0, 255).astype(np.uint8)


def overlay_image(rgb: np.ndarray, model: FaceModel, vertices_camera: np.ndarray, intrinsics: Intrinsics,
                  landmarks_2d: np.ndarray | None = None, detected_2d: np.ndarray | None = None, alpha: float = 0.5
                  ) -> np.ndarray:
    """(H, W, 3) uint8 at the photo's size: the photo with the Lambert-shaded mesh blended in
    (``alpha``), the fitted 68 landmarks (green) and, when given, the detected landmarks they
    were fitted to (red).  No legend: :func:`overlay_picture` is the labelled picture."""
    from PIL import Image, ImageDraw

    pil = Image.fromarray(_blend_mesh(rgb, model, vertices_camera, intrinsics, alpha))
    draw = ImageDraw.Draw(pil)
    r = max(1.0, min(pil.size) / 300.0)
    draw_points(draw, detected_2d, DETECTED_COLOUR, r)
    draw_points(draw, landmarks_2d, FITTED_COLOUR, r)
    return np.asarray(pil)


def _legend(width: int, font_size: int, detected: bool):
    """A dark strip, as wide as the picture, naming each mark (one line each)."""
    return legend_strip(width, font_size, [it for it in LEGEND if detected or it[1] != DETECTED_COLOUR])


def overlay_picture(rgb: np.ndarray, model: FaceModel, vertices_camera: np.ndarray, intrinsics: Intrinsics,
                    landmarks_2d: np.ndarray | None = None, detected_2d: np.ndarray | None = None,
                    box: np.ndarray | None = None, margin: float = 0.35, alpha: float = 0.5,
                    min_long_side: int = MIN_LONG_SIDE, max_long_side: int = MAX_LONG_SIDE) -> np.ndarray:
    """The labelled overlay: the shaded mesh blended into the photo, cropped to the face ``box``
    (x0, y0, x1, y1) plus ``margin`` of its size (the whole photo without a box), resized so its
    long side is ``min_long_side``..``max_long_side`` px, the landmarks drawn at that size, and
    a legend strip under it naming each mark.  Pillow only (no matplotlib)."""
    from PIL import Image, ImageDraw

    img = _blend_mesh(rgb, model, vertices_camera, intrinsics, alpha)
    h, w = img.shape[:2]
    c0, r0, c1, r1 = 0, 0, w, h
    if box is not None:
        x0, y0, x1, y1 = (float(b) for b in box)
        mw, mh = (x1 - x0) * margin, (y1 - y0) * margin
        a0, b0 = max(int(x0 - mw), 0), max(int(y0 - mh), 0)
        a1, b1 = min(int(np.ceil(x1 + mw)), w), min(int(np.ceil(y1 + mh)), h)
        if a1 > a0 and b1 > b0:
            c0, r0, c1, r1 = a0, b0, a1, b1
    crop = Image.fromarray(np.ascontiguousarray(img[r0:r1, c0:c1]))
    long_side = max(crop.size)
    scale = min(max(1.0, min_long_side / long_side), max_long_side / long_side)
    if scale != 1.0:
        crop = crop.resize((max(1, round(crop.size[0] * scale)), max(1, round(crop.size[1] * scale))), Image.LANCZOS)
    draw = ImageDraw.Draw(crop)
    r = max(2.0, max(crop.size) / 220.0)
    # a pixel centre at (u, v) of the photo lands at ((u + 0.5 - c0) * scale - 0.5, ...) of the resized crop
    off = (c0 - 0.5 + 0.5 / scale, r0 - 0.5 + 0.5 / scale)
    draw_points(draw, detected_2d, DETECTED_COLOUR, r, scale, off)
    draw_points(draw, landmarks_2d, FITTED_COLOUR, r, scale, off)
    legend = _legend(crop.size[0], max(12, min(20, max(crop.size) // 40)), detected_2d is not None)
    out = Image.new("RGB", (crop.size[0], crop.size[1] + legend.size[1]))
    out.paste(crop, (0, 0))
    out.paste(legend, (0, crop.size[1]))
    return np.asarray(out)


def save_photo_overlay(path: str | Path, rgb: np.ndarray, model: FaceModel, vertices_camera: np.ndarray,
                       intrinsics: Intrinsics, landmarks_2d: np.ndarray | None = None,
                       detected_2d: np.ndarray | None = None, box: np.ndarray | None = None, margin: float = 0.35) -> None:
    """Write :func:`overlay_picture` as a PNG (face crop at 640-1024 px on its long side, with a legend)."""
    from PIL import Image

    img = overlay_picture(rgb, model, vertices_camera, intrinsics, landmarks_2d, detected_2d, box, margin)
    with atomic_path(path) as tmp:
        Image.fromarray(img).save(tmp)


def textured_view(model: FaceModel, vertices_head: np.ndarray, texture: np.ndarray, size: int = 320, yaw_deg: float = 25.0,
                  pitch_deg: float = 5.0) -> np.ndarray:
    """(size, size, 3) uint8: the head-frame mesh with its UV texture (face material; other
    surfaces light grey), Lambert-lit from the camera, turned by ``yaw_deg`` / ``pitch_deg``."""

    tri_idx = np.nonzero(model.region_mask(*RENDER_REGIONS)[model.triangles].all(axis=1))[0]
    k = Intrinsics(size * 2.4, size * 2.4, size / 2 - 0.5, size / 2 - 0.5, size, size)
    v = np.asarray(vertices_head, np.float64)
    centre = v[: 9409].mean(0)
    vc = (v - centre) @ euler_to_matrix(yaw_deg, pitch_deg, 0.0).T + np.array([0.0, 0.0, 650.0])
    r = render_mesh(vc, model.triangles[tri_idx], k)
    out = np.full((size, size, 3), 255.0, np.float32)
    ok = r.triangle_id >= 0
    t = tri_idx[r.triangle_id[ok]]
    corners = vc[model.triangles[t]]
    n = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    light = 0.35 + 0.65 * np.abs(n[:, 2])
    colour = np.full((len(t), 3), 200.0, np.float32)
    is_face = np.isin(t, face_triangles(model))
    uv = np.einsum("nk,nkc->nc", r.barycentrics[ok][is_face], model.uv[model.triangle_uv[t[is_face]]])
    s = texture.shape[0]
    col = np.clip(np.rint(uv[:, 0] * s - 0.5), 0, s - 1).astype(np.int64)
    row = np.clip(np.rint((1.0 - uv[:, 1]) * s - 0.5), 0, s - 1).astype(np.int64)
    colour[is_face] = texture[row, col]
    out[ok] = colour * light[:, None]
    return np.clip(out, 0, 255).astype(np.uint8)
