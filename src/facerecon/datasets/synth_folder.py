"""Synthetic frames written in the documented folder format (``facerecon synth --format folder``).

It lives here, above :mod:`facerecon.synth` (which must not import the folder format),
and drives the generator from the outside.

Per sample ``NNNNNN`` (the sample index; see :mod:`facerecon.datasets.folder`)::

    NNNNNN.depth.npz | .depth.png   sensor depth (npz: float32 mm; png: 16-bit integer mm)
    NNNNNN.pose.json                R, t_mm, quaternion_wxyz, euler_deg + in the same object
                                    the labels: identity (100) and expression (55) weights,
                                    expression_name, landmarks_2d_px, landmarks_visible,
                                    image_roll_deg, preset, sensor, seed, index
    NNNNNN.landmarks.json           the 68 iBUG landmarks, 3D, camera frame (mm)
    NNNNNN.mesh.obj                 with ``meshes=True``: the ground-truth head mesh, head
                                    frame, full ICT-FaceKit topology (26,719 vertices, UVs)
    NNNNNN.camera.json              only when a frame's intrinsics differ from the manifest's

Sample ``i`` depends on ``(seed, i)`` only (as in the shard format), so the frames equal
those of ``facerecon synth`` with the same preset, sensor and seed.  Re-running the same
command resumes: a sample whose depth file exists (written last) is kept.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ConfigError
from ..facemodel.model import FaceModel
from ..geometry.pose import HeadPose
from ..io.mesh import write_mesh
from ..synth.generator import SynthGenerator
from ..synth.labels import gt_vertices, rotation_of
from ..synth.presets import load_preset
from ..synth.sensors import load_sensor
from .folder import FolderWriter

__all__ = ["export_folder", "sample_name"]


def sample_name(index: int) -> str:
    return f"{index:06d}"


def _extra(labels: dict) -> dict:
    keep = ("identity", "expression", "expression_name", "image_roll_deg", "preset", "sensor", "seed", "index")
    out = {k: labels[k] for k in keep if k in labels}
    out["landmarks_2d_px"] = np.round(np.asarray(labels["landmarks_2d"], np.float64), 3)
    out["landmarks_visible"] = [bool(v) for v in labels["landmarks_visible"]]
    return out


def export_folder(
    out_dir: str | Path,
    preset: str = "biwi",
    sensor: str | None = None,
    n: int = 100,
    seed: int = 0,
    meshes: bool = False,
    depth_format: str = "npz",
    progress: Callable[[int, int], None] | None = None,
    preset_file: str | None = None,
    sensor_file: str | None = None,
) -> int:
    """Generate samples ``0 .. n-1`` into a folder dataset; returns how many were written now."""
    if n < 1:
        raise ConfigError("--n must be positive")
    if depth_format not in ("npz", "png"):
        raise ConfigError(f"--depth-format must be npz or png, got {depth_format!r}")
    out = Path(out_dir)
    p = load_preset(preset, preset_file)
    s = load_sensor(sensor or p.get("sensor", "ideal"), sensor_file)
    model = FaceModel.load()
    gen = SynthGenerator(p, s, seed, model=model)
    ident = {"synth_preset": p.name, "synth_sensor": s.name, "synth_seed": int(seed), "synth_depth_format": depth_format}
    mpath = out / "manifest.json"
    if mpath.is_file():  # resuming: only into the same dataset, never mixing two
        try:
            old = json.loads(mpath.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        if any(old.get(k) != v for k, v in ident.items()):
            raise ConfigError(f"{out} holds another dataset (preset/sensor/seed/depth format differ); use another folder")
    desc = (f"facerecon synthetic frames: preset {p.name}, sensor {s.name}, seed {seed}; exact labels from the "
            "generator (ICT-FaceKit Light, MIT)")  # fmt: skip
    writer = FolderWriter(out, intrinsics=gen.frame_params(0).intrinsics, description=desc, depth_format=depth_format,
                          exist_ok=True, manifest_extra={**ident, "n": int(n)})  # fmt: skip
    polys, polys_uv = model.polygon_lists()
    done = written = 0
    with tempfile.TemporaryDirectory(prefix="facerecon-synth-") as tmp:
        mesh_tmp = Path(tmp) / "mesh.obj"
        for i in range(n):
            name = sample_name(i)
            if not (out / f"{name}.depth.{depth_format}").is_file():
                smp = gen.generate(i)
                lab = smp.labels
                mesh = None
                if meshes:  # full topology, so `facerecon eval shape --landmarks ict` works on it
                    write_mesh(mesh_tmp, gt_vertices(model, lab, frame="head"), polys, model.uv, polys_uv,
                               header=f"facerecon synth {p.name}/{s.name} seed {seed} sample {i}; ground truth; mm; head frame")
                    mesh = mesh_tmp
                writer.write(name, smp.depth_mm, pose=HeadPose(rotation_of(lab), lab["translation_mm"]),
                             intrinsics=smp.intrinsics, mesh=mesh, landmarks_mm=lab["landmarks_3d"], extra=_extra(lab))  # fmt: skip
                written += 1
            done += 1
            if progress:
                progress(done, n)
    return written
