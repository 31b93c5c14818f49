"""Long fuzz run of every public reader: ``python benchmarks/fuzz.py --cases 20000``.

Cases come from ``facerecon.evaluate.fuzz`` (seeded mutations of small valid files, plus the
real files under ``--real-dir``); each runs in a worker process whose address space is
capped (RLIMIT_AS: its size after warm-up plus ``--mem-cap-mb``: any larger allocation
fails), and a worker that does not answer within the time cap is killed (a hang
in compiled code cannot be interrupted otherwise); ``--tracemalloc`` adds each case's
tracemalloc peak (precise, but it slows Python-heavy parsers ~10x).  Reported per reader:

  ok       the file was read
  refused  a one-line FaceReconError (the contract for a bad file)
  crash    any other exception, or a worker that died
  hang     over --time-cap seconds
  memory   over --mem-cap-mb (MemoryError under the RLIMIT_AS cap, or the tracemalloc peak)

plus ``fallback``: refusals only the readers' safety net (guard_reader) caught, i.e.
malformations no explicit check names yet.  Exit status 1 when any case crashed, hung or
went over the memory cap.  ``--replay N`` runs case N in this process with the traceback.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict
from multiprocessing.connection import wait
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from facerecon.evaluate import fuzz  # noqa: E402

_CORPUS: list[fuzz.Seed] = []  # set in the parent before the workers fork


def _vm_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _worker(conn, master_seed: int, time_cap: float, mem_cap: int, folder: str, trace: bool) -> None:
    import resource

    work = Path(folder)
    work.mkdir(parents=True, exist_ok=True)
    # warm up (imports such as trimesh, numba caches) on every reader's unmutated seeds, so
    # no case pays a one-time cost, then cap the address space
    for name, (kinds, _) in fuzz._readers().items():
        for seed in _CORPUS:
            if seed.kind in kinds:
                case = fuzz.Case(-1, name, seed.name, seed.name, seed.data)
                fuzz.run_case(case, work, 10 * time_cap, mem_cap, trace_memory=False, extra_files=fuzz.companions(_CORPUS, case))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    limit = _vm_bytes() + mem_cap
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError):
        pass
    while True:
        try:
            index = conn.recv()
        except EOFError:
            return
        if index is None:
            return
        case = fuzz.make_case(_CORPUS, index, master_seed)
        out = fuzz.run_case(case, work, time_cap, mem_cap, trace_memory=trace, extra_files=fuzz.companions(_CORPUS, case))
        # the worker's resident high-water mark (base + the largest case so far): an upper bound per case
        conn.send({**asdict(out), "worker_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "base_rss_mb": base})


class _Pool:
    def __init__(self, n: int, master_seed: int, time_cap: float, mem_cap: int, tmp: Path, trace: bool):
        self.ctx = mp.get_context("fork")
        self.args = (master_seed, time_cap, mem_cap)
        self.trace = trace
        self.tmp = tmp
        self.workers: dict[int, tuple] = {}  # slot -> (process, conn, index or None, started)
        for slot in range(n):
            self._start(slot)

    def _start(self, slot: int) -> None:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker, args=(child, *self.args, str(self.tmp / f"w{slot}_{time.monotonic_ns()}"), self.trace),
                                daemon=True)
        proc.start()
        child.close()
        self.workers[slot] = (proc, parent, None, 0.0)

    def restart(self, slot: int) -> None:
        proc, conn, _, _ = self.workers[slot]
        proc.kill()
        proc.join(5)
        conn.close()
        self._start(slot)

    def close(self) -> None:
        for proc, conn, _, _ in self.workers.values():
            try:
                conn.send(None)
            except OSError:
                pass
            proc.join(2)
            if proc.is_alive():
                proc.kill()


def run(args) -> dict:
    master_seed, time_cap, mem_cap = args.seed, args.time_cap, args.mem_cap_mb * 2**20
    results: list[dict] = []
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="facerecon-fuzz-") as td:
        tmp = Path(td)
        _CORPUS[:] = fuzz.build_corpus(tmp / "seeds", args.real_dir, big=args.big)
        pool = _Pool(args.workers, master_seed, time_cap, mem_cap, tmp, args.tracemalloc)
        todo = list(range(args.start, args.start + args.cases))
        todo.reverse()
        # worker start-up (imports, numba, warm-up) is not part of any case's time
        grace = 120.0
        try:
            while todo or any(w[2] is not None for w in pool.workers.values()):
                for slot, (proc, conn, index, _) in list(pool.workers.items()):
                    if index is None and todo:
                        i = todo.pop()
                        conn.send(i)
                        pool.workers[slot] = (proc, conn, i, time.monotonic())
                busy = {w[1]: slot for slot, w in pool.workers.items() if w[2] is not None}
                ready = wait(list(busy), timeout=1.0)
                for conn in ready:
                    slot = busy[conn]
                    proc, _, index, started = pool.workers[slot]
                    try:
                        results.append(conn.recv())
                        pool.workers[slot] = (proc, conn, None, 0.0)
                    except (EOFError, OSError):  # the worker died inside the case
                        case = fuzz.make_case(_CORPUS, index, master_seed)
                        results.append(asdict(fuzz.Outcome(index, case.reader, case.seed, case.mutations, "crash",
                                                           f"worker died (exit code {proc.exitcode})")))  # fmt: skip
                        pool.restart(slot)
                now = time.monotonic()
                for slot, (proc, conn, index, started) in list(pool.workers.items()):
                    if index is not None and now - started > time_cap + grace:
                        case = fuzz.make_case(_CORPUS, index, master_seed)
                        results.append(asdict(fuzz.Outcome(index, case.reader, case.seed, case.mutations, "hang",
                                                           f"no answer in {now - started:.0f} s; worker killed")))  # fmt: skip
                        pool.restart(slot)
                grace = 5.0 if len(results) >= args.workers else grace
                if len(results) and len(results) % 1000 == 0 and ready:
                    kinds = Counter(r["kind"] for r in results)
                    print(f"  {len(results)} cases, {time.time() - t0:.0f} s: {dict(kinds)}", file=sys.stderr, flush=True)
        finally:
            pool.close()
    return summarise(results, time.time() - t0, args)


def summarise(results: list[dict], seconds: float, args) -> dict:
    kinds = Counter(r["kind"] for r in results)
    per_reader: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        per_reader[r["reader"]][r["kind"]] += 1
        if r.get("fallback"):
            per_reader[r["reader"]]["fallback"] += 1
    bad = sorted((r for r in results if r["kind"] in ("crash", "hang", "memory")), key=lambda r: r["index"])
    slowest = max(results, key=lambda r: r["seconds"])
    return {
        "command": " ".join(["benchmarks/fuzz.py", *sys.argv[1:]]),
        "cases": len(results),
        "seed": args.seed,
        "wall_s": round(seconds, 1),
        "time_cap_s": args.time_cap,
        "memory_cap_mb": args.mem_cap_mb,
        "counts": {k: kinds.get(k, 0) for k in ("ok", "refused", "crash", "hang", "memory")},
        "fallback": sum(1 for r in results if r.get("fallback")),
        "max_peak_mb": round(max(r["peak_bytes"] for r in results) / 2**20, 1) if args.tracemalloc else None,
        "worker_rss_mb": {"after_warm_up": round(max(r.get("base_rss_mb", 0) for r in results), 1),
                          "max": round(max(r.get("worker_maxrss_mb", 0) for r in results), 1)},
        "slowest_case": {"index": slowest["index"], "reader": slowest["reader"], "seconds": round(slowest["seconds"], 3)},
        "per_reader": {k: dict(v) for k, v in sorted(per_reader.items())},
        "failures": bad[:200],
        "fallbacks": [r for r in results if r.get("fallback")][:50],
    }


def replay(args) -> None:
    import traceback

    corpus = fuzz.build_corpus(Path(tempfile.mkdtemp(prefix="facerecon-seeds-")), args.real_dir, big=args.big)
    case = fuzz.make_case(corpus, args.replay, args.seed)
    folder = Path(tempfile.mkdtemp(prefix="facerecon-replay-"))
    for name, blob in fuzz.companions(corpus, case).items():
        (folder / name).write_bytes(blob)
    path = folder / case.name
    path.write_bytes(case.data)
    print(f"case {case.index}: {case.reader} on {path} (seed {case.seed}, mutations {case.mutations})")
    try:
        fuzz._readers()[case.reader][1](path)
        print("ok")
    except Exception:  # noqa: BLE001 - show whatever it is
        traceback.print_exc()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=20000, help="number of cases (readers take turns)")
    ap.add_argument("--start", type=int, default=0, help="first case index")
    ap.add_argument("--seed", type=int, default=0, help="master seed: cases are a function of (seed, index)")
    ap.add_argument("--real-dir", type=Path, default=REPO.parent / "shared" / "data" / "real",
                    help="real files to add to the seeds (../shared/data/real); a missing folder is skipped")
    ap.add_argument("--big", action="store_true", help="also seed from the ~1 MB real files (person.pcd, a TrueDepth frame, james.obj)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes")
    ap.add_argument("--time-cap", type=float, default=fuzz.TIME_CAP_S, help="seconds per case")
    ap.add_argument("--mem-cap-mb", type=int, default=fuzz.MEMORY_CAP_BYTES // 2**20, help="memory per case (MiB)")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="also measure each case's tracemalloc peak (slows Python-heavy parsers ~10x, e.g. a 3 MB OBJ)")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    ap.add_argument("--replay", type=int, default=None, help="run case N in this process and show its traceback")
    args = ap.parse_args()
    if args.real_dir is not None and not args.real_dir.is_dir():
        args.real_dir = None
    if args.replay is not None:
        replay(args)
        return 0
    report = run(args)
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    c = report["counts"]
    peak = f"max tracemalloc peak {report['max_peak_mb']} MiB; " if report["max_peak_mb"] is not None else ""
    rss = report["worker_rss_mb"]
    print(f"{report['cases']} cases in {report['wall_s']} s: ok {c['ok']}, refused {c['refused']}, crash {c['crash']}, "
          f"hang {c['hang']}, over memory {c['memory']} (fallback refusals {report['fallback']}; {peak}worker RSS "
          f"{rss['after_warm_up']} MiB after warm-up, {rss['max']} MiB at most; slowest case {report['slowest_case']['seconds']} s)")
    for reader, counts in report["per_reader"].items():
        print(f"  {reader:24s} {counts}")
    for r in report["failures"][:20]:
        print(f"  FAIL case {r['index']} {r['reader']} {r['seed']} {r['mutations']}: {r['kind']} {r['detail']}")
    return 1 if c["crash"] or c["hang"] or c["memory"] else 0


if __name__ == "__main__":
    sys.exit(main())
