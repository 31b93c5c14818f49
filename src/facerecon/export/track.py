"""What ``facerecon track`` writes: per-frame CSV and JSON, the person's neutral face, a pose-over-time plot.

CSV columns (one row per frame, schema ``TRACK_CSV_COLUMNS`` then one column per expression):
``index, time_s, source, tracked, status, recovered, localised, warm_start, confidence,
residual_mm, qw, qx, qy, qz, tx_mm, ty_mm, tz_mm, yaw_deg, pitch_deg, roll_deg`` (the
filtered pose), the same ten pose columns prefixed ``raw_`` (before the filter), then
``expr_<name>`` for the 55 expression weights.  Lost frames have empty pose cells.
The JSON holds one pose document per frame (the schema of :mod:`.pose_json`, method
``track``: the filtered pose in the core keys, the raw pose in the ``track`` block) plus the
sequence summary, the fused identity weights and how the identity face was made (``identity_face``:
detail, fused frames and points, the correction's numbers, the fused surface's registration).
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..fileutil import atomic_path, write_bytes_atomic, write_text_atomic
from ..geometry.pose import HeadPose
from ..io.mesh import write_mesh
from ..tracking.tracker import FaceTrack, IdentityFace
from .gltf import write_glb
from .maps import DetailMaps, detail_maps, write_displacement_png
from .pose_json import SCHEMA_VERSION, track_document

POSE_COLUMNS = ("qw", "qx", "qy", "qz", "tx_mm", "ty_mm", "tz_mm", "yaw_deg", "pitch_deg", "roll_deg")
TRACK_CSV_COLUMNS = ("index", "time_s", "source", "tracked", "status", "recovered", "localised", "warm_start", "confidence",
                     "residual_mm", *POSE_COLUMNS, *(f"raw_{c}" for c in POSE_COLUMNS))


def _pose_values(pose: HeadPose | None) -> list:
    if pose is None:
        return [""] * len(POSE_COLUMNS)
    return [*(round(float(v), 6) for v in pose.quaternion_wxyz), *(round(float(v), 3) for v in pose.t_mm),
            *(round(float(v), 3) for v in pose.euler_deg)]


def tracks_csv(tracks: list[FaceTrack], expression_names: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*TRACK_CSV_COLUMNS, *(f"expr_{n}" for n in expression_names)])
    for t in tracks:
        expr = [""] * len(expression_names) if t.expression is None else [round(float(v), 4) for v in t.expression]
        w.writerow([t.index, f"{t.time_s:.6f}", t.source, int(t.tracked), t.status, int(t.recovered), int(t.localised),
                    int(t.warm_start), round(t.confidence, 4), "" if not np.isfinite(t.residual_mm) else round(t.residual_mm, 3),
                    *_pose_values(t.pose), *_pose_values(t.raw_pose), *expr])
    return buf.getvalue()


def summary(tracks: list[FaceTrack], seconds: float | None = None) -> dict:
    n = len(tracks)
    out = {"frames": n, "tracked": sum(t.tracked for t in tracks), "lost": sum(not t.tracked for t in tracks),
           "recovered": sum(t.recovered for t in tracks), "localised": sum(t.localised for t in tracks),
           "warm_started": sum(t.warm_start for t in tracks)}
    if seconds is not None and seconds > 0:
        out["seconds"] = round(seconds, 3)
        out["frames_per_second"] = round(n / seconds, 2)
    return out


@dataclass
class _NeutralFace:
    """What the GLB writer reads of a result: the identity face at expression 0 in the head frame."""

    vertices_head: np.ndarray
    expression: np.ndarray
    source: str
    pose: HeadPose = field(default_factory=lambda: HeadPose(np.eye(3), np.zeros(3)))


IDENTITY_DISPLACEMENT_FILE = "identity_displacement.png"
IDENTITY_NORMAL_FILE = "identity_normal.png"


def identity_maps(face: IdentityFace, model) -> DetailMaps | None:
    """The detail maps of the corrected identity face (None when it is not corrected): the fused
    points splatted into a virtual depth frame seen from the correction's front view
    (:func:`~facerecon.fitting.detail.splat_depth_frame`, one pixel per fusion voxel: finer pixels
    would leave holes between the points, which are not filled), then the same
    :func:`.maps.detail_maps` as ``reconstruct`` (judged by ``[maps]`` of configs/detail.toml)."""
    from ..fitting.detail import splat_depth_frame

    if face.detail != "on" or face.view_points is None or face.view_pose is None:
        return None
    frame = splat_depth_frame(face.view_points, face.spacing_mm, "fused head surface, front view")
    view = _NeutralFace(face.vertices_head, np.zeros(model.n_expression), frame.source, face.view_pose)
    return detail_maps(view, model, frame)


def identity_maps_json(maps: DetailMaps) -> dict:
    """track.json's ``identity_face.detail_map`` block (pose.json's ``depth.detail_map`` with the identity's file names)."""
    out = maps.to_json()
    if maps.written:
        out.update(displacement=IDENTITY_DISPLACEMENT_FILE, normal=IDENTITY_NORMAL_FILE)
    return out


def write_identity_face(out_dir: Path, face: IdentityFace, model, sequence: str = "", rig: str | None = None,
                        maps: DetailMaps | None = None) -> dict[str, Path]:
    """``identity.obj`` / ``.ply`` / ``.glb`` (the person's neutral face, head frame, ICT topology and UVs;
    corrected when ``face.detail`` is "on"; the GLB is the rig, ``rig`` as elsewhere) and, when
    corrected, ``identity_model.obj`` (the fused identity's model face alone).  ``maps`` (written
    ones, :func:`identity_maps`): ``identity_displacement.png``, ``identity_normal.png`` and the
    normal map as ``identity.glb``'s ``normalTexture``."""
    out_dir = Path(out_dir)
    maps = maps if maps is not None and maps.written else None
    paths = {}
    if maps is not None:
        paths["identity_displacement"] = out_dir / IDENTITY_DISPLACEMENT_FILE
        maps.encoding = write_displacement_png(paths["identity_displacement"], maps.displacement)
        paths["identity_normal"] = out_dir / IDENTITY_NORMAL_FILE
        write_bytes_atomic(paths["identity_normal"], maps.png())
    polys, puv = model.polygon_lists()
    what = "the out-of-span correction solved against the fused head surface" if face.detail == "on" else f"model only (detail {face.detail})"
    header = f"facerecon track: the person's neutral face from {sequence} ({what}); ICT-FaceKit Light topology (MIT); mm; head frame"
    for fmt in ("obj", "ply"):
        paths[f"identity_{fmt}"] = out_dir / f"identity.{fmt}"
        write_mesh(paths[f"identity_{fmt}"], face.vertices_head, polys, model.uv, puv, header=header)
    neutral = _NeutralFace(face.vertices_head, np.zeros(model.n_expression), f"track identity of {sequence}")
    paths["identity_glb"] = write_glb(out_dir / "identity.glb", neutral, model, "head", rig=rig,
                                      normal_png=None if maps is None else maps.png()).path
    if face.detail == "on":
        paths["identity_model"] = out_dir / "identity_model.obj"
        write_mesh(paths["identity_model"], face.model_vertices_head, polys, model.uv, puv,
                   header=f"facerecon track: the fused identity's model face of {sequence} (no correction); "
                          "ICT-FaceKit Light topology (MIT); mm; head frame")
    return paths


def write_track_outputs(out_dir: Path, tracks: list[FaceTrack], tracker, *, sequence: str = "", seconds: float | None = None,
                        plot: bool = True, detail: bool | None = None, rig: str | None = None) -> dict[str, Path]:
    """``track.csv``, ``track.json``, the person's neutral face (:func:`write_identity_face`: ``identity.obj``
    / ``.ply`` / ``.glb``, ``identity_model.obj``; ``detail`` False: the model's face, None: the
    tracker's ``[fused_face] correct``) and ``pose_over_time.png`` in ``out_dir`` (all atomic)."""

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = list(tracker.model.expression_names)
    names += [f"expression_{i}" for i in range(len(names), tracker.model.n_expression)]
    paths = {"csv": out_dir / "track.csv", "json": out_dir / "track.json"}
    write_text_atomic(paths["csv"], tracks_csv(tracks, names))
    face = tracker.identity_face(detail)
    maps = identity_maps(face, tracker.model)
    face_doc = face.stats()
    if maps is not None:
        face_doc["detail_map"] = identity_maps_json(maps)
    doc = {"schema_version": SCHEMA_VERSION, "sequence": sequence, "summary": summary(tracks, seconds),
           "identity_frozen": bool(tracker.identity_frozen), "identity_face": face_doc,
           "identity": None if tracker.identity is None else [round(float(v), 5) for v in tracker.identity],
           "conventions": "mm; camera frame x right, y down, z forward; head point v -> R v + t; quaternion (w, x, y, z) w >= 0; "
                          "Euler R = Ry(yaw) Rx(pitch) Rz(roll) about camera axes; pose = One-Euro filtered, raw_pose = before the filter",
           "frames": [track_document(t, names) for t in tracks]}
    found = write_identity_face(out_dir, face, tracker.model, sequence, rig, maps)
    if maps is not None and maps.written:
        face_doc["detail_map"].update(maps.encoding)  # the displacement PNG's scale / offset, known once written
    write_text_atomic(paths["json"], json.dumps(doc, indent=1))
    paths["identity"] = found.pop("identity_obj")
    paths.update(found)
    if plot:
        paths["plot"] = out_dir / "pose_over_time.png"
        plot_pose_over_time(tracks, paths["plot"], title=sequence)
    return paths


def plot_pose_over_time(tracks: list[FaceTrack], path: Path, title: str = "", extra: dict | None = None) -> None:
    """Yaw, pitch, roll (filtered lines, raw dots, both in the legend) and translation against
    time (tz relative to its median z0, which the legend states), lost frames marked.
    ``extra``: {label: (times, (N, 3) yaw/pitch/roll)} drawn as dashed lines (e.g. a reference)."""
    import matplotlib.pyplot as plt

    fig = pose_figure(tracks, title, extra)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def pose_figure(tracks: list[FaceTrack], title: str = "", extra: dict | None = None):
    """The matplotlib figure of :func:`plot_pose_over_time` (the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = tracks[0].time_s if tracks else 0.0
    ts = np.array([t.time_s - t0 for t in tracks])
    ok = np.array([t.tracked for t in tracks], bool)
    eul = np.full((len(tracks), 3), np.nan)
    raw = np.full((len(tracks), 3), np.nan)
    tr = np.full((len(tracks), 3), np.nan)
    for i, t in enumerate(tracks):
        if t.tracked:
            eul[i], raw[i], tr[i] = t.pose.euler_deg, t.raw_pose.euler_deg, t.pose.t_mm
    fig, axes = plt.subplots(2, 1, figsize=(9, 6.2), sharex=True)
    colours = ("tab:blue", "tab:orange", "tab:green")
    for k, (name, c) in enumerate(zip(("yaw", "pitch", "roll"), colours)):
        axes[0].plot(ts, eul[:, k], "-", color=c, label=f"{name} (filtered)")
        axes[0].plot(ts, raw[:, k], ".", color=c, ms=3, alpha=0.6)
    # one legend entry for the raw dots of all three angles (grey: their colour is the angle's)
    axes[0].plot([], [], ".", color="0.35", ms=5, label="raw pose, before the filter (dots, colour of its angle)")
    for label, (te, ee) in (extra or {}).items():
        for k, c in enumerate(colours):
            axes[0].plot(np.asarray(te) - t0, np.asarray(ee)[:, k], "--", color=c, lw=1, label=label if k == 0 else None)
    z0 = float(np.nanmedian(tr[:, 2])) if ok.any() else 0.0
    for k, (name, c) in enumerate(zip(("x", "y", "z - z0"), colours)):
        label = f"t{name} (mm)" + (f", z0 = median tz = {z0:.0f} mm" if k == 2 else "")
        axes[1].plot(ts, tr[:, k] - (z0 if k == 2 else 0.0), "-", color=c, label=label)
    for ax in axes:
        for tl in ts[~ok]:
            ax.axvline(tl, color="red", alpha=0.25, lw=2)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=4, loc="best")
    axes[0].set_ylabel("degrees")
    axes[1].set_ylabel("translation (mm)")
    axes[1].set_xlabel("time (s)" + ("   red: lost frames" if (~ok).any() else ""))
    axes[0].set_title(f"head pose over time {title}".strip(), fontsize=9)
    fig.tight_layout()
    return fig
