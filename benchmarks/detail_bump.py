"""How much of a known bump one frame's displacement map recovers, per sensor model (the setup of tests/test_detail.py).

    python benchmarks/detail_bump.py [--seeds 0,1,2]

The mean ICT face with a 3 mm Gaussian bump (sigma 12 mm) on the left cheek, rendered at a known pose
through a sensor model; the base mesh is the mean face without the bump.  Prints, per sensor and seed,
the median displacement of the texels within 4 mm of the bump's top (truth ~3.0 mm) and of the texels
farther than 36 mm (truth 0), and the coverage.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

CASES = (("truedepth-320x240", "truedepth", 420.0), ("kinect-v1", "kinect-v1", 650.0), ("kinect-v1", "tof", 650.0))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args(argv)
    from test_detail import BUMP_MM, BUMP_SIGMA_MM, _bumped, _by_radius, _cheek, _frame

    from facerecon.facemodel import FaceModel
    from facerecon.fitting.detail import DetailConfig, displacement_map
    from facerecon.geometry.pose import HeadPose

    model = FaceModel.load()
    centre = _cheek(model)
    print("| camera | sensor | z (mm) | seed | top (truth ~3.0) | far median | coverage |\n|---|---|---|---|---|---|---|")
    for camera, sensor, z in CASES:
        for seed in (int(s) for s in args.seeds.split(",")):
            pose = HeadPose.from_euler(15, -5, 3, [10, -5, z])
            frame = _frame(model, _bumped(model, centre), pose, camera, sensor, seed)
            disp = displacement_map(model, model.neutral, pose, frame, DetailConfig.load({"size": args.size}))
            r, ok, d = _by_radius(model, disp, centre)
            top, far = ok & (r < 4.0), ok & (r > 3 * BUMP_SIGMA_MM)
            print(f"| {camera} | {sensor} | {z:.0f} | {seed} | {np.median(d[top]):.2f} | {np.median(d[far]):+.3f} | "
                  f"{disp.stats['coverage']:.2f} |")
    print(f"(bump {BUMP_MM} mm, sigma {BUMP_SIGMA_MM} mm; map {args.size})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
