"""The faster forms of the classical stages give the same numbers, bit for bit, as the forms they replace
(``benchmarks/snapshot.py compare`` checks the whole pipeline on real frames; these check the pieces)."""
from __future__ import annotations

import numpy as np

from facerecon.facemodel import vertex_normals
from facerecon.fitting.gauss_newton import _basis_rows


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


def test_basis_rows_are_the_strided_sum():
    rng = np.random.default_rng(1)
    b = rng.normal(size=(40, 300, 3))
    index = np.sort(rng.choice(300, 200, replace=False))
    nh = rng.normal(size=(200, 3))
    xyz = tuple(np.ascontiguousarray(b[..., c].T) for c in range(3))
    assert np.array_equal(_basis_rows(xyz, index, nh), (b[:, index] * nh[None]).sum(-1).T)


def test_remembered_grid_normals_are_the_computed_ones_and_checked_face_the_array():
    from facerecon.facemodel import FaceModel

    from facerecon.evaluate.hostile import _generator, head_frame
    from facerecon.geometry.pose import HeadPose
    from facerecon.pipeline.check import CheckedFace, FaceRegion, MeasuredSurface, check_config, surface_check
    from facerecon.pipeline.frame import locate

    model = FaceModel.load()
    pim = locate(head_frame(_generator("biwi", "kinect-v1", 0, model), 0)).position_image
    s = pim.size
    rng = np.random.default_rng(2)
    surf = MeasuredSurface.from_position_image(pim)
    for _ in range(5):
        v, u = rng.integers(-2, s + 2, 300), rng.integers(-2, s + 2, 300)
        n0, ok0 = surf._normals_of(v, u)
        n1, ok1 = surf.normals_at(v, u)
        assert np.array_equal(ok0, ok1) and np.array_equal(n0[ok0], n1[ok1])
    region = FaceRegion(model)
    v_head = model.reference_vertices.astype(np.float64)
    pose = HeadPose(np.eye(3), np.asarray(pim.center_mm, np.float64))
    cfg = check_config()
    assert surface_check(v_head, pose, region, surf, cfg) == surface_check(CheckedFace.of(v_head, region), pose, region, surf, cfg)


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
        for n in (1, 4096, 6707, 9409, m.n_vertices):
            assert np.array_equal(m.vertices(ident, expr, leading=n), whole[:n])
    # one face's mesh in blocks is the product in one call up to float32 rounding (with one BLAS thread: the same bits)
    w = np.r_[ident, expr].astype(np.float32)
    assert np.allclose(whole, (w @ m._flat_bases).reshape(-1, 3) + m.neutral, rtol=0, atol=1e-3)
