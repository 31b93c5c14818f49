"""The person's face from a sweep: ``track``'s identity face against the fused reference cloud.

    .venv/bin/python benchmarks/track_shape.py --shared ../shared [--json OUT.json]

The 30 real TrueDepth frames of the mannequin (``data/real/truedepth-mannequin``) are tracked once;
the tracker's identity face (:meth:`facerecon.tracking.Tracker.identity_face`: the fused identity's
model face plus the out-of-span correction solved against the fused head surface) is compared with
``Expected.ply``, StandardCyborg's own fused cloud of the same head (45,428 surfels).

Registration (the mannequin's tools, :mod:`facerecon.realdata.mannequin`): the mannequin's head
frame in the cloud (``align_mannequin``) and each frame's reference pose (``mannequin_reference``)
give a start, ``cloud = A Ref_k^-1 P_k head`` (``P_k`` the tracked pose of the first tracked
frame); then each surface is registered on its own by rigid point-to-plane ICP of its
``narrow_face`` vertices onto the cloud (``CloudTarget.icp``, as NoW aligns rigidly).  Reported:
the median over the ``narrow_face`` vertices of the distance to the cloud, point-to-plane (to the
nearest surfel's plane; the cloud is a set of surfels ~1-2 mm apart) and point-to-point (to the
nearest surfel), for

* ``track identity (corrected)``: what ``track`` writes as identity.obj;
* ``track identity (model)``: the fused identity's model face (identity_model.obj, ``--detail off``);
* ``ICT mean face``: the model's mean face, registered the same way (the baseline);
* ``per-frame default`` / ``per-frame model``: each frame's ``reconstruct`` (corrected / model-only
  surface), median over the frames (the single-frame figure the fusion should beat).

``--james N`` adds the james scan's yaw sweeps of ``benchmarks/track_truth.py`` (N frames each, Kinect v1
sensor model, exact poses): the identity face, placed by the first tracked frame's pose, against the
scan with the repo's james measure (``evaluate.real.JamesShapeError.quick_median``: 9 landmarks + ICP,
median distance of the ``narrow_face`` vertices to the scan's face surface), beside the model-only
identity and the ICT mean face at the true pose.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def face_distances(cloud, face_v: np.ndarray, start, target) -> dict:
    """Register ``face_v`` ((n, 3), its own frame) onto the cloud from ``start`` and measure it."""
    pose = target.icp(face_v, start, iterations=30, max_dist=(10.0, 3.0))
    p = pose.apply(face_v)
    d, j = target.tree.query(p)
    plane = np.abs(np.einsum("ij,ij->i", p - cloud["points"][j], cloud["normals"][j]))
    return {"median_mm": float(np.median(plane)), "median_point_mm": float(np.median(d)),
            "p90_mm": float(np.percentile(plane, 90)), "within_1mm": float(np.mean(plane < 1.0))}


def james_rows(rec, args) -> dict:
    """The identity face of each james sweep against the scan (see the module docstring)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from track_truth import james_sweeps

    from facerecon.evaluate.real import JamesShapeError
    from facerecon.realdata import EVAL_POSE_KEY
    from facerecon.realdata.scan import load_james_scan
    from facerecon.tracking import Tracker

    model = rec.model
    scan = load_james_scan(args.shared / "data" / "real" / "scan-james", model=model)
    error = JamesShapeError(model, scan)
    out = {}
    for name, frames in james_sweeps(scan, args.james, args.seed).items():
        tracker = Tracker(rec)
        tracks = [tracker.update(f) for f in frames]
        k = next(i for i, t in enumerate(tracks) if t.tracked)
        face = tracker.identity_face()
        pose, ref = tracks[k].raw_pose, frames[k].meta[EVAL_POSE_KEY]
        out[name] = {"frames": len(frames), "tracked": int(sum(t.tracked for t in tracks)), "detail": face.detail,
                     "corrected_mm": error.quick_median(pose.apply(face.vertices_head), ref),
                     "model_mm": error.quick_median(pose.apply(face.model_vertices_head), ref),
                     "mean_face_mm": error.quick_median(ref.apply(model.reference_vertices.astype(np.float64)), ref),
                     "identity_face": face.stats()}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, required=True, help="The shared data folder (../shared).")
    ap.add_argument("--config", default="fast")
    ap.add_argument("--per-frame", action=argparse.BooleanOptionalAction, default=True, help="Also each frame's reconstruct.")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="Tracker setting section.key=value (configs/track.toml).")
    ap.add_argument("--james", type=int, default=0, help="Also the james scan's sweeps of track_truth.py, this many frames each.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from facerecon.geometry.pose import HeadPose
    from facerecon.io import read_depth
    from facerecon.metrics.align import CloudTarget
    from facerecon.pipeline import Reconstructor
    from facerecon.realdata import align_mannequin, load_mannequin_cloud, mannequin_reference
    from facerecon.realdata.mannequin import frame_files
    from facerecon.settings import parse_sets
    from facerecon.tracking import Tracker

    folder = args.shared / "data" / "real" / "truedepth-mannequin"
    rec = Reconstructor.from_pretrained(args.config)
    model = rec.model
    files = frame_files(folder)
    frames = [read_depth(p) for p in files]
    align = align_mannequin(folder, model=model)
    ref = mannequin_reference(folder, model=model)
    cloud = load_mannequin_cloud(folder)
    target = CloudTarget(cloud["points"], cloud["normals"])
    face = model.region_vertices("narrow_face")

    def start(k: int, pose: HeadPose) -> HeadPose:
        """head (tracked frame) -> cloud: camera <- head by ``pose``, mannequin head <- camera by Ref_k^-1, cloud <- mannequin head by A."""
        r_k = ref.pose(k)
        m = HeadPose(r_k.R.T @ pose.R, r_k.R.T @ (pose.t_mm - r_k.t_mm))
        return HeadPose(align.pose.R @ m.R, align.pose.R @ m.t_mm + align.pose.t_mm)

    tracker = Tracker(rec, parse_sets(args.sets, "track config") if args.sets else None)
    t0 = time.perf_counter()
    tracks, frozen, frozen_at, frozen_ms = [], None, None, None
    for k, f in enumerate(frames):
        tracks.append(tracker.update(f))
        if tracker.identity_frozen and frozen is None:  # the face as far as the track had seen it when the identity froze
            tf = time.perf_counter()
            frozen, frozen_at, frozen_ms = tracker.identity_face(), k, (time.perf_counter() - tf) * 1e3
    track_s = time.perf_counter() - t0 - (frozen_ms or 0.0) / 1e3
    k0 = next(i for i, t in enumerate(tracks) if t.tracked)
    t1 = time.perf_counter()
    ident = tracker.identity_face()
    fuse_ms = (time.perf_counter() - t1) * 1e3
    model_only = tracker.identity_face(correct=False)
    s0 = start(k0, tracks[k0].raw_pose)
    rows = {"track identity (corrected)": face_distances(cloud, ident.vertices_head[face], s0, target),
            "track identity (model)": face_distances(cloud, model_only.vertices_head[face], s0, target),
            "ICT mean face": face_distances(cloud, model.reference_vertices[face].astype(np.float64), s0, target)}
    if frozen is not None:
        rows["track identity at the freeze (corrected)"] = face_distances(cloud, frozen.vertices_head[face], s0, target)
    if args.per_frame:
        per = {"per-frame default": [], "per-frame model": []}
        for k, f in enumerate(frames):
            r = rec.reconstruct(f)
            if not r.face or r.vertices_head is None:
                continue
            s = start(k, r.pose)
            per["per-frame default"].append(face_distances(cloud, r.vertices_head[face], s, target))
            per["per-frame model"].append(face_distances(cloud, r.model_vertices_head[face], s, target))
        for name, lst in per.items():
            rows[name] = {key: float(np.median([x[key] for x in lst])) for key in lst[0]} | {"frames": len(lst)}
    james = james_rows(rec, args) if args.james > 0 else {}
    out = {"command": "python benchmarks/track_shape.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "identity_face": ident.stats(), "frozen_face": None if frozen is None else frozen.stats(),
           "tracked": int(sum(t.tracked for t in tracks)), "frames": len(frames),
           "track_seconds": round(track_s, 2), "identity_face_ms": round(fuse_ms, 1),
           "frozen_at": None if frozen_at is None else tracks[frozen_at].index,
           "identity_face_ms_at_freeze": None if frozen_ms is None else round(frozen_ms, 1), "rows": rows,
           "james": james}
    print(f"{out['tracked']} of {len(frames)} frames tracked; identity face: {json.dumps(ident.stats())}; solved in {fuse_ms:.0f} ms "
          f"(at the freeze, frame {out['frozen_at']}: {out['identity_face_ms_at_freeze']} ms)")
    print(f"\n{'face vs Expected.ply (narrow_face)':42s} {'median':>7s} {'p90':>6s} {'pt-pt':>6s} {'<1mm':>6s}  (mm; point-to-plane)")
    for name, r in rows.items():
        print(f"{name:42s} {r['median_mm']:7.3f} {r['p90_mm']:6.2f} {r['median_point_mm']:6.2f} {r['within_1mm']:6.1%}")
    for sweep, r in james.items():
        print(f"{sweep}: identity face vs the scan (median mm): corrected {r['corrected_mm']:.3f}, model {r['model_mm']:.3f}, "
              f"ICT mean face at the true pose {r['mean_face_mm']:.3f}; {r['tracked']} of {r['frames']} tracked; {r['detail']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
