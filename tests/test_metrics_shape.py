"""Shape metrics: alignment, ICP, both-way surface distances, eq. 8 Chamfer, NoW-style error."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

from facerecon.metrics import (
    NINE_LANDMARKS_68,
    chamfer_eq8,
    compare_meshes,
    point_to_surface,
    scan_to_mesh_error,
)
from facerecon.geometry.transforms import fit_similarity
from facerecon.geometry.rotations import euler_to_matrix, random_rotation


def _blob(subdiv: int = 4) -> trimesh.Trimesh:
    """A closed, asymmetric surface (ellipsoid with bumps), mm: no symmetry for ICP to slide along."""
    m = trimesh.creation.icosphere(subdivisions=subdiv, radius=1.0)
    v = m.vertices
    r = 1.0 + 0.08 * np.sin(3 * v[:, 0] + 1) * np.cos(2 * v[:, 1]) + 0.05 * v[:, 2] ** 3
    return trimesh.Trimesh(v * r[:, None] * np.array([70.0, 90.0, 60.0]), m.faces, process=False)


LM = np.array([5, 17, 101, 230, 388, 512, 777, 1024, 1500])  # 9 vertex indices as landmarks


def _rigid(v, rng):
    r = random_rotation(rng, 1)[0]
    t = rng.normal(size=3) * 50 + np.array([0, 0, 800.0])
    return v @ r.T + t


def test_identical_meshes_zero():
    m = _blob()
    e = compare_meshes(m.vertices, m.faces, m.vertices, m.faces, LM, LM)
    for s in (e.pred_to_gt, e.gt_to_pred):
        assert s.max < 1e-9 and s.n == len(m.vertices)
    assert e.chamfer.value_mm2 < 1e-18 and e.chamfer.n_flying == 0
    assert e.landmark_rmse_mm < 1e-9
    assert set(e.to_dict()) >= {"pred_to_gt_mm", "chamfer_eq8_mm2", "symmetric_mean_mm"}


@pytest.mark.parametrize("icp", [False, True])
def test_rotated_translated_copy_zero_after_alignment(icp):
    m = _blob()
    pv = _rigid(m.vertices, np.random.default_rng(0))
    e = compare_meshes(pv, m.faces, m.vertices, m.faces, LM, LM, icp=icp)
    assert e.pred_to_gt.max < 1e-6 and e.gt_to_pred.max < 1e-6
    assert e.transform.scale == 1.0
    np.testing.assert_allclose(e.transform.apply(pv), m.vertices, atol=1e-6)
    # Landmarks as coordinates (L, 3) instead of indices give the same result.
    e2 = compare_meshes(pv, m.faces, m.vertices, m.faces, pv[LM], m.vertices[LM], icp=icp)
    assert e2.pred_to_gt.max < 1e-6


@pytest.mark.parametrize("mode", ["point_to_plane", "point_to_point"])
def test_icp_recovers_from_noisy_landmarks(mode):
    rng = np.random.default_rng(1)
    m = _blob()
    pv = _rigid(m.vertices, rng)
    noisy_gt_lm = m.vertices[LM] + rng.normal(scale=2.0, size=(len(LM), 3))
    before = compare_meshes(pv, m.faces, m.vertices, m.faces, LM, noisy_gt_lm)
    after = compare_meshes(pv, m.faces, m.vertices, m.faces, LM, noisy_gt_lm, icp=True, icp_mode=mode)
    assert before.pred_to_gt.mean > 0.1
    if mode == "point_to_plane":
        assert after.pred_to_gt.mean < 1e-6 and after.gt_to_pred.mean < 1e-6
    else:  # point-to-point slides along smooth surfaces slowly (linear convergence)
        assert after.pred_to_gt.mean < 0.5 * before.pred_to_gt.mean
    assert after.icp is not None and after.icp.iterations >= 1


def test_sphere_one_mm_apart():
    """GT sphere r, prediction sphere r + 1 (same topology, landmarks = same vertices)."""
    r = 100.0
    gt = trimesh.creation.icosphere(subdivisions=5, radius=r)
    pv = gt.vertices * ((r + 1) / r)
    lm = np.arange(len(pv))  # all vertices: centred on both spheres, so the fit is the identity
    e = compare_meshes(pv, gt.faces, gt.vertices, gt.faces, lm, lm, chamfer_eps=4.0)
    np.testing.assert_allclose(e.transform.matrix(), np.eye(4), atol=1e-9)
    assert e.pred_distances.min() >= 1.0 - 1e-9 and e.gt_distances.max() <= 1.0 + 1e-9
    assert e.pred_to_gt.mean == pytest.approx(1.0, abs=0.02)
    assert e.gt_to_pred.mean == pytest.approx(1.0, abs=0.02)
    # Vertex-to-vertex: every vertex's nearest neighbour is its own copy, exactly 1 mm away.
    assert e.chamfer.value_mm2 == pytest.approx(1.0, abs=1e-9)
    e_tight = compare_meshes(pv, gt.faces, gt.vertices, gt.faces, lm, lm, chamfer_eps=0.5)
    assert e_tight.chamfer.n_valid == 0 and e_tight.chamfer.n_flying == 2 * len(pv)


def test_topology_change_leaves_surface_error_unchanged():
    """Midpoint subdivision keeps the surface, so distances TO it do not change at all."""
    rng = np.random.default_rng(2)
    gt = _blob()
    pred = trimesh.Trimesh(gt.vertices + gt.vertex_normals * 1.0 + rng.normal(scale=0.3, size=gt.vertices.shape), gt.faces, process=False)
    base = compare_meshes(pred.vertices, pred.faces, gt.vertices, gt.faces, LM, LM)
    gv2, gf2 = trimesh.remesh.subdivide(gt.vertices, gt.faces)
    e_gt = compare_meshes(pred.vertices, pred.faces, gv2, gf2, LM, LM)  # LM indices survive subdivision
    np.testing.assert_allclose(e_gt.pred_distances, base.pred_distances, atol=1e-9)
    pv2, pf2 = trimesh.remesh.subdivide(pred.vertices, pred.faces)
    e_pr = compare_meshes(pv2, pf2, gt.vertices, gt.faces, LM, LM)
    np.testing.assert_allclose(e_pr.gt_distances, base.gt_distances, atol=1e-9)
    # Summary numbers move only by the (small) change in which points are sampled.
    assert e_gt.gt_to_pred.mean == pytest.approx(base.gt_to_pred.mean, rel=0.1)
    assert e_pr.pred_to_gt.mean == pytest.approx(base.pred_to_gt.mean, rel=0.1)


def test_region_mask_on_gt_transfers_to_prediction():
    gt = _blob()
    pred_v = _rigid(gt.vertices, np.random.default_rng(3))
    mask = gt.vertices[:, 2] > 20  # a "face" cap
    e = compare_meshes(pred_v, gt.faces, gt.vertices, gt.faces, LM, LM, gt_mask=mask)
    assert e.gt_region.sum() == mask.sum()
    # The transferred region is the cap minus its boundary ring, never outside the cap.
    assert e.pred_region.sum() <= mask.sum() and not (e.pred_region & ~mask).any()
    assert e.pred_region.sum() > 0.8 * mask.sum()
    assert e.pred_to_gt.max < 1e-6 and e.gt_to_pred.max < 1e-6
    # Index-list masks are accepted too, and a mask on the prediction works symmetrically.
    e2 = compare_meshes(pred_v, gt.faces, gt.vertices, gt.faces, LM, LM, pred_mask=np.flatnonzero(mask))
    assert e2.pred_region.sum() == mask.sum() and e2.gt_region.sum() <= mask.sum()


def test_chamfer_eq8_known_values():
    pred = np.array([[0.0, 0, 0], [10.0, 0, 0]])
    gt = np.array([[1.0, 0, 0]])
    c = chamfer_eq8(pred, gt, eps_mm2=100.0)
    assert c.value_mm2 == pytest.approx((1 + 1 + 81) / 3) and c.n_valid == 3 and c.n_flying == 0
    c = chamfer_eq8(pred, gt, eps_mm2=50.0)  # the far predicted vertex (81 mm^2) is flying
    assert c.value_mm2 == pytest.approx(1.0) and c.n_valid == 2 and c.n_flying == 1


def test_fit_similarity_recovers_scale_and_pose():
    rng = np.random.default_rng(4)
    src = rng.normal(size=(9, 3)) * 40
    r = euler_to_matrix(30, -20, 10)
    dst = 1.1 * src @ r.T + np.array([1.0, 2.0, 3.0])
    xf = fit_similarity(src, dst, scale=True)
    assert xf.scale == pytest.approx(1.1)
    np.testing.assert_allclose(xf.apply(src), dst, atol=1e-9)
    np.testing.assert_allclose(xf.inverse().apply(dst), src, atol=1e-9)
    assert fit_similarity(src, dst).scale == 1.0  # scale off by default


def test_scan_to_mesh_now_style():
    rng = np.random.default_rng(5)
    gt = _blob(subdiv=5)
    scan = trimesh.sample.sample_surface(gt, 20000, seed=0)[0]
    lm_idx = np.array(NINE_LANDMARKS_68) * 20  # any 9 vertices
    pred_v = _rigid(gt.vertices, rng)
    res = scan_to_mesh_error(scan, pred_v, gt.faces, lm_idx, gt.vertices[lm_idx] + rng.normal(scale=1.5, size=(9, 3)))
    assert res.stats.n == len(scan)
    assert res.stats.median < 1e-6 and res.stats.mean < 1e-6
    # Without ICP the noisy landmarks leave an error; the transform maps prediction -> scan.
    res0 = scan_to_mesh_error(scan, pred_v, gt.faces, lm_idx, gt.vertices[lm_idx] + rng.normal(scale=1.5, size=(9, 3)), icp=False)
    assert res0.stats.mean > 0.1
    d = point_to_surface(scan, res.transform.apply(pred_v), gt.faces).distances
    assert d.max() < 1e-5
