"""``configs/photo_fit.toml``: the photo path's settings (camera default, fit, texture) as data.

Every table and key is checked against the packaged file: an unknown key is a ``ConfigError``
(a typo would otherwise be silently ignored).  ``overrides`` (``{"fit": {"iterations": 10}}``)
replace single values.
"""
from __future__ import annotations

import copy
import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..errors import ConfigError
from ..settings import overlay_sections


@lru_cache(maxsize=1)
def _packaged() -> dict:
    return tomllib.loads(resources.files("facerecon").joinpath("configs/photo_fit.toml").read_text(encoding="utf-8"))


def _same_type(where: str):
    def convert(section: str, key: str, old, value):
        if type(value) is not type(old) and not (isinstance(old, float) and isinstance(value, int)):
            raise ConfigError(f"{where}: {section}.{key} must be a {type(old).__name__}, got {value!r}")
        return value
    return convert


def _merge(base: dict, extra: dict, where: str) -> dict:
    return overlay_sections(base, extra, where, _same_type(where))


def load_photo_config(path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """The photo settings: the packaged file, updated by ``path`` (a TOML file) and ``overrides``."""
    cfg = _packaged()
    if path is not None:
        try:
            extra = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read photo settings ({exc})") from None
        cfg = _merge(cfg, extra, str(path))
    if overrides:
        cfg = _merge(cfg, overrides, "photo settings")
    return copy.deepcopy(cfg) if cfg is _packaged() else cfg
