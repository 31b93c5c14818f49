"""Checked settings: every configuration table and override goes through here, so a mistyped
key is an error that names the nearest valid one, never a silently ignored setting
(``--set lamda1=0.3`` once ran with lambda1 = 0.03)."""
from __future__ import annotations

import dataclasses
import difflib
import tomllib
import typing
from functools import lru_cache
from importlib import resources
from typing import Iterable

from .errors import ConfigError


def _hint(key: str, known: Iterable[str], prefix: str = "") -> str:
    known = sorted(set(known))
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    return f" (did you mean {prefix + close[0]!r}?)" if close else f"; known: {', '.join(known)}"


def check_keys(given: Iterable[str], known: Iterable[str], where: str = "", prefix: str = "") -> None:
    """Raise :class:`ConfigError` for the first key of ``given`` not in ``known``, naming the nearest
    valid one. ``where`` prefixes the message (e.g. ``"preset 'biwi': "``); ``prefix`` is the dotted
    path of a nested table (``"refine."``), so the key reads as ``--set`` takes it."""
    known = set(known)
    for key in given:
        if key not in known:
            raise ConfigError(f"{where}unknown setting {prefix + str(key)!r}{_hint(key, known, prefix)}")


def parse_sets(items: Iterable[str], where: str) -> dict:
    """``--set section.key=value`` items as ``{section: {key: "value"}}`` (values stay strings: the
    typed builder :func:`from_toml` parses them by the field's type; a tuple is comma-separated)."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise ConfigError(f"--set {item!r}: expected section.key=value (sections and keys: {where})")
        out.setdefault(section, {})[name] = value.strip()
    return out


# ------------------------------------------------------------------ typed settings from TOML tables
# The packaged TOML files are the defaults; a typed frozen dataclass is built from them, so no
# default is written twice.  ``@toml_defaults(file, table)`` gives a dataclass its field defaults
# from the file (``Cls(key=value)`` keeps working); ``from_toml`` builds one from any table.

@lru_cache(maxsize=None)
def packaged_toml(resource: str) -> dict:
    """The parsed TOML file ``resource`` of the facerecon package (e.g. ``"configs/fit.toml"``); do not modify."""
    return tomllib.loads(resources.files("facerecon").joinpath(resource).read_text(encoding="utf-8"))


def _coerce(tp, value, what: str, key: str):
    """``value`` as the annotated type ``tp`` (bool, int, float, str, tuple[...], a dataclass);
    an int is a float too, and strings as given on a command line (``--set key=value``) are parsed."""
    if dataclasses.is_dataclass(tp):
        if isinstance(value, (tp, dict)):
            return value if isinstance(value, tp) else from_toml(tp, value, None, f"{what} [{key}]")
    elif typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if isinstance(value, str):  # from a command line: comma-separated, empty for ()
            value = [v for v in (x.strip() for x in value.split(",")) if v]
        if isinstance(value, (list, tuple)):
            args = (args[0],) * len(value) if args[-1] is Ellipsis else args
            if len(value) == len(args):
                return tuple(_coerce(a, v, what, key) for a, v in zip(args, value))
    elif tp in (bool, int, float) and isinstance(value, str):
        parsed = _BOOLS.get(value.strip().lower()) if tp is bool else _parse_number(tp, value)
        if parsed is not None:
            return parsed
    elif type(value) is tp or (tp is float and type(value) is int):
        return tp(value)
    elif tp not in (bool, int, float, str):
        return value  # an annotation this builder does not check
    name = getattr(tp, "__name__", str(tp))
    raise ConfigError(f"{what}: {key} must be {'an' if name[:1] in 'aeiou' else 'a'} {name}, got {value!r}")


_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _parse_number(tp, text: str):
    try:
        return tp(text.strip())
    except ValueError:
        return None


def _merge_tables(base: dict, extra: dict, known: dict, what: str, prefix: str = "") -> dict:
    """``base`` with ``extra`` on top, recursively for nested dataclass fields; unknown keys in ``extra`` are errors."""
    if not isinstance(extra, dict):
        raise ConfigError(f"{what}: {prefix.rstrip('.')} must be a table of settings, got {extra!r}")
    check_keys(extra, known, f"{what}: ", prefix)
    out = dict(base)
    for key, value in extra.items():
        sub, old = known[key], base.get(key)
        if dataclasses.is_dataclass(old) and not isinstance(old, type):
            old = {f.name: getattr(old, f.name) for f in dataclasses.fields(old)}
        if dataclasses.is_dataclass(sub) and isinstance(value, dict) and isinstance(old, dict):
            out[key] = _merge_tables(old, value, typing.get_type_hints(sub), what, f"{prefix}{key}.")
        else:
            out[key] = value
    return out


def _values(cls, table: dict, overrides: dict | None, what: str) -> dict:
    """The checked, coerced field values of dataclass-to-be ``cls`` from ``table`` (every field
    required, no other key) with ``overrides`` on top (keys must be fields)."""
    hints = {k: v for k, v in typing.get_type_hints(cls).items() if typing.get_origin(v) is not typing.ClassVar}
    if not isinstance(table, dict):
        raise ConfigError(f"{what}: expected a table, got {table!r}")
    check_keys(table, hints, f"{what}: ")
    missing = [k for k in hints if k not in table]
    if missing:
        raise ConfigError(f"{what}: missing setting(s) {', '.join(missing)}")
    if overrides:
        table = _merge_tables(table, overrides, hints, what)
    return {k: _coerce(tp, table[k], what, k) for k, tp in hints.items()}


def from_toml(cls, table: dict, overrides: dict | None = None, what: str = "settings"):
    """The dataclass ``cls`` built from the TOML ``table``: every field is required and no other
    key is allowed (:class:`ConfigError` naming the nearest valid key); values are coerced to the
    annotated types (int -> float, lists -> tuples, strings from ``--set``); fields whose type is a
    dataclass are built from sub-tables.  ``overrides`` (same shape, any subset) go on top."""
    return cls(**_values(cls, table, overrides, what))


def toml_defaults(resource: str, table: str, frozen: bool = True):
    """Class decorator: a (frozen) dataclass whose field defaults are the table ``table`` of the
    packaged TOML file ``resource``, checked like :func:`from_toml` (a missing or unknown key is an
    error at import).  ``Cls()`` is the packaged configuration; see also :func:`with_overrides`."""
    def wrap(cls):
        raw = packaged_toml(resource).get(table)
        what = f"{resource} [{table}]"
        for key, value in _values(cls, raw, None, what).items():
            if key in cls.__dict__:
                raise ConfigError(f"{cls.__name__}.{key}: its default is written in {resource}, not in Python")
            setattr(cls, key, value)
        return dataclasses.dataclass(frozen=frozen)(cls)
    return wrap


def with_overrides(obj, overrides: dict | None, what: str = "settings"):
    """A copy of the dataclass ``obj`` with ``overrides`` (``{key: value}``, nested for dataclass
    fields) on top, checked and coerced like :func:`from_toml`."""
    current = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    return from_toml(type(obj), current, overrides, what)


def check_overrides(overrides: dict, resource: str, where: str) -> None:
    """Check ``{section: {key: value}}`` (``--set`` items, values as strings) against the packaged
    TOML file ``resource`` without building its typed settings: unknown sections and keys (with
    the nearest valid one, as ``--set`` takes it) and values that do not parse as the default's type
    (bool, int, float, a list of them) are a :class:`ConfigError`.  Cheap (no numpy): the command
    line runs it before any model loads; the typed builder checks the rest."""
    base = packaged_toml(resource)
    check_keys(overrides, [k for k, v in base.items() if isinstance(v, dict)], f"{where}: ")
    for section, values in overrides.items():
        check_keys(values, base[section], f"{where}: ", section + ".")
        for key, value in values.items():
            default = base[section][key]
            if isinstance(default, list):
                if default and not isinstance(default[0], (dict, list)) and isinstance(value, str):
                    for item in (x.strip() for x in value.split(",") if x.strip()):
                        _coerce(type(default[0]), item, where, f"{section}.{key}")
            elif isinstance(default, (bool, int, float)):
                _coerce(type(default), value, where, f"{section}.{key}")
