"""Training renders near the real TrueDepth sweep's start: what the training presets draw for a
near-profile head seen by a sideways phone, and how a pose network does on them.

    python benchmarks/sweep_start_synth.py [--presets truedepth,truedepth-faces] [--n 12] [--pose W.safetensors ...]

Scans each preset's frame parameters (no render) for frames within ``--tol`` degrees of the sweep's
first frame (upright yaw / pitch / roll ``--target``, image roll ``--image-roll``; the defaults are
frame-000's reference pose, ``benchmarks/sweep_start_diag.py``), renders the first ``--n`` of them
through the preset's sensor, localises and crops them as training does (no jitter), and prints per
frame: face only or not, body, hair, the crop centre in the head frame, the crop's valid share, and
for each network the direct error and the default output's path, confidence and error.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", default="truedepth,truedepth-faces")
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--scan", type=int, default=4000, help="frame indices scanned per preset")
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--target", default="-68.6,10.8,7.1")
    ap.add_argument("--image-roll", type=float, default=-90.0)
    ap.add_argument("--tol", type=float, default=12.0)
    ap.add_argument("--pose", type=Path, action="append", default=None)
    args = ap.parse_args(argv)
    from facerecon.errors import FaceReconError
    from facerecon.facemodel import FaceModel
    from facerecon.geometry.pose import HeadPose
    from facerecon.geometry.rotations import geodesic_distance_deg
    from facerecon.io.frame import DepthFrame
    from facerecon.pipeline import Reconstructor
    from facerecon.pipeline.frame import locate
    from facerecon.pipeline.weights import weights_path
    from facerecon.synth.generator import SynthGenerator
    from facerecon.synth.labels import rotation_of

    target = np.array([float(x) for x in args.target.split(",")])
    model = FaceModel.load()
    recs = [(p, Reconstructor.from_files(p, weights_path("shape", "fast"), model)) for p in (args.pose or [weights_path("pose", "fast")])]
    for preset in args.presets.split(","):
        gen = SynthGenerator(preset, seed=args.seed, model=model)
        picked = []
        for i in range(args.scan):
            p = gen.frame_params(i)
            # the upright angles come back from the rotation (R = Rz(image roll) E(yaw, pitch, roll))
            from facerecon.geometry.rotations import euler_to_matrix, matrix_to_euler

            up = matrix_to_euler(euler_to_matrix(0.0, 0.0, -p.image_roll_deg) @ p.rotation)
            if abs(p.image_roll_deg - args.image_roll) <= args.tol and np.all(np.abs(up - target) <= [args.tol, 2 * args.tol, 2 * args.tol]):
                picked.append(i)
            if len(picked) >= args.n:
                break
        print(f"\n== {preset}: {len(picked)} frames near the target among the first {i + 1}")
        for i in picked:
            s = gen.generate(i)
            lab = s.labels
            sc = lab["scene"]
            ref = HeadPose(rotation_of(lab), np.asarray(lab["translation_mm"], np.float64))
            frame = DepthFrame(s.depth_mm, s.intrinsics, source=f"synth:{preset}:{i}")
            try:
                loc = locate(frame)
            except FaceReconError as exc:
                print(f"  {i:5d}: not located ({exc.one_line()})")
                continue
            pim = loc.position_image
            off = ref.inverse_apply(pim.center_mm[None].astype(np.float64))[0]
            kind = "face-only" if sc.get("face_only") else ("body" if sc.get("body") is not None else "no body") + (
                "+hair" if sc.get("hair") is not None else "")
            line = f"  {i:5d}: {kind:14s} centre(head) {np.round(off, 0).tolist()} valid {pim.valid.mean():.2f}"
            for _, rec in recs:
                net = rec.pose.network_poses(pim)
                r = rec.reconstruct(frame)
                line += (f" | net {float(geodesic_distance_deg(net.pose.R, ref.R)):5.1f} default {r.chosen} conf {r.confidence:.2f} "
                         f"err {float(geodesic_distance_deg(r.pose.R, ref.R)):.1f} "
                         f"low terms {({k: round(v, 2) for k, v in r.confidence_terms.items() if v < 0.9})}")
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
