"""Photo -> metric depth -> surface (seed 001's pipeline), measured on real data.

    .venv/bin/python benchmarks/photo_depth_eval.py --shared ../shared [--frames 30] [--json out.json]

Sections:

* ``truedepth``: the 30 real TrueDepth frames (colour + registered measured depth).  The colour
  image is the photo (focal length from the frame's intrinsics); per backend (``face-model``;
  ``oracle-measured``: the measured inverse depth as a perfect relative network, i.e. the floor
  that the fit's anchoring sets for any network; a tiny random DPT as a smoke figure; real
  networks when given with ``--depth-model``) the
  photo-made metric depth is compared with the measured depth over the face pixels (the fit's
  inner face where both have depth): median |dz| in mm, and the same after removing the median
  offset (shape only).  The surface mesh is compared with ``Expected.ply`` (the fused cloud) via
  the frame's reference registration (``realdata.mannequin_reference``): median distance of the
  mesh vertices to the cloud, as placed and after a rigid ICP (shape only).  Time per stage.
* ``james``: renders of the textured james scan (10 poses, 640 x 480, f = 600): the same depth
  figures against the rendered depth, and the surface against the scan itself (same camera frame).
* ``icp``: Open3D's point-to-plane ``registration_icp`` against the project's ICPs
  (``metrics.align.icp_to_surface``, ``CloudTarget.icp``) on one alignment task with a known
  answer: a depth-like partial view of the james scan, moved by a known rigid motion, registered
  back onto the scan.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _median(x) -> float:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else float("nan")


# -- ICP comparison -------------------------------------------------------------------------------
def icp_comparison(shared: Path, seed: int = 0) -> dict:
    import open3d as o3d
    from scipy.spatial import cKDTree
    from scipy.spatial.transform import Rotation

    from facerecon.io.mesh import read_mesh
    from facerecon.geometry.pose import HeadPose
    from facerecon.metrics.align import CloudTarget, icp_to_surface
    from facerecon.metrics.surface import SurfaceIndex, triangulate_faces

    mesh = read_mesh(shared / "data" / "real" / "scan-james" / "james.obj")
    v = np.asarray(mesh.vertices, np.float64)
    f = triangulate_faces(np.asarray(mesh.faces))
    om = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v), o3d.utility.Vector3iVector(f.astype(np.int32)))
    om.compute_vertex_normals()
    rng = np.random.default_rng(seed)
    # a depth-like partial view: points sampled on the surface, those facing one side (+z of the scan)
    pc = om.sample_points_uniformly(20000, use_triangle_normal=True)
    pts, nrm = np.asarray(pc.points), np.asarray(pc.normals)
    centre = v.mean(axis=0)
    view = centre + np.array([0.0, 0.0, 600.0])
    facing = np.einsum("ij,ij->i", nrm, view - pts) > 0
    src_true = pts[facing][rng.choice(int(facing.sum()), min(6000, int(facing.sum())), replace=False)]
    src_true = src_true + rng.normal(0, 0.3, src_true.shape)  # sensor-like noise, mm
    # the known motion to undo: 8 degrees about a random axis, 12 mm
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    r_true = Rotation.from_rotvec(np.deg2rad(8.0) * axis).as_matrix()
    t_true = rng.normal(size=3)
    t_true *= 12.0 / np.linalg.norm(t_true)
    c = src_true.mean(axis=0)
    src = (src_true - c) @ r_true.T + c + t_true  # moved away; registration must bring it back

    def err(r, t) -> dict:
        back = src @ np.asarray(r).T + np.asarray(t)
        d = np.linalg.norm(back - src_true, axis=1)
        return {"rms_point_error_mm": float(np.sqrt(np.mean(d**2))), "max_point_error_mm": float(d.max())}

    out = {"task": "james scan: 6000-point partial view (+0.3 mm noise) moved by 8 deg / 12 mm, registered back onto the scan",
           "methods": {}}
    # project: exact closest points on triangles, point-to-plane
    t0 = time.perf_counter()
    index = SurfaceIndex(v, f)
    t1 = time.perf_counter()
    res = icp_to_surface(src, index, max_iter=50, tol_mm=1e-3, max_distance_mm=20.0)
    t2 = time.perf_counter()
    out["methods"]["facerecon icp_to_surface (point-to-plane, closest points on triangles)"] = {
        **err(res.transform.scale * res.transform.R, res.transform.t),
        "iterations": res.iterations, "index_ms": (t1 - t0) * 1e3, "icp_ms": (t2 - t1) * 1e3}
    # project: cloud target (scan vertices + normals, KD-tree)
    vn = np.asarray(om.vertex_normals)
    t0 = time.perf_counter()
    target = CloudTarget(v, vn)
    t1 = time.perf_counter()
    p = target.icp(src, HeadPose.identity(), iterations=30, max_dist=(20.0, 4.0))
    t2 = time.perf_counter()
    out["methods"]["facerecon CloudTarget.icp (point-to-plane, scipy cKDTree)"] = {
        **err(p.R, p.t_mm), "iterations": 30, "index_ms": (t1 - t0) * 1e3, "icp_ms": (t2 - t1) * 1e3}
    # Open3D: point-to-plane registration_icp against the scan vertices with normals
    t0 = time.perf_counter()
    tgt = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(v))
    tgt.normals = o3d.utility.Vector3dVector(vn)
    s = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(src))
    t1 = time.perf_counter()
    for dist in (20.0, 4.0):
        reg = o3d.pipelines.registration.registration_icp(
            s, tgt, dist, np.eye(4), o3d.pipelines.registration.TransformationEstimationPointToPlane(),
            o3d.pipelines.registration.ICPConvergenceCriteria(relative_fitness=1e-9, relative_rmse=1e-9, max_iteration=30))
        s.transform(reg.transformation)
    t2 = time.perf_counter()
    # recover the total transform from the moved copy (s now holds the registered points)
    moved = np.asarray(s.points)
    from facerecon.geometry.transforms import fit_similarity

    tot = fit_similarity(src, moved, scale=False)
    out["methods"]["open3d registration_icp (point-to-plane, 20 mm then 4 mm)"] = {
        **err(tot.R, tot.t), "iterations": "<=30+30", "index_ms": (t1 - t0) * 1e3, "icp_ms": (t2 - t1) * 1e3}
    # Open3D normal estimation vs the mesh normals, and its KD-tree vs scipy's on the same queries
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(v))
    t0 = time.perf_counter()
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(20))
    t1 = time.perf_counter()
    cos = np.abs(np.einsum("ij,ij->i", np.asarray(cloud.normals), vn))
    q = src
    t2 = time.perf_counter()
    tree = cKDTree(v)
    tree.query(q)
    t3 = time.perf_counter()
    ft = o3d.geometry.KDTreeFlann(tgt)
    for p in q:
        ft.search_knn_vector_3d(p, 1)
    t4 = time.perf_counter()
    out["normals_and_kdtree"] = {"open3d_knn20_normals_ms": (t1 - t0) * 1e3, "median_abs_cos_to_mesh_normals": _median(cos),
                                 "scipy_ckdtree_build_and_6000_queries_ms": (t3 - t2) * 1e3,
                                 "open3d_kdtreeflann_6000_python_queries_ms": (t4 - t3) * 1e3}
    return out


def similarity_icp_median(points: np.ndarray, tree, target_points: np.ndarray, iterations: int = 30) -> float:
    """Median nearest-neighbour distance after a rigid + uniform-scale ICP (shape only: the photo's
    absolute size and distance rest on the fit's average-face prior)."""
    from facerecon.geometry.transforms import fit_similarity

    p = np.asarray(points, np.float64)
    for thr in np.geomspace(30.0, 5.0, iterations):
        d, j = tree.query(p)
        ok = d <= max(thr, float(np.median(d)))
        if ok.sum() < 10:
            break
        p = fit_similarity(p[ok], target_points[j[ok]], scale=True).apply(p)
    return _median(tree.query(p)[0])


# -- TrueDepth frames -----------------------------------------------------------------------------
ORACLE = "oracle-measured"


class OracleInverseDepth:
    """A perfect relative network: the frame's measured inverse depth (scale and shift unknown to the
    metric step).  Its error after the metric step is the floor that the photo fit's anchoring sets
    for any real network (DPT, Depth Anything)."""

    name = ORACLE
    measured: np.ndarray | None = None

    def predict(self, rgb, face=None):
        from facerecon.photo.depth import DepthPrediction

        z = np.asarray(self.measured, np.float64)
        d = np.where(z > 0, 1000.0 / np.maximum(z, 1e-6), 0.0)  # 1/m, zero (= infinitely far) where unmeasured
        return DepthPrediction(d.astype(np.float32), "relative_inverse", self.name)


def truedepth_eval(shared: Path, backends: list[str], n_frames: int, poisson_depth: int, smoke_frames: int = 5) -> dict:
    from scipy.spatial import cKDTree

    from facerecon.errors import FaceReconError
    from facerecon.io.truedepth import read_truedepth_frame
    from facerecon.geometry.pose import HeadPose
    from facerecon.metrics.align import CloudTarget
    from facerecon.photo.depth import load_depth_backend
    from facerecon.photo.depth_pipeline import PhotoDepthConfig, PhotoDepthPipeline
    from facerecon.photo.image import Photo
    from facerecon.pipeline.photo import PhotoReconstructor
    from facerecon.photo.surface import SurfaceConfig, mesh_arrays
    from facerecon.realdata.mannequin import frame_files, load_mannequin_cloud
    from facerecon.realdata.mannequin_poses import mannequin_reference

    folder = shared / "data" / "real" / "truedepth-mannequin"
    files = frame_files(folder)[:n_frames]
    ref = mannequin_reference(folder)
    ref_index = {name: i for i, name in enumerate(ref.files)}
    cloud = load_mannequin_cloud(folder)
    exp_tree = cKDTree(cloud["points"])
    exp_target = CloudTarget(cloud["points"], cloud["normals"])
    rec = PhotoReconstructor.from_pretrained()
    out: dict = {"frames": len(files), "backends": {}}
    oracle = OracleInverseDepth()
    pipes = {spec: PhotoDepthPipeline(rec, oracle if spec == ORACLE else load_depth_backend(spec), rec.model,
                                      PhotoDepthConfig(surface=SurfaceConfig(poisson_depth=poisson_depth)))
             for spec in backends}
    rows: dict[str, list] = {spec: [] for spec in backends}
    failures: dict[str, list] = {spec: [] for spec in backends}
    for f in files:
        frame = read_truedepth_frame(f)
        oracle.measured = frame.depth_mm
        photo = Photo(frame.color, str(f), None)
        try:  # one photo fit per frame, shared by the backends
            fit = rec.reconstruct(photo, focal_px=float(frame.intrinsics.fx), texture=False)
        except FaceReconError as exc:
            for spec in backends:
                failures[spec].append(exc.one_line())
            print(f"  {f.name}: {exc.one_line()}", file=sys.stderr)
            continue
        for spec, pipe in pipes.items():
            if "tiny-random" in spec and files.index(f) >= smoke_frames:
                continue  # a smoke figure: the first few frames only
            try:
                res = pipe.run(photo, fit=fit)
            except FaceReconError as exc:
                failures[spec].append(f"{f.name}: {exc.one_line()}")
                print(f"  {spec} {f.name}: {exc.one_line()}", file=sys.stderr)
                continue
            meas = frame.depth_mm
            use = res.face.inner_mask & (meas > 0) & (res.depth_mm > 0)
            dz = res.depth_mm[use].astype(np.float64) - meas[use]
            row = {"frame": f.name, "face_pixels": int(use.sum()),
                   "median_abs_mm": _median(np.abs(dz)), "median_abs_after_offset_mm": _median(np.abs(dz - np.median(dz))),
                   "median_offset_mm": _median(dz),
                   # what a depth with no shape at all scores after the offset: a plane at the median depth
                   "flat_baseline_mm": _median(np.abs(meas[use] - np.median(meas[use]))),
                   "fit_vs_measured_median_abs_mm": _median(
                       np.abs(res.face.depth_mm[use].astype(np.float64) - meas[use])),
                   "metric_fit_median_abs_mm": res.metric.median_abs_mm,
                   "timings_ms": {"mtcnn": res.timings_ms.get("fit.detect", float("nan")),
                                  "landmarks+fit": res.timings_ms.get("fit.landmarks", 0) + res.timings_ms.get("fit.fit", 0),
                                  "face_render": res.timings_ms["face_render"],  # face-model's depth; every backend's reference
                                  "depth": res.timings_ms["depth"], "metric": res.timings_ms["metric"],
                                  "poisson": res.timings_ms["surface"]}}
            if res.surface is not None and f.name in ref_index:
                mv, _ = mesh_arrays(res.surface.mesh)
                k = ref.camera_to_cloud[ref_index[f.name]]
                placed = mv @ k[:, :3].T + k[:, 3]
                row["surface_to_expected_median_mm"] = _median(exp_tree.query(placed)[0])
                p = exp_target.icp(placed, HeadPose.identity(), iterations=30, max_dist=(20.0, 4.0))
                row["surface_to_expected_after_icp_median_mm"] = _median(exp_tree.query(placed @ p.R.T + p.t_mm)[0])
                row["surface_to_expected_after_similarity_icp_median_mm"] = similarity_icp_median(placed, exp_tree, cloud["points"])
                row["surface_vertices"] = int(len(mv))
            rows[spec].append(row)
            print(f"  {spec} {f.name}: |dz| {row['median_abs_mm']:.1f} mm (after offset {row['median_abs_after_offset_mm']:.1f}),"
                  f" surface->Expected {row.get('surface_to_expected_median_mm', float('nan')):.1f} mm", file=sys.stderr)
    for spec in backends:
        r_ = rows[spec]
        summ = {"frames_ok": len(r_), "failures": failures[spec]}
        for key in ("median_abs_mm", "median_abs_after_offset_mm", "flat_baseline_mm", "median_offset_mm",
                    "fit_vs_measured_median_abs_mm", "surface_to_expected_median_mm", "surface_to_expected_after_icp_median_mm",
                    "surface_to_expected_after_similarity_icp_median_mm"):
            summ[key] = _median([r.get(key, np.nan) for r in r_])
        summ["timings_ms_median"] = {k: _median([r["timings_ms"][k] for r in r_]) for k in (r_[0]["timings_ms"] if r_ else {})}
        out["backends"][spec] = {"summary": summ, "rows": r_}
    return out


# -- renders of the textured james scan ----------------------------------------------------------------
def render_textured_scan(shared: Path, rotation: np.ndarray, translation: np.ndarray, k):
    """(rgb uint8, depth mm, camera-frame vertices, triangles) of james.obj with its texture (bilinear),
    grey background."""
    from PIL import Image

    from facerecon.io.mesh import read_mesh
    from facerecon.geometry.pose import HeadPose
    from facerecon.realdata.scan import load_james_scan
    from facerecon.geometry.raster import render_mesh

    folder = shared / "data" / "real" / "scan-james"
    scan = load_james_scan(folder)
    mesh = read_mesh(folder / "james.obj")  # same triangles as the scan (checked), with UVs
    tex = np.asarray(Image.open(folder / "james.jpg").convert("RGB"), np.float64)
    v = scan.to_camera(HeadPose(rotation, translation))
    out = render_mesh(v, scan.faces, k, barycentrics=True)
    ok = out.triangle_id >= 0
    uv = np.einsum("nk,nkc->nc", out.barycentrics[ok].astype(np.float64), mesh.uv[mesh.face_uv[out.triangle_id[ok]]])
    h, w = tex.shape[:2]
    x = np.clip(uv[:, 0] * (w - 1), 0, w - 1)
    y = np.clip((1.0 - uv[:, 1]) * (h - 1), 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    col = (tex[y0, x0] * (1 - fx) * (1 - fy) + tex[y0, x1] * fx * (1 - fy) + tex[y1, x0] * (1 - fx) * fy + tex[y1, x1] * fx * fy)
    rgb = np.full((k.height, k.width, 3), 110, np.uint8)
    rgb[ok] = np.clip(np.rint(col), 0, 255).astype(np.uint8)
    return rgb, out.depth, v, scan.faces


def james_eval(shared: Path, backends: list[str], poisson_depth: int) -> dict:
    from scipy.spatial.transform import Rotation

    from facerecon.geometry.camera import Intrinsics
    from facerecon.errors import FaceReconError
    from facerecon.metrics.surface import SurfaceIndex
    from facerecon.photo.depth import load_depth_backend
    from facerecon.photo.depth_pipeline import PhotoDepthConfig, PhotoDepthPipeline
    from facerecon.photo.image import Photo
    from facerecon.pipeline.photo import PhotoReconstructor
    from facerecon.photo.surface import SurfaceConfig, mesh_arrays

    k = Intrinsics(600.0, 600.0, 319.5, 239.5, 640, 480)
    poses = [(yaw, pitch) for yaw in (-30, -15, 0, 15, 30) for pitch in (-10, 10)]
    rec = PhotoReconstructor.from_pretrained()
    oracle = OracleInverseDepth()
    pipes = {spec: PhotoDepthPipeline(rec, oracle if spec == ORACLE else load_depth_backend(spec), rec.model,
                                      PhotoDepthConfig(surface=SurfaceConfig(poisson_depth=poisson_depth)))
             for spec in backends}
    rows: dict[str, list] = {spec: [] for spec in backends}
    failures: dict[str, list] = {spec: [] for spec in backends}
    for yaw, pitch in poses:
        r = Rotation.from_euler("yx", [yaw, pitch], degrees=True).as_matrix()
        rgb, z, v, tris = render_textured_scan(shared, r, np.array([0.0, 0.0, 650.0]), k)
        oracle.measured = z
        name = f"james yaw {yaw:+d} pitch {pitch:+d}"
        photo = Photo(rgb, name, None)
        try:
            fit = rec.reconstruct(photo, focal_px=k.fx, texture=False)
        except FaceReconError as exc:
            for spec in backends:
                failures[spec].append(exc.one_line())
            continue
        surf_index = SurfaceIndex(v, tris)
        for spec, pipe in pipes.items():
            try:
                res = pipe.run(photo, fit=fit)
            except FaceReconError as exc:
                failures[spec].append(f"{name}: {exc.one_line()}")
                continue
            use = res.face.inner_mask & (z > 0) & (res.depth_mm > 0)
            dz = res.depth_mm[use].astype(np.float64) - z[use]
            row = {"pose": name, "median_abs_mm": _median(np.abs(dz)),
                   "median_abs_after_offset_mm": _median(np.abs(dz - np.median(dz))), "median_offset_mm": _median(dz),
                   "flat_baseline_mm": _median(np.abs(z[use] - np.median(z[use])))}
            if res.surface is not None:
                mv, _ = mesh_arrays(res.surface.mesh)
                row["surface_to_scan_median_mm"] = _median(surf_index.query(mv).distances)
                shift = np.array([0.0, 0.0, -np.median(dz)])  # the depth offset removed: shape only
                row["surface_to_scan_after_offset_median_mm"] = _median(surf_index.query(mv + shift).distances)
            rows[spec].append(row)
            print(f"  {spec} {name}: |dz| {row['median_abs_mm']:.1f} mm (after offset {row['median_abs_after_offset_mm']:.1f}),"
                  f" surface->scan {row.get('surface_to_scan_median_mm', float('nan')):.1f} mm", file=sys.stderr)
    out: dict = {"renders": len(poses), "camera": k.to_dict(), "backends": {}}
    for spec in backends:
        r_ = rows[spec]
        summ = {"renders_ok": len(r_), "failures": failures[spec]}
        for key in ("median_abs_mm", "median_abs_after_offset_mm", "flat_baseline_mm", "median_offset_mm",
                    "surface_to_scan_median_mm", "surface_to_scan_after_offset_median_mm"):
            summ[key] = _median([r.get(key, np.nan) for r in r_])
        out["backends"][spec] = {"summary": summ, "rows": r_}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, required=True, help="The shared data folder (../shared).")
    ap.add_argument("--frames", type=int, default=30, help="TrueDepth frames to use (sweep order).")
    ap.add_argument("--depth-model", action="append", default=[],
                    help="Extra backends (folder / hub id in cache / .onnx); face-model and a tiny random DPT always run.")
    ap.add_argument("--no-tiny", action="store_true", help="Skip the tiny random DPT smoke run.")
    ap.add_argument("--smoke-frames", type=int, default=5, help="TrueDepth frames for the tiny random DPT (a smoke figure).")
    ap.add_argument("--poisson-depth", type=int, default=8)
    ap.add_argument("--sections", default="icp,truedepth,james", help="Comma-separated: icp, truedepth, james.")
    ap.add_argument("--json", type=Path, default=None, help="Write the results here.")
    args = ap.parse_args(argv)
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    report: dict = {"command": " ".join(["benchmarks/photo_depth_eval.py", *(argv if argv is not None else sys.argv[1:])])}
    if "icp" in sections:
        report["icp"] = icp_comparison(args.shared)
        print(json.dumps(report["icp"], indent=1))
    if "truedepth" in sections:
        backends = ["face-model", ORACLE, *args.depth_model]
        with tempfile.TemporaryDirectory() as tmp:
            if not args.no_tiny:
                from facerecon.photo.depth import save_tiny_random_model

                backends.append(str(save_tiny_random_model(Path(tmp) / "tiny-random-dpt", "dpt", seed=0)))
            report["truedepth"] = truedepth_eval(args.shared, backends, args.frames, args.poisson_depth, args.smoke_frames)
        for spec, r in report["truedepth"]["backends"].items():
            name = "tiny random DPT (smoke)" if "tiny-random" in spec else spec
            r = {**r, "summary": {k: v for k, v in r["summary"].items() if k != "failures"} | {"failures": len(r["summary"]["failures"])}}
            print(f"{name}: " + json.dumps(r["summary"], indent=1))
    if "james" in sections:
        report["james"] = james_eval(args.shared, ["face-model", ORACLE, *args.depth_model], args.poisson_depth)
        for spec, r in report["james"]["backends"].items():
            summ = {k: v for k, v in r["summary"].items() if k != "failures"} | {"failures": len(r["summary"]["failures"])}
            print(f"james renders, {spec}: " + json.dumps(summ, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
