"""The numba float64 vertex normals are numpy's (cross, corner sums, norm) bit for bit."""
import numpy as np

from facerecon.facemodel import vertex_normals


def _numpy_normals(v, tris):
    fn = np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])
    idx = tris.T.reshape(-1)
    w = np.concatenate([fn, fn, fn])
    n = np.stack([np.bincount(idx, w[:, c], minlength=len(v)) for c in range(3)], 1)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def test_float64_normals_match_numpy_bit_for_bit():
    rng = np.random.default_rng(7)
    g = 60
    x, y = np.meshgrid(np.arange(g, dtype=np.float64), np.arange(g, dtype=np.float64))
    v = np.c_[x.ravel(), y.ravel(), 5 * np.sin(x.ravel() / 7) * np.cos(y.ravel() / 5)] + rng.normal(0, 0.05, (g * g, 3))
    v = np.r_[v, [[1e3, 1e3, 1e3]]]  # an unused vertex: a zero normal
    q = (np.arange(g - 1)[:, None] * g + np.arange(g - 1)[None, :]).ravel()
    tris = np.r_[np.c_[q, q + 1, q + g], np.c_[q + 1, q + g + 1, q + g]]
    tris = tris[rng.permutation(len(tris))]
    got = vertex_normals(v, tris)
    assert np.array_equal(got, _numpy_normals(v, tris))
    assert np.all(got[-1] == 0) and np.allclose(np.linalg.norm(got[:-1], axis=1), 1.0)
    # float32 keeps numpy's path
    assert vertex_normals(v.astype(np.float32), tris).dtype == np.float32
