"""Photo -> ICT UV texture: known colours land on known texels; hidden texels are mirror-filled; overlay."""
from __future__ import annotations

import numpy as np
import pytest

from facerecon.facemodel import FaceModel
from facerecon.photo.camera import photo_camera
from facerecon.photo.overlay import overlay_image, save_photo_overlay
from facerecon.photo.config import TextureConfig
from facerecon.facemodel.uv import face_triangles, uv_raster
from facerecon.photo.texture import sample_texture
from facerecon.geometry.pose import HeadPose
from facerecon.geometry.raster import render_mesh

SIZE = 256
RED = np.array([230, 20, 20])
GREY = np.array([120, 120, 120])


@pytest.fixture(scope="module")
def model(ict_archive) -> FaceModel:
    return FaceModel.load()


def _patch(model, centre):
    """Face triangles and the distance of their mean-face centroids from ``centre``."""
    tris = face_triangles(model)
    c = model.neutral[model.triangles[tris]].mean(1)
    d = np.linalg.norm(c - np.asarray(centre), axis=1)
    return tris, d


def _painted(model, pose, cam, tris, red):
    """A synthetic photo: the mesh's pixels red where the visible triangle is in ``red``, grey elsewhere."""
    v = pose.apply(model.neutral.astype(np.float64))
    r = render_mesh(v, model.triangles[tris], cam.intrinsics, barycentrics=False)
    img = np.zeros((cam.intrinsics.height, cam.intrinsics.width, 3), np.uint8)
    img[:] = (0, 60, 0)
    ok = r.triangle_id >= 0
    img[ok] = np.where(red[r.triangle_id[ok]][:, None], RED, GREY)
    return img, v


def test_known_colour_lands_on_known_texels(model):
    cam = photo_camera(640, 480)
    pose = HeadPose.from_euler(15, 5, 0, [0, 0, 600])
    guess = model.neutral[model.landmarks_68[13]] * np.array([0.75, 1.0, 1.0]) + np.array([0.0, 0.0, -25.0])
    cheek = model.neutral[np.argmin(np.linalg.norm(model.neutral[:9409] - guess, axis=1))]  # a point on the cheek
    tris, d = _patch(model, cheek)
    red = d < 20.0
    img, v = _painted(model, pose, cam, tris, red)
    tex = sample_texture(model, v, img, cam.intrinsics, TextureConfig(size=SIZE))
    ras = uv_raster(model, SIZE)
    pos = np.searchsorted(tris, ras.triangle)
    vis = tex.visible[ras.rows, ras.cols]
    got = tex.image[ras.rows, ras.cols].astype(int)
    inner = vis & (d[pos] < 16.0)  # away from the patch edge (bilinear sampling mixes colours there)
    outer = vis & (d[pos] > 24.0)
    assert inner.sum() > 200 and outer.sum() > 5000
    assert (np.abs(got[inner] - RED).max(1) < 12).mean() > 0.97
    assert (np.abs(got[outer] - GREY).max(1) < 12).mean() > 0.97
    # the painted patch is on one cheek: its texels are on one side of the (mirror-symmetric) UV layout
    cols = ras.cols[inner]
    assert (cols > SIZE / 2).all() or (cols < SIZE / 2).all()


def test_hidden_side_is_mirror_filled(model):
    """A face turned 70 degrees hides one cheek: its texels copy the visible cheek's, not the mean colour."""
    cam = photo_camera(640, 480)
    pose = HeadPose.from_euler(70, 0, 0, [0, 0, 600])
    tris, _ = _patch(model, (0, 0, 0))
    c = model.neutral[model.triangles[tris]].mean(1)
    red = c[:, 1] < 0  # the upper half of the face red, both sides: a mirror-symmetric pattern
    img, v = _painted(model, pose, cam, tris, red)
    tex = sample_texture(model, v, img, cam.intrinsics, TextureConfig(size=SIZE))
    assert tex.mirrored.sum() > 0.1 * tex.visible.sum()
    ras = uv_raster(model, SIZE)
    pos = np.searchsorted(tris, ras.triangle)
    mir = tex.mirrored[ras.rows, ras.cols]
    got = tex.image[ras.rows, ras.cols].astype(int)
    far = np.abs(c[pos, 1]) > 8.0  # away from the colour edge
    up, down = mir & far & red[pos], mir & far & ~red[pos]
    assert up.sum() > 100 and down.sum() > 100
    assert (np.abs(got[up] - RED).max(1) < 12).mean() > 0.9
    assert (np.abs(got[down] - GREY).max(1) < 12).mean() > 0.9
    off = TextureConfig(size=SIZE, mirror_fill=False)
    assert sample_texture(model, v, img, cam.intrinsics, off).mirrored.sum() == 0


def test_uv_mirror_map_is_an_involution(model):
    ras = uv_raster(model, SIZE)
    m = ras.mirror
    ok = m >= 0
    assert ok.mean() > 0.95
    back = m[m[ok]]
    # mirror of the mirror is the texel itself (to a texel or two at rounding)
    d = np.hypot(ras.rows[ok] - ras.rows[np.maximum(back, 0)], ras.cols[ok] - ras.cols[np.maximum(back, 0)])
    assert np.mean((back >= 0) & (d <= 1.5)) > 0.95


def test_overlay(model, tmp_path):
    cam = photo_camera(320, 240)
    v = HeadPose.from_euler(0, 0, 0, [0, 0, 900]).apply(model.neutral.astype(np.float64))
    rgb = np.full((240, 320, 3), 30, np.uint8)
    lm2 = cam.intrinsics.project(v[model.landmarks_68])
    out = overlay_image(rgb, model, v, cam.intrinsics, lm2)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    cx, cy = (int(round(x)) for x in cam.intrinsics.project(v[model.landmarks_68[30]]))
    assert out[cy + 6, cx + 6].astype(int).sum() > 3 * 30 + 60  # the shaded mesh shows over the photo
    u, w = lm2[36].round().astype(int)
    assert out[w, u, 1] > 200  # a landmark dot (green)
    det = lm2 + 3.0
    save_photo_overlay(tmp_path / "o.png", rgb, model, v, cam.intrinsics, lm2, det, box=np.array([100, 60, 220, 200]))
    from PIL import Image

    from facerecon.photo.overlay import DETECTED_COLOUR, FITTED_COLOUR, MIN_LONG_SIDE

    saved = np.asarray(Image.open(tmp_path / "o.png").convert("RGB"))
    # the face crop (box + 35 %, clipped to the photo: columns 58-262, rows 11-240, 204 x 229 px)
    # enlarged to MIN_LONG_SIDE px, the legend strip under it
    crop_h = MIN_LONG_SIDE
    assert saved.shape[0] > crop_h + 40 and saved.shape[1] == round(204 * MIN_LONG_SIDE / 229)
    legend = saved[crop_h:]
    for colour in (FITTED_COLOUR, DETECTED_COLOUR):  # each mark has its swatch in the legend
        assert (np.abs(legend.astype(int) - colour).sum(-1) < 30).sum() > 10
    assert (legend.astype(int).sum(-1) > 600).sum() > 200  # the legend's text
    # a landmark lands where the crop's scale puts it
    s = MIN_LONG_SIDE / 229
    u, w = ((lm2[36] - [58, 11] + 0.5) * s - 0.5).round().astype(int)
    assert saved[w, u, 1] > 200
