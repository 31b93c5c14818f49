"""The detail layer (fitting/detail.py, facemodel/uv.py tangents, export/maps.py, the GLB normal texture):
a known bump is recovered, flying pixels and holes leave no spikes and no invented texels, the maps
round-trip, the normal map follows glTF's convention, and the GLB with it validates and still animates."""
from __future__ import annotations

import gltf_helpers
import numpy as np
import pytest
from gltf_helpers import load_posed, synthetic_rec, validate

from facerecon.errors import ConfigError
from facerecon.facemodel import RENDER_REGIONS, vertex_normals
from facerecon.facemodel.uv import face_triangles
from facerecon.fitting.detail import (
    DetailConfig,
    DisplacementMap,
    displaced_points,
    displacement_map,
    normal_map,
    texel_frame,
)
from facerecon.geometry.camera import camera_preset
from facerecon.geometry.pose import HeadPose
from facerecon.io.frame import DepthFrame

ict_model = gltf_helpers.ict_model
SIZE = 256
BUMP_MM, BUMP_SIGMA_MM = 3.0, 12.0


@pytest.fixture(scope="module")
def model(ict_model):
    return ict_model


def _cheek(model) -> np.ndarray:
    """A point on the left cheek of the mean face (between the jaw landmark 14 and the nose tip)."""
    v = model.neutral.astype(np.float64)
    guess = 0.6 * v[model.landmarks_68[14]] + 0.4 * v[model.landmarks_68[30]]
    return v[np.argmin(np.linalg.norm(v[:9409] - guess, axis=1))]


def _frame(model, vertices, pose, camera, sensor, seed=0):
    from facerecon.realdata.scan import render_soup
    from facerecon.synth.sensors import apply_sensor, load_sensor

    k = camera_preset(camera)
    tris = model.region_triangles(*RENDER_REGIONS).astype(np.int32)
    depth, seg, cos = render_soup(pose.apply(vertices), tris, np.ones(len(tris), np.uint8), k)
    d, _ = apply_sensor(load_sensor(sensor), depth, k, np.random.default_rng(seed), segment=seg, cos_view=cos)
    return DepthFrame(d, k, f"{sensor} test frame")


def _bumped(model, centre, height=BUMP_MM, sigma=BUMP_SIGMA_MM):
    v = model.neutral.astype(np.float64)
    r = np.linalg.norm(v - centre, axis=1)
    bump = height * np.exp(-(r**2) / (2 * sigma**2))
    bump[9409:] = 0.0  # the face skin only
    return v + bump[:, None] * vertex_normals(v, model.triangles)


def _by_radius(model, disp, centre):
    rows, cols, p, _ = texel_frame(model, model.neutral, disp.size)
    return np.linalg.norm(p - centre, axis=1), disp.mask[rows, cols], disp.displacement[rows, cols]


@pytest.mark.parametrize("seed", [0, 1])
def test_recovers_a_bump_the_base_does_not_have(model, seed):
    """TrueDepth sensor model at 420 mm: the base is the mean face, the frame shows it with a 3 mm bump."""
    centre = _cheek(model)
    pose = HeadPose.from_euler(15, -5, 3, [10, -5, 420])
    frame = _frame(model, _bumped(model, centre), pose, "truedepth-320x240", "truedepth", seed)
    disp = displacement_map(model, model.neutral, pose, frame, DetailConfig.load({"size": SIZE}))
    r, ok, d = _by_radius(model, disp, centre)
    top = ok & (r < 4.0)
    flat = ok & (r > 3 * BUMP_SIGMA_MM)
    assert top.sum() >= 20 and flat.sum() > 10000
    assert abs(np.median(d[top]) - BUMP_MM) < 0.5, np.median(d[top])
    assert abs(np.median(d[flat])) < 0.2  # no bump invented on the rest of the face
    assert 0.3 < disp.stats["coverage"] < 0.7 and disp.stats["measured_texels"] == int(disp.mask.sum())
    # the displaced texel points lie on the bumped surface, closer than the base
    pts = displaced_points(model, model.neutral, disp)
    assert len(pts) == disp.mask.sum()


def test_flying_pixels_and_a_hole_stay_bounded_and_masked(model):
    """ToF sensor (mixed pixels at the silhouette) plus injected flying pixels on the face and a hole
    over the cheek: every value within max_mm, the outliers' surroundings masked, the hole never filled."""
    centre = _cheek(model)
    pose = HeadPose.from_euler(-10, 5, 0, [0, 0, 650])
    clean = _frame(model, model.neutral.astype(np.float64), pose, "kinect-v1", "tof")
    k = clean.intrinsics
    depth = clean.depth_mm.copy()
    rng = np.random.default_rng(5)
    face = np.argwhere(depth > 0)
    spikes = face[rng.choice(len(face), 300, replace=False)]
    depth[spikes[:, 0], spikes[:, 1]] += rng.choice([-1.0, 1.0], 300) * rng.uniform(20, 300, 300)
    cu, cv = k.project(pose.apply(centre))
    yy, xx = np.mgrid[: k.height, : k.width]
    hole = (xx - cu) ** 2 + (yy - cv) ** 2 < 8.0**2
    depth[hole] = 0.0
    cfg = DetailConfig.load({"size": SIZE})
    disp = displacement_map(model, model.neutral, pose, DepthFrame(depth, k, "spiky"), cfg)
    assert np.abs(disp.displacement).max() <= cfg.max_mm
    assert disp.stats["measured_texels"] > 10000
    rows, cols, p, _ = texel_frame(model, model.neutral, SIZE)
    uv = k.project(pose.apply(p))
    ok = disp.mask[rows, cols]
    inside = (uv[:, 0] - cu) ** 2 + (uv[:, 1] - cv) ** 2 < 7.0**2
    assert inside.sum() > 50 and not ok[inside].any()  # holes stay holes
    # no spike survives: the measured values are the clean frame's (whose own tails are the ToF model's
    # multipath bias in concave places), texel for texel
    ref = displacement_map(model, model.neutral, pose, clean, cfg)
    both = disp.mask & ref.mask
    tail, ref_tail = (np.percentile(np.abs(x.displacement[x.mask]), 99.9) for x in (disp, ref))
    assert tail < ref_tail + 0.3
    assert np.percentile(np.abs(disp.displacement[both] - ref.displacement[both]), 99) < 0.5
    assert disp.stats["edge_pixels"] > ref.stats["edge_pixels"] + 300  # the flying pixels were found


def test_nothing_in_view_is_an_empty_map(model):
    pose = HeadPose.from_euler(0, 0, 0, [0, 0, 650])
    frame = DepthFrame(np.zeros((480, 640), np.float32), camera_preset("kinect-v1"), "empty")
    disp = displacement_map(model, model.neutral, pose, frame, DetailConfig.load({"size": 64}))
    assert not disp.mask.any() and disp.stats["coverage"] == 0.0 and (disp.displacement == 0).all()
    with pytest.raises(ValueError, match="intrinsics"):
        displacement_map(model, model.neutral, pose, DepthFrame(frame.depth_mm, None, "x"), DetailConfig.load({"size": 64}))


def test_config_is_checked():
    assert DetailConfig().size == 512  # configs/detail.toml
    with pytest.raises(ConfigError, match="smooth_px"):
        DetailConfig.load({"smoth_px": 1.0})
    with pytest.raises(ConfigError, match="region"):
        DetailConfig.load({"region": "nose"})
    with pytest.raises(ConfigError, match="size"):
        DetailConfig.load({"size": 4})


def test_displacement_png_round_trip(tmp_path):
    from facerecon.export.maps import read_displacement_png, write_displacement_png

    rng = np.random.default_rng(0)
    d = rng.uniform(-6, 6, (64, 64)).astype(np.float32)
    mask = rng.random((64, 64)) > 0.3
    d[~mask] = 0
    d[0, 0], d[0, 1], mask[0, :2] = 6.0, -6.0, True  # the bounds themselves
    disp = DisplacementMap(d, mask, 6.0)
    enc = write_displacement_png(tmp_path / "face_displacement.png", disp, tmp_path / "mask.png")
    back = read_displacement_png(tmp_path / "face_displacement.png", enc["scale_mm"], enc["offset_mm"])
    assert np.abs(back - d).max() <= enc["scale_mm"] / 2 + 1e-7
    assert (back[~mask] == 0).all()  # unmeasured texels: exactly 0 mm
    from PIL import Image

    with Image.open(tmp_path / "face_displacement.png") as im:
        assert im.mode.startswith("I") and im.size == (64, 64)
    with Image.open(tmp_path / "mask.png") as im:
        assert ((np.asarray(im) == 255) == mask).all()
    from facerecon.errors import InputFileError

    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InputFileError, match="bad.png"):
        read_displacement_png(tmp_path / "bad.png", enc["scale_mm"], enc["offset_mm"])
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(InputFileError, match="16-bit"):
        read_displacement_png(tmp_path / "rgb.png", enc["scale_mm"], enc["offset_mm"])


def test_normal_map_follows_gltf_convention(model):
    """A displacement rising to the right (+u) tilts the normal to -T (red < 128); rising up the image
    (+v, towards row 0) tilts it to -B (green < 128); zero displacement is (128, 128, 255)."""
    s = 128
    rows, cols, _, _ = texel_frame(model, model.neutral, s)
    mask = np.zeros((s, s), bool)
    mask[rows, cols] = True
    flat = normal_map(model, model.neutral, DisplacementMap(np.zeros((s, s), np.float32), mask, 6.0))
    assert (np.abs(flat[mask].astype(int) - [128, 128, 255]) <= 1).all()
    ramp = np.tile(np.linspace(-40, 40, s, dtype=np.float32), (s, 1))  # grows with the column (u), slope ~0.3
    nu = normal_map(model, model.neutral, DisplacementMap(ramp, mask, 6.0))[mask].astype(int)
    nv = normal_map(model, model.neutral, DisplacementMap(np.ascontiguousarray(-ramp.T), mask, 6.0))[mask].astype(int)
    assert np.median(nu[:, 0]) < 120 and abs(np.median(nu[:, 1]) - 128) < 4
    assert np.median(nv[:, 1]) < 120 and abs(np.median(nv[:, 0]) - 128) < 4


def test_uv_tangents_are_a_frame_of_the_layout(model):
    from facerecon.facemodel.uv import uv_tangents

    v = model.neutral.astype(np.float64)
    n = vertex_normals(v, model.triangles)
    t = uv_tangents(model, v, n)
    np.testing.assert_allclose(np.linalg.norm(t[:, :3], axis=1), 1.0, atol=1e-9)
    assert set(np.unique(t[:, 3])) <= {-1.0, 1.0}
    tri = face_triangles(model)
    uv_vertex = np.full(len(model.uv), -1)
    uv_vertex[model.triangle_uv[tri].ravel()] = model.triangles[tri].ravel()
    used = uv_vertex >= 0
    assert np.abs(np.einsum("nc,nc->n", t[used, :3], n[uv_vertex[used]])).max() < 1e-9
    # the tangent points along +u: moving along it raises u (checked on each triangle's first corner)
    ftri, fuv = model.triangles[tri], model.triangle_uv[tri]
    e = v[ftri[:, 1]] - v[ftri[:, 0]]
    du = model.uv[fuv[:, 1], 0] - model.uv[fuv[:, 0], 0]
    big = np.abs(du) > 1e-3
    agree = np.sign(np.einsum("nc,nc->n", e[big], t[fuv[big, 0], :3])) == np.sign(du[big])
    assert agree.mean() > 0.9


def test_glb_with_normal_map_validates_and_animates(model, tmp_path):
    from pygltflib import GLTF2

    from facerecon.export.gltf import write_rigged_glbs

    rec = synthetic_rec(model)
    s = 128
    rows, cols, _, _ = texel_frame(model, model.neutral, s)
    rng = np.random.default_rng(1)
    d = np.zeros((s, s), np.float32)
    d[rows, cols] = rng.normal(0, 0.5, len(rows))
    mask = np.zeros((s, s), bool)
    mask[rows, cols] = True
    nm = normal_map(model, rec.vertices_head, DisplacementMap(d, mask, 6.0))
    tex = np.full((64, 64, 3), 200, np.uint8)
    write_rigged_glbs(rec, model, tmp_path / "plain", None, None, head_frame=False, normal_texture=nm)
    write_rigged_glbs(rec, model, tmp_path / "textured", tex, camera_preset("kinect-v1"), normal_texture=nm)
    files = [tmp_path / "plain" / "face.glb", tmp_path / "textured" / "face.glb", tmp_path / "textured" / "face_head.glb"]
    for rep in validate(*files):
        assert rep["errors"] == 0 and rep["warnings"] == 0, rep["messages"]
    for kind, texture in (("plain", None), ("textured", tex)):
        out = tmp_path / kind
        g = GLTF2().load(str(out / "face.glb"))
        skin = next(i for i, m in enumerate(g.materials) if m.name == "face_skin")
        assert g.materials[skin].normalTexture is not None
        n_img = 2 if texture is not None else 1
        assert len(g.images) == n_img and len(g.textures) == n_img
        for p in g.meshes[0].primitives:
            assert (p.attributes.TANGENT is not None) == (p.material == skin)
            if p.material == skin:
                tan = gltf_helpers.read_accessor(g, g.binary_blob(), p.attributes.TANGENT)
                assert np.allclose(np.linalg.norm(tan[:, :3], axis=1), 1.0, atol=1e-5) and set(np.unique(tan[:, 3])) <= {-1, 1}
        if texture is not None:
            assert g.materials[skin].pbrMetallicRoughness.baseColorTexture.index != g.materials[skin].normalTexture.index
    # the morph targets still move the detailed face: jawOpen at 1 = the ICT delta
    names = g.meshes[0].extras["targetNames"]
    w = np.zeros(len(names))
    w[names.index("jawOpen")] = 1.0
    zero, _ = load_posed(out / "face_head.glb", model.n_vertices, np.zeros(len(names)))
    jaw, _ = load_posed(out / "face_head.glb", model.n_vertices, w)
    delta = model.expression_basis[model.expression_names.index("jawOpen")]
    assert np.abs((jaw - zero) - delta).max() < 1e-3


def _decoded(model, v, nm, truth_v):
    """Per face texel: the normal map decoded as a glTF viewer does, the base normal N, the true
    surface's normal (``truth_v``, same topology) and the texel's point on the base."""
    from facerecon.fitting.detail import decode_normal_map

    rows, cols, decoded, n, corners, bary = decode_normal_map(model, v, nm)
    interp = lambda a: np.einsum("nk,nkc->nc", bary, a[corners])
    truth = interp(vertex_normals(truth_v, model.triangles[face_triangles(model)]))
    truth /= np.linalg.norm(truth, axis=1, keepdims=True)
    return rows, cols, decoded, n, truth, interp(v)


def _deg(a, b):
    return np.degrees(np.arccos(np.clip(np.einsum("nc,nc->n", a, b), -1, 1)))


def test_normal_map_decodes_to_the_true_surface_normal(model):
    """The normal map of a measured bump, decoded as a glTF viewer does (x T + y B + z N with the
    tangents the GLB carries), is the normal of the bumped surface: a wrong sign or axis would put
    the bump's slopes ~2x their tilt (up to ~17 degrees) off."""
    centre = _cheek(model)
    pose = HeadPose.from_euler(10, -5, 0, [0, 0, 500])
    bumped = _bumped(model, centre)
    frame = _frame(model, bumped, pose, "kinect-v1", "ideal")
    disp = displacement_map(model, model.neutral, pose, frame, DetailConfig.load({"size": SIZE, "smooth_px": 0.0}))
    nm = normal_map(model, model.neutral, disp)
    v = model.neutral.astype(np.float64)
    rows, cols, decoded, n, truth, p = _decoded(model, v, nm, bumped)
    r = np.linalg.norm(p - centre, axis=1)
    slope = disp.mask[rows, cols] & (r > 6.0) & (r < 20.0)  # the bump's flanks, tilted ~5-9 degrees
    tilt = _deg(n, truth)
    err = _deg(decoded, truth)
    assert slope.sum() > 200 and np.median(tilt[slope]) > 4.0
    assert np.median(err[slope]) < 0.35 * np.median(tilt[slope]), (np.median(err[slope]), np.median(tilt[slope]))


def test_normal_map_filter_lowers_the_angle_error_of_a_noisy_sensor(model):
    """A clean bumped face through the Kinect v1 sensor model: the normal map with the default
    low-pass (normal_smooth_px) is closer to the true normals than the unfiltered derivative, which
    copies the sensor's per-pixel noise (this frame at 256: ~6.2 vs ~0.7 degrees median; docs/detail.md)."""
    centre = _cheek(model)
    pose = HeadPose.from_euler(10, -5, 0, [0, 0, 700])
    bumped = _bumped(model, centre)
    frame = _frame(model, bumped, pose, "kinect-v1", "kinect-v1", seed=3)
    cfg = DetailConfig.load({"size": SIZE})
    assert cfg.normal_smooth_px > 0
    disp = displacement_map(model, model.neutral, pose, frame, cfg)
    v = model.neutral.astype(np.float64)
    measured = disp.displacement.copy()
    err = {}
    for k in (0.0, cfg.normal_smooth_px):
        nm = normal_map(model, model.neutral, disp, DetailConfig.load({"size": SIZE, "normal_smooth_px": k}))
        rows, cols, decoded, _, truth, _ = _decoded(model, v, nm, bumped)
        ok = disp.mask[rows, cols]
        err[k] = float(np.median(_deg(decoded[ok], truth[ok])))
    assert ok.sum() > 2000
    assert err[cfg.normal_smooth_px] < 0.7 * err[0.0], err
    # the displacement itself stays as measured: the filter is the normal map's only
    assert np.array_equal(disp.displacement, measured)


def test_splat_depth_frame_nearest_point_wins_and_holes_stay_holes():
    from facerecon.fitting.detail import splat_depth_frame

    # a 10 x 10 mm plane at 1000 mm sampled every 2 mm, a second point 5 mm in front of one of them
    g = np.arange(0.0, 10.0 + 1e-9, 2.0)
    pts = np.array([[x, y, 1000.0] for x in g for y in g])
    front = np.array([[4.0, 4.0, 995.0]])
    fr = splat_depth_frame(np.concatenate([pts, front, [[np.nan, 0.0, 1000.0]]]), pixel_mm=1.0)
    k = fr.intrinsics
    uv = np.rint(k.project(pts)).astype(int)
    assert np.all(fr.depth_mm[uv[:, 1], uv[:, 0]] > 0)  # every point lands inside the image
    r, c = np.rint(k.project(front)[0]).astype(int)[::-1]
    assert fr.depth_mm[r, c] == 995.0  # the nearer point wins its pixel
    assert abs(float(np.median(pts[:, 2])) / k.fx - 1.0) < 0.01  # ~1 mm per pixel at the cloud
    # 2 mm spacing at 1 mm pixels: the pixels between the points are not filled
    assert np.count_nonzero(fr.depth_mm) == len(pts) and fr.depth_mm[uv[0, 1] + 1, uv[0, 0] + 1] == 0.0
    assert splat_depth_frame(np.zeros((0, 3)), 1.0).depth_mm.max() == 0.0  # nothing: an empty frame


@pytest.mark.parametrize("sigma", [0.7, 4.3, 9.6])
def test_masked_gaussian_is_scipys_filter_at_the_measured_texels(sigma):
    """normal_smoothed's kernel gives, at every measured texel, the float32 value of scipy's
    gaussian_filter (mode constant, truncate 3) of the masked map over the mask, bit for bit; 0 elsewhere."""
    from scipy.ndimage import gaussian_filter

    from facerecon.fitting.detail import normal_smoothed

    rng = np.random.default_rng(int(sigma * 10))
    yy, xx = np.mgrid[:96, :96]
    mask = ((yy - 50) ** 2 / 900 + (xx - 40) ** 2 / 1400 < 1) & (rng.random((96, 96)) > 0.15)
    mask[0, 30:40] = mask[95, 5:9] = mask[40:44, 95] = True  # measured texels at the tile's borders
    d = np.where(mask, rng.normal(0.0, 1.5, (96, 96)), 0.0).astype(np.float32)
    num = gaussian_filter(np.where(mask, d, 0.0).astype(np.float32), sigma, mode="constant", truncate=3.0)
    den = gaussian_filter(mask.astype(np.float32), sigma, mode="constant", truncate=3.0)
    want = np.where(mask, num / np.maximum(den, 1e-6), 0.0).astype(np.float32)
    got = normal_smoothed(DisplacementMap(d, mask, 6.0), sigma)
    assert got.dtype == np.float32
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


def test_masked_gaussian_on_sparse_and_small_masks():
    """The kernel works on the measured texels' bounding box: a lone texel, a mask in one corner, a whole
    tile, and a kernel wider than the tile give scipy's values too."""
    from scipy.ndimage import gaussian_filter

    from facerecon.fitting.detail import normal_smoothed

    rng = np.random.default_rng(7)
    for n, sigma, kind in ((40, 2.0, "lone"), (40, 3.0, "corner"), (24, 1.5, "full"), (12, 9.0, "random"), (64, 4.0, "random")):
        mask = np.zeros((n, n), bool)
        if kind == "lone":
            mask[17, 3] = True
        elif kind == "corner":
            mask[n - 6:, n - 9:] = rng.random((6, 9)) > 0.3
        elif kind == "full":
            mask[:] = True
        else:
            mask = rng.random((n, n)) > 0.5
        d = np.where(mask, rng.normal(0.0, 1.5, (n, n)), 0.0).astype(np.float32)
        num = gaussian_filter(d, sigma, mode="constant", truncate=3.0)
        den = gaussian_filter(mask.astype(np.float32), sigma, mode="constant", truncate=3.0)
        want = np.where(mask, num / np.maximum(den, 1e-6), 0.0).astype(np.float32)
        got = normal_smoothed(DisplacementMap(d, mask, 6.0), sigma)
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (n, sigma, kind)


def _scipy_clean_depth(depth, cfg):
    """_clean_depth as written with scipy.ndimage (the reference its compiled filters must equal)."""
    from scipy.ndimage import gaussian_filter, maximum_filter, minimum_filter

    from facerecon.fitting.detail import _MIN_SUPPORT

    valid = depth > 0
    hi = maximum_filter(np.where(valid, depth, 0.0), size=3)
    lo = minimum_filter(np.where(valid, depth, np.inf), size=3)
    edge = valid & (hi - lo > cfg.edge_jump_mm + cfg.edge_jump_rel * depth)
    if cfg.edge_dilate_px > 0 and edge.any():
        edge = maximum_filter(edge, size=2 * cfg.edge_dilate_px + 1) & valid
    good = valid & ~edge
    if cfg.smooth_px > 0:
        num = gaussian_filter(np.where(good, depth, 0.0).astype(np.float32), cfg.smooth_px, truncate=3.0)
        den = gaussian_filter(good.astype(np.float32), cfg.smooth_px, truncate=3.0)
        good &= den >= _MIN_SUPPORT
        smooth = np.where(good, num / np.maximum(den, 1e-6), 0.0).astype(np.float32)
    else:
        smooth = np.where(good, depth, 0.0).astype(np.float32)
    cell = np.zeros_like(good)
    cell[:-1, :-1] = good[:-1, :-1] & good[1:, :-1] & good[:-1, 1:] & good[1:, 1:]
    return smooth, cell, {"edge_pixels": int(edge.sum()), "valid_pixels": int(valid.sum())}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clean_depth_is_scipys_filters(dtype):
    """The depth cleaning's filters (max / min 3x3, the grown edges, the masked Gaussian, all mode reflect) give
    scipy.ndimage's values bit for bit: noisy surfaces with holes, jumps and valid pixels on the crop's borders,
    Gaussian kernels from none to wider than the crop, edge growth 0-3, tiny crops."""
    from facerecon.fitting.detail import _clean_depth

    rng = np.random.default_rng(11)
    cases = [((60, 80), 1.0, 1), ((60, 80), 0.1, 1), ((45, 33), 2.6, 0), ((45, 33), 0.0, 2), ((9, 7), 4.0, 3),
             ((3, 2), 1.0, 1), ((1, 5), 1.5, 1), ((120, 90), 6.0, 2)]
    for (h, w), smooth_px, dil in cases:
        yy, xx = np.mgrid[:h, :w]
        depth = 500.0 + 0.3 * yy + 40.0 * (xx > w // 2) + rng.normal(0.0, 1.5, (h, w))
        depth[rng.random((h, w)) < 0.15] = 0.0  # holes, on the borders too
        depth[h // 3:h // 3 + 3, 2:5] = 0.0
        depth = depth.astype(dtype)
        cfg = DetailConfig.load({"smooth_px": smooth_px, "edge_dilate_px": dil})
        got, want = _clean_depth(depth, cfg), _scipy_clean_depth(depth, cfg)
        assert got[0].dtype == np.float32 and got[0].flags.c_contiguous
        assert np.array_equal(got[0].view(np.uint32), want[0].view(np.uint32)), ((h, w), smooth_px, dil)
        assert np.array_equal(got[1], want[1]) and got[2] == want[2], ((h, w), smooth_px, dil)
        assert want[2]["edge_pixels"] > 0 or h * w < 50


@pytest.mark.parametrize("yaw", [0.0, 55.0])
def test_grazing_triangles_skip_nothing_that_would_be_measured(model, monkeypatch, yaw):
    """The triangles skipped as all-grazing change nothing: the same map, mask and texel counts as the
    per-texel test alone (no triangle skipped)."""
    from facerecon.fitting import detail

    pose = HeadPose.from_euler(10, yaw, 0, [0, 0, 480])
    frame = _frame(model, model.neutral.astype(np.float64), pose, "truedepth-320x240", "truedepth")
    cfg = DetailConfig.load({"size": SIZE})
    got = displacement_map(model, model.neutral, pose, frame, cfg)
    real = detail._grazing_triangles
    skipped = []
    monkeypatch.setattr(detail, "_grazing_triangles", lambda *a: skipped.append(real(*a).sum()) or np.zeros(len(a[0]), bool))
    want = displacement_map(model, model.neutral, pose, frame, cfg)
    assert np.array_equal(got.displacement, want.displacement) and np.array_equal(got.mask, want.mask)
    assert {k: v for k, v in got.stats.items() if k != "ms"} == {k: v for k, v in want.stats.items() if k != "ms"}
    assert skipped[0] > 1000 and got.stats["grazing_texels"] > 0


def test_cross_norm_is_numpys():
    """The texel size's compiled |pu x pv| gives NumPy's values bit for bit."""
    from facerecon.fitting.detail import _cross_norm

    rng = np.random.default_rng(11)
    for scale in (1e-3, 1.0, 250.0):
        a, b = rng.normal(0.0, scale, (5000, 3)), rng.normal(0.0, scale, (5000, 3))
        want = np.linalg.norm(np.cross(a, b), axis=1)
        assert np.array_equal(_cross_norm(a, b).view(np.int64), want.view(np.int64))
