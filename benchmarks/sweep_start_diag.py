"""Why a pose network loses (or keeps) the real TrueDepth sweep's near-profile start: per frame, the
networks' raw poses (direct, flip halves, each turned crop) against the registration reference, the
reference pose as the network sees it on each turned crop (yaw / pitch / roll in the training
convention), the crop's statistics, and the default output's path, confidence and confidence terms.

    python benchmarks/sweep_start_diag.py --shared ../shared [--frames 0-5] [--pose W.safetensors ...]

Several ``--pose`` files are run one after the other on the same frames (default: the shipped
``pose_fast``).  Output: one block per network, one line per frame (MODEL_CARD.md, issue 22 item 4).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _frames(spec: str, n: int) -> list[int]:
    if "-" in spec:
        a, b = spec.split("-")
        return [i for i in range(int(a), int(b) + 1) if i < n]
    return [int(s) for s in spec.split(",") if int(s) < n]


def crop_stats(pim) -> dict:
    """Share of valid pixels, their bounding box (fraction of the crop), depth spread (mm)."""
    v = pim.valid
    if not v.any():
        return {"valid": 0.0}
    rows, cols = np.nonzero(v)
    z = pim.data[2][v] * pim.scale_mm
    s = v.shape[0]
    return {"valid": float(v.mean()), "bbox": (cols.min() / s, rows.min() / s, (cols.max() + 1) / s, (rows.max() + 1) / s),
            "z_p5_p95": (float(np.percentile(z, 5)), float(np.percentile(z, 95)))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--frames", default="0-5")
    ap.add_argument("--pose", type=Path, action="append", default=None)
    ap.add_argument("--shape", type=Path, default=None)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from real_geometry import truedepth

    from facerecon.facemodel import FaceModel
    from facerecon.geometry.rotations import euler_to_matrix, geodesic_distance_deg, matrix_to_euler
    from facerecon.pipeline import Reconstructor
    from facerecon.pipeline.frame import locate
    from facerecon.pipeline.weights import weights_path
    from facerecon.realdata import EVAL_POSE_KEY

    real = args.shared / "data" / "real"
    os.environ["FACERECON_REAL_DATA"] = str(real)
    model = FaceModel.load()
    frames, _ = truedepth(real / "truedepth-mannequin", model)
    idx = _frames(args.frames, len(frames))
    located = {i: locate(frames[i]) for i in idx}
    print("reference (yaw, pitch, roll) as the network sees it on the crop turned by k quarter turns; crop stats")
    for i in idx:
        ref = frames[i].meta[EVAL_POSE_KEY]
        eul = {k: np.round(matrix_to_euler(euler_to_matrix(0.0, 0.0, 90.0 * k) @ ref.R), 1).tolist() for k in range(4)}
        loc = located[i]
        off = ref.inverse_apply(loc.position_image.center_mm[None].astype(np.float64))[0]  # crop centre in the head frame
        print(f"frame {i:2d} {frames[i].source.split('/')[-1]}: " + "  ".join(f"k{k} {e}" for k, e in eul.items()),
              f"| crop centre in head frame (mm) {np.round(off, 0).tolist()} | {crop_stats(loc.position_image)}")
    for pose_path in args.pose or [weights_path("pose", "fast")]:
        rec = Reconstructor.from_files(pose_path, args.shape or weights_path("shape", "fast"), model)
        pe = rec.pose
        print(f"\n== {pose_path}")
        for i in idx:
            ref = frames[i].meta[EVAL_POSE_KEY]
            pim = located[i].position_image
            net = pe.network_poses(pim)
            e_net = float(geodesic_distance_deg(net.pose.R, ref.R))
            e_alt = [f"{c.label} {float(geodesic_distance_deg(c.pose.R, ref.R)):.1f}" for c in net.candidates[1:]]
            turned = pe.rotated_network_poses(pim)
            e_turn = []
            for k, c in zip((1, 2, 3), turned):
                seen = euler_to_matrix(0.0, 0.0, 90.0 * k) @ c.pose.R  # what the network said on the turned crop
                e_turn.append(f"k{k} {float(geodesic_distance_deg(c.pose.R, ref.R)):.1f} (said {np.round(matrix_to_euler(seen), 0).tolist()})")
            r = rec.reconstruct(frames[i])
            terms = {k: round(v, 2) for k, v in r.confidence_terms.items()}
            print(f"frame {i:2d}: net {e_net:.1f} deg ({', '.join(e_alt)}); turned {'; '.join(e_turn)}")
            print(f"          default: {r.chosen} conf {r.confidence:.2f} face {r.face} error {float(geodesic_distance_deg(r.pose.R, ref.R)):.1f} "
                  f"terms {terms} residual {r.check.residual_mm:.2f} tried {len(r.path.tried) if hasattr(r.path, 'tried') else '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
