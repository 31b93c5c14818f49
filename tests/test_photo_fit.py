"""The photo fit recovers a known ICT face from its own projected landmarks; camera and settings."""
from __future__ import annotations

import numpy as np
import pytest

from facerecon.errors import ConfigError
from facerecon.facemodel import FaceModel, vertex_normals
from facerecon.photo.camera import focal_from_fov, photo_camera
from facerecon.photo.config import load_photo_config
from facerecon.photo.config import PhotoFitConfig
from facerecon.photo.fit import LandmarkTargets, contour_bands, fit_photo, pnp_start
from facerecon.geometry.pose import HeadPose
from facerecon.geometry.rotations import geodesic_distance_deg

# weak priors: on exact synthetic landmarks the data alone should pin the face down
EXACT = dict(identity_prior=1e-7, expression_prior=1e-7, expression_l1=1e-8)


@pytest.fixture(scope="module")
def model(ict_archive) -> FaceModel:
    return FaceModel.load()


def _expr(model, weights: dict) -> np.ndarray:
    w = np.zeros(model.n_expression)
    for name, value in weights.items():
        w[model.expression_index(name)] = value
    return w


def _targets(model, ident, expr, pose, cam, n_dense=400, seed=0, jaw_on_silhouette=True):
    """68 landmarks (jaw sliding) + ``n_dense`` random face vertices, projected from the true face."""
    rng = np.random.default_rng(seed)
    dense = rng.choice(model.region_vertices("narrow_face"), n_dense, replace=False)
    verts = np.r_[model.landmarks_68, dense]
    contour = np.zeros(len(verts), bool)
    contour[:17] = True
    vc = pose.apply(model.vertices(ident, expr).astype(np.float64))
    pts = cam.intrinsics.project(vc[verts])
    tg = LandmarkTargets.from_vertices(pts, verts, contour=contour)
    if jaw_on_silhouette:  # what an annotator marks on a turned face: the outline, not the fixed vertex
        band, index = contour_bands(model, tg, PhotoFitConfig.load(contour_rule="band"))
        uv = cam.intrinsics.project(vc[band])
        e = pose.R[:2, 0] / np.linalg.norm(pose.R[:2, 0])
        side = np.sign(model.neutral[verts, 0])
        away = (index >= 0).any(1) & (side * pose.R[2, 0] > 0)
        for k in np.nonzero(away)[0]:  # the side turned away: the silhouette of the horizontal band
            c = index[k][index[k] >= 0]
            pts[k] = uv[c[np.argmax(side[k] * (uv[c] @ e))]]
        # the side facing the camera: the jaw's lower edge, i.e. the vertex seen edge-on (|cos| < 0.1)
        # nearest (3D) to ICT's jaw vertex
        face = model.region_vertices("face")
        vn = vertex_normals(vc, model.region_triangles("face"))[face]
        edge = face[np.abs((vn * vc[face]).sum(1)) / np.linalg.norm(vc[face], axis=1) < 0.1]
        for k in np.nonzero(~away[:17])[0]:
            j = edge[np.argmin(np.linalg.norm(vc[edge] - vc[verts[k]], axis=1))]
            if np.linalg.norm(vc[j] - vc[verts[k]]) < 20.0:
                pts[k] = cam.intrinsics.project(vc[j][None])[0]
        tg = LandmarkTargets.from_vertices(pts, verts, contour=contour)
    return tg, vc


def test_fit_recovers_known_face(model):
    rng = np.random.default_rng(3)
    ident = rng.normal(0, 0.8, 100)
    expr = _expr(model, {"jawOpen": 0.3, "mouthSmile_L": 0.5, "browInnerUp_R": 0.4})
    pose = HeadPose.from_euler(25, -10, 5, [20, -10, 600])
    cam = photo_camera(640, 480)
    tg, vc = _targets(model, ident, expr, pose, cam)
    fit = fit_photo(model, tg, cam.intrinsics, PhotoFitConfig.load(**EXACT))
    assert fit.converged and fit.iterations < 40
    assert geodesic_distance_deg(fit.rotation, pose.R) < 1.0
    face = model.region_vertices("narrow_face")
    v_true = model.vertices(ident, expr).astype(np.float64)[face]
    v_fit = model.vertices(fit.identity, fit.expression).astype(np.float64)[face]
    err = np.linalg.norm(v_fit - v_true, axis=1).mean()
    mean_face_err = np.linalg.norm(model.neutral[face] - v_true, axis=1).mean()
    assert err < 1.5 and err < 0.4 * mean_face_err, (err, mean_face_err)
    # camera frame: scale and distance trade off a little (a smaller head nearer), within ~1 %
    assert np.linalg.norm(fit.translation - pose.t_mm) < 10.0
    assert np.abs(fit.expression - expr).mean() < 0.03
    assert np.abs(fit.expression - expr).max() < 0.2
    assert (fit.expression >= 0).all() and (fit.expression <= 1).all()
    assert fit.rms_px < 0.5


def test_fit_default_settings_pose_and_bounds(model):
    """The shipped priors (tuned on real photos) still get the pose of an exact face right."""
    rng = np.random.default_rng(4)
    ident = rng.normal(0, 0.6, 100)
    pose = HeadPose.from_euler(-35, 8, -4, [-30, 15, 700])
    cam = photo_camera(800, 600)
    tg, _ = _targets(model, ident, _expr(model, {"mouthFunnel": 0.4}), pose, cam, seed=1)
    fit = fit_photo(model, tg, cam.intrinsics)
    assert geodesic_distance_deg(fit.rotation, pose.R) < 2.0
    assert (fit.expression >= 0).all() and (fit.expression <= 1).all()
    assert fit.expression[53:].max() == 0.0  # the pupil shapes are not fitted


def test_closed_eyes_and_mouth_follow_the_landmarks(model):
    """Lids (lips) that meet in the image make the fit close the eyes (mouth): 68 points only."""
    pose = HeadPose.from_euler(10, 5, 0, [0, 0, 550])
    cam = photo_camera(640, 480)
    for names, expect_closed in (({"eyeBlink_L": 1.0, "eyeBlink_R": 1.0}, True), ({}, False)):
        expr = _expr(model, names)
        tg, _ = _targets(model, np.zeros(100), expr, pose, cam, n_dense=0)
        fit = fit_photo(model, tg, cam.intrinsics, PhotoFitConfig.load(**EXACT))
        blink = fit.expression[[model.expression_index("eyeBlink_L"), model.expression_index("eyeBlink_R")]]
        if expect_closed:
            assert blink.min() > 0.7, blink
        else:
            assert blink.max() < 0.2, blink
    expr = _expr(model, {"jawOpen": 0.6})
    tg, _ = _targets(model, np.zeros(100), expr, pose, cam, n_dense=0)
    fit = fit_photo(model, tg, cam.intrinsics, PhotoFitConfig.load(**EXACT))
    assert abs(fit.expression[model.expression_index("jawOpen")] - 0.6) < 0.15


def test_contour_landmarks_slide(model):
    """Jaw targets on the silhouette of a face turned 40 degrees: with sliding the pose is right,
    and the chosen jaw vertices are not all the fixed ones."""
    pose = HeadPose.from_euler(40, 0, 0, [0, 0, 600])
    cam = photo_camera(640, 480)
    tg, _ = _targets(model, np.zeros(100), None, pose, cam, n_dense=0)
    fit = fit_photo(model, tg, cam.intrinsics, PhotoFitConfig.load(**EXACT))
    assert geodesic_distance_deg(fit.rotation, pose.R) < 1.0
    assert fit.contour_rms_px < 2.0
    assert len(fit.contour_vertices) > 0 and not np.isin(fit.contour_vertices, model.landmarks_68).all()


def test_occluding_contour_picks_silhouette_vertices(model):
    """On a face turned 45 degrees, the jaw landmarks' vertices (fit and output) are on the fitted
    face's occluding contour: seen edge-on, and those on the side turned away on the outline."""
    from facerecon.photo.fit import silhouette_landmarks

    pose = HeadPose.from_euler(45, 5, 0, [0, 0, 600])
    cam = photo_camera(640, 480)
    tg, vc = _targets(model, np.zeros(100), None, pose, cam, n_dense=0)
    cfg = PhotoFitConfig.load(**EXACT)
    assert cfg.contour_rule == "occluding"
    fit = fit_photo(model, tg, cam.intrinsics, cfg)
    assert geodesic_distance_deg(fit.rotation, pose.R) < 1.5
    v = fit.pose.apply(model.vertices(fit.identity, fit.expression).astype(np.float64))
    lm = silhouette_landmarks(model, fit, v, cfg, tg.points[:68])
    vn = vertex_normals(v, model.region_triangles("face"))
    cos = np.abs((vn[lm[:17]] * v[lm[:17]]).sum(1)) / np.linalg.norm(v[lm[:17]], axis=1)
    moved = lm[:17] != model.landmarks_68[:17]
    assert moved.sum() >= 10  # not ICT's fixed vertices
    assert np.median(cos[moved]) < cfg.contour_grazing
    # the side turned away (head +x turned from the camera: landmarks 9-16 at yaw > 0): on the image outline
    uv = cam.intrinsics.project(v[lm[:17]])
    assert np.abs(uv - tg.points[:17]).max() < 6.0  # px, within a vertex spacing of the true outline


def test_pnp_start_is_close(model):
    pose = HeadPose.from_euler(-20, 15, 10, [10, 20, 800])
    cam = photo_camera(1000, 800)
    p3 = model.neutral[model.landmarks_68[17:]].astype(np.float64)
    r, t = pnp_start(cam.intrinsics.project(pose.apply(p3)), p3, cam.intrinsics)
    assert geodesic_distance_deg(r, pose.R) < 2.0
    assert abs(t[2] - 800) < 60


def test_targets_ignore_missing_points(model):
    pts = np.zeros((10, 2))
    pts[3] = np.nan
    tg = LandmarkTargets.from_vertices(pts, model.landmarks_68[:10])
    assert tg.weight[3] == 0 and tg.weight.sum() == 9


def test_camera_focal_sources():
    k = photo_camera(640, 480).intrinsics
    assert k.fx == pytest.approx(focal_from_fov(640, 480, 60.0)) and k.cx == pytest.approx(319.5)
    assert np.degrees(2 * np.arctan(320 / k.fx)) == pytest.approx(60.0)
    assert photo_camera(640, 480, exif_focal_px=900.0).focal_source == "exif"
    cam = photo_camera(640, 480, focal_px=500.0, exif_focal_px=900.0)
    assert cam.intrinsics.fx == 500.0 and cam.focal_source == "--focal"
    with pytest.raises(ConfigError):
        photo_camera(640, 480, focal_px=-1.0)


def test_config_unknown_keys_are_errors(tmp_path):
    assert load_photo_config().camera.default_fov_deg == 60.0
    assert load_photo_config(overrides={"fit": {"iterations": 3}}).fit.iterations == 3
    with pytest.raises(ConfigError, match="did you mean 'fit.iterations'"):
        load_photo_config(overrides={"fit": {"iteratoins": 3}})
    bad = tmp_path / "p.toml"
    bad.write_text("[texure]\nsize = 8\n")
    with pytest.raises(ConfigError, match="did you mean 'texture'"):
        load_photo_config(bad)
    with pytest.raises(ConfigError):
        PhotoFitConfig.load(robust="cauchy")


def test_landmarks_facing_away_are_ignored(model):
    """On a face turned 55 degrees, landmarks on surface facing away (which a landmark model can
    only guess) are displaced; with hidden_weight 0 they do not pull the pose."""
    pose = HeadPose.from_euler(55, 0, 0, [0, 0, 600])
    cam = photo_camera(640, 480)
    tg, vc = _targets(model, np.zeros(100), None, pose, cam, n_dense=600, seed=5, jaw_on_silhouette=False)
    tg.contour[:] = False
    vn = HeadPose(pose.R, [0, 0, 0]).apply(model.neutral.astype(np.float64))  # rotated mean face: which side faces away
    from facerecon.facemodel import vertex_normals as _vertex_normals

    n = _vertex_normals(vn, model.region_triangles("face"))[tg.vertices[:, 0]]
    p = vc[tg.vertices[:, 0]]
    away = (n * p).sum(1) > 0
    assert 10 < away.sum() < len(away) // 2
    tg.points[away] += np.array([-25.0, 0.0])  # a guess biased towards a frontal face
    cfg = dict(EXACT, contour_weight=1.0)
    err = {}
    for w in (0.0, 1.0):
        fit = fit_photo(model, tg, cam.intrinsics, PhotoFitConfig.load(hidden_weight=w, **cfg))
        err[w] = geodesic_distance_deg(fit.rotation, pose.R)
    assert err[0.0] < 1.5 and err[0.0] < 0.5 * err[1.0], err


def test_occluding_pick_matches_brute_force():
    """The compiled candidate search picks what the definition says: the nearest edge-on candidate
    within reach, else the nearest candidate; the first of equals; -1 entries are no candidates."""
    from facerecon.photo.fit import occluding_pick

    rng = np.random.default_rng(3)
    nb, k, width = 300, 40, 50
    uv = rng.uniform(0, 100, (nb, 2)).round(0)  # integer pixels: ties happen
    facing = rng.uniform(-1, 1, nb)
    index = rng.integers(0, nb, (k, width))
    index[rng.random((k, width)) < 0.3] = -1
    index[0] = -1
    index[0, 7] = 5
    target = rng.uniform(0, 100, (k, 2)).round(0)
    for grazing, reach in ((0.25, 8.0), (0.5, 100.0), (0.0, 8.0)):
        got = occluding_pick(uv, facing, index, target, grazing, reach)
        for i in range(k):
            valid = index[i] >= 0
            d = np.where(valid, ((uv[np.maximum(index[i], 0)] - target[i]) ** 2).sum(1), np.inf)
            d_edge = np.where(np.abs(facing[np.maximum(index[i], 0)]) < grazing, d, np.inf)
            want = int(np.argmin(d_edge)) if d_edge.min() <= reach * reach else int(np.argmin(d))
            assert got[i] == want, (grazing, reach, i)
        assert got[0] == 7


def test_dense_weights_per_region(model):
    """fit_targets: the dense face-oval and inner points scaled apart, the 68 untouched."""
    from facerecon.photo.fit import fit_targets
    from facerecon.photo.fusion import FusionConfig
    from facerecon.photo.landmark_map import load_landmark_map

    lmap = load_landmark_map()
    pts = np.random.default_rng(0).uniform(100, 300, (478, 2))
    p68 = lmap.ibug68(pts[: len(lmap.ibug68_weights[0])])
    base = fit_targets(model, pts, lmap, "both", 1.0, ibug68=p68)
    inner = fit_targets(model, pts, lmap, "both", 1.0, ibug68=p68, dense_inner_weight=0.25)
    oval = fit_targets(model, pts, lmap, "both", 1.0, ibug68=p68, dense_contour_weight=0.0)
    n = len(base.points) - 68
    dense_oval = base.contour[:n]
    assert dense_oval.any() and (~dense_oval).any()
    assert np.allclose(inner.weight[:n][~dense_oval], 0.25 * base.weight[:n][~dense_oval])
    assert np.allclose(inner.weight[:n][dense_oval], base.weight[:n][dense_oval])
    assert np.allclose(inner.weight[n:], base.weight[n:]) and np.isclose(base.weight[n:].sum(), 1.0)
    assert np.all(oval.weight[:n][dense_oval] == 0) and np.isclose(oval.weight[:n].sum(), 1.0)
    assert FusionConfig().dense_inner_weight == 1.0
    with pytest.raises(ConfigError):
        FusionConfig(dense_inner_weight=-1.0)


def _depth_scene(model, yaw_true=50.0, yaw_seen=38.0):
    """The mean face turned ``yaw_true``: 2D points from the face turned only ``yaw_seen`` (a
    landmark model's bias towards a frontal face, as measured on real turned faces) and relative
    depths (px scale, f (Z - mean Z) / mean Z) from the true pose."""
    cam = photo_camera(640, 480)
    rng = np.random.default_rng(6)
    verts = rng.choice(model.region_vertices("narrow_face"), 400, replace=False)
    true = HeadPose.from_euler(yaw_true, 5, 0, [0, 0, 600])
    seen = HeadPose.from_euler(yaw_seen, 5, 0, [0, 0, 600])
    v = model.neutral.astype(np.float64)
    pts = cam.intrinsics.project(seen.apply(v)[verts])
    z = true.apply(v)[verts, 2]
    depth = cam.intrinsics.fx * (z - z.mean()) / z.mean()
    return cam, true, verts, pts, depth


def test_depth_rows_turn_a_biased_fit_back(model):
    """The landmark model's relative depth (Face Mesh's z) tells a turned face's yaw that its
    biased 2D points hide: with ``depth_weight`` the fit's yaw moves to the depth's."""
    cam, true, verts, pts, depth = _depth_scene(model)
    err = {}
    for w in (0.0, 1.0):
        tg = LandmarkTargets(pts, np.repeat(verts[:, None], 3, 1), np.tile([1.0, 0, 0], (len(verts), 1)), 1.0, False, depth)
        fit = fit_photo(model, tg, cam.intrinsics, PhotoFitConfig.load(depth_weight=w, depth_stage="joint", **EXACT))
        err[w] = geodesic_distance_deg(fit.rotation, true.R)
    assert err[0.0] > 8.0 and err[1.0] < 0.6 * err[0.0], err


def test_depth_rows_ignore_a_tilt_and_missing_depth(model):
    """``depth_free_tilt``: a lean of the depth along the face's vertical axis (Face Mesh's is ~10
    degrees of pitch) changes nothing; without depth (NaN, or 2D points only) the rows are off."""
    cam, true, verts, pts, depth = _depth_scene(model)
    bary = np.tile([1.0, 0, 0], (len(verts), 1))
    tri = np.repeat(verts[:, None], 3, 1)
    cfg = PhotoFitConfig.load(depth_weight=1.0, depth_stage="joint", **EXACT)
    plain = fit_photo(model, LandmarkTargets(pts, tri, bary, 1.0, False, depth), cam.intrinsics, cfg)
    leaning = depth + 0.2 * model.neutral[verts, 1] * cam.intrinsics.fx / 600.0  # z += 0.2 y, in px
    tilted = fit_photo(model, LandmarkTargets(pts, tri, bary, 1.0, False, leaning), cam.intrinsics, cfg)
    assert geodesic_distance_deg(plain.rotation, tilted.rotation) < 0.05
    none = fit_photo(model, LandmarkTargets(pts, tri, bary, 1.0, False, np.full(len(verts), np.nan)), cam.intrinsics, cfg)
    off = fit_photo(model, LandmarkTargets(pts, tri, bary, 1.0, False), cam.intrinsics, PhotoFitConfig.load(depth_weight=0.0, **EXACT))
    assert np.allclose(none.rotation, off.rotation) and np.allclose(none.translation, off.translation)
    with pytest.raises(ConfigError):
        PhotoFitConfig.load(depth_weight=-1.0)
    with pytest.raises(ConfigError):
        PhotoFitConfig.load(depth_scale=0.0)


def test_dense_targets_carry_face_mesh_depth(model):
    """``fit_targets`` keeps Face Mesh's z (a third column) as the dense points' depth; the 68 have none."""
    from facerecon.photo.fit import fit_targets
    from facerecon.photo.landmark_map import load_landmark_map

    lmap = load_landmark_map()
    pts = np.random.default_rng(0).uniform(100, 300, (468, 3))
    t = fit_targets(model, pts, lmap, "both")
    n_dense = len(np.asarray(lmap.mediapipe_index))
    assert np.array_equal(t.depth[:n_dense], pts[np.asarray(lmap.mediapipe_index), 2])
    assert np.isnan(t.depth[n_dense:]).all() and len(t.depth) == n_dense + 68
    assert np.isnan(fit_targets(model, pts[:, :2], lmap, "both").depth).all()
    assert np.array_equal(t.subset(t.weight > 0).depth, t.depth[t.weight > 0], equal_nan=True)


def test_iris_config_parses(tmp_path):
    from facerecon.photo.config import IrisSettings

    s = load_photo_config().iris
    assert isinstance(s, IrisSettings) and s.iris_mm == pytest.approx(11.7) and isinstance(s.enabled, bool)
    # the distance's relative sd: the population's iris spread and the model's error, independent
    assert s.sd_rel == pytest.approx(np.hypot(s.iris_sd_mm / s.iris_mm, s.model_sd))
    f = tmp_path / "p.toml"
    f.write_text("[iris]\nenabled = false\nmax_yaw_deg = 20\n")
    c = load_photo_config(f)
    assert c.iris.enabled is False and c.iris.max_yaw_deg == 20.0 and c.iris.iris_mm == s.iris_mm
    with pytest.raises(ConfigError, match="iris_mm"):
        load_photo_config(overrides={"iris": {"iris_nm": 11.0}})
    with pytest.raises(ConfigError, match="iris"):
        load_photo_config(overrides={"iris": {"iris_mm": -1.0}})


def _size_direction(model):
    """Unit identity direction that changes the outer-eye-corner distance most, and that distance's change per unit."""
    from facerecon.photo.fit import EYE_CORNERS_68

    vid = model.landmarks_68[list(EYE_CORNERS_68)]
    n0, b = model.torch_bases(vid)
    b = b.reshape(-1, 2, 3)[:100].double().numpy()
    n0 = n0.double().numpy()
    u = (n0[0] - n0[1]) / np.linalg.norm(n0[0] - n0[1])
    a = np.einsum("nc,c->n", b[:, 0] - b[:, 1], u)
    return a / np.linalg.norm(a), vid


def test_size_cue_moves_the_fitted_scale(model):
    """A face 1.5 prior sd larger than ICT's mean: the landmarks alone leave the fitted size near the
    prior and the head too near; a measured eye distance (the corneas' true depth) moves the size and
    the distance towards the truth, more the smaller its sd; a cue saying "nearer" shrinks the face."""
    from facerecon.photo.fit import SizeCue, cornea_vertices

    u, vid = _size_direction(model)
    ident = 1.5 * u
    pose = HeadPose.from_euler(15, -5, 0, [10, -5, 600])
    cam = photo_camera(640, 480)
    tg, vc = _targets(model, ident, None, pose, cam)
    z_true = vc[cornea_vertices(model), 2].mean()
    v_true = model.vertices(ident, None).astype(np.float64)
    size_true = np.linalg.norm(v_true[vid[0]] - v_true[vid[1]])

    def fitted(cue):
        f = fit_photo(model, tg, cam.intrinsics, size_cue=cue)
        v = model.vertices(f.identity, f.expression).astype(np.float64)
        return np.linalg.norm(v[vid[0]] - v[vid[1]]), f.translation[2], f

    s0, z0, f0 = fitted(None)
    s1, _, _ = fitted(SizeCue(z_true, 0.07))
    s2, z2, f2 = fitted(SizeCue(z_true, 0.02))
    s3, _, _ = fitted(SizeCue(z_true * 0.9, 0.02))
    assert f0.size_cue is None and f2.size_cue.eye_depth_mm == z_true
    assert size_true - s0 > 3.0  # the prior holds the size back (mm)
    assert s0 < s1 < s2 <= size_true + 1.0, (s0, s1, s2, size_true)
    assert abs(z2 - 600) < 0.4 * abs(z0 - 600), (z0, z2)  # the distance follows the size
    assert s3 < s0 - 2.0
    with pytest.raises(ValueError):
        SizeCue(float("nan"), 0.05)


def test_depth_stage_pose_keeps_the_2d_shape(model):
    """``depth_stage = "pose"``: the 2D fit, then pose-only steps with the depth rows: the face turns
    towards the depth's yaw while the identity and expression stay the 2D fit's exactly; below
    ``depth_turn_deg[0]`` of turn, or (``depth_turn_only``) when the depth says less turn than the
    2D points, the result is the 2D fit's."""
    tri_bary = None

    def fit(yaw_true, yaw_seen, **kw):
        nonlocal tri_bary
        cam, true, verts, pts, depth = _depth_scene(model, yaw_true, yaw_seen)
        tri_bary = (np.repeat(verts[:, None], 3, 1), np.tile([1.0, 0, 0], (len(verts), 1)))
        tg = LandmarkTargets(pts, *tri_bary, 1.0, False, depth)
        return fit_photo(model, tg, cam.intrinsics, PhotoFitConfig.load(**EXACT, **kw)), true

    pose = {"depth_weight": 3.0, "depth_stage": "pose", "depth_turn_deg": (0.0, 0.0), "depth_turn_only": False}
    plain, true = fit(50.0, 38.0, depth_weight=0.0)
    staged, _ = fit(50.0, 38.0, **pose)
    assert np.array_equal(staged.identity, plain.identity) and np.array_equal(staged.expression, plain.expression)
    e_plain, e_staged = (geodesic_distance_deg(f.rotation, true.R) for f in (plain, staged))
    assert e_plain > 8.0 and e_staged < 0.6 * e_plain, (e_plain, e_staged)
    gated, _ = fit(50.0, 38.0, **{**pose, "depth_turn_deg": (40.0, 45.0)})  # the 2D fit's turn (~38) is below the gate
    assert np.array_equal(gated.rotation, plain.rotation)
    less, _ = fit(25.0, 38.0, **pose)  # the depth says less turn than the 2D points
    less_2d, _ = fit(25.0, 38.0, depth_weight=0.0)
    one_sided, _ = fit(25.0, 38.0, **{**pose, "depth_turn_only": True})
    assert geodesic_distance_deg(less.rotation, less_2d.rotation) > 3.0
    assert np.array_equal(one_sided.rotation, less_2d.rotation)
    with pytest.raises(ConfigError):
        PhotoFitConfig.load(depth_stage="after")
    with pytest.raises(ConfigError):
        PhotoFitConfig.load(depth_turn_deg=(40.0, 30.0))
    # several photos (fit_photos): the same stage after the joint fit, the joint identity kept
    from facerecon.photo.fit import fit_photos

    cam, true, _, pts, depth = _depth_scene(model)
    tg = LandmarkTargets(pts, *tri_bary, 1.0, False, depth)
    start = [fit_photo(model, tg, cam.intrinsics, PhotoFitConfig.load(depth_weight=0.0, **EXACT))]
    j2d, jdepth = (fit_photos(model, [tg], [cam.intrinsics], PhotoFitConfig.load(**EXACT, **kw), starts=start)[0]
                   for kw in ({"depth_weight": 0.0}, pose))
    assert np.array_equal(jdepth.identity, j2d.identity) and jdepth.depth_iterations > 0
    assert geodesic_distance_deg(jdepth.rotation, true.R) < 0.6 * geodesic_distance_deg(j2d.rotation, true.R)
    cfg = PhotoFitConfig.load()
    rgbd = cfg.for_rgbd()  # --method rgbd's colour start: its own depth rows
    assert (rgbd.depth_weight, rgbd.depth_stage) == (cfg.depth_weight_rgbd, cfg.depth_stage_rgbd)
