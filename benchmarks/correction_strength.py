"""How strong the out-of-span correction's smoothness prior should be, measured on synthetic out-of-span faces.

    python benchmarks/correction_strength.py [--n 16] [--seed 7] [--smoothness 4 16 64 256]

Frames of the ``biwi-faces`` preset (smooth random displacements of ICT faces, region scaling,
asymmetry, half of them face-only crops; Kinect v1) with a seed that no benchmark table uses (7; the
real-geometry table uses 1616); the james scan is not looked at.  Each frame goes once through the
default output with the correction off; then :func:`facerecon.fitting.correction.correct_surface` runs
with each ``smoothness`` on the same fit, and the median distance of ICT's narrow face to the generated
mesh (camera frame, no alignment) is reported for the mean face at the true pose, the model fit and
the corrected surface.  Frames judged "no face" or with a pose error over 10 degrees are left out.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--smoothness", type=float, nargs="+", default=[4.0, 16.0, 64.0, 256.0])
    args = ap.parse_args(argv)
    import torch

    from facerecon.facemodel import FaceModel
    from facerecon.fitting.correction import CorrectionConfig, correct_surface, grid_noise_mm, source_grid
    from facerecon.geometry.pose import HeadPose
    from facerecon.geometry.rotations import geodesic_distance_deg
    from facerecon.io.frame import DepthFrame
    from facerecon.metrics.surface import SurfaceIndex
    from facerecon.pipeline import Reconstructor
    from facerecon.synth.generator import SynthGenerator

    torch.set_num_threads(1)
    model = FaceModel.load()
    rec = Reconstructor.from_pretrained("fast", model=model)
    gen = SynthGenerator("biwi-faces", seed=args.seed, model=model)
    face = model.region_vertices("narrow_face")
    frames = []
    for i in range(args.n):
        smp = gen.generate(i)
        true = HeadPose.from_quaternion(smp.labels["quaternion"], smp.labels["translation_mm"])
        frame = DepthFrame(smp.depth_mm, smp.intrinsics, f"biwi-faces #{i}")
        r = rec.reconstruct(frame, detail=False)
        if not r.face or geodesic_distance_deg(r.pose.R, true.R) > 10.0:
            continue
        pim = r.position_image
        zc = float(pim.center_mm[2])
        pts, valid = source_grid(frame.depth_mm, frame.intrinsics, pim.crop_box, (zc - pim.band_mm[0], zc + pim.band_mm[1]), pim.size)
        surf = SurfaceIndex(true.apply(gen.head_vertices(gen.frame_params(i)).astype(np.float64)), gen.assets.triangles)
        frames.append((r, pts[valid], grid_noise_mm(pts, valid), surf, true))
    print(f"{len(frames)} of {args.n} frames (face, pose error <= 10 deg)")

    def median_to_truth(surf, v_cam) -> float:
        return float(np.median(surf.query(v_cam[face]).distances))

    mean = np.median([median_to_truth(s, t.apply(model.reference_vertices.astype(np.float64))) for _, _, _, s, t in frames])
    fit = np.median([median_to_truth(s, r.vertices_camera) for r, _, _, s, _ in frames])
    print(f"mean face at the true pose {mean:.3f} mm, model fit {fit:.3f} mm")
    print("| smoothness | + correction mm | recovered (1 - corrected / fit) | ms (median, process time) |")
    print("|---|---|---|---|")
    for lam in args.smoothness:
        cfg = CorrectionConfig(smoothness=float(lam))
        out, ms = [], []
        for r, pts, noise, surf, _ in frames:
            t = time.process_time()
            c = correct_surface(pts, r.vertices_head, r.pose, model, cfg, noise)
            ms.append((time.process_time() - t) * 1e3)
            out.append(median_to_truth(surf, r.pose.apply(r.vertices_head + c.offsets)))
        corr = float(np.median(out))
        print(f"| {lam:g} | {corr:.3f} | {1 - corr / fit:.2f} | {np.median(ms):.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
