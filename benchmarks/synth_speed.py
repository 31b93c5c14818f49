"""Synthetic-data throughput: 640x480 Kinect v1 frames/s with 1 and 2 workers, and where the time goes.

    python benchmarks/synth_speed.py [--n 300] [--preset biwi] [--sensor kinect-v1] [--workers 1 2]

"1 worker" generates in-process; "N workers" runs ``generate_dataset`` (spawned processes,
shards written to a temporary directory).  Both include encoding and writing the shards;
the steady-state rate excludes worker start-up (imports, model load, numba cache).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def profile_one_worker(preset: str, sensor: str, n: int) -> dict:
    from facerecon.synth import sensors as S
    from facerecon.synth.dataset import storage_unit_mm
    from facerecon.synth.generator import SynthGenerator
    from facerecon.synth.shards import encode_sample

    gen = SynthGenerator(preset, sensor, seed=0)
    unit = storage_unit_mm(gen.sensor)
    for i in range(3):  # warm-up: numba cache, subset bases
        encode_sample(*(lambda s: (s.depth_mm, s.segment, s.labels))(gen.generate(10_000 + i)), unit)
    stages: dict[str, list[float]] = {}
    sensor_stages: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    for i in range(n):
        s = gen.generate(i)
        for k, v in s.timings.items():
            stages.setdefault(k, []).append(v)
        for k, v in getattr(S.apply_sensor, "last_timings", {}).items():
            sensor_stages.setdefault(k, []).append(v)
        t = time.perf_counter()
        encode_sample(s.depth_mm, s.segment, s.labels, unit)
        stages.setdefault("encode", []).append(time.perf_counter() - t)
    wall = time.perf_counter() - t0
    return {"fps": n / wall, "stages": stages, "sensor_stages": sensor_stages}


def run_workers(preset: str, sensor: str, n: int, workers: int) -> dict:
    from facerecon.synth.dataset import generate_dataset

    marks: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate_dataset(Path(tmp) / "ds", preset, sensor, n=n, seed=0, workers=workers, shard_size=max(8, n // (4 * workers)),
                         progress=lambda done, total: marks.append((time.perf_counter(), done)))  # fmt: skip
        wall = time.perf_counter() - t0
    first = next(((t, d) for t, d in marks if d >= max(8, n // 10)), marks[0])
    last = marks[-1]
    steady = (last[1] - first[1]) / (last[0] - first[0]) if last[0] > first[0] else float("nan")
    return {"fps_total": n / wall, "fps_steady": steady, "wall": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--preset", default="biwi")
    ap.add_argument("--sensor", default="kinect-v1")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args()
    os.environ.setdefault("MPLBACKEND", "Agg")
    print(f"synthetic frames: preset {a.preset}, sensor {a.sensor}, 640x480, n={a.n}, CPUs={os.cpu_count()}")
    prof = profile_one_worker(a.preset, a.sensor, a.n)
    total = sum(np.sum(v) for v in prof["stages"].values())
    print(f"\n1 worker (in-process): {prof['fps']:.1f} frames/s")
    print("  where the time goes (median ms/frame, share of total):")
    for k, v in prof["stages"].items():
        print(f"    {k:<16} {1e3 * np.median(v):6.2f} ms  {100 * np.sum(v) / total:5.1f}%")
    print("  sensor stages (median ms):", ", ".join(f"{k} {1e3 * np.median(v):.2f}" for k, v in prof["sensor_stages"].items()))
    for w in a.workers:
        r = run_workers(a.preset, a.sensor, a.n, w)
        print(f"\n{w} worker(s) (generate_dataset, shards written): {r['fps_steady']:.1f} frames/s steady, "
              f"{r['fps_total']:.1f} frames/s including start-up ({r['wall']:.1f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
