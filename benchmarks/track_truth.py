"""`track` against the per-frame default output in absolute pose, on sweeps with known truth.

    .venv/bin/python benchmarks/track_truth.py --shared ../shared [--json OUT.json]

Sweeps (30 frames each, a head turning in yaw at a fixed distance; Kinect v1 sensor model, seeded):

* ``james full head``: the james scan with its back-of-head cap, neck and torso proxy and a wall
  (:func:`facerecon.realdata.scan.render_scan`), yaw +40 -> -40 degrees, pitch 5, 800 mm;
* ``james face only``: the scan's face triangles alone (no hair, neck or wall), yaw +40 -> -20;
* ``truedepth``: the 30 real TrueDepth frames against the registration reference poses
  (``realdata.mannequin_reference``; the reference is a fit, not ground truth).

Methods: ``reconstruct`` frame by frame (the default output), and ``track`` started through the
default output (``[warm_start] start_with_default = true``, the shipped setting) and from the
networks' pose (``false``, the behaviour before).  Reported per method: frames with a pose, median
and p90 rotation error (degrees, over the frames with a pose), frames over 10 degrees.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _sweep_poses(yaws, pitch=5.0, z=800.0):
    from facerecon.geometry.pose import HeadPose

    return [HeadPose.from_euler(float(a), pitch, 0.0, (0.0, 0.0, z)) for a in yaws]


def james_sweeps(scan, n: int, seed: int) -> dict:
    from facerecon.geometry.camera import camera_preset
    from facerecon.io.frame import DepthFrame
    from facerecon.realdata import EVAL_POSE_KEY
    from facerecon.realdata.scan import render_scan, render_soup
    from facerecon.synth.presets import load_sensor
    from facerecon.synth.sensors import apply_sensor

    k = camera_preset("kinect-v1")
    full = []
    for i, pose in enumerate(_sweep_poses(np.linspace(40.0, -40.0, n))):
        rng = np.random.default_rng(np.random.SeedSequence([seed, i, 1]))
        f = render_scan(scan, pose, k, "kinect-v1", rng, background="wall")
        full.append(DepthFrame(f.depth_mm, k, f"james full head sweep #{i}", meta={EVAL_POSE_KEY: pose}))
    face = []
    tris = scan.faces[scan.face_triangle].astype(np.int32)
    for i, pose in enumerate(_sweep_poses(np.linspace(40.0, -20.0, n))):
        rng = np.random.default_rng(np.random.SeedSequence([seed, i, 2]))
        depth, seg, cos = render_soup(pose.apply(scan.vertices), tris, np.ones(len(tris), np.uint8), k)
        d, _ = apply_sensor(load_sensor("kinect-v1"), depth, k, rng, segment=seg, cos_view=cos)
        face.append(DepthFrame(d, k, f"james face only sweep #{i}", meta={EVAL_POSE_KEY: pose}))
    return {"james full head": full, "james face only": face}


def errors(poses, frames) -> dict:
    from facerecon.geometry.rotations import geodesic_distance_deg
    from facerecon.realdata import EVAL_POSE_KEY

    e = [float(geodesic_distance_deg(p.R, f.meta[EVAL_POSE_KEY].R)) for p, f in zip(poses, frames) if p is not None]
    return {"frames": len(frames), "with_pose": len(e), "median_deg": round(float(np.median(e)), 2) if e else None,
            "p90_deg": round(float(np.percentile(e, 90)), 2) if e else None, "over_10_deg": int(sum(x > 10 for x in e))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--seed", type=int, default=2525)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from real_geometry import truedepth

    from facerecon.facemodel import FaceModel
    from facerecon.pipeline import Reconstructor
    from facerecon.realdata.scan import load_james_scan
    from facerecon.tracking import Tracker

    torch.set_num_threads(1)
    real = args.shared / "data" / "real"
    os.environ["FACERECON_REAL_DATA"] = str(real)
    model = FaceModel.load()
    rec = Reconstructor.from_pretrained("fast", model=model)
    sets = james_sweeps(load_james_scan(real / "scan-james", model=model), args.n, args.seed)
    sets["truedepth"] = truedepth(real / "truedepth-mannequin", model)[0]
    out: dict = {"command": "python benchmarks/track_truth.py " + " ".join(argv or sys.argv[1:]), "sets": {}}
    for name, frames in sets.items():
        rows = {}
        per_frame = [rec.reconstruct(f) for f in frames]
        rows["reconstruct (per frame)"] = errors([r.pose if r.face else None for r in per_frame], frames)
        for label, start in (("track, started through the default", True), ("track, started from the networks", False)):
            tracker = Tracker(rec, {"warm_start": {"start_with_default": start}})
            tracks = [tracker.update(f, i / 30.0) for i, f in enumerate(frames)]
            rows[label] = errors([t.pose if t.tracked else None for t in tracks], frames)
            rows[label]["raw_median_deg"] = errors([t.raw_pose if t.tracked else None for t in tracks], frames)["median_deg"]
        out["sets"][name] = rows
        for m, r in rows.items():
            print(f"{name:16s} {m:36s} {r['with_pose']:2d}/{r['frames']} median {r['median_deg']} p90 {r['p90_deg']} >10: {r['over_10_deg']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
