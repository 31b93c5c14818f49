"""Speed per stage, throughput and peak memory of the whole pipeline for one configuration.

    .venv/bin/python benchmarks/speed.py --config fast [--n 30] [--threads 2] [--json OUT.json]

Runs in its own process (``benchmarks/evaluate.py`` starts one per configuration) so that
the peak resident memory (``ru_maxrss``) belongs to that configuration alone.  The
``paper`` configuration has no trained weights in this project; its networks are built
with their initial weights (timing and memory do not depend on the values), and the
output says so.  Stages: ``localize``, ``crop`` (position image), ``network`` (DAPoseNet),
``check`` (landmark self-check), ``shape_network`` (DAShapeNet), ``mesh_and_refine``
(upsampling to all ICT vertices and posing); medians over ``--n`` runs per real frame.
The shape network runs beside the pose network and its check (second core), so the stages
add up to more than the total.  ``pose_path_ms``: ``PoseEstimator.estimate`` alone.
Throughput: frames per second of the whole ``reconstruct`` call, sequentially, one process.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
FRAMES = {"truedepth 320x240": REPO.parent / "shared/data/real/truedepth-mannequin/DepthFrames/frame-045.ply",
          "kinect 640x480": REPO.parent / "shared/data/real/kinect-pcl/person.pcd"}


def build(config: str):
    """(Reconstructor, weights description) for a configuration, trained weights when shipped."""
    from facerecon.errors import AssetError
    from facerecon.facemodel import FaceModel
    from facerecon.facemodel.shape_subset import ShapeSubset
    from facerecon.nets.argan import DAShapeNet
    from facerecon.nets.pose import DAPoseNet
    from facerecon.pipeline import PoseEstimator, Reconstructor
    from facerecon.pipeline.weights import weights_path

    model = FaceModel.load()
    try:
        weights_path("pose", config)
        weights_path("shape", config)
        return Reconstructor.from_pretrained(config, model=model), "shipped weights"
    except AssetError:  # no shipped weights for this configuration: initial weights, timing only
        torch.manual_seed(0)
        subset = ShapeSubset.build(model, 1024)
        pose = PoseEstimator(DAPoseNet(config).eval(), model)
        return Reconstructor(pose, DAShapeNet(config, subset.n).eval(), subset), "initial (untrained) weights: timing only"


def peak_rss_mib() -> float:
    """This process's peak resident memory.  ``VmHWM`` (Linux) starts afresh at exec;
    ``ru_maxrss`` keeps the high-water mark of the parent it was forked from."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="fast")
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="write the results here (default: print)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from facerecon.io import read_depth

    rss0 = peak_rss_mib()
    rec, weights = build(args.config)
    out: dict = {"config": args.config, "threads": args.threads, "weights": weights, "n": args.n, "frames": {}}
    for label, path in FRAMES.items():
        if not path.exists():
            continue
        frame = read_depth(path)
        for _ in range(3):
            rec.reconstruct(frame)
        runs = []
        t0 = time.perf_counter()
        for _ in range(args.n):
            runs.append(rec.reconstruct(frame).timings_ms)
        wall = time.perf_counter() - t0
        stages = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0] if k != "total"}
        # the pose path alone (PoseEstimator.estimate, as `facerecon pose` runs it): inside
        # reconstruct the shape network shares the machine with it
        pose_only = []
        for _ in range(args.n):
            t = time.perf_counter()
            rec.pose.estimate(frame)
            pose_only.append((time.perf_counter() - t) * 1e3)
        out["frames"][label] = {"stages_ms": stages, "pose_path_ms": round(statistics.median(pose_only), 2),
                                "total_ms": round(statistics.median(r["total"] for r in runs), 2),
                                "throughput_fps": round(args.n / wall, 1)}
    out["peak_rss_mib"] = round(peak_rss_mib(), 1)
    out["model_and_python_rss_mib"] = round(rss0, 1)
    text = json.dumps(out, indent=1)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
