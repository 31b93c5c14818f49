"""A small textured-mesh renderer for the photo benchmarks (issue 11: renders of the james scan).

Geometry comes from :func:`facerecon.geometry.raster.render_mesh` (exact z-buffer, triangle ids,
perspective-correct barycentrics); this module only colours the pixels: the texture sampled at
the interpolated UV (bilinear; OBJ's v runs upwards) or interpolated per-vertex colours, times
Lambert lighting (ambient + directional lights on interpolated vertex normals), over a
background image.  ``supersample`` renders at k times the size and box-filters down, so that the
face's outline is anti-aliased like a camera's.

Not library code: a benchmark helper, deterministic given its inputs (backgrounds take a seeded
``numpy`` generator).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facerecon.geometry.camera import Intrinsics
from facerecon.geometry.raster import render_mesh


@dataclass
class Light:
    """A directional light: ``direction`` points from the surface towards the light (camera frame)."""

    direction: tuple[float, float, float]
    intensity: float = 0.6


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (right-hand rule on the corner order), unit length."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    out = np.zeros_like(v)
    for i in range(3):
        np.add.at(out, f[:, i], n)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def sample_bilinear(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """(N, C) float colours of ``image`` (H, W, C) at texture coordinates ``uv`` (N, 2) in [0, 1], v up."""
    h, w = image.shape[:2]
    x = np.clip(uv[:, 0], 0.0, 1.0) * (w - 1)
    y = (1.0 - np.clip(uv[:, 1], 0.0, 1.0)) * (h - 1)
    x0 = np.clip(np.floor(x).astype(np.int64), 0, w - 2)
    y0 = np.clip(np.floor(y).astype(np.int64), 0, h - 2)
    ax, ay = (x - x0)[:, None], (y - y0)[:, None]
    im = image.astype(np.float32)
    top = im[y0, x0] * (1 - ax) + im[y0, x0 + 1] * ax
    bot = im[y0 + 1, x0] * (1 - ax) + im[y0 + 1, x0 + 1] * ax
    return top * (1 - ay) + bot * ay


def background(kind: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8: ``grey`` (flat, random level), ``noise`` (smoothed colour noise) or ``gradient``."""
    if kind == "grey":
        return np.full((height, width, 3), int(rng.integers(90, 180)), np.uint8)
    if kind == "noise":
        # coarse noise upsampled + fine grain: texture at several scales, like clutter
        shape = (height // 16 + 1, width // 16 + 1)
        coarse = rng.uniform(40, 220, shape + (1,)) + rng.normal(0, 25, shape + (3,))  # mostly luminance, some colour
        big = np.repeat(np.repeat(coarse, 16, 0), 16, 1)[:height, :width]
        return np.clip(big + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    if kind == "gradient":
        a, b = rng.uniform(30, 230, 3), rng.uniform(30, 230, 3)
        ang = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:height, 0:width]
        s = (np.cos(ang) * xx / width + np.sin(ang) * yy / height)
        s = (s - s.min()) / max(np.ptp(s), 1e-9)
        return (a + (b - a) * s[..., None]).astype(np.uint8)
    raise ValueError(f"unknown background {kind!r}: grey, noise or gradient")


def render_textured(
    vertices_cam: np.ndarray,
    faces: np.ndarray,
    intrinsics: Intrinsics,
    *,
    texture: np.ndarray | None = None,
    uv: np.ndarray | None = None,
    face_uv: np.ndarray | None = None,
    vertex_colors: np.ndarray | None = None,
    lights: tuple[Light, ...] = (Light((0.0, 0.0, -1.0), 0.6),),
    ambient: float = 0.45,
    bg: np.ndarray | None = None,
    supersample: int = 2,
    cull_backfaces: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Render a textured (``texture`` + ``uv`` + ``face_uv``) or vertex-coloured mesh.

    Returns ``(rgb (H, W, 3) uint8, coverage (H, W) float in [0, 1])``.  Camera frame x right,
    y down, z forward, mm; ``faces`` wound counter-clockwise seen from outside (normals out).
    """
    k = int(supersample)
    big = Intrinsics(intrinsics.fx * k, intrinsics.fy * k, (intrinsics.cx + 0.5) * k - 0.5,
                     (intrinsics.cy + 0.5) * k - 0.5, intrinsics.width * k, intrinsics.height * k)
    v = np.asarray(vertices_cam, np.float64)
    f = np.asarray(faces, np.int64)
    out = render_mesh(v, f, big, cull_backfaces=cull_backfaces)
    tid = out.triangle_id
    ok = tid >= 0
    b = out.barycentrics[ok].astype(np.float64)  # (n, 3)
    t = tid[ok]
    if texture is not None:
        puv = np.einsum("nk,nkc->nc", b, np.asarray(uv, np.float64)[np.asarray(face_uv)[t]])
        albedo = sample_bilinear(texture, puv)
    else:
        albedo = np.einsum("nk,nkc->nc", b, np.asarray(vertex_colors, np.float64)[f[t]])
    nrm = np.einsum("nk,nkc->nc", b, vertex_normals(v, f)[f[t]])
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    shade = np.full(len(t), float(ambient))
    for light in lights:
        d = np.asarray(light.direction, np.float64)
        shade += light.intensity * np.clip(nrm @ (d / np.linalg.norm(d)), 0.0, None)
    hi = np.zeros((big.height, big.width, 3), np.float32)
    hi[ok] = np.clip(albedo * shade[:, None], 0, 255)
    cov = ok.astype(np.float32)
    h, w = intrinsics.height, intrinsics.width
    img = hi.reshape(h, k, w, k, 3).mean(axis=(1, 3))
    cov = cov.reshape(h, k, w, k).mean(axis=(1, 3))
    # the foreground was averaged with black where uncovered: blend the background in by coverage
    bgf = np.zeros((h, w, 3), np.float32) if bg is None else bg.astype(np.float32)
    rgb = img + (1.0 - cov[..., None]) * bgf
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8), cov
