"""Pictures of a photo fit: the shaded fitted mesh, semi-transparent, and the 68 landmarks over
the photo; the textured mesh seen from another side."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..facemodel import RENDER_REGIONS, FaceModel
from ..fileutil import atomic_path
from ..geometry.camera import Intrinsics
from ..geometry.raster import render_mesh
from ..geometry.rotations import euler_to_matrix
from ..viz.shaded import shade
from .texture import face_triangles


def overlay_image(rgb: np.ndarray, model: FaceModel, vertices_camera: np.ndarray, intrinsics: Intrinsics,
                  landmarks_2d: np.ndarray | None = None, detected_2d: np.ndarray | None = None, alpha: float = 0.5
                  ) -> np.ndarray:
    """(H, W, 3) uint8: the photo with the Lambert-shaded mesh blended in (``alpha``), the fitted
    68 landmarks (green) and, when given, the detected landmarks they were fitted to (red)."""
    from PIL import Image, ImageDraw


    img = np.asarray(rgb, np.float32)
    g = shade(vertices_camera, model.region_triangles(*RENDER_REGIONS), intrinsics)
    m = np.isfinite(g)
    tint = np.array([0.55, 0.75, 1.0], np.float32) * 255.0  # a light blue, distinct from skin
    img[m] = (1 - alpha) * img[m] + alpha * g[m, None] * tint
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    r = max(1.0, min(pil.size) / 300.0)
    for pts, colour in ((detected_2d, (255, 60, 60)), (landmarks_2d, (40, 255, 40))):
        if pts is None:
            continue
        for x, y in np.asarray(pts, np.float64).reshape(-1, 2):
            if np.isfinite(x) and np.isfinite(y):
                draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    return np.asarray(pil)


def save_photo_overlay(path: str | Path, rgb: np.ndarray, model: FaceModel, vertices_camera: np.ndarray,
                       intrinsics: Intrinsics, landmarks_2d: np.ndarray | None = None,
                       detected_2d: np.ndarray | None = None, box: np.ndarray | None = None, margin: float = 0.35) -> None:
    """Write :func:`overlay_image` as a PNG, cropped to the face ``box`` (x0, y0, x1, y1) plus ``margin`` of its size."""
    from PIL import Image

    img = overlay_image(rgb, model, vertices_camera, intrinsics, landmarks_2d, detected_2d)
    if box is not None:
        x0, y0, x1, y1 = (float(b) for b in box)
        mw, mh = (x1 - x0) * margin, (y1 - y0) * margin
        h, w = img.shape[:2]
        c0, r0 = max(int(x0 - mw), 0), max(int(y0 - mh), 0)
        c1, r1 = min(int(np.ceil(x1 + mw)), w), min(int(np.ceil(y1 + mh)), h)
        if c1 > c0 and r1 > r0:
            img = img[r0:r1, c0:c1]
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
