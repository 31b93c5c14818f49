"""Helpers shared by the readers: file checks, units, plausibility of depth values.

Every reader reports problems as one-line :class:`InputFileError`s naming the file, so
the checks that all of them need (exists, is a file, not empty, unit sane) live here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputFileError

#: Multipliers from a supported unit to millimetres.
UNIT_TO_MM: dict[str, float] = {"mm": 1.0, "cm": 10.0, "m": 1000.0}

# Depth cameras see faces between a few centimetres and a few tens of metres.  A median
# valid depth outside [_MIN_PLAUSIBLE_MM, _MAX_PLAUSIBLE_MM] after conversion means the
# unit was almost certainly wrong (metres read as millimetres or the reverse).
_MIN_PLAUSIBLE_MM = 10.0
_MAX_PLAUSIBLE_MM = 100_000.0


def check_file(path: str | Path) -> Path:
    """Return ``path`` as a Path if it is a readable, non-empty regular file."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(p, "no such file")
    if p.is_dir():
        raise InputFileError(p, "is a directory, expected a file")
    try:
        size = p.stat().st_size
    except OSError as exc:  # permissions, broken links
        raise InputFileError(p, f"cannot read: {exc.strerror or exc}") from None
    if size == 0:
        raise InputFileError(p, "file is empty")
    return p


def read_bytes(path: str | Path) -> bytes:
    """Whole file contents, with :func:`check_file`'s checks and one-line OS errors."""
    p = check_file(path)
    try:
        return p.read_bytes()
    except OSError as exc:
        raise InputFileError(p, f"cannot read: {exc.strerror or exc}") from None


def unit_factor(unit: str | None, default: str) -> float:
    """Millimetres per stored unit; ``unit`` None means the format's ``default``."""
    u = (unit or default).strip().lower()
    if u not in UNIT_TO_MM:
        raise ConfigError(f"unknown depth unit {unit!r}; use one of {', '.join(UNIT_TO_MM)}")
    return UNIT_TO_MM[u]


def normalise_unit(unit: str | None) -> str | None:
    if unit is None:
        return None
    u = str(unit).strip().lower()
    if u not in UNIT_TO_MM:
        raise ConfigError(f"unknown depth unit {unit!r}; use one of {', '.join(UNIT_TO_MM)}")
    return u


def median_valid(values: np.ndarray) -> float | None:
    """Median of the finite, positive values, or None when there are none."""
    v = np.asarray(values)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return None
    return float(np.median(v))


def guess_unit(values: np.ndarray) -> str:
    """Best guess for unlabelled depth: metres when the median valid value is below 10."""
    med = median_valid(values)
    return "m" if med is not None and med < _MIN_PLAUSIBLE_MM else "mm"


def check_plausible_mm(path: str | Path, depth_mm: np.ndarray, unit: str) -> None:
    """Refuse depth whose typical value is implausible for the claimed unit."""
    med = median_valid(depth_mm)
    if med is None:
        return
    if med < _MIN_PLAUSIBLE_MM:
        raise InputFileError(
            path, f"depth values look like metres, not {unit} (median {med / UNIT_TO_MM[unit]:.3g} {unit}); give unit 'm'"
        )
    if med > _MAX_PLAUSIBLE_MM:
        raise InputFileError(
            path, f"depth values look like millimetres, not {unit} (median {med / UNIT_TO_MM[unit]:.3g} {unit}); give unit 'mm'"
        )


def check_fixed_unit(path: str | Path, unit: str | None, native: str, what: str) -> None:
    """For formats whose unit is fixed by the specification, refuse a contradicting ``unit``."""
    u = normalise_unit(unit)
    if u is not None and u != native:
        raise ConfigError(f"{path}: {what} files always store depth in {native}; the unit {u!r} does not apply")
