"""Accuracy and speed of trained models -> docs/benchmarks.json, docs/benchmarks.md, figures.

    .venv/bin/python benchmarks/evaluate.py \
        --pose fast=src/facerecon/weights/pose_fast.safetensors [--pose NAME=PATH ...] \
        --shape fast=src/facerecon/weights/shape_fast.safetensors [--shape NAME=PATH ...] \
        [--data runs/data] [--james 60] [--shape-limit 100] [--out docs]

Pose weights may also be training checkpoints (``runs/*/checkpoint.safetensors``).
Test sets are built with ``facerecon train data`` (recipe ``fast``: seeds 1001-1003, never
used in training); they are made here if missing.  Every number in the report comes from
this run; the report states the machine, the command and the seeds.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def load_pose(path: Path):
    """(network, record) of exported weights or a checkpoint: the library's one loader."""
    from facerecon.pipeline.weights import load_pose_network

    return load_pose_network(path)


def load_shape(path: Path, model):
    """(network, subset, record): the library's one loader."""
    from facerecon.pipeline.weights import load_shape_network

    return load_shape_network(path, model)


def _pairs(items: list[str]) -> dict[str, Path]:
    out = {}
    for it in items:
        name, _, p = it.partition("=")
        out[name] = Path(p)
    return out


class Refined:
    """A reconstructor whose reconstruct() always uses the given ``refine`` / ``refine_shape``
    (the library's ``refine=`` arguments; ``refine=0``: the bare networks)."""

    def __init__(self, rec, refine: int | None, refine_shape: int | None = 0):
        self.rec, self.refine, self.refine_shape, self.model = rec, refine, refine_shape, rec.model

    def reconstruct(self, depth, intrinsics=None):
        return self.rec.reconstruct(depth, intrinsics, refine=self.refine, refine_shape=self.refine_shape)

    def estimate(self, depth, intrinsics=None):  # a pose estimator too (`facerecon pose`)
        return self.reconstruct(depth, intrinsics)


def latency(fn, n: int = 20) -> float:
    for _ in range(3):
        fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pose", action="append", default=[])
    ap.add_argument("--shape", action="append", default=[])
    ap.add_argument("--data", type=Path, default=REPO / "runs/data")
    ap.add_argument("--james", type=int, default=60)
    ap.add_argument("--shape-limit", type=int, default=40, help="synthetic test samples per preset for shape")
    ap.add_argument("--james-shape", type=int, default=6, help="james renders for shape (ICP on the scan is slow)")
    ap.add_argument("--sweep-step", type=int, default=3, help="every n-th TrueDepth frame for shape")
    ap.add_argument("--pose-refine", type=int, default=6, help="also the first pose model + this many rigid refinement iterations "
                    "with the robust check (the library default is 6; 0: skip)")
    ap.add_argument("--fit", type=int, default=20, help="synthetic facewarehouse frames for the network-vs-fitting comparison (0: skip)")
    ap.add_argument("--speed", default="fast,paper", help="configurations for benchmarks/speed.py ('' to skip)")
    ap.add_argument("--out", type=Path, default=REPO / "docs")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.time()

    from facerecon.evaluate import real as real_eval
    from facerecon.evaluate import synthetic as syn_eval
    from facerecon.facemodel import FaceModel
    from facerecon.pipeline import PoseEstimator, Reconstructor
    from facerecon.realdata.mannequin import load_mannequin_cloud
    from facerecon.realdata.mannequin_poses import mannequin_reference
    from facerecon.realdata.scan import load_james_scan
    from facerecon.realdata.target import james_eval_frames, real_frames
    from facerecon.train.data import PositionSet
    from facerecon.train.recipes import build_data

    model = FaceModel.load()
    paths = build_data("fast", args.data, parts=("test",))
    tests = {k.split(":")[1]: PositionSet.load(p) for k, p in paths.items() if k.startswith("test:")}
    james = james_eval_frames(args.james, seed=0)
    sweep = real_frames(kinect=False)
    results: dict = {"machine": f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads",
                     "command": " ".join(shlex.quote(a) for a in [sys.executable.split('/')[-1], *sys.argv]),
                     "test_sets": {k: v.meta for k, v in tests.items()}, "james_frames": {"n": args.james, "seed": 0},
                     "pose": {}, "shape": {}}
    for name, path in _pairs(args.pose).items():
        net, meta = load_pose(path)
        est = PoseEstimator(net, model, refine=0)  # the bare network (checked, never changed)
        r: dict = {"weights": str(path), "train_meta": {k: meta.get(k) for k in ("steps", "train_seconds", "step", "seconds", "command") if k in meta}}
        for preset, data in tests.items():
            e, extra = syn_eval.pose_accuracy(net, data)
            r[f"synthetic_{preset}"] = {**e.to_dict(), **extra}
        r["james"] = real_eval.pose_on_frames(est, james)
        r["truedepth_sweep"] = real_eval.sweep_angles(est, sweep)
        frame = sweep[0]
        r["latency_ms_truedepth"] = latency(lambda: est.estimate(frame))
        results["pose"][name] = r
        print(name, "pose done", round(time.time() - t_start), "s", flush=True)
    if args.shape:
        scan = load_james_scan(model=model)
        ref = mannequin_reference(model=model)
        cloud = load_mannequin_cloud()["points"]
        pose_name, pose_path = next(iter(_pairs(args.pose).items()))
        pose_net, _ = load_pose(pose_path)
        for name, path in _pairs(args.shape).items():
            net, subset, meta = load_shape(path, model)
            rec = Reconstructor(PoseEstimator(pose_net, model, refine=0), net, subset)  # networks alone unless refine= is given
            r = {"weights": str(path), "pose_weights": pose_name,
                 "train_meta": {k: meta.get(k) for k in ("steps", "train_seconds", "step", "seconds", "command") if k in meta}}
            for preset in ("facewarehouse", "biwi"):
                if preset in tests:
                    r[f"synthetic_{preset}"] = syn_eval.shape_accuracy(net, subset, tests[preset], model, args.shape_limit)
            r["james"] = real_eval.shape_on_james(rec, james[: args.james_shape], scan)
            r["truedepth_vs_expected"] = real_eval.shape_on_mannequin(rec, sweep, ref, cloud, step=args.sweep_step)
            r["latency_ms_truedepth"] = latency(lambda: rec.reconstruct(sweep[0]))
            results["shape"][name] = r
            print(name, "shape done", round(time.time() - t_start), "s", flush=True)
            if len(results["shape"]) == 1 and args.pose_refine:
                # the first pose model's pose after the default refinement of this reconstruction (rigid ICP
                # `--refine N`, fallback, then the joint pose + identity stage of check.toml [shape]): real frames only
                refined = Refined(rec, args.pose_refine, None)
                rp = {"weights": f"{pose_path} + {path}", "james": real_eval.pose_on_frames(refined, james),
                      "truedepth_sweep": real_eval.sweep_angles(refined, sweep),
                      "latency_ms_truedepth": latency(lambda: refined.estimate(sweep[0]), n=10)}
                results["pose"][f"{pose_name} + refine {args.pose_refine} + joint (default output)"] = rp
                print("refined pose done", round(time.time() - t_start), "s", flush=True)
    if args.fit and args.shape:
        # the classical baseline against the first shape model + the first pose model, same frames
        from facerecon.pipeline import FittingReconstructor
        from facerecon.synth.generator import SynthGenerator

        name, path = next(iter(_pairs(args.shape).items()))
        net, subset, _ = load_shape(path, model)
        networks = Reconstructor(PoseEstimator(pose_net, model, refine=0), net, subset)
        methods = {f"networks ({name})": networks, "networks + refine + refine-shape 12": Refined(networks, args.pose_refine, 12),
                   "fit": FittingReconstructor(model)}
        gen = SynthGenerator("facewarehouse", "kinect-v1", seed=1003, model=model)
        for label, rec in methods.items():
            r = {"synthetic_facewarehouse_frames": syn_eval.shape_on_synthetic_frames(rec, gen, args.fit),
                 "james": real_eval.shape_on_james(rec, james[: args.james_shape], scan),
                 "truedepth_vs_expected": real_eval.shape_on_mannequin(rec, sweep, ref, cloud, step=args.sweep_step)}
            r["latency_ms_truedepth"] = latency(lambda: rec.reconstruct(sweep[0]), n=20 if label.startswith("networks (") else 5)
            results.setdefault("fit_vs_networks", {})[label] = r
            print(label, "done", round(time.time() - t_start), "s", flush=True)
    for config in filter(None, args.speed.split(",")):
        # own process per configuration: its peak memory is its own (argument list, no shell)
        import subprocess
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            out_json = Path(tmp) / "speed.json"
            subprocess.run([sys.executable, str(REPO / "benchmarks/speed.py"), "--config", config, "--threads", str(args.threads),
                            "--json", str(out_json)], check=True, stdout=subprocess.DEVNULL)
            results.setdefault("speed", {})[config] = json.loads(out_json.read_text())
        print(config, "speed done", round(time.time() - t_start), "s", flush=True)
    results["seconds"] = round(time.time() - t_start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmarks.json").write_text(json.dumps(results, indent=1, default=float))
    from report import write_report  # benchmarks/report.py

    write_report(results, args.out)
    print("wrote", args.out / "benchmarks.md", "in", results["seconds"], "s")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
