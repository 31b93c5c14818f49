"""Sample a photo into the ICT face's UV layout (the ``M_Face`` material, UV tile [0, 1]^2).

1. Rasterise the face triangles in UV space once per texture size (cached on the model;
   :func:`facerecon.facemodel.uv.uv_raster`, shared with the detail maps): every covered texel
   gets its triangle and barycentric coordinates.  Rows follow the OBJ convention: texel row
   ``r`` holds ``v = 1 - (r + 0.5) / size`` (image top = v 1).
2. Per photo: each texel's surface point on the fitted camera-frame mesh is projected into
   the photo.  It is *visible* when it faces the camera (cos >= ``min_facing``) and is not
   behind the rendered z-buffer of the whole fitted head (skin and eyeballs) by more than
   ``depth_tolerance_mm``; visible texels take the photo's colour (bilinear).
3. Hidden texels take the colour of their mirror texel when that one is visible (``mirror_fill``),
   and so do visible but grazing ones (cos < ``mirror_below``) whose mirror faces the camera better.
   The mirror map comes from the vertex mirror x -> -x of the mean face (nearest vertex):
   a texel's mirror is where the mirrored triangle corners' UVs put the same barycentric
   point.  ICT is symmetric, so this is exact up to a texel.
4. The rest gets the median colour of the visible skin; texels outside every UV triangle
   take the colour of the nearest covered texel (so filtering at UV seams shows no black).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..facemodel import RENDER_REGIONS, FaceModel
from ..facemodel.uv import FACE_MATERIAL, UVRaster, face_triangles, uv_raster
from ..geometry.camera import Intrinsics
from ..geometry.raster import render_mesh
from .config import TextureConfig


@dataclass
class PhotoTexture:
    image: np.ndarray  # (size, size, 3) uint8, the UV texture of the M_Face material
    visible: np.ndarray  # (size, size) bool: sampled from the photo
    mirrored: np.ndarray  # (size, size) bool: filled from the mirror texel
    skin_rgb: np.ndarray  # (3,) uint8 colour of the rest
    material: str = FACE_MATERIAL

    def stats(self) -> dict:
        cov = int(self.visible.sum() + self.mirrored.sum())
        return {"size": int(self.image.shape[0]), "visible_texels": int(self.visible.sum()),
                "mirrored_texels": int(self.mirrored.sum()), "filled_texels": cov, "skin_rgb": self.skin_rgb.tolist()}


def _bilinear(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    u = np.clip(u, 0, w - 1.001)
    v = np.clip(v, 0, h - 1.001)
    x0, y0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    fx, fy = (u - x0)[:, None], (v - y0)[:, None]
    im = img.astype(np.float32)
    return ((1 - fx) * (1 - fy) * im[y0, x0] + fx * (1 - fy) * im[y0, x0 + 1]
            + (1 - fx) * fy * im[y0 + 1, x0] + fx * fy * im[y0 + 1, x0 + 1])


def _sample_view(model: FaceModel, ras: UVRaster, vertices_camera: np.ndarray, rgb: np.ndarray, intrinsics: Intrinsics,
                 cfg: TextureConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One photo's (colour (N, 3), visible (N,), facing cos (N,)) for the covered texels of ``ras``."""
    v = np.asarray(vertices_camera, np.float64)
    # normals per face triangle (18k), not per texel (~250k); texel points in float32 (sub-0.01 mm)
    tris = face_triangles(model)
    tc = v[model.triangles[tris]]
    tn = np.cross(tc[:, 1] - tc[:, 0], tc[:, 2] - tc[:, 0])
    tn /= np.maximum(np.linalg.norm(tn, axis=1, keepdims=True), 1e-12)
    ti = np.searchsorted(tris, ras.triangle)
    corners = tc.astype(np.float32)[ti]  # (N, 3, 3)
    p = np.einsum("nk,nkc->nc", ras.bary, corners)
    facing = -np.einsum("nc,nc->n", tn[ti].astype(np.float32), p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12))
    uv = intrinsics.project(p)
    h, w = rgb.shape[:2]
    inside = (p[:, 2] > 1.0) & (uv[:, 0] >= 0) & (uv[:, 0] <= w - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1)
    depth = render_mesh(v, model.region_triangles(*RENDER_REGIONS), intrinsics, barycentrics=False).depth
    px = np.clip(np.rint(uv[:, 0]), 0, w - 1).astype(np.int64)
    py = np.clip(np.rint(uv[:, 1]), 0, h - 1).astype(np.int64)
    front = np.where(inside, depth[py, px], 0.0)
    unoccluded = (front > 0) & (p[:, 2] <= front + cfg.depth_tolerance_mm)
    vis = inside & unoccluded & (facing >= cfg.min_facing)
    colour = np.zeros((len(p), 3), np.float32)
    colour[vis] = _bilinear(rgb, uv[vis, 0], uv[vis, 1])
    return colour, vis, facing


def _finish(ras: UVRaster, colour: np.ndarray, vis: np.ndarray, facing: np.ndarray, cfg: TextureConfig) -> PhotoTexture:
    """Mirror fill, the skin colour for the rest, the texture image (steps 3 and 4 above)."""
    from scipy.ndimage import distance_transform_edt

    s = ras.size
    filled = vis.copy()
    mirrored = np.zeros(len(colour), bool)
    if cfg.mirror_fill:
        # hidden texels, and grazing ones whose mirror faces the camera clearly better (their
        # colour smears over many texels and picks up the background at a poorly fitted outline)
        m = ras.mirror
        take = (m >= 0) & (~vis | (facing < cfg.mirror_below))
        take[take] &= vis[m[take]] & (facing[m[take]] > facing[take] + 0.2)
        colour[take] = colour[m[take]]
        mirrored = take
        filled |= take
    skin = np.median(colour[vis], axis=0) if vis.any() else np.array([180.0, 140.0, 120.0])
    colour[~filled] = skin
    img = np.zeros((s, s, 3), np.float32)
    img[ras.rows, ras.cols] = colour
    # outside the UV triangles: the nearest covered texel (no dark seams under texture filtering)
    covered = ras.covered
    _, (ir, ic) = distance_transform_edt(~covered, return_indices=True)
    img = img[ir, ic]
    visible = np.zeros((s, s), bool)
    visible[ras.rows[vis], ras.cols[vis]] = True
    mir = np.zeros((s, s), bool)
    mir[ras.rows[mirrored], ras.cols[mirrored]] = True
    return PhotoTexture(np.clip(np.rint(img), 0, 255).astype(np.uint8), visible, mir, np.rint(skin).astype(np.uint8))


def sample_texture(model: FaceModel, vertices_camera: np.ndarray, rgb: np.ndarray, intrinsics: Intrinsics,
                   cfg: TextureConfig | None = None) -> PhotoTexture:
    """The photo ``rgb`` (H, W, 3) sampled into the face UV tile for the fitted mesh ``vertices_camera`` (V, 3)."""
    cfg = cfg or TextureConfig.load()
    ras = uv_raster(model, cfg.size)
    colour, vis, facing = _sample_view(model, ras, vertices_camera, rgb, intrinsics, cfg)
    return _finish(ras, colour, vis, facing, cfg)


def merge_texture(model: FaceModel, views, cfg: TextureConfig | None = None) -> PhotoTexture:
    """One texture from several photos of one face: ``views`` = [(vertices_camera, rgb, intrinsics), ...].

    Each texel is the mean of the photos that see it, weighted by how squarely each faces it
    (cos^2 of the angle between its normal and the view ray: a grazing view smears a texel
    over little image area); a texel no photo sees is filled as in :func:`sample_texture`."""
    cfg = cfg or TextureConfig.load()
    ras = uv_raster(model, cfg.size)
    acc = np.zeros((len(ras.rows), 3), np.float64)
    wsum = np.zeros(len(ras.rows), np.float64)
    best = np.full(len(ras.rows), -1.0, np.float32)
    for vertices_camera, rgb, intrinsics in views:
        colour, vis, facing = _sample_view(model, ras, vertices_camera, rgb, intrinsics, cfg)
        w = np.where(vis, np.square(np.clip(facing, 0.0, 1.0)), 0.0)
        acc += w[:, None] * colour
        wsum += w
        best = np.maximum(best, facing)  # the squarest view decides the mirror fill (one view: as sample_texture)
    vis = wsum > 0
    colour = np.zeros((len(ras.rows), 3), np.float32)
    colour[vis] = (acc[vis] / wsum[vis, None]).astype(np.float32)
    return _finish(ras, colour, vis, best, cfg)
