"""The default output's stages with round 3's forms (#22 item 1) against the forms they replace, in ONE process,
alternating every frame (thread CPU per stage, median; one thread).

    python benchmarks/latency_ab.py --shared ../shared [--n 30]

A: the check's whole mesh (``FaceRegion.n_leading`` set to every vertex) and scipy's fancy-indexed principal
submatrix in the correction; B: the shipped forms (the check's mesh up to the vertices it reads, the numba
principal submatrix).  On a machine shared by several jobs, two processes run a minute apart are not
comparable (the untouched networks stage alone varied 3.0-4.4 ms between them); frames alternating in one
process share the load.  The outputs of A and B are compared bit for bit.
"""
from __future__ import annotations

import argparse
import collections
import os
import statistics
import time
from pathlib import Path

for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(v, "1")  # before numpy is imported
import numpy as np

REPO = Path(__file__).resolve().parents[1]
ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--n", type=int, default=30)
ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
args = ap.parse_args()

import facerecon.fitting.correction as K
from facerecon.io import read_depth
from facerecon.pipeline import Reconstructor

rec = Reconstructor.from_pretrained("fast")
P = rec.pipeline
acc = {}
for name in ("networks", "check_refine", "identity", "correct"):
    fn = getattr(P, name)
    def timed(*a, _fn=fn, _n=name, **k):
        t = time.thread_time()
        try: return _fn(*a, **k)
        finally: acc[_n] = acc.get(_n, 0.0) + 1e3 * (time.thread_time() - t)
    setattr(P, name, timed)
new_principal = K._principal
def old_principal(m, keep):  # the base's form: scipy's two fancy indexings, then the diagonal's positions
    s = m[keep][:, keep]
    rows = np.repeat(np.arange(s.shape[0]), np.diff(s.indptr))
    return s, np.flatnonzero(rows == s.indices)
lead_new = P.region.n_leading
def mode(a):
    K._principal = old_principal if a else new_principal
    P.region.n_leading = P.model.n_vertices if a else lead_new  # A: the whole mesh (in blocks: base's values, base's cost)
real = args.shared / "data" / "real"
frames = {"frame-045": read_depth(real / "truedepth-mannequin/DepthFrames/frame-045.ply"), "person.pcd": read_depth(real / "kinect-pcl/person.pcd")}
n = args.n
for name, f in frames.items():
    res = {True: collections.defaultdict(list), False: collections.defaultdict(list)}
    outs = {}
    for a in (True, False):
        mode(a); rec.reconstruct(f); rec.reconstruct(f)
    for i in range(2 * n):
        a = i % 2 == 0
        mode(a); acc.clear(); t = time.thread_time(); r = rec.reconstruct(f); tot = 1e3 * (time.thread_time() - t)
        res[a]["total"].append(tot)
        for k, v in acc.items(): res[a][k].append(v)
        outs[a] = r
    same = np.array_equal(outs[True].vertices_head, outs[False].vertices_head) and np.array_equal(outs[True].pose.R, outs[False].pose.R)
    for a in (True, False):
        print(f"{name:10s} {'A base forms' if a else 'B this branch'}: " + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in res[a].items()), f"(median of {n}; outputs identical {same})")
