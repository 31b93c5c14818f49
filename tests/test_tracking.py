"""facerecon.tracking: sources, the SE(3) One-Euro filter, the tracker on the real TrueDepth sweep
(warm start, identity frozen, recovery after a gap of empty frames, accuracy against the IMU),
the CSV/JSON schema and the CLI."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from facerecon.geometry.camera import Intrinsics
from facerecon.errors import ConfigError, InputFileError
from facerecon.io.frame import DepthFrame
from facerecon.geometry.pose import HeadPose
from facerecon.geometry.rotations import geodesic_distance_deg
from facerecon.tracking import OneEuroParams, SE3OneEuroFilter, open_sequence, track_config
from facerecon.export.pose_json import validate
from facerecon.export.track import TRACK_CSV_COLUMNS, write_track_outputs

REPO = Path(__file__).resolve().parents[1]
GAP = 3  # empty frames inserted after frame GAP_AT
GAP_AT = 12


def _filter() -> SE3OneEuroFilter:
    return SE3OneEuroFilter(OneEuroParams(1.0, 0.05), OneEuroParams(1.0, 0.02))


def test_one_euro_se3_smooths_a_still_head_and_follows_a_turn():
    rng = np.random.default_rng(0)
    f = _filter()
    truth = HeadPose.from_euler(10.0, -5.0, 3.0, [0.0, 0.0, 600.0])
    raw, filt = [], []
    for _ in range(60):  # still head, 1 degree / 1 mm of noise at 30 frames/s
        noisy = HeadPose.from_euler(*(np.array([10.0, -5.0, 3.0]) + rng.normal(0, 1.0, 3)), truth.t_mm + rng.normal(0, 1.0, 3))
        raw.append(noisy)
        filt.append(f.update(noisy, 1 / 30))

    def jitter(poses):  # frame-to-frame angular change on a still head
        return np.mean([float(geodesic_distance_deg(a.R, b.R)) for a, b in zip(poses[20:], poses[21:])])

    def error(poses):
        return np.mean([float(geodesic_distance_deg(p.R, truth.R)) for p in poses[20:]])

    assert jitter(filt) < 0.4 * jitter(raw) and error(filt) < 0.7 * error(raw), (jitter(filt), jitter(raw), error(filt), error(raw))
    f.reset()
    lags = []
    for k in range(45):  # a fast turn: 120 deg/s of yaw, noiseless
        p = HeadPose.from_euler(4.0 * k, 0.0, 0.0, [0.0, 0.0, 600.0])
        lags.append(float(geodesic_distance_deg(f.update(p, 1 / 30).R, p.R)))
    assert max(lags[15:]) < 4.0  # one frame of motion is 4 deg: the filter lags by less than a frame


def test_sources_folder_npz_iterable(tmp_path):
    from facerecon.io.images import write_depth_png

    k = Intrinsics(300.0, 300.0, 40.0, 30.0, 80, 60)
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in (10, 2, 1):
        write_depth_png(folder / f"f-{i}.png", np.full((60, 80), 500.0 + i, np.float32))
    seq = open_sequence(folder, fps=10.0, prepare=lambda fr: fr.with_intrinsics(k))
    items = list(seq)
    assert [it.name for it in items] == ["f-1.png", "f-2.png", "f-10.png"]  # natural order
    assert [it.time_s for it in items] == [0.0, 0.1, 0.2] and items[2].frame.depth_mm[0, 0] == 510.0
    np.savez(tmp_path / "stack.npz", depth=np.stack([np.full((60, 80), 0.5), np.full((60, 80), 0.6)]), unit="m",
             intrinsics=np.array([300.0, 300.0, 40.0, 30.0]), timestamps=np.array([5.0, 5.04]))
    items = list(open_sequence(tmp_path / "stack.npz"))
    assert len(items) == 2 and items[1].time_s == 5.04 and items[1].frame.intrinsics.fx == 300.0
    assert items[1].frame.depth_mm[0, 0] == pytest.approx(600.0)
    items = list(open_sequence([DepthFrame(np.zeros((60, 80), np.float32), k, "a"), None]))
    assert items[1].frame is None and items[1].error
    np.savez(tmp_path / "bad.npz", depth=np.zeros((60, 80)))
    with pytest.raises(InputFileError, match="bad.npz"):
        open_sequence(tmp_path / "bad.npz")
    with pytest.raises(ConfigError, match="did you mean"):
        track_config({"warm_start": {"check_evry": 3}})
    # the counts that were literals in the tracker are keys, reached by `facerecon track --set`
    from facerecon.cli.track import _parse_sets

    cfg = track_config(_parse_sets(["loss.min_valid_pixels=50", "surface.model_iterations=1", "refine.expression_min_pairs=30"]))
    assert (cfg.loss.min_valid_pixels, cfg.surface.model_iterations, cfg.refine.expression_min_pairs) == (50, 1, 30)
    with pytest.raises(ConfigError, match="did you mean 'refine.after_expression_iterations'"):
        track_config(_parse_sets(["refine.after_expression_iteration=1"]))


@pytest.fixture(scope="module")
def truedepth(real_dir):
    from facerecon.io import read_depth
    from facerecon.tracking.sources import folder_files

    return [read_depth(p) for p in folder_files(real_dir / "truedepth-mannequin" / "DepthFrames")]


@pytest.fixture(scope="module")
def tracked(truedepth, ict_archive):
    """The 30 real frames with a gap of empty frames inserted, tracked once."""
    from facerecon.tracking import Tracker

    tracker = Tracker.from_pretrained("fast")
    empty = DepthFrame(np.zeros_like(truedepth[0].depth_mm), truedepth[0].intrinsics, "empty")
    seq = truedepth[:GAP_AT] + [empty] * GAP + truedepth[GAP_AT:]
    tracks = []
    identities = []
    for f in seq:
        tracks.append(tracker.update(f))
        identities.append(None if tracker.identity is None else tracker.identity.copy())
    return tracker, tracks, identities


def test_warm_start_after_the_first_frame(tracked):
    _, tracks, _ = tracked
    assert tracks[0].localised and not tracks[0].warm_start and tracks[0].status == "init"
    for t in tracks[1:GAP_AT]:
        assert t.tracked and t.warm_start and not t.localised, (t.index, t.status, t.message)


def test_recovery_after_a_gap_of_empty_frames(tracked):
    _, tracks, _ = tracked
    gap = tracks[GAP_AT:GAP_AT + GAP]
    assert all(not t.tracked and t.status == "lost" for t in gap)
    back = tracks[GAP_AT + GAP]
    assert back.tracked and back.recovered and back.localised
    assert all(t.tracked and t.status == "tracked" for t in tracks[GAP_AT + GAP + 1:])


def test_start_and_restart_are_the_single_frame_default(tracked, truedepth):
    """Issue 25: the first frame and the frame after a loss are what `reconstruct` returns on that frame
    (the whole default pipeline: check, fallback, refinement, joint pose + identity), not the networks' pose."""

    tracker, tracks, _ = tracked
    for t, frame in ((tracks[0], truedepth[0]), (tracks[GAP_AT + GAP], truedepth[GAP_AT])):
        ref = tracker.rec.reconstruct(frame)
        assert t.status in ("init", "recovered") and ref.face
        # the matrices themselves: the geodesic angle of a rotation with itself is acos's rounding (up to ~2e-6 deg)
        assert np.abs(t.raw_pose.R - ref.pose.R).max() < 1e-12 and np.allclose(t.raw_pose.t_mm, ref.pose.t_mm, atol=1e-6)
        assert t.confidence == pytest.approx(ref.confidence)


def test_tracked_frames_watch_with_the_crop_alone(tracked, truedepth, monkeypatch):
    """Once the identity froze, a tracked frame's pose network runs on the crop alone ([refine]
    network_flip = false: it only watches the track); the track is the same as with the flip."""
    from facerecon.tracking import Tracker

    est = tracked[0].est
    inner = est.network_poses
    asked = []
    monkeypatch.setattr(est, "network_poses", lambda pim, flip=None: asked.append(flip) or inner(pim, flip=flip))
    runs = {}
    for flip in (False, True):
        asked.clear()
        t = Tracker(tracked[0].rec, {"refine": {"network_flip": flip}})
        tracks = [t.update(f) for f in truedepth[:11]]
        frozen = next(k for k, tr in enumerate(tracks) if tr.identity_frozen)
        assert frozen < 10 and asked == ([] if flip else [False] * (10 - frozen)), (frozen, asked)
        runs[flip] = tracks
    for a, b in zip(runs[False], runs[True]):
        assert a.tracked and b.tracked and np.array_equal(a.raw_pose.R, b.raw_pose.R) and a.confidence == b.confidence


def test_identity_frozen_and_stable(tracked):
    tracker, tracks, identities = tracked
    assert tracker.identity_frozen
    first = next(i for i, t in enumerate(tracks) if t.identity_frozen)
    assert first <= 16
    for ident in identities[first:]:
        np.testing.assert_array_equal(ident, tracker.identity)  # one person keeps one shape
    assert np.linalg.norm(tracker.identity) < 30  # a plausible face (ICT identity weights are N(0, 1))


def test_track_follows_the_imu_on_the_real_sweep(tracked, truedepth, real_dir):
    sys.path.insert(0, str(REPO / "benchmarks"))
    from track_eval import pair_errors, slerp_attitudes

    from facerecon.tracking.sources import frame_time

    _, tracks, _ = tracked
    real = [t for t in tracks if t.source != "empty"]
    assert len(real) == len(truedepth) == 30
    att = slerp_attitudes(real_dir / "truedepth-mannequin" / "DepthFrames" / "motion-data.json",
                          np.array([frame_time(f) for f in truedepth]))
    rot = np.array([t.pose.R for t in real])
    e = pair_errors(rot, att, np.array([t.tracked for t in real]))
    # measured 0.6 / 2.0 deg; the networks alone give ~5 / 12 deg (benchmarks/track_eval.py)
    assert e["frames"] == 30 and e["median_deg"] < 1.5 and e["p90_deg"] < 4.0, e


def test_outputs_schema(tracked, tmp_path):
    tracker, tracks, _ = tracked
    paths = write_track_outputs(tmp_path / "out", tracks, tracker, sequence="truedepth+gap", seconds=1.0)
    with open(paths["csv"], newline="") as fh:
        rows = list(csv.reader(fh))
    names = tracker.model.expression_names
    assert tuple(rows[0][:len(TRACK_CSV_COLUMNS)]) == TRACK_CSV_COLUMNS
    assert rows[0][len(TRACK_CSV_COLUMNS):][:len(names)] == [f"expr_{n}" for n in names]
    assert len(rows) == len(tracks) + 1 and all(len(r) == len(rows[0]) for r in rows)
    lost = rows[1 + GAP_AT]
    assert lost[TRACK_CSV_COLUMNS.index("status")] == "lost" and lost[TRACK_CSV_COLUMNS.index("qw")] == ""
    q = np.array([float(v) for v in rows[1][TRACK_CSV_COLUMNS.index("qw"):TRACK_CSV_COLUMNS.index("qw") + 4]])
    assert abs(np.linalg.norm(q) - 1) < 1e-4 and q[0] >= 0
    doc = json.loads(paths["json"].read_text())
    assert doc["schema_version"] == 2 and doc["summary"]["frames"] == len(tracks) and doc["identity_frozen"]
    for fr in doc["frames"]:
        validate(fr)  # every frame is a pose document of the one schema
    fr = doc["frames"][GAP_AT + GAP]
    assert fr["track"]["recovered"] and fr["face"] and fr["method"] == "track"
    assert set(fr["track"]["raw_pose"]) == {"quaternion_wxyz", "translation_mm", "euler_deg", "rotation_matrix"}
    assert set(fr["track"]) >= {"time_s", "status", "raw_pose", "localised", "warm_start"}
    assert len(fr["expression"]) == tracker.model.n_expression
    assert paths["identity"].stat().st_size > 1000 and paths["plot"].read_bytes()[:4] == b"\x89PNG"
    # the real sweep: the fused surface corrects the written face (benchmarks/track_shape.py measures it)
    assert doc["identity_face"]["detail"] == "on" and paths["identity_model"].is_file() and paths["identity_glb"].is_file()


def test_cli_track_on_a_stacked_npz(truedepth, tmp_path, ict_archive):
    from facerecon.cli import main

    frames = truedepth[:4]
    k = frames[0].intrinsics
    np.savez(tmp_path / "seq.npz", depth=np.stack([f.depth_mm for f in frames]), intrinsics=np.array([k.fx, k.fy, k.cx, k.cy]),
             timestamps=np.arange(4) / 10.0)
    rc = main(["track", str(tmp_path / "seq.npz"), "-o", str(tmp_path / "out"), "--no-plot", "--set", "warm_start.check_every=2",
               "--detail", "off", "--rig", "ict"])
    assert rc == 0
    doc = json.loads((tmp_path / "out" / "track.json").read_text())
    assert doc["identity_face"]["detail"] == "off" and (tmp_path / "out" / "identity.glb").is_file()
    assert not (tmp_path / "out" / "identity_model.obj").exists()  # --detail off: identity.* is the model face
    assert doc["summary"]["tracked"] == 4 and [f["track"]["localised"] for f in doc["frames"]] == [True, False, True, False]
    assert main(["track", str(tmp_path / "seq.npz"), "-o", str(tmp_path / "o2"), "--set", "warm_start.nope=1"]) == 2  # a usage error, before any model loads
    assert main(["track", str(tmp_path / "seq.npz"), "-o", str(tmp_path / "o3"), "--detail", "maybe"]) == 2
