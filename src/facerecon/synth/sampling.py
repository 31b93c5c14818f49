"""Draw everything random about one synthetic frame from a preset (all randomness lives here).

:func:`sample_frame` returns a :class:`FrameParams`: face weights, head pose, camera and
a plain-JSON ``scene`` dict that :mod:`facerecon.synth.scene` turns into meshes without
drawing anything itself.  Streams: the caller passes a Generator seeded from
``(seed, index, 0)``; the sensor model gets ``(seed, index, 1)``, so changing the sensor
keeps the scene.  The real-geometry options (:func:`sample_variants`: face-only crops,
no body, identities beyond 1 sigma, out-of-span shapes, scan identities) draw from
``(seed, index, 2)``, so presets without them give exactly the frames they always gave.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..geometry.camera import Intrinsics, camera_preset
from ..geometry.rotations import _rz, euler_to_matrix
from .deform import sample_deformation
from .presets import Preset
from .spec import chance, draw

# Hair, glasses, hands: the head-frame landmarks they are placed from (Multi-PIE indices).
HAND_TARGETS = (2, 4, 8, 12, 14, 48, 54, 57)


@dataclass
class FrameParams:
    """One frame's random draw (head pose includes the image roll)."""

    identity: np.ndarray  # (n_identity,) float32
    expression: np.ndarray  # (n_expression,) float32
    expression_name: str
    rotation: np.ndarray  # (3, 3) head frame -> camera frame
    translation: np.ndarray  # (3,) mm
    intrinsics: Intrinsics
    image_roll_deg: float
    scene: dict = field(default_factory=dict)
    deform: dict | None = None  # out-of-span displacement (facerecon.synth.deform), None = the model face
    identity_source: str = "model"  # "model" (identity weights) or "scan:NAME" (a real scan as identity)


def _unit(rng: np.random.Generator) -> list[float]:
    v = rng.normal(size=3)
    return (v / np.linalg.norm(v)).tolist()


def sample_expression(preset: Preset, names: list[str], rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A named expression (scaled by ``expression_strength``) plus a few sparse random ARKit weights."""
    choices = preset.get("expressions", ["neutral"])
    p = preset.get("expression_weights")
    p = None if p is None else np.asarray(p, np.float64) / np.sum(p)
    name = choices[int(rng.choice(len(choices), p=p))]
    strength = float(draw(preset.get("expression_strength", 1.0), rng))
    w = np.zeros(len(names), np.float32)
    for shape, value in preset.expressions[name].items():
        w[names.index(shape)] = value * strength
    n_random = int(draw(preset.get("random_arkit_count", 0), rng))
    n_arkit = sum(1 for n in names if not n.startswith("Pupil"))
    wmax = float(preset.get("random_arkit_max", 0.3))
    for _ in range(n_random):
        k = int(rng.integers(n_arkit))
        w[k] = np.float32(min(1.0, w[k] + rng.uniform(0, wmax)))
    return np.clip(w, 0.0, 1.0), name


def sample_camera(preset: Preset, rng: np.random.Generator) -> Intrinsics:
    k = camera_preset(preset.get("camera", "kinect-v1"))
    j = float(preset.get("focal_jitter", 0.0))
    s = 1.0 + (rng.uniform(-j, j) if j > 0 else 0.0)
    return Intrinsics(k.fx * s, k.fy * s, k.cx, k.cy, k.width, k.height)


def sample_pose(preset: Preset, k: Intrinsics, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float, dict]:
    """Head rotation/translation in the (rolled) camera frame, the image roll, and the upright Euler angles."""
    yaw = float(draw(preset.get("yaw_deg", 0.0), rng))
    pitch = float(draw(preset.get("pitch_deg", 0.0), rng))
    roll = float(draw(preset.get("roll_deg", 0.0), rng))
    img_roll = float(draw(preset.get("image_roll_deg", 0.0), rng))
    z = float(draw(preset.get("distance_mm", [700, 1200]), rng))
    fu = float(draw(preset.get("image_x", [0.4, 0.6]), rng))
    fv = float(draw(preset.get("image_y", [0.3, 0.5]), rng))
    u, v = fu * (k.width - 1), fv * (k.height - 1)
    t = np.array([(u - k.cx) / k.fx * z, (v - k.cy) / k.fy * z, z])
    rc = _rz(np.deg2rad(np.float64(img_roll)))
    r = rc @ euler_to_matrix(yaw, pitch, roll)
    return r, t, img_roll, {"yaw": yaw, "pitch": pitch, "roll": roll}


def _hair(rng: np.random.Generator) -> dict:
    long_hair = chance(0.3, rng)
    return {
        "thickness": float(rng.uniform(5, 28)),
        "top_extra": float(rng.uniform(0, 20)),
        "front_el": float(rng.uniform(32, 58)),
        "temple_el": float(rng.uniform(12, 38)),
        "ear_el": float(rng.uniform(-35, -10) if long_hair else rng.uniform(-8, 25)),
        "back_el": float(rng.uniform(-70, -40) if long_hair else rng.uniform(-40, -10)),
        "curtain": long_hair,
        "bumps": [[*_unit(rng), float(rng.uniform(1.0, 4.0)), float(rng.uniform(0, 6)), float(rng.uniform(0, 6.283))]
                  for _ in range(4)],
    }  # fmt: skip


def _background(sc: dict, head_z: float, rng: np.random.Generator) -> dict:
    out: dict = {}
    if chance(sc.get("wall", 0.9), rng):
        out["wall"] = {
            "z": head_z + float(draw(sc.get("wall_gap_mm", [500, 2500]), rng)),
            "tilt_x": float(draw(sc.get("wall_tilt_deg", 0.0), rng)),
            "tilt_y": float(draw(sc.get("wall_tilt_deg", 0.0), rng)) * 0.5,
        }
    far = out["wall"]["z"] if "wall" in out else head_z + 3000.0
    if chance(sc.get("floor", 0.3), rng):
        out["floor"] = {"y": float(rng.uniform(600, 1400)), "far": far + 2000.0}
    if chance(sc.get("side_wall", 0.2), rng):
        out["side_wall"] = {"x": float(rng.choice([-1, 1]) * rng.uniform(700, 2500)), "yaw": float(rng.uniform(-20, 20)),
                            "far": far + 2000.0}  # fmt: skip
    boxes = []
    for _ in range(int(draw(sc.get("boxes", 0), rng))):
        size = rng.uniform([250, 250, 250], [1200, 1500, 800])
        boxes.append({
            "centre": [float(rng.uniform(-1.2, 1.2) * far * 0.5), float(rng.uniform(-0.2, 0.6) * far * 0.5),
                       float(rng.uniform(head_z + 400, max(head_z + 450, far)))],
            "size": size.tolist(), "yaw": float(rng.uniform(-45, 45)),
        })  # fmt: skip
    out["boxes"] = boxes
    return out


def sample_scene(preset: Preset, euler_up: dict, head_z: float, rng: np.random.Generator) -> dict:
    """Body, hair, occluders and background parameters (plain JSON values)."""
    sc = preset.scene
    follow = float(draw(sc.get("body_yaw_follow", [0.3, 0.8]), rng))
    scene: dict = {
        "body": {
            "yaw": euler_up["yaw"] * follow + float(rng.normal(0, 8)),
            "pitch": float(rng.normal(3, 6)),
            "roll": float(rng.normal(0, 4)),
            "neck_len": float(rng.uniform(25, 60)),
            "shoulder_half": float(rng.uniform(165, 215)),
            "shoulder_r": float(rng.uniform(45, 62)),
            "chest_depth": float(rng.uniform(95, 135)),
            "neck_scale": float(rng.uniform(0.95, 1.1)),
        }
    }
    scene["hair"] = _hair(rng) if chance(sc.get("hair", 0.8), rng) else None
    scene["glasses"] = (
        {"forward": float(rng.uniform(10, 18)), "rx": float(rng.uniform(22, 28)), "ry": float(rng.uniform(14, 21)),
         "thick": float(rng.uniform(1.5, 3.5)), "drop": float(rng.uniform(-4, 4))}
        if chance(sc.get("glasses", 0.0), rng) else None
    )  # fmt: skip
    scene["hand"] = (
        {"target": int(rng.choice(HAND_TARGETS)), "gap": float(rng.uniform(5, 25)), "spin": float(rng.uniform(0, 360)),
         "curl": float(rng.uniform(0, 40)), "size": float(rng.uniform(0.85, 1.15)), "arm_dir": _unit(rng)}
        if chance(sc.get("hand", 0.0), rng) else None
    )  # fmt: skip
    scene["cap"] = (
        {"thickness": float(rng.uniform(8, 18)), "brim": float(rng.uniform(50, 85)), "tilt": float(rng.uniform(-10, 20)),
         "yaw": float(rng.normal(0, 10)) if chance(0.8, rng) else 180.0}
        if chance(sc.get("cap", 0.0), rng) else None
    )  # fmt: skip
    scene["chair"] = (
        {"width": float(rng.uniform(380, 520)), "height": float(rng.uniform(450, 750)), "gap": float(rng.uniform(0, 60)),
         "thick": float(rng.uniform(40, 90)), "top": float(rng.uniform(150, 350)), "headrest": chance(0.3, rng)}
        if chance(sc.get("chair", 0.0), rng) else None
    )  # fmt: skip
    scene["background"] = _background(sc, head_z, rng)
    scene["clip_beyond_head_mm"] = (
        float(draw(sc.get("clip_beyond_head_mm", [400, 900]), rng)) if chance(sc.get("clip_background", 0.0), rng) else None
    )
    return scene


def sample_frame(preset: Preset, expression_names: list[str], n_identity: int, rng: np.random.Generator) -> FrameParams:
    """Draw one frame's parameters from ``preset`` (deterministic for a given Generator state)."""
    k = sample_camera(preset, rng)
    scale = preset.get("identity_scale", 1.0)  # a spec (range, ...) is drawn by sample_variants from stream 2
    scale = float(scale) if isinstance(scale, (int, float)) else 1.0
    identity = (rng.standard_normal(n_identity) * scale).astype(np.float32)
    expression, name = sample_expression(preset, expression_names, rng)
    r, t, img_roll, euler_up = sample_pose(preset, k, rng)
    scene = sample_scene(preset, euler_up, float(t[2]), rng)
    scene["euler_upright"] = euler_up
    return FrameParams(identity, expression, name, r, t, k, img_roll, scene)


#: Face-only crop defaults (head-frame neutral mm: y down, x to the subject's left, z into the head).
CROP_DEFAULTS = {"crop_top_mm": [-115.0, -55.0], "crop_bottom_mm": [70.0, 140.0], "crop_side_mm": [50.0, 95.0],
                 "crop_back_mm": [-70.0, 20.0], "crop_roundness": [2.0, 8.0]}  # fmt: skip


def sample_crop(sc: dict, rng: np.random.Generator) -> dict:
    """A face-only crop boundary: forehead (top), chin/throat (bottom), each side (ears), depth (back)
    and how box-like the outline is (superellipse exponent); see :func:`facerecon.synth.scene.crop_mask`."""
    g = lambda k: float(draw(sc.get(k, CROP_DEFAULTS[k]), rng))  # noqa: E731
    crop = {"top": g("crop_top_mm"), "bottom": g("crop_bottom_mm"), "left": g("crop_side_mm"), "right": g("crop_side_mm"),
            "back": g("crop_back_mm"), "roundness": g("crop_roundness")}  # fmt: skip
    # drawn only when the preset names it, so presets without it keep their exact frames
    if "crop_whole_head" in sc:
        crop["whole_head"] = chance(sc["crop_whole_head"], rng)
    return crop


def sample_variants(
    preset: Preset,
    params: FrameParams,
    rng: np.random.Generator,
    anchors: np.ndarray,
    landmarks: np.ndarray,
    scan_names: tuple[str, ...] = (),
) -> FrameParams:
    """Apply the preset's real-geometry options to ``params`` (in place; returns it), drawing from ``rng``
    (the frame's stream 2).

    * ``identity_scale`` as a spec: identity weights scaled beyond 1 sigma;
    * ``[scene] body``: chance of neck + torso (else the head ends at the neck cut);
    * ``[scene] face_only``: chance that only the ICT face region exists, cut at a random boundary
      (:func:`sample_crop`), with no hair, body, occluders, and a background only with
      ``face_only_background``;
    * ``[shape]``: out-of-span deformation (:func:`facerecon.synth.deform.sample_deformation`) and,
      when the generator has scans, ``scan_identity``: chance that a scan replaces the model identity.
    """
    sc, sh = preset.scene, preset.shape
    spec = preset.get("identity_scale", 1.0)
    if not isinstance(spec, (int, float)):
        params.identity = (params.identity * np.float32(draw(spec, rng))).astype(np.float32)
    scene = params.scene
    if not chance(sc.get("body", 1.0), rng):
        scene["body"] = None
        scene["chair"] = None
    if chance(sc.get("face_only", 0.0), rng):
        scene["face_only"] = sample_crop(sc, rng)
        for k in ("hair", "glasses", "hand", "cap", "body", "chair"):
            scene[k] = None
        if not chance(sc.get("face_only_background", 0.0), rng):
            scene["background"] = {"boxes": []}
    params.deform = sample_deformation(sh, anchors, landmarks, rng)
    if scan_names and chance(sh.get("scan_identity", 0.0), rng):
        params.identity_source = "scan:" + scan_names[int(rng.integers(len(scan_names)))]
        params.identity = np.zeros_like(params.identity)
    return params
