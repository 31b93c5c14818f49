"""The one rigid ICP loop (facerecon.geometry.icp.rigid_icp) on a synthetic cloud: it undoes a known motion
with either step, the outlier rule and the stop rules do what they say, too few pairs stop it."""
from __future__ import annotations

import numpy as np
import pytest

from facerecon.geometry.icp import NearestNeighbours, Rejection, rigid_icp
from facerecon.geometry.rotations import euler_to_matrix, geodesic_distance_deg
from facerecon.geometry.transforms import SimilarityTransform


def _blob(n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """Points and outward normals of a bumpy ellipsoid (mm): no symmetry for ICP to slide along."""
    rng = np.random.default_rng(0)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    r = 1.0 + 0.15 * np.sin(3 * d[:, 0]) * np.cos(2 * d[:, 1]) + 0.1 * d[:, 2] ** 3
    p = d * r[:, None] * np.array([80.0, 100.0, 60.0])
    n = p / np.array([80.0, 100.0, 60.0]) ** 2  # the ellipsoid's normals: near enough the bumpy surface's
    return p, n / np.linalg.norm(n, axis=1, keepdims=True)


@pytest.mark.parametrize("metric", ["point_to_plane", "point_to_point"])
def test_rigid_icp_undoes_a_known_motion(metric):
    pts, nrm = _blob()
    target = NearestNeighbours(pts, nrm)
    src = pts[::3]
    motion = SimilarityTransform(euler_to_matrix(4.0, -3.0, 2.0), np.array([3.0, -2.0, 4.0]))
    res = rigid_icp(src, target, init=motion, iterations=100, metric=metric, reject=Rejection(3.0, floor=1.0),
                    tol_move_mm=1e-6)
    assert res.converged and res.n_inliers == len(src) and len(res.history) == res.iterations
    assert geodesic_distance_deg(res.transform.R, np.eye(3)) < 1e-3 and np.abs(res.transform.t).max() < 1e-2
    assert res.rms_mm < 1e-3 and res.starved is None


def test_rigid_icp_gates_rejects_and_starves():
    pts, nrm = _blob()
    target = NearestNeighbours(pts, nrm)
    src = np.r_[pts[::3], pts[:50] + 40.0]  # 50 points with no counterpart
    res = rigid_icp(src, target, iterations=3, reject=Rejection(3.0, floor=0.0))
    assert res.n_inliers == 1000  # the exact pairs (distance 0): the median rule keeps only those
    starved = rigid_icp(src, target, iterations=5, max_distance=np.geomspace(1.0, 1e-9, 5), min_pairs=1001)
    assert starved.starved is not None and starved.starved < 1001 and not starved.converged
    with pytest.raises(ValueError, match="point_to_plane"):
        rigid_icp(src, target, metric="plane")
