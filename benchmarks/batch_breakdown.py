"""Where a batch frame's CPU goes: ``reconstruct DIR --no-overlay`` in process, with thread-CPU timers
around the per-frame functions (no profiler: cProfile inflates the Python-level parts several times).

    .venv/bin/python benchmarks/batch_breakdown.py --frames ../shared/data/real/truedepth-mannequin/DepthFrames --n 30
    .venv/bin/python benchmarks/batch_breakdown.py --frames DIR --n 30 --serial    # no reader / writer threads

Prints, per timed function, its calls and the thread CPU per call after the first (median and mean; the
first call pays numba's and the caches' start); each thread's CPU over the whole command; with ``--serial``
(where it is exact) the batch's CPU from the second frame on outside the timed functions (the shape network's
thread, the progress bar, the batch loop); and the pipeline's CPU per frame in input order (the frames where
the check falls back to the grid search stand out).  The same command line as the CLI (its one BLAS thread, its
threads), run as ``main(argv)``.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

T: dict[str, list] = {}
START: dict = {}
END: dict = {}
THREADS: dict[str, float] = {}


def _timed(name, fn):
    def wrapper(*a, **k):
        c, t = time.thread_time(), time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            T.setdefault(name, []).append((time.thread_time() - c, time.perf_counter() - t))
    return wrapper


GC: dict[int, list] = {}  # generation -> CPU s of each collection from the second frame on, any thread (inside the timed parts too)


def _gc_timer() -> None:
    import gc

    start = threading.local()

    def cb(phase, info):
        if phase == "start":
            start.t = time.thread_time()
        elif "cpu" in START:
            GC.setdefault(info["generation"], []).append(time.thread_time() - getattr(start, "t", time.thread_time()))

    gc.callbacks.append(cb)


def _instrument() -> None:
    _gc_timer()
    orig_run = threading.Thread.run

    def run(self):
        t0 = time.thread_time()
        try:
            orig_run(self)
        finally:
            THREADS[self.name] = time.thread_time() - t0

    threading.Thread.run = run

    import facerecon.cli._frames as fr
    import facerecon.export as ex
    import facerecon.export.gltf as gl
    import facerecon.export.maps as mp
    import facerecon.export.pose_json as pj
    import facerecon.fileutil as fu
    from facerecon.pipeline import Reconstructor

    # reconstruct.py imports these names when the command runs: patched in their modules, they are what it calls
    ex.write_face_meshes = _timed("write_face_meshes (writer)", ex.write_face_meshes)
    ex.write_rigged_glbs = _timed("  face.glb", ex.write_rigged_glbs)
    gl._glb_parts = _timed("    face.glb's pieces made (the rest: the file written)", gl._glb_parts)
    ex.write_mesh = _timed("  face.obj / face_model.obj (each)", ex.write_mesh)
    mp.write_detail_maps = _timed("  the two map PNGs", mp.write_detail_maps)
    mp.detail_maps = _timed("detail_maps, made (writer)", mp.detail_maps)
    pj.depth_document = _timed("pose.json document (writer)", pj.depth_document)
    ex.write_json = _timed("write_json (writer, each)", ex.write_json)
    fr.load_frame = _timed("read the frame (reader)", fr.load_frame)
    Reconstructor.reconstruct = _timed("the frame pipeline (main)", Reconstructor.reconstruct)
    atomic_dir = fu.atomic_dir

    @contextlib.contextmanager
    def timed_atomic_dir(*a, **k):
        c = time.thread_time()
        cm = atomic_dir(*a, **k)
        value = cm.__enter__()
        T.setdefault("atomic_dir: make the folder (writer)", []).append((time.thread_time() - c, 0.0))
        try:
            yield value
        except BaseException:
            if not cm.__exit__(*sys.exc_info()):
                raise
        else:
            c = time.thread_time()
            cm.__exit__(None, None, None)
            T.setdefault("atomic_dir: rename into place (writer)", []).append((time.thread_time() - c, 0.0))

    fu.atomic_dir = timed_atomic_dir
    job = _timed("the write job (writer, all of it)", lambda f: f())
    run_batch = fr.run_batch

    def timed_run_batch(console, label, items, total, handle, **kw):
        def h(path, payload):
            START["calls"] = START.get("calls", 0) + 1
            if START["calls"] == 2:  # from the second frame on: the first loads the model and numba's kernels
                START["cpu"] = time.process_time()
            out = handle(path, payload)
            return (lambda: job(out)) if callable(out) else out
        return run_batch(console, label, items, total, h, **kw)

    fr.run_batch = timed_run_batch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=Path, required=True, help="Folder of depth frames with intrinsics.")
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--serial", action="store_true", help="No reader / writer threads (cli._frames.PIPELINE_AHEAD = PIPELINE_WRITERS = 0).")
    args = ap.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the CLI's per-frame commands, before numpy loads
    _instrument()
    import facerecon
    import facerecon.cli._frames as fr
    from facerecon.cli import main as cli_main
    from facerecon.cli._frames import expand_inputs

    if args.serial:
        fr.PIPELINE_AHEAD = fr.PIPELINE_WRITERS = 0
    frames = expand_inputs([args.frames])[: args.n]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for f in frames:
            os.symlink(f.resolve(), folder / f.name)
        c0, w0, t0 = time.process_time(), time.perf_counter(), time.thread_time()
        with contextlib.redirect_stdout(open(os.devnull, "w")):
            try:
                cli_main(["reconstruct", str(folder), "-o", str(Path(tmp) / "out"), "--no-overlay"])
            except SystemExit:
                pass
        END["cpu"] = time.process_time()
        cpu, wall, main_cpu = END["cpu"] - c0, time.perf_counter() - w0, time.thread_time() - t0
    n = len(frames)
    print(f"facerecon from {facerecon.__file__}; {n} frames, {'serial' if args.serial else 'pipelined'}")
    print(f"process CPU {cpu:.2f} s, wall {wall:.2f} s; main thread {main_cpu:.2f} s"
          + "".join(f", {k} {v:.2f} s" for k, v in THREADS.items()))
    print(f"{'per call, after the first':44s} calls  CPU ms median / mean   wall ms median   first CPU ms")
    for k, v in T.items():
        rest = v[1:] or v
        print(f"{k:44s} {len(v):5d}  {1e3 * statistics.median(c for c, _ in rest):6.1f} / {1e3 * statistics.mean(c for c, _ in rest):6.1f}"
              f"   {1e3 * statistics.median(w for _, w in rest):8.1f}   {1e3 * v[0][0]:8.0f}")
    if args.serial and "cpu" in START:  # one thing at a time: the CPU outside the timed functions is exact
        batch = END["cpu"] - START["cpu"]
        tops = ("read the frame (reader)", "the frame pipeline (main)", "the write job (writer, all of it)")
        # serial: frame 2 is read before its handle starts the clock, so the reads count from frame 3 on
        timed = sum(c for k in tops for c, _ in T.get(k, [])[2 if k.startswith("read") else 1:])
        print(f"batch CPU from the second frame on {batch:.2f} s; in reading / the pipeline / the write jobs {timed:.2f} s; "
              f"outside them {batch - timed:.2f} s ({1e3 * (batch - timed) / max(n - 1, 1):.1f} ms per frame)")
    for g in sorted(GC):
        print(f"garbage collections, generation {g}: {len(GC[g])}, CPU {1e3 * sum(GC[g]):.1f} ms in all "
              f"({1e3 * sum(GC[g]) / max(n - 1, 1):.2f} ms per further frame), the largest {1e3 * max(GC[g]):.1f} ms")
    print("the pipeline's CPU per frame, ms: " + " ".join(f"{1e3 * c:.0f}" for c, _ in T.get("the frame pipeline (main)", [])))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
