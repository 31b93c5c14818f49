"""The correction's solve, stopped where the shipped tolerances stop it vs converged: which is nearer the truth?

    python benchmarks/correction_converge.py --shared ../shared [--n 12] [--no-truedepth] \
        [--variant tolerance=1e-10,first_tolerance=1e-10 ...]

Sets: the 30 real TrueDepth frames against ``Expected.ply`` (point-to-plane to the nearest surfel, the registration
of ``benchmarks/track_shape.py``: rigid point-to-plane ICP from the reference poses), and the james renders of
``benchmarks/real_geometry.py`` (full head, ``biwi`` preset; face only, yaw +-50; ``--n`` each) against the scan.
Each frame is reconstructed once per variant (the shipped ``[correction]`` and each ``--variant`` of overrides; the
pose and the model fit do not depend on them).  Every variant's narrow face is placed on the truth with ONE
registration per frame, the shipped output's (james: 9 landmarks + ICP, as :meth:`JamesShapeError.quick_median`),
so the variants differ by the field only.  Per-vertex distance, median and rms over: the whole region, the vertices
the data decide (the shipped correction's confidence > 0.5), and the vertices some variant moved without the data
deciding them (confidence <= 0.5: unseen / weakly seen); beside it the ICT mean face and the model fit (each
registered on its own), each variant registered on its own (the figure the two benchmarks report), and the field's
rms difference to the shipped one.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def _parse(spec: str) -> dict:
    out = {}
    for kv in filter(None, spec.split(",")):
        k, v = kv.split("=")
        out[k] = type(getattr(__import__("facerecon.fitting.correction", fromlist=["x"]).CorrectionConfig(), k))(v)
    return out


def print_table(acc: dict, extra: dict) -> None:
    print("| surface | all: median / rms mm | conf > 0.5: median / rms | weak (conf <= 0.5, moved): median / rms | "
          + " | ".join(extra) + " |")
    print("| --- | --- | --- | --- |" + " --- |" * len(extra))
    for k, a in acc.items():
        cells = []
        for g in ("all", "data", "weak"):
            x = np.concatenate(a[g])
            cells.append(f"{np.median(x):.3f} / {np.sqrt(np.mean(x ** 2)):.3f}")
        cells += [col.get(k, "-") for col in extra.values()]
        print(f"| {k} | {' | '.join(cells)} |")


def truedepth_rows(rec, variants: dict, args, model, reg) -> None:
    """The real TrueDepth frames against Expected.ply (see the module docstring)."""
    from facerecon.geometry.pose import HeadPose
    from facerecon.io import read_depth
    from facerecon.metrics.align import CloudTarget
    from facerecon.realdata import align_mannequin, load_mannequin_cloud, mannequin_reference
    from facerecon.realdata.mannequin import frame_files

    folder = args.shared / "data" / "real" / "truedepth-mannequin"
    frames = [read_depth(p) for p in frame_files(folder)]
    align = align_mannequin(folder, model=model)
    ref = mannequin_reference(folder, model=model)
    cloud = load_mannequin_cloud(folder)
    target = CloudTarget(cloud["points"], cloud["normals"])
    shipped = variants["shipped"]
    acc = {k: {"all": [], "data": [], "weak": []} for k in ["ICT mean face", "model fit", *variants]}
    diff, own = {k: [] for k in variants}, {k: [] for k in variants}
    for k, f in enumerate(frames):
        outs = {}
        for name, cfg in variants.items():
            rec.pipeline.correction = cfg
            outs[name] = rec.reconstruct(f)
        rec.pipeline.correction = shipped
        r0 = outs["shipped"]
        if not r0.face or r0.correction is None or not r0.correction.on:
            continue
        r_k = ref.pose(k)
        m = HeadPose(r_k.R.T @ r0.pose.R, r_k.R.T @ (r0.pose.t_mm - r_k.t_mm))
        s = HeadPose(align.pose.R @ m.R, align.pose.R @ m.t_mm + align.pose.t_mm)
        def icp(v):
            return target.icp(v, s, iterations=30, max_dist=(10.0, 3.0))

        pose = icp(r0.vertices_head[reg])  # the shipped output's registration, for every variant
        conf = r0.correction.confidence[reg]
        moved = np.zeros(len(reg), bool)
        for r in outs.values():
            moved |= r.correction.normal_offsets[reg] != 0
        groups = {"all": np.ones(len(reg), bool), "data": conf > 0.5, "weak": moved & (conf <= 0.5)}
        mean_v = model.reference_vertices[reg].astype(np.float64)
        surfaces = {"ICT mean face": (mean_v, icp(mean_v)), "model fit": (r0.model_vertices_head[reg], icp(r0.model_vertices_head[reg])),
                    **{n: (r.vertices_head[reg], pose) for n, r in outs.items()}}

        def plane_distance(v, ps):
            p = ps.apply(v)
            _, j = target.tree.query(p)
            return np.abs(np.einsum("ij,ij->i", p - cloud["points"][j], cloud["normals"][j]))

        for n, (v, ps) in surfaces.items():
            plane = plane_distance(v, ps)
            for g, msk in groups.items():
                acc[n][g].append(plane[msk])
        for n, r in outs.items():
            own[n].append(float(np.median(plane_distance(r.vertices_head[reg], icp(r.vertices_head[reg])))))
        for n, r in outs.items():
            diff[n].append(np.sqrt(np.mean((r.correction.normal_offsets[reg] - r0.correction.normal_offsets[reg])[moved] ** 2)))
    print(f"\n## truedepth real (vs Expected.ply, point-to-plane): {len(acc['shipped']['all'])} of {len(frames)} frames with the correction on")
    print(f"weak vertices per frame (median): {int(np.median([len(x) for x in acc['shipped']['weak']]))}; "
          f"data-decided: {int(np.median([len(x) for x in acc['shipped']['data']]))}")
    print_table(acc, {"own-registration median (track_shape's)": {k: f"{np.median(v):.3f}" for k, v in own.items()},
                      "field rms vs shipped (moved vertices), median (max) over frames":
                      {n: f"{np.median(d):.3f} ({np.max(d):.3f})" for n, d in diff.items()}})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1616)
    ap.add_argument("--truedepth", action=argparse.BooleanOptionalAction, default=True,
                    help="also the 30 real TrueDepth frames against Expected.ply (per-vertex point-to-plane, track_shape's registration)")
    ap.add_argument("--variant", action="append", default=None,
                    help="comma-separated [correction] overrides, e.g. tolerance=1e-10,first_tolerance=1e-10 (repeatable)")
    args = ap.parse_args(argv)
    from facerecon.evaluate.real import JamesShapeError
    from facerecon.facemodel import ALIGNMENT_LANDMARKS_9
    from facerecon.geometry.transforms import fit_similarity
    from facerecon.metrics.align import icp_to_surface
    from facerecon.realdata import EVAL_POSE_KEY
    from facerecon.realdata.target import james_eval_frames
    from real_geometry import james_face_only, james_setup

    model, rec, scan = james_setup(args.shared)
    err = JamesShapeError(model, scan)
    surf = err._scan_surface
    reg = np.flatnonzero(err.region)
    icp_rows = np.sort(np.random.default_rng(0).choice(reg, size=min(1500, len(reg)), replace=False))
    shipped = rec.pipeline.correction
    variants = {"shipped": shipped}
    for spec in args.variant or ["tolerance=1e-10,first_tolerance=1e-10"]:
        variants[spec] = dataclasses.replace(shipped, **_parse(spec))
    sets = {"james full head": james_eval_frames(args.n, seed=args.seed, presets=("biwi",)),
            "james face only": james_face_only(scan, args.n, args.seed)}
    if args.truedepth:
        sets = {"truedepth real (vs Expected.ply)": None, **sets}
    t0 = time.time()
    for name, frames in sets.items():
        if frames is None:
            truedepth_rows(rec, variants, args, model, reg)
            continue
        if not frames:
            continue
        acc = {k: {"all": [], "data": [], "weak": []} for k in ["model fit", *variants]}
        own, meanf, diff = {k: [] for k in variants}, [], {k: [] for k in variants}
        for f in frames:
            ref = f.meta[EVAL_POSE_KEY]
            outs = {}
            for k, cfg in variants.items():
                rec.pipeline.correction = cfg
                r = rec.reconstruct(f)
                outs[k] = r
            rec.pipeline.correction = shipped
            r0 = outs["shipped"]
            if r0.correction is None or not r0.correction.on:
                continue
            def align(v_cam):  # quick_median's alignment (9 landmarks + ICP)
                mv = ref.inverse_apply(v_cam)
                xf = fit_similarity(mv[model.alignment_landmarks], scan.landmarks_68[list(ALIGNMENT_LANDMARKS_9)].astype(np.float64))
                return icp_to_surface(mv[icp_rows], surf, init=xf, max_iter=15).transform

            xf0 = align(r0.vertices_camera)  # the shipped output's, for every variant (they differ by the field only)
            conf = r0.correction.confidence[reg]
            moved = np.zeros(len(reg), bool)
            for r in outs.values():
                moved |= r.correction.normal_offsets[reg] != 0
            groups = {"all": np.ones(len(reg), bool), "data": conf > 0.5, "weak": moved & (conf <= 0.5)}
            surfaces = {"model fit": r0.model_vertices_camera, **{k: r.vertices_camera for k, r in outs.items()}}
            for k, v in surfaces.items():
                xf = align(v) if k == "model fit" else xf0
                dist = surf.query(xf.apply(ref.inverse_apply(v)[reg])).distances
                for g, m in groups.items():
                    acc[k][g].append(dist[m])
            for k, r in outs.items():
                own[k].append(err.quick_median(r.vertices_camera, ref))
                diff[k].append(np.sqrt(np.mean((r.correction.normal_offsets[reg] - r0.correction.normal_offsets[reg])[moved] ** 2)))
            ref_v = model.reference_vertices.astype(np.float64)
            meanf.append(err.quick_median(ref_v @ ref.R.T + ref.t_mm, ref))
        print(f"\n## {name}: {len(meanf)} of {len(frames)} frames with the correction on ({time.time() - t0:.0f} s)")
        print(f"mean face at the true pose (own alignment), median of the frames' medians: {np.median(meanf):.3f} mm")
        nw = [len(x) for x in acc["shipped"]["weak"]]
        print(f"weak vertices per frame (median): {int(np.median(nw))}; data-decided: {int(np.median([len(x) for x in acc['shipped']['data']]))}")
        print_table(acc, {"own-alignment median (the benchmark's)": {k: f"{np.median(v):.3f}" for k, v in own.items()},
                          "field rms vs shipped (moved vertices), median (max) over frames":
                          {k: f"{np.median(d):.3f} ({np.max(d):.3f})" for k, d in diff.items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
