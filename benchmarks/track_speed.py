"""What a tracked frame costs: the tracker per phase in process, and ``facerecon track`` as a user runs it.

    .venv/bin/python benchmarks/track_speed.py --shared ../shared [--passes 3] [--cli 4] [--repeat 3] [--profile N] [--json OUT.json]

The real TrueDepth sweep (``data/real/truedepth-mannequin/DepthFrames``, 30 frames):

* **in process**: ``Tracker.update`` over the sweep, ``--passes`` times (the first pass warms the
  caches and is not reported); CPU time of the calling thread (``time.thread_time``: the networks
  run on it, one onnxruntime thread) per frame, for the whole pass (the first frame goes through
  the single-frame default, frames before the identity freezes run the shape network too) and
  for the frames after the freeze (the steady state of a long track); and the steady state per
  phase (each phase's own time, the phases it calls excluded).  ``--profile N``: cProfile of the
  steady-state frames, the N largest entries by own time.
* **the command's loop in process** (``--cli K``): the sweep played forwards and backwards K times
  (below) read as ``facerecon track`` reads it (``open_sequence`` + ``cli._frames.read_ahead``: a
  reader thread parses the PLY frames ahead) and tracked on the main thread: CPU of the main thread
  (the tracker: the critical path when the two threads run on two cores) and of the whole process
  (reader included) per frame, wall per frame; after a first pass that warms the caches.
* **the command** (``--cli K``, 0 to skip): ``facerecon track`` in a fresh process on the sweep
  (30 PLY frames) and on the sweep played forwards and backwards K times (30 K frames: copies of
  the PLY files with their header timestamp rewritten, 0.1 s apart as in the sweep), both with
  ``--no-plot``; per further frame = (T_long - T_short) / (30 K - 30), wall and CPU (user +
  system, all threads: the reader thread that parses the PLY frames ahead included).  The
  difference cancels start-up and what is done once per sequence (the first frame, the identity
  face solved when the outputs are written, the files).  ``--repeat R`` short / long pairs run
  alternately (each pair and the medians printed: one pair's difference carries two start-ups'
  noise), with the long run's own loop rate from its summary line beside them.

The machine may be shared: the load average is printed beside the figures; CPU time is the
steadier figure, the wall clock is what a user sees.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

EXE = [str(Path(sys.executable).with_name("facerecon"))]
# (object path, attribute, label): the phases timed in process, each without the phases it calls
PHASES = (
    ("tracking.tracker:Tracker", "_locate_and_crop", "locate + crop"),
    ("pipeline.frame:DepthPipeline", "networks", "networks (rest: the shape network before the freeze)"),
    ("pipeline.pose:PoseEstimator", "network_poses", "pose network"),
    ("tracking.tracker:MeasuredSurface", "from_position_image", "measured surface"),
    ("tracking.tracker", "refine_rigid", "rigid ICP (rest)"),
    ("pipeline.check:ProjectivePairs", "__call__", "projective pairs"),
    ("pipeline.check:MeasuredSurface", "normal_grid", "grid normals"),
    ("tracking.tracker:Tracker", "_expression_steps", "expression steps"),
    ("tracking.tracker", "surface_check", "check"),
    ("tracking.tracker:Tracker", "_checked_face", "check's face rows"),
    ("tracking.tracker", "describe", "confidence"),
    ("tracking.tracker:Tracker", "_fuse_surface", "fusion: points"),
    ("tracking.tracker:HeadSurface", "add", "fusion: voxels"),
    ("tracking.tracker:HeadSurface", "sample", "fused sample"),
    ("tracking.tracker:Tracker", "_update", "rest of update"),
)


def _load() -> float:
    return os.getloadavg()[0]


def sweep(shared: Path):
    from facerecon.io import read_depth
    from facerecon.tracking.sources import folder_files, frame_time

    folder = shared / "data" / "real" / "truedepth-mannequin" / "DepthFrames"
    frames = sorted((read_depth(p) for p in folder_files(folder)), key=frame_time)
    return folder, frames


def instrument():
    """Wrap each phase so that its own thread CPU time (its timed callees excluded) is added up in ``acc``."""
    import importlib

    acc: dict = defaultdict(float)
    stack: list = []

    def wrap(owner, name, label):
        f = getattr(owner, name)

        @functools.wraps(f)
        def timed(*a, **k):
            t0 = time.thread_time()
            stack.append(0.0)
            try:
                return f(*a, **k)
            finally:
                dt = time.thread_time() - t0
                acc[label] += dt - stack.pop()
                if stack:
                    stack[-1] += dt

        setattr(owner, name, timed)

    for where, name, label in PHASES:
        mod, _, cls = where.partition(":")
        owner = importlib.import_module("facerecon." + mod)
        owner = getattr(owner, cls) if cls else owner
        if hasattr(owner, name):  # (an older tree may lack a phase)
            wrap(owner, name, label)
    return acc


def in_process(shared: Path, passes: int, profile: int) -> dict:
    from facerecon.pipeline import Reconstructor
    from facerecon.tracking import Tracker

    _, frames = sweep(shared)
    acc = instrument()
    tracker = Tracker(Reconstructor.from_pretrained("fast"))
    out: dict = {"frames": len(frames), "load_before": _load()}
    for k in range(max(passes, 2)):
        tracker.reset()
        acc.clear()
        cpu, frozen = [], None
        for f in frames:
            c0 = time.thread_time()
            t = tracker.update(f)
            cpu.append(time.thread_time() - c0)
            if frozen is None and t.identity_frozen:
                frozen = t.index
                acc.clear()  # the phases from the first frame after the freeze
        cpu_ms = 1e3 * np.asarray(cpu)
        steady = cpu_ms[frozen + 1:] if frozen is not None else cpu_ms[:0]
        if k == 0:
            continue
        out.setdefault("pass_cpu_ms_per_frame", []).append(float(cpu_ms.mean()))
        out.setdefault("steady_cpu_ms_per_frame", []).append(float(steady.mean()) if len(steady) else float("nan"))
        out["identity_frozen_at"] = frozen
        out["steady_frames"] = int(len(steady))
        out["first_frame_cpu_ms"] = float(cpu_ms[0])
        out["phases_ms"] = {lab: 1e3 * v / max(len(steady), 1) for lab, v in sorted(acc.items(), key=lambda kv: -kv[1])}
    out["load_after"] = _load()
    if profile:
        import cProfile
        import io
        import pstats

        tracker.reset()
        for f in frames[: (frozen or 0) + 1]:
            tracker.update(f)
        pr = cProfile.Profile()
        pr.enable()
        for f in frames[(frozen or 0) + 1:]:
            tracker.update(f)
        pr.disable()
        buf = io.StringIO()
        pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(profile)
        out["profile"] = buf.getvalue()
    return out


def pingpong(frames: list[Path], rounds: int, out: Path) -> int:
    """Copies of the sweep's PLY files played forwards and backwards ``rounds`` times, 0.1 s apart
    (the header's ``"timestamp":`` rewritten with the same number of characters)."""
    order = []
    for k in range(rounds):
        order += list(range(len(frames))) if k % 2 == 0 else list(range(len(frames)))[::-1]
    out.mkdir(parents=True)
    pat = re.compile(rb'"timestamp":([0-9.]+)')
    for i, j in enumerate(order):
        data = frames[j].read_bytes()
        m = pat.search(data, 0, 200000)
        old = m.group(1)
        new = f"{50000.0 + 0.1 * i:.{len(old) - 6}f}".encode()
        if len(new) != len(old):
            raise SystemExit(f"{frames[j]}: cannot rewrite its timestamp {old!r} in place")
        (out / f"frame-{i:05d}.ply").write_bytes(data[:m.start(1)] + new + data[m.end(1):])
    return len(order)


def run(args: list[str]) -> tuple[float, float, float]:
    """Wall and CPU seconds of one ``facerecon`` process, and the frames/s its own summary line reports
    (the tracking loop alone: no start-up, no files)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run([*EXE, *args], capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"facerecon {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    m = re.search(r"([0-9.]+) frames/s", r.stderr)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), float(m.group(1)) if m else float("nan")


def loop_in_process(folder: Path, n: int) -> dict:
    """``facerecon track``'s loop (reader thread ahead, tracker on this thread) over ``folder``, timed."""
    from facerecon.cli._frames import PIPELINE_AHEAD, read_ahead
    from facerecon.pipeline import Reconstructor
    from facerecon.tracking import DepthSequence, Tracker, open_sequence

    tracker = Tracker(Reconstructor.from_pretrained("fast"))
    out: dict = {"frames": n, "load_before": _load()}
    for k in range(2):
        frames = open_sequence(folder)
        seq = DepthSequence(lambda: read_ahead(iter(frames), PIPELINE_AHEAD), frames.name, frames.length)
        tracker.reset()
        t0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
        tracked = sum(tr.tracked for _, tr in tracker.run(seq))
        wall, main_cpu, cpu = time.perf_counter() - t0, time.thread_time() - c0, time.process_time() - p0
    out.update({"tracked": tracked, "wall_ms_per_frame": 1e3 * wall / n, "frames_per_second": n / wall,
                "main_thread_cpu_ms_per_frame": 1e3 * main_cpu / n, "process_cpu_ms_per_frame": 1e3 * cpu / n, "load_after": _load()})
    return out


def command(shared: Path, rounds: int, repeat: int = 3) -> dict:
    from facerecon.tracking.sources import folder_files

    folder = shared / "data" / "real" / "truedepth-mannequin" / "DepthFrames"
    files = folder_files(folder)  # in time order
    tmp = Path(tempfile.mkdtemp(prefix="track_speed_"))
    try:
        n_long = pingpong(files, rounds, tmp / "long")
        loop = loop_in_process(tmp / "long", n_long)
        run(["track", str(folder), "-o", str(tmp / "warm"), "--no-plot"])  # caches (numba, ONNX) warm
        load = _load()
        # short and long runs alternated ``repeat`` times: one pair's difference carries the noise of two
        # start-ups (~0.2-0.4 s each on a shared machine) over only 30 (K - 1) frames
        pairs = []
        for _ in range(max(repeat, 1)):
            ws, cs, _ = run(["track", str(folder), "-o", str(tmp / "short"), "--no-plot"])
            wl, cl, loop_fps = run(["track", str(tmp / "long"), "-o", str(tmp / "longout"), "--no-plot"])
            pairs.append((ws, cs, wl, cl, loop_fps))
        tracked = json.loads((tmp / "longout" / "track.json").read_text())["summary"]["tracked"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    d = n_long - len(files)
    p = np.asarray(pairs)
    wall_ms, cpu_ms = 1e3 * (p[:, 2] - p[:, 0]) / d, 1e3 * (p[:, 3] - p[:, 1]) / d
    return {"short_frames": len(files), "long_frames": n_long, "pairs": [list(map(float, x)) for x in pairs],
            "short_wall_s": float(np.median(p[:, 0])), "short_cpu_s": float(np.median(p[:, 1])), "long_wall_s": float(np.median(p[:, 2])),
            "long_cpu_s": float(np.median(p[:, 3])), "per_frame_wall_ms_each": wall_ms.tolist(), "per_frame_cpu_ms_each": cpu_ms.tolist(),
            "per_frame_wall_ms": float(np.median(wall_ms)), "per_frame_cpu_ms": float(np.median(cpu_ms)),
            "frames_per_second": float(1e3 / np.median(wall_ms)), "loop_frames_per_second_each": p[:, 4].tolist(),
            "long_tracked": tracked, "load_before": load, "load_after": _load(), "loop_in_process": loop}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, required=True, help="The shared data folder (../shared).")
    ap.add_argument("--passes", type=int, default=3, help="Tracker passes over the sweep in process (the first is a warm-up).")
    ap.add_argument("--cli", type=int, default=4, help="Rounds of the sweep for the command's long run (0: no command runs).")
    ap.add_argument("--repeat", type=int, default=3, help="Short / long command pairs, alternated (medians reported).")
    ap.add_argument("--profile", type=int, default=0, help="cProfile of the steady state: print this many entries.")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    res: dict = {"command": "python benchmarks/track_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    r = res["in_process"] = in_process(args.shared, args.passes, args.profile)
    print(f"in process, {r['frames']} frames, load {r['load_before']:.1f} -> {r['load_after']:.1f}: thread CPU per frame, whole pass "
          + " / ".join(f"{x:.1f}" for x in r["pass_cpu_ms_per_frame"]) + " ms; after the identity froze (frame "
          f"{r['identity_frozen_at']}, {r['steady_frames']} frames) " + " / ".join(f"{x:.1f}" for x in r["steady_cpu_ms_per_frame"])
          + f" ms; first frame {r['first_frame_cpu_ms']:.1f} ms")
    print("  steady state per phase (ms per frame, last pass): "
          + ", ".join(f"{k} {v:.2f}" for k, v in r["phases_ms"].items()))
    if args.profile:
        print(r.pop("profile"))
    if args.cli > 0:
        c = res["cli"] = command(args.shared, args.cli, args.repeat)
        lp = c["loop_in_process"]
        print(f"the command's loop in process, {lp['frames']} frames ({lp['tracked']} tracked), load {lp['load_before']:.1f} -> "
              f"{lp['load_after']:.1f}: main thread (tracker) {lp['main_thread_cpu_ms_per_frame']:.1f} ms CPU per frame, process "
              f"(reader thread included) {lp['process_cpu_ms_per_frame']:.1f} ms CPU, wall {lp['wall_ms_per_frame']:.1f} ms "
              f"({lp['frames_per_second']:.1f} frames/s)")
        print(f"facerecon track, load {c['load_before']:.1f} -> {c['load_after']:.1f}, {len(c['pairs'])} short / long pairs (medians): "
              f"{c['short_frames']} frames {c['short_wall_s']:.2f} s wall / {c['short_cpu_s']:.2f} s CPU; {c['long_frames']} frames "
              f"({c['long_tracked']} tracked) {c['long_wall_s']:.2f} s / {c['long_cpu_s']:.2f} s -> per further frame "
              f"{c['per_frame_wall_ms']:.1f} ms wall ({c['frames_per_second']:.1f} frames/s), {c['per_frame_cpu_ms']:.1f} ms CPU")
        print("  each pair, per further frame: " + ", ".join(f"{w:.1f} ms wall ({1e3 / w:.1f} frames/s) / {u:.1f} ms CPU"
                                                         for w, u in zip(c["per_frame_wall_ms_each"], c["per_frame_cpu_ms_each"]))
              + "; the long run's own loop rate (its summary line): " + ", ".join(f"{x:.1f}" for x in c["loop_frames_per_second_each"])
              + " frames/s")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
