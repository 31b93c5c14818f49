"""Hostile but valid frames: non-face objects and awkward heads, for the face / no-face ROC.

Every frame is a camera-frame scene rendered exactly (:func:`facerecon.geometry.raster.render_mesh`)
and passed through a sensor model (:mod:`facerecon.synth.sensors`), seeded.  Negatives
(``face = False``):

* ``sphere``: a ball of radius 60-110 mm (the audit's 90 mm ball among them);
* ``box``: a box of 120-320 mm sides at a random orientation;
* ``blob``: a random smooth closed surface (a sphere of head size with 4-8 Gaussian bumps
  and dents of its radius);
* ``plane_blobs``: a tilted plane with 3-6 Gaussian bumps / dents of 20-80 mm;
* ``back_of_head``: a synthetic head (hair, body, background of the preset) at an upright
  yaw of 150-210 degrees: the camera sees the back of the head.

Positives: :func:`head_frame` (a preset's frame, optionally with a yaw offset or the whole
scene rolled in the image, e.g. 180 degrees: an upside-down camera), and two heads in one
frame (:func:`two_heads_frame`).  Objects stand ``gap`` in front of a wall (60 % of frames) or
float; all at 600-1500 mm.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..geometry.camera import Intrinsics, camera_preset
from ..geometry.pose import HeadPose
from ..geometry.raster import render_mesh
from ..geometry.rotations import euler_to_matrix, matrix_to_euler
from ..io.frame import DepthFrame
from ..realdata import EVAL_POSE_KEY
from ..synth import meshes as M
from ..synth.generator import SynthGenerator, render_scene
from ..synth.presets import load_sensor
from ..synth.scene import build_scene
from ..synth.sensors import apply_sensor

NEGATIVE_KINDS = ("sphere", "box", "blob", "plane_blobs", "back_of_head")


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def _heightfield(half: float, n: int, height) -> M.Mesh:
    """A square (2 half) x (2 half) grid in the head-size plane z = height(x, y), normals towards -z."""
    xs = np.linspace(-half, half, n)
    x, y = np.meshgrid(xs, xs, indexing="xy")
    v = np.stack([x.ravel(), y.ravel(), height(x, y).ravel()], 1)
    t = M.grid_triangles(n, n, wrap=False)
    return v, t


def _bumps(rng: np.random.Generator, k: int, lo: float, hi: float, sig: tuple[float, float], spread: float):
    c = rng.uniform(-spread, spread, size=(k, 2))
    a = rng.uniform(lo, hi, size=k) * rng.choice([-1.0, 1.0], size=k)
    s = rng.uniform(*sig, size=k)
    return lambda x, y: sum(a[i] * np.exp(-((x - c[i, 0]) ** 2 + (y - c[i, 1]) ** 2) / (2 * s[i] ** 2)) for i in range(k))


def object_mesh(kind: str, rng: np.random.Generator, centre: np.ndarray) -> M.Mesh:
    """Camera-frame mesh of a non-face object (see module doc) centred at ``centre``."""
    if kind == "sphere":
        r = float(rng.uniform(60.0, 110.0))
        return M.ellipsoid(centre, (r, r, r), n_lat=24, n_lon=48)
    if kind == "box":
        size = rng.uniform(120.0, 320.0, size=3)
        return M.box(centre, size, _random_rotation(rng))
    if kind == "blob":
        v, t = M.unit_sphere(32, 64)
        r0 = float(rng.uniform(80.0, 110.0))
        k = int(rng.integers(4, 9))
        dirs = rng.normal(size=(k, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        amp = rng.uniform(0.1, 0.35, size=k) * rng.choice([-1.0, 1.0], size=k)
        width = rng.uniform(0.3, 0.8, size=k)
        cosang = v @ dirs.T
        scale = 1.0 + (amp * np.exp(-(1 - cosang) / width**2)).sum(1)
        radii = np.array([1.0, rng.uniform(1.0, 1.35), rng.uniform(0.85, 1.2)])
        return (v * scale[:, None] * r0 * radii) @ _random_rotation(rng).T + centre, t
    if kind == "plane_blobs":
        h = _bumps(rng, int(rng.integers(3, 7)), 20.0, 80.0, (30.0, 80.0), 200.0)
        v, t = _heightfield(400.0, 81, lambda x, y: -h(x, y))
        tilt = euler_to_matrix(float(rng.uniform(-35, 35)), float(rng.uniform(-35, 35)), float(rng.uniform(0, 360)))
        return v @ tilt.T + centre, t
    raise ValueError(f"unknown object kind {kind!r}; known: {', '.join(NEGATIVE_KINDS)}")


def _wall(z: float, intr: Intrinsics) -> M.Mesh:
    w = 3.0 * z * max(intr.width / intr.fx, intr.height / intr.fy)
    return M.quad(np.array([[-w, -w, z], [w, -w, z], [w, w, z], [-w, w, z]]), np.zeros(3))


def render_frame(meshes: list[M.Mesh], intr: Intrinsics, sensor: str, rng: np.random.Generator, source: str) -> DepthFrame:
    """Exact render of camera-frame meshes through a sensor model."""
    v, t = M.merge(meshes)
    depth = render_mesh(v, t, intr, barycentrics=False).depth
    out, _ = apply_sensor(load_sensor(sensor), depth, intr, rng)
    return DepthFrame(out, intr, source)


def negative_frame(kind: str, seed: int, sensor: str = "kinect-v1", camera: str = "kinect-v1", model=None,
                   preset: str = "biwi") -> DepthFrame:
    """One seeded non-face frame of ``kind`` (``NEGATIVE_KINDS``)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), NEGATIVE_KINDS.index(kind), 0x5A1D]))
    if kind == "back_of_head":
        gen = _generator(preset, sensor, seed, model)
        return head_frame(gen, int(rng.integers(0, 1 << 20)), yaw_deg=float(rng.uniform(150.0, 210.0)),
                          source=f"back of head #{seed}")
    intr = camera_preset(camera)
    z = float(rng.uniform(600.0, 1500.0))
    u, vv = rng.uniform(0.3, 0.7) * intr.width, rng.uniform(0.3, 0.7) * intr.height
    centre = np.array([(u - intr.cx) / intr.fx * z, (vv - intr.cy) / intr.fy * z, z])
    meshes = [object_mesh(kind, rng, centre)]
    if rng.random() < 0.6:
        meshes.append(_wall(z + float(rng.uniform(300.0, 1500.0)), intr))
    return render_frame(meshes, intr, sensor, rng, f"{kind} #{seed}")


_GENERATORS: dict = {}


def _generator(preset: str, sensor: str, seed: int, model=None):

    key = (preset, sensor)
    if key not in _GENERATORS:
        _GENERATORS[key] = SynthGenerator(preset, sensor, seed=0, model=model)
    return _GENERATORS[key]


def head_frame(gen, index: int, *, yaw_deg: float | None = None, image_roll_deg: float | None = None,
               source: str = "") -> DepthFrame:
    """Frame ``index`` of a :class:`~facerecon.synth.generator.SynthGenerator`, its head's upright
    yaw set to ``yaw_deg`` (180: seen from behind; the body turns with it) and/or the whole
    scene rolled in the image to ``image_roll_deg``.  ``meta['pose_for_eval_only']``: its ``HeadPose``."""

    p = gen.frame_params(index)
    rc_old = M.euler(0.0, 0.0, p.image_roll_deg)
    r_up, t_up = rc_old.T @ p.rotation, rc_old.T @ p.translation
    if yaw_deg is not None:
        yaw, pitch, roll = matrix_to_euler(r_up)
        yaw_offset_deg = float(yaw_deg) - float(yaw)
        r_up = euler_to_matrix(float(yaw_deg), pitch, roll)
        scene = dict(p.scene)
        if scene.get("body") is not None:
            scene["body"] = {**scene["body"], "yaw": scene["body"]["yaw"] + yaw_offset_deg}
        p = dataclasses.replace(p, scene=scene)
    roll = p.image_roll_deg if image_roll_deg is None else float(image_roll_deg)
    rc = M.euler(0.0, 0.0, roll)
    p = dataclasses.replace(p, rotation=rc @ r_up, translation=rc @ t_up, image_roll_deg=roll)
    vh = gen.head_vertices(p)
    scene = build_scene(gen.assets, vh, p)
    ideal, _, segment, cos, _ = render_scene(scene, p.intrinsics)
    depth, _ = apply_sensor(gen.sensor, ideal, p.intrinsics, gen.rng(index, 1), segment=segment, cos_view=cos)
    clip = p.scene.get("clip_beyond_head_mm")
    if clip is not None:
        depth[depth > p.translation[2] + clip] = 0.0
    fr = DepthFrame(depth, p.intrinsics, source or f"{gen.preset.name} #{index}")
    fr.meta[EVAL_POSE_KEY] = HeadPose(p.rotation.copy(), p.translation.copy())
    fr.meta["identity_for_eval_only"] = p.identity
    return fr


def two_heads_frame(gen, index: int, offset_mm: float = 420.0) -> DepthFrame:
    """Frame ``index`` with a second, shifted copy of the head and body (another person beside)."""
    a = head_frame(gen, index)
    b = head_frame(gen, index + 1)
    # the second person: frame index+1's scene shifted sideways, composed by the nearer depth
    intr = a.intrinsics
    shift = int(round(offset_mm * intr.fx / max(float(a.meta["pose_for_eval_only"].t_mm[2]), 1.0)))
    db = np.zeros_like(b.depth_mm)
    if shift < db.shape[1]:
        db[:, shift:] = b.depth_mm[:, : db.shape[1] - shift]
    da = a.depth_mm
    both = np.where((da > 0) & ((db == 0) | (da <= db)), da, db)
    return DepthFrame(both.astype(np.float32), intr, f"two heads #{index}", meta=dict(a.meta))
