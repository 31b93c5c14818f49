"""The grid search's faster pieces give the numbers of the forms they replace, bit for bit (the check's depth
comparison, the rasteriser's triangle loop, the ICP step's rows, the rejection's median, the refinement's gates);
``benchmarks/snapshot.py compare`` checks the whole pipeline on real frames, these check the pieces."""
from __future__ import annotations

import numpy as np
import pytest

from facerecon.geometry.icp import partition_median, point_to_plane_step
from facerecon.geometry.rotations import axis_angle_to_matrix


def _numpy_step(p, q, n, damping, damping_floor, centre=None):
    """point_to_plane_step as NumPy computed it before it was compiled."""
    c = p.mean(axis=0) if centre is None else centre
    a = np.concatenate([np.cross(p - c, n), n], axis=1)
    b = -np.einsum("ij,ij->i", p - q, n)
    ata = a.T @ a
    x = np.linalg.solve(ata + damping * max(float(np.trace(ata)), damping_floor) * np.eye(len(ata)), a.T @ b)
    dr = axis_angle_to_matrix(x[:3])
    return dr, c + x[3:] - dr @ c, x


def test_compiled_step_is_numpys_to_rounding():
    """The compiled point-to-plane step (normal equations summed row by row, the 6 x 6 solve) is NumPy's to
    rounding: the step's motion within 1e-9 of its size, for the centroid and for a given centre."""
    rng = np.random.default_rng(0)
    worst = 0.0
    for k in range(60):
        m = int(rng.integers(6, 2500))
        p = rng.normal(size=(m, 3)) * [60.0, 80.0, 30.0] + [0.0, 0.0, 700.0]
        q = p + rng.normal(size=(m, 3))
        n = rng.normal(size=(m, 3))
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        rows = rng.permutation(m)[: m // 2 + 3]  # rigid_icp's pairs: gathered rows (C-ordered copies)
        p, q, n = p[rows], q[rows], n[rows]
        centre = None if k % 2 else p[0] + 5.0
        got = point_to_plane_step(p, q, n, centre=centre, damping=1e-6, damping_floor=1.0)
        want = _numpy_step(p, q, n, 1e-6, 1.0, centre)
        scale = max(float(np.abs(want[2]).max()), 1e-12)
        worst = max(worst, max(float(np.abs(x - y).max()) for x, y in zip(got, want)) / scale)
    assert worst < 1e-9, worst
    # a Fortran-ordered input: the same step
    f = np.asfortranarray(p)
    assert all(np.allclose(x, y, rtol=0, atol=1e-12) for x, y in zip(point_to_plane_step(f, q, n), point_to_plane_step(p, q, n)))


def test_median_is_numpys():
    rng = np.random.default_rng(1)
    for _ in range(500):
        d = np.abs(rng.normal(size=int(rng.integers(1, 1500)))) * 4.0
        if rng.random() < 0.4:
            d = np.round(d, 1)  # ties
        assert partition_median(d) == float(np.median(d))
    assert np.isnan(partition_median(np.zeros(0)))


def test_refinement_gates_are_the_geometric_schedule():
    from facerecon.pipeline.check import _icp_schedule

    for n in (1, 2, 4, 6):
        thr, rej = _icp_schedule((20.0, 6.0), n)
        assert np.array_equal(thr, np.geomspace(20.0, 6.0, n) if n > 1 else np.array([6.0]))
        assert rej.factor == 2.5 and rej.floor == 3.0 and rej.min_pairs == 12
        assert _icp_schedule((20.0, 6.0), n)[0] is thr and not thr.flags.writeable  # made once, shared read-only


def _numpy_landmark_hits(landmarks_head, pose, pim):
    """check.landmark_hits as NumPy computed it before its window was compiled."""
    from facerecon.pipeline.check import FIT_TOLERANCE_MM

    lm = pose.apply(landmarks_head)
    uv = np.rint(pim.intrinsics.project(lm)).astype(np.int64)
    s = pim.size
    off = np.arange(-2, 3)
    us = np.clip(uv[:, 0, None, None] + off[None, None, :], 0, s - 1)
    vs = np.clip(uv[:, 1, None, None] + off[None, :, None], 0, s - 1)
    pts = pim.data[:, vs, us].transpose(1, 2, 3, 0) * pim.scale_mm + pim.center_mm  # (L, 5, 5, 3)
    ok = pim.valid[vs, us]
    d = np.linalg.norm(pts - lm[:, None, None, :], axis=-1)
    d[~ok] = np.inf
    return d.reshape(len(lm), -1).min(axis=1) <= FIT_TOLERANCE_MM, lm, uv


def _numpy_check(face, pose, region, surf, cfg):
    """surface_check as NumPy computed it before its depth comparison and landmark window were compiled."""
    from facerecon.geometry.raster import rasterize
    from facerecon.pipeline.check import (
        SurfaceCheck,
        landmarks_in_image,
        visible_landmark_fit,
    )

    c = cfg.check
    verts = np.ascontiguousarray(face.used @ pose.R.T + pose.t_mm, np.float64)
    hits, lm_cam, lm_uv = _numpy_landmark_hits(face.landmarks, pose, surf.pim)
    lm = float(hits.mean())
    depth, tid, _ = rasterize(verts, region.local_triangles, surf.pim.intrinsics)
    facing_away = np.einsum("ij,ij->i", face.landmark_normals @ pose.R.T, lm_cam) > 0.0
    lm_vis = visible_landmark_fit(hits, lm_cam, lm_uv, depth, landmarks_in_image(lm_cam, surf.pim), facing_away)
    rendered = depth > 0
    both = rendered & surf.valid
    n = int(both.sum())
    coverage = n / int(rendered.sum()) if rendered.any() else 0.0
    if n < c.min_pixels:
        return SurfaceCheck(float("inf"), 1.0, float(coverage), n, landmark_fit=lm, visible_landmark_fit=lm_vis)
    diff = surf.depth[both] - depth[both]
    a = np.sort(np.abs(diff))
    k = max(1, int(np.ceil(c.trim * len(a))))
    central = region.central[tid[both]]
    cres = float(np.median(np.abs(diff[central]))) if central.sum() >= c.min_pixels // 5 else float("inf")
    return SurfaceCheck(float(a[:k].mean()), float((diff > c.free_space_mm).mean()), float(coverage), n, cres, lm, lm_vis)


@pytest.fixture(scope="module")
def kinect_face(ict_archive):
    from facerecon.evaluate.hostile import _generator, head_frame
    from facerecon.facemodel import FaceModel
    from facerecon.pipeline.check import CheckedFace, FaceRegion, MeasuredSurface
    from facerecon.pipeline.frame import locate

    model = FaceModel.load()
    frame = head_frame(_generator("biwi", "kinect-v1", 0, model), 0)
    region = FaceRegion(model)
    surf = MeasuredSurface.from_position_image(locate(frame).position_image)
    face = CheckedFace.of(model.reference_vertices.astype(np.float64), region)
    return frame.meta["pose_for_eval_only"], region, surf, face


def _poses(truth, centre):
    """The true pose, grid-like turns of it, a far shift and poses the check refuses for pixels."""
    from facerecon.geometry.pose import HeadPose
    from facerecon.geometry.rotations import euler_to_matrix

    out = [truth]
    for yaw, pitch in ((-60, 0), (40, -20), (20, 40), (-120, 10), (180, 0)):
        out.append(HeadPose(euler_to_matrix(yaw, pitch, 0.0) @ truth.R, truth.t_mm))
    out.append(HeadPose(truth.R, truth.t_mm + [90.0, -40.0, 30.0]))
    out.append(HeadPose(np.eye(3), np.asarray(centre, np.float64) + [140.0, 0.0, 0.0]))  # half out of the crop
    out.append(HeadPose(np.eye(3), np.asarray(centre, np.float64) + [400.0, 0.0, 0.0]))  # out of the crop: no pixels
    return out


def test_depth_comparison_is_numpys(kinect_face):
    from facerecon.pipeline.check import check_config, surface_check

    truth, region, surf, face = kinect_face
    cfg = check_config()
    seen = []
    for pose in _poses(truth, surf.pim.center_mm):
        got, want = surface_check(face, pose, region, surf, cfg), _numpy_check(face, pose, region, surf, cfg)
        assert got == want
        seen.append(got.n_pixels)
    assert max(seen) > 1000 and min(seen) < cfg.check.min_pixels  # compared faces and a refused one


def test_landmark_window_is_numpys(kinect_face):
    """The landmark hits at many poses near and far from the truth (windows cut by the crop's border, landmarks
    with and without a point), for the crop as it is and for a float64 scale (the product's other dtype)."""
    from dataclasses import replace

    from facerecon.geometry.pose import HeadPose
    from facerecon.geometry.rotations import euler_to_matrix
    from facerecon.pipeline.check import landmark_hits

    truth, _, surf, face = kinect_face
    rng = np.random.default_rng(5)
    counts = []
    for pim in (surf.pim, replace(surf.pim, scale_mm=np.float64(surf.pim.scale_mm) * (1 + 1e-7))):
        for k in range(40):
            r = euler_to_matrix(*rng.normal(0, 15 * (k > 0), 3)) @ truth.R
            pose = HeadPose(r, truth.t_mm + rng.normal(0, 8 * (k > 0), 3) + [(k % 5) * 30.0, 0, 0])
            got, want = landmark_hits(face.landmarks, pose, pim), _numpy_landmark_hits(face.landmarks, pose, pim)
            assert all(np.array_equal(a, b) for a, b in zip(got, want))
            counts.append(int(got[0].sum()))
    assert max(counts) > 40 and min(counts) < 10, counts


def test_raster_loop_is_the_per_triangle_fill(kinect_face):
    """_raster skips a triangle that covers no pixel centre before calling _fill (inlined) and takes each vertex's
    1/z once; filling every triangle through _fill itself, in the same order, gives the same depth and ids."""
    from facerecon.geometry.raster import _fill, _project, _raster

    truth, region, surf, face = kinect_face
    k = surf.pim.intrinsics
    tris = region.local_triangles
    for pose in _poses(truth, surf.pim.center_mm)[:4]:
        verts = np.ascontiguousarray(face.used @ pose.R.T + pose.t_mm, np.float64)
        uvz = _project(verts, float(k.fx), float(k.fy), float(k.cx), float(k.cy))
        iz, tid = np.zeros((k.height, k.width)), np.full((k.height, k.width), -1, np.int32)
        _raster(uvz, verts, tris, 0, 1.0, iz, tid, 0, float(k.fx), float(k.fy), float(k.cx), float(k.cy))
        iz0, tid0 = np.zeros_like(iz), np.full_like(tid, -1)
        for t, (a, b, c) in enumerate(tris):  # (each corner's 1/z: what _fill takes)
            _fill(uvz[a, 0], uvz[a, 1], 1.0 / uvz[a, 2], uvz[b, 0], uvz[b, 1], 1.0 / uvz[b, 2], uvz[c, 0], uvz[c, 1], 1.0 / uvz[c, 2],
                  t, 0, iz0, tid0)
        assert np.array_equal(iz, iz0) and np.array_equal(tid, tid0) and (tid >= 0).sum() > 1000


def _numpy_icp(src, assoc, normals, init, iterations, thr, reject, tol_step):
    """rigid_icp's point-to-plane loop (source planes) as NumPy computed it before its small calls were trimmed."""
    from facerecon.geometry.transforms import SimilarityTransform

    cur, history, x = init, [], None
    for it in range(1, iterations + 1):
        p = cur.apply(src)
        n = normals @ cur.R.T
        pairs = assoc(p, n, float(thr[it - 1]))
        keep = reject.keep(pairs.distances)
        idx, q, d = pairs.index[keep], pairs.points[keep], pairs.distances[keep]
        pk = p[idx]
        history.append(float(np.sqrt(np.mean(d**2))))
        dr, dt, x = _numpy_step(pk, q, n[idx], 1e-6, 1.0)
        cur = cur.then(SimilarityTransform(dr, dt, 1.0))
        if np.linalg.norm(x[:3]) < tol_step[0] and np.linalg.norm(x[3:]) < tol_step[1]:
            break
    return cur, history, it


def test_rigid_icp_loop_is_numpys():
    """rigid_icp's trimmed loop is the NumPy loop (to the compiled step's rounding)."""
    from facerecon.geometry.icp import NearestNeighbours, Rejection, rigid_icp
    from facerecon.geometry.rotations import euler_to_matrix
    from facerecon.geometry.transforms import SimilarityTransform

    rng = np.random.default_rng(4)
    uv = rng.uniform(-60, 60, size=(3000, 2))
    target = np.c_[uv, 15 * np.sin(uv[:, 0] / 20) + 10 * np.cos(uv[:, 1] / 25)]
    src = target[rng.choice(3000, 800, replace=False)] + rng.normal(0, 0.3, (800, 3))
    nrm = np.c_[-0.75 * np.cos(src[:, 0] / 20), 0.4 * np.sin(src[:, 1] / 25), np.ones(800)]
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    assoc = NearestNeighbours(target)
    reject = Rejection(2.5, floor=1.0, min_pairs=12)
    for k in range(3):
        init = SimilarityTransform(euler_to_matrix(*rng.normal(0, 3, 3)), rng.normal(0, 3, 3))
        thr = np.geomspace(15.0, 4.0, 8)
        got = rigid_icp(src, assoc, normals=nrm, init=init, iterations=8, max_distance=thr, reject=reject, min_pairs=0,
                        min_inliers=6, planes="source", damping=1e-6, damping_floor=1.0, tol_step=(1e-5, 1e-3))
        cur, history, it = _numpy_icp(src, assoc, nrm, init, 8, thr, reject, (1e-5, 1e-3))
        # the compiled step's sums are NumPy's to rounding (test_compiled_step_is_numpys_to_rounding)
        assert np.abs(got.transform.R - cur.R).max() < 1e-12 and np.abs(got.transform.t - cur.t).max() < 1e-9
        assert np.allclose(got.history, history, rtol=1e-12, atol=0) and got.iterations == it


def test_measured_surface_is_the_numpy_form_bit_for_bit():
    """The crop's measured points and depth from one compiled pass (``check._grid_points``): the NumPy form's values."""
    from facerecon.geometry.camera import camera_preset
    from facerecon.io.frame import DepthFrame
    from facerecon.pipeline.check import MeasuredSurface
    from facerecon.preprocess import make_position_image

    k = camera_preset("kinect-v1")
    rng = np.random.default_rng(2)
    depth = (650.0 + 200.0 * rng.random((k.height, k.width))).astype(np.float32)
    depth[rng.random(depth.shape) < 0.3] = 0.0
    pim = make_position_image(DepthFrame(depth, k, "rough"), np.array([20.0, -10.0, 750.0]))
    surf = MeasuredSurface.from_position_image(pim)
    pts = np.moveaxis(pim.data, 0, -1).astype(np.float64) * pim.scale_mm + pim.center_mm
    assert surf.points.tobytes() == pts.tobytes()
    assert surf.depth.tobytes() == np.where(pim.valid, pts[..., 2], 0.0).tobytes()


def test_visible_landmark_fit_is_the_numpy_form():
    """The compiled count (``check._visible_share``) against the NumPy form it replaced: random landmarks in and
    out of the crop, hidden or not, with and without the in-image and facing-away flags."""
    from facerecon.pipeline.check import FIT_TOLERANCE_MM, MIN_VISIBLE_SHARE, visible_landmark_fit

    rng = np.random.default_rng(4)
    for _ in range(200):
        n, s = 51, 40
        hits = rng.random(n) < rng.random()
        lm = np.c_[rng.normal(0, 50, (n, 2)), rng.uniform(500, 560, n)]
        uv = rng.integers(-5, s + 5, (n, 2))
        depth = np.where(rng.random((s, s)) < 0.7, rng.uniform(480, 560, (s, s)), 0).astype(np.float32)
        in_image, facing = rng.random(n) < 0.8, rng.random(n) < 0.2
        for a, b in ((None, None), (in_image, None), (None, facing), (in_image, facing)):
            inside = (uv[:, 0] >= 0) & (uv[:, 0] < s) & (uv[:, 1] >= 0) & (uv[:, 1] < s)
            front = depth[np.clip(uv[:, 1], 0, s - 1), np.clip(uv[:, 0], 0, s - 1)]
            counted = ~(inside & (front > 0) & (front < lm[:, 2] - FIT_TOLERANCE_MM))
            if a is not None:
                counted &= a | hits
            if b is not None:
                counted &= ~b | hits
            want = float((hits & counted).sum() / max(int(counted.sum()), int(np.ceil(MIN_VISIBLE_SHARE * n))))
            assert visible_landmark_fit(hits, lm, uv, depth, a, b) == want
