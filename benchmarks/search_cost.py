"""Work of the check / refine stage's rescue search per frame: rigid ICP iterations, rendered checks, CPU time.

    .venv/bin/python benchmarks/search_cost.py [--shared ../shared] [--n 24] [--seed 1616]

Frames: the face-only sets of ``benchmarks/real_geometry.py`` (james renders, mannequin splats:
the frames that take the grid search) and the seven Kinect frames.  The ICP iterations and
the rendered checks are counted by wrapping ``facerecon.pipeline.check.refine_rigid`` and
``surface_check`` (deterministic: compare them across changes on any machine); the CPU time
is the process time of the whole ``Reconstructor.reconstruct`` (less sensitive to other
processes than wall time, still compare it only back to back).  ``starts``: how many frames' returned
pose came from each start (``FramePath.start``: the networks, the patch's own shape, a grid cell, ...).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--n", type=int, default=24, help="frames per rendered set")
    ap.add_argument("--seed", type=int, default=1616)
    args = ap.parse_args(argv)
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from real_geometry import james_face_only, mannequin_frames, pcl_frames

    from facerecon.facemodel import FaceModel
    from facerecon.pipeline import Reconstructor
    from facerecon.pipeline import check
    from facerecon.realdata.scan import load_james_scan

    torch.set_num_threads(1)
    real = args.shared / "data" / "real"
    os.environ["FACERECON_REAL_DATA"] = str(real)
    model = FaceModel.load()
    rec = Reconstructor.from_pretrained("fast", model=model)
    count = {"icp": 0, "checks": 0}
    refine, surface = check.refine_rigid, check.surface_check

    def counted_refine(pose, vs, ns, surf, cfg, iterations=None, planes=None):
        count["icp"] += int(cfg.refine.iterations if iterations is None else iterations)
        return refine(pose, vs, ns, surf, cfg, iterations, planes)

    def counted_check(*a, **k):
        count["checks"] += 1
        return surface(*a, **k)

    check.refine_rigid, check.surface_check = counted_refine, counted_check
    sets = {"james face only": james_face_only(load_james_scan(real / "scan-james", model=model), args.n, args.seed),
            "mannequin face only": mannequin_frames(real / "truedepth-mannequin", model, args.n, args.seed, True),
            "kinect-pcl": pcl_frames(args.shared)}
    for name, frames in sets.items():
        rows, starts = [], Counter()
        for f in frames:
            count.update(icp=0, checks=0)
            t = time.process_time()
            res = rec.reconstruct(f)
            rows.append((count["icp"], count["checks"], (time.process_time() - t) * 1e3))
            starts[res.path.start.value] += 1
        a = np.array(rows)
        print(f"{name}: {len(a)} frames; ICP iterations median {np.median(a[:, 0]):.0f} mean {a[:, 0].mean():.1f}; "
              f"rendered checks mean {a[:, 1].mean():.1f}; CPU ms median {np.median(a[:, 2]):.0f} mean {a[:, 2].mean():.0f}; "
              f"starts {dict(sorted(starts.items()))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
