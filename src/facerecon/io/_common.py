"""Helpers shared by the readers: file checks, size caps, units, plausibility of values.

Every reader reports problems as one-line :class:`InputFileError`s naming the file, so
the checks that all of them need (exists, is a file, not empty, sizes against the file
length and :data:`MAX_PIXELS`, unit sane, intrinsics physical) live here, and every
public reader is wrapped in :func:`guard_reader` so that a malformation no check names
still becomes one line naming the file instead of a traceback.
"""
from __future__ import annotations

import functools
import math
import warnings
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from ..geometry.camera import Intrinsics
from ..errors import ConfigError, FaceReconError, InputFileError, InputWarning

F = TypeVar("F", bound=Callable)

#: Most pixels (or points) one frame or cloud may hold: 16 Mpx (4096 x 4096).  Depth
#: sensors give 0.1-1 Mpx (Kinect 640x480, TrueDepth 640x480, Kinect v2 512x424), so this
#: is a wide margin, and it keeps one frame well under 1 GB through the readers even when
#: a compressed format (npz, PNG, LZF, Biwi runs) claims it from a file of a few bytes.
MAX_PIXELS = 1 << 24

#: Depth beyond 100 m is no sensor's measurement (structured light and ToF reach ~10 m):
#: such values are set to 0 (no measurement) with an :class:`InputWarning`.
MAX_DEPTH_MM = 100_000.0

#: Multipliers from a supported unit to millimetres.
UNIT_TO_MM: dict[str, float] = {"mm": 1.0, "cm": 10.0, "m": 1000.0}

# Depth cameras see faces between a few centimetres and a few tens of metres.  A median
# valid depth outside [_MIN_PLAUSIBLE_MM, _MAX_PLAUSIBLE_MM] after conversion means the
# unit was almost certainly wrong (metres read as millimetres or the reverse).
_MIN_PLAUSIBLE_MM = 10.0
_MAX_PLAUSIBLE_MM = 100_000.0


def guard_reader(what: str) -> Callable[[F], F]:
    """Decorator for a public reader whose first argument is the file path.

    :class:`FaceReconError`s pass through; anything else raised inside the reader (a
    malformation no explicit check names: numpy, zipfile, zlib, tokenize, json, trimesh,
    recursion, memory) becomes one :class:`InputFileError` naming the file and the cause,
    with the original exception chained for debugging.
    """

    def wrap(func: F) -> F:
        @functools.wraps(func)
        def guarded(path, *args, **kwargs):
            try:
                return func(path, *args, **kwargs)
            except FaceReconError:
                raise
            except RecursionError as exc:
                raise InputFileError(path, f"cannot read as {what}: nested too deeply") from exc
            except MemoryError as exc:
                raise InputFileError(path, f"cannot read as {what}: too large for the available memory") from exc
            except Exception as exc:  # noqa: BLE001 - the point: no reader failure escapes as a traceback
                detail = " ".join(str(exc).split())[:160]
                cause = f"{exc.__class__.__name__}: {detail}" if detail else exc.__class__.__name__
                raise InputFileError(path, f"cannot read as {what} ({cause})") from exc

        return guarded  # type: ignore[return-value]

    return wrap


def check_count(path: str | Path, count: int, what: str, cap: int = MAX_PIXELS) -> int:
    """Refuse a negative count, or one above ``cap`` (default :data:`MAX_PIXELS`), before allocating."""
    if count < 0:
        raise InputFileError(path, f"negative {what} count {count}")
    if count > cap:
        raise InputFileError(path, f"{what} count {count:,} is over the cap of {cap:,}")
    return int(count)


def check_image_size(path: str | Path, width: int, height: int, what: str = "image") -> tuple[int, int]:
    """Positive width and height whose product is within :data:`MAX_PIXELS`."""
    if not (width > 0 and height > 0):
        raise InputFileError(path, f"{what} size {width} x {height} is not positive")
    if width * height > MAX_PIXELS:
        raise InputFileError(path, f"{what} size {width} x {height} is over the cap of {MAX_PIXELS:,} pixels")
    return int(width), int(height)


def check_bytes(path: str | Path, need: int, have: int, what: str) -> None:
    """The file must hold at least ``need`` bytes for ``what`` (checked before reading or allocating)."""
    if need > have:
        raise InputFileError(path, f"{what} is truncated: needs {need:,} bytes, {max(have, 0):,} present")


def checked_intrinsics(
    path: str | Path, fx: float, fy: float, cx: float, cy: float, width: int, height: int, what: str = "intrinsics"
) -> Intrinsics:
    """Intrinsics with finite, positive focal lengths and a finite principal point, or an error."""
    try:
        vals = [float(fx), float(fy), float(cx), float(cy)]
    except (TypeError, ValueError):
        raise InputFileError(path, f"{what} are not numbers") from None
    if not all(math.isfinite(v) for v in vals):
        raise InputFileError(path, f"{what} are not finite (fx {vals[0]:.6g}, fy {vals[1]:.6g}, cx {vals[2]:.6g}, cy {vals[3]:.6g})")
    # a focal length under a thousandth of a pixel is 0 in all but name (e.g. scaled down
    # from an absurd reference size)
    if not (vals[0] > 1e-3 and vals[1] > 1e-3):
        raise InputFileError(path, f"{what} have a non-positive focal length (fx {vals[0]:.6g}, fy {vals[1]:.6g})")
    return Intrinsics(vals[0], vals[1], vals[2], vals[3], int(width), int(height))


def clean_depth_mm(path: str | Path, depth_mm: np.ndarray, silent_above_mm: float | None = None) -> np.ndarray:
    """float32 depth (mm) with every non-measurement set to 0.

    NaN and 0 mean "no measurement" in every supported format and are zeroed silently, as
    are values at or above ``silent_above_mm`` (a format's documented sentinel).  Infinite
    and negative values, and depth beyond :data:`MAX_DEPTH_MM`, are non-physical: they are
    zeroed too, with one :class:`InputWarning` naming the file and the count.
    """
    d = np.asarray(depth_mm)
    with np.errstate(invalid="ignore", over="ignore"):
        d = d.astype(np.float64, copy=False) if d.dtype.kind != "f" else d
        finite = np.isfinite(d)
        valid = finite & (d > 0) & (d <= MAX_DEPTH_MM)
        bad = ~valid & ~np.isnan(d) & (d != 0)
        if silent_above_mm is not None:
            bad &= ~(finite & (d >= silent_above_mm))
        n_bad = int(np.count_nonzero(bad))
        out = np.where(valid, d, 0).astype(np.float32)
    if n_bad:
        warnings.warn(
            f"{path}: {n_bad} depth value(s) negative, infinite or beyond {MAX_DEPTH_MM / 1000:.0f} m set to 'no measurement'",
            InputWarning,
            stacklevel=3,
        )
    return out


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
