"""Per-frame latency of the shipped pipeline on real frames (median per stage, ms).

    .venv/bin/python benchmarks/latency_pipeline.py [--n 30] [--threads 2] [--config fast]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
FRAMES = [REPO.parent / "shared/data/real/truedepth-mannequin/DepthFrames/frame-045.ply",
          REPO.parent / "shared/data/real/kinect-pcl/person.pcd"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--config", default="fast")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from facerecon.io import read_depth
    from facerecon.pipeline import Reconstructor

    rec = Reconstructor.from_pretrained(args.config)
    print(f"config {args.config}, {args.threads} threads, median of {args.n} runs (ms)")
    for path in FRAMES:
        if not path.exists():
            continue
        frame = read_depth(path)
        for _ in range(3):
            rec.reconstruct(frame)
        pose_runs = [rec.pose.estimate(frame).timings_ms for _ in range(args.n)]
        rec_runs = [rec.reconstruct(frame).timings_ms for _ in range(args.n)]
        med = lambda runs, k: statistics.median(r[k] for r in runs)  # noqa: E731
        pose_total = statistics.median(sum(r.values()) for r in pose_runs)
        stages = "  ".join(f"{k} {med(pose_runs, k):.2f}" for k in pose_runs[0])
        print(f"{path.name}: pose path {pose_total:.1f} ({stages}); reconstruct end to end {med(rec_runs, 'total'):.1f} "
              f"(shape network {med(rec_runs, 'shape_network'):.2f}, refine {med(rec_runs, 'refine'):.2f}, identity {med(rec_runs, 'identity'):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
