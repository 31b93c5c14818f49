"""Eq. 6 (smooth-L1 pose loss, alpha weighting) and eq. 7 (landmark Chamfer, epsilon)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facerecon.nets import landmark_chamfer_loss, pose_loss, quaternion_to_matrix
from facerecon.geometry.rotations import quat_to_matrix


def test_quaternion_to_matrix_matches_numpy():
    q = torch.randn(10, 4, dtype=torch.float64)
    np.testing.assert_allclose(quaternion_to_matrix(q).numpy(), quat_to_matrix(q.numpy()), atol=1e-12)


def test_pose_loss_weighting():
    one = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    zero_t = torch.zeros(1, 3)
    assert pose_loss(one, zero_t, one, zero_t).item() == 0.0
    # quaternion error 0.01 in one component -> alpha * 0.01 = 3.5 > beta: L1 branch 3.5 - 0.5
    dq = torch.tensor([[1.0, 0.01, 0.0, 0.0]])
    assert pose_loss(dq, zero_t, one, zero_t).item() == pytest.approx(350 * 0.01 - 0.5, rel=1e-5)
    # small quaternion error: quadratic branch 0.5 * (alpha * e)^2
    dq = torch.tensor([[1.0, 0.001, 0.0, 0.0]])
    assert pose_loss(dq, zero_t, one, zero_t).item() == pytest.approx(0.5 * 0.35**2, rel=1e-4)
    assert pose_loss(dq, zero_t, one, zero_t, alpha=1.0).item() == pytest.approx(0.5 * 0.001**2, rel=1e-4)
    # translation in position units, compared in mm (x 100): 0.05 -> 5 mm -> 4.5
    dt = torch.tensor([[0.05, 0.0, 0.0]])
    assert pose_loss(one, dt, one, zero_t).item() == pytest.approx(4.5, rel=1e-5)
    # sum over components, mean over the batch
    b = pose_loss(torch.cat([one, one]), torch.cat([dt, 2 * dt]), torch.cat([one, one]), torch.cat([zero_t, zero_t]))
    assert b.item() == pytest.approx((4.5 + 9.5) / 2, rel=1e-5)


def test_pose_loss_label_sign_canonicalised():
    q = torch.tensor([[0.9, 0.1, -0.3, 0.2]])
    q = q / q.norm()
    t = torch.zeros(1, 3)
    assert pose_loss(q, t, -q, t).item() == pytest.approx(0.0, abs=1e-9)  # label flipped to w >= 0
    assert pose_loss(q, t, -q, t, canonicalize_labels=False).item() > 100
    assert pose_loss(-q, t, q, t, sign_invariant=True).item() == pytest.approx(0.0, abs=1e-9)


def test_chamfer_hand_made_case_and_epsilon():
    # identity pose, head origin at the crop centre; landmarks 10 mm and 40 mm from the nearest points
    q = torch.tensor([[1.0, 0.0, 0.0, 0.0]], requires_grad=True)
    t = torch.zeros(1, 3, requires_grad=True)
    lm = torch.tensor([[0.0, 0.0, 0.0], [100.0, 0.0, 0.0], [0.0, 200.0, 0.0]])  # mm, head frame
    pts = torch.tensor([[[0.0, 0.0, 0.1], [1.0, 0.4, 0.0], [5.0, 5.0, 5.0]]])  # position units (x 100 mm)
    loss, keep = landmark_chamfer_loss(q, t, lm, pts, return_matches=True)
    # lm0 -> (0,0,10 mm): 100 mm^2; lm1 -> (100, 40, 0): 40 mm > 30 -> excluded; lm2 -> 161 mm away -> excluded
    assert keep.tolist() == [[True, False, False]]
    assert loss.item() == pytest.approx(100.0, rel=1e-5)
    # epsilon is a distance: at eps = 40.001 mm the 40 mm pair (1600 mm^2) counts
    loss2 = landmark_chamfer_loss(q, t, lm, pts, eps_mm=40.001)
    assert loss2.item() == pytest.approx(100.0 + 1600.0, rel=1e-5)
    assert landmark_chamfer_loss(q, t, lm, pts, eps_mm=40.001, reduction="mean").item() == pytest.approx(850.0, rel=1e-5)
    # gradient w.r.t. the translation pulls lm0 towards its point (+z): dL/dt_z = -2 * 10 mm * 100 mm/unit
    loss.backward()
    assert t.grad[0, 2].item() == pytest.approx(-2000.0, rel=1e-4)
    assert t.grad[0, 0].item() == pytest.approx(0.0, abs=1e-6)


def test_chamfer_on_position_image_layout_with_invalid_pixels():
    q = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    t = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.05]])  # second sample: head 5 mm further away
    img = torch.zeros(2, 3, 4, 4)
    img[:, :, 1, 1] = torch.tensor([0.0, 0.0, 0.0])  # a valid point at the centre
    img[:, :, 2, 2] = torch.tensor([0.01, 0.0, 0.0])
    valid = torch.zeros(2, 4, 4, dtype=torch.bool)
    valid[:, 1, 1] = True
    valid[:, 2, 2] = True
    lm = torch.tensor([[0.0, 0.0, 0.0]])
    loss = landmark_chamfer_loss(q, t, lm, img, valid)
    assert loss.item() == pytest.approx((0.0 + 25.0) / 2, rel=1e-5)  # invalid zero pixels ignored
    # rotation gradient flows (landmark off the rotation axis)
    qr = torch.tensor([[0.99, 0.0, 0.1, 0.0]], requires_grad=True)
    lm2 = torch.tensor([[0.0, 0.0, -100.0]])
    pts = torch.tensor([[[0.0, 0.0, -1.0]]])
    landmark_chamfer_loss(qr, torch.zeros(1, 3), lm2, pts).backward()
    assert torch.isfinite(qr.grad).all() and qr.grad.abs().sum() > 0
