"""Shaded previews of face meshes (software z-buffer, no OpenGL)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..fileutil import atomic_path
from ..geometry.camera import Intrinsics
from ..geometry.raster import render_mesh
from ..geometry.rotations import euler_to_matrix


def shade(vertices_cam: np.ndarray, triangles: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """(H, W) grey image in [0, 1] of a camera-frame mesh, Lambert-lit from the camera; NaN = background."""
    r = render_mesh(vertices_cam, triangles, intrinsics, barycentrics=False)
    v = np.asarray(vertices_cam, np.float64)
    t = np.asarray(triangles)
    n = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    img = np.full(r.depth.shape, np.nan)
    ok = r.triangle_id >= 0
    # light from the camera, slightly above: |cos| so either winding shades the same
    light = np.array([0.0, -0.3, -1.0]) / np.linalg.norm([0.0, -0.3, -1.0])
    img[ok] = 0.15 + 0.85 * np.abs(n[r.triangle_id[ok]] @ light)
    return img


def render_face(model, vertices_head: np.ndarray, size: int = 256, yaw_deg: float = 20.0) -> np.ndarray:
    """A shaded view of head-frame ICT vertices (skin and eyeballs), face filling the image."""
    k = Intrinsics(size * 2.2, size * 2.2, size / 2 - 0.5, size / 2 - 0.5, size, size)
    r = euler_to_matrix(yaw_deg, 8.0, 0.0)
    tris = model.region_triangles("face", "head_and_neck", "eyeballs")
    centre = model.neutral[: 9409].mean(0)
    v = (np.asarray(vertices_head, np.float64) - centre) @ r.T + np.array([0.0, 0.0, 700.0])
    return shade(v, tris, k)


def save_face_grid(model, vertices: np.ndarray, path: str | Path, titles: list[str] | None = None) -> None:
    """PNG grid of shaded faces (one per vertex set)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(vertices)
    cols = min(n, 5)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < n:
            ax.imshow(render_face(model, vertices[i]), cmap="gray", vmin=0, vmax=1)
            ax.set_title(titles[i] if titles else f"face {i}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
