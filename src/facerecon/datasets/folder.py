"""A plain folder format for labelled (or unlabelled) depth frames.

Why: evaluation and training need depth + camera + pose (+ optionally the true mesh and
landmarks) for many frames, from the synthetic generator, from converted public datasets
(Biwi) or from a user's own captures.  One documented folder layout that any tool can
write (PNG + JSON) lets all of them feed the same evaluation code.

Layout (``DIR`` is the dataset folder; ``NAME`` matches ``[A-Za-z0-9][A-Za-z0-9_-]*``)::

    DIR/manifest.json          required
    DIR/NAME.depth.png         16-bit greyscale PNG, integer millimetres, 0 = no measurement
      or DIR/NAME.depth.npz    key ``depth_mm``: float32 (H, W) millimetres (sub-mm precision)
    DIR/NAME.pose.json         optional: head pose label
    DIR/NAME.camera.json       optional: this frame's intrinsics (overrides the manifest's)
    DIR/NAME.mesh.ply|.obj     optional: ground-truth head/face mesh, mm, HEAD frame
    DIR/NAME.landmarks.json    optional: 3D landmarks, mm, CAMERA frame

A sample exists when its depth file exists; writers write the depth file last (each file
atomically), so an interrupted export never leaves a sample with missing parts.

``manifest.json``::

    {"format": "facerecon-depth-folder", "version": 1, "unit": "mm",
     "description": "free text: where the data come from",
     "intrinsics": {"fx": .., "fy": .., "cx": .., "cy": .., "width": .., "height": ..} or null,
     "euler_convention": "...", "mesh_frame": "head", "landmark_order": "ibug68", ...}

``NAME.pose.json`` (a head-frame point v maps to the camera frame as ``R v + t``; camera
frame x right, y down, z forward, see :mod:`facerecon.geometry.rotations`)::

    {"R": [[..],[..],[..]], "t_mm": [x, y, z],
     "quaternion_wxyz": [w, x, y, z],
     "euler_deg": {"yaw": .., "pitch": .., "roll": ..},   # R = Ry(yaw) Rx(pitch) Rz(roll)
     "mesh": "meshes/01.obj"}                            # optional shared head-frame mesh

Any one of ``R``, ``quaternion_wxyz``, ``euler_deg`` is enough (in that order of
preference); when several are given they must agree to 0.05 degrees.  ``t_mm`` is
required.  ``mesh`` names a mesh relative to ``DIR`` shared by many frames (e.g. one
per Biwi subject); ``NAME.mesh.*`` wins when both exist.  Other keys are kept in
:attr:`FolderSample.extra` (e.g. expression weights of a synthetic sample).

``NAME.landmarks.json``: ``{"landmarks_mm": [[x, y, z], ...], "order": "ibug68"}`` (68
iBUG points, 0-based) or a bare list of points.  ``NAME.camera.json``: the intrinsics dict.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .. import __version__
from ..errors import InputFileError
from ..fileutil import atomic_path, read_json, write_text_atomic
from ..geometry.camera import Intrinsics
from ..geometry.pose import EULER_CONVENTION, HeadPose
from ..geometry.rotations import euler_to_matrix, geodesic_distance_deg, quat_to_matrix
from ..io.frame import DepthFrame
from ..io.images import read_depth_npz, read_depth_png, write_depth_npz, write_depth_png
from ..io.mesh import write_mesh

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "HeadPose", "FolderSample", "FolderDataset", "FolderWriter"]

FORMAT_NAME = "facerecon-depth-folder"
FORMAT_VERSION = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_AGREE_DEG = 0.05
_OPTIONAL = (".pose.json", ".camera.json", ".mesh.ply", ".mesh.obj", ".landmarks.json")


def pose_from_json(d: dict, path: str | Path = "<pose>") -> HeadPose:
    """Parse and validate a ``NAME.pose.json`` dict (see the module doc); errors name ``path``."""
    mats: list[tuple[str, np.ndarray]] = []
    try:
        if "R" in d:
            r = np.asarray(d["R"], dtype=np.float64)
            if r.shape != (3, 3):
                raise InputFileError(path, f"pose 'R' must be 3x3, got shape {r.shape}")
            if not np.allclose(r @ r.T, np.eye(3), atol=1e-4) or np.linalg.det(r) <= 0:
                raise InputFileError(path, "pose 'R' is not a rotation matrix (orthonormal, det +1)")
            mats.append(("R", r))
        if "quaternion_wxyz" in d:
            q = np.asarray(d["quaternion_wxyz"], dtype=np.float64)
            if q.shape != (4,) or not np.isfinite(q).all() or np.linalg.norm(q) < 1e-6:
                raise InputFileError(path, "pose 'quaternion_wxyz' must be 4 finite numbers, not all zero")
            mats.append(("quaternion_wxyz", quat_to_matrix(q)))
        if "euler_deg" in d:
            e = d["euler_deg"]
            mats.append(("euler_deg", euler_to_matrix(float(e["yaw"]), float(e["pitch"]), float(e["roll"]))))
        if "t_mm" not in d:
            raise InputFileError(path, "pose has no 't_mm' (head position in mm, camera frame)")
        t = np.asarray(d["t_mm"], dtype=np.float64)
    except (TypeError, ValueError, KeyError) as exc:
        raise InputFileError(path, f"malformed pose ({exc})") from None
    if not mats:
        raise InputFileError(path, "pose needs one of 'R', 'quaternion_wxyz', 'euler_deg'")
    if t.shape != (3,) or not np.isfinite(t).all():
        raise InputFileError(path, f"pose 't_mm' must be 3 finite numbers, got {d['t_mm']!r}")
    name0, r0 = mats[0]
    for name, r in mats[1:]:
        err = float(geodesic_distance_deg(r0, r))
        if err > _AGREE_DEG:
            raise InputFileError(path, f"pose '{name}' disagrees with '{name0}' by {err:.3f} degrees")
    return HeadPose(r0, t)


@dataclass
class FolderSample:
    """One frame of a folder dataset.

    ``frame.intrinsics`` is always set (manifest or per-frame); ``mesh_path`` points to a
    mesh in the head frame (apply ``pose`` to get camera coordinates); ``landmarks_mm``
    are camera-frame points (68 iBUG by convention).
    """

    name: str
    frame: DepthFrame
    pose: HeadPose | None = None
    mesh_path: Path | None = None
    landmarks_mm: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _intrinsics(d: Any, path: Path) -> Intrinsics:
    try:
        k = Intrinsics.from_dict(d)
    except (TypeError, KeyError, ValueError) as exc:
        raise InputFileError(path, f"intrinsics need fx, fy, cx, cy, width, height ({exc})") from None
    if not (k.fx > 0 and k.fy > 0 and k.width > 0 and k.height > 0):
        raise InputFileError(path, "intrinsics: focal lengths and image size must be positive")
    return k


def _read_depth(path: Path) -> np.ndarray:
    """The sample's depth in mm through the project's readers (the folder format is always mm)."""
    reader = read_depth_png if path.suffix == ".png" else read_depth_npz
    return reader(path, unit="mm").depth_mm.astype(np.float32)


class FolderDataset:
    """Reader: ``for sample in FolderDataset(dir)``; ``ds[i]`` or ``ds["NAME"]``; ``len(ds)``.

    Samples are loaded on access (a dataset can hold many thousand frames).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        mpath = self.root / "manifest.json"
        if not mpath.is_file():
            raise InputFileError(mpath, f"no such file: {self.root} is not a {FORMAT_NAME} folder")
        m = read_json(mpath)
        if not isinstance(m, dict) or m.get("format") != FORMAT_NAME:
            raise InputFileError(mpath, f"not a {FORMAT_NAME} manifest (format={m.get('format') if isinstance(m, dict) else None!r})")
        if int(m.get("version", 0)) > FORMAT_VERSION:
            raise InputFileError(mpath, f"format version {m['version']} is newer than this reader ({FORMAT_VERSION})")
        if m.get("unit", "mm") != "mm":
            raise InputFileError(mpath, f"unit must be 'mm', got {m.get('unit')!r}")
        self.manifest: dict = m
        self.description: str = str(m.get("description", ""))
        self.intrinsics: Intrinsics | None = None if m.get("intrinsics") is None else _intrinsics(m["intrinsics"], mpath)
        names: dict[str, Path] = {}
        for p in sorted(self.root.iterdir()):
            for suf in (".depth.png", ".depth.npz"):
                if p.name.endswith(suf) and not p.name.startswith("."):
                    n = p.name[: -len(suf)]
                    if n in names:
                        raise InputFileError(p, f"sample {n!r} has both a .depth.png and a .depth.npz")
                    names[n] = p
        self._depth = names
        self.names: list[str] = sorted(names)

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[FolderSample]:
        for n in self.names:
            yield self.load(n)

    def __getitem__(self, key: int | str) -> FolderSample:
        return self.load(self.names[key] if isinstance(key, int) else key)

    def load(self, name: str) -> FolderSample:
        if name not in self._depth:
            raise KeyError(f"{self.root}: no sample {name!r}")
        dpath = self._depth[name]
        depth = _read_depth(dpath)
        base = self.root / name
        cam = Path(f"{base}.camera.json")
        intr = _intrinsics(read_json(cam), cam) if cam.is_file() else self.intrinsics
        if intr is None:
            raise InputFileError(dpath, "no intrinsics: neither the manifest nor NAME.camera.json gives them")
        if (intr.width, intr.height) != (depth.shape[1], depth.shape[0]):
            raise InputFileError(dpath, f"depth is {depth.shape[1]}x{depth.shape[0]}, intrinsics are {intr.width}x{intr.height}")
        pose, extra, mesh = None, {}, None
        ppath = Path(f"{base}.pose.json")
        if ppath.is_file():
            d = read_json(ppath)
            if not isinstance(d, dict):
                raise InputFileError(ppath, "pose file must hold a JSON object")
            pose = pose_from_json(d, ppath)
            extra = {k: v for k, v in d.items() if k not in ("R", "t_mm", "quaternion_wxyz", "euler_deg", "euler_convention", "mesh")}
            if d.get("mesh"):
                mesh = (self.root / str(d["mesh"])).resolve()
                if self.root.resolve() not in mesh.parents or not mesh.is_file():
                    raise InputFileError(ppath, f"'mesh' {d['mesh']!r} is not a file inside {self.root}")
        for suf in (".mesh.ply", ".mesh.obj"):
            if Path(f"{base}{suf}").is_file():
                mesh = Path(f"{base}{suf}")
                break
        lm = None
        lpath = Path(f"{base}.landmarks.json")
        if lpath.is_file():
            d = read_json(lpath)
            pts = d.get("landmarks_mm") if isinstance(d, dict) else d
            try:
                lm = np.asarray(pts, dtype=np.float64)
            except (TypeError, ValueError):
                lm = np.zeros(0)
            if lm.ndim != 2 or lm.shape[1] != 3 or not np.isfinite(lm).all():
                raise InputFileError(lpath, f"landmarks must be a list of [x, y, z] points in mm, got shape {lm.shape}")
        frame = DepthFrame(depth, intr, str(dpath), None, {"format": FORMAT_NAME, "unit": "mm"})
        if pose is not None:
            frame.meta["pose"] = (pose.R, pose.t_mm)
        return FolderSample(name, frame, pose, mesh, lm, extra)


def _jsonable(o: Any) -> Any:
    """NumPy scalars/arrays in ``extra`` -> plain JSON values."""
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


class FolderWriter:
    """Writer (context manager).  Every file is written atomically, the depth file last.

    Args:
        root: dataset folder (created).
        intrinsics: default intrinsics stored in the manifest (frames may override).
        description: free text for the manifest (source, generator settings, licence).
        depth_format: ``png`` (16-bit integer mm; values rounded, max 65535) or ``npz``
            (float32 mm, keeps sub-millimetre depth of rendered data).
        exist_ok: allow writing into a folder that already has a manifest (it is rewritten).
        manifest_extra: more keys for the manifest (e.g. generator seed).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        intrinsics: Intrinsics | None = None,
        description: str = "",
        depth_format: str = "png",
        exist_ok: bool = False,
        manifest_extra: dict | None = None,
    ):
        if depth_format not in ("png", "npz"):
            raise ValueError(f"depth_format must be 'png' or 'npz', got {depth_format!r}")
        self.root = Path(root)
        self.depth_format = depth_format
        self.intrinsics = intrinsics
        mpath = self.root / "manifest.json"
        if mpath.exists() and not exist_ok:
            raise FileExistsError(f"{mpath} exists (pass exist_ok=True to add to that dataset)")

        manifest = {
            "format": FORMAT_NAME, "version": FORMAT_VERSION, "unit": "mm", "description": description,
            "intrinsics": None if intrinsics is None else intrinsics.to_dict(),
            "euler_convention": EULER_CONVENTION, "mesh_frame": "head", "landmark_order": "ibug68",
            "created_by": f"facerecon {__version__}", **(manifest_extra or {}),
        }  # fmt: skip
        self.root.mkdir(parents=True, exist_ok=True)
        write_text_atomic(mpath, json.dumps(manifest, indent=2) + "\n")
        self.count = 0

    def __enter__(self) -> "FolderWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_shared_mesh(self, rel_path: str, mesh: str | Path | tuple[np.ndarray, np.ndarray]) -> str:
        """Store a mesh (head frame, mm) once under ``root/rel_path``; returns the reference
        to pass as ``mesh_ref`` to :meth:`write`."""
        self._write_mesh(self.root / rel_path, mesh)
        return Path(rel_path).as_posix()

    @staticmethod
    def _write_mesh(dst: Path, mesh: str | Path | tuple[np.ndarray, np.ndarray]) -> None:
        if isinstance(mesh, (str, Path)):
            if Path(mesh).suffix.lower() != dst.suffix.lower():
                raise ValueError(f"mesh {mesh} and destination {dst.name} have different formats")
            with atomic_path(dst) as tmp:
                shutil.copyfile(mesh, tmp)
            return

        v, f = mesh
        write_mesh(dst, np.asarray(v, dtype=np.float64), np.asarray(f, dtype=np.int64))

    def write(
        self,
        name: str,
        depth: np.ndarray | DepthFrame,
        *,
        pose: HeadPose | tuple[np.ndarray, np.ndarray] | None = None,
        intrinsics: Intrinsics | None = None,
        mesh: str | Path | tuple[np.ndarray, np.ndarray] | None = None,
        mesh_ref: str | None = None,
        landmarks_mm: np.ndarray | None = None,
        extra: dict | None = None,
    ) -> None:
        """Write one sample.  ``depth`` in mm (or a DepthFrame, whose intrinsics are used
        when they differ from the manifest's).  ``mesh``: a .ply/.obj path to copy or
        ``(vertices, faces)`` (written as PLY); ``mesh_ref``: a shared mesh from
        :meth:`add_shared_mesh` (needs ``pose``).  ``extra``: JSON-able keys stored in the
        pose file."""
        if not _NAME_RE.match(name):
            raise ValueError(f"sample name {name!r} must match {_NAME_RE.pattern}")
        if isinstance(depth, DepthFrame):
            intrinsics = intrinsics or depth.intrinsics
            depth = depth.depth_mm
        d = np.asarray(depth, dtype=np.float64)
        if d.ndim != 2:
            raise ValueError(f"depth must be 2-D, got shape {d.shape}")
        d = np.where(np.isfinite(d) & (d > 0), d, 0.0)
        k = intrinsics or self.intrinsics
        if k is None:
            raise ValueError("no intrinsics: give them to the writer or to write()")
        if (k.width, k.height) != (d.shape[1], d.shape[0]):
            raise ValueError(f"depth is {d.shape[1]}x{d.shape[0]}, intrinsics are {k.width}x{k.height}")
        if (pose is None) and (mesh_ref is not None or extra):
            raise ValueError("mesh_ref and extra are stored in the pose file: give a pose")
        base = self.root / name
        for suf in _OPTIONAL + (".depth.png", ".depth.npz"):  # drop parts of an older sample
            Path(f"{base}{suf}").unlink(missing_ok=True)
        if k != self.intrinsics:
            write_text_atomic(f"{base}.camera.json", json.dumps(k.to_dict(), indent=2) + "\n")
        if mesh is not None:
            suf = Path(mesh).suffix.lower() if isinstance(mesh, (str, Path)) else ".ply"
            if suf not in (".ply", ".obj"):
                raise ValueError(f"mesh must be .ply or .obj, got {mesh}")
            self._write_mesh(Path(f"{base}.mesh{suf}"), mesh)
        if landmarks_mm is not None:
            lm = np.asarray(landmarks_mm, dtype=np.float64)
            if lm.ndim != 2 or lm.shape[1] != 3:
                raise ValueError(f"landmarks must be (L, 3), got shape {lm.shape}")
            doc = {"landmarks_mm": lm.round(6).tolist(), "order": "ibug68" if lm.shape[0] == 68 else "custom", "frame": "camera"}
            write_text_atomic(f"{base}.landmarks.json", json.dumps(doc) + "\n")
        if pose is not None:
            hp = pose if isinstance(pose, HeadPose) else HeadPose(np.asarray(pose[0], float), np.asarray(pose[1], float))
            doc = {**hp.to_json(), **({"mesh": mesh_ref} if mesh_ref else {}), **(extra or {})}
            write_text_atomic(f"{base}.pose.json", json.dumps(doc, indent=1, default=_jsonable) + "\n")

        if self.depth_format == "png":
            if d.max(initial=0) > 65535.4:
                raise ValueError(f"depth {d.max():.0f} mm does not fit a 16-bit PNG; use depth_format='npz'")
            write_depth_png(f"{base}.depth.png", d)
        else:
            write_depth_npz(f"{base}.depth.npz", d, depth_key="depth_mm")
        self.count += 1
