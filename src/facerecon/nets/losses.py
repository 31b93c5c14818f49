"""Losses of DAPoseNet (seed 002, eqs. 6 and 7), batched torch, differentiable in the pose.

Eq. 6 -- supervised pose loss on synthetic frames
    ``L = E[ smoothL1( (P(x) - [q; t]) o [alpha; 1] ) ]``, alpha = 350.
    Here: per sample the sum over the 7 components of smooth-L1 (``beta`` = 1) of
    ``alpha * (q - q_label)`` and ``t_unit_mm * (t - t_label)``, averaged over the batch.
    Translations are compared **in millimetres** (``t`` in position units times
    ``t_unit_mm`` = 100): alpha = 350 balances a unit quaternion against a translation in
    mm -- 1 degree of rotation changes q by ~0.0087, x 350 ~ 3, the weight of a 3 mm
    translation error.  Quaternion sign: q and -q are the same rotation; the labels are
    canonicalised to ``w >= 0`` (``canonicalize_labels``) and the network learns that
    hemisphere (head rotations stay below ~120 degrees from frontal, where w > 0.5).
    ``sign_invariant=True`` uses ``min(|q - q_l|, |q + q_l|)`` instead (not in the paper).

Eq. 7 -- self-supervised landmark Chamfer loss on real frames
    ``L = sum_i min_{v in V_t} || v - Phi(v_i) ||^2`` over the m reference-face landmarks
    ``v_i`` (head frame, mm) moved by the predicted pose ``Phi(v) = R v + t``, ``V_t`` the
    valid points of the frame's position image.  The paper excludes pairs whose squared
    distance is "> epsilon" with epsilon = 30 mm; we read epsilon as a **distance**:
    pairs farther than ``eps_mm`` = 30 mm (squared distance > 900 mm^2) are excluded.
    Distances are in mm (position units times ``scale_mm``).  The nearest point is found
    without gradient; the loss is differentiable in the pose through ``Phi(v_i)`` (the
    gradient of min_v ||v - p||^2 w.r.t. p at the chosen v, i.e. the same as through
    the min).  Reduction ``"sum"`` (the paper): per-sample sum over the matched
    landmarks, averaged over the batch; ``"mean"``: mean over all matched pairs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .pose import canonicalize_quaternion, normalize_quaternion, quaternion_to_matrix

ALPHA = 350.0  # paper: weight of the quaternion in eq. 6
EPS_MM = 30.0  # paper: threshold of eq. 7 (read as a distance)


def pose_loss(
    pred_quat: torch.Tensor,
    pred_trans: torch.Tensor,
    label_quat: torch.Tensor,
    label_trans: torch.Tensor,
    *,
    alpha: float = ALPHA,
    t_unit_mm: float = 100.0,
    beta: float = 1.0,
    canonicalize_labels: bool = True,
    sign_invariant: bool = False,
) -> torch.Tensor:
    """Eq. 6 (see module doc): scalar loss.  Shapes (B, 4), (B, 3), (B, 4), (B, 3).

    ``pred_trans`` / ``label_trans`` in position units (offset from the crop centre);
    ``t_unit_mm`` converts them to mm inside the loss (the scale alpha was chosen for).
    """
    lq = normalize_quaternion(label_quat)
    if canonicalize_labels:
        lq = canonicalize_quaternion(lq)
    zq = torch.zeros_like(pred_quat)
    q_term = F.smooth_l1_loss(alpha * (pred_quat - lq), zq, beta=beta, reduction="none").sum(-1)
    if sign_invariant:
        q_neg = F.smooth_l1_loss(alpha * (pred_quat + lq), zq, beta=beta, reduction="none").sum(-1)
        q_term = torch.minimum(q_term, q_neg)
    t_term = F.smooth_l1_loss(
        t_unit_mm * (pred_trans - label_trans), torch.zeros_like(pred_trans), beta=beta, reduction="none"
    ).sum(-1)
    return (q_term + t_term).mean()


def _as_point_batch(points: torch.Tensor, valid: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, H, W) position images or (B, N, 3) points -> (B, N, 3), (B, N) bool."""
    if points.dim() == 4:
        b = points.shape[0]
        pts = points.reshape(b, 3, -1).transpose(1, 2)
        if valid is None:
            valid = (points != 0).any(1)
        return pts, valid.reshape(b, -1).bool()
    if valid is None:
        valid = torch.ones(points.shape[:2], dtype=torch.bool, device=points.device)
    return points, valid.bool()


def landmark_chamfer_loss(
    pred_quat: torch.Tensor,
    pred_trans: torch.Tensor,
    landmarks_mm: torch.Tensor,
    points: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    scale_mm: float = 100.0,
    eps_mm: float = EPS_MM,
    reduction: str = "sum",
    return_matches: bool = False,
):
    """Eq. 7 (see module doc).

    Args:
        pred_quat: (B, 4) predicted rotation (normalised here).
        pred_trans: (B, 3) predicted head origin, position units relative to the crop centre.
        landmarks_mm: (m, 3) or (B, m, 3) reference-face landmarks in the head frame (mm).
        points: (B, 3, H, W) position images or (B, N, 3) points, position units.
        valid: (B, H, W) / (B, N) bool; default: non-zero pixels.
        scale_mm: mm per position unit.
        eps_mm: matches farther than this distance are excluded.
        reduction: ``"sum"`` (paper) or ``"mean"``.
        return_matches: also return the (B, m) bool mask of pairs used.

    Returns:
        scalar loss in mm^2 (and the match mask).
    """
    pts, ok = _as_point_batch(points, valid)
    b = pts.shape[0]
    lm = landmarks_mm.to(pred_quat.dtype)
    if lm.dim() == 2:
        lm = lm.unsqueeze(0).expand(b, -1, -1)
    r = quaternion_to_matrix(pred_quat)  # (B, 3, 3)
    # landmarks in position units: (R v + t_mm - c) / s = R v / s + t
    moved = torch.einsum("bij,bmj->bmi", r, lm) / scale_mm + pred_trans[:, None, :]
    nearest = torch.zeros_like(moved)
    has = torch.zeros(moved.shape[:2], dtype=torch.bool, device=moved.device)
    with torch.no_grad():
        for i in range(b):  # per sample: only its valid points (memory ~ m x N_valid)
            p = pts[i][ok[i]]
            if p.shape[0] == 0:
                continue
            idx = torch.cdist(moved[i].detach(), p.to(moved.dtype)).argmin(dim=1)
            nearest[i] = p[idx].to(moved.dtype)
            has[i] = True
    d2 = ((moved - nearest) ** 2).sum(-1) * (scale_mm**2)  # (B, m) mm^2
    keep = has & (d2.detach() <= eps_mm**2)
    d2 = torch.where(keep, d2, torch.zeros_like(d2))
    if reduction == "sum":
        loss = d2.sum(-1).mean()
    elif reduction == "mean":
        loss = d2.sum() / keep.sum().clamp_min(1)
    else:
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    return (loss, keep) if return_matches else loss
