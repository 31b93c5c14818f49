"""Photo path (issue 11): NoW-style shape error on renders of the real textured james scan.

    .venv/bin/python benchmarks/photo_shape_eval.py --shared ../shared [--n 12] [--seed 0] [--json out.json]
        [--figure docs/photo_shape_james.png]

Renders: ``data/real/scan-james/james.obj`` with its texture (``james.jpg``, the OBJ's UVs), in
the ICT head frame of :func:`facerecon.realdata.scan.load_james_scan`, through a 640 x 480
pinhole camera (60 degrees across, the focal length handed to the photo path as ``focal_px``),
by ``benchmarks/_render_textured.py`` (exact z-buffer of ``facerecon.geometry.raster.render_mesh``,
bilinear texture, Lambert lighting, 2x supersampling).  Per render, seeded: yaw stratified over
-40..40 degrees, pitch uniform in -20..20, head 550-750 mm away and off-centre by up to 40 mm,
one of four light set-ups (front, left, right, top; ambient + one or two directional lights)
and one of three backgrounds (flat grey, smoothed noise, a colour gradient).  The scan is a
face-only mask (open at the back, cut at the neck): the photo path sees a face and no hair
at the back; that is all it needs.

Error (NoW protocol, :func:`facerecon.metrics.shape.scan_to_mesh_error`): the fitted mesh
(camera frame, mm) is aligned to the scan by its 68 ICT landmark vertices
(``FaceModel.landmarks_68``) onto the scan's 68 3D landmarks (``james.ljson``), rigidly
(``rigid``) or with a fitted scale (``scaled``); then the scan's inner-face points are moved
onto the fitted surface by point-to-plane ICP (rigid); the distances from those points to the
fitted surface (skin and eyeballs, ``RENDER_REGIONS``) are the error.  **Inner face**: the scan
vertices within 95 mm of its nose-tip landmark (iBUG 30; NoW's crop radius) and not below its
chin landmark (iBUG 8; head-frame y down), i.e. forehead, eyes, nose, cheeks, mouth and chin, no
neck.  Reported per |yaw| bin and overall: median and mean of all distances of the renders in the
bin (pooled, as NoW pools over scans).  Reference: the ICT mean face (neutral, no expression)
placed the same way (it does not depend on the render).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _render_textured next to this file

NOSE_RADIUS_MM = 95.0  # NoW's face crop around the nose tip
YAW_BINS = ((0.0, 15.0), (15.0, 30.0), (30.0, 40.01))
BACKGROUNDS = ("grey", "noise", "gradient")
WIDTH, HEIGHT, FOV_DEG = 640, 480, 60.0


def photo_settings(items: list[str]) -> tuple[dict, dict]:
    """``--set TABLE.KEY=JSON`` items -> (``landmark_overrides``, ``overrides``) of
    ``PhotoReconstructor.from_pretrained``: [dlib68] / [fusion] of data/photo_landmarks.toml, the
    rest tables of configs/photo_fit.toml."""
    lo: dict = {}
    fo: dict = {}
    for item in items:
        key, _, value = item.partition("=")
        table, _, name = key.partition(".")
        (lo if table in ("dlib68", "fusion") else fo).setdefault(table, {})[name] = json.loads(value)
    return lo, fo


def light_sets():
    from _render_textured import Light

    # direction: from the surface towards the light, camera frame (x right, y down, z forward)
    return {
        "front": (0.55, (Light((0.0, -0.2, -1.0), 0.55),)),
        "left": (0.4, (Light((-0.8, -0.3, -0.6), 0.6), Light((0.2, 0.0, -1.0), 0.2))),
        "right": (0.4, (Light((0.8, -0.3, -0.6), 0.6), Light((-0.2, 0.0, -1.0), 0.2))),
        "top": (0.4, (Light((0.0, -0.9, -0.5), 0.65), Light((0.0, 0.2, -1.0), 0.2))),
    }


def scenes(n: int, seed: int) -> list[dict]:
    """Seeded render settings: yaw stratified over -40..40 (then shuffled), the rest random."""
    rng = np.random.default_rng(seed)
    yaws = -40.0 + 80.0 * (np.arange(n) + rng.uniform(0, 1, n)) / n
    rng.shuffle(yaws)
    lights = list(light_sets())
    out = []
    for i in range(n):
        out.append({
            "index": i, "yaw": float(yaws[i]), "pitch": float(rng.uniform(-20, 20)),
            "t_mm": [float(rng.uniform(-40, 40)), float(rng.uniform(-30, 30)), float(rng.uniform(550, 750))],
            "light": lights[int(rng.integers(len(lights)))], "background": BACKGROUNDS[i % len(BACKGROUNDS)],
            "bg_seed": int(rng.integers(2**31)),
        })
    return out


def james_camera():
    """(the renders' pinhole camera, its focal length in px)."""
    from facerecon.geometry.camera import Intrinsics
    from facerecon.photo.camera import focal_from_fov

    f = focal_from_fov(WIDTH, HEIGHT, FOV_DEG)
    return Intrinsics(f, f, (WIDTH - 1) / 2, (HEIGHT - 1) / 2, WIDTH, HEIGHT), f


def rendered_scenes(scan, texture, uv, face_uv, intr, n: int, seed: int, max_yaw: float):
    """``(scene, rgb)`` for :func:`scenes` with the yaws spread over -max_yaw..max_yaw."""
    for sc in scenes(n, seed):
        sc["yaw"] = sc["yaw"] * max_yaw / 40.0  # scenes() spans -40..40
        yield sc, render(sc, scan, texture, uv, face_uv, intr)


def load_james(shared: Path, model):
    """(scan in the ICT head frame, texture RGB, UVs, per-corner UV indices, inner-face vertex mask)."""
    from PIL import Image

    from facerecon.io.mesh import read_mesh
    from facerecon.realdata.scan import load_james_scan

    folder = shared / "data" / "real" / "scan-james"
    scan = load_james_scan(folder, model=model)
    mesh = read_mesh(folder / "james.obj")  # same vertex and face order as the scan, with the UVs
    if mesh.uv is None or mesh.face_uv is None or not np.array_equal(mesh.faces, scan.faces):
        raise SystemExit(f"{folder / 'james.obj'}: expected per-corner UVs in the scan's face order")
    texture = np.asarray(Image.open(folder / "james.jpg").convert("RGB"))
    nose, chin = scan.landmarks_68[30], scan.landmarks_68[8]
    inner = (np.linalg.norm(scan.vertices - nose, axis=1) <= NOSE_RADIUS_MM) & (scan.vertices[:, 1] <= chin[1])
    return scan, texture, mesh.uv, mesh.face_uv, inner


def render(scene: dict, scan, texture, uv, face_uv, intr) -> np.ndarray:
    from _render_textured import background, render_textured

    from facerecon.geometry.pose import HeadPose
    from facerecon.geometry.rotations import euler_to_matrix

    ambient, lights = light_sets()[scene["light"]]
    r = euler_to_matrix(scene["yaw"], scene["pitch"], 0.0)
    bg = background(scene["background"], intr.width, intr.height, np.random.default_rng(scene["bg_seed"]))
    rgb, _ = render_textured(scan.to_camera(HeadPose(r, scene["t_mm"])), scan.faces, intr, texture=texture, uv=uv,
                             face_uv=face_uv, lights=lights, ambient=ambient, bg=bg)
    return rgb


def now_errors(scan, inner, vertices, model, triangles, modes=("rigid", "scaled")) -> dict:
    """NoW-style errors of a face mesh (model topology, any frame) against the scan, rigid and scaled."""
    from facerecon.metrics.shape import scan_to_mesh_error

    out = {}
    for key, scale in ((m, m == "scaled") for m in modes):
        e = scan_to_mesh_error(scan.vertices, vertices, triangles, model.landmarks_68, scan.landmarks_68,
                               scan_mask=inner, scale=scale)
        out[key] = {"median_mm": e.stats.median, "mean_mm": e.stats.mean, "scale": float(e.transform.scale),
                    "distances": e.distances}
    return out


def pooled(rows: list[dict], key: str, mode: str) -> dict:
    d = np.concatenate([r[key][mode]["distances"] for r in rows]) if rows else np.zeros(0)
    return {"median_mm": float(np.median(d)) if d.size else float("nan"),
            "mean_mm": float(d.mean()) if d.size else float("nan")}


def figure(path: Path, rgb, rec, model, scan, inner, fit_err, mean_err) -> None:
    """The render with the fitted mesh overlaid, then the scan coloured by its distance to the
    fitted mesh and to the mean face (rigid alignment; 0-4 mm), seen from the front."""
    import matplotlib

    from PIL import Image, ImageDraw
    from _render_textured import render_textured

    from facerecon.geometry.camera import Intrinsics
    from facerecon.geometry.pose import HeadPose
    from facerecon.photo.overlay import overlay_image

    over = overlay_image(rgb, model, rec.vertices_camera, rec.camera.intrinsics, rec.landmarks_2d)
    x0, y0, x1, y1 = rec.photo.face_box
    m = 0.45 * max(x1 - x0, y1 - y0)
    h, w = over.shape[:2]
    crop = over[max(int(y0 - m), 0): min(int(y1 + m), h), max(int(x0 - m), 0): min(int(x1 + m), w)]
    side = 360
    panels = [np.asarray(Image.fromarray(crop).resize((round(crop.shape[1] * side / crop.shape[0]), side)))]
    cmap = matplotlib.colormaps["viridis"]
    k = Intrinsics(560.0, 560.0, side / 2 - 0.5, side / 2 - 0.5, side, side)
    for title, dist in (("photo fit", fit_err), ("ICT mean face", mean_err)):
        col = np.full((len(scan.vertices), 3), 150.0)
        col[inner] = cmap(np.clip(dist / 4.0, 0, 1))[:, :3] * 255.0
        img, _ = render_textured(scan.to_camera(HeadPose.identity([0.0, 10.0, 620.0])), scan.faces, k, vertex_colors=col,
                                 ambient=0.55, bg=np.full((side, side, 3), 255, np.uint8))
        im = Image.fromarray(img)
        ImageDraw.Draw(im).text((8, 8), f"{title}: median {np.median(dist):.2f} mm", fill=(0, 0, 0))
        ImageDraw.Draw(im).text((8, side - 20), "scan-to-mesh 0 (dark) .. 4 mm (yellow)", fill=(0, 0, 0))
        panels.append(np.asarray(im))
    Image.fromarray(np.concatenate(panels, axis=1)).save(path)


def several_photos(args, rec, model, scan, texture, uv, face_uv, inner, tris, intr, f) -> dict:
    """``--same-person K``: groups of K renders of james (yaw spread over -30..30 within each group,
    the rest of each scene as above, another seed), each group reconstructed photo by photo and
    jointly (``PhotoReconstructor.reconstruct_same_person``: one identity); the NoW-style errors
    of every photo's mesh both ways, and of the identity alone (no expression, rigid)."""
    from facerecon.geometry.rotations import euler_to_matrix, geodesic_distance_deg
    from facerecon.photo.image import Photo

    k = args.same_person
    rng = np.random.default_rng(args.seed + 1000)
    groups = []
    for g in range(args.groups):
        sc = scenes(k, args.seed + 1000 + g)
        for i, s_ in enumerate(sc):
            s_["yaw"] = float(-30.0 + 60.0 * i / max(k - 1, 1) + rng.uniform(-5, 5)) if k > 1 else float(rng.uniform(-30, 30))
            s_["index"] = g * k + i
        groups.append(sc)
    out = {"k": k, "groups": []}
    for g, sc in enumerate(groups):
        t = time.perf_counter()
        rgbs = [render(s_, scan, texture, uv, face_uv, intr) for s_ in sc]
        photos = [Photo(rgb, f"james group {g} render {i}", f) for i, rgb in enumerate(rgbs)]
        singles = [rec.reconstruct(p, focal_px=f, texture=False) for p in photos]
        sp = rec.reconstruct_same_person(photos, focal_px=f, texture=False)
        row = {"yaws": [s_["yaw"] for s_ in sc], "single": [], "joint": []}
        for key, results in (("single", singles), ("joint", list(sp.faces))):
            for s_, r in zip(sc, results):
                e = now_errors(scan, inner, r.vertices_camera, model, tris)
                ident = now_errors(scan, inner, model.vertices(r.identity, None).astype(np.float64), model, tris, ("rigid",))
                row[key].append({"rigid": e["rigid"], "scaled": e["scaled"], "identity_only": ident["rigid"],
                                 "rotation_error_deg": float(geodesic_distance_deg(r.pose.R, euler_to_matrix(s_["yaw"], s_["pitch"], 0.0)))})
        print(f"group {g}: yaws {', '.join(f'{y:.0f}' for y in row['yaws'])}: median (rigid) one photo "
              f"{np.median([x['rigid']['median_mm'] for x in row['single']]):.2f} mm, joint "
              f"{np.median([x['rigid']['median_mm'] for x in row['joint']]):.2f}; identity only: one photo "
              f"{np.median([x['identity_only']['median_mm'] for x in row['single']]):.2f}, joint "
              f"{row['joint'][0]['identity_only']['median_mm']:.2f}; scale one {np.median([x['scaled']['scale'] for x in row['single']]):.3f} "
              f"joint {np.median([x['scaled']['scale'] for x in row['joint']]):.3f}  {time.perf_counter() - t:.0f} s", flush=True)
        out["groups"].append(row)
    summary = {}
    for key in ("single", "joint"):
        rows_ = [x for grp in out["groups"] for x in grp[key]]
        summary[key] = {m: pooled([{"e": x} for x in rows_], "e", m) for m in ("rigid", "scaled")}
        ident_rows = rows_ if key == "single" else [grp["joint"][0] for grp in out["groups"]]  # one identity per group
        summary[key]["identity_only"] = pooled([{"e": {"rigid": x["identity_only"]}} for x in ident_rows], "e", "rigid")
        summary[key]["scale_median"] = float(np.median([x["scaled"]["scale"] for x in rows_]))
        summary[key]["rotation_error_median_deg"] = float(np.median([x["rotation_error_deg"] for x in rows_]))
    print(f"| {k} photos per person, {args.groups} groups | median | mean | median, scaled | identity only (rigid) median | scale | rotation err |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for key, label in (("single", "each photo alone"), ("joint", "--same-person")):
        sm = summary[key]
        print(f"| {label} | {sm['rigid']['median_mm']:.2f} | {sm['rigid']['mean_mm']:.2f} | {sm['scaled']['median_mm']:.2f} | "
              f"{sm['identity_only']['median_mm']:.2f} | {sm['scale_median']:.3f} | {sm['rotation_error_median_deg']:.1f} |")
    out["summary"] = summary
    for grp in out["groups"]:
        for key in ("single", "joint"):
            for x in grp[key]:
                for m in ("rigid", "scaled", "identity_only"):
                    x[m] = {kk: v for kk, v in x[m].items() if kk != "distances"}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, required=True, help="The shared data folder (../shared).")
    ap.add_argument("--n", type=int, default=12, help="Number of renders (default 12).")
    ap.add_argument("--seed", type=int, default=0, help="Seed of the render settings (default 0).")
    ap.add_argument("--threads", type=int, default=2, help="torch threads.")
    ap.add_argument("--max-yaw", type=float, default=40.0, help="Yaw range of the single renders, +- degrees "
                    "(default 40; the same scenes scaled, as photo_landmark_calibration.py --max-yaw; beyond 40 a 40-60 bin).")
    ap.add_argument("--neutral-too", action="store_true", help="Also measure the fitted identity without its "
                    "fitted expression (rigid only; a diagnostic: is the identity or the expression off?).")
    ap.add_argument("--same-person", type=int, default=0, metavar="K", help="Instead of the single renders: groups of K "
                    "renders (yaw spread over -30..30), each photo alone against the K fitted jointly (one identity).")
    ap.add_argument("--groups", type=int, default=4, help="With --same-person: number of groups (default 4).")
    ap.add_argument("--set", dest="landmarks_set", action="append", default=[], metavar="TABLE.KEY=JSON",
                    help="Override a photo setting: data/photo_landmarks.toml [dlib68] / [fusion] (e.g. "
                    "fusion.ibug68_weight=1.0, dlib68.enabled=false) or configs/photo_fit.toml (e.g. "
                    "'fit.joint_identity_prior=\"per_photo\"'); repeatable.")
    ap.add_argument("--json", type=Path, help="Write the report (per render and per bin) here.")
    ap.add_argument("--figure", type=Path, help="Write a picture (one render with the fitted overlay, and the scan "
                    "coloured by its error for the fit and the mean face) here, e.g. docs/photo_shape_james.png.")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from facerecon.geometry.camera import Intrinsics
    from facerecon.errors import FaceReconError
    from facerecon.facemodel import FaceModel
    from facerecon.facemodel.model import RENDER_REGIONS
    from facerecon.photo.camera import focal_from_fov
    from facerecon.photo.image import Photo
    from facerecon.pipeline.photo import PhotoReconstructor
    from facerecon.geometry.rotations import euler_to_matrix, geodesic_distance_deg, matrix_to_euler

    t0 = time.perf_counter()
    model = FaceModel.load()
    lo, fo = photo_settings(args.landmarks_set)
    rec_path = PhotoReconstructor.from_pretrained(model=model, landmark_overrides=lo, overrides=fo or None)
    scan, texture, uv, face_uv, inner = load_james(args.shared, model)
    tris = model.region_triangles(*RENDER_REGIONS)
    f = focal_from_fov(WIDTH, HEIGHT, FOV_DEG)
    intr = Intrinsics(f, f, (WIDTH - 1) / 2, (HEIGHT - 1) / 2, WIDTH, HEIGHT)
    mean_face = now_errors(scan, inner, model.neutral.astype(np.float64), model, tris)
    print(f"loaded in {time.perf_counter() - t0:.1f} s; inner face: {int(inner.sum())} of {len(inner)} scan vertices; "
          f"focal {f:.1f} px")

    if args.same_person:
        report = several_photos(args, rec_path, model, scan, texture, uv, face_uv, inner, tris, intr, f)
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))
        return 0
    rows, missed, fig_data = [], [], None
    for sc in scenes(args.n, args.seed):
        sc["yaw"] = sc["yaw"] * args.max_yaw / 40.0  # scenes() spans -40..40
        t = time.perf_counter()
        rgb = render(sc, scan, texture, uv, face_uv, intr)
        try:
            r = rec_path.reconstruct(Photo(rgb, f"james render {sc['index']}", f), focal_px=f, texture=False)
        except FaceReconError as exc:
            missed.append({**sc, "error": exc.one_line() if hasattr(exc, "one_line") else str(exc)})
            print(f"render {sc['index']:2d} yaw {sc['yaw']:6.1f} pitch {sc['pitch']:6.1f}: {missed[-1]['error']}")
            continue
        err = now_errors(scan, inner, r.vertices_camera, model, tris)
        if args.neutral_too:
            err["identity_only"] = now_errors(scan, inner, model.vertices(r.identity, None).astype(np.float64), model,
                                              tris, ("rigid",))["rigid"]
        r_true = euler_to_matrix(sc["yaw"], sc["pitch"], 0.0)
        # the distance to the eyes (the outer eye corners' mean depth, fitted vs the scan's posed landmarks): the
        # head origins of the fit and of the scan are not one point, the eyes are
        true_lm = (scan.landmarks_68[[36, 45]].astype(np.float64) @ r_true.T) + sc["t_mm"]
        eye_z_true = float(true_lm[:, 2].mean())
        eye_z_fit = float(r.landmarks_3d[[36, 45], 2].mean())
        # and the outer eye corners' spacing, in mm and as projected: is a scale error a size error or a landmark one?
        def corners_px(p):
            uv = intr.project(p)
            return float(np.linalg.norm(uv[0] - uv[1]))

        row = {**sc, "eye_depth_error_pct": 100.0 * (eye_z_fit - eye_z_true) / eye_z_true,
               "eye_corners_mm": [float(np.linalg.norm(r.landmarks_3d[36] - r.landmarks_3d[45])),
                                  float(np.linalg.norm(scan.landmarks_68[36] - scan.landmarks_68[45]))],
               "eye_corners_px": [corners_px(r.landmarks_3d[[36, 45]]), corners_px(true_lm)], "fit": err, "rotation_error_deg": float(geodesic_distance_deg(r.pose.R, r_true)),
               # which way it errs: fitted minus true (yaw, pitch, roll), degrees
               "rotation_error_euler_deg": [round(float(v), 2) for v in matrix_to_euler(r.pose.R) - [sc["yaw"], sc["pitch"], 0.0]],
               "depth_error_mm": float(r.pose.t_mm[2] - sc["t_mm"][2]), "fit_iterations": r.photo.fit.iterations,
               "fit_rms_px": r.photo.fit.rms_px, "seconds": round(time.perf_counter() - t, 2),
               # the iris size cue (round 8): what it measured, or why it was not used
               "size_cue": (None if r.photo.fit.size_cue is None else
                            {"eye_depth_mm": r.photo.fit.size_cue.eye_depth_mm, **r.photo.fit.size_cue.source}),
               "size_cue_note": r.photo.fit.size_cue_note}
        rows.append(row)
        print(f"render {sc['index']:2d} yaw {sc['yaw']:6.1f} pitch {sc['pitch']:6.1f} {sc['light']:5s} {sc['background']:8s}"
              f" median {err['rigid']['median_mm']:.2f} mm (scaled {err['scaled']['median_mm']:.2f}, s "
              f"{err['scaled']['scale']:.3f}{', identity only %.2f' % err['identity_only']['median_mm'] if args.neutral_too else ''})  rot err {row['rotation_error_deg']:.1f} deg  depth err "
              f"{row['depth_error_mm']:+.0f} mm  (yaw/pitch/roll {' '.join(f'{v:+.1f}' for v in row['rotation_error_euler_deg'])})  {row['seconds']:.1f} s")
        if fig_data is None or abs(abs(sc["yaw"]) - 20.0) < abs(abs(fig_data[0]["yaw"]) - 20.0):
            fig_data = (sc, rgb, r, err)  # the figure shows a render turned about 20 degrees

    def mean_face_row() -> dict:
        return {mode: {k: mean_face[mode][k] for k in ("median_mm", "mean_mm")} for mode in ("rigid", "scaled")}

    bins = {}
    yaw_bins = YAW_BINS + (((40.01, 60.01),) if args.max_yaw > 40.0 else ())
    for lo, hi in yaw_bins:
        sel = [r for r in rows if lo <= abs(r["yaw"]) < hi]
        bins[f"|yaw| {lo:.0f}-{hi:.0f}"] = {"n": len(sel), **{m: pooled(sel, "fit", m) for m in ("rigid", "scaled")},
                                            "rotation_error_median_deg": float(np.median([r["rotation_error_deg"] for r in sel])) if sel else None}
    bins["all"] = {"n": len(rows), **{m: pooled(rows, "fit", m) for m in ("rigid", "scaled")},
                   "rotation_error_median_deg": float(np.median([r["rotation_error_deg"] for r in rows])) if rows else None}
    if args.neutral_too and rows:
        for b_name, (lo, hi) in zip(list(bins), (*yaw_bins, (0.0, 99.0))):
            sel = [{"x": {"rigid": r["fit"]["identity_only"]}} for r in rows if lo <= abs(r["yaw"]) < hi]
            bins[b_name]["identity_only"] = pooled(sel, "x", "rigid")
    mf = mean_face_row()
    print()
    print("| renders | n | fit median | fit mean | fit median (scaled) | fit mean (scaled) | rotation error median (deg) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, b in bins.items():
        rot = b["rotation_error_median_deg"]
        print(f"| {name} | {b['n']} | {b['rigid']['median_mm']:.2f} | {b['rigid']['mean_mm']:.2f} | "
              f"{b['scaled']['median_mm']:.2f} | {b['scaled']['mean_mm']:.2f} | {'-' if rot is None else f'{rot:.1f}'} |")
    if args.neutral_too:
        print("fitted identity without expression (rigid): " + ", ".join(
            f"{k} median {b['identity_only']['median_mm']:.2f} mean {b['identity_only']['mean_mm']:.2f}"
            for k, b in bins.items() if "identity_only" in b))
    print(f"| ICT mean face | - | {mf['rigid']['median_mm']:.2f} | {mf['rigid']['mean_mm']:.2f} | "
          f"{mf['scaled']['median_mm']:.2f} | {mf['scaled']['mean_mm']:.2f} |")
    print(f"found {len(rows)}/{args.n}; scale fitted (fit) median {np.median([r['fit']['scaled']['scale'] for r in rows]):.3f}, "
          f"mean face {mean_face['scaled']['scale']:.3f}; rotation error median "
          f"{np.median([r['rotation_error_deg'] for r in rows]):.1f} deg; target: median <= 1.2 mm and below the mean face"
          if rows else f"found 0/{args.n}")
    if args.figure and fig_data is not None:
        sc, rgb, r, err = fig_data
        figure(args.figure, rgb, r, model, scan, inner, err["rigid"]["distances"], mean_face["rigid"]["distances"])
        print(f"figure (render {sc['index']}, yaw {sc['yaw']:.1f}) -> {args.figure}")
    if args.json:
        def strip(e):
            return {m: ({k: v for k, v in e[m].items() if k != "distances"} if "distances" in e[m] else strip(e[m]))
                    for m in e}

        report = {"n": args.n, "seed": args.seed, "focal_px": f, "size": [WIDTH, HEIGHT],
                  "inner_face_vertices": int(inner.sum()), "bins": bins, "mean_face": strip(mean_face),
                  "renders": [{**r, "fit": strip(r["fit"])} for r in rows], "missed": missed,
                  "seconds": round(time.perf_counter() - t0, 1)}
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
