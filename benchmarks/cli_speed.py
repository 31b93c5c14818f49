"""The command line as a user runs it: cold start, mesh writing, ``reconstruct`` on a folder.

    .venv/bin/python benchmarks/cli_speed.py [--frames DIR] [--n 20] [--json OUT.json]

Without ``--frames``, ``--n`` synthetic Kinect v1 640x480 frames (``facerecon synth --preset
biwi --sensor kinect-v1``, seed 0) are written as 16-bit PNGs into a temporary folder
(``--camera kinect-v1`` is passed then); ``--frames DIR`` takes a folder of any depth frames
that carry their intrinsics (e.g. the TrueDepth PLY frames of ``../shared``), the first ``--n``.
Measured (wall clock, each command in a fresh process, as a user would):

* cold start of ``facerecon --help`` (median of 3);
* ``facerecon reconstruct`` on 1 frame (the cold one frame) and on all N (``--no-overlay``, and
  with overlays unless ``--skip-overlay``): per-frame time in a batch = (T_N - T_1) / (N - 1),
  start-up = T_1 - one frame;
* ``facerecon track`` on the same frames (``--no-plot``), frames/s the same way;
* writing one frame's meshes (``face`` + ``face_head``) per format, in process (median of 10);
* the same ``reconstruct`` runs with ``FACERECON_BACKEND=torch`` (the networks in torch
  instead of onnxruntime) unless ``--skip-torch``;
* ``--serial``: the batches without their reader / writer threads (before/after of the pipelining);
* ``--writers N``: the batches with N writer threads (``cli._frames.PIPELINE_WRITERS``);
* ``--cold-parts``: only one cold frame, phase by phase, in a fresh process (CPU and wall per phase);
* ``--alternate OTHER/src [--folder]``: this checkout and another in turn (A, B, A, B, ...), the cold frame
  and, with ``--folder``, the folder of ``--n`` frames: before/after on a shared machine.

The commands run with Python's bytecode cache on (as an installed package; ``--no-bytecode-cache`` keeps
``PYTHONDONTWRITEBYTECODE`` from the environment).

Beside the wall clock, the CPU time of each command (user + system, all its threads) is
reported: on a shared machine it varies much less with the load than the wall clock.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXE = [str(Path(sys.executable).with_name("facerecon"))]


CPU: dict = {}  # the last run's CPU seconds (user + system of the child process)
# An installed package has its bytecode cached (pip compiles it; a source checkout writes __pycache__ on first
# import): the commands run with bytecode writing on unless --no-bytecode-cache, whatever this shell says (a
# PYTHONDONTWRITEBYTECODE=1 environment recompiles facerecon's ~80 modules in every process, ~0.25 s of CPU).
KEEP_NO_BYTECODE = False


def run(args: list[str], env: dict | None = None, ok_codes: tuple[int, ...] = (0,)) -> float:
    import resource

    child = {**os.environ, **(env or {})}
    if not KEEP_NO_BYTECODE:
        child.pop("PYTHONDONTWRITEBYTECODE", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run([*EXE, *args], capture_output=True, text=True, env=child)
    dt = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU["last"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if r.returncode not in ok_codes:
        raise SystemExit(f"facerecon {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return dt


def make_frames(folder: Path, n: int) -> list[Path]:
    import numpy as np

    from facerecon.io.images import write_depth_png

    syn = folder / "synth"
    run(["synth", "--preset", "biwi", "--sensor", "kinect-v1", "--n", str(n), "-o", str(syn), "--format", "folder", "--seed", "0"])
    out = folder / "png"
    out.mkdir()
    for p in sorted(syn.glob("*.depth.npz")):
        with np.load(p) as z:
            depth = z["depth_mm"] if "depth_mm" in z.files else z["depth"]
        write_depth_png(out / (p.name.split(".")[0] + ".png"), depth)
    return sorted(out.glob("*.png"))


def _report(res: dict, key: str, n: int, t1: float, c1: float, tn: float, cn: float) -> None:
    per = (tn - t1) / max(n - 1, 1)
    cpu_per = (cn - c1) / max(n - 1, 1)
    res[key] = {"one_frame_s": t1, "n_frames_s": tn, "per_frame_ms": 1e3 * per, "frames_per_second": 1.0 / per,
                "startup_s": t1 - per, "one_frame_cpu_s": c1, "per_frame_cpu_ms": 1e3 * cpu_per}
    print(f"{key}: 1 frame {t1:.2f} s, {n} frames {tn:.2f} s -> {1e3 * per:.1f} ms/frame in a batch "
          f"({1 / per:.1f} frames/s), start-up {t1 - per:.2f} s; CPU: {c1:.1f} s for 1 frame, {1e3 * cpu_per:.0f} ms per further frame",
          flush=True)


def mesh_write_ms(frame: Path, cam: list[str]) -> dict:
    """In process (median of 10 after a warm-up), wall and CPU: writing one frame's meshes per
    format (``face`` + ``face_head``), the default ``--format obj,glb`` (``face`` only), the
    overlay, the detail maps (made, and made + written with the default meshes), and the frame
    pipeline itself (what a batch frame costs, part by part)."""
    from facerecon.geometry.camera import camera_preset
    from facerecon.export import save_overlay, write_face_meshes
    from facerecon.export.maps import detail_maps
    from facerecon.io import read_depth
    from facerecon.pipeline import Reconstructor

    rec_engine = Reconstructor.from_pretrained("fast")
    model = rec_engine.model
    f = read_depth(frame)
    f = f.with_intrinsics(camera_preset("kinect-v1")) if cam else f
    rec = rec_engine.reconstruct(f)
    out = {}
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        jobs = {fmt: (lambda fmt=fmt: write_face_meshes(rec, model, d, (fmt,))) for fmt in ("obj", "ply")}
        jobs["obj,glb (face only)"] = lambda: write_face_meshes(rec, model, d, ("obj", "glb"), intrinsics=f.intrinsics, head_frame=False)
        # the detail layer (reconstruct's default with the correction on): the maps made, then written with the meshes
        jobs["detail maps (make)"] = lambda: detail_maps(rec, model, f)
        jobs["obj,glb + detail maps (make + write)"] = lambda: write_face_meshes(rec, model, d, ("obj", "glb"), intrinsics=f.intrinsics,
                                                                                 head_frame=False, maps=detail_maps(rec, model, f))
        jobs["overlay.png"] = lambda: save_overlay(rec, model, f, d / "overlay.png")
        jobs["pipeline (reconstruct)"] = lambda: rec_engine.reconstruct(f)
        for name, job in jobs.items():
            job()  # the first call builds the topology caches
            wall, cpu = [], []
            for _ in range(10):
                t, c = time.perf_counter(), time.process_time()
                job()
                wall.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            out[name] = {"wall_ms": 1e3 * statistics.median(wall), "cpu_ms": 1e3 * statistics.median(cpu)}
    return out


# One cold frame as `reconstruct` runs it, phase by phase, in a fresh process (--cold-parts): CPU and wall per phase.
_COLD_PARTS = r"""
import sys, time
last = [time.process_time(), time.perf_counter()]
rows = []
def mark(name):
    c, w = time.process_time(), time.perf_counter()
    rows.append((name, 1e3 * (c - last[0]), 1e3 * (w - last[1])))
    last[:] = [c, w]
import numpy as np; mark("import numpy")
import facerecon.cli; mark("import facerecon.cli")
# the command line as `reconstruct FRAME -o OUT --no-overlay` builds and parses it (the app: this command alone where
# the CLI does that, else every topic), without running it
import typer.main
args = ["reconstruct", sys.argv[1], "-o", sys.argv[1] + ".out", "--no-overlay"]
app = facerecon.cli._app_for(args) if hasattr(facerecon.cli, "_app_for") else facerecon.cli.get_app()
group = typer.main.get_command(app)
ctx = group.make_context("facerecon", list(args))
group.get_command(ctx, "reconstruct").make_context("reconstruct", args[1:], parent=ctx)
mark("the command line (typer: app + parse)")
from facerecon.export import landmarks_json, write_face_meshes, write_json
from facerecon.export.maps import detail_maps
from facerecon.export.pose_json import depth_document
mark("import facerecon.export")
from facerecon.pipeline import Reconstructor; mark("import facerecon.pipeline")
from facerecon.cli._frames import load_frame
from pathlib import Path
import tempfile
p = Path(sys.argv[1])
f = load_frame(p, None, None); mark("read the frame")
eng = Reconstructor.from_pretrained("fast", search_others=True); mark("face model + networks (Reconstructor)")
rec = eng.reconstruct(f); mark("the frame pipeline")
maps = detail_maps(rec, eng.model, f); mark("detail maps (make)")
d = Path(tempfile.mkdtemp())
write_face_meshes(rec, eng.model, d, ("obj", "glb"), intrinsics=f.intrinsics, head_frame=False, maps=maps)
write_json(d / "pose.json", depth_document(rec, str(p), "network", eng.model, detail_map=maps))
write_json(d / "landmarks.json", landmarks_json(rec)); mark("write face.obj, face_model.obj, face.glb, maps, json")
rec = eng.reconstruct(f); maps = detail_maps(rec, eng.model, f)
write_face_meshes(rec, eng.model, d, ("obj", "glb"), intrinsics=f.intrinsics, head_frame=False, maps=maps); mark("(a second frame: pipeline + maps + writing)")
for n, c, w in rows:
    print(f"cold part: {n}: {c:.0f} ms CPU ({w:.0f} ms wall)")
print(f"cold part: total to the first frame written: {sum(c for _, c, _ in rows[:-1]):.0f} ms CPU")
"""


def cold_parts(frame: Path) -> None:
    env = {**os.environ}
    if not KEEP_NO_BYTECODE:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the CLI's per-frame commands
    r = subprocess.run([sys.executable, "-c", _COLD_PARTS, str(frame)], capture_output=True, text=True, env=env)
    print(r.stdout.strip() if r.returncode == 0 else r.stderr[-2000:], flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=Path, default=None, help="Folder of depth frames with intrinsics (default: synthesise --n "
                    "Kinect 640x480 PNGs).")
    ap.add_argument("--skip-overlay", action="store_true", help="Only --no-overlay runs.")
    ap.add_argument("--skip-track", action="store_true", help="No track runs.")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--skip-torch", action="store_true", help="Do not repeat the runs with the torch backend.")
    ap.add_argument("--src", type=Path, default=None, help="Run the facerecon of another checkout's src/ (e.g. a git worktree "
                    "of an older commit, for before/after); the mesh-writing figure is skipped then.")
    ap.add_argument("--parts", action="store_true", help="Only the in-process part-by-part figure of one frame (pipeline, "
                    "meshes, overlay), no CLI runs, with one OpenBLAS thread as the CLI; for another checkout run it with "
                    "PYTHONPATH=OTHER/src.")
    ap.add_argument("--serial", action="store_true", help="Batches one frame after the other (no reader / writer threads: "
                    "cli._frames.PIPELINE_AHEAD = PIPELINE_WRITERS = 0), for before/after.")
    ap.add_argument("--cold-parts", action="store_true", help="Only one cold frame phase by phase (imports, model and "
                    "networks, pipeline, maps, writing) in a fresh process, CPU and wall; for another checkout run it "
                    "with PYTHONPATH=OTHER/src.")
    ap.add_argument("--cold-runs", type=int, default=5, help="Fresh processes for the one-frame cold start (the median is "
                    "reported; one run's wall time varies by 0.1-0.4 s on the shared machine).")
    ap.add_argument("--alternate", type=Path, default=None, help="Only the cold frame: this checkout (or --src) and this "
                    "other src/ alternately, --cold-runs each; with --folder also the folder of --n frames (--no-overlay).")
    ap.add_argument("--folder", action="store_true", help="With --alternate: each run is one frame and then the folder of "
                    "--n frames (--no-overlay), both checkouts in turn: CPU per further frame and frames/s by the wall of "
                    "each pair's runs, medians over the --cold-runs pairs.")
    ap.add_argument("--writers", type=int, default=None, help="Writer threads of the batches (default: the CLI's).")
    ap.add_argument("--no-bytecode-cache", action="store_true", help="Keep PYTHONDONTWRITEBYTECODE from the environment "
                    "(every command then compiles facerecon's sources again).")
    args = ap.parse_args(argv)
    global EXE, KEEP_NO_BYTECODE
    KEEP_NO_BYTECODE = args.no_bytecode_cache
    # the commands run as the installed script does: main() reading sys.argv (main(argv) from Python keeps the
    # interpreter's teardown, which the command line skips: cli/__init__.py _quick_exit); with --src the same
    # script, PYTHONPATH coming before the venv's own (editable) facerecon
    as_script = "sys.argv = ['facerecon', *sys.argv[1:]]; from facerecon.cli import main; sys.exit(main())"
    if args.src is not None:
        os.environ["PYTHONPATH"] = str(args.src.resolve())
    if args.serial:
        EXE = [sys.executable, "-c", f"import sys; import facerecon.cli._frames as f; f.PIPELINE_AHEAD = f.PIPELINE_WRITERS = 0; {as_script}"]
    elif args.writers is not None:
        EXE = [sys.executable, "-c", f"import sys; import facerecon.cli._frames as f; f.PIPELINE_WRITERS = {int(args.writers)}; {as_script}"]
    env = {"FACERECON_ICT": os.environ.get("FACERECON_ICT", str(REPO.parent / "shared/assets/ict-facekit/ICT-FaceKit-FaceXModel.tar.xz")),
           "MPLBACKEND": "Agg"}
    os.environ.update(env)
    res: dict = {"command": "python benchmarks/cli_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    if args.cold_parts:
        from facerecon.cli._frames import expand_inputs

        frames = expand_inputs([args.frames])[:1] if args.frames else make_frames(Path(tempfile.mkdtemp()), 1)
        for k in (1, 2):  # the first run of a checkout may build what is cached (bytecode, numba, GLB template, ONNX graph)
            print(f"cold run {k}:", flush=True)
            cold_parts(frames[0])
        print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        return 0
    if args.parts:
        # one OpenBLAS thread, as the CLI's per-frame commands (cli/__init__.py): its second thread only spin-waits
        # beside the writer's BLAS calls and doubles their CPU (set before numpy loads; the environment may override)
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        import facerecon
        from facerecon.cli._frames import expand_inputs

        frames = expand_inputs([args.frames])[:1] if args.frames else make_frames(Path(tempfile.mkdtemp()), 1)
        res["facerecon"] = facerecon.__file__
        print(f"facerecon from {facerecon.__file__}")
        res["mesh_write"] = mesh_write_ms(frames[0], [] if args.frames else ["--camera"])
        return _finish(res, args.json)
    if args.alternate:
        return cold_alternate(args, res)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.frames:
            from facerecon.cli._frames import expand_inputs

            frames, cam = expand_inputs([args.frames])[: args.n], []
        else:
            frames, cam = make_frames(tmp, args.n), ["--camera", "kinect-v1"]
        n = len(frames)
        one, folder = tmp / "one", tmp / "all"
        one.mkdir()
        folder.mkdir()
        os.symlink(frames[0].resolve(), one / frames[0].name)
        for f in frames:
            os.symlink(f.resolve(), folder / f.name)
        res["frames"] = n
        print(f"bytecode cache: {'as the environment says' if KEEP_NO_BYTECODE else 'on (as an installed package)'}; "
              f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
        res["help_cold_s"] = statistics.median(run(["--help"]) for _ in range(3))
        print(f"facerecon --help, cold: {res['help_cold_s']:.2f} s")
        for backend in ("onnxruntime", "torch")[: 1 if args.skip_torch else 2]:
            benv = {"FACERECON_BACKEND": backend}
            run(["reconstruct", str(one), "-o", str(tmp / "warm"), *cam, "--no-overlay"], benv)  # caches (ONNX build, numba)
            for overlay in ("--no-overlay", "--overlay")[: 1 if args.skip_overlay else 2]:
                # one frame from a cold start: the median of --cold-runs fresh processes (wall and CPU apart)
                ones = [(run(["reconstruct", str(one), "-o", str(tmp / f"o1{backend}{overlay}"), *cam, overlay], benv), CPU["last"])
                        for _ in range(max(1, args.cold_runs))]
                t1, c1 = statistics.median(w for w, _ in ones), statistics.median(c for _, c in ones)
                res[f"cold_runs {overlay} [{backend}]"] = ones
                print(f"one frame, cold, {len(ones)} runs: wall s {' '.join(f'{w:.2f}' for w, _ in ones)}; "
                      f"CPU s {' '.join(f'{c:.2f}' for _, c in ones)} (medians below)", flush=True)
                # exit 4 (docs/reliability.md): some frames had no face; the batch still ran through every frame
                tn = run(["reconstruct", str(folder), "-o", str(tmp / f"on{backend}{overlay}"), *cam, overlay], benv,
                         ok_codes=(0, 3, 4))
                _report(res, f"reconstruct {overlay} [{backend}]", n, t1, c1, tn, CPU["last"])
            if not args.skip_track and backend == "onnxruntime":
                t1 = run(["track", str(one), "-o", str(tmp / "t1"), *cam, "--no-plot"], benv, ok_codes=(0, 1))
                c1 = CPU["last"]
                tn = run(["track", str(folder), "-o", str(tmp / "tn"), *cam, "--no-plot"], benv, ok_codes=(0, 1))
                _report(res, f"track [{backend}]", n, t1, c1, tn, CPU["last"])
        res["mesh_write"] = mesh_write_ms(frames[0], cam) if args.src is None else {}
    return _finish(res, args.json)


def cold_alternate(args, res: dict) -> int:
    """--alternate: the cold frame (and with --folder the folder of --n frames after it), this checkout (or --src)
    and the other src/ one run each in turn (A, B, A, B, ...: the shared machine's load then falls on both alike),
    --cold-runs pairs after one warm-up run of each (caches); wall and CPU medians of each, and the median of the
    pairs' CPU differences."""
    from facerecon.cli._frames import expand_inputs

    srcs = [str((args.src or REPO / "src").resolve()), str(args.alternate.resolve())]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.frames:
            frames, cam = expand_inputs([args.frames])[: max(args.n, 1)], []
        else:
            frames, cam = make_frames(tmp, max(args.n, 1) if args.folder else 1), ["--camera", "kinect-v1"]
        frame, n = frames[0], len(frames)
        folder = tmp / "all"
        folder.mkdir()
        for f in frames:
            os.symlink(f.resolve(), folder / f.name)
        runs: dict[str, list] = {s: [] for s in srcs}
        batches: dict[str, list] = {s: [] for s in srcs}
        for i in range(max(1, args.cold_runs) + 1):
            for src in srcs:
                env = {"PYTHONPATH": src, "FACERECON_BACKEND": "onnxruntime"}
                wall = run(["reconstruct", str(frame), "-o", str(tmp / "out"), *cam, "--no-overlay"], env)
                cpu = CPU["last"]
                if i:
                    runs[src].append((wall, cpu))
                if args.folder and n > 1:
                    # exit 4 (docs/reliability.md): some frames had no face; the batch still ran through every frame
                    tn = run(["reconstruct", str(folder), "-o", str(tmp / "outn"), *cam, "--no-overlay"], env, ok_codes=(0, 3, 4))
                    if i:  # the pair's one-frame run is the start-up: per further frame = (T_N - T_1) / (N - 1)
                        batches[src].append(((tn - wall) / (n - 1), (CPU["last"] - cpu) / (n - 1), os.getloadavg()[0]))
    for src, got in runs.items():
        res[f"cold {src}"] = got
        print(f"one frame, cold, {src}: wall s median {statistics.median(w for w, _ in got):.2f} "
              f"({' '.join(f'{w:.2f}' for w, _ in got)}); CPU s median {statistics.median(c for _, c in got):.2f}", flush=True)
    a, b = (runs[s] for s in srcs)
    diffs = [ca - cb for (_, ca), (_, cb) in zip(a, b)]  # pairs run back to back: the load falls on both alike
    res["cold CPU paired differences"] = diffs
    print(f"one frame, cold, CPU s of each pair, {srcs[0]} - {srcs[1]}: median {statistics.median(diffs):+.3f} "
          f"({' '.join(f'{d:+.2f}' for d in diffs)}); {srcs[0]} took less in {sum(d < 0 for d in diffs)} of {len(diffs)}", flush=True)
    for src, got in batches.items():
        if got:
            res[f"folder {src}"] = got
            print(f"reconstruct DIR --no-overlay, {n} frames, {src}: CPU ms per further frame median "
                  f"{1e3 * statistics.median(c for _, c, _ in got):.0f} ({' '.join(f'{1e3 * c:.0f}' for _, c, _ in got)}); "
                  f"frames/s by the wall median {statistics.median(1 / w for w, _, _ in got):.1f} "
                  f"({' '.join(f'{1 / w:.1f}' for w, _, _ in got)}); load {' '.join(f'{x:.1f}' for _, _, x in got)}", flush=True)
    return _finish(res, args.json)


def _finish(res: dict, json_path: Path | None) -> int:
    for fmt, r in res.get("mesh_write", {}).items():
        print(f"one frame, in process: {fmt}: {r['wall_ms']:.1f} ms wall, {r['cpu_ms']:.1f} ms CPU")
    res["load_average"] = os.getloadavg()
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in res['load_average'])}")
    if json_path:
        json_path.write_text(json.dumps(res, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
