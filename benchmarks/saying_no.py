"""Saying no: the face / no-face decision measured as a ROC -> docs/saying_no.json, docs/saying_no_roc.png.

    nice -n 10 .venv/bin/python benchmarks/saying_no.py --shared ../shared [--per-preset 12] [--per-kind 12]

Positives (a face is there): synthetic frames of the presets ``biwi``, ``facewarehouse``,
``ict3dhp``, ``truedepth`` through each preset's sensor model (seed 5150; held-out seeds,
never used in training), upside-down frames (the ``biwi`` scene rolled 180 degrees in the
image), and the real Kinect frames in ``kinect-pcl``: ``person.pcd`` and the six
``object_template_*.pcd`` face patches (unorganised clouds, splatted into a Kinect v1
image at their own camera-frame positions).  Negatives: the non-face objects of
:mod:`facerecon.evaluate.hostile` (sphere, box, random smooth blob, plane with blobs, the
back of a synthetic head), through the Kinect v1 sensor model.

The score of a frame is the returned confidence (default pipeline: networks, robust check
and refinement); a frame where the localiser finds no head scores 0.  This is the
**evaluation**: the threshold in use (``configs/check.toml`` ``[decision] face_threshold``)
and the confidence ramps are chosen on a separate calibration set
(``benchmarks/face_calibration.py``: other seeds, other frames), and the JSON reports TPR /
FPR at that threshold, the highest object score and the lowest face kept.  The ROC's own
best threshold (the highest TPR at which no non-face object is accepted; the largest
TPR - FPR when no threshold reaches FPR 0) is reported beside it, for information.
For labelled positives the rotation error of the returned pose is recorded, so the
calibration table says how often a confident answer is also a right one.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PRESETS = ("biwi", "facewarehouse", "ict3dhp", "truedepth")


def pcl_frames(shared: Path) -> list:
    from facerecon.geometry.camera import camera_preset
    from facerecon.io import read_depth
    from facerecon.io.frame import DepthFrame
    from facerecon.io.pcd import read_pcd_points
    from facerecon.geometry.raster import splat_points

    folder = shared / "data" / "real" / "kinect-pcl"
    out = [read_depth(folder / "person.pcd")]
    k = camera_preset("kinect-v1")
    for p in sorted(folder.glob("object_template_*.pcd")):
        pts = read_pcd_points(p)
        out.append(DepthFrame(splat_points(pts, k, radius_mm=3.0), k, str(p)))
    return out


def run(args) -> dict:
    from facerecon.errors import FaceReconError
    from facerecon.evaluate.hostile import NEGATIVE_KINDS, head_frame, negative_frame
    from facerecon.facemodel import FaceModel
    from facerecon.pipeline import Reconstructor
    from facerecon.realdata import EVAL_POSE_KEY
    from facerecon.geometry.rotations import geodesic_distance_deg

    model = FaceModel.load()
    rec = Reconstructor.from_pretrained("fast", model=model)
    rows: list[dict] = []

    def score(frame, label: int, group: str) -> None:
        t = time.perf_counter()
        row = {"group": group, "label": label, "source": frame.source}
        try:
            r = rec.reconstruct(frame)
            pr = r
            row.update(score=pr.confidence, face=pr.face, reason=pr.reason, returned=pr.chosen, **pr.check.to_json(),
                       landmark_fit=pr.landmark_fit, **pr.plausibility, network_residual_mm=pr.network_check.residual_mm)
            ref = frame.meta.get(EVAL_POSE_KEY)
            if ref is not None:
                row["error_deg"] = float(geodesic_distance_deg(r.pose.R, ref.R))
                row["network_error_deg"] = float(geodesic_distance_deg(pr.network_pose.R, ref.R))
        except FaceReconError as exc:
            row.update(score=0.0, face=False, reason=exc.one_line())
        row["seconds"] = time.perf_counter() - t
        rows.append(row)

    from facerecon.synth.generator import SynthGenerator

    for preset in PRESETS:
        gen = SynthGenerator(preset, seed=args.seed, model=model)
        for i in range(args.per_preset):
            fr = head_frame(gen, i, source=f"{preset} #{i}")
            score(fr, 1, f"face {preset}")
        print(preset, "done", flush=True)
    gen = SynthGenerator("biwi", seed=args.seed + 1, model=model)
    for i in range(args.upside_down):
        score(head_frame(gen, i, image_roll_deg=180.0, source=f"upside-down biwi #{i}"), 1, "face upside-down")
    for fr in pcl_frames(args.shared):
        score(fr, 1, "face real kinect-pcl")
    print("positives done", flush=True)
    for kind in NEGATIVE_KINDS:
        for i in range(args.per_kind):
            score(negative_frame(kind, args.seed + i, model=model), 0, f"object {kind}")
        print(kind, "done", flush=True)
    return {"rows": rows}


def roc(rows: list[dict]) -> dict:
    y = np.array([r["label"] for r in rows])
    s = np.array([r["score"] for r in rows])
    thr = np.unique(np.r_[s, 0.0, 1.01])[::-1]
    tpr = np.array([((s >= t) & (y == 1)).sum() / max((y == 1).sum(), 1) for t in thr])
    fpr = np.array([((s >= t) & (y == 0)).sum() / max((y == 0).sum(), 1) for t in thr])
    auc = float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else float(np.trapz(tpr, fpr))
    # a confident answer on a non-face is the worse error: the lowest threshold that accepts no
    # negative (the highest TPR at FPR 0); the largest TPR - FPR only when no threshold gets there
    zero = np.flatnonzero((fpr == 0) & (tpr > 0))
    j = tpr - fpr
    best = int(zero[-1]) if len(zero) else int(np.flatnonzero(j == j.max())[0])  # thresholds descend
    # the chosen threshold sits midway to the next lower score (not on a sample)
    t_best = float(thr[best]) if best + 1 >= len(thr) else float(0.5 * (thr[best] + thr[best + 1]))
    return {"auc": auc, "threshold": t_best, "tpr": float(tpr[best]), "fpr": float(fpr[best]),
            "curve": {"threshold": thr.tolist(), "tpr": tpr.tolist(), "fpr": fpr.tolist()}}


def summary(rows: list[dict], threshold: float, in_use: float) -> dict:
    out = {}
    for g in sorted({r["group"] for r in rows}):
        rs = [r for r in rows if r["group"] == g]
        sc = np.array([r["score"] for r in rs])
        d = {"n": len(rs), "label": rs[0]["label"], "median_confidence": float(np.median(sc)),
             "face_at_chosen": int((sc >= threshold).sum()), "face_in_use": int((sc >= in_use).sum())}
        errs = [r["error_deg"] for r in rs if "error_deg" in r]
        if errs:
            d["median_error_deg"] = float(np.median(errs))
            d["median_network_error_deg"] = float(np.median([r["network_error_deg"] for r in rs if "network_error_deg" in r]))
        out[g] = d
    # calibration on labelled positives: among confident answers, how many are right (< 15 deg)
    lab = [r for r in rows if "error_deg" in r]
    cal = []
    for lo, hi in ((0.0, 0.3), (0.3, 0.5), (0.5, 0.8), (0.8, 1.01)):
        b = [r for r in lab if lo <= r["score"] < hi]
        cal.append({"confidence": [lo, min(hi, 1.0)], "n": len(b),
                    "right_within_15deg": float(np.mean([r["error_deg"] < 15.0 for r in b])) if b else None})
    bad = [r for r in rows if r["score"] >= 0.5 and (r.get("trimmed_residual_mm") or 0) > 5.0]
    y = np.array([r["label"] for r in rows])
    s = np.array([r["score"] for r in rows])
    kept = s[(y == 1) & (s >= in_use)]
    at = {"threshold": in_use, "tpr": float((s[y == 1] >= in_use).mean()), "fpr": float((s[y == 0] >= in_use).mean()),
          "highest_object": float(s[y == 0].max()), "lowest_face_kept": float(kept.min()) if len(kept) else None,
          "faces_missed": [r["source"] for r in rows if r["label"] == 1 and r["score"] < in_use]}
    return {"groups": out, "calibration": cal, "confident_with_residual_over_5mm": len(bad), "in_use": at}


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = res["roc"]["curve"]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.5))
    ax[0].plot(c["fpr"], c["tpr"], "-o", ms=2)
    u = res["summary"]["in_use"]
    ax[0].plot([u["fpr"]], [u["tpr"]], "r*", ms=12, label=f"threshold in use {u['threshold']:.2f} (calibrated apart)")
    ax[0].plot([0, 1], [0, 1], ":", color="gray")
    ax[0].set_xlabel("false positive rate (non-face objects called a face)")
    ax[0].set_ylabel("true positive rate (faces kept)")
    ax[0].set_title(f"face / no-face ROC, AUC {res['roc']['auc']:.3f}")
    ax[0].legend(loc="lower right")
    groups = sorted({r["group"] for r in res["rows"]})
    for i, g in enumerate(groups):
        s = [r["score"] for r in res["rows"] if r["group"] == g]
        lab = res["rows"][[r["group"] for r in res["rows"]].index(g)]["label"]
        ax[1].scatter(s, np.full(len(s), i) + np.random.default_rng(i).uniform(-0.2, 0.2, len(s)), s=10,
                      color="tab:green" if lab else "tab:red")
    ax[1].axvline(u["threshold"], color="k", ls="--", lw=1)
    ax[1].set_yticks(range(len(groups)))
    ax[1].set_yticklabels(groups, fontsize=8)
    ax[1].set_xlabel("confidence")
    ax[1].set_title("confidence per group (green: face, red: object)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared", help="the shared data folder (../shared)")
    ap.add_argument("--per-preset", type=int, default=12)
    ap.add_argument("--upside-down", type=int, default=10)
    ap.add_argument("--per-kind", type=int, default=12)
    ap.add_argument("--seed", type=int, default=5150)
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    args = ap.parse_args(argv)
    import torch

    from facerecon.pipeline.check import check_config

    torch.set_num_threads(1)
    t0 = time.time()
    res = run(args)
    res["roc"] = roc(res["rows"])
    in_use = float(check_config().decision.face_threshold)
    res["threshold_in_use"] = in_use
    res["summary"] = summary(res["rows"], res["roc"]["threshold"], in_use)
    res["command"] = " ".join(["python", *sys.argv])
    res["seconds"] = round(time.time() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "saying_no.json").write_text(json.dumps(res, indent=1, default=float))
    plot(res, args.out / "saying_no_roc.png")
    r = res["roc"]
    u = res["summary"]["in_use"]
    print(f"AUC {r['auc']:.3f}; threshold in use {in_use} (calibrated on benchmarks/face_calibration.py): TPR {u['tpr']:.3f}, "
          f"FPR {u['fpr']:.3f}; highest object {u['highest_object']:.3f}, lowest face kept {u['lowest_face_kept']:.3f}; "
          f"this ROC's own threshold at FPR 0: {r['threshold']:.3f}: TPR {r['tpr']:.3f}, FPR {r['fpr']:.3f}")
    print("faces missed:", ", ".join(u["faces_missed"]))
    for g, d in res["summary"]["groups"].items():
        print(f"  {g:28s} n={d['n']:3d} median conf {d['median_confidence']:.2f}  face(in use) {d['face_in_use']}/{d['n']}"
              + (f"  median err {d['median_error_deg']:.1f} deg (networks {d['median_network_error_deg']:.1f})" if "median_error_deg" in d else ""))
    print("calibration:", res["summary"]["calibration"])
    print("confident (>= 0.5) with trimmed residual > 5 mm:", res["summary"]["confident_with_residual_over_5mm"])
    print("seconds", res["seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
