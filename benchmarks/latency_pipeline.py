"""Per-frame latency of the shipped pipeline on real frames (median per stage, ms).

    .venv/bin/python benchmarks/latency_pipeline.py [--n 30] [--threads 1] [--config fast]

Prints, per frame, the pose path (``PoseEstimator.estimate``) and the default output
(``Reconstructor.reconstruct``) stage by stage: network, refine (check / rigid refinement),
identity (joint pose + identity), correct (the out-of-span correction), total; wall ms from the
result's timings, then the calling thread's CPU ms per stage (``time.thread_time`` around the
pipeline's stage methods: what a loaded machine inflates least; the shape network's thread is not
in it).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FRAMES = ["data/real/truedepth-mannequin/DepthFrames/frame-045.ply", "data/real/kinect-pcl/person.pcd"]
STAGES = ("network", "shape_network", "refine", "identity", "correct")
CPU_STAGES = ("networks", "check_refine", "identity", "correct")


def time_stages(pipeline, out: dict) -> None:
    """Wrap the pipeline's stage methods (on this instance) to add their thread CPU ms to ``out``."""
    for name in CPU_STAGES:
        fn = getattr(pipeline, name)

        def timed(*a, _fn=fn, _name=name, **k):
            t = time.thread_time()
            try:
                return _fn(*a, **k)
            finally:
                out[_name] = out.get(_name, 0.0) + 1e3 * (time.thread_time() - t)

        setattr(pipeline, name, timed)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--config", default="fast")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    args = ap.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))  # before numpy is imported
    from facerecon.io import read_depth
    from facerecon.pipeline import Reconstructor

    rec = Reconstructor.from_pretrained(args.config)
    cpu: dict = {}
    time_stages(rec.pipeline, cpu)
    print(f"config {args.config}, {args.threads} threads, median of {args.n} runs (ms)")
    for rel in FRAMES:
        path = args.shared / rel
        if not path.exists():
            continue
        frame = read_depth(path)
        for _ in range(3):
            rec.reconstruct(frame)
        pose_runs = [rec.pose.estimate(frame).timings_ms for _ in range(args.n)]
        rec_runs, cpu_runs = [], []
        for _ in range(args.n):
            cpu.clear()
            t = time.thread_time()
            rec_runs.append(rec.reconstruct(frame).timings_ms)
            cpu_runs.append({**cpu, "total": 1e3 * (time.thread_time() - t)})
        med = lambda runs, k: statistics.median(r.get(k, 0.0) for r in runs)  # noqa: E731
        pose_total = statistics.median(sum(r.values()) for r in pose_runs)
        stages = "  ".join(f"{k} {med(pose_runs, k):.2f}" for k in pose_runs[0])
        parts = ", ".join(f"{k} {med(rec_runs, k):.2f}" for k in STAGES)
        print(f"{path.name}: pose path {pose_total:.1f} ({stages}); reconstruct end to end {med(rec_runs, 'total'):.1f} ({parts})")
        parts = ", ".join(f"{k} {med(cpu_runs, k):.2f}" for k in CPU_STAGES)
        print(f"{path.name}: reconstruct thread CPU {med(cpu_runs, 'total'):.1f} ({parts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
