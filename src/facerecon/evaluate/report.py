"""Results of ``facerecon eval pose|shape`` and their files: JSON, CSV, plots, error colour maps.

Written into ``OUT`` (every file atomically)::

    pose_errors.json    summary (per-axis MAE, MAE, geodesic mean/median, translation, N,
                        failures) + one record per sample
    pose_errors.csv     per sample: name, status, |yaw|, |pitch|, |roll|, geodesic (deg),
                        translation (mm) errors, true and predicted angles, message
    pose_hist.png       error histograms per axis, geodesic and translation
    pose_per_sample.png errors in sample order, and cumulative curves (fraction of samples
                        below an error)
    shape_errors.json   summary (mean of per-sample means, median of per-sample medians, both
                        ways; eq. 8 Chamfer) + one record per sample
    shape_errors.csv    per sample: pred->gt and gt->pred mean/median (mm), Chamfer (mm^2)
    shape_hist.png, shape_per_sample.png
    shape_colormap_<median|worst>_<NAME>.ply|.png
                        the prediction (aligned onto the ground truth), evaluated region,
                        coloured by its distance to the ground-truth surface (0..5 mm, per-
                        vertex colours + a ``quality`` value that MeshLab reads), and a
                        frontal projection of the same
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..fileutil import atomic_path, write_text_atomic
from ..geometry.pose import HeadPose
from ..geometry.rotations import matrix_to_euler
from ..metrics.pose import PoseErrors, pose_errors
from ..metrics.shape import ShapeErrors
from ..metrics.surface import triangulate_faces
from .files import PredictedPose

__all__ = ["PoseReport", "build_pose_report", "write_pose_report", "ShapeSample", "ShapeReport", "write_shape_report",
           "write_error_colormap"]  # fmt: skip

COLORMAP = "turbo"


def _clean(o: Any) -> Any:
    """JSON values without NaN/inf (strict JSON readers reject them) and numpy types."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, (np.floating, float)):
        return float(o) if math.isfinite(float(o)) else None
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, Path):
        return str(o)
    return o


def _write_json(path: Path, doc: dict) -> None:
    write_text_atomic(path, json.dumps(_clean(doc), indent=1) + "\n")


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(["" if v is None or (isinstance(v, float) and not math.isfinite(v)) else
                    (f"{v:.6g}" if isinstance(v, float) else v) for v in r])  # fmt: skip
    write_text_atomic(path, buf.getvalue())


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)


def _per_sample(ax, values: np.ndarray, label: str) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.plot(values, lw=0.8, marker="." if len(values) <= 50 else None, label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _hist(ax, values: np.ndarray) -> None:
    from matplotlib.ticker import MaxNLocator

    v = values[np.isfinite(values)]
    ax.hist(v, bins=min(50, max(5, len(v) // 3)), color="tab:blue")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _cdf(ax, values: np.ndarray, label: str) -> None:
    v = np.sort(values[np.isfinite(values)])
    if v.size:
        ax.step(np.concatenate([[0.0], v]), np.linspace(0, 1, v.size + 1), where="post", label=label)


# -- pose -----------------------------------------------------------------------------------------
@dataclass
class PoseReport:
    """Pose errors of one method on one dataset.

    ``samples`` lists every labelled sample in order; ``names`` the evaluated ones (a
    prediction exists), whose errors are in ``errors``; ``failures`` says why the others
    have none.  Errors are over the evaluated samples only; the failure count goes with them.
    """

    samples: list[str]
    names: list[str]
    errors: PoseErrors | None
    failures: dict[str, str]
    gt_euler: np.ndarray  # (N, 3) of ``names``
    pred_euler: np.ndarray
    method: str = ""
    data: str = ""
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        d: dict[str, Any] = {"n_samples": len(self.samples), "n_evaluated": len(self.names), "n_failed": len(self.failures),
                             "failure_rate": len(self.failures) / max(1, len(self.samples))}  # fmt: skip
        if self.errors is not None:
            d.update(self.errors.to_dict())
        return d

    def to_dict(self) -> dict:
        per = []
        at = {n: i for i, n in enumerate(self.names)}
        e = self.errors
        for n in self.samples:
            if n not in at:
                per.append({"name": n, "status": "failed", "message": self.failures.get(n, "")})
                continue
            i = at[n]
            per.append({"name": n, "status": "ok", "yaw_err_deg": e.euler_abs[i, 0], "pitch_err_deg": e.euler_abs[i, 1],
                        "roll_err_deg": e.euler_abs[i, 2], "geodesic_err_deg": e.geodesic[i],
                        "translation_err_mm": None if e.translation is None else e.translation[i],
                        "gt_euler_deg": self.gt_euler[i], "pred_euler_deg": self.pred_euler[i]})  # fmt: skip
        return {"method": self.method, "data": self.data, "summary": self.summary(), "notes": self.notes,
                "failures": self.failures, "per_sample": per}  # fmt: skip


def build_pose_report(samples: list[str], truth: dict[str, HeadPose], predicted: dict[str, PredictedPose],
                      failures: dict[str, str], method: str = "", data: str = "") -> PoseReport:  # fmt: skip
    """Errors of ``predicted`` against ``truth`` over ``samples``; a sample with no prediction
    is a failure (its reason from ``failures``, else "no prediction")."""
    names = [n for n in samples if n in predicted]
    fails = {n: failures.get(n, "no prediction for this sample") for n in samples if n not in predicted}
    notes: list[str] = []
    if not names:
        return PoseReport(list(samples), [], None, fails, np.zeros((0, 3)), np.zeros((0, 3)), method, data, notes)
    r_pred = np.stack([predicted[n].R for n in names])
    r_true = np.stack([truth[n].R for n in names])
    t_pred = t_true = None
    no_t = [n for n in names if predicted[n].t_mm is None]
    if no_t:  # angles-only predictions: translation is not evaluated for anyone (no mixed averages)
        notes.append(f"translation not evaluated: {len(no_t)} predictions have none")
    else:
        t_pred = np.stack([predicted[n].t_mm for n in names])
        t_true = np.stack([truth[n].t_mm for n in names])
    err = pose_errors(r_pred, r_true, t_pred, t_true)
    return PoseReport(list(samples), names, err, fails, matrix_to_euler(r_true), matrix_to_euler(r_pred), method, data, notes)


def _pose_rows(rep: PoseReport) -> list[list[Any]]:
    rows = []
    for d in rep.to_dict()["per_sample"]:
        if d["status"] != "ok":
            rows.append([d["name"], "failed"] + [None] * 11 + [d["message"]])
            continue
        rows.append([d["name"], "ok", d["yaw_err_deg"], d["pitch_err_deg"], d["roll_err_deg"], d["geodesic_err_deg"],
                     d["translation_err_mm"], *map(float, d["gt_euler_deg"]), *map(float, d["pred_euler_deg"]), ""])  # fmt: skip
    return rows


def write_pose_report(rep: PoseReport, out: str | Path) -> list[Path]:
    """pose_errors.json/.csv, pose_hist.png, pose_per_sample.png (plots only with errors)."""
    out = Path(out)
    _write_json(out / "pose_errors.json", rep.to_dict())
    _write_csv(out / "pose_errors.csv", ["name", "status", "yaw_err_deg", "pitch_err_deg", "roll_err_deg", "geodesic_err_deg",
               "translation_err_mm", "gt_yaw", "gt_pitch", "gt_roll", "pred_yaw", "pred_pitch", "pred_roll", "message"],
               _pose_rows(rep))  # fmt: skip
    written = [out / "pose_errors.json", out / "pose_errors.csv"]
    e = rep.errors
    if e is None:
        return written
    plt = _pyplot()
    series = [("yaw", e.euler_abs[:, 0], "deg"), ("pitch", e.euler_abs[:, 1], "deg"), ("roll", e.euler_abs[:, 2], "deg"),
              ("geodesic", e.geodesic, "deg")]  # fmt: skip
    if e.translation is not None:
        series.append(("translation", e.translation, "mm"))
    fig, axes = plt.subplots(1, len(series), figsize=(3.2 * len(series), 3.2), layout="constrained")
    for ax, (label, v, unit) in zip(np.atleast_1d(axes), series):
        _hist(ax, v)
        ax.set_title(f"{label}: mean {v.mean():.2f}, median {np.median(v):.2f}", fontsize=9)
        ax.set_xlabel(f"absolute error ({unit})")
    np.atleast_1d(axes)[0].set_ylabel("samples")
    fig.suptitle(f"{rep.method} on {rep.data}: N={len(rep.names)}, failures {len(rep.failures)}", fontsize=10)
    _save(fig, out / "pose_hist.png")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained")
    for label, v, _ in series[:4]:
        _per_sample(a1, v, label)
        _cdf(a2, v, label)
    a1.set_xlabel("sample (dataset order)")
    a1.set_ylabel("absolute error (deg)")
    a2.set_xlabel("error threshold (deg)")
    a2.set_ylabel("fraction of evaluated samples")
    a2.set_xlim(0, max(1.0, float(np.percentile(e.geodesic, 98)) * 1.2))
    for ax in (a1, a2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _save(fig, out / "pose_per_sample.png")
    return written + [out / "pose_hist.png", out / "pose_per_sample.png"]


# -- shape ----------------------------------------------------------------------------------------
@dataclass
class ShapeSample:
    name: str
    errors: ShapeErrors
    pred_path: Path
    gt_path: Path
    landmarks: str  # how the pair was aligned (e.g. "ict (9 model vertices)")


@dataclass
class ShapeReport:
    """Shape errors over pairs; ``samples``: every ground-truth sample, ``failures``: why some have none."""

    samples: list[str]
    evaluated: list[ShapeSample]
    failures: dict[str, str]
    settings: dict = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)

    def table(self) -> np.ndarray:
        """(N, 5): pred->gt mean, median, gt->pred mean, median (mm), Chamfer (mm^2)."""
        rows = [(s.errors.pred_to_gt.mean, s.errors.pred_to_gt.median, s.errors.gt_to_pred.mean,
                 s.errors.gt_to_pred.median, s.errors.chamfer.value_mm2) for s in self.evaluated]  # fmt: skip
        return np.asarray(rows, np.float64).reshape(-1, 5)

    def summary(self) -> dict:
        d: dict[str, Any] = {"n_samples": len(self.samples), "n_evaluated": len(self.evaluated), "n_failed": len(self.failures)}
        a = self.table()
        if len(a):
            d.update({"pred_to_gt_mean_mm": a[:, 0].mean(), "pred_to_gt_median_mm": float(np.median(a[:, 1])),
                      "gt_to_pred_mean_mm": a[:, 2].mean(), "gt_to_pred_median_mm": float(np.median(a[:, 3])),
                      "chamfer_eq8_mm2": a[:, 4].mean(),
                      "aggregation": "means: mean of per-sample means; medians: median of per-sample medians"})  # fmt: skip
        return d

    def to_dict(self) -> dict:
        per = [{"name": s.name, "status": "ok", "pred": s.pred_path, "gt": s.gt_path, "landmarks": s.landmarks,
                **s.errors.to_dict()} for s in self.evaluated]  # fmt: skip
        per += [{"name": n, "status": "failed", "message": m} for n, m in self.failures.items()]
        order = {n: i for i, n in enumerate(self.samples)}
        per.sort(key=lambda r: order.get(r["name"], len(order)))
        return {"settings": self.settings, "summary": self.summary(), "failures": self.failures,
                "unmatched_predictions": self.unmatched, "per_sample": per}  # fmt: skip

    def picks(self) -> list[tuple[str, ShapeSample]]:
        """The median and the worst sample by symmetric mean distance (for colour maps)."""
        if not self.evaluated:
            return []
        sym = np.array([s.errors.symmetric_mean_mm for s in self.evaluated])
        order = np.argsort(sym, kind="stable")
        med, worst = int(order[(len(order) - 1) // 2]), int(order[-1])
        return [("median", self.evaluated[med])] + ([("worst", self.evaluated[worst])] if worst != med else [])


def write_error_colormap(vertices: np.ndarray, faces: np.ndarray, region: np.ndarray, distances: np.ndarray,
                         ply_path: Path, png_path: Path, vmax_mm: float = 5.0, title: str = "") -> None:  # fmt: skip
    """The region of a mesh coloured by per-vertex distance (mm): PLY + frontal PNG.

    ``region``: (V,) bool, ``distances``: one value per region vertex (in vertex order).
    Frontal = looking along +z of the mesh frame (head frame: x to image right, y down).
    """
    import trimesh

    plt = _pyplot()

    tris = triangulate_faces(faces)
    keep = tris[region[tris].all(axis=1)]
    remap = -np.ones(len(vertices), np.int64)
    remap[np.flatnonzero(region)] = np.arange(int(region.sum()))
    v = np.asarray(vertices, np.float64)[region]
    f = remap[keep]
    d = np.asarray(distances, np.float64)
    cmap = plt.get_cmap(COLORMAP)
    rgba = (cmap(np.clip(d / vmax_mm, 0.0, 1.0)) * 255).round().astype(np.uint8)
    mesh = trimesh.Trimesh(v, f, vertex_colors=rgba, process=False)
    mesh.vertex_attributes["quality"] = d.astype(np.float32)  # MeshLab: per-vertex quality = distance (mm)
    with atomic_path(ply_path) as tmp:
        mesh.export(tmp, file_type="ply", include_attributes=True)
    fig, ax = plt.subplots(figsize=(4.2, 4.6), layout="constrained")
    if len(f):
        order = np.argsort(-v[f].mean(axis=1)[:, 2])  # far (large z) first, so the near surface is drawn on top
        tpc = ax.tripcolor(v[:, 0], -v[:, 1], f[order], facecolors=d[f[order]].mean(axis=1), cmap=COLORMAP,
                           vmin=0.0, vmax=vmax_mm, shading="flat")  # fmt: skip
        fig.colorbar(tpc, ax=ax, label="distance to ground truth (mm)", shrink=0.8)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    _save(fig, png_path)


def write_shape_report(rep: ShapeReport, out: str | Path, colormaps: list[tuple[str, ShapeSample, np.ndarray, np.ndarray]] = (),
                       vmax_mm: float = 5.0) -> list[Path]:  # fmt: skip
    """shape_errors.json/.csv, shape_hist.png, shape_per_sample.png and, for each
    ``(tag, sample, pred vertices, pred faces)`` in ``colormaps``, a colour map of the
    prediction (moved onto the ground truth with the sample's alignment)."""
    out = Path(out)
    _write_json(out / "shape_errors.json", rep.to_dict())
    at = {s.name: s for s in rep.evaluated}
    rows = []
    for n in rep.samples:
        s = at.get(n)
        if s is None:
            rows.append([n, "failed"] + [None] * 6 + [rep.failures.get(n, "")])
            continue
        e = s.errors
        rows.append([n, "ok", e.pred_to_gt.mean, e.pred_to_gt.median, e.gt_to_pred.mean, e.gt_to_pred.median,
                     e.chamfer.value_mm2, e.landmark_rmse_mm, ""])  # fmt: skip
    _write_csv(out / "shape_errors.csv", ["name", "status", "pred_to_gt_mean_mm", "pred_to_gt_median_mm", "gt_to_pred_mean_mm",
               "gt_to_pred_median_mm", "chamfer_eq8_mm2", "landmark_rmse_mm", "message"], rows)  # fmt: skip
    written = [out / "shape_errors.json", out / "shape_errors.csv"]
    a = rep.table()
    if not len(a):
        return written
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), layout="constrained")
    for ax, (label, v, unit) in zip(axes, [("pred -> gt mean", a[:, 0], "mm"), ("gt -> pred mean", a[:, 2], "mm"),
                                           ("Chamfer eq. 8", a[:, 4], "mm^2")]):  # fmt: skip
        _hist(ax, v)
        ax.set_title(f"{label}: mean {np.nanmean(v):.3f} {unit}", fontsize=9)
        ax.set_xlabel(f"per-sample value ({unit})")
    axes[0].set_ylabel("samples")
    fig.suptitle(f"shape errors: N={len(a)}, failures {len(rep.failures)}", fontsize=10)
    _save(fig, out / "shape_hist.png")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained")
    for j, label in ((0, "pred -> gt mean"), (1, "pred -> gt median"), (2, "gt -> pred mean"), (3, "gt -> pred median")):
        _per_sample(a1, a[:, j], label)
        _cdf(a2, a[:, j], label)
    a1.set_xlabel("sample (ground-truth order)")
    a1.set_ylabel("distance (mm)")
    a2.set_xlabel("distance threshold (mm)")
    a2.set_ylabel("fraction of evaluated samples")
    for ax in (a1, a2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _save(fig, out / "shape_per_sample.png")
    written += [out / "shape_hist.png", out / "shape_per_sample.png"]
    for tag, s, pv, pf in colormaps:
        e = s.errors
        stem = out / f"shape_colormap_{tag}_{s.name}"
        title = f"{tag}: {s.name}  pred->gt mean {e.pred_to_gt.mean:.2f} mm"
        write_error_colormap(e.transform.apply(pv), pf, e.pred_region, e.pred_distances, Path(f"{stem}.ply"),
                             Path(f"{stem}.png"), vmax_mm, title)  # fmt: skip
        written += [Path(f"{stem}.ply"), Path(f"{stem}.png")]
    return written
