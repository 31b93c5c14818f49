"""Why turned faces lose rotation accuracy (issue #21 item 2): the same james renders
(``photo_shape_eval.py``'s scenes, true focal) fitted several ways, the rotation error of each by |yaw|.

    python benchmarks/photo_rotation_diag.py N SEED [SHARED [MAX_YAW [MIN_ABS_YAW [VARIANTS]]]]
    # e.g. 12 0 ../shared; 24 0 ../shared 60 40 default,ibug68_only: the 40-60 degree renders of
    # photo_shape_eval.py --n 24 --max-yaw 60, two variants (comma-separated names below)

Variants: the default (Face Mesh + dlib fused), Face Mesh alone, hidden landmarks kept
(``hidden_weight = 1``), the dense points only, the 68 only, a wrong focal length (40 degrees
instead of the true 60), and the fit to the true 68 (the scan's 3D landmarks projected; jaw
sliding), with and without the jaw.
"""
import sys, json, numpy as np
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from photo_shape_eval import scenes, load_james, render, WIDTH, HEIGHT, FOV_DEG
from facerecon.facemodel import FaceModel
from facerecon.geometry.camera import Intrinsics
from facerecon.geometry.pose import HeadPose
from facerecon.geometry.rotations import euler_to_matrix, geodesic_distance_deg
from facerecon.photo.camera import focal_from_fov
from facerecon.photo.image import Photo
from facerecon.photo.fit import LandmarkTargets, fit_photo
from facerecon.pipeline.photo import PhotoReconstructor
n = int(sys.argv[1]); seed = int(sys.argv[2]); shared = Path(sys.argv[3] if len(sys.argv) > 3 else '../shared')
max_yaw = float(sys.argv[4]) if len(sys.argv) > 4 else 40.0
min_abs_yaw = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
only = sys.argv[6].split(",") if len(sys.argv) > 6 else None
model = FaceModel.load()
f = focal_from_fov(WIDTH, HEIGHT, FOV_DEG); intr = Intrinsics(f, f, (WIDTH-1)/2, (HEIGHT-1)/2, WIDTH, HEIGHT)
scan, texture, uv, face_uv, inner = load_james(shared, model)
variants = {
  "default": ({}, {}),
  "facemesh_only": ({"dlib68": {"enabled": False}}, {}),
  "no_hidden_drop": ({}, {"fit": {"hidden_weight": 1.0}}),
  "dense_only": ({}, {"targets": {"use": "dense"}}),
  "ibug68_only": ({}, {"targets": {"use": "ibug68"}}),
  "wrong_focal_default": None,
  "band_contour": ({}, {"fit": {"contour_rule": "band"}}),
  "ict_points": ({"fusion": {"ict_points": "ict"}}, {}),
  "hidden_facing_0.3": ({}, {"fit": {"hidden_facing": 0.3}}),
  "no_dense_oval": ({"fusion": {"dense_contour_weight": 0.0}}, {}),
  "ibug68_x3": ({"fusion": {"ibug68_weight": 3.0}}, {}),
}
extra = ("wrong_focal_default", "true_68", "true_68_no_jaw")
if only is not None:
    variants = {k: v for k, v in variants.items() if k in only or k == "default"}
recs = {k: PhotoReconstructor.from_pretrained(model=model, landmark_overrides=v[0], overrides=v[1] or None) for k, v in variants.items() if v is not None}
rows = []
for sc in scenes(n, seed):
    sc["yaw"] = sc["yaw"] * max_yaw / 40.0  # scenes() spans -40..40, as photo_shape_eval.py --max-yaw
    if abs(sc["yaw"]) < min_abs_yaw:
        continue
    rgb = render(sc, scan, texture, uv, face_uv, intr)
    R = euler_to_matrix(sc["yaw"], sc["pitch"], 0.0)
    pose = HeadPose(R, sc["t_mm"])
    row = {"yaw": sc["yaw"], "pitch": sc["pitch"]}
    for k, rec in recs.items():
        r = rec.reconstruct(Photo(rgb, "r", f), focal_px=f, texture=False)
        row[k] = geodesic_distance_deg(r.pose.R, R)
        cfg = recs["default"].fit_config
    if only is not None and not set(extra) & set(only):
        rows.append(row)
        print(json.dumps({k: round(v, 2) for k, v in row.items()}), flush=True)
        continue
    k40 = focal_from_fov(WIDTH, HEIGHT, 40.0)
    r = recs["default"].reconstruct(Photo(rgb, "r", None), focal_px=k40, texture=False)
    row["focal_40deg"] = geodesic_distance_deg(r.pose.R, R)
    # the true 68 (the scan's 3D landmarks projected), jaw sliding, default priors
    gt = intr.project(pose.apply(scan.landmarks_68))
    contour = np.zeros(68, bool); contour[:17] = True
    fit = fit_photo(model, LandmarkTargets.from_vertices(gt, model.landmarks_68, contour=contour), intr, cfg)
    row["true_68"] = geodesic_distance_deg(fit.rotation, R)
    # the true 68 without the jaw
    keep = np.arange(17, 68)
    fit = fit_photo(model, LandmarkTargets.from_vertices(gt[keep], model.landmarks_68[keep]), intr, cfg)
    row["true_68_no_jaw"] = geodesic_distance_deg(fit.rotation, R)
    rows.append(row)
    print(json.dumps({k: round(v, 2) for k, v in row.items()}), flush=True)
keys = [k for k in rows[0] if k not in ("yaw", "pitch")]
yaw = np.abs([r["yaw"] for r in rows])
for lo, hi in ((0, 15), (15, 30), (30, 40), (40, 61)):
    sel = [r for r, y in zip(rows, yaw) if lo <= y < hi]
    if sel:
        print(f"|yaw| {lo}-{hi} (n={len(sel)}): " + ", ".join(f"{k} {np.median([r[k] for r in sel]):.1f}" for k in keys))
print("all: " + ", ".join(f"{k} {np.median([r[k] for r in rows]):.1f}" for k in keys))
