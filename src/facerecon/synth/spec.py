"""The small spec language of the synthetic-data TOML files, and the check for unknown keys.

Lowest module of :mod:`facerecon.synth`: presets (:mod:`.presets`) and sensor models
(:mod:`.sensors`) both read their TOML through here, so neither imports the other.
"""
from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError


def read_toml(path: str | Path | None, default_name: str) -> dict:
    """A packaged ``configs/<default_name>`` (``path`` None) or a user's TOML file."""
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
    * ``{choice = [...], p = [...], jitter = sd}`` -> one of the values (+ normal jitter); a value
      that is itself a spec (``{choice = [[-90, -55], [55, 90]]}``) is drawn in turn, so a
      range with a hole (|yaw| 55-90) is one line.
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
            if isinstance(x, (list, dict)):
                x = draw(x, rng)
            if spec.get("jitter"):
                x = float(x) + float(rng.normal(0.0, spec["jitter"]))
            return x
    raise ConfigError(f"cannot draw a value from spec {spec!r}")


def chance(p: float, rng: np.random.Generator) -> bool:
    """True with probability ``p`` (always consumes one random number, so streams stay aligned)."""
    return bool(rng.random() < float(p))
