"""Does base mesh + displacement map get closer to the true surface than the base alone? -> docs/detail.{json,md}

    nice -n 10 .venv/bin/python benchmarks/detail_james.py --shared ../shared [--n 12] [--out docs]

Frames: the james renders of ``benchmarks/real_geometry.py`` (``james full head``: the scan with
head / neck / torso proxies and a wall, ``biwi`` preset poses; ``james face only``: the scan's face
triangles alone), Kinect v1 sensor model; truth is the scan at the render's pose.

Base mesh: the default output of ``reconstruct`` (the model fit; any ICT-topology mesh works, e.g. a
corrected one).  For every frame, on the measured texels of the ``narrow_face`` region (a seeded
subsample of ``--points``), the median distance to the scan's face surface of

* ``base``: the texel points of the base mesh (camera frame, as reconstructed);
* ``detail``: the same texels displaced along the base normal by the map;
* ``measured``: the frame's own depth points on the face (the floor: what the sensor saw),

in the camera frame (the scan placed at the true pose: no alignment), and ``base_aligned`` /
``detail_aligned`` after the 9-landmark + ICP alignment of the base mesh to the scan that
``real_geometry.py``'s shape column uses (the same transform moves both).  Also: coverage, and the
cost per frame of ``displacement_map`` and ``normal_map`` at several sizes (median of 3 runs after a
warm-up; wall clock and this process's CPU time, which a loaded machine inflates less).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--n", type=int, default=12, help="frames per set")
    ap.add_argument("--seed", type=int, default=1616)
    ap.add_argument("--points", type=int, default=20000, help="texels per frame measured against the scan")
    ap.add_argument("--sizes", default="256,512,1024", help="map sizes timed")
    ap.add_argument("--size", type=int, default=512, help="map size of the accuracy columns")
    ap.add_argument("--smooth", default="0,1,2", help="smooth_px values compared (accuracy)")
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    ap.add_argument("--figure", action="store_true", help="also write OUT/detail_james.png (first face-only frame)")
    args = ap.parse_args(argv)
    from real_geometry import james_face_only, james_setup

    from facerecon.facemodel import ALIGNMENT_LANDMARKS_9, EVAL_REGION
    from facerecon.fitting.detail import DetailConfig, displacement_map, normal_map, texel_frame
    from facerecon.geometry.raster import render_mesh
    from facerecon.geometry.transforms import fit_similarity
    from facerecon.metrics.align import icp_to_surface
    from facerecon.metrics.surface import SurfaceIndex
    from facerecon.realdata import EVAL_POSE_KEY
    from facerecon.realdata.target import james_eval_frames

    model, rec, scan = james_setup(args.shared)
    surface = SurfaceIndex(scan.vertices.astype(np.float64), scan.faces[scan.face_triangle])
    scan_lm = scan.landmarks_68[list(ALIGNMENT_LANDMARKS_9)].astype(np.float64)
    region = model.region_mask(EVAL_REGION)
    reg_rows = np.flatnonzero(region)
    icp_rows = np.sort(np.random.default_rng(0).choice(reg_rows, size=1500, replace=False))
    eval_tris = model.region_triangles(EVAL_REGION)
    sizes = [int(s) for s in args.sizes.split(",")]
    smooths = [float(s) for s in args.smooth.split(",")]
    sets = {"james full head": james_eval_frames(args.n, seed=args.seed, presets=("biwi",)),
            "james face only": james_face_only(scan, args.n, args.seed)}
    t_start = time.time()
    results: dict = {"command": " ".join(["python", *sys.argv]), "load_average": os.getloadavg(), "sets": {}}
    for name, frames in sets.items():
        rows = []
        for f in frames:
            ref = f.meta[EVAL_POSE_KEY]
            r = rec.reconstruct(f)
            base = np.asarray(r.vertices_head, np.float64)
            row = {"source": f.source}
            # the shape column's alignment (real_geometry.py / JamesShapeError.quick_median), in the scan's frame
            v_scan = ref.inverse_apply(r.pose.apply(base))
            xf = fit_similarity(v_scan[model.alignment_landmarks], scan_lm)
            xf = icp_to_surface(v_scan[icp_rows], surface, init=xf, max_iter=15).transform
            # the floor: the frame's depth points where the base's narrow face is rendered
            rr = render_mesh(r.pose.apply(base), eval_tris, f.intrinsics, barycentrics=False)
            face_px = (rr.depth > 0) & (f.depth_mm > 0)
            meas = f.intrinsics.depth_to_points(f.depth_mm)[face_px]
            row["measured_mm"] = float(np.median(surface.query(ref.inverse_apply(meas)).distances)) if len(meas) else None
            for sm in smooths:
                cfg = DetailConfig.load({"size": args.size, "smooth_px": sm})
                disp = displacement_map(model, base, r.pose, f, cfg)
                trow, tcol, p, n = texel_frame(model, base, args.size)
                corners = np.asarray(model.triangles)[_texel_triangles(model, args.size)]
                in_region = region[corners].all(1)
                ok = disp.mask[trow, tcol] & in_region
                idx = np.flatnonzero(ok)
                if len(idx) > args.points:
                    idx = np.sort(np.random.default_rng(1).choice(idx, args.points, replace=False))
                dd = disp.displacement[trow[idx], tcol[idx]].astype(np.float64)[:, None]
                pb = ref.inverse_apply(r.pose.apply(p[idx]))
                pd = ref.inverse_apply(r.pose.apply(p[idx] + dd * n[idx]))
                key = f"smooth_{sm:g}"
                dist_b, dist_d = surface.query(pb).distances, surface.query(pd).distances
                if args.figure and name == "james face only" and not rows and sm == 1.0:
                    _figure(args.out / "detail_james.png", f, disp, normal_map(model, base, disp), dist_b, dist_d)
                row[key] = {
                    "coverage": disp.stats["coverage"], "texels": int(ok.sum()),
                    "base_mm": float(np.median(dist_b)),
                    "detail_mm": float(np.median(dist_d)),
                    "base_aligned_mm": float(np.median(surface.query(xf.apply(pb)).distances)),
                    "detail_aligned_mm": float(np.median(surface.query(xf.apply(pd)).distances)),
                }
            # cost per frame (default settings but the size), median of 3 runs after a warm-up
            row["ms"] = {}
            for s in sizes:
                cfg = DetailConfig.load({"size": s})
                disp = displacement_map(model, base, r.pose, f, cfg)
                normal_map(model, base, disp)
                tm, tn, cm, cn = [], [], [], []
                for _ in range(3):
                    t0, c0 = time.perf_counter(), time.process_time()
                    disp = displacement_map(model, base, r.pose, f, cfg)
                    t1, c1 = time.perf_counter(), time.process_time()
                    normal_map(model, base, disp)
                    tm.append((t1 - t0) * 1e3)
                    tn.append((time.perf_counter() - t1) * 1e3)
                    cm.append((c1 - c0) * 1e3)
                    cn.append((time.process_time() - c1) * 1e3)
                row["ms"][str(s)] = {"displacement_map": float(np.median(tm)), "normal_map": float(np.median(tn)),
                                     "displacement_map_cpu": float(np.median(cm)), "normal_map_cpu": float(np.median(cn))}
            rows.append(row)
            print(name, f.source, json.dumps({k: v for k, v in row.items() if k != "source"}, default=float)[:400], flush=True)
        results["sets"][name] = {"rows": rows, "summary": _summary(rows, smooths, sizes)}
    results["seconds"] = round(time.time() - t_start, 1)
    results["load_average_end"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "detail.json").write_text(json.dumps(results, indent=1, default=float))
    print(_table(results, smooths, sizes))
    return 0


def _figure(path, frame, disp, normals, dist_base, dist_detail) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from facerecon.fileutil import atomic_path

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.8))
    d = np.where(disp.mask, disp.displacement, np.nan)
    im = ax[0].imshow(d, cmap="RdBu_r", vmin=-3, vmax=3)
    fig.colorbar(im, ax=ax[0], fraction=0.046, label="mm (+ = out of the head)")
    ax[0].set_title(f"displacement over the model fit ({disp.size}^2, coverage {disp.stats['coverage']:.2f})", fontsize=9)
    ax[1].imshow(normals)
    ax[1].set_title("tangent-space normal map (glTF: +X right, +Y up)", fontsize=9)
    bins = np.linspace(0, 4, 81)
    ax[2].hist(dist_base, bins, alpha=0.6, label=f"model fit, median {np.median(dist_base):.2f} mm")
    ax[2].hist(dist_detail, bins, alpha=0.6, label=f"+ displacement, median {np.median(dist_detail):.2f} mm")
    ax[2].set_xlabel("distance to the james scan (mm)")
    ax[2].legend(fontsize=8)
    ax[2].set_title(frame.source, fontsize=9)
    for a in ax[:2]:
        a.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def _texel_triangles(model, size):
    from facerecon.facemodel.uv import uv_raster

    return uv_raster(model, size).triangle


def _summary(rows, smooths, sizes) -> dict:
    out = {"measured_mm": float(np.median([r["measured_mm"] for r in rows if r["measured_mm"] is not None]))}
    for sm in smooths:
        key = f"smooth_{sm:g}"
        out[key] = {m: float(np.median([r[key][m] for r in rows]))
                    for m in ("coverage", "base_mm", "detail_mm", "base_aligned_mm", "detail_aligned_mm")}
        out[key]["frames_closer"] = int(sum(r[key]["detail_mm"] < r[key]["base_mm"] for r in rows))
    out["ms"] = {str(s): {k: float(np.median([r["ms"][str(s)][k] for r in rows]))
                          for k in ("displacement_map", "normal_map", "displacement_map_cpu", "normal_map_cpu")} for s in sizes}
    out["n"] = len(rows)
    return out


def _table(results, smooths, sizes) -> str:
    lines = ["| set | smooth_px | coverage | base (mm) | + detail (mm) | frames closer | base aligned | + detail aligned | measured points (floor) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["sets"].items():
        s = r["summary"]
        for sm in smooths:
            k = s[f"smooth_{sm:g}"]
            lines.append(f"| {name} | {sm:g} | {k['coverage']:.2f} | {k['base_mm']:.2f} | {k['detail_mm']:.2f} | "
                         f"{k['frames_closer']}/{s['n']} | {k['base_aligned_mm']:.2f} | {k['detail_aligned_mm']:.2f} | {s['measured_mm']:.2f} |")
    lines += ["", "| set | size | displacement_map wall (CPU) ms | normal_map wall (CPU) ms |", "|---|---|---|---|"]
    for name, r in results["sets"].items():
        for sz in sizes:
            m = r["summary"]["ms"][str(sz)]
            lines.append(f"| {name} | {sz} | {m['displacement_map']:.1f} ({m['displacement_map_cpu']:.1f}) | "
                         f"{m['normal_map']:.1f} ({m['normal_map_cpu']:.1f}) |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
