"""Checked settings: every configuration table and override goes through here, so a mistyped
key is an error that names the nearest valid one, never a silently ignored setting
(``--set lamda1=0.3`` once ran with lambda1 = 0.03)."""
from __future__ import annotations

import copy
import difflib
from typing import Any, Callable, Iterable

from .errors import ConfigError


def _hint(key: str, known: Iterable[str], prefix: str = "") -> str:
    known = sorted(set(known))
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    return f" (did you mean {prefix}{close[0]!r}?)" if close else f"; known: {', '.join(known)}"


def check_keys(given: Iterable[str], known: Iterable[str], where: str = "") -> None:
    """Raise :class:`ConfigError` for the first key of ``given`` not in ``known``, naming the nearest
    valid one. ``where`` prefixes the message (e.g. ``"preset 'biwi': "``)."""
    known = set(known)
    for key in given:
        if key not in known:
            raise ConfigError(f"{where}unknown setting {key!r}{_hint(key, known)}")


def overlay_sections(base: dict, extra: dict, where: str,
                     convert: Callable[[str, str, Any, Any], Any] | None = None) -> dict:
    """A deep copy of ``base`` (``{section: {key: value}}``) with the values of ``extra`` on top.

    An unknown section or key is a :class:`ConfigError` naming the nearest valid one;
    ``convert(section, key, base_value, new_value)`` may check or coerce each new value.
    """
    out = copy.deepcopy(base)
    for section, values in extra.items():
        if section not in base or not isinstance(values, dict):
            raise ConfigError(f"{where}: unknown section [{section}]{_hint(section, base)}")
        for key, value in values.items():
            if key not in base[section]:
                raise ConfigError(f"{where}: unknown key {section}.{key}{_hint(key, base[section], section + '.')}")
            out[section][key] = convert(section, key, base[section][key], value) if convert else value
    return out
