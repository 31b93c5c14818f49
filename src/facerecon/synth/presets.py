"""Synthetic-data presets: loaded from TOML data, never code branches.

``configs/synth_presets.toml`` holds the named expressions and the presets
(``facewarehouse``, ``biwi``, ``ict3dhp``, ``truedepth``, and the real-geometry variants
``*-faces``); a user file can replace it (``load_preset(name, path)``).  A preset may
start from another (``base = "biwi"``: its tables are merged key by key).  Every key is
checked against :data:`PRESET_KEYS` / :data:`SCENE_KEYS` / :data:`SHAPE_KEYS`: a
mistyped one is an error naming the nearest valid key.  Sensor models live in
:mod:`.sensors` (``load_sensor``, re-exported here).

Per-frame random values are written in a small spec language (see :func:`draw`).
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .sensors import SensorModel, load_sensor, sensor_names
from ..settings import check_keys
from .spec import chance, draw, read_toml

# draw/chance and the sensor loaders are re-exported: callers load every synthetic config from here
__all__ = ["Preset", "PRESET_KEYS", "SCENE_KEYS", "SHAPE_KEYS", "load_preset", "preset_names", "named_expressions",
           "expand_expression", "draw", "chance", "load_sensor", "sensor_names", "SensorModel"]  # fmt: skip

#: Keys of a ``[presets.NAME]`` table (see the comments in ``configs/synth_presets.toml``).
PRESET_KEYS = frozenset({
    "description", "base", "camera", "sensor", "focal_jitter", "identity_scale", "expressions", "expression_weights",
    "expression_strength", "random_arkit_count", "random_arkit_max", "yaw_deg", "pitch_deg", "roll_deg",
    "image_roll_deg", "distance_mm", "image_x", "image_y", "scene", "shape",
})  # fmt: skip
#: Keys of ``[presets.NAME.scene]``: what surrounds the face (probabilities and specs).
SCENE_KEYS = frozenset({
    "hair", "body", "body_yaw_follow", "glasses", "hand", "cap", "chair", "wall", "wall_gap_mm", "wall_tilt_deg",
    "floor", "side_wall", "boxes", "clip_background", "clip_beyond_head_mm",
    "face_only", "face_only_background", "crop_whole_head", "crop_top_mm", "crop_bottom_mm", "crop_side_mm", "crop_back_mm",
    "crop_roundness",
})  # fmt: skip
#: Keys of ``[presets.NAME.shape]``: faces outside the model's span (see :mod:`.deform`).
SHAPE_KEYS = frozenset({
    "deform", "deform_count", "deform_amplitude_mm", "deform_radius_mm", "region_scale", "region_scale_sd",
    "asymmetry", "asymmetry_mm", "scan_identity",
})  # fmt: skip


@dataclass(frozen=True)
class Preset:
    name: str
    table: dict  # the preset's TOML table (values are specs)
    expressions: dict  # named expression -> {arkit name: weight} (already expanded to _L/_R)

    def get(self, key: str, default: Any = None) -> Any:
        return self.table.get(key, default)

    @property
    def scene(self) -> dict:
        return self.table.get("scene", {})

    @property
    def shape(self) -> dict:
        return self.table.get("shape", {})

    def to_dict(self) -> dict:
        return {"name": self.name, "table": copy.deepcopy(self.table), "expressions": copy.deepcopy(self.expressions)}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def expand_expression(weights: dict) -> dict[str, float]:
    """``{"mouthSmile": 0.8}`` -> ``{"mouthSmile_L": 0.8, "mouthSmile_R": 0.8}`` for the shapes ICT has per side."""
    out: dict[str, float] = {}
    for name, w in weights.items():
        if name in _SIDED:
            out[f"{name}_L"] = float(w)
            out[f"{name}_R"] = float(w)
        else:
            out[name] = float(w)
    return out


# ARKit shapes that ICT-FaceKit has only as _L/_R pairs.
_SIDED = {
    "browDown", "browInnerUp", "browOuterUp", "cheekPuff", "cheekSquint", "eyeBlink", "eyeLookDown", "eyeLookIn",
    "eyeLookOut", "eyeLookUp", "eyeSquint", "eyeWide", "mouthDimple", "mouthFrown", "mouthLowerDown", "mouthPress",
    "mouthSmile", "mouthStretch", "mouthUpperUp", "noseSneer", "PupilDilate",
}  # fmt: skip


@lru_cache(maxsize=4)
def _presets_cached(path: str | None) -> tuple[dict, dict]:
    data = read_toml(path, "synth_presets.toml")
    check_keys(data, ("expressions", "presets"), f"{path or 'synth_presets.toml'}: ")
    exprs = {name: expand_expression(w) for name, w in data.get("expressions", {}).items()}
    return data.get("presets", {}), exprs


def _merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``; sub-tables (scene, shape) are merged key by key."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and k in ("scene", "shape") else copy.deepcopy(v)
    return out


def _resolve(name: str, table: dict, seen: tuple[str, ...] = ()) -> dict:
    if name not in table:
        raise ConfigError(f"unknown synthetic preset {name!r}; known: {', '.join(sorted(table))}")
    if name in seen:
        raise ConfigError(f"preset {name!r}: 'base' chain loops ({' -> '.join(seen + (name,))})")
    p = table[name]
    where = f"preset {name!r}: "
    check_keys(p, PRESET_KEYS, where)
    check_keys(p.get("scene", {}), SCENE_KEYS, f"preset {name!r} [scene]: ")
    check_keys(p.get("shape", {}), SHAPE_KEYS, f"preset {name!r} [shape]: ")
    if "base" not in p:
        return copy.deepcopy(p)
    merged = _merge(_resolve(str(p["base"]), table, seen + (name,)), p)
    merged.pop("base", None)
    merged["based_on"] = str(p["base"])
    return merged


def preset_names(path: str | Path | None = None) -> list[str]:
    return sorted(_presets_cached(None if path is None else str(path))[0])


def load_preset(name: str, path: str | Path | None = None) -> Preset:
    """The named preset from ``synth_presets.toml`` (or a user file); unknown keys are errors."""
    table, exprs = _presets_cached(None if path is None else str(path))
    p = _resolve(name, table)
    missing = [e for e in p.get("expressions", ["neutral"]) if e not in exprs]
    if missing:
        raise ConfigError(f"preset {name!r} uses undefined expressions: {', '.join(missing)}")
    return Preset(name, p, {e: dict(exprs[e]) for e in p.get("expressions", ["neutral"])})


def named_expressions(path: str | Path | None = None) -> dict[str, dict[str, float]]:
    """All named expressions (FaceWarehouse-like) as ARKit weight dicts."""
    return copy.deepcopy(_presets_cached(None if path is None else str(path))[1])
