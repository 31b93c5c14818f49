"""Which low-pass of the displacement gives the normal map closest to the true surface normal? -> stdout table

    nice -n 10 .venv/bin/python benchmarks/detail_normals.py --shared ../shared [--n 6] [--scales 0,1,2,4]

For every measured texel the normal map (glTF tangent space) is decoded as a viewer does
(x T + y B + z N with the tangents the GLB carries) and compared with the true surface normal;
the median angle (degrees) over the measured texels, per frame, then the median over frames, of

* ``base``: the base mesh's smooth normal alone (a flat map);
* ``px=k``: the map with ``normal_smooth_px = k`` (0 = the unfiltered derivative).

Sets: ``synthetic <sensor>``: a random ICT identity (0.5 sigma) with 40 Gaussian bumps and dents
(0.5-1.5 mm, sigma 3-8 mm: detail all over the skin that the base does not have) rendered through the ``truedepth`` (truedepth-320x240 camera, 350-450 mm)
and ``kinect-v1`` (600-800 mm) sensor models; base = the mean face at the true pose, truth = the
true face's (smooth, vertex) normal at the same texel.  ``james face only``: the renders of
``benchmarks/detail_james.py`` (Kinect v1 sensor model); base = reconstruct's model fit, truth = the
scan's smooth normal (mean of the vertex normals of the scan triangle closest to the displaced texel point) (scan at the render's true pose).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def decoded_normals(model, v, nm):
    """(rows, cols, decoded unit normals (N, 3), base unit normals (N, 3), points (N, 3), corners, bary), head frame."""
    from facerecon.fitting.detail import decode_normal_map

    rows, cols, dec, n, corners, bary = decode_normal_map(model, v, nm)
    return rows, cols, dec, n, np.einsum("nk,nkc->nc", bary, v[corners]), corners, bary


def angle(a, b):
    return np.degrees(np.arccos(np.clip(np.einsum("nc,nc->n", a, b), -1.0, 1.0)))


def synthetic_frames(model, sensor, camera, n, seed):
    from facerecon.facemodel import RENDER_REGIONS, vertex_normals
    from facerecon.geometry.camera import camera_preset
    from facerecon.geometry.pose import HeadPose
    from facerecon.io.frame import DepthFrame
    from facerecon.realdata.scan import render_soup
    from facerecon.synth.sensors import apply_sensor, load_sensor

    rng = np.random.default_rng(seed)
    v0 = model.neutral.astype(np.float64)
    skin_v = np.flatnonzero(model.region_mask("face"))
    k = camera_preset(camera)
    tris = model.region_triangles(*RENDER_REGIONS).astype(np.int32)
    zr = (350, 450) if sensor == "truedepth" else (600, 800)
    out = []
    for _ in range(n):
        bump = np.zeros(len(v0))
        for _ in range(40):  # detail everywhere, at several scales (a median over flat skin would reward any blur)
            c = v0[rng.choice(skin_v)]
            r = np.linalg.norm(v0 - c, axis=1)
            bump += rng.choice((-1, 1)) * rng.uniform(0.5, 1.5) * np.exp(-(r ** 2) / (2 * rng.uniform(3, 8) ** 2))
        bump[9409:] = 0.0
        # a different person (0.5 sigma of identity: the base's shape error) plus the fine detail
        ident = model.vertices(identity=rng.normal(0, 0.5, model.n_identity)).astype(np.float64)
        truth = ident + bump[:, None] * vertex_normals(ident, model.triangles)
        pose = HeadPose.from_euler(rng.uniform(-20, 20), rng.uniform(-10, 10), rng.uniform(-5, 5), [0, 0, rng.uniform(*zr)])
        depth, seg, cos = render_soup(pose.apply(truth), tris, np.ones(len(tris), np.uint8), k)
        d, _ = apply_sensor(load_sensor(sensor), depth, k, rng, segment=seg, cos_view=cos)
        out.append((DepthFrame(d, k, f"{sensor} synthetic"), pose, truth))
    return out


def synthetic_errors(model, frame, pose, truth, scales, size):
    """{"base": deg, "px=k": deg}: median angle error over the measured texels of one synthetic frame."""
    from facerecon.facemodel import vertex_normals
    from facerecon.facemodel.uv import face_triangles
    from facerecon.fitting.detail import DetailConfig, displacement_map, normal_map

    base = model.neutral.astype(np.float64)
    cfg = DetailConfig.load({"size": size})
    disp = displacement_map(model, base, pose, frame, cfg)
    skin = np.asarray(model.triangles)[face_triangles(model)]
    res = {}
    for k in scales:
        nm = normal_map(model, base, disp, DetailConfig.load({"size": size, "normal_smooth_px": k}))
        rows, cols, dec, n, _, corners, bary = decoded_normals(model, base, nm)
        tn = np.einsum("nk,nkc->nc", bary, vertex_normals(truth, skin)[corners])
        tn /= np.linalg.norm(tn, axis=1, keepdims=True)
        ok = disp.mask[rows, cols]
        res.setdefault("base", float(np.median(angle(n[ok], tn[ok]))))
        res[f"px={k:g}"] = float(np.median(angle(dec[ok], tn[ok])))
    res["sigma_texels_per_px"] = _sigma_per_px(model, base, disp)
    return res


def _sigma_per_px(model, base, disp):
    from facerecon.fitting.detail import normal_sigma_texels

    return float(normal_sigma_texels(model, base, disp, 1.0))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--n", type=int, default=6, help="frames per set")
    ap.add_argument("--seed", type=int, default=1616)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--scales", default="0,1,2,4", help="normal_smooth_px values compared")
    ap.add_argument("--no-james", action="store_true")
    args = ap.parse_args(argv)
    from facerecon.facemodel import FaceModel

    scales = [float(s) for s in args.scales.split(",")]
    model = FaceModel.load()
    sets = {}
    for sensor, camera in (("truedepth", "truedepth-320x240"), ("kinect-v1", "kinect-v1")):
        sets[f"synthetic {sensor}"] = [synthetic_errors(model, f, p, t, scales, args.size)
                                       for f, p, t in synthetic_frames(model, sensor, camera, args.n, args.seed)]
        print(sets[f"synthetic {sensor}"], flush=True)
    if not args.no_james:
        sets["james face only"] = james_errors(model, args, scales)
    print(f"load average {os.getloadavg()}")
    cols = ["base"] + [f"px={k:g}" for k in scales]
    print("| set | frames | sigma texels / px | " + " | ".join(cols) + " |")
    print("|---|---|---|" + "---|" * len(cols))
    for name, rows in sets.items():
        med = [np.median([r[c] for r in rows]) for c in cols]
        sig = np.median([r["sigma_texels_per_px"] for r in rows])
        print(f"| {name} | {len(rows)} | {sig:.2f} | " + " | ".join(f"{m:.2f}" for m in med) + " |")
    return 0


def james_errors(model, args, scales):
    from real_geometry import james_face_only, james_setup

    from facerecon.facemodel import vertex_normals
    from facerecon.fitting.detail import DetailConfig, displacement_map, normal_map
    from facerecon.metrics.surface import SurfaceIndex
    from facerecon.realdata import EVAL_POSE_KEY

    model, rec, scan = james_setup(args.shared, model)
    surface = SurfaceIndex(scan.vertices.astype(np.float64), scan.faces[scan.face_triangle])
    # the scan's faceted triangle normals carry the scan's own noise: its smooth (vertex) normals are the truth
    scan_vn = vertex_normals(surface.vertices, surface.faces)
    out = []
    for f in james_face_only(scan, args.n, args.seed):
        ref = f.meta[EVAL_POSE_KEY]
        r = rec.reconstruct(f)
        base = np.asarray(r.vertices_head, np.float64)
        disp = displacement_map(model, base, r.pose, f, DetailConfig.load({"size": args.size}))
        res = {}
        for k in scales:
            nm = normal_map(model, base, disp, DetailConfig.load({"size": args.size, "normal_smooth_px": k}))
            rows, cols, dec, n, p, _, _ = decoded_normals(model, base, nm)
            ok = disp.mask[rows, cols]
            if "truth" not in res:
                d = disp.displacement[rows[ok], cols[ok]].astype(np.float64)[:, None]
                to_scan = ref.R.T @ np.asarray(r.pose.R, np.float64)  # head frame of the fit -> scan frame (directions)
                q = surface.query(ref.inverse_apply(r.pose.apply(p[ok] + d * n[ok])))
                tn = scan_vn[surface.faces[q.face_index]].mean(axis=1)
                tn /= np.linalg.norm(tn, axis=1, keepdims=True)
                nb = n[ok] @ to_scan.T
                tn *= np.where(np.einsum("nc,nc->n", tn, nb) < 0, -1.0, 1.0)[:, None]
                res["truth"], res["to_scan"] = tn, to_scan
                res["base"] = float(np.median(angle(nb, tn)))
            res[f"px={k:g}"] = float(np.median(angle(dec[ok] @ res["to_scan"].T, res["truth"])))
        res.pop("truth"), res.pop("to_scan")
        res["sigma_texels_per_px"] = _sigma_per_px(model, base, disp)
        print(f.source, res, flush=True)
        out.append(res)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
