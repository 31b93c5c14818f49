#!/usr/bin/env bash
# `make demo`: the main job on real sensor frames from ../shared (or a synthetic frame made on the spot).
set -euo pipefail
cd "$(dirname "$0")/.."
FR=.venv/bin/facerecon
OUT=out/demo
REAL=../shared/data/real
mkdir -p "$OUT"

echo "== facerecon $($FR --version)"
$FR assets info

frames=()
[ -f "$REAL/truedepth-mannequin/DepthFrames/frame-045.ply" ] && frames+=("$REAL/truedepth-mannequin/DepthFrames/frame-045.ply")
[ -f "$REAL/kinect-pcl/person.pcd" ] && frames+=("$REAL/kinect-pcl/person.pcd")
if [ ${#frames[@]} -eq 0 ]; then
  echo "== no real frames in $REAL: making a synthetic Kinect frame"
  .venv/bin/python - "$OUT" <<'PY'
import sys
from facerecon.synth.generator import SynthGenerator
from facerecon.io.images import write_depth_npz
s = SynthGenerator("facewarehouse", "kinect-v1", seed=0).generate(0)
write_depth_npz(sys.argv[1] + "/synthetic_frame.npz", s.depth_mm, s.intrinsics)
PY
  frames+=("$OUT/synthetic_frame.npz")
fi

echo "== depth frames"
for f in "${frames[@]}"; do $FR view-depth "$f" -o "$OUT/$(basename "${f%.*}")_depth.png"; done

echo "== head pose (DAPoseNet)"
$FR pose "${frames[@]}" -o "$OUT/pose" --overlay "$OUT/pose"

echo "== 3D face reconstruction (DAPoseNet + DAShapeNet)"
$FR reconstruct "${frames[@]}" -o "$OUT/reconstruct" --format obj,ply,glb --refine 10
echo "== ... refined by model fitting on the depth points (--refine-shape), and the classical baseline alone"
$FR reconstruct "${frames[@]}" -o "$OUT/reconstruct_refined" --format obj,ply --refine 10 --refine-shape 12
$FR reconstruct "${frames[@]}" -o "$OUT/reconstruct_fit" --format obj,ply --method fit

echo "== random faces from the open ICT-FaceKit model"
$FR sample-face --n 5 -o "$OUT/faces" --seed 0

echo "== outputs in $OUT"
find "$OUT" -maxdepth 3 -type f | sort
