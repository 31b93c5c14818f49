"""The ICT face model: counts, units, frame, landmarks, batching, torch parity."""
from __future__ import annotations

import numpy as np
import pytest

from facerecon.facemodel import ALIGNMENT_LANDMARKS_9, FaceModel


@pytest.fixture(scope="module")
def model() -> FaceModel:
    return FaceModel.load()


def test_counts(model):
    assert model.n_vertices == 26_719
    assert model.n_identity == 100
    assert model.n_arkit_expression == 53
    assert model.n_expression == 55
    assert model.expression_names[-2:] == ["PupilDilate_L", "PupilDilate_R"]
    assert "jawOpen" in model.expression_names and "mouthSmile_L" in model.expression_names
    assert len(model.polygons) == 26_384
    assert model.uv.shape == (28_911, 2)
    assert model.triangles.max() < model.n_vertices and model.triangle_uv.max() < len(model.uv)


def test_units_and_head_frame(model):
    lm = model.landmarks(model.neutral)
    # Millimetres: upstream cm values x10 (eye corners at -/+44.6 mm, formats.md).
    assert lm[36, 0] == pytest.approx(-44.6, abs=0.1)
    assert lm[45, 0] == pytest.approx(44.6, abs=0.1)
    # y down: chin below the eyes; z into the head: nose tip nearest the viewer (most negative z).
    assert lm[8, 1] > lm[36, 1] + 80
    assert lm[30, 2] == pytest.approx(-130.7, abs=0.2)
    face = model.neutral[: 9409]
    assert lm[30, 2] <= face[:, 2].min() + 5.0
    # Face width in mm (x spans about -92..92 mm).
    assert 170 < np.ptp(face[:, 0]) < 200


def test_landmarks_are_on_the_face(model):
    assert (model.landmarks_68 < 9409).all()  # all in the face region
    idx = model.alignment_landmarks
    assert len(idx) == 9 and len(ALIGNMENT_LANDMARKS_9) == 9
    # symmetric pairs mirror in x
    lm = model.landmarks(model.neutral)
    assert lm[39, 0] == pytest.approx(-lm[42, 0], abs=0.5)
    assert lm[48, 0] == pytest.approx(-lm[54, 0], abs=0.5)


def test_identity_mode_magnitudes(model):
    face = slice(0, 9409)
    rms0 = np.sqrt((model.identity_basis[0, face] ** 2).sum(-1).mean())
    rms99 = np.sqrt((model.identity_basis[99, face] ** 2).sum(-1).mean())
    assert rms0 == pytest.approx(3.9, rel=0.1)  # 0.39 cm in formats.md
    assert rms99 == pytest.approx(0.09, rel=0.2)
    jaw = model.expression_basis[model.expression_index("jawOpen")]
    # formats.md says "up to 3.5 cm"; measured on the skin: 4.2 cm at the chin.
    assert 30 < np.linalg.norm(jaw[face], axis=1).max() < 45


def test_vertices_batched_linear_and_subset(model):
    rng = np.random.default_rng(0)
    ident = rng.normal(size=(3, 100)).astype(np.float32)
    expr = rng.uniform(size=(3, 55)).astype(np.float32)
    v = model.vertices(ident, expr)
    assert v.shape == (3, model.n_vertices, 3) and v.dtype == np.float32
    one = model.vertices(ident[1], expr[1])
    np.testing.assert_allclose(v[1], one, atol=1e-3)
    manual = model.neutral + np.tensordot(ident[1], model.identity_basis, 1) + np.tensordot(expr[1], model.expression_basis, 1)
    np.testing.assert_allclose(one, manual, atol=1e-3)
    sub = np.array([0, 5, 100, 20000])
    np.testing.assert_allclose(model.vertices(ident[1], expr[1], subset=sub), one[sub], atol=1e-3)
    # fewer weights than modes = leading modes
    np.testing.assert_allclose(model.vertices(ident[1, :10]), model.vertices(np.r_[ident[1, :10], np.zeros(90)]), atol=1e-4)
    with pytest.raises(ValueError):
        model.vertices(np.zeros(101))


def test_torch_matches_numpy_and_is_differentiable(model):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    ident = torch.tensor(rng.normal(size=(2, 100)), dtype=torch.float32, requires_grad=True)
    expr = torch.tensor(rng.uniform(size=(2, 55)), dtype=torch.float32)
    out = model.vertices_torch(ident, expr)
    np.testing.assert_allclose(out.detach().numpy(), model.vertices(ident.detach().numpy(), expr.numpy()), atol=1e-3)
    out[:, model.landmarks_68].sum().backward()
    assert ident.grad is not None and ident.grad.abs().sum() > 0


def test_regions(model):
    tris = model.region_triangles("face", "head_and_neck", "eyeballs")
    assert 20_000 < len(tris) < len(model.triangles)
    assert model.region_mask("narrow_face").sum() == 6706


def test_uv_raster_disk_cache(model, tmp_path, monkeypatch):
    """The UV raster is kept in $FACERECON_HOME/uv once built: read back the same arrays (values and dtypes);
    a damaged or truncated file is not used (built again and rewritten)."""
    from facerecon.facemodel import uv

    monkeypatch.setenv("FACERECON_HOME", str(tmp_path))
    want = uv._uv_raster(model, 64)
    model.__dict__.get("_uv_cache", {}).pop(("raster", 64), None)
    first = uv.uv_raster(model, 64)
    (f,) = (tmp_path / "uv").glob("uvraster-64-*.bin")
    good = f.read_bytes()
    for data in (None, good[:-1] + bytes([good[-1] ^ 1]), good[: len(good) // 2]):
        if data is not None:
            f.write_bytes(data)
        model.__dict__["_uv_cache"].pop(("raster", 64))
        got = uv.uv_raster(model, 64)
        for name in ("rows", "cols", "triangle", "bary", "mirror"):
            a, b = getattr(got, name), getattr(want, name)
            assert a.dtype == b.dtype and np.array_equal(a, b), name
        assert f.read_bytes() == good
    assert all(np.array_equal(getattr(first, k), getattr(want, k)) for k in ("rows", "cols", "triangle", "bary", "mirror"))


def test_shape_subset_disk_cache(model, tmp_path, monkeypatch):
    """The shape subset's map is kept in $FACERECON_HOME/subset once solved: read back bit for bit; a damaged
    or truncated file is not used (solved again and rewritten); other indices are another file."""
    from facerecon.facemodel.shape_subset import ShapeSubset

    monkeypatch.setenv("FACERECON_HOME", str(tmp_path))
    idx = np.arange(0, 3000, 7)
    first = ShapeSubset.from_indices(model, idx)
    (f,) = (tmp_path / "subset").glob("subset-*.bin")
    good = f.read_bytes()
    for data in (None, good[:-1] + bytes([good[-1] ^ 1]), good[: len(good) // 2]):
        if data is not None:
            f.write_bytes(data)
        got = ShapeSubset.from_indices(model, idx)
        assert got.coeffs_from_subset.dtype == np.float32 and np.array_equal(got.coeffs_from_subset, first.coeffs_from_subset)
        assert np.array_equal(got.vertices, idx) and f.read_bytes() == good
        # the same weights bit for bit (a view into the file's bytes at another alignment rounded otherwise)
        x = np.random.default_rng(0).normal(size=(5, len(idx), 3)).astype(np.float32)
        assert np.array_equal(got.weights_from_offsets(x), first.weights_from_offsets(x))
    other = ShapeSubset.from_indices(model, idx[:-1])
    assert other.coeffs_from_subset.shape == (first.coeffs_from_subset.shape[0], 3 * (len(idx) - 1))
    assert len(list((tmp_path / "subset").glob("subset-*.bin"))) == 2


def test_bases_read_into_one_array_are_the_files_values(model):
    """FaceModel.load reads both bases into one (K, V*3) array (``_flat_bases``, the bases its views): the file's
    values, the concatenation's layout; subsets gathered with np.take equal the fancy-indexed rows."""
    from safetensors.numpy import load_file

    t = load_file(model.meta["cache_path"])
    k = model.n_identity + model.n_expression
    want = np.concatenate([t["identity_basis"], t["expression_basis"]]).reshape(k, -1)
    flat = model.__dict__.get("_flat_bases")
    assert flat is not None and flat.flags.c_contiguous and flat.dtype == np.float32
    assert np.array_equal(flat, want)
    assert np.shares_memory(model.identity_basis, flat) and np.shares_memory(model.expression_basis, flat)
    assert np.array_equal(model.identity_basis, t["identity_basis"]) and np.array_equal(model.expression_basis, t["expression_basis"])
    sub = np.array([5, 3, 9000, 17, 17, 26718])
    neutral, bases = model._subset_bases(sub)
    assert np.array_equal(bases, want.reshape(k, model.n_vertices, 3)[:, sub].reshape(k, -1)) and bases.flags.c_contiguous
    assert np.array_equal(neutral, model.neutral[sub])
