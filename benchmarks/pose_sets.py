"""Pose networks alone on every held-out synthetic test set of a data folder (and any other sets given):
MAE (the papers' mean of yaw / pitch / roll MAE) and the median geodesic error, one row per network.

    python benchmarks/pose_sets.py W1.safetensors [W2 ...] --data runs/data-mix [--sets extra.safetensors ...]

``--data``: every ``test-*.safetensors`` in the folder (built by ``facerecon train data``).  Sets of a
camera held sideways (the ``truedepth`` presets: image roll +-90) have Euler angles near gimbal
lock, so compare them on the geodesic column.  Networks from exported weights or checkpoints.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("weights", nargs="+", type=Path)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--sets", type=Path, nargs="*", default=[])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    from evaluate import load_pose

    from facerecon.evaluate import synthetic as se
    from facerecon.train.data import PositionSet

    paths = sorted(a.data.glob("test-*.safetensors")) if a.data else []
    paths += list(a.sets)
    sets = {p.stem: PositionSet.load(p) for p in paths}
    print("| network | " + " | ".join(f"{k} MAE / geodesic median" for k in sets) + " |")
    print("| --- |" + " --- |" * len(sets))
    for w in a.weights:
        net, _ = load_pose(w)
        cells = []
        for d in sets.values():
            e, x = se.pose_accuracy(net, d)
            cells.append(f"{e.mae:.2f} / {e.geodesic_median:.2f} ({x['n']})")
        print(f"| {w} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
