"""BoundedNeighbours answers what cKDTree.query(..., distance_upper_bound=r) answers."""
import numpy as np
import pytest
from scipy.spatial import cKDTree

from facerecon.geometry.neighbours import BoundedNeighbours


@pytest.mark.parametrize("seed", [0, 1])
def test_same_pairs_as_the_kd_tree(seed):
    rng = np.random.default_rng(seed)
    # a surface-like cloud (a bumpy sheet) and a volumetric one, with exact ties (rounded coordinates)
    uv = rng.uniform(-80, 80, size=(6000, 2))
    sheet = np.c_[uv, 600 + 20 * np.sin(uv[:, 0] / 30) + rng.normal(0, 0.5, 6000)]
    blob = np.round(rng.normal(size=(4000, 3)) * [60, 60, 30] + [0, 0, 600], 0)
    for pts in (sheet, blob):
        q = np.r_[pts[rng.integers(0, len(pts), 2000)] + rng.normal(size=(2000, 3)) * 4,
                  rng.uniform(-200, 200, size=(200, 3)) + [0, 0, 600]]
        grid, tree = BoundedNeighbours(pts, 10.0), cKDTree(pts)
        for r in (10.0, 6.3, 1.0):
            d0, j0 = tree.query(q, distance_upper_bound=r)
            d1, j1 = grid.query(q, r)
            far = ~np.isfinite(d0)
            assert np.array_equal(d0[~far], d1[~far])
            # the same point (the rounded cloud has duplicates: either copy is the KD-tree's answer)
            assert np.array_equal(pts[j0[~far]], pts[j1[~far]])
            assert (~np.isfinite(d1[far])).all() and (j1[far] == len(pts)).all()


def test_beyond_the_bound_and_empty():
    grid = BoundedNeighbours(np.zeros((0, 3)), 5.0)
    d, j = grid.query(np.ones((3, 3)), 5.0)
    assert np.isinf(d).all() and (j == 0).all()
    d, j = BoundedNeighbours(np.zeros((2, 3)), 5.0).query(np.array([[np.nan, 0, 0], [0, 0, 1.0]]), 5.0)
    assert np.isinf(d[0]) and j[0] == 2 and d[1] == 1.0 and j[1] == 0
    with pytest.raises(ValueError, match="beyond"):
        BoundedNeighbours(np.ones((4, 3)), 5.0).query(np.ones((1, 3)), 6.0)


def test_wide_cloud_gets_larger_cubes():
    rng = np.random.default_rng(3)
    pts = rng.uniform(-1e5, 1e5, size=(3000, 3))
    grid = BoundedNeighbours(pts, 1.0)
    assert grid.cell > 1.0 and np.prod(grid.dims) <= 1 << 21
    q = pts[:50] + 0.1
    assert np.array_equal(grid.query(q, 1.0)[1], cKDTree(pts).query(q, distance_upper_bound=1.0)[1])
