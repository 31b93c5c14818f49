"""Head localisation: real frames (Kinect person, sideways TrueDepth mannequin), rejections,
and small analytic scenes (ellipsoid person, boxes, walls) rendered here."""
from __future__ import annotations

import numpy as np
import pytest

from facerecon.geometry.camera import camera_preset
from facerecon.errors import NoFaceFoundError
from facerecon.io.frame import DepthFrame
from facerecon.preprocess import HeadLocation, localize_head

KINECT = camera_preset("kinect-v1")
TRUEDEPTH = camera_preset("truedepth-320x240")


# ---- a tiny analytic depth renderer ---------------------------------------------------


def _rays(k):
    u, v = np.meshgrid(np.arange(k.width), np.arange(k.height))
    return np.stack([(u - k.cx) / k.fx, (v - k.cy) / k.fy, np.ones(u.shape)], -1)


def _ellipsoid(d, c, radii, r=np.eye(3)):
    dl = (d @ r) / radii
    cl = (r.T @ c) / radii
    a = (dl * dl).sum(-1)
    b = -2 * (dl @ cl)
    cc = cl @ cl - 1
    disc = b * b - 4 * a * cc
    t = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), np.inf)
    return np.where(t > 0, t, np.inf)


def _box(d, c, half, r=np.eye(3)):
    dl = d @ r
    cl = r.T @ c
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (cl - half) / dl
        t2 = (cl + half) / dl
    tn = np.nanmax(np.minimum(t1, t2), -1)
    tf = np.nanmin(np.maximum(t1, t2), -1)
    return np.where((tn <= tf) & (tn > 0), tn, np.inf)


def _plane(d, n, off):
    with np.errstate(divide="ignore", invalid="ignore"):
        t = off / (d @ n)
    return np.where(t > 0, t, np.inf)


def _render(k, parts, source):
    d = _rays(k)
    t = np.full(d.shape[:2], np.inf)
    for p in parts:
        t = np.minimum(t, p(d))
    return DepthFrame(np.where(np.isfinite(t), t, 0.0).astype(np.float32), k, source)


def _rotz(deg):
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


def _person(k, head_c, roll_deg=0.0, wall_z=None, noise=0.0, seed=0):
    """Ellipsoid head (150 x 210 x 190 mm) + neck + torso; roll about the camera axis."""
    r = _rotz(roll_deg)
    hc = np.asarray(head_c, float)
    parts = [
        lambda d: _ellipsoid(d, hc, np.array([75.0, 105.0, 95.0]), r),
        lambda d: _ellipsoid(d, hc + r @ np.array([0, 130.0, 15]), np.array([50.0, 60.0, 50.0]), r),
        lambda d: _ellipsoid(d, hc + r @ np.array([0, 420.0, 40]), np.array([210.0, 260.0, 120.0]), r),
    ]
    if wall_z is not None:
        parts.append(lambda d: _plane(d, np.array([0, 0, 1.0]), wall_z))
    f = _render(k, parts, f"synthetic person roll {roll_deg}")
    if noise:
        z = f.depth_mm
        rng = np.random.default_rng(seed)
        z = np.where(z > 0, z + rng.normal(size=z.shape) * noise * (z / 1000.0) ** 2, 0)
        f = DepthFrame(z.astype(np.float32), k, f.source)
    return f


# ---- real frames ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def person_frame(real_dir):
    from facerecon.io import read_depth

    return read_depth(real_dir / "kinect-pcl" / "person.pcd")


@pytest.fixture(scope="module")
def truedepth_frames(real_dir):
    from facerecon.io import read_depth

    paths = sorted((real_dir / "truedepth-mannequin" / "DepthFrames").glob("frame-*.ply"))
    assert len(paths) == 30
    return [read_depth(p) for p in paths]


def test_person_pcd_head_found(person_frame):
    loc = localize_head(person_frame)
    assert isinstance(loc, HeadLocation)
    # checked visually: the head occupies about x 200..350, y 165..310 (640x480), depth ~0.75-0.8 m
    x0, y0, x1, y1 = loc.box
    assert 180 <= x0 <= 240 and 300 <= x1 <= 360, loc.box
    assert 150 <= y0 <= 200 and 280 <= y1 <= 340, loc.box
    u, v = person_frame.intrinsics.project(loc.center_mm)
    assert x0 <= u <= x1 and y0 <= v <= y1
    assert 740 <= loc.surface_mm[2] <= 800
    assert 790 <= loc.center_mm[2] <= 870  # surface + ~60 mm along the ray
    assert 100 <= x1 - x0 <= 200 and 100 <= y1 - y0 <= 200
    assert loc.confidence > 0.5
    assert loc.body_direction is not None and loc.body_direction[1] > 0.8  # body below the head


def test_truedepth_sideways_head_found_in_all_frames(truedepth_frames):
    centres = []
    for f in truedepth_frames:
        loc = localize_head(f)  # raises if not found
        centres.append(loc.center_mm)
        assert 250 <= loc.surface_mm[2] <= 360, (f.source, loc.surface_mm)
        x0, y0, x1, y1 = loc.box
        # the mannequin head fills most of the sideways frame: ~190 px wide
        assert 60 <= x0 <= 110 and 260 <= x1 <= 320, (f.source, loc.box)
        if loc.body_direction is not None:  # neck/shoulders to the image right (phone sideways)
            assert loc.body_direction[0] > 0.8, (f.source, loc.body_direction)
    c = np.array(centres)
    # the head moves smoothly through the sequence: no jumps between frames 3 apart
    assert np.linalg.norm(np.diff(c, axis=0), axis=1).max() < 30.0


# ---- rejections -------------------------------------------------------------------------


def test_rejects_empty_frame():
    f = DepthFrame(np.zeros((480, 640), np.float32), KINECT, "empty.png")
    with pytest.raises(NoFaceFoundError, match="empty.png"):
        localize_head(f)


def test_rejects_flat_and_slanted_wall():
    for n in ([0, 0, 1.0], [0.5, 0.2, 1.0]):
        f = _render(KINECT, [lambda d, n=n: _plane(d, np.array(n), 1500.0)], "wall.npy")
        with pytest.raises(NoFaceFoundError) as ei:
            localize_head(f)
        msg = str(ei.value)
        assert msg.startswith("wall.npy: no head found") and "\n" not in msg


@pytest.mark.parametrize(
    "half, rot",
    [((250, 200, 200.0), _rotz(20)), ((80, 100, 90.0), np.eye(3)),
     ((80, 100, 90.0), np.array([[0.7071, 0, 0.7071], [0, 1, 0], [-0.7071, 0, 0.7071]]))],
    ids=["big-box", "head-size-box", "head-size-box-edge-on"],
)
def test_rejects_boxes(half, rot):
    f = _render(
        KINECT,
        [lambda d: _box(d, np.array([0, 0, 1000.0]), np.array(half), rot), lambda d: _plane(d, np.array([0, 0, 1.0]), 2500)],
        "box",
    )
    with pytest.raises(NoFaceFoundError, match="box: no head found"):
        localize_head(f)


# ---- synthetic people -----------------------------------------------------------------


@pytest.mark.parametrize(
    "cam, head, roll, wall",
    [
        (KINECT, (0, -50, 800), 0, 2500),
        (KINECT, (100, -100, 2000), 0, 3500),
        (KINECT, (100, -200, 3500), 0, None),
        (KINECT, (0, 0, 600), 45, 1200),
        (KINECT, (0, -50, 900), 0, 1100),  # wall 100 mm behind the back of the head
        (TRUEDEPTH, (0, 0, 380), 90, None),  # phone sideways: body to the image left
        (TRUEDEPTH, (0, 0, 380), -90, 1500),  # ... and to the right
    ],
)
def test_synthetic_person_head_found(cam, head, roll, wall):
    f = _person(cam, head, roll, wall, noise=1.4)
    loc = localize_head(f)
    # head ellipsoid centre: the estimate lies within ~40 mm (surface centroid + 60 mm)
    assert np.linalg.norm(loc.center_mm - np.asarray(head, float)) < 45.0, loc.center_mm
    assert loc.body_direction is not None
    expect = _rotz(roll)[:2, :2] @ np.array([0.0, 1.0])  # image direction of the torso
    assert float(loc.body_direction @ expect) > 0.9


def test_hint_box_restricts_candidates():
    f = _person(KINECT, (0, -50, 800), 0, 2500)
    loc = localize_head(f)
    assert localize_head(f, hint_box=loc.box).center_mm == pytest.approx(loc.center_mm, abs=5.0)
    with pytest.raises(NoFaceFoundError):
        localize_head(f, hint_box=(0, 0, 40, 40))  # a corner with only the wall


def test_to_dict_is_json_ready():
    import json

    loc = localize_head(_person(KINECT, (0, -50, 800), 0, 2500))
    d = json.loads(json.dumps(loc.to_dict()))
    assert set(d) >= {"center_mm", "box", "score", "confidence"}


def test_person_pcd_rotated_sideways(person_frame):
    """The same frame rotated by 90 degrees (camera held sideways): same head, body to the side."""
    from facerecon.geometry.camera import Intrinsics

    k = person_frame.intrinsics
    h, w = person_frame.depth_mm.shape
    ref = localize_head(person_frame).center_mm
    d = np.rot90(person_frame.depth_mm).copy()  # counter-clockwise: (X, Y) -> (Y, -X)
    loc = localize_head(DepthFrame(d, Intrinsics(k.fy, k.fx, k.cy, w - 1 - k.cx, h, w), "rot90"))
    np.testing.assert_allclose(loc.center_mm, [ref[1], -ref[0], ref[2]], atol=15.0)
    assert loc.body_direction[0] > 0.8  # the body now lies to the image right


def test_face_like_fold_is_a_head_but_box_edge_is_not():
    """A head that is flat from brow to chin (an elongated, nearly cylindrical front, the
    hair cut away) is a rounded fold and is found; a box edge facing the camera is a
    crease and is not (test_rejects_boxes)."""
    k = KINECT
    hc = np.array([0.0, -50.0, 800.0])
    parts = [
        lambda d: _ellipsoid(d, hc, np.array([75.0, 400.0, 95.0])),  # flat along y
        lambda d: _ellipsoid(d, hc + np.array([0, 420.0, 40]), np.array([210.0, 260.0, 120.0])),
        lambda d: _plane(d, np.array([0, 0, 1.0]), 2500),
    ]
    f = _render(k, parts, "fold")
    loc = localize_head(f)
    assert abs(loc.center_mm[0]) < 30.0


def test_face_only_surface_is_found_by_the_face_only_pass():
    """Issue 24: a face without hair, neck or shoulders (the ``biwi-faces`` preset's face-only
    surfaces) covers only ~35-50 % of the head box; the face-only pass (step 3b) finds it, and
    without that pass the same frames are refused.  A full head is found by the first pass."""
    import dataclasses

    from facerecon.preprocess.localize import DEFAULT_PARAMS
    from facerecon.synth.generator import SynthGenerator

    gen = SynthGenerator("biwi-faces", seed=4242)
    no_pass = dataclasses.replace(DEFAULT_PARAMS, face_only_min_fill=DEFAULT_PARAMS.min_fill, face_only_max_ring=DEFAULT_PARAMS.max_ring)
    for i in (14, 21):  # face-only surfaces: fill 0.34-0.35, nothing around them
        s = gen.generate(i)
        f = DepthFrame(s.depth_mm, s.intrinsics, f"biwi-faces #{i}")
        loc = localize_head(f)
        assert DEFAULT_PARAMS.face_only_min_fill <= loc.diagnostics["fill"] < DEFAULT_PARAMS.min_fill
        assert np.linalg.norm(loc.center_mm - s.labels["translation_mm"]) < 100.0
        with pytest.raises(NoFaceFoundError, match="sticking out"):
            localize_head(f, params=no_pass)
    full = _person(KINECT, (0, -50, 800), 0, 2500)
    assert localize_head(full).diagnostics["fill"] >= DEFAULT_PARAMS.min_fill


@pytest.mark.parametrize("slope", [1.0, 2.0])
def test_head_joined_to_a_slanted_wall_is_found_by_the_depth_ring(slope):
    """Issue 24: a person whose torso touches a slanted wall is one blob with the wall, and the
    wall 200-400 mm behind the head fills the 2D ring: no head before.  Step 3c counts the ring
    only in front of the outer box's far side and starts the head surface from the candidate's
    depth: the head is found (centre within 45 mm)."""
    head = np.array([0.0, -50.0, 800.0])
    f = _person(KINECT, head, 0, None)
    wall = _plane(_rays(KINECT), np.array([-slope, 0.0, 1.0]), 840.0 + 200.0 * slope)  # z = 840 + slope (x + 200)
    z = np.where(f.depth_mm > 0, np.minimum(f.depth_mm, wall), wall)
    frame = DepthFrame(np.where(np.isfinite(z), z, 0.0).astype(np.float32), KINECT, "person on a slanted wall")
    loc = localize_head(frame)
    assert np.linalg.norm(loc.center_mm - head) < 45.0, loc.center_mm
    assert loc.diagnostics["ring"] <= 0.55


def test_label4_is_scipys_label_and_find_objects():
    """The localiser's own 4-connected labelling (no scipy.ndimage on a frame's path) returns scipy's labels, count
    and boxes bit for bit: random masks of every density and shape, stripes, a checkerboard, empty and full."""
    from scipy import ndimage

    from facerecon.preprocess.localize import _blob_box, _label4

    rng = np.random.default_rng(3)
    masks = [rng.random((h, w)) < d for h, w in ((96, 128), (107, 80), (1, 50), (50, 1), (7, 9)) for d in (0.2, 0.5, 0.6, 0.8)]
    masks += [np.zeros((20, 30), bool), np.ones((20, 30), bool), (np.indices((31, 33)).sum(0) % 2 == 0),
              np.kron(rng.random((12, 16)) < 0.5, np.ones((8, 8), bool)), np.tile([True, False], (40, 20)),
              np.tile([[True], [False]], (20, 40))]
    spiral = np.zeros((41, 41), bool)  # one long component that turns back on itself (unions across rows)
    for k in range(0, 20, 2):
        spiral[k, k:41 - k] = spiral[40 - k, k:41 - k] = spiral[k:41 - k, k] = spiral[k + 2:41 - k, 40 - k] = True
    masks.append(spiral)
    for m in masks:
        want, n_want = ndimage.label(m)
        got, n_got, box = _label4(m)
        assert n_got == n_want and got.dtype == want.dtype and np.array_equal(got, want), m.shape
        assert [_blob_box(box, b) for b in range(1, n_got + 1)] == ndimage.find_objects(want)


def test_compiled_edges_and_integral_images_are_the_numpy_forms():
    """``_edge_keep`` (the occlusion-edge test) and ``_blob_integral`` (a blob's integral image) give the NumPy
    forms' arrays exactly: random depth images with holes at several depth scales, random label images."""
    from facerecon.preprocess.localize import DEFAULT_PARAMS as p
    from facerecon.preprocess.localize import _blob_integral, _blob_sums, _edge_keep

    rng = np.random.default_rng(5)
    for k in range(60):
        z = (300.0 + rng.random((37, 53)) * (50.0, 500.0, 3000.0)[k % 3]).astype(np.float32)
        z[rng.random(z.shape) < 0.3] = 0.0
        valid = z > 0
        keep = valid.copy()
        for a, b in (((slice(None), slice(1, None)), (slice(None), slice(None, -1))), ((slice(1, None),), (slice(None, -1),))):
            thr = p.edge_abs_mm + p.edge_rel * np.minimum(z[a], z[b])
            d = z[a] - z[b]
            both = valid[a] & valid[b]
            keep[a] &= ~(both & (d > thr))
            keep[b] &= ~(both & (-d > thr))
        assert np.array_equal(_edge_keep(z, np.float32(p.edge_abs_mm), np.float32(p.edge_rel)), keep)
        labels = rng.integers(0, 4, (int(rng.integers(1, 40)), int(rng.integers(1, 40)))).astype(np.int32)
        want = np.zeros((labels.shape[0] + 1, labels.shape[1] + 1), np.float32)
        np.cumsum(np.cumsum(labels == 2, 0, dtype=np.float32), 1, out=want[1:, 1:])
        got = _blob_integral(labels, 2)
        assert got.dtype == np.float32 and np.array_equal(got, want)
        zl = z[: labels.shape[0], : labels.shape[1]]
        zl = np.pad(zl, ((0, labels.shape[0] - zl.shape[0]), (0, labels.shape[1] - zl.shape[1])))
        w = (zl / 1234.5) ** 2
        area, count, zsum = _blob_sums(labels, w, zl, 3)
        lab = labels.ravel()
        assert area.tobytes() == np.bincount(lab, weights=w.ravel(), minlength=4).tobytes()
        assert np.array_equal(count, np.bincount(lab, minlength=4))
        assert zsum.tobytes() == np.bincount(lab, weights=zl.ravel(), minlength=4).tobytes()
