"""Synthetic-data presets and sensor models: loaded from TOML data, never code branches.

``configs/synth_presets.toml`` holds the named expressions and the presets
(``facewarehouse``, ``biwi``, ``ict3dhp``, ``truedepth``); ``configs/sensors.toml`` the
sensor models (``ideal``, ``kinect-v1``, ``tof``, ``truedepth``).  Either can be
replaced by a user file (``load_presets(path)``/``load_sensors(path)``).

Per-frame random values are written in a small spec language (see :func:`draw`).
"""
from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError


def _read_toml(path: str | Path | None, default_name: str) -> dict:
    try:
        if path is None:
            text = resources.files("facerecon").joinpath(f"configs/{default_name}").read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        return tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path or default_name}: cannot read synthetic-data config: {exc}") from None


def draw(spec: Any, rng: np.random.Generator) -> Any:
    """Draw one value from a spec.

    * a number (or string/bool) -> itself;
    * ``[lo, hi]`` -> uniform in [lo, hi] (integers if both ends are ints);
    * ``{normal = [mean, sd], clip = [lo, hi]}`` -> clipped normal;
    * ``{choice = [...], p = [...], jitter = sd}`` -> one of the values (+ normal jitter).
    """
    if isinstance(spec, (int, float, str, bool)) or spec is None:
        return spec
    if isinstance(spec, list):
        if len(spec) != 2:
            raise ConfigError(f"a range must be [lo, hi], got {spec!r}")
        lo, hi = spec
        if isinstance(lo, int) and isinstance(hi, int) and not isinstance(lo, bool):
            return int(rng.integers(lo, hi + 1))
        return float(rng.uniform(lo, hi))
    if isinstance(spec, dict):
        if "normal" in spec:
            mean, sd = spec["normal"]
            x = float(rng.normal(mean, sd))
            if "clip" in spec:
                x = float(np.clip(x, *spec["clip"]))
            return x
        if "choice" in spec:
            values = spec["choice"]
            p = spec.get("p")
            if p is not None:
                p = np.asarray(p, np.float64) / np.sum(p)
            x = values[int(rng.choice(len(values), p=p))]
            if spec.get("jitter"):
                x = float(x) + float(rng.normal(0.0, spec["jitter"]))
            return x
    raise ConfigError(f"cannot draw a value from spec {spec!r}")


def chance(p: float, rng: np.random.Generator) -> bool:
    """True with probability ``p`` (always consumes one random number, so streams stay aligned)."""
    return bool(rng.random() < float(p))


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

    def to_dict(self) -> dict:
        return {"name": self.name, "table": copy.deepcopy(self.table), "expressions": copy.deepcopy(self.expressions)}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SensorModel:
    name: str
    table: dict  # description, source, stages

    @property
    def stages(self) -> list[dict]:
        return list(self.table.get("stages", []))

    def to_dict(self) -> dict:
        return {"name": self.name, "table": copy.deepcopy(self.table)}

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
    data = _read_toml(path, "synth_presets.toml")
    exprs = {name: expand_expression(w) for name, w in data.get("expressions", {}).items()}
    return data.get("presets", {}), exprs


def preset_names(path: str | Path | None = None) -> list[str]:
    return sorted(_presets_cached(None if path is None else str(path))[0])


def load_preset(name: str, path: str | Path | None = None) -> Preset:
    """The named preset from ``synth_presets.toml`` (or a user file)."""
    table, exprs = _presets_cached(None if path is None else str(path))
    if name not in table:
        raise ConfigError(f"unknown synthetic preset {name!r}; known: {', '.join(sorted(table))}")
    p = table[name]
    missing = [e for e in p.get("expressions", ["neutral"]) if e not in exprs]
    if missing:
        raise ConfigError(f"preset {name!r} uses undefined expressions: {', '.join(missing)}")
    return Preset(name, copy.deepcopy(p), {e: dict(exprs[e]) for e in p.get("expressions", ["neutral"])})


@lru_cache(maxsize=4)
def _sensors_cached(path: str | None) -> dict:
    return _read_toml(path, "sensors.toml")


def sensor_names(path: str | Path | None = None) -> list[str]:
    return sorted(_sensors_cached(None if path is None else str(path)))


def load_sensor(name: str, path: str | Path | None = None) -> SensorModel:
    """The named sensor model from ``sensors.toml`` (or a user file)."""
    table = _sensors_cached(None if path is None else str(path))
    if name not in table:
        raise ConfigError(f"unknown sensor model {name!r}; known: {', '.join(sorted(table))}")
    from .sensors import STAGES  # local import: sensors imports numba kernels

    for st in table[name].get("stages", []):
        if st.get("type") not in STAGES:
            raise ConfigError(f"sensor {name!r}: unknown stage type {st.get('type')!r}; known: {', '.join(sorted(STAGES))}")
    return SensorModel(name, copy.deepcopy(table[name]))


def named_expressions(path: str | Path | None = None) -> dict[str, dict[str, float]]:
    """All named expressions (FaceWarehouse-like) as ARKit weight dicts."""
    return copy.deepcopy(_presets_cached(None if path is None else str(path))[1])
