"""The faster forms of the classical stages give the same numbers, bit for bit, as the forms they replace
(``benchmarks/snapshot.py compare`` checks the whole pipeline on real frames; these check the pieces)."""
from __future__ import annotations

import numpy as np

from facerecon.facemodel import vertex_normals
from facerecon.fitting.gauss_newton import _NO_BASES, _jacobian, measured_points


def test_vertex_normals_by_bincount_are_those_of_add_at():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(400, 3)) * 50
    tris = rng.integers(0, 400, (700, 3))
    fn = np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, tris[:, k], fn)
    expected = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    assert np.array_equal(vertex_normals(v, tris), expected)
    v32 = v.astype(np.float32)  # float32 keeps the float32 accumulation
    assert vertex_normals(v32, tris).dtype == np.float32


def test_jacobian_rows_are_the_strided_sum():
    rng = np.random.default_rng(1)
    b = rng.normal(size=(40, 300, 3))
    index = np.sort(rng.choice(300, 200, replace=False))
    nh = rng.normal(size=(200, 3))
    xyz = tuple(np.ascontiguousarray(b[..., c].T) for c in range(3))
    vi, ni = rng.normal(size=(200, 3)) * 90, rng.normal(size=(200, 3))
    assert np.array_equal(_jacobian(vi, ni, np.zeros(3), nh, index, *xyz, *_NO_BASES)[:, 6:], (b[:, index] * nh[None]).sum(-1).T)


def test_measured_points_are_the_masked_rows():
    rng = np.random.default_rng(6)
    p = rng.normal(size=(3000, 3)) * 100
    p[rng.integers(0, 3000, 300), rng.integers(0, 3, 300)] = np.nan
    p[rng.integers(0, 3000, 50), rng.integers(0, 3, 50)] = np.inf
    p[rng.integers(0, 3000, 20), 2] = 0.0
    assert np.array_equal(measured_points(p.astype(np.float32)), p.astype(np.float32).astype(np.float64)[
        np.isfinite(p).all(1) & (p[:, 2] > 0)])


def test_correction_pairs_are_numpys_gates_and_need_no_farther_lookup():
    """The correction's pairs (numba) are numpy's residual, tangent distance and gates; a lookup reaching only
    sqrt(normal^2 + tangent^2) keeps the same pairs as one reaching normal + tangent (what it was)."""
    from facerecon.fitting.correction import _gated_pairs
    from facerecon.geometry.neighbours import BoundedNeighbours

    rng = np.random.default_rng(7)
    uv = rng.uniform(-80, 80, size=(4000, 2))
    vr = np.c_[uv, 20 * np.sin(uv[:, 0] / 25)]
    nr = rng.normal(size=(4000, 3)) * 0.3 + [0, 0, 1]
    nr /= np.linalg.norm(nr, axis=1, keepdims=True)
    cand = np.sort(rng.choice(4000, 3000, replace=False))
    p = vr[rng.integers(0, 4000, 20000)] + rng.normal(size=(20000, 3)) * [2, 2, 5]
    gates = (8.0, 2.5)
    old = gates[0] + gates[1]
    dist, k = BoundedNeighbours(vr[cand], old).query(p, old)
    ok = np.isfinite(dist)
    vi = cand[k[ok]]
    delta = p[ok] - vr[vi]
    r = np.einsum("ij,ij->i", delta, nr[vi])
    tangent = np.linalg.norm(delta - r[:, None] * nr[vi], axis=1)
    keep = (np.abs(r) < gates[0]) & (tangent < gates[1])
    got = _gated_pairs(p, dist, k, cand, vr, nr, *gates)
    assert np.array_equal(got[0], vi[keep]) and np.array_equal(got[1], r[keep])
    near = float(np.hypot(*gates)) * (1.0 + 1e-6)
    d2, k2 = BoundedNeighbours(vr[cand], near).query(p, near)
    again = _gated_pairs(p, d2, k2, cand, vr, nr, *gates)
    assert np.array_equal(again[0], got[0]) and np.array_equal(again[1], got[1]) and 1000 < len(got[0]) < 20000


def test_incident_normals_are_the_sparse_products(ict_archive):
    """The check's sample and landmark normals (triangle_normals + csr_unit_normals, numba) are the sparse incidence
    product of numpy's cross products, normalised, bit for bit."""
    from facerecon.facemodel import FaceModel
    from facerecon.pipeline.check import FaceRegion

    m = FaceModel.load()
    reg = FaceRegion(m)
    rng = np.random.default_rng(8)
    for _ in range(5):
        v = m.vertices(rng.normal(size=100) * 2, rng.uniform(0, 1, 55)).astype(np.float64)
        u = v[reg._used]
        t = reg._tris_local
        n = reg._incidence @ np.cross(u[t[:, 1]] - u[t[:, 0]], u[t[:, 2]] - u[t[:, 0]])
        vs, ns = reg.sample_with_normals(v)
        assert np.array_equal(vs, u[reg._sample_local])
        assert np.array_equal(ns, n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12))
        t = reg.landmark_triangles
        n = reg._lm_incidence @ np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
        assert np.array_equal(reg.landmark_normals(v), n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12))


def _numpy_normals(surf, v, u):
    """The grid normals as NumPy computes them (the form the compiled pass replaced)."""
    s = surf.valid.shape[0]
    ok = (u >= 1) & (u < s - 1) & (v >= 1) & (v < s - 1)
    u, v = np.clip(u, 1, s - 2), np.clip(v, 1, s - 2)
    val = surf.valid
    ok &= val[v, u] & val[v, u + 1] & val[v, u - 1] & val[v + 1, u] & val[v - 1, u]
    p = surf.points
    dx = p[v, u + 1] - p[v, u - 1]
    dy = p[v + 1, u] - p[v - 1, u]
    ok &= (np.abs(dx[:, 2]) < surf.max_jump_mm) & (np.abs(dy[:, 2]) < surf.max_jump_mm)
    n = np.cross(dx, dy)
    nn = np.linalg.norm(n, axis=1)
    ok &= nn > 1e-9
    n = n / np.maximum(nn, 1e-12)[:, None]
    n[np.einsum("ij,ij->i", n, p[v, u]) > 0] *= -1
    return n, ok


def _numpy_pairs(surf, p, nm, max_distance):
    """The projective association as NumPy computed it."""
    k, s = surf.pim.intrinsics, surf.pim.size
    z = p[:, 2]
    front = (z > 1.0) & (np.einsum("ij,ij->i", nm, p) < 0)
    u = np.rint(k.fx * p[:, 0] / np.maximum(z, 1.0) + k.cx).astype(np.int64)
    v = np.rint(k.fy * p[:, 1] / np.maximum(z, 1.0) + k.cy).astype(np.int64)
    idx = np.flatnonzero(front & (u >= 0) & (u < s) & (v >= 0) & (v < s))
    nq, keep = _numpy_normals(surf, v[idx], u[idx])
    idx, nq = idx[keep], nq[keep]
    q = surf.points[v[idx], u[idx]]
    d = np.linalg.norm(q - p[idx], axis=1)
    ok = (d < max_distance) & (np.einsum("ij,ij->i", nq, nm[idx]) > 0.5)
    return idx[ok], q[ok], nq[ok], d[ok]


def test_compiled_grid_normals_and_pairs_are_numpys_and_checked_face_the_array():
    from facerecon.evaluate.hostile import _generator, head_frame
    from facerecon.facemodel import FaceModel
    from facerecon.geometry.pose import HeadPose
    from facerecon.pipeline.check import (
        CheckedFace,
        FaceRegion,
        MeasuredSurface,
        ProjectivePairs,
        check_config,
        surface_check,
    )
    from facerecon.pipeline.frame import locate

    model = FaceModel.load()
    frame = head_frame(_generator("biwi", "kinect-v1", 0, model), 0)
    truth = frame.meta["pose_for_eval_only"]
    pim = locate(frame).position_image
    s = pim.size
    rng = np.random.default_rng(2)
    surf = MeasuredSurface.from_position_image(pim)
    # the identity stage takes the check's grid points for the position image's own (the same values, same order)
    assert np.array_equal(surf.points[surf.valid], pim.points_mm())
    vv, uu = np.divmod(np.arange(-2 * s, (s + 2) * s), s)
    for v, u in [(vv, uu)] + [(rng.integers(-2, s + 2, 300), rng.integers(-2, s + 2, 300)) for _ in range(3)]:
        n0, ok0 = _numpy_normals(surf, v, u)
        n1, ok1 = surf.normals_at(v, u)
        assert np.array_equal(ok0, ok1) and np.array_equal(n0[ok0], n1[ok1])
    assert ok1.sum() > 100
    region = FaceRegion(model)
    v_head = model.reference_vertices.astype(np.float64)
    vs, ns = region.sample_with_normals(v_head)
    pairs = ProjectivePairs(surf)
    n_pairs = []
    for k in range(6):  # the face at and around its true pose, some of it out of the crop
        pose = HeadPose(truth.R, truth.t_mm + rng.normal(0, 60 * (k > 3), 3))
        p, nm = vs @ pose.R.T + pose.t_mm, ns @ pose.R.T
        for gate in (4.0, 30.0):
            a, b = _numpy_pairs(surf, p, nm, gate), pairs(p, nm, gate)
            assert all(np.array_equal(x, y) for x, y in zip(a, (b.index, b.points, b.normals, b.distances)))
            n_pairs.append(len(b.index))
    assert max(n_pairs) > 100, n_pairs
    pose = HeadPose(np.eye(3), np.asarray(pim.center_mm, np.float64))
    cfg = check_config()
    assert surface_check(v_head, pose, region, surf, cfg) == surface_check(CheckedFace.of(v_head, region), pose, region, surf, cfg)


def _reference_fuse(points, normals, weights, pts_head, nrm_head, voxel):
    """The fused surface's voxel average as np.unique + np.bincount computed it."""
    p = np.concatenate([points * weights[:, None], pts_head])
    n = np.concatenate([normals * weights[:, None], nrm_head])
    w = np.concatenate([weights, np.ones(len(pts_head))])
    cells = np.floor(np.concatenate([points, pts_head]) / voxel).astype(np.int64) + (1 << 20)
    keys = (cells[:, 0] << 42) | (cells[:, 1] << 21) | cells[:, 2]
    _, inv = np.unique(keys, return_inverse=True)
    inv = inv.reshape(-1)
    m = int(inv.max()) + 1 if len(inv) else 0
    ws = np.bincount(inv, weights=w, minlength=m)
    ps = np.stack([np.bincount(inv, weights=p[:, k], minlength=m) for k in range(3)], 1)
    ns = np.stack([np.bincount(inv, weights=n[:, k], minlength=m) for k in range(3)], 1)
    return ps / ws[:, None], ns / np.maximum(np.linalg.norm(ns, axis=1, keepdims=True), 1e-12), ws


def test_fused_voxels_are_those_of_unique_and_bincount():
    from facerecon.tracking.tracker import HeadSurface

    rng = np.random.default_rng(3)
    for max_points in (100000, 1500):  # the second trims the voxels to the best supported (no longer in key order)
        surf = HeadSurface(2.5, max_points)
        for k in range(8):
            pts = rng.normal(size=(800 + 100 * k, 3)) * [30.0, 40.0, 10.0] + rng.normal(size=3)
            nrm = rng.normal(size=pts.shape)
            nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
            if k == 3:
                pts[:50] = pts[50:100]  # repeated points: several new rows per voxel
            ref = _reference_fuse(surf.points, surf.normals, surf.weights, pts, nrm, surf.voxel)
            surf.add(pts, nrm)
            if len(ref[0]) > max_points:
                keep = np.argsort(-ref[2], kind="stable")[:max_points]
                ref = tuple(x[keep] for x in ref)
            assert all(np.array_equal(a, b) for a, b in zip(ref, (surf.points, surf.normals, surf.weights)))
        assert surf.frames == 8 and len(surf) == min(max_points, len(ref[0]))


def test_principal_submatrix_is_scipys_fancy_indexing():
    import scipy.sparse as sp

    from facerecon.fitting.correction import _principal

    rng = np.random.default_rng(2)
    a = sp.random(300, 300, density=0.05, random_state=3, format="csr")
    a = (a + a.T + sp.eye(300)).tocsr()
    a.sum_duplicates()
    a.sort_indices()
    keep = np.sort(rng.choice(300, 200, replace=False))
    expected = a[keep][:, keep]
    got, diag = _principal(a, keep)
    assert np.array_equal(got.indptr, expected.indptr) and np.array_equal(got.indices, expected.indices)
    assert np.array_equal(got.data, expected.data)
    assert np.array_equal(got.data[diag], expected.diagonal())
    x = rng.normal(size=200)
    assert np.array_equal(got @ x, expected @ x)  # the same sums in the same order


def test_leading_vertices_are_the_whole_meshs():
    from facerecon.facemodel import FaceModel

    m = FaceModel.load()
    rng = np.random.default_rng(4)
    for _ in range(5):
        ident, expr = rng.normal(size=100), rng.uniform(0.0, 1.0, 55)
        whole = m.vertices(ident, expr)
        for n in (1, 5, 4096, 6706, 6707, 8191, 9409, 12289, m.n_vertices - 2, m.n_vertices - 1, m.n_vertices):  # the cut last blocks
            assert np.array_equal(m.vertices(ident, expr, leading=n), whole[:n])
    # one face's mesh in blocks is the product in one call up to float32 rounding (with one BLAS thread: the same bits)
    w = np.r_[ident, expr].astype(np.float32)
    assert np.allclose(whole, (w @ m._flat_bases).reshape(-1, 3) + m.neutral, rtol=0, atol=1e-3)


def test_moved_vertices_are_the_whole_meshs():
    """:meth:`FaceModel.vertices_moved` (the identity stage's returned mesh from the check's leading rows): past the
    prefix the product from the prefix's end, the prefix moved by the changed modes: the whole mesh to float32 rounding."""
    from facerecon.facemodel import FaceModel

    m = FaceModel.load()
    rng = np.random.default_rng(5)
    worst = 0.0
    for n in (6707, 4096, 100):
        ident0, expr0 = rng.normal(size=100), rng.uniform(0.0, 1.0, 55)
        ident1, expr1 = ident0.copy(), expr0.copy()
        ident1[:40] += rng.normal(size=40)  # the identity stage's fitted modes
        if n == 100:
            expr1[:10] = rng.uniform(0.0, 1.0, 10)
        prefix = m.vertices(ident0, expr0, leading=n).astype(np.float64)
        whole = m.vertices(ident1, expr1)
        moved = m.vertices_moved(prefix, ident1, expr1, ident0, expr0)
        assert moved.shape == whole.shape and np.abs(moved[n:] - whole[n:]).max() < 1e-4
        worst = max(worst, float(np.abs(moved[:n] - whole[:n]).max()))
    assert worst < 1e-4, worst  # float32 rounding of coordinates up to ~150 mm (measured 0.9-1.7e-5)


def test_fit_from_a_start_mesh_is_the_fit_from_the_weights():
    """``fit_face(..., start_mesh=)`` (normals and subset from the check's mesh, moved by the fitted modes) gives the
    fit of the products over all the bases to float32 rounding."""
    from facerecon.facemodel import FaceModel
    from facerecon.fitting import FitConfig, fit_face
    from facerecon.geometry.pose import HeadPose
    from facerecon.geometry.rotations import euler_to_matrix

    m = FaceModel.load()
    rng = np.random.default_rng(7)
    truth = m.vertices(rng.normal(size=100), np.zeros(55)).astype(np.float64)
    pose = HeadPose(euler_to_matrix(10.0, -5.0, 3.0), np.array([5.0, -10.0, 650.0]))
    points = pose.apply(truth)
    start_id, start_ex = rng.normal(size=100) * 0.5, rng.uniform(0.0, 0.3, 55)
    start = HeadPose(euler_to_matrix(12.0, -4.0, 2.0), pose.t_mm + [2.0, 1.0, -3.0])
    cfg = FitConfig(n_identity=40, n_expression=0, rigid_iterations=0, iterations=6, max_distance_mm=(10.0, 5.0), region="narrow_face")
    mesh0 = m.vertices(start_id, start_ex, leading=6707).astype(np.float64)
    a = fit_face(points, m, start, cfg, identity=start_id, expression=start_ex)
    b = fit_face(points, m, start, cfg, identity=start_id, expression=start_ex, start_mesh=mesh0)
    # measured: |dR| 5.7e-9, |dt| 4.9e-7 mm, |d identity| 5.0e-8
    assert np.abs(a.pose.R - b.pose.R).max() < 1e-6 and np.abs(a.pose.t_mm - b.pose.t_mm).max() < 1e-4
    assert np.abs(a.identity - b.identity).max() < 1e-5 and np.array_equal(a.identity[40:], b.identity[40:])


def test_grid_noise_is_numpys_to_rounding():
    """``grid_noise_mm`` (second differences in one compiled pass, the trimmed values by a partition) is the NumPy
    form it replaced (masked second differences along rows and columns, a sort) to the rounding of the sum."""
    from facerecon.fitting.correction import TRIM_NOISE, grid_noise_mm

    def numpy_noise(points, valid, max_jump_mm=10.0):
        z = np.where(valid, points[..., 2], np.nan)
        out = []
        for zz in (z, z.T):
            a, b, c = zz[:, :-2], zz[:, 1:-1], zz[:, 2:]
            d2 = a - 2.0 * b + c
            out.append(d2[np.isfinite(d2) & (np.abs(a - b) < max_jump_mm) & (np.abs(c - b) < max_jump_mm)])
        d2 = np.concatenate(out)
        if len(d2) < 100:
            return float("nan")
        a = np.sort(np.abs(d2))[: int(np.ceil(TRIM_NOISE * len(d2)))]
        return float(np.sqrt(np.mean(a**2) / 6.0))

    rng = np.random.default_rng(8)
    for t in range(40):
        h, w = rng.integers(3, 160, 2)
        p = rng.normal(size=(h, w, 3)) * 3 + [0.0, 0.0, 600.0]
        p[..., 2] += np.round(rng.normal(size=(h, w)) * 8) * (t % 2)  # quantised depth: ties, and jumps
        p[rng.random((h, w)) < 0.05, 2] = np.nan
        valid = rng.random((h, w)) < 0.8
        want, got = numpy_noise(p, valid), grid_noise_mm(p, valid)
        assert (np.isnan(want) and np.isnan(got)) or abs(got - want) <= 1e-12 * want, (t, want, got)


def test_paired_rows_are_the_numpy_iteration():
    """``_paired_rows`` (one compiled pass: posing, facing test, the grid's lookup, residuals, Jacobian rows) gives the
    pairs of the NumPy iteration it replaced (``NearestNeighbours`` with ``facing``) and its residuals and rows to
    rounding."""
    from facerecon.fitting.gauss_newton import _paired_rows
    from facerecon.geometry.icp import NearestNeighbours
    from facerecon.geometry.rotations import euler_to_matrix

    rng = np.random.default_rng(9)
    uv = rng.uniform(-70, 70, size=(6000, 2))
    cloud = np.c_[uv, 600.0 + 12 * np.sin(uv[:, 0] / 20)]
    v = np.c_[rng.uniform(-60, 60, size=(900, 2)), rng.normal(0, 2, 900)]
    nh = rng.normal(size=(900, 3)) * 0.3 + [0.0, 0.0, -1.0]
    nh /= np.linalg.norm(nh, axis=1, keepdims=True)
    b = tuple(np.ascontiguousarray(rng.normal(size=(900, 7))) for _ in range(3))
    e = tuple(np.ascontiguousarray(rng.normal(size=(900, 2))) for _ in range(3))
    R, t = euler_to_matrix(8.0, -5.0, 3.0), np.array([2.0, -1.0, 601.0])
    nn = NearestNeighbours(cloud, facing=True, bound=10.0)
    g = nn.tree
    for thr in (10.0, 6.0):
        index, r, J = _paired_rows(v, nh, R, t, g.points, g._cube_points, g.order, g.starts, g.origin, g.cell, g.reach,
                                   g.dims, thr**2, *b, *e)
        vc, nc = v @ R.T + t, nh @ R.T
        pr = nn(vc, nc, thr)
        assert np.array_equal(index, pr.index) and len(index) > 100
        vi, ni = vc[pr.index], nc[pr.index]
        assert np.allclose(r, np.einsum("ij,ij->i", ni, pr.points - vi), rtol=0, atol=1e-9)
        want = _jacobian(vi, ni, t, ni @ R, pr.index, *b, *e)
        assert np.allclose(J, want, rtol=0, atol=1e-9)


def test_robust_sigma_of_unit_weights_is_the_sorted_form():
    """The correction's robust scale with unit weights (one partition) is the weighted form's value (a sort and the
    cumulative weights' half), bit for bit; other weights take the weighted form."""
    from facerecon.fitting.correction import _robust_sigma

    def sorted_form(e, w):
        a = np.abs(e)
        order = np.argsort(a)
        c = np.cumsum(w[order])
        return float(1.4826 * a[order][np.searchsorted(c, 0.5 * c[-1])])

    rng = np.random.default_rng(10)
    for n in [*range(1, 30), 1000, 1001, 7735]:
        e = rng.normal(size=n)
        e = np.round(e, 1) if n % 3 == 0 else e  # ties
        assert _robust_sigma(e, np.ones(n)) == sorted_form(e, np.ones(n))
        w = rng.random(n)
        assert _robust_sigma(e, w) == sorted_form(e, w)


def test_identity_stage_pairs_with_every_strided_pixel(monkeypatch):
    """``[shape] point_stride``: the identity fit gets every s-th row and column of the crop's valid points (1: all
    of them, in the order of ``PositionImage.points_mm()`` / the measured surface's mask), from either source."""
    from types import SimpleNamespace

    from facerecon.pipeline import frame
    from facerecon.pipeline.check import check_config
    from facerecon.preprocess import PositionImage

    class Stop(Exception):
        pass

    seen = []

    def fake_fit(points, *a, **k):
        seen.append(points)
        raise Stop

    monkeypatch.setattr(frame, "fit_face", fake_fit)
    rng = np.random.default_rng(9)
    data = rng.normal(size=(3, 12, 12))
    valid = rng.random((12, 12)) > 0.3
    pim = SimpleNamespace(data=data, valid=valid, to_camera=lambda p: p * 2.0 + 1.0)
    pim.points_mm = lambda stride=1: PositionImage.points_mm(pim, stride)  # the real method on the stand-in's arrays
    grid = np.moveaxis(data, 0, -1) * 2.0 + 1.0
    for s in (1, 2, 3):
        me = SimpleNamespace(check_cfg=check_config({"shape": {"point_stride": s}}), model=SimpleNamespace(n_identity=100))
        for surface in (None, SimpleNamespace(points=grid, valid=valid)):
            seen.clear()
            try:
                frame.DepthPipeline.identity(me, SimpleNamespace(position_image=pim), None, np.zeros(155), 6, surface=surface)
            except Stop:
                pass
            assert np.array_equal(seen[0], grid[::s, ::s][valid[::s, ::s]])
