"""Position images: exact geometry, metric crop, min-pooling, background band, round trips."""
from __future__ import annotations

import numpy as np
import pytest

from facerecon.geometry.camera import Intrinsics, camera_preset
from facerecon.io.frame import DepthFrame
from facerecon.preprocess import POSITION_SCALE_MM, PositionImage, make_position_image, stack_position_images

KINECT = camera_preset("kinect-v1")


def _plane_frame(z0: float, k: Intrinsics = KINECT) -> DepthFrame:
    return DepthFrame(np.full((k.height, k.width), z0, np.float32), k, "plane")


@pytest.mark.parametrize("z0", [400.0, 800.0, 2500.0])  # crop up-, about 1:1- and down-sampled
def test_plane_maps_to_expected_positions(z0):
    c = np.array([30.0, -20.0, z0])
    pim = make_position_image(_plane_frame(z0), c, size_mm=300.0, out=160)
    assert isinstance(pim, PositionImage)
    assert pim.data.shape == (3, 160, 160) and pim.data.dtype == np.float32
    assert pim.valid.all()
    k = pim.intrinsics
    j = np.arange(160)
    # exact depth-to-position with the crop intrinsics
    ex = ((j[None, :] - k.cx) * z0 / k.fx - c[0]) / POSITION_SCALE_MM
    ey = ((j[:, None] - k.cy) * z0 / k.fy - c[1]) / POSITION_SCALE_MM
    np.testing.assert_allclose(pim.data[0], np.broadcast_to(ex, (160, 160)), atol=1e-5)
    np.testing.assert_allclose(pim.data[1], np.broadcast_to(ey, (160, 160)), atol=1e-5)
    np.testing.assert_allclose(pim.data[2], 0.0, atol=1e-6)
    # metric: the crop spans 300 mm at the centre depth -> x from -1.5 to 1.5 (pixel centres inset by half a pixel)
    half_px = 300.0 / 160 / 2 / POSITION_SCALE_MM
    assert pim.data[0, 0, 0] == pytest.approx(-1.5 + half_px, abs=1e-4)
    assert pim.data[0, 0, -1] == pytest.approx(1.5 - half_px, abs=1e-4)
    assert pim.data[1, -1, 0] == pytest.approx(1.5 - half_px, abs=1e-4)
    # the centre projects to the middle of the crop; fx' = out * Z / size
    np.testing.assert_allclose(k.project(c), [79.5, 79.5], atol=1e-9)
    assert k.fx == pytest.approx(160 * z0 / 300.0)
    # the 2x2 pixels around the middle average to the centre: (0, 0, 0)
    np.testing.assert_allclose(pim.data[:, 79:81, 79:81].mean(axis=(1, 2)), 0.0, atol=1e-5)


def test_centre_maps_to_zero_and_roundtrip():
    z0 = 700.0
    c = np.array([0.0, 0.0, z0])
    k = Intrinsics(500.0, 500.0, 320.0 - 0.5 + 0.5, 240.0, 640, 480)
    pim = make_position_image(_plane_frame(z0, k), c, out=161)  # odd size: a pixel exactly at the centre
    # the centre pixel's ray passes through c
    assert pim.intrinsics.cx == pytest.approx(80.0)
    np.testing.assert_allclose(pim.data[:, 80, 80], 0.0, atol=1e-6)
    pts = pim.points_mm()
    assert pts.shape == (161 * 161, 3)
    np.testing.assert_allclose(pts[:, 2], z0, atol=1e-3)
    np.testing.assert_allclose(pim.from_camera(pim.to_camera(pim.points())), pim.points(), atol=1e-6)


def test_crop_intrinsics_agree_with_source_projection():
    k = KINECT
    c = np.array([-120.0, 60.0, 900.0])
    pim = make_position_image(_plane_frame(900.0), c)
    p = np.array([[-100.0, 50.0, 950.0], [-180.0, 120.0, 880.0]])
    uv_src = k.project(p)
    uv_crop = pim.intrinsics.project(p)
    u0, v0, u1, v1 = pim.crop_box
    # crop pixel = (source pixel - crop edge) * out / side - 0.5 (edges at -0.5 in pixel-centre coordinates)
    np.testing.assert_allclose(uv_crop[:, 0], (uv_src[:, 0] - u0) * 160 / (u1 - u0) - 0.5, atol=1e-6)
    np.testing.assert_allclose(uv_crop[:, 1], (uv_src[:, 1] - v0) * 160 / (v1 - v0) - 0.5, atol=1e-6)


def test_metric_crop_independent_of_distance_and_camera():
    """A 200 mm square patch at 0.6 m (Kinect) and 1.8 m (another camera) covers the same pixels."""
    covers = []
    for k, z0 in ((KINECT, 600.0), (Intrinsics(300.0, 300.0, 160.0, 120.0, 320, 240), 1800.0)):
        d = np.zeros((k.height, k.width), np.float32)
        u0, u1 = k.project(np.array([[-100.0, -100.0, z0], [100.0, 100.0, z0]]))
        d[int(np.ceil(u0[1])): int(np.floor(u1[1])) + 1, int(np.ceil(u0[0])): int(np.floor(u1[0])) + 1] = z0
        pim = make_position_image(DepthFrame(d, k, "patch"), np.array([0.0, 0.0, z0]))
        covers.append(pim.valid)
        x = pim.data[0][pim.valid]
        assert x.min() == pytest.approx(-1.0, abs=0.05) and x.max() == pytest.approx(1.0, abs=0.05)
    assert abs(int(covers[0].sum()) - int(covers[1].sum())) < 0.05 * covers[0].sum()


def test_min_pooling_does_not_blend_edges_and_band_removes_background():
    # left half: face plane at 800 mm; right half: wall at 1500 mm; a hole of invalid pixels
    d = np.full((480, 640), 1500.0, np.float32)
    d[:, :330] = 800.0
    d[200:220, 300:310] = 0.0
    f = DepthFrame(d, KINECT, "step")
    pim = make_position_image(f, np.array([0.0, 0.0, 850.0]), size_mm=300.0)
    z = pim.data[2][pim.valid] * POSITION_SCALE_MM + 850.0
    np.testing.assert_allclose(z, 800.0, atol=1e-3)  # only the face: no blended depths, wall removed
    assert (~pim.valid).sum() > 0
    assert np.all(pim.data[:, ~pim.valid] == 0.0)
    # without the band the wall comes back, still without blended values
    pim2 = make_position_image(f, np.array([0.0, 0.0, 850.0]), band_mm=(1e4, 1e4))
    z2 = pim2.data[2][pim2.valid] * POSITION_SCALE_MM + 850.0
    assert set(np.unique(np.round(z2))) <= {800.0, 1500.0}


def test_outside_image_is_invalid():
    # centre projects to u = 10: the left ~half of the crop lies outside the image
    x = (10.0 - KINECT.cx) * 800.0 / KINECT.fx
    pim = make_position_image(_plane_frame(800.0), np.array([x, 0.0, 800.0]))
    assert not pim.valid[:, :70].any() and pim.valid[:, 85:].all()


def test_real_frame_position_image(real_dir):
    from facerecon.io import read_depth
    from facerecon.preprocess import localize_head

    f = read_depth(real_dir / "truedepth-mannequin" / "DepthFrames" / "frame-045.ply")
    pim = make_position_image(f, localize_head(f).center_mm)
    v = pim.valid
    assert 0.3 < v.mean() < 0.8
    assert np.abs(pim.data[:, v]).max() < 2.5
    # the head's own points (within 120 mm of the centre) lie in [-1.5, 1.5]
    head = np.linalg.norm(pim.data[:, v], axis=0) < 1.2
    assert np.abs(pim.data[:, v][:, head]).max() <= 1.5
    assert stack_position_images([pim, pim]).shape == (2, 3, 160, 160)


def test_errors():
    from facerecon.errors import ConfigError

    with pytest.raises(ConfigError, match="no intrinsics"):
        make_position_image(DepthFrame(np.ones((4, 4), np.float32), None, "x.npy"), [0, 0, 500])
    with pytest.raises(ValueError, match="in front of the camera"):
        make_position_image(_plane_frame(800.0), [0, 0, -5])


def _numpy_position_image(frame: DepthFrame, pim: PositionImage, out: int = 160, band_mm=(180.0, 180.0)):
    """The NumPy form the compiled crop (``position_image._position_data``) replaced: gather the sampled rows and
    columns, min-pool on the bit pattern, then the band and the positions."""
    from facerecon.preprocess.position_image import MAX_POOL, _sample_grid

    c = pim.center_mm
    e0u, e0v, e1u, e1v = (v + 0.5 for v in pim.crop_box)
    side_u, side_v = e1u - e0u, e1v - e0v
    ku = int(min(MAX_POOL, max(1, np.ceil(side_u / out - 1e-6))))
    kv = int(min(MAX_POOL, max(1, np.ceil(side_v / out - 1e-6))))
    cols, cin = _sample_grid(e0u, side_u, out, ku, frame.width)
    rows, rin = _sample_grid(e0v, side_v, out, kv, frame.height)
    bits = np.ascontiguousarray(frame.depth_mm, dtype=np.float32).view(np.uint32)
    samples = bits[rows.reshape(-1)][:, cols.reshape(-1)] - np.uint32(1)
    samples[~rin.reshape(-1), :] = np.uint32(0xFFFFFFFF)
    samples[:, ~cin.reshape(-1)] = np.uint32(0xFFFFFFFF)
    pooled = samples[0::kv, 0::ku].copy()
    for a in range(kv):
        for b in range(ku):
            np.minimum(pooled, samples[a::kv, b::ku], out=pooled)
    z = (pooled + np.uint32(1)).view(np.float32)
    valid = (z > 0) & (z >= c[2] - band_mm[0]) & (z <= c[2] + band_mm[1])
    vm = valid.astype(np.float32) * np.float32(1.0 / POSITION_SCALE_MM)
    k = pim.intrinsics
    j = np.arange(out, dtype=np.float32)
    xs, ys = (j - np.float32(k.cx)) / np.float32(k.fx), (j - np.float32(k.cy)) / np.float32(k.fy)
    data = np.stack([(z * xs[None, :] - np.float32(c[0])) * vm, (z * ys[:, None] - np.float32(c[1])) * vm, (z - np.float32(c[2])) * vm])
    return data, valid


def test_compiled_crop_is_the_numpy_form_bit_for_bit():
    # a rough surface with holes, NaN and negative depths, crops up- and down-sampled and cut by the image border
    rng = np.random.default_rng(3)
    k = KINECT
    depth = (700.0 + 300.0 * rng.random((k.height, k.width))).astype(np.float32)
    depth[rng.random(depth.shape) < 0.2] = 0.0
    depth[rng.random(depth.shape) < 0.01] = np.nan
    depth[rng.random(depth.shape) < 0.01] = -5.0
    frame = DepthFrame(depth, k, "rough")
    for centre in ([0.0, 0.0, 800.0], [300.0, -200.0, 700.0], [-50.0, 40.0, 250.0], [0.0, 0.0, 3000.0], [-400.0, 300.0, 900.0]):
        pim = make_position_image(frame, np.array(centre))
        data, valid = _numpy_position_image(frame, pim)
        assert np.array_equal(pim.valid, valid)
        assert pim.data.tobytes() == data.astype(np.float32).tobytes()
