"""Numbers of every per-frame path on fixed real frames, to prove a refactor changed nothing.

    .venv/bin/python benchmarks/snapshot.py write OUT.json [--shared ../shared] [--n 8]
    .venv/bin/python benchmarks/snapshot.py compare A.json B.json

Frames: the 30 real TrueDepth frames (phone held sideways: the turned-crop path), ``person.pcd``
and the six Kinect face patches, ``--n`` face-only renders of the james scan (the grid search).
Paths: the default output (``Reconstructor.reconstruct``), the bare networks (``refine=0``),
``PoseEstimator.estimate``, the fitting baseline on three frames, and ``track`` over the
TrueDepth sweep.  ``compare`` prints the largest difference per quantity and exits 1 when a
pose differs by more than 1e-6 (rotation entries, mm) or a decision differs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _row(pose, conf, face, path, ident=None, expr=None) -> dict:
    return {"R": None if pose is None else pose.R.tolist(), "t": None if pose is None else pose.t_mm.tolist(),
            "confidence": float(conf), "face": bool(face), "path": str(path),
            "identity": None if ident is None else np.asarray(ident, float).tolist(),
            "expression": None if expr is None else np.asarray(expr, float).tolist()}


def write(out: Path, shared: Path, n: int) -> None:
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from real_geometry import james_face_only, pcl_frames, truedepth

    from facerecon.facemodel import FaceModel
    from facerecon.pipeline import PoseEstimator, Reconstructor
    from facerecon.pipeline.fit import FittingReconstructor
    from facerecon.realdata.scan import load_james_scan
    from facerecon.tracking import Tracker

    torch.set_num_threads(1)
    real = shared / "data" / "real"
    os.environ["FACERECON_REAL_DATA"] = str(real)
    model = FaceModel.load()
    td, _ = truedepth(real / "truedepth-mannequin", model)
    frames = td + list(pcl_frames(shared)) + james_face_only(load_james_scan(real / "scan-james", model=model), n, 1616)
    rec = Reconstructor.from_pretrained("fast", model=model)
    est = PoseEstimator.from_pretrained("fast", model=model)
    doc: dict = {}

    def path_of(pr):
        return pr.chosen  # the path in words

    for name, run in (("default", lambda f: rec.reconstruct(f)), ("networks", lambda f: rec.reconstruct(f, refine=0))):
        rows = []
        for f in frames:
            r = run(f)
            rows.append(_row(r.pose, r.confidence, r.face, path_of(r), r.identity, r.expression))
        doc[name] = rows
    rows = []
    for f in frames:
        r = est.estimate(f)
        rows.append(_row(r.pose, r.confidence, r.face, path_of(r)))
    doc["pose_estimator"] = rows
    fit = FittingReconstructor(model)
    rows = []
    for f in (td[0], td[15], frames[len(td)]):
        r = fit.reconstruct(f)
        rows.append(_row(r.pose, r.confidence, r.face, path_of(r), r.identity, r.expression))
    doc["fit"] = rows
    tracker = Tracker(rec)
    rows = []
    for f in td:
        t = tracker.update(f)
        rows.append(_row(t.pose, t.confidence, t.tracked, t.status, None, t.expression))
    doc["track"] = rows
    out.write_text(json.dumps(doc))
    print(f"wrote {out}: " + ", ".join(f"{k} {len(v)}" for k, v in doc.items()))


def compare(a: Path, b: Path) -> int:
    da, db = json.loads(a.read_text()), json.loads(b.read_text())
    bad = 0
    for key in da:
        ra, rb = da[key], db.get(key, [])
        worst = {"R": 0.0, "t": 0.0, "confidence": 0.0, "identity": 0.0, "expression": 0.0}
        decisions = paths = 0
        for x, y in zip(ra, rb):
            for q in worst:
                if x[q] is None or y[q] is None:
                    if (x[q] is None) != (y[q] is None):
                        worst[q] = float("inf")
                    continue
                worst[q] = max(worst[q], float(np.max(np.abs(np.asarray(x[q]) - np.asarray(y[q])))))
            decisions += x["face"] != y["face"]
            paths += x["path"] != y["path"]
        ok = worst["R"] <= 1e-6 and worst["t"] <= 1e-6 and decisions == 0 and len(ra) == len(rb)
        bad += not ok
        print(f"{key:15s} {len(ra):3d} frames  max |dR| {worst['R']:.2e}  |dt| {worst['t']:.2e} mm  |dconf| {worst['confidence']:.2e}  "
              f"|did| {worst['identity']:.2e}  |dexpr| {worst['expression']:.2e}  decisions differ {decisions}  path labels differ {paths}"
              f"  {'OK' if ok else 'DIFFERENT'}")
    return 1 if bad else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("out", type=Path)
    w.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    w.add_argument("--n", type=int, default=8)
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "write":
        write(args.out, args.shared, args.n)
        return 0
    return compare(args.a, args.b)


if __name__ == "__main__":
    raise SystemExit(main())
