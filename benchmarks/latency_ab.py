"""The default output's stages of two source trees in ONE process, alternating every frame (thread CPU per stage,
median; one thread): the fair speed comparison of a change.

    python benchmarks/latency_ab.py --base /tmp/base/src [--shared ../shared] [--n 30]

A: the ``facerecon`` package of ``--base`` (e.g. ``git archive <commit> src | tar -x -C /tmp/base``), imported
under another name beside B: this checkout's (whatever ``facerecon`` imports).  On a machine shared by several
jobs two processes run a minute apart are not comparable (the untouched networks stage alone varied 3.0-4.4 ms
between them); frames alternating in one process share the load.  The outputs of A and B (pose, confidence,
returned and model surfaces) are compared bit for bit; each tree reads its own configs and weights.  Lazy imports of ``facerecon.*`` by absolute name inside
A (none on the frame path) would load B's modules.
"""
from __future__ import annotations

import argparse
import collections
import filecmp
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.resources
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(v, "1")  # before numpy is imported
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from latency_pipeline import time_stages  # the stages' thread CPU: the one wrapper
FRAMES = {"frame-045": "truedepth-mannequin/DepthFrames/frame-045.ply", "person.pcd": "kinect-pcl/person.pcd"}


class _OwnData(importlib.abc.MetaPathFinder):
    """The package data of the tree imported as ``name``: its modules ask ``importlib.resources.files("facerecon")``
    (configs, weights), which would answer with the other tree's; each of its modules gets a ``resources`` that
    answers with its own package instead."""

    def __init__(self, name: str):
        self.name = name
        outer = self

        class Resources:
            def __getattr__(self, key):
                return getattr(importlib.resources, key)

            def files(self, anchor):
                return importlib.resources.files(outer.name if anchor == "facerecon" else anchor)

        self.resources = Resources()

    def find_spec(self, fullname, path, target=None):
        if not fullname.startswith(self.name + "."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module, _run=run):
            _run(module)
            if getattr(module, "resources", None) is importlib.resources:
                module.resources = self.resources

        spec.loader.exec_module = exec_module
        return spec


def load_tree(src: Path, name: str = "facerecon_base"):
    """The ``facerecon`` package under ``src`` imported as ``name`` (its imports are relative), from a copy kept
    under the temporary folder: numba's on-disk caches name the module they were compiled in, so the tree's own
    ``__pycache__`` must not receive caches of a module called ``name`` (that tree, run as ``facerecon`` later,
    would fail to load them).  Files are copied only when they differ (an unchanged copy keeps its caches)."""
    pkg = src / "facerecon"
    if not (pkg / "__init__.py").exists():
        raise SystemExit(f"{src}: no facerecon package here (give the src folder of a source tree)")
    dst = Path(tempfile.gettempdir()) / "facerecon-latency-ab" / hashlib.sha1(str(src).encode()).hexdigest()[:12] / name

    def copy_changed(a, b):
        if not (os.path.exists(b) and filecmp.cmp(a, b, shallow=False)):
            shutil.copy2(a, b)

    shutil.copytree(pkg, dst, ignore=shutil.ignore_patterns("__pycache__"), copy_function=copy_changed, dirs_exist_ok=True)
    sys.meta_path.insert(0, _OwnData(name))
    init = dst / "__init__.py"
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(dst)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def same(a, b) -> str:
    """Which outputs of the two results are the same arrays bit for bit."""
    def eq(x, y):
        return (x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))

    pose = all(eq(x, y) for x, y in ((a.pose.R, b.pose.R), (a.pose.t_mm, b.pose.t_mm), (a.confidence, b.confidence)))
    surface = eq(a.vertices_head, b.vertices_head)
    model = eq(a.model_vertices_head, b.model_vertices_head)
    return f"identical: pose + confidence {pose}, model surface {model}, returned surface {surface}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", type=Path, required=True, help="src folder of the source tree to compare with (A)")
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    args = ap.parse_args(argv)
    base = load_tree(args.base.resolve())
    from facerecon.io import read_depth
    from facerecon.pipeline import Reconstructor

    recs = {"A": importlib.import_module(f"{base.__name__}.pipeline").Reconstructor.from_pretrained("fast"),
            "B": Reconstructor.from_pretrained("fast")}
    readers = {"A": importlib.import_module(f"{base.__name__}.io").read_depth, "B": read_depth}  # each tree's own frame type
    acc: dict = {}
    for rec in recs.values():
        time_stages(rec.pipeline, acc)
    real = args.shared / "data" / "real"
    print(f"A = {args.base}, B = {Path(sys.modules['facerecon'].__file__).parents[1]}; thread CPU ms, median of {args.n}, one thread")
    for name, rel in FRAMES.items():
        if not (real / rel).exists():
            continue
        frames = {k: readers[k](real / rel) for k in recs}
        res = {k: collections.defaultdict(list) for k in recs}
        outs = {}
        for key, rec in recs.items():
            rec.reconstruct(frames[key])
            rec.reconstruct(frames[key])
        for i in range(2 * args.n):
            key = "AB"[i % 2]
            acc.clear()
            t = time.thread_time()
            outs[key] = recs[key].reconstruct(frames[key])
            res[key]["total"].append(1e3 * (time.thread_time() - t))
            for k, v in acc.items():
                res[key][k].append(v)
        identical = same(outs["A"], outs["B"])
        for key in recs:
            print(f"{name:10s} {key}: " + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in res[key].items()),
                  f"({identical})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
