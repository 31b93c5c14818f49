"""Photo pose on turned faces (issue #21 item 2): per image, which landmark source turns the fit back.

    python benchmarks/photo_turn_diag.py cache --shared ../shared --out /tmp/ptd [--james-seeds 0,100 --n 24 --max-yaw 60]
    python benchmarks/photo_turn_diag.py eval --out /tmp/ptd --on td base,facemesh,dlib [--per-frame]
    python benchmarks/photo_turn_diag.py eval --out /tmp/ptd --on james100 --now --shared ../shared --variants base,fit.depth_weight=1

``cache`` runs the photo path's detection and both landmark sources once per image and stores
them (``.npz``, arrays only): Face Mesh's 468 points, its 68 (through the landmark map), dlib's
68, the camera, and the reference pose: for the 30 real TrueDepth colour frames (the frames' own
intrinsics) the depth registration of ``realdata.mannequin_reference`` and the depth default
output's pose (``Reconstructor``); for the james renders of ``photo_shape_eval.py`` (``--max-yaw``
as there) the true pose.  ``eval`` builds the fit's targets from the cached points as the pipeline
does (``fuse68`` + ``fit_targets``), fits each variant (``fit_photo``) and prints the rotation
error against the reference by |yaw| bin (TrueDepth: the reference's yaw, upright frame), and with
``--per-frame`` each image's yaw and the error's yaw / pitch / roll parts.  Variants (``+`` joins):

* ``base``: the shipped settings (``[fusion]`` and ``configs/photo_fit.toml``);
* ``facemesh``: Face Mesh alone; ``dlib``: dlib's 68 in place of the fused 68 (dense points kept);
* ``use=dense`` / ``use=ibug68``: the dense Face Mesh points only / the fused 68 only;
* ``byyaw``: ``[fusion] by_yaw = true``;
* ``fit.KEY=VALUE`` / ``fusion.KEY=VALUE``: any setting of the fit or the fusion (numbers, true/false, strings,
  pairs as ``[a:b]``).

``--now`` (james only) adds the fitted mesh's NoW-style median (rigid, pooled; ``photo_shape_eval.py``'s measure)
per variant, overall and by |yaw| bin.

``sources`` (TrueDepth only) compares each landmark source with the depth default output's mesh
projected into the colour image, fits to those projected points, and measures Face Mesh's z
(:func:`sources`)::

    python benchmarks/photo_turn_diag.py sources --out /tmp/ptd

``noise`` measures the noise model behind ``[fit] depth_turn_deg`` on the calibration renders
(:func:`turn_noise`)::

    python benchmarks/photo_turn_diag.py noise --out /tmp/ptd --on james100

``rgbd`` runs ``--method rgbd`` on each TrueDepth frame from two colour starts, with and without
the measured distance (:func:`rgbd`)::

    python benchmarks/photo_turn_diag.py rgbd --shared ../shared --out /tmp/ptd
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

YAW_BINS = ((0.0, 15.0), (15.0, 30.0), (30.0, 40.0), (40.0, 61.0), (61.0, 91.0))


def _upright(rot: np.ndarray, roll_deg: float) -> np.ndarray:
    from facerecon.geometry.rotations import _rz

    return _rz(np.deg2rad(-roll_deg)) @ rot


def cache(args) -> None:
    from photo_shape_eval import james_camera, load_james, rendered_scenes

    from facerecon import Reconstructor
    from facerecon.facemodel import FaceModel
    from facerecon.geometry.rotations import euler_to_matrix
    from facerecon.io import read_depth
    from facerecon.io.truedepth import read_truedepth_frame
    from facerecon.photo.image import Photo
    from facerecon.pipeline.photo import PhotoReconstructor
    from facerecon.realdata import mannequin_reference
    from facerecon.realdata.mannequin import frame_files

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    model = FaceModel.load()
    rec = PhotoReconstructor.from_pretrained(model=model)

    def store(name, photo, intr, truth_r, extra):
        det = rec.detect(photo, intrinsics=intr)
        face = det.faces[0]
        lms = rec.landmarker(det.photo.rgb, face)
        pts = np.asarray(lms.points, np.float64)  # (468, 3): z is Face Mesh's relative depth (px scale)
        fm68 = rec.landmark_map.ibug68(pts[:, :2])
        d68 = rec.dlib68(det.photo.rgb, points68=fm68, box=face.box)
        np.savez(out / f"{name}.npz", pts=pts, fm68=fm68, d68=np.full((68, 2), np.nan) if d68 is None else d68.points[:, :2],
                 K=np.array([intr.fx, intr.fy, intr.cx, intr.cy, intr.width, intr.height]), truth_r=truth_r,
                 box=np.asarray(face.box, np.float64), **extra)

    if args.truedepth:
        folder = args.shared / "data" / "real" / "truedepth-mannequin"
        ref = mannequin_reference(folder, model=model)
        depth = Reconstructor.from_pretrained(model=model)
        names = []
        for i, f in enumerate(frame_files(folder)):
            fr = read_truedepth_frame(f)
            try:
                dr = depth.reconstruct(read_depth(f))
                depth_r, depth_v = dr.pose.R, dr.vertices_camera.astype(np.float32)
            except Exception as exc:  # noqa: BLE001 - a diagnosis: note it and go on
                print(f"{f.name}: depth default failed ({exc})")
                depth_r, depth_v = np.full((3, 3), np.nan), np.zeros((0, 3), np.float32)
            try:
                store(f"td_{f.stem}", Photo(fr.color, f.name, float(fr.intrinsics.fx)), fr.intrinsics, ref.rotations[i],
                      {"depth_r": depth_r, "depth_v": depth_v, "roll": ref.image_roll_deg, "rgb": fr.color})
            except Exception as exc:  # noqa: BLE001
                print(f"{f.name}: {exc}")
                continue
            names.append(f"td_{f.stem}")
        (out / "td.json").write_text(json.dumps(names))
        print(f"truedepth: {len(names)} frames", flush=True)
    scan, texture, uv, face_uv, _ = load_james(args.shared, model)
    intr, fj = james_camera()
    for seed in [int(s) for s in args.james_seeds.split(",") if s]:
        names = []
        for sc, rgb in rendered_scenes(scan, texture, uv, face_uv, intr, args.n, seed, args.max_yaw):
            name = f"james{seed}_{sc['index']}"
            try:
                store(name, Photo(rgb, "james", fj), intr, euler_to_matrix(sc["yaw"], sc["pitch"], 0.0),
                      {"depth_r": np.full((3, 3), np.nan), "roll": 0.0, "rgb": rgb})
            except Exception as exc:  # noqa: BLE001
                print(f"{name}: {exc}")
                continue
            names.append(name)
        (out / f"james{seed}.json").write_text(json.dumps(names))
        print(f"james seed {seed}: {len(names)} renders", flush=True)


def _value(s: str):
    if s in ("true", "false"):
        return s == "true"
    if s.startswith("["):  # a pair of numbers, e.g. fit.depth_turn_deg=[20:40] (":" as "," joins the variants)
        return tuple(float(x) for x in s.strip("[]").split(":"))
    try:
        return int(s)
    except ValueError:
        try:
            return float(s)
        except ValueError:
            return s.strip('"')


class Fitter:
    def __init__(self):
        from facerecon.facemodel import FaceModel
        from facerecon.photo.config import load_photo_config
        from facerecon.photo.fusion import FusionConfig
        from facerecon.photo.landmark_map import load_ibug68_points, load_landmark_map

        self.model = FaceModel.load()
        cfg = load_photo_config()
        self.fit_cfg, self.targets = cfg.fit, cfg.targets
        self.fusion = FusionConfig()
        self.lmap = load_landmark_map()
        self.points = load_ibug68_points(self.model, self.fusion.ict_points)

    def fit(self, d: dict, variant: str):
        from facerecon.geometry.camera import Intrinsics
        from facerecon.photo.fit import fit_photo, fit_targets, pnp_start
        from facerecon.photo.fusion import fuse68, head_yaw_deg

        fit_cfg, fusion, use, source = self.fit_cfg, self.fusion, self.targets.use, "fused"
        for part in [p for p in variant.split("+") if p and p != "base"]:
            if part in ("facemesh", "dlib"):
                source = part
            elif part == "byyaw":
                fusion = replace(fusion, by_yaw=True)
            elif part.startswith("use="):
                use = part[4:]
            elif part.startswith(("fit.", "fusion.")):
                key, val = part.split("=", 1)
                table, key = key.split(".", 1)
                if table == "fit":
                    fit_cfg = replace(fit_cfg, **{key: _value(val)})
                else:
                    fusion = replace(fusion, **{key: _value(val)})
            else:
                raise SystemExit(f"unknown variant part {part!r}")
        k = d["K"]
        intr = Intrinsics(*k[:4], int(k[4]), int(k[5]))
        fm68, d68 = d["fm68"], d["d68"]
        has_dlib = np.isfinite(d68).all() and source != "facemesh"
        yaw = None
        if has_dlib and fusion.by_yaw:
            r0, t0 = pnp_start(fm68[17:], self.points.points(self.model.neutral)[17:], intr)
            yaw = head_yaw_deg(r0, t0)
        if source == "dlib" and has_dlib:
            p68 = d68
        else:
            p68, _ = fuse68(fm68, d68 if has_dlib else None, fusion, yaw)
        w68 = fusion.ibug68_weight if has_dlib else self.targets.ibug68_weight
        t = fit_targets(self.model, d["pts"], self.lmap, use, w68, ibug68=p68,
                        dense_contour_weight=fusion.dense_contour_weight if has_dlib else 1.0, ibug68_points=self.points,
                        dense_inner_weight=fusion.dense_inner_weight if has_dlib else 1.0)
        return fit_photo(self.model, t, intr, fit_cfg)


def evaluate(args) -> None:
    from facerecon.geometry.rotations import geodesic_distance_deg, matrix_to_euler

    fitter = Fitter()
    names = json.loads((args.out / f"{args.on}.json").read_text())
    data = {n: dict(np.load(args.out / f"{n}.npz")) for n in names}
    variants = args.variants.split(",")
    rows = []
    now = None
    if args.now:  # the NoW-style shape of the fitted mesh against the james scan (rigid, pooled), as photo_shape_eval.py
        if not args.on.startswith("james"):
            raise SystemExit("--now needs the james renders (--on jamesSEED)")
        from photo_shape_eval import load_james, now_errors

        from facerecon.facemodel.model import RENDER_REGIONS

        m = fitter.model
        scan, _, _, _, inner = load_james(args.shared, m)
        tris = m.region_triangles(*RENDER_REGIONS)
        now = {v: [] for v in variants}
    for n in names:
        d = data[n]
        roll = float(d["roll"])
        ref = d["truth_r"]
        yaw = float(matrix_to_euler(_upright(ref, roll))[0])
        row = {"name": n, "yaw": yaw}
        if np.isfinite(d["depth_r"]).all():
            row["depth"] = float(geodesic_distance_deg(d["depth_r"], ref))
        for v in variants:
            f = fitter.fit(d, v)
            e = matrix_to_euler(_upright(f.rotation, roll)) - matrix_to_euler(_upright(ref, roll))
            row[v] = float(geodesic_distance_deg(f.rotation, ref))
            row[v + ":ypr"] = [round(float(x), 1) for x in (e + 180) % 360 - 180]
            if now is not None:
                verts = f.pose.apply(m.vertices(f.identity, f.expression).astype(np.float64))
                dist = now_errors(scan, inner, verts, m, tris, ("rigid",))["rigid"]["distances"]
                now[v].append((abs(yaw), dist))
                row[v + ":now"] = float(np.median(dist))
        rows.append(row)
        if args.per_frame:
            print(f"{n:22s} yaw {yaw:6.1f}" + (f" depth {row['depth']:5.1f}" if "depth" in row else "")
                  + "".join(f" | {v} {row[v]:5.1f} {row[v + ':ypr']}" for v in variants), flush=True)
    yaws = np.abs([r["yaw"] for r in rows])
    for v in (["depth"] if "depth" in rows[0] else []) + variants:
        parts = []
        for lo, hi in YAW_BINS:
            sel = [r[v] for r, y in zip(rows, yaws) if lo <= y < hi]
            if sel:
                parts.append(f"{lo:.0f}-{hi:.0f} {np.median(sel):.1f} (n={len(sel)})")
        allv = [r[v] for r in rows]
        print(f"{v}: " + " / ".join(parts) + f" | all median {np.median(allv):.2f} mean {np.mean(allv):.2f} p90 "
              f"{np.percentile(allv, 90):.1f}", flush=True)
        if now is not None and v in now:
            bins = [np.median(np.concatenate([d for y, d in now[v] if lo <= y < hi]))
                    for lo, hi in YAW_BINS if any(lo <= y < hi for y, _ in now[v])]
            print(f"{v}: NoW median {np.median(np.concatenate([d for _, d in now[v]])):.3f} mm (by |yaw| bin "
                  + " / ".join(f"{b:.2f}" for b in bins) + ")", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


def sources(args) -> None:
    """The TrueDepth frames against the depth default output's fitted mesh (its points projected
    into the colour image: a per-frame reference for the landmarks, consistent with the landmark
    map by construction): each source's error per region by |yaw|, the fit to those projected
    points (the "oracle") and to mixes of them with the detected ones, Face Mesh's z against the
    mesh's relative depth, and the rotation of a similarity fit of Face Mesh's 3D points (x, y, z)
    to the mean face's map points against POSIT of its 2D points and the fit."""
    from facerecon.geometry.camera import Intrinsics
    from facerecon.geometry.rotations import geodesic_distance_deg, matrix_to_euler
    from facerecon.photo.fit import fit_photo, fit_targets, pnp_start
    from facerecon.photo.fusion import fuse68

    fitter = Fitter()
    m, lmap = fitter.model, fitter.lmap
    tri = np.asarray(lmap.ict_triangle)
    corners = m.triangles[tri] if tri.ndim == 1 else tri
    bary = np.asarray(lmap.ict_bary)
    mi = np.asarray(lmap.mediapipe_index)
    x_mean = np.einsum("kj,kjc->kc", bary, m.neutral[corners].astype(np.float64))
    regions = {"brows": slice(17, 27), "nose": slice(27, 36), "eyes": slice(36, 48), "mouth": slice(48, 68)}
    bins = ((0.0, 30.0), (30.0, 45.0), (45.0, 91.0))
    acc: dict = {}

    def put(key, yaw, value):
        b = next(i for i, (lo, hi) in enumerate(bins) if lo <= abs(yaw) < hi)
        acc.setdefault(key, {}).setdefault(b, []).append(value)

    for n in json.loads((args.out / "td.json").read_text()):
        d = dict(np.load(args.out / f"{n}.npz"))
        if not len(d["depth_v"]):
            continue
        k = d["K"]
        intr = Intrinsics(*k[:4], int(k[4]), int(k[5]))
        ref = d["truth_r"]
        yaw = float(matrix_to_euler(_upright(ref, float(d["roll"])))[0])
        v = d["depth_v"].astype(np.float64)
        p_mesh = np.einsum("kj,kjc->kc", bary, v[corners])
        dense_o, o68 = intr.project(p_mesh), intr.project(v[m.landmarks_68])
        pts = d["pts"]
        size = float(np.linalg.norm(pts[mi, :2].max(0) - pts[mi, :2].min(0))) / np.sqrt(2.0)
        p68, _ = fuse68(d["fm68"], d["d68"], fitter.fusion)
        for src, x in (("facemesh", d["fm68"]), ("dlib", d["d68"]), ("fused", p68)):
            for reg, sl in regions.items():
                put(f"68 {src} {reg}", yaw, float(np.linalg.norm(x[sl] - o68[sl], axis=1).mean()) / size * 100)
        put("dense facemesh all", yaw, float(np.linalg.norm(pts[mi, :2] - dense_o, axis=1).mean()) / size * 100)
        # the fit to the reference points (the jaw stays the fused one: it slides on the outline)
        full = pts[:, :2].copy()
        full[mi] = dense_o
        o68j = o68.copy()
        o68j[:17] = p68[:17]
        for name, dense_pts, t68 in (("fit: reference dense + reference 68", full, o68j), ("fit: reference dense + fused 68", full, p68),
                                      ("fit: detected dense + reference 68", pts[:, :2], o68j),
                                      ("fit: detected (the shipped photo fit)", pts[:, :2], p68)):
            t = fit_targets(m, dense_pts, lmap, "both", 1.0, ibug68=t68, ibug68_points=fitter.points)
            put(name, yaw, geodesic_distance_deg(fit_photo(m, t, intr, fitter.fit_cfg).rotation, ref))
        # Face Mesh's z against the mesh's relative depth, f (Z - mean Z) / mean Z
        zt = k[0] * (p_mesh[:, 2] - p_mesh[:, 2].mean()) / p_mesh[:, 2].mean()
        zf = pts[mi, 2] - pts[mi, 2].mean()
        slope = float(zf @ zt / (zt @ zt))
        put("Face Mesh z: slope against the mesh's depth", yaw, slope)
        put("Face Mesh z: rms residual after the slope, % face size", yaw, float(np.sqrt(np.mean((zf - slope * zt) ** 2))) / size * 100)
        # rotations from Face Mesh's points alone
        a, b = x_mean - x_mean.mean(0), pts[mi] - pts[mi].mean(0)
        u, _, vt = np.linalg.svd(b.T @ a)
        r3 = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
        rp, _ = pnp_start(pts[mi, :2], x_mean, intr)
        for name, r in (("rotation: similarity fit of Face Mesh's 3D points", r3), ("rotation: POSIT of its 2D points", rp)):
            put(name, yaw, geodesic_distance_deg(r, ref))
            # |fitted yaw| - |reference yaw| (upright frame): negative = turned back towards a frontal face
            put(name + ", |yaw| - |reference yaw|", yaw, abs(float(matrix_to_euler(_upright(r, float(d["roll"])))[0])) - abs(yaw))
    print("|yaw| bins: " + " / ".join(f"{lo:.0f}-{hi:.0f}" for lo, hi in bins) + " (mean for the 68 errors, median otherwise)")
    for key, per in acc.items():
        agg = np.mean if key.startswith(("68 ", "dense ")) else np.median
        print(f"{key}: " + " / ".join(f"{agg(per[b]):.2f} (n={len(per[b])})" if b in per else "-" for b in range(len(bins))), flush=True)


def rgbd(args) -> None:
    """``--method rgbd`` per TrueDepth frame: its rotation error against the reference, from the
    shipped colour start and from a 2D-only one (``depth_weight_rgbd`` 0), with and without the
    measured distance (``pipeline.photo.depth_distance``), and how far the ICP moved each start."""
    from dataclasses import replace as dc_replace
    from unittest import mock

    from facerecon.geometry.rotations import geodesic_distance_deg, matrix_to_euler
    from facerecon.io.truedepth import read_truedepth_frame
    from facerecon.photo.image import Photo
    from facerecon.pipeline import photo as pipeline_photo
    from facerecon.pipeline.photo import PhotoReconstructor

    rec = PhotoReconstructor.from_pretrained()
    cfg2d = dc_replace(rec.fit_config, depth_weight=0.0)
    cfg_rows = rec.fit_config.for_rgbd()
    folder = args.shared / "data" / "real" / "truedepth-mannequin" / "DepthFrames"
    rows = []
    for n in json.loads((args.out / "td.json").read_text()):
        d = dict(np.load(args.out / f"{n}.npz"))
        ref, roll = d["truth_r"], float(d["roll"])
        yaw = float(matrix_to_euler(_upright(ref, roll))[0])
        frame = read_truedepth_frame(folder / f"{n[3:]}.ply")
        row = {"yaw": yaw}
        for start in ("2d", "depth rows"):
            colour = rec.reconstruct(Photo(frame.color, n, None), texture=False, intrinsics=frame.intrinsics,
                                     fit_config=cfg2d if start == "2d" else cfg_rows)
            for dist in ("measured distance", "colour distance"):
                if dist == "measured distance":
                    r = rec.reconstruct_rgbd(frame, texture=False, colour=colour)
                else:  # the path before: the ICP from the colour fit's own distance
                    with mock.patch.object(pipeline_photo, "depth_distance", lambda c, f: c.pose):
                        r = rec.reconstruct_rgbd(frame, texture=False, colour=colour)
                key = f"{start} start, {dist}"
                row[key] = float(geodesic_distance_deg(r.pose.R, ref))
                row[key + " (moved)"] = float(geodesic_distance_deg(r.pose.R, colour.pose.R))
        rows.append(row)
        print(f"{n:16s} yaw {yaw:6.1f} " + " | ".join(f"{k} {v:.1f}" for k, v in row.items() if k != "yaw"), flush=True)
    yaws = np.abs([r["yaw"] for r in rows])
    for key in [k for k in rows[0] if k != "yaw" and not k.endswith("(moved)")]:
        parts = [f"{lo:.0f}-{hi:.0f} {np.median([r[key] for r, y in zip(rows, yaws) if lo <= y < hi]):.1f}"
                 for lo, hi in YAW_BINS if ((yaws >= lo) & (yaws < hi)).any()]
        v = [r[key] for r in rows]
        print(f"{key}: " + " / ".join(parts) + f" | all median {np.median(v):.2f} p90 {np.percentile(v, 90):.1f}")


def turn_noise(args) -> None:
    """The noise model behind ``[fit] depth_turn_deg`` (round 9): per image the 2D fit's |yaw| (what
    the fit knows) and its turn error, and the turn error of Face Mesh's z alone (the pose stage at
    weight 100, ungated), both fitted minus true |yaw| about the head's up axis (``head_yaw_deg``);
    by bins of the 2D fit's |yaw|: their mean and RMS and the weight a on the z of the mix
    (1 - a) yaw_2D + a yaw_z with the least squared error."""
    from facerecon.photo.fusion import head_yaw_deg

    fitter = Fitter()
    two_d = "fit.depth_weight=0"
    z_alone = "fit.depth_weight=100+fit.depth_stage=pose+fit.depth_turn_deg=[0:0]+fit.depth_turn_only=false"
    est, e2, ez = [], [], []
    for n in json.loads((args.out / f"{args.on}.json").read_text()):
        d = dict(np.load(args.out / f"{n}.npz"))
        f2, fz = fitter.fit(d, two_d), fitter.fit(d, z_alone)
        true = head_yaw_deg(d["truth_r"], f2.translation)
        y2 = head_yaw_deg(f2.rotation, f2.translation)
        est.append(y2)
        e2.append(y2 - true)
        ez.append(head_yaw_deg(fz.rotation, fz.translation) - true)
    est, e2, ez = np.array(est), np.array(e2), np.array(ez)
    print("2D-fitted |yaw| | n | 2D fit's turn error, mean (rms) | z's, mean (rms) | best a")
    for lo, hi in ((0.0, 20.0), (20.0, 33.0), (33.0, 40.0), (40.0, 50.0), (50.0, 91.0)):
        m = (est >= lo) & (est < hi)
        if not m.any():
            continue
        a = (np.mean(e2[m] ** 2) - np.mean(e2[m] * ez[m])) / max(float(np.mean((e2[m] - ez[m]) ** 2)), 1e-12)
        print(f"{lo:.0f}-{hi:.0f} | {int(m.sum())} | {e2[m].mean():+.1f} ({np.sqrt(np.mean(e2[m] ** 2)):.1f}) | "
              f"{ez[m].mean():+.1f} ({np.sqrt(np.mean(ez[m] ** 2)):.1f}) | {a:.2f}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cache")
    c.add_argument("--shared", type=Path, default=Path("../shared"))
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--james-seeds", default="0,100")
    c.add_argument("--n", type=int, default=24)
    c.add_argument("--max-yaw", type=float, default=60.0)
    c.add_argument("--no-truedepth", dest="truedepth", action="store_false")
    e = sub.add_parser("eval")
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--on", default="td", help="td, james0, james100")
    e.add_argument("--variants", default="base")
    e.add_argument("--per-frame", action="store_true")
    e.add_argument("--json", type=Path)
    e.add_argument("--now", action="store_true", help="james: also the fitted mesh's NoW-style shape (rigid, pooled)")
    e.add_argument("--shared", type=Path, default=Path("../shared"))
    sub.add_parser("sources").add_argument("--out", type=Path, required=True)
    t = sub.add_parser("noise")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--on", default="james100", help="the calibration renders (james100)")
    g = sub.add_parser("rgbd")
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--shared", type=Path, default=Path("../shared"))
    args = ap.parse_args(argv)
    if args.cmd == "cache":
        cache(args)
    elif args.cmd == "sources":
        sources(args)
    elif args.cmd == "rgbd":
        rgbd(args)
    elif args.cmd == "noise":
        turn_noise(args)
    else:
        evaluate(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
