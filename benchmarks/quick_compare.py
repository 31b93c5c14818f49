"""Quick accuracy check of two weight sets on the held-out synthetic test sets (a subset of `make bench`).

    .venv/bin/python benchmarks/quick_compare.py OLD_POSE NEW_POSE OLD_SHAPE NEW_SHAPE [--data runs/data2]

Pose MAE on the three test sets (seeds 1001-1003); shape medians on the first 30
facewarehouse test samples (9-landmark alignment, EVAL_REGION, surface distances).
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("weights", nargs=4, type=Path)
    ap.add_argument("--data", type=Path, default=Path("runs/data2"))
    a = ap.parse_args()
    torch.set_num_threads(2)
    from evaluate import load_pose, load_shape

    from facerecon.evaluate import synthetic as se
    from facerecon.facemodel import FaceModel
    from facerecon.train.data import PositionSet

    m = FaceModel.load()
    tests = {p: PositionSet.load(a.data / f"test-{p}-kinect-v1-s{s}-n500.safetensors")
             for p, s in (("biwi", 1001), ("ict3dhp", 1002), ("facewarehouse", 1003))}
    for name, path in (("old", a.weights[0]), ("new", a.weights[1])):
        net, _ = load_pose(path)
        for p, d in tests.items():
            e, x = se.pose_accuracy(net, d)
            print(f"{name} pose {p}: {x['n']} of {x['n_requested']}, MAE {e.mae:.2f} (yaw {e.yaw_mae:.2f} pitch {e.pitch_mae:.2f} "
                  f"roll {e.roll_mae:.2f}), translation {e.translation_mean_mm:.1f} mm")
    for name, path in (("old", a.weights[2]), ("new", a.weights[3])):
        net, sub, _ = load_shape(path, m)
        r = se.shape_accuracy(net, sub, tests["facewarehouse"], m, 30)
        print(f"{name} shape facewarehouse n={r['n']}: median pred->gt {r['pred_to_gt_median_mm']:.2f} gt->pred "
              f"{r['gt_to_pred_median_mm']:.2f} (mean face {r['mean_face_baseline_median_mm']:.2f}), eq.8 {r['chamfer_eq8_mm2']:.2f} mm^2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
