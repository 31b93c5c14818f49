#!/usr/bin/env bash
# `make demo`: the main job on real sensor frames from ../shared (or synthetic ones made on the spot).
set -euo pipefail
cd "$(dirname "$0")/.."
FR=.venv/bin/facerecon
OUT=out/demo
REAL=../shared/data/real
mkdir -p "$OUT"

echo "== facerecon $($FR --version)"
$FR assets info

echo "== random faces from the open ICT-FaceKit model"
$FR sample-face --n 5 -o "$OUT/faces" --seed 0

echo "== depth frames from real sensors"
if [ -f "$REAL/kinect-pcl/person.pcd" ]; then
  $FR view-depth "$REAL/kinect-pcl/person.pcd" -o "$OUT/kinect_person_depth.png"
fi
if [ -f "$REAL/truedepth-mannequin/DepthFrames/frame-000.ply" ]; then
  $FR view-depth "$REAL/truedepth-mannequin/DepthFrames/frame-000.ply" -o "$OUT/truedepth_frame000_depth.png"
fi
echo "== outputs in $OUT"
find "$OUT" -maxdepth 2 -type f | sort
