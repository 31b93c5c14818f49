"""Why the single-photo identity is worse than ICT's mean face (issue #21, round 6): the photo fit
re-run several ways on cached landmarks, its shape scored NoW-style on the james renders and on the
TrueDepth frames' own depth.

    python benchmarks/photo_identity_diag.py cache --shared ../shared --seeds 100,0 --n 24 --max-yaw 60 --out /tmp/pid
    python benchmarks/photo_identity_diag.py eval --shared ../shared --out /tmp/pid --on james100 base,lam=4,K=10
    python benchmarks/photo_identity_diag.py eval --shared ../shared --out /tmp/pid --on td mean,base,elam=10

``cache`` runs the photo path's detection and landmarks once per image (the james renders of
``photo_shape_eval.py``'s scenes for each seed, ``--max-yaw`` as there; the 30 TrueDepth frames with
their own intrinsics, each frame's depth scan of ``photo_eval.py``'s ``truedepth_shape`` section, and
its rgbd pose's turn) and writes the fit's targets (``.npz``, arrays only).  ``eval`` fits each
variant to the cached targets (``fit_photo``, as the pipeline does) and prints, for james, the
NoW-style median (rigid, pooled) of the fitted mesh and of its identity alone (no expression), the
rotation error median by |yaw| 0-15 / 15-30 / 30-40 / 40-60, the median |identity| and sum of the
expression weights; for the TrueDepth frames the NoW-style median (rigid) of the fitted mesh and of
its identity alone against the frame's depth (every other point of the section's scan: half the ICP
time).  Variants (``+`` joins several):

* ``base``: the shipped settings; ``mean``: ICT's mean face (TrueDepth only; on james it is
  ``photo_shape_eval.py``'s reference row);
* ``lam=X`` / ``elam=X``: the identity prior / the expression priors (L2 and L1) times X;
* ``K=N`` / ``E=N``: the first N identity modes / expressions only;
* ``use=ibug68`` / ``use=dense``: the fused 68 only / the dense Face Mesh points only;
  ``use=true68`` (james only): the scan's own 68 landmarks projected (the jaw sliding), no detector;
* ``sw=def``: each landmark weighted by 1 / sigma^2 of its region, sigma the fusion's measured error
  combined with the landmark-definition error (the shift of james's 68 from ICT's landmark vertices,
  ``photo_correspondence.py``: brows 7.1, nose 1.7, eyes 1.8, mouth 1.5 mm); the dense points by
  Face Mesh's sigma of the region of their nearest ICT landmark; ``sw=defmap``: the same and the
  identity prior the MAP one for those sigmas (1 / (2 sum_68 sigma^-2), sigma in face sizes);
  ``sw=nodef``: the fusion's sigmas alone.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

REGIONS = ((0, 17), (17, 27), (27, 36), (36, 48), (48, 68))  # jaw, brows, nose, eyes, mouth (iBUG)
# the landmark-definition error per region: the shift of james's 68 from ICT's landmark vertices
# (photo_correspondence.py, docs/photo.md round 3), in % of james's outer-eye-corner distance (95.2 mm);
# the jaw slides on the contour (no fixed vertex)
DEFINITION_PCT = np.array([0.0, 7.1, 1.7, 1.8, 1.5]) / 95.2 * 100.0


def _targets_arrays(t) -> dict:
    return {"points": t.points, "vertices": t.vertices, "bary": t.bary, "weight": t.weight, "contour": t.contour}


def cache(args) -> None:
    from photo_eval import depth_scan, face_turn_deg
    from photo_shape_eval import james_camera, load_james, rendered_scenes

    from facerecon.facemodel import FaceModel
    from facerecon.io.truedepth import read_truedepth_frame
    from facerecon.photo.image import Photo
    from facerecon.pipeline.photo import PhotoReconstructor

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    model = FaceModel.load()
    rec = PhotoReconstructor.from_pretrained(model=model)
    scan, texture, uv, face_uv, _ = load_james(args.shared, model)
    intr, f = james_camera()
    for seed in [int(s) for s in args.seeds.split(",") if s]:
        done = []
        for sc, rgb in rendered_scenes(scan, texture, uv, face_uv, intr, args.n, seed, args.max_yaw):
            mk = rec.landmarks(rec.detect(Photo(rgb, "james", f), focal_px=f), 0)
            np.savez(out / f"james_{seed}_{sc['index']}.npz", **_targets_arrays(mk.targets))
            done.append(sc)
        (out / f"james_{seed}.json").write_text(json.dumps(done))
        print(f"james seed {seed}: {len(done)} renders", flush=True)
    names = []
    for path in sorted((args.shared / "data" / "real" / "truedepth-mannequin" / "DepthFrames").glob("frame-*.ply")):
        fr = read_truedepth_frame(path)
        photo = Photo(fr.color, path.name, float(fr.intrinsics.fx))
        mk = rec.landmarks(rec.detect(photo, intrinsics=fr.intrinsics), 0)
        s = depth_scan(fr, mk.points68)
        if s is None:
            continue
        d = rec.reconstruct_rgbd(fr, texture=False, colour=rec.reconstruct(photo, texture=False, intrinsics=fr.intrinsics))
        k = fr.intrinsics
        np.savez(out / f"td_{path.stem}.npz", **_targets_arrays(mk.targets), scan_points=s[0], scan_lms=s[1], scan_ids=s[2],
                 K=np.array([k.fx, k.fy, k.cx, k.cy, k.width, k.height]), turn=face_turn_deg(d.pose.R, d.pose.t_mm))
        names.append(path.stem)
    (out / "td.json").write_text(json.dumps(names))
    print(f"truedepth: {len(names)} frames", flush=True)


class Diag:
    def __init__(self, shared: Path, out: Path):
        from photo_shape_eval import james_camera, load_james

        from facerecon.facemodel import FaceModel
        from facerecon.facemodel.model import RENDER_REGIONS
        from facerecon.photo.config import PhotoFitConfig
        from facerecon.photo.fusion import FusionConfig

        self.out = out
        self.model = FaceModel.load()
        self.tris = self.model.region_triangles(*RENDER_REGIONS)
        self.base = PhotoFitConfig.load()
        self.scan, _, _, _, self.inner = load_james(shared, self.model)
        self.james_intr, _ = james_camera()
        fc = FusionConfig()
        self.sigma_fm = np.asarray(fc.sigma_facemesh, np.float64)
        sigma_dl = np.asarray(fc.sigma_dlib, np.float64)
        self.sigma_fused = 1.0 / np.sqrt(1.0 / self.sigma_fm**2 + 1.0 / sigma_dl**2)
        self.region = np.zeros(68, int)
        for g, (lo, hi) in enumerate(REGIONS):
            self.region[lo:hi] = g
        self.lm3 = self.model.neutral[self.model.landmarks_68].astype(np.float64)

    def sigma_weighted(self, t, definition: bool):
        """(targets weighted by 1 / sigma^2 per region, the MAP identity prior for those sigmas)."""
        from facerecon.photo.fit import LandmarkTargets

        d = DEFINITION_PCT if definition else 0.0 * DEFINITION_PCT
        s68 = np.sqrt(self.sigma_fused**2 + d**2)[self.region]
        sfm = np.sqrt(self.sigma_fm**2 + d**2)
        n = len(t.points)
        is68 = np.arange(n) >= n - 68
        w = t.weight.copy()
        w68 = w[is68] / s68**2
        w68 *= w[is68].sum() / w68.sum()
        p = np.einsum("kj,kjc->kc", t.bary[~is68], self.model.neutral[t.vertices[~is68]].astype(np.float64))
        reg = self.region[np.argmin(((p[:, None] - self.lm3[None, 17:]) ** 2).sum(-1), 1) + 17]
        reg[t.contour[~is68]] = 0
        wd = w[~is68] / sfm[reg] ** 2
        wd *= w[~is68].sum() / wd.sum()
        w[is68], w[~is68] = w68, wd
        p68, pts = t.points[is68], t.points[t.weight > 0]
        ratio = np.linalg.norm(p68[36] - p68[45]) / (np.linalg.norm(pts.max(0) - pts.min(0)) / np.sqrt(2.0))
        s = s68 / 100.0 * ratio  # in face sizes, the fit's residual unit
        return LandmarkTargets(t.points, t.vertices, t.bary, w, t.contour), 1.0 / (2.0 * float((1.0 / s**2).sum()))

    def targets(self, z, name: str, truth=None):
        """(targets, fit config) of a variant for one cached image; truth: (pose, intrinsics) for use=true68."""
        from facerecon.photo.fit import LandmarkTargets

        t = LandmarkTargets(z["points"], z["vertices"], z["bary"], z["weight"], z["contour"])
        cfg = self.base
        for part in name.split("+"):
            key, _, v = part.partition("=")
            if part in ("base", "mean"):
                continue
            if key == "lam":
                cfg = replace(cfg, identity_prior=self.base.identity_prior * float(v))
            elif key == "elam":
                cfg = replace(cfg, expression_prior=self.base.expression_prior * float(v), expression_l1=self.base.expression_l1 * float(v))
            elif key == "K":
                cfg = replace(cfg, n_identity=int(v))
            elif key == "E":
                cfg = replace(cfg, n_expression=int(v))
            elif part == "use=ibug68":
                t = t.subset(np.arange(len(t.points)) >= len(t.points) - 68)
            elif part == "use=dense":
                t = t.subset(np.arange(len(t.points)) < len(t.points) - 68)
            elif part == "use=true68":
                if truth is None:
                    raise SystemExit("use=true68 needs the james renders")
                pose, intr = truth
                contour = np.zeros(68, bool)
                contour[:17] = True
                t = LandmarkTargets.from_vertices(intr.project(pose.apply(self.scan.landmarks_68)), self.model.landmarks_68,
                                                  contour=contour)
            elif key == "sw" and v in ("def", "defmap", "nodef"):
                t, lam = self.sigma_weighted(t, v != "nodef")
                if v == "defmap":
                    cfg = replace(cfg, identity_prior=lam)
            else:
                raise SystemExit(f"unknown variant part {part!r}")
        return t, cfg

    def james(self, seed: int, name: str) -> str:
        from photo_shape_eval import now_errors

        from facerecon.geometry.pose import HeadPose
        from facerecon.geometry.rotations import euler_to_matrix, geodesic_distance_deg
        from facerecon.photo.fit import fit_photo

        m = self.model
        d, dn, rot, yaw, idn, ex = [], [], [], [], [], []
        for sc in json.loads((self.out / f"james_{seed}.json").read_text()):
            z = np.load(self.out / f"james_{seed}_{sc['index']}.npz")
            r_true = euler_to_matrix(sc["yaw"], sc["pitch"], 0.0)
            t, cfg = self.targets(z, name, (HeadPose(r_true, sc["t_mm"]), self.james_intr))
            fit = fit_photo(m, t, self.james_intr, cfg)
            v = fit.pose.apply(m.vertices(fit.identity, fit.expression).astype(np.float64))
            d.append(now_errors(self.scan, self.inner, v, m, self.tris, ("rigid",))["rigid"]["distances"])
            dn.append(now_errors(self.scan, self.inner, m.vertices(fit.identity, None).astype(np.float64), m, self.tris,
                                 ("rigid",))["rigid"]["distances"])
            rot.append(float(geodesic_distance_deg(fit.rotation, r_true)))
            yaw.append(abs(sc["yaw"]))
            idn.append(float(np.linalg.norm(fit.identity)))
            ex.append(float(fit.expression.sum()))
        rot, yaw = np.array(rot), np.array(yaw)
        bins = [np.median(rot[(yaw >= lo) & (yaw < hi)]) if ((yaw >= lo) & (yaw < hi)).any() else np.nan
                for lo, hi in ((0, 15), (15, 30), (30, 40), (40, 61))]
        return (f"NoW median {np.median(np.concatenate(d)):.3f} mm, identity alone {np.median(np.concatenate(dn)):.3f}; "
                f"rotation {' / '.join(f'{b:.1f}' for b in bins)} (all {np.median(rot):.1f}) deg; |identity| "
                f"{np.median(idn):.2f}, sum(expression) {np.median(ex):.2f}")

    def truedepth(self, name: str) -> str:
        from photo_eval import depth_shape_errors

        from facerecon.geometry.camera import Intrinsics
        from facerecon.photo.fit import fit_photo

        m = self.model
        d, dn = [], []
        for stem in json.loads((self.out / "td.json").read_text()):
            z = np.load(self.out / f"td_{stem}.npz")
            k = z["K"]
            intr = Intrinsics(k[0], k[1], k[2], k[3], int(k[4]), int(k[5]))
            s = (z["scan_points"][::2], z["scan_lms"], z["scan_ids"])
            if name == "mean":
                d.append(depth_shape_errors(s, m.neutral.astype(np.float64), m, self.tris)["rigid"]["distances"])
                continue
            t, cfg = self.targets(z, name)
            fit = fit_photo(m, t, intr, cfg)
            v = fit.pose.apply(m.vertices(fit.identity, fit.expression).astype(np.float64))
            d.append(depth_shape_errors(s, v, m, self.tris)["rigid"]["distances"])
            dn.append(depth_shape_errors(s, m.vertices(fit.identity, None).astype(np.float64), m, self.tris)["rigid"]["distances"])
        alone = f", identity alone {np.median(np.concatenate(dn)):.3f}" if dn else ""
        return f"NoW median {np.median(np.concatenate(d)):.3f} mm{alone} ({len(d)} frames)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("cache", "eval"))
    ap.add_argument("--shared", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="The cache folder.")
    ap.add_argument("--seeds", default="100,0", help="cache: the james render seeds.")
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--max-yaw", type=float, default=60.0)
    ap.add_argument("--on", nargs=2, metavar=("SET", "VARIANTS"), help="eval: jamesSEED or td, and comma-separated variants.")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    if args.what == "cache":
        cache(args)
        return 0
    diag = Diag(args.shared, args.out)
    where, names = args.on
    for name in names.split(","):
        t = time.perf_counter()
        line = diag.truedepth(name) if where == "td" else diag.james(int(where.removeprefix("james")), name)
        print(f"{where} {name}: {line}  ({time.perf_counter() - t:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
