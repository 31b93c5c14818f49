"""The depth overlay without matplotlib: colour tables equal matplotlib's, the picture's content."""
from __future__ import annotations

import sys
from types import SimpleNamespace

import gltf_helpers
import numpy as np
import pytest
from gltf_helpers import synthetic_rec

ict_model = gltf_helpers.ict_model


def test_depth_overlay_content_without_matplotlib(ict_model, tmp_path):
    from PIL import Image

    from facerecon.export import OVERLAY_LANDMARK, save_overlay
    from facerecon.geometry.camera import Intrinsics
    from facerecon.geometry.raster import render_mesh
    from facerecon.io.frame import DepthFrame

    had_mpl = "matplotlib" in sys.modules
    rec = synthetic_rec(ict_model, seed=2, euler=(15.0, -5.0, 0.0), t=(0.0, 0.0, 500.0))
    k = Intrinsics(520.0, 520.0, 160.0, 120.0, 320, 240)
    depth = render_mesh(rec.vertices_camera, ict_model.region_triangles("face", "head_and_neck"), k, barycentrics=False).depth
    depth = depth.astype(np.float32)
    depth[depth > 0] += 2.0  # the measured surface 2 mm behind the mesh everywhere
    frame = DepthFrame(depth, k, "synthetic")
    lm = np.stack([k.project(p) for p in rec.landmarks_3d])
    rec.landmarks_2d, rec.confidence = lm, 0.9
    rec.location = SimpleNamespace(box=np.array([lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()]))
    stats = save_overlay(rec, ict_model, frame, tmp_path / "overlay.png")
    assert stats["residual_pixels"] > 1000 and stats["median_abs_residual_mm"] == pytest.approx(2.0, abs=0.05)
    img = np.asarray(Image.open(tmp_path / "overlay.png").convert("RGB"))
    assert img.shape[1] > 2 * 400 and img.shape[0] > 400
    assert (np.abs(img.astype(int) - OVERLAY_LANDMARK).sum(2) == 0).sum() > 68  # the landmark dots
    reddish = (img[..., 0] > img[..., 2] + 40) & (img[..., 1] < 200)  # +2 mm of 10: light red on the face
    assert reddish.sum() > 1000
    if not had_mpl:
        assert "matplotlib" not in sys.modules


@pytest.mark.parametrize("name", ["turbo", "RdBu_r"])
def test_colour_tables_are_matplotlibs(name):
    mpl = pytest.importorskip("matplotlib")
    from facerecon.viz.draw import colormap_at

    x = np.concatenate([np.linspace(0.0, 1.0, 2001), [0.08, 0.95, -0.5, 1.5]])
    assert np.array_equal(colormap_at(name, x), np.asarray(mpl.colormaps[name](np.clip(x, 0, 1)))[:, :3])
