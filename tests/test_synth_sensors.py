"""Each sensor model changes the statistics it claims to (on controlled scenes)."""
from __future__ import annotations

import numpy as np
from scipy.ndimage import distance_transform_edt

from facerecon.geometry.camera import camera_preset
from facerecon.synth import meshes as M
from facerecon.synth.generator import render_scene
from facerecon.synth.presets import load_sensor
from facerecon.synth.scene import SEG_BACKGROUND, SEG_BODY, Scene
from facerecon.synth.sensors import apply_sensor

K1 = camera_preset("kinect-v1")


def _scene(parts) -> Scene:
    vs, ts, ss, off = [], [], [], 0
    for (v, t), seg in parts:
        vs.append(v)
        ts.append(t + off)
        ss.append(np.full(len(t), seg, np.uint8))
        off += len(v)
    return Scene(np.concatenate(vs), np.concatenate(ts).astype(np.int32), np.concatenate(ss), 0, 0)


def _wall(z: float, k=K1):
    s = 1.5 * z * max(k.width, k.height) / 2 / k.fx
    return M.quad(np.array([[-s, -s, z], [s, -s, z], [s, s, z], [-s, s, z]]), np.zeros(3))


def _box_on_wall(k=K1, z_fg=900.0, z_bg=2000.0, size=300.0):
    box = M.box([0, 0, z_fg + 100], [size, size, 200])
    return _scene([(box, SEG_BODY), (_wall(z_bg, k), SEG_BACKGROUND)])


def _apply(sensor, scene, k=K1, seed=0, drop_border=True):
    depth, _, seg, cos, _ = render_scene(scene, k)
    sm = load_sensor(sensor)
    if drop_border:
        sm.table["stages"] = [s for s in sm.table["stages"] if s["type"] != "border"]
    out, applied = apply_sensor(sm, depth, k, np.random.default_rng(seed), segment=seg, cos_view=cos)
    return depth, out, applied


def test_kinect_missing_pixels_are_at_depth_edges_and_shadow_falls_left():
    ideal, out, _ = _apply("kinect-v1", _box_on_wall())
    edges = np.zeros_like(ideal, bool)
    edges[:, 1:] |= np.abs(np.diff(ideal, axis=1)) > 100
    edges[1:, :] |= np.abs(np.diff(ideal, axis=0)) > 100
    dist = distance_transform_edt(~edges)
    missing = (out == 0) & (ideal > 0)
    near = dist <= 45  # the projector shadow of a 0.9 m box on a 2 m wall is ~ 30-40 px wide
    assert missing.sum() > 1000
    assert missing[near].mean() > 20 * max(missing[~near].mean(), 1e-4)
    # the shadow band (f b (1/z_fg - 1/z_bg) ~ 14-24 px) lies on the box's left, not on its right
    cols = np.nonzero(ideal[240] < 1500)[0]
    rows = slice(200, 280)
    left = missing[rows, cols[0] - 12 : cols[0]].mean()
    right = missing[rows, cols[-1] + 1 : cols[-1] + 13].mean()
    assert left > 0.7 and right < 0.2


def test_kinect_noise_grows_with_depth_squared():
    stds = []
    for z in (1000.0, 2000.0):
        ideal, out, _ = _apply("kinect-v1", _scene([(_wall(z), SEG_BACKGROUND)]), seed=1)
        ok = (out > 0) & (ideal > 0)
        stds.append(np.std(out[ok] - ideal[ok]))
    assert 1.0 < stds[0] < 4.0  # ~1.4 mm noise + 2.9 mm quantisation steps at 1 m
    assert stds[1] / stds[0] > 3.0  # ~ z^2
    # disparity quantisation: at 2 m the measured depths take few distinct values
    ideal, out, _ = _apply("kinect-v1", _scene([(_wall(2000.0), SEG_BACKGROUND)]), seed=2)
    vals = np.unique(np.round(out[out > 0], 3))
    assert len(vals) < 20


def test_tof_flying_pixels_between_foreground_and_background():
    ideal, out, _ = _apply("tof", _box_on_wall())
    mid = (out > 950) & (out < 1900)  # neither the box face (900) nor the wall (2000)
    assert mid.sum() > 100
    ideal_mid = (ideal > 950) & (ideal < 1900)
    assert ideal_mid.sum() < mid.sum() / 5  # (only the box's own sides are there ideally)
    _, out_k, _ = _apply("kinect-v1", _box_on_wall())
    assert ((out_k > 950) & (out_k < 1900)).sum() < mid.sum() / 3


def test_grazing_surfaces_lose_pixels():
    ball = M.ellipsoid([0, 0, 800.0], (150, 150, 150), n_lat=48, n_lon=96)
    depth, _, seg, cos, _ = render_scene(_scene([(ball, SEG_BODY)]), K1)
    sm = load_sensor("kinect-v1")
    sm.table["stages"] = [s for s in sm.table["stages"] if s["type"] == "grazing_dropout"]
    out, _ = apply_sensor(sm, depth, K1, np.random.default_rng(0), segment=seg, cos_view=cos)
    lost = (out == 0) & (depth > 0)
    assert lost[(cos < 0.1) & (depth > 0)].mean() > 0.5
    assert lost[(cos > 0.5) & (depth > 0)].mean() == 0


def test_truedepth_shadow_below_and_fine_quantisation():
    k = camera_preset("truedepth-320x240")
    ideal, out, _ = _apply("truedepth", _box_on_wall(k, 300.0, 2500.0, size=100.0), k)
    missing = (out == 0) & (ideal > 0)
    rows = np.nonzero(ideal[:, 160] < 1000)[0]
    cols = slice(150, 170)
    below = missing[rows[-1] + 1 : rows[-1] + 9, cols].mean()  # shadow ~ f b (1/z1 - 1/z2) = 10-15 px
    above = missing[rows[0] - 8 : rows[0], cols].mean()
    assert below > 0.9 and below > 2 * above  # projector on the -y side: shadow under objects
    face = out[112:126, 150:170]
    assert np.all(np.abs(face[face > 0] - 300.0) < 2.0)
    assert len(np.unique(face[face > 0])) < 30  # disparity steps of ~0.14 mm at 0.3 m


def test_sensors_are_reproducible():
    for name in ("kinect-v1", "tof", "truedepth"):
        _, a, pa = _apply(name, _box_on_wall(), seed=7, drop_border=False)
        _, b, pb = _apply(name, _box_on_wall(), seed=7, drop_border=False)
        assert np.array_equal(a, b) and pa == pb
