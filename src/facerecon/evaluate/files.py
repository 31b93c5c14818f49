"""Predictions of facerecon or of any other method, read from files, for ``facerecon eval``.

Pose predictions (``facerecon eval pose --method PATH``), one of:

* **a folder** of ``NAME.pose.json`` files (what ``facerecon pose -o DIR`` writes, or a
  folder dataset's pose files), or of ``NAME/pose.json`` (``facerecon reconstruct -o DIR``);
* **one JSON file** ``{"NAME": {pose}, ...}`` (or a list of ``{"name": NAME, ...pose}``);
  ``null`` for a sample means "the method gave no result" and counts as a failure;
* **a CSV file** with a header row ``name,yaw,pitch,roll,tx,ty,tz`` (Euler angles in
  degrees, facerecon convention ``R = Ry(yaw) Rx(pitch) Rz(roll)`` about the camera axes,
  see :mod:`facerecon.geometry.rotations`) or ``name,qw,qx,qy,qz,tx,ty,tz``.  Column order is free,
  other columns are ignored, ``#`` lines are comments, a row with empty rotation fields is a
  failure.

A pose is a JSON object with the rotation as any of ``R`` / ``rotation_matrix`` (3x3),
``quaternion_wxyz`` (w, x, y, z), ``euler_deg`` (``{"yaw", "pitch", "roll"}`` or a list
of three) and the head position ``t_mm`` / ``translation_mm`` (camera frame, mm).  The
pose maps head-frame points to the camera frame, ``p = R v + t``.  When several
rotations are given they must agree (0.05 degrees).  Translation is optional: a method
that gives only angles is evaluated on angles (the translation column stays empty).

Names: a prediction named ``NAME`` belongs to sample ``NAME``; ``NAME_depth`` /
``NAME.depth`` (what ``facerecon pose`` calls the output for ``NAME.depth.png``) match too.
A sample without a prediction is a failure, reported with the errors, never dropped.

Meshes (``facerecon eval shape --pred DIR --gt DIR``): in each folder a sample is
``NAME.obj`` / ``NAME.ply`` (also ``NAME.mesh.obj|ply``) or a sub-folder
``NAME/face_head.obj|ply`` (``facerecon reconstruct`` output).  A ground-truth folder with
a ``manifest.json`` is read as a folder dataset (:mod:`facerecon.datasets.folder`): its
samples' meshes (head frame) and landmarks (brought from the camera to the head frame
with the sample's pose).  Units: millimetres.

Landmarks (``--landmarks``) for the rigid alignment of a prediction onto the truth:

* ``ict``: both meshes in ICT-FaceKit topology (26,719 vertices); the 9 alignment
  vertices of the face model (eye corners, nasion, nose tip, mouth corners, chin);
* ``files``: a file beside each mesh, ``NAME.landmarks.json`` (``{"landmarks_mm": [[x, y,
  z], ...]}`` or a bare list of points) or ``NAME.lmk.txt`` (one ``x y z`` row per
  point), in the mesh's frame, the same points in the same order on both sides, >= 3
  (e.g. NoW's 7).  When one side has the 68 iBUG points and the other 9 or 7, the
  matching subset of the 68 is used (:data:`~facerecon.facemodel.ALIGNMENT_LANDMARKS_9`,
  ``_7``); 68 against 68 uses the 9 (jaw-line points are ill-defined in 3D).
  Camera-frame files (facerecon's ``NAME/landmarks.json``, folder-format files with
  ``"frame": "camera"``) are brought to the mesh's frame with ``NAME/pose.json`` / ``NAME.pose.json``;
* ``auto`` (default): ``ict`` when both meshes have the ICT vertex count, else ``files``,
  where an ICT mesh without a landmark file uses its 68 model landmarks.

A mesh with the ICT vertex count is always evaluated in the face region without ears and
neck (``EVAL_REGION``); the other mesh's region is transferred by closest point (see
:func:`facerecon.metrics.shape.compare_meshes`).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets.folder import FolderDataset, pose_from_json
from ..errors import InputFileError
from ..facemodel import ALIGNMENT_LANDMARKS_7, ALIGNMENT_LANDMARKS_9, EVAL_REGION
from ..fileutil import read_json
from ..io.mesh import read_mesh

__all__ = [
    "PredictedPose", "PosePredictions", "read_pose_predictions", "parse_pose", "match_names",
    "MeshSource", "MeshPairs", "collect_meshes", "pair_meshes", "read_landmarks_file", "ShapeSide", "prepare_pair",
]  # fmt: skip

LANDMARK_MODES = ("auto", "ict", "files")
_MESH_SUFFIXES = (".obj", ".ply")
_ALIASES = {"rotation_matrix": "R", "translation_mm": "t_mm", "quaternion": "quaternion_wxyz"}
_EULER_COLS, _QUAT_COLS, _T_COLS = ("yaw", "pitch", "roll"), ("qw", "qx", "qy", "qz"), ("tx", "ty", "tz")


# -- pose predictions ------------------------------------------------------------------------
@dataclass(frozen=True)
class PredictedPose:
    """A method's pose for one sample: rotation (3, 3) and translation (3,) mm, or None when
    the method gives no translation."""

    R: np.ndarray
    t_mm: np.ndarray | None = None


@dataclass
class PosePredictions:
    """Predictions keyed by name; ``failed`` holds names the file marks as failed (null/empty)."""

    poses: dict[str, PredictedPose]
    failed: dict[str, str] = field(default_factory=dict)
    source: Path = Path()
    kind: str = ""  # folder | json | csv

    @property
    def names(self) -> list[str]:
        return sorted(set(self.poses) | set(self.failed))


def parse_pose(d: Any, path: str | Path) -> PredictedPose:
    """One pose dict in any accepted spelling (module doc); errors name ``path``."""
    if not isinstance(d, dict):
        raise InputFileError(path, f"a pose must be a JSON object, got {type(d).__name__}")
    norm: dict[str, Any] = {}
    for key, value in d.items():
        k = _ALIASES.get(key, key)
        if k in norm:  # both spellings: they must say the same thing
            try:
                same = np.allclose(np.asarray(norm[k], float), np.asarray(value, float), atol=1e-6)
            except (TypeError, ValueError):
                same = False
            if not same:
                raise InputFileError(path, f"pose keys '{k}' and '{key}' disagree")
        norm[k] = value
    e = norm.get("euler_deg")
    if isinstance(e, (list, tuple)):
        if len(e) != 3:
            raise InputFileError(path, "pose 'euler_deg' must be [yaw, pitch, roll] or {yaw, pitch, roll}")
        norm["euler_deg"] = dict(zip(_EULER_COLS, e))
    has_t = norm.get("t_mm") is not None
    if not has_t:
        norm["t_mm"] = [0.0, 0.0, 0.0]  # angles-only method: validate the rotation, drop t below
    hp = pose_from_json(norm, path)
    return PredictedPose(hp.R, hp.t_mm if has_t else None)


def _from_folder(root: Path) -> PosePredictions:
    poses: dict[str, PredictedPose] = {}
    files = [(p.name[: -len(".pose.json")], p) for p in sorted(root.glob("*.pose.json")) if not p.name.startswith(".")]
    files += [(p.parent.name, p) for p in sorted(root.glob("*/pose.json"))]  # facerecon reconstruct -o
    if not files:
        raise InputFileError(root, "no NAME.pose.json or NAME/pose.json files in this folder")
    for name, p in files:
        if name in poses:
            raise InputFileError(p, f"a second prediction for {name!r}")
        poses[name] = parse_pose(read_json(p), p)
    return PosePredictions(poses, {}, root, "folder")


def _from_json(path: Path) -> PosePredictions:
    doc = read_json(path)
    if isinstance(doc, list):
        if not all(isinstance(x, dict) and isinstance(x.get("name"), str) for x in doc):
            raise InputFileError(path, "a list of predictions needs a 'name' in every entry")
        items = [(x["name"], {k: v for k, v in x.items() if k != "name"}) for x in doc]
    elif isinstance(doc, dict):
        items = list(doc.items())
    else:
        raise InputFileError(path, 'expected {"NAME": {pose}, ...} or a list of {"name": NAME, ...}')
    if not items:
        raise InputFileError(path, "holds no predictions")
    poses, failed = {}, {}
    for name, d in items:
        if name in poses or name in failed:
            raise InputFileError(path, f"a second prediction for {name!r}")
        if d is None:
            failed[name] = "the method gave no pose (null)"
        else:
            poses[name] = parse_pose(d, f"{path} [{name}]")
    return PosePredictions(poses, failed, path, "json")


def _from_csv(path: Path) -> PosePredictions:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"cannot read: {exc}") from None
    reader = csv.reader(io.StringIO(text))
    rows = [(reader.line_num, r) for r in reader if any(c.strip() for c in r) and not r[0].lstrip().startswith("#")]
    head = [c.strip().lower() for c in rows[0][1]] if rows else []
    col = {c: i for i, c in enumerate(head)}
    rot = _QUAT_COLS if all(c in col for c in _QUAT_COLS) else _EULER_COLS if all(c in col for c in _EULER_COLS) else None
    if "name" not in col or rot is None:
        raise InputFileError(path, f"CSV header needs name and yaw,pitch,roll or qw,qx,qy,qz (+ tx,ty,tz); got {','.join(head)!r}")
    has_t = all(c in col for c in _T_COLS)
    if not has_t and any(c in col for c in _T_COLS):
        raise InputFileError(path, "CSV has some of tx,ty,tz: give all three or none")
    poses, failed = {}, {}
    for line, r in rows[1:]:
        cell = lambda c: r[col[c]].strip() if col[c] < len(r) else ""  # noqa: E731
        name = cell("name")
        if not name or name in poses or name in failed:
            raise InputFileError(path, f"line {line}: " + (f"a second prediction for {name!r}" if name else "empty name"))
        if not any(cell(c) for c in rot):
            failed[name] = "the method gave no pose (empty row)"
            continue
        try:
            vals = [float(cell(c)) for c in rot]
            t = [float(cell(c)) for c in _T_COLS] if has_t else None
        except ValueError:
            raise InputFileError(path, f"line {line} ({name}): a rotation or translation field is not a number") from None
        d: dict[str, Any] = {"quaternion_wxyz": vals} if rot == _QUAT_COLS else {"euler_deg": dict(zip(_EULER_COLS, vals))}
        poses[name] = parse_pose({**d, "t_mm": t}, f"{path} line {line}")
    if not poses and not failed:
        raise InputFileError(path, "CSV has a header but no rows")
    return PosePredictions(poses, failed, path, "csv")


def read_pose_predictions(path: str | Path) -> PosePredictions:
    """Pose predictions from a folder, a JSON file or a CSV file (see the module doc)."""
    p = Path(path)
    if p.is_dir():
        return _from_folder(p)
    if not p.is_file():
        raise InputFileError(p, "no such file or folder (give 'facerecon' or a predictions file/folder)")
    if p.suffix.lower() == ".json":
        return _from_json(p)
    if p.suffix.lower() == ".csv":
        return _from_csv(p)
    raise InputFileError(p, "predictions must be a folder, a .json file or a .csv file")


def match_names(samples: list[str], predicted: list[str], source: str | Path = "<predictions>") -> tuple[dict[str, str], list[str]]:
    """Map sample names to prediction names; returns (sample -> prediction, unmatched predictions).

    Exact names first; ``NAME_depth`` / ``NAME.depth`` also match ``NAME`` (``facerecon pose``
    names outputs after the input file, e.g. ``NAME.depth.png`` -> ``NAME_depth``).
    """
    have = set(samples)
    out: dict[str, str] = {}
    unmatched: list[str] = []
    for key in sorted(predicted, key=lambda k: (k not in have, k)):  # exact names claim first
        s = key if key in have else None
        for suf in ("_depth", ".depth"):
            if s is None and key.endswith(suf) and key[: -len(suf)] in have:
                s = key[: -len(suf)]
        if s is None:
            unmatched.append(key)
        elif s in out:
            raise InputFileError(source, f"predictions {out[s]!r} and {key!r} both belong to sample {s!r}")
        else:
            out[s] = key
    return out, unmatched


# -- meshes ----------------------------------------------------------------------------------
@dataclass
class MeshSource:
    """One mesh and where its landmarks come from (a file beside it, or a folder dataset)."""

    name: str
    mesh_path: Path
    landmark_path: Path | None = None
    points: np.ndarray | None = None  # landmarks already in the mesh frame (folder datasets)
    pose_path: Path | None = None  # camera->mesh frame for facerecon's camera-frame landmarks

    def landmarks(self) -> np.ndarray | None:
        if self.points is not None:
            return self.points
        if self.landmark_path is None:
            return None
        return read_landmarks_file(self.landmark_path, self.pose_path)


def _landmark_file(base: Path) -> Path | None:
    for suf in (".landmarks.json", ".lmk.txt"):
        if Path(f"{base}{suf}").is_file():
            return Path(f"{base}{suf}")
    return None


def collect_meshes(root: str | Path) -> dict[str, MeshSource]:
    """The meshes of a folder (plain or folder dataset), by sample name (module doc)."""
    root = Path(root)
    if not root.is_dir():
        raise InputFileError(root, "not a folder")
    out: dict[str, MeshSource] = {}
    if (root / "manifest.json").is_file():
        ds = FolderDataset(root)
        for n in ds.names:
            s = ds.load(n)
            if s.mesh_path is None:
                continue
            pts = None
            if s.landmarks_mm is not None and s.pose is not None:  # camera frame -> the mesh's head frame
                pts = s.pose.inverse_apply(s.landmarks_mm)
            out[n] = MeshSource(n, s.mesh_path, points=pts)
        if not out:
            raise InputFileError(root / "manifest.json", "this folder dataset has no meshes (NAME.mesh.obj|ply)")
        return out
    for p in sorted(root.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_file() and p.suffix.lower() in _MESH_SUFFIXES:
            name = p.name[: -len(p.suffix)]
            name = name[: -len(".mesh")] if name.endswith(".mesh") else name
            pose = root / f"{name}.pose.json"  # folder-format landmarks (camera frame) -> the mesh's head frame
            src = MeshSource(name, p, _landmark_file(root / name), pose_path=pose if pose.is_file() else None)
        elif p.is_dir() and any((p / f"face_head{s}").is_file() for s in _MESH_SUFFIXES):
            mesh = next(p / f"face_head{s}" for s in _MESH_SUFFIXES if (p / f"face_head{s}").is_file())
            lm = _landmark_file(p / "face_head") or (p / "landmarks.json" if (p / "landmarks.json").is_file() else None)
            src = MeshSource(p.name, mesh, lm, pose_path=p / "pose.json")
        else:
            continue
        if src.name in out:
            raise InputFileError(p, f"a second mesh for {src.name!r} (also {out[src.name].mesh_path.name})")
        out[src.name] = src
    if not out:
        raise InputFileError(root, "no meshes: expected NAME.obj|ply or NAME/face_head.obj|ply "
                                   "(facerecon reconstruct writes face_head.* with --outputs all)")
    return out


@dataclass
class MeshPairs:
    """(prediction, ground truth) pairs in ground-truth order, and what did not pair."""

    pairs: list[tuple[MeshSource, MeshSource]]
    gt_names: list[str]  # every ground-truth sample (the denominator of the failure count)
    missing: list[str]  # ground truth without a prediction: failures
    unmatched: list[str]  # predictions without ground truth: ignored, reported


def pair_meshes(pred_dir: str | Path, gt_dir: str | Path) -> MeshPairs:
    pred, gt = collect_meshes(pred_dir), collect_meshes(gt_dir)
    mapping, unmatched = match_names(sorted(gt), sorted(pred), pred_dir)
    pairs = [(pred[mapping[n]], gt[n]) for n in sorted(gt) if n in mapping]
    return MeshPairs(pairs, sorted(gt), [n for n in sorted(gt) if n not in mapping], unmatched)


def read_landmarks_file(path: str | Path, pose_path: Path | None = None) -> np.ndarray:
    """(L, 3) landmark points from ``.landmarks.json`` / ``landmarks.json`` / ``.lmk.txt``.

    Camera-frame files (facerecon's ``landmarks_3d_mm_camera``, or ``"frame": "camera"``) are
    brought to the head frame of the mesh beside them with the pose in ``pose_path``.
    """
    p = Path(path)
    if p.suffix.lower() == ".json":
        d = read_json(p)
        camera = isinstance(d, dict) and ("landmarks_3d_mm_camera" in d or d.get("frame") == "camera")
        pts = d.get("landmarks_mm", d.get("landmarks_3d_mm_camera", d.get("landmarks"))) if isinstance(d, dict) else d
    else:
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputFileError(p, f"cannot read: {exc}") from None
        camera = False
        try:
            rows = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
            pts = [[float(x) for x in ln.replace(",", " ").split()] for ln in rows]
        except ValueError:
            raise InputFileError(p, "landmark rows must be 'x y z' numbers") from None
    try:
        a = np.asarray(pts, dtype=np.float64)
    except (TypeError, ValueError):
        a = np.zeros(0)
    if a.ndim != 2 or a.shape[1] != 3 or a.shape[0] < 3 or not np.isfinite(a).all():
        raise InputFileError(p, f"landmarks must be >= 3 finite [x, y, z] points in mm, got shape {a.shape}")
    if camera:
        if pose_path is None or not pose_path.is_file():
            raise InputFileError(p, "camera-frame landmarks and no pose.json beside them to reach the head frame")
        pose = parse_pose(read_json(pose_path), pose_path)
        if pose.t_mm is None:
            raise InputFileError(pose_path, "pose has no translation; cannot bring the landmarks to the head frame")
        a = (a - pose.t_mm) @ pose.R
    return a


# -- a pair ready for compare_meshes ------------------------------------------------------------
@dataclass
class ShapeSide:
    """One mesh prepared for :func:`~facerecon.metrics.shape.compare_meshes`."""

    vertices: np.ndarray
    faces: np.ndarray
    landmarks: np.ndarray  # (L, 3) points
    mask: np.ndarray | None  # evaluation region (ICT meshes), else None


def _common_landmarks(a: np.ndarray, b: np.ndarray, pa: Path, pb: Path) -> tuple[np.ndarray, np.ndarray]:
    """Same points on both sides; the 68 iBUG points shrink to the 9 or 7 the other side has."""

    def sub(x: np.ndarray, n: int) -> np.ndarray:
        return x[list(ALIGNMENT_LANDMARKS_9 if n == 9 else ALIGNMENT_LANDMARKS_7)]

    if len(a) == len(b):
        return (sub(a, 9), sub(b, 9)) if len(a) == 68 else (a, b)
    if len(a) == 68 and len(b) in (7, 9):
        return sub(a, len(b)), b
    if len(b) == 68 and len(a) in (7, 9):
        return a, sub(b, len(a))
    raise InputFileError(pa, f"{len(a)} landmarks, but {pb} has {len(b)}: give the same points on both sides")


def prepare_pair(pred: MeshSource, gt: MeshSource, mode: str = "auto", model=None) -> tuple[ShapeSide, ShapeSide, str]:
    """Read both meshes and their landmarks for ``mode`` (auto | ict | files; module doc).

    ``model`` is the :class:`~facerecon.facemodel.FaceModel` (None: no ICT detection).
    Returns (pred, gt, description of the landmarks used).
    """

    if mode not in LANDMARK_MODES:
        raise ValueError(f"landmark mode must be one of {LANDMARK_MODES}, got {mode!r}")
    meshes = [read_mesh(s.mesh_path) for s in (pred, gt)]
    n_ict = None if model is None else model.n_vertices
    is_ict = [m.n_vertices == n_ict for m in meshes]
    if mode == "ict":
        for src, m, ok in zip((pred, gt), meshes, is_ict):
            if not ok:
                raise InputFileError(src.mesh_path, f"{m.n_vertices} vertices, not the ICT-FaceKit topology ({n_ict}); "
                                     "use --landmarks files")  # fmt: skip
    region = model.region_mask(EVAL_REGION) if model is not None and any(is_ict) else None
    masks = [region if ok else None for ok in is_ict]
    if mode != "files" and all(is_ict):
        idx = model.alignment_landmarks
        sides = [ShapeSide(m.vertices, m.faces, m.vertices[idx], k) for m, k in zip(meshes, masks)]
        return sides[0], sides[1], f"ict ({len(idx)} model vertices)"
    lms = []
    for src, m, ok in zip((pred, gt), meshes, is_ict):
        lm = src.landmarks()
        if lm is None and ok and mode == "auto":
            lm = m.vertices[model.landmarks_68]
        if lm is None:
            raise InputFileError(src.mesh_path, "no landmarks: put NAME.landmarks.json or NAME.lmk.txt beside the mesh "
                                 "(or use --landmarks ict for ICT-topology meshes)")  # fmt: skip
        lms.append(lm)
    a, b = _common_landmarks(lms[0], lms[1], pred.landmark_path or pred.mesh_path, gt.landmark_path or gt.mesh_path)
    sides = [ShapeSide(m.vertices, m.faces, lm, k) for m, lm, k in zip(meshes, (a, b), masks)]
    return sides[0], sides[1], f"files ({len(a)} points)"
