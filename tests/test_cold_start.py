"""What a process's first frame builds, made cheaper (docs/speed.md "Cold start, round 7"): the same arrays as the
straightforward constructions they replace, and the disk-cached correction geometry equal to a fresh build."""
from __future__ import annotations

import numpy as np
import pytest

from facerecon.facemodel import FaceModel


@pytest.fixture(scope="module")
def model(ict_archive) -> FaceModel:
    return FaceModel.load()


def test_mode_bases_are_the_modes_rows_at_the_subset(model):
    """``mode_bases`` gathers runs of consecutive modes straight from the bases: the same (len(modes), 3 S) array as
    taking the modes' whole rows first, for runs, repeats, out-of-order and negative indices."""
    k = model.n_identity + model.n_expression
    rows = model._flat_bases.reshape(k, model.n_vertices, 3)
    sub = np.sort(np.random.default_rng(0).choice(model.n_vertices, 500, replace=False))
    for modes in (np.r_[np.arange(40), model.n_identity + np.arange(20)], np.arange(k), np.array([3, 1, 2, 2, -1, 7]),
                  np.array([-2, -1, 0, 1]), np.array([k - 1]), np.arange(5, 9)):
        got = model.mode_bases(modes, sub)
        want = np.take(rows[modes], sub, axis=1).reshape(len(modes), -1)
        assert got.dtype == want.dtype and got.flags.c_contiguous and np.array_equal(got, want)
    with pytest.raises(IndexError):
        model.mode_bases(np.array([k - 1, k]), sub)


def test_detail_texels_are_the_corner_test(model):
    """The detail maps' texels (the region test per triangle, positions from a table) are the texels whose three
    corners lie in the region, with their face-triangle positions found by a search."""
    from facerecon.facemodel.uv import face_triangles, uv_raster
    from facerecon.fitting.detail import _texels

    model.__dict__.pop("_uv_cache", None)
    for size, region in ((64, "face"), (64, "narrow_face"), (128, "narrow_face"), (64, "head_and_neck")):
        ras = uv_raster(model, size)
        ftris = face_triangles(model)
        corners = np.asarray(model.triangles)[ras.triangle]
        keep = model.region_mask(region)[corners].all(1)
        ti = np.searchsorted(ftris, ras.triangle[keep])
        want = (ras.rows[keep], ras.cols[keep], corners[keep], ras.bary[keep], ti, np.asarray(model.triangle_uv)[ftris][ti])
        got = _texels(model, size, region)
        for g, w in zip(got, want):
            assert g.flags.c_contiguous and np.array_equal(g, w)
        assert [g.dtype for g in got] == [np.int32] * 3 + [want[3].dtype] + [np.int32] * 2


def _geometry_arrays(geo) -> list:
    out = []
    for name in ("tri_verts", "tris_local", "idx", "idx_in_tri", "free", "n_free"):
        a = np.asarray(getattr(geo, name))
        out.append((name, a.dtype.str, a.shape, a.tobytes()))
    for name in ("bilaplacian", "membrane", "free_adjacency"):
        m = getattr(geo, name)
        out.append((name, type(m).__name__, m.shape, m.has_sorted_indices))
        for a in (m.data, m.indices, m.indptr):
            assert a.flags.writeable and a.flags.aligned  # copies, as built (numba types read-only / unaligned apart)
            out.append((name, a.dtype.str, a.shape, a.tobytes()))
    return out


def test_region_geometry_disk_cache(model, tmp_path, monkeypatch):
    """The correction's region geometry is kept in $FACERECON_HOME/correction once built: read back equal to a
    fresh build (arrays, index dtypes, matrices); a damaged or truncated file is not used (built and rewritten);
    another region is another file; the unique edges by key are np.unique(axis=0)'s."""
    from facerecon.fitting import correction as C

    monkeypatch.setenv("FACERECON_HOME", str(tmp_path))
    fresh = _geometry_arrays(C._RegionGeometry(model, "narrow_face"))
    C._geometry_from_disk(model, "narrow_face")
    (f,) = (tmp_path / "correction").glob("region-*.bin")
    good = f.read_bytes()
    for data in (None, good[:-1] + bytes([good[-1] ^ 1]), good[: len(good) // 2]):
        if data is not None:
            f.write_bytes(data)
        assert _geometry_arrays(C._geometry_from_disk(model, "narrow_face")) == fresh
        assert f.read_bytes() == good
    C._geometry_from_disk(model, "head_and_neck")
    assert len(list((tmp_path / "correction").glob("region-*.bin"))) == 2


def test_unique_pairs_are_numpys_rowwise_unique():
    from facerecon.fitting.correction import _unique_pairs

    rng = np.random.default_rng(1)
    for dtype, n, m in ((np.int32, 26719, 5000), (np.int64, 50, 400), (np.int32, 3, 20), (np.int64, 10, 0)):
        e = np.sort(rng.integers(0, n, size=(m, 2)), axis=1).astype(dtype)
        want = np.unique(e, axis=0)
        got = _unique_pairs(e, n)
        assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want)


def test_obj_face_block_disk_cache(model, tmp_path):
    """``write_mesh(..., cache_dir=)`` keeps the OBJ face block of a model's polygons between processes: the OBJ
    bytes are those written without it (built, then read back in a fresh topology); a damaged or truncated file
    is not used (built again and rewritten); other faces are another file."""
    from facerecon.export import _obj_materials
    from facerecon.io import mesh

    v = model.neutral.astype(np.float64)
    mats = _obj_materials(model)
    polys, puv = np.array(model.polygons), np.array(model.polygon_uv)  # own arrays: a topology of their own

    def obj(name, cache, faces=polys):
        mesh._TOPOLOGIES.clear()  # as a fresh process
        mesh.write_mesh(tmp_path / name, v, faces, model.uv if faces is polys else None, puv if faces is polys else None, header="t",
                        mtllib="face.mtl", materials=mats if faces is polys else None, cache_dir=cache)
        return (tmp_path / name).read_bytes()

    want = obj("plain.obj", None)
    cache = tmp_path / "cache"
    assert obj("first.obj", cache) == want
    (f,) = cache.glob("objfaces-*.bin")
    good = f.read_bytes()
    for data in (None, good[:-1] + bytes([good[-1] ^ 1]), good[: len(good) // 2]):
        if data is not None:
            f.write_bytes(data)
        assert obj("again.obj", cache) == want
        assert f.read_bytes() == good
    tri = np.array(model.triangles[:100])
    assert obj("tri.obj", cache, tri) == obj("tri_plain.obj", None, tri)
    assert len(list(cache.glob("objfaces-*.bin"))) == 2


def test_csr_pieces_are_scipys():
    """The frame path's sparse pieces without scipy.sparse (round 8) give scipy's arrays and products bit for bit:
    ``incidence_csr`` (COO -> CSR, repeated pairs summed), ``Csr @`` (a vector and the columns of a 2-D array),
    ``diagonal``, and the correction's ``scale x B + diag x I`` (sorted, zeros dropped, missing diagonal entries added)."""
    import scipy.sparse as sp

    from facerecon.facemodel.model import Csr, incidence_csr
    from facerecon.fitting.correction import _scaled_plus_diagonal

    def same(got, want):
        return all(np.array_equal(getattr(got, a), getattr(want, a)) and getattr(got, a).dtype == getattr(want, a).dtype
                   for a in ("indptr", "indices", "data")) and tuple(got.shape) == tuple(want.shape)

    rng = np.random.default_rng(5)
    for t in range(6):
        r, c = rng.integers(0, 40, 300), rng.integers(0, 60, 300)
        if t % 2:  # unique pairs, shuffled
            u = rng.permutation(np.unique(r * 100 + c))
            r, c = u // 100, u % 100
        assert same(incidence_csr(r, c, (45, 60)), sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(45, 60)))
    for t in range(4):
        a = sp.random(200, 200, density=0.06, random_state=t, format="csr")
        a = (a + a.T).tocsr() if t % 2 else a  # unsorted indices from the sum
        if t == 3:
            a.data[::7] = 0.0  # explicit zeros stay in the product, drop out of the sum
        base = Csr(a.indptr, a.indices, a.data, a.shape)
        x, xs = rng.normal(size=200), rng.normal(size=(200, 3))
        assert np.array_equal(base @ x, a @ x) and np.array_equal(base @ xs, a @ xs)
        assert np.array_equal(base.diagonal(), a.diagonal())
        for scale, diag in ((4.0, 0.05), (1.0, 0.0), (0.37, 1e-3)):
            want = (scale * a + diag * sp.eye(200, format="csr")).tocsr()
            want.sum_duplicates()
            want.sort_indices()
            got = _scaled_plus_diagonal(base, scale, diag)
            assert same(got, want) and got.has_sorted_indices


def test_correction_and_check_do_not_import_scipy_sparse(model, tmp_path):
    """A process that reads the correction's region geometry from disk, builds the check's region and corrects a surface
    does not import scipy.sparse (round 8; the geometry's first build does, once per model and region)."""
    import json
    import os
    import subprocess
    import sys

    script = (
        "import json, sys\nimport numpy as np\n"
        "from facerecon.facemodel import FaceModel\nfrom facerecon.fitting import correction as C\n"
        "from facerecon.geometry.pose import HeadPose\nfrom facerecon.pipeline.check import FaceRegion\n"
        "m = FaceModel.load()\nreg = FaceRegion(m)\nv = m.vertices().astype(np.float64)\n"
        "reg.sample_with_normals(v)\nreg.landmark_normals(v)\n"
        "pose = HeadPose(np.eye(3), np.array([0.0, 0.0, 600.0]))\n"
        "pts = pose.apply(v[C.region_geometry(m, 'face').idx]) + np.random.default_rng(0).normal(0, 0.3, (1, 3))\n"
        "res = C.correct_surface(pts, v, pose, m)\n"
        "print(json.dumps({'status': res.status, 'sparse': sorted(k for k in sys.modules if k.startswith('scipy.sparse'))}))\n")
    env = dict(os.environ, FACERECON_HOME=str(tmp_path))
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env, check=False)
    assert first.returncode == 0, first.stderr[-2000:]
    assert json.loads(first.stdout.splitlines()[-1])["sparse"]  # built: scipy's constructions, then kept on disk
    again = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env, check=False)
    assert again.returncode == 0, again.stderr[-2000:]
    got = json.loads(again.stdout.splitlines()[-1])
    assert got["sparse"] == [] and got["status"] == "on", got
