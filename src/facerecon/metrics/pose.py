"""Head pose errors: geodesic, per-axis Euler and translation errors.

Euler angles are those of :mod:`facerecon.geometry.rotations` (``R = Ry(yaw) Rx(pitch) Rz(roll)``
about the camera axes, degrees).  Papers do not agree on a convention, so per-axis
numbers are only comparable with results computed in the same convention; the
geodesic error (angle of ``R_pred^T R_true``) is convention-free and is reported too.

The overall "MAE" is the mean of the yaw, pitch and roll MAEs, which is how the Biwi /
ICT-3DHP tables (including the paper's Table 3) report it.  Per-axis differences are
wrapped to [-180, 180) before taking absolute values, so 179 vs -179 is a 2 degree error.
Near pitch = +-90 degrees yaw and roll are not separately defined (gimbal lock) and
their individual errors can be large even for close rotations; heads do not get there
on the usual benchmarks, and the geodesic error stays meaningful.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..geometry.rotations import matrix_to_euler

__all__ = ["PoseErrors", "wrap_deg", "euler_abs_errors_deg", "geodesic_errors_deg", "translation_errors_mm", "pose_errors"]


def wrap_deg(a: np.ndarray) -> np.ndarray:
    """Wrap angles (degrees) to [-180, 180)."""
    return (np.asarray(a, dtype=np.float64) + 180.0) % 360.0 - 180.0


def _rotations(r: np.ndarray, name: str) -> np.ndarray:
    r = np.asarray(r, dtype=np.float64)
    if r.ndim == 2:
        r = r[None]
    if r.ndim != 3 or r.shape[1:] != (3, 3):
        raise ValueError(f"{name} must be (N, 3, 3) rotation matrices, got shape {r.shape}")
    return r


def euler_abs_errors_deg(r_pred: np.ndarray, r_true: np.ndarray) -> np.ndarray:
    """(N, 3) absolute wrapped (yaw, pitch, roll) differences in degrees."""
    e_pred = matrix_to_euler(_rotations(r_pred, "R_pred"))
    e_true = matrix_to_euler(_rotations(r_true, "R_true"))
    return np.abs(wrap_deg(e_pred - e_true))


def geodesic_errors_deg(r_pred: np.ndarray, r_true: np.ndarray) -> np.ndarray:
    """(N,) angle of the relative rotation ``R_pred^T R_true`` in degrees, in [0, 180].

    Computed as ``atan2(sin, cos)`` from the skew part and the trace, which stays accurate
    for tiny angles where ``arccos((tr - 1) / 2)`` loses half the digits (1e-6 degrees
    of noise for identical rotations); same value as
    :func:`facerecon.geometry.rotations.geodesic_distance_deg` otherwise.
    """
    rel = np.swapaxes(_rotations(r_pred, "R_pred"), -1, -2) @ _rotations(r_true, "R_true")
    skew = np.stack([rel[:, 2, 1] - rel[:, 1, 2], rel[:, 0, 2] - rel[:, 2, 0], rel[:, 1, 0] - rel[:, 0, 1]], axis=-1)
    sin = 0.5 * np.linalg.norm(skew, axis=-1)
    cos = 0.5 * (np.trace(rel, axis1=-2, axis2=-1) - 1.0)
    return np.degrees(np.arctan2(sin, cos))


def translation_errors_mm(t_pred: np.ndarray, t_true: np.ndarray) -> np.ndarray:
    """(N,) Euclidean distance between predicted and true head positions (mm)."""
    tp = np.atleast_2d(np.asarray(t_pred, dtype=np.float64))
    tt = np.atleast_2d(np.asarray(t_true, dtype=np.float64))
    if tp.shape != tt.shape or tp.shape[-1] != 3:
        raise ValueError(f"t_pred {tp.shape} and t_true {tt.shape} must both be (N, 3)")
    return np.linalg.norm(tp - tt, axis=1)


@dataclass
class PoseErrors:
    """Summary (and per-sample values) of head pose errors over N samples.

    Angles in degrees in the :mod:`facerecon.geometry.rotations` convention, distances in mm.
    ``translation_mean_mm`` / ``translation_median_mm`` are None when no translations
    were given.  Per-sample arrays are kept (not printed) for plots and per-frame tables.
    """

    n: int
    yaw_mae: float
    pitch_mae: float
    roll_mae: float
    mae: float  # mean of the three per-axis MAEs, as the papers report it
    geodesic_mean: float
    geodesic_median: float
    translation_mean_mm: float | None
    translation_median_mm: float | None
    euler_abs: np.ndarray = field(repr=False)  # (N, 3) |yaw|, |pitch|, |roll| errors
    geodesic: np.ndarray = field(repr=False)  # (N,)
    translation: np.ndarray | None = field(default=None, repr=False)  # (N,)

    def to_dict(self) -> dict:
        """JSON-ready summary (no per-sample arrays)."""
        d = asdict(self)
        for k in ("euler_abs", "geodesic", "translation"):
            d.pop(k)
        d["euler_convention"] = "R = Ry(yaw) @ Rx(pitch) @ Rz(roll), camera axes, degrees (facerecon.geometry.rotations)"
        return d

    def format_table(self) -> str:
        """A short plain-text table (one header row, one value row)."""
        cols = [("N", f"{self.n}"), ("yaw", f"{self.yaw_mae:.2f}"), ("pitch", f"{self.pitch_mae:.2f}"),
                ("roll", f"{self.roll_mae:.2f}"), ("MAE", f"{self.mae:.2f}"),
                ("geo mean", f"{self.geodesic_mean:.2f}"), ("geo med", f"{self.geodesic_median:.2f}")]
        if self.translation_mean_mm is not None:
            cols.append(("t mean mm", f"{self.translation_mean_mm:.1f}"))
        w = [max(len(a), len(b)) for a, b in cols]
        head = "  ".join(a.rjust(x) for (a, _), x in zip(cols, w))
        vals = "  ".join(b.rjust(x) for (_, b), x in zip(cols, w))
        return f"{head}\n{vals}"


def pose_errors(
    r_pred: np.ndarray,
    r_true: np.ndarray,
    t_pred: np.ndarray | None = None,
    t_true: np.ndarray | None = None,
) -> PoseErrors:
    """Pose errors from predicted / true rotations (N, 3, 3) and optional translations (N, 3) in mm."""
    rp, rt = _rotations(r_pred, "R_pred"), _rotations(r_true, "R_true")
    if rp.shape != rt.shape:
        raise ValueError(f"R_pred {rp.shape} and R_true {rt.shape} differ in shape")
    if rp.shape[0] == 0:
        raise ValueError("no samples")
    eul = euler_abs_errors_deg(rp, rt)
    geo = geodesic_errors_deg(rp, rt)
    trans = None
    if (t_pred is None) != (t_true is None):
        raise ValueError("give both t_pred and t_true, or neither")
    if t_pred is not None:
        trans = translation_errors_mm(t_pred, t_true)
        if trans.shape[0] != rp.shape[0]:
            raise ValueError(f"{trans.shape[0]} translations for {rp.shape[0]} rotations")
    axis = eul.mean(axis=0)
    return PoseErrors(
        n=int(rp.shape[0]),
        yaw_mae=float(axis[0]),
        pitch_mae=float(axis[1]),
        roll_mae=float(axis[2]),
        mae=float(axis.mean()),
        geodesic_mean=float(geo.mean()),
        geodesic_median=float(np.median(geo)),
        translation_mean_mm=None if trans is None else float(trans.mean()),
        translation_median_mm=None if trans is None else float(np.median(trans)),
        euler_abs=eul,
        geodesic=geo,
        translation=trans,
    )
