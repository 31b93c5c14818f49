"""The detail maps of a few depth frames: CPU per frame to make and write them, and their arrays to compare checkouts.

    python benchmarks/maps_speed.py --frames DIR --n 6 --repeat 5             # CPU ms per frame, maps made + both PNGs written
    python benchmarks/maps_speed.py --frames DIR --n 6 --profile              # the same under cProfile (CPU clock), top functions
    PYTHONPATH=OTHER/src python benchmarks/maps_speed.py --frames DIR --n 12 --dump A.npz
    PYTHONPATH=src       python benchmarks/maps_speed.py --frames DIR --n 12 --dump B.npz
    python benchmarks/maps_speed.py --compare A.npz B.npz                     # which arrays differ

``--dump`` keeps, per frame, the displacement (float32), the mask, the normal map, the two PNGs as decoded
by Pillow and pose.json's ``depth.detail_map`` block without its timings: the pixels, whatever the PNG bytes.
Run it with ``OPENBLAS_NUM_THREADS=1`` as the CLI does.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _frames(d: Path, n: int):
    from facerecon.cli._frames import load_frame
    from facerecon.pipeline import Reconstructor

    paths = sorted(p for p in d.iterdir() if p.suffix.lower() in (".ply", ".png", ".pcd", ".exr"))[:n]
    eng = Reconstructor.from_pretrained("fast")
    items = []
    for p in paths:
        f = load_frame(p, None, None)
        items.append((p.stem, eng.reconstruct(f), f))
    return eng.model, items


def _compare(a_path: Path, b_path: Path) -> int:
    a, b = np.load(a_path), np.load(b_path)
    keys = sorted(set(a.files) | set(b.files))
    bad = [k for k in keys if k not in a.files or k not in b.files
           or not (a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and np.array_equal(a[k], b[k]))]
    print(f"{len(keys)} arrays, {len(bad)} differ{': ' + ', '.join(bad[:12]) if bad else ''}")
    return 1 if bad else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=Path, help="a folder of depth frames (e.g. truedepth-mannequin/DepthFrames)")
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--dump", type=Path, help="write the frames' maps as arrays (.npz) instead of timing")
    ap.add_argument("--compare", type=Path, nargs=2, metavar=("A", "B"))
    args = ap.parse_args(argv)
    if args.compare:
        return _compare(*args.compare)
    if args.frames is None:
        ap.error("--frames is required")

    from PIL import Image

    import facerecon
    from facerecon.export.maps import detail_maps, write_detail_maps

    print(f"facerecon from {facerecon.__file__}", flush=True)
    model, items = _frames(args.frames, args.n)
    if args.dump:
        out = {}
        with tempfile.TemporaryDirectory() as d:
            for name, rec, f in items:
                maps = detail_maps(rec, model, f)
                out[f"{name}/displacement"], out[f"{name}/mask"] = maps.displacement.displacement, maps.displacement.mask
                if maps.normals is not None:
                    out[f"{name}/normals"] = maps.normals
                for p in write_detail_maps(d, maps):
                    with Image.open(p) as im:
                        out[f"{name}/decoded/{p.name}"] = np.asarray(im)
                block = maps.to_json()
                block.pop("ms", None)
                out[f"{name}/detail_map"] = np.frombuffer(json.dumps(block, sort_keys=True).encode(), np.uint8)
        np.savez_compressed(args.dump, **out)
        print(f"wrote {len(out)} arrays of {len(items)} frames to {args.dump}")
        return 0

    def work():
        with tempfile.TemporaryDirectory() as d:
            for _, rec, f in items:
                write_detail_maps(d, detail_maps(rec, model, f))

    work()  # the first call loads the kernels and builds the model's caches
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile(time.process_time)
        prof.enable()
        for _ in range(args.repeat):
            work()
        prof.disable()
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(20)
        return 0
    cpu = []
    for _ in range(args.repeat):
        c = time.process_time()
        work()
        cpu.append((time.process_time() - c) / len(items) * 1e3)
    print(f"maps made + both PNGs written, {len(items)} frames x {args.repeat}: CPU ms per frame median "
          f"{statistics.median(cpu):.1f} (min {min(cpu):.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
