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

import numpy as np
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def upright_abs_yaw(quat: np.ndarray) -> np.ndarray:
    """|yaw| (degrees) of each label seen upright: after the quarter turn about the view axis that
    leaves the least roll (a phone held sideways turned back)."""
    from facerecon.geometry.rotations import euler_to_matrix, matrix_to_euler, quat_to_matrix

    r = quat_to_matrix(np.asarray(quat, np.float64))
    eul = np.stack([matrix_to_euler(euler_to_matrix(0.0, 0.0, 90.0 * k) @ r) for k in range(4)])  # (4, N, 3)
    best = np.abs(eul[..., 2]).argmin(axis=0)
    return np.abs(eul[best, np.arange(len(r)), 0])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("weights", nargs="+", type=Path)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--sets", type=Path, nargs="*", default=[])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--by-yaw", action="store_true",
                    help="also the geodesic median per |yaw| bin of the head as seen upright (the quarter turn that leaves the least roll)")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    from evaluate import load_pose

    from facerecon.evaluate import synthetic as se
    from facerecon.train.data import PositionSet

    paths = sorted(a.data.glob("test-*.safetensors")) if a.data else []
    paths += list(a.sets)
    sets = {p.stem: PositionSet.load(p) for p in paths}
    bins = (0, 30, 55, 75, 91)
    print("| network | " + " | ".join(f"{k} MAE / geodesic median" for k in sets) + " |")
    print("| --- |" + " --- |" * len(sets))
    for w in a.weights:
        net, _ = load_pose(w)
        cells, yaw_rows = [], []
        for name, d in sets.items():
            e, x = se.pose_accuracy(net, d)
            cells.append(f"{e.mae:.2f} / {e.geodesic_median:.2f} ({x['n']})")
            if a.by_yaw:
                yaw = upright_abs_yaw(d.quat)
                row = [f"{np.median(e.geodesic[(yaw >= lo) & (yaw < hi)]):.1f} ({int(((yaw >= lo) & (yaw < hi)).sum())})"
                       if ((yaw >= lo) & (yaw < hi)).any() else "-" for lo, hi in zip(bins[:-1], bins[1:])]
                yaw_rows.append(f"  {name}: geodesic median by |yaw| " + ", ".join(f"{lo}-{hi}: {c}" for lo, hi, c in zip(bins[:-1], bins[1:], row)))
        print(f"| {w} | " + " | ".join(cells) + " |", flush=True)
        for r in yaw_rows:
            print(r, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
