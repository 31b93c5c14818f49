"""Depth sequences for the tracker: a folder of frames, a Biwi sequence folder, a stacked
``.npz``, or any Python iterable of :class:`~facerecon.io.frame.DepthFrame`.

Every source yields :class:`SequenceFrame` items in time order.  A frame that cannot be
read is yielded with ``frame=None`` and the one-line error (the tracker counts it as a
frame without a face and goes on), never an exception.

Order and time:

* a folder is sorted by the timestamps its format carries (TrueDepth PLY headers hold the
  capture time) when every frame has one, else by name in natural order (``frame-2``
  before ``frame-10``); frames without a timestamp get ``index / fps``;
* a Biwi sequence folder (``frame_XXXXX_depth.bin`` + ``depth.cal``) is sorted by frame
  number, at Biwi's 30 frames/s unless ``fps`` says otherwise;
* a stacked ``.npz`` holds ``depth`` (or ``depth_mm``) (N, H, W), and optionally
  ``intrinsics`` (fx, fy, cx, cy), ``timestamps`` (N,) seconds and ``unit`` ('mm' | 'm',
  default mm).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import FaceReconError, InputFileError
from ..geometry.camera import Intrinsics
from ..io import read_depth
from ..io.frame import DepthFrame

FRAME_SUFFIXES = (".png", ".npy", ".npz", ".pcd", ".ply", ".bin")
DEFAULT_FPS = 30.0
MAX_STACK_PIXELS = 2_000_000_000  # refuse stacked arrays beyond ~8 GB of float32


@dataclass
class SequenceFrame:
    """One item of a sequence: the frame (None when it could not be read) and its time."""

    index: int
    name: str
    time_s: float
    frame: DepthFrame | None
    error: str | None = None


def frame_time(frame: DepthFrame) -> float | None:
    """The capture time a format stores with the frame (seconds), or None."""
    td = frame.meta.get("truedepth")
    if isinstance(td, dict):
        t = td.get("timestamp")
        if isinstance(t, (int, float)) and np.isfinite(t):
            return float(t)
    t = frame.meta.get("time_s")
    return float(t) if isinstance(t, (int, float)) and np.isfinite(t) else None


def _natural_key(p: Path) -> list:
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", p.name)]


def folder_files(folder: Path) -> list[Path]:
    files = [q for q in folder.iterdir() if q.is_file() and q.suffix.lower() in FRAME_SUFFIXES
             and not q.name.startswith(".") and q.name != "Expected.ply"]
    bins = [q for q in files if q.name.endswith("_depth.bin")]
    if bins:  # a Biwi sequence folder: the depth files only (poses and calibration sit beside them)
        files = bins
    return sorted(files, key=_natural_key)


class DepthSequence:
    """An iterable of :class:`SequenceFrame` (re-iterable for files; see module doc)."""

    def __init__(self, items: Callable[[], Iterator[SequenceFrame]], name: str, length: int | None = None):
        self._items = items
        self.name = name
        self.length = length

    def __iter__(self) -> Iterator[SequenceFrame]:
        return self._items()

    def __len__(self) -> int:
        if self.length is None:
            raise TypeError("this sequence has no known length")
        return self.length


def _load(path: Path, prepare: Callable[[DepthFrame], DepthFrame] | None, unit: str | None) -> DepthFrame:

    frame = read_depth(path, unit=unit)
    return prepare(frame) if prepare is not None else frame


def folder_sequence(folder: str | Path, *, fps: float = DEFAULT_FPS, order: str = "auto", unit: str | None = None,
                    prepare: Callable[[DepthFrame], DepthFrame] | None = None) -> DepthSequence:
    """Frames of a folder (``order``: auto = timestamps when every frame has one, else name;
    name; time).  ``prepare`` is applied to each frame read (e.g. giving it intrinsics)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(folder, "not a folder of depth frames")
    files = folder_files(folder)
    if not files:
        raise InputFileError(folder, f"no depth frames ({', '.join(FRAME_SUFFIXES)}) in the folder")
    if order not in ("auto", "name", "time"):
        raise ValueError(f"order must be auto, name or time, got {order!r}")
    times: list[float | None] = [None] * len(files)
    if order != "name" and all(f.suffix.lower() == ".ply" for f in files):
        # TrueDepth frames carry their capture time: read them once (small, 320 x 240) for the order
        for i, f in enumerate(files):
            try:
                times[i] = frame_time(_load(f, None, unit))
            except FaceReconError:
                times[i] = None
        if all(t is not None for t in times):
            perm = sorted(range(len(files)), key=lambda i: (times[i], _natural_key(files[i])))
            files, times = [files[i] for i in perm], [times[i] for i in perm]
    if order == "time" and any(t is None for t in times):
        raise InputFileError(folder, "order=time, but not every frame carries a timestamp")

    def items() -> Iterator[SequenceFrame]:
        for i, f in enumerate(files):
            try:
                frame = _load(f, prepare, unit)
            except FaceReconError as exc:
                yield SequenceFrame(i, f.name, i / fps, None, exc.one_line())
                continue
            t = frame_time(frame)
            yield SequenceFrame(i, f.name, t if t is not None else (times[i] if times[i] is not None else i / fps), frame)

    return DepthSequence(items, str(folder), len(files))


def npz_sequence(path: str | Path, *, fps: float = DEFAULT_FPS, unit: str | None = None,
                 prepare: Callable[[DepthFrame], DepthFrame] | None = None) -> DepthSequence:
    """A stacked ``.npz`` sequence (see module doc)."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            key = "depth" if "depth" in z.files else "depth_mm" if "depth_mm" in z.files else None
            if key is None:
                raise InputFileError(p, f"stacked npz has no 'depth' array (keys: {', '.join(z.files) or 'none'})")
            depth = z[key]
            k = z["intrinsics"] if "intrinsics" in z.files else None
            stamps = z["timestamps"] if "timestamps" in z.files else None
            stored_unit = str(z["unit"]) if "unit" in z.files else None
    except FaceReconError:
        raise
    except Exception as exc:  # noqa: BLE001 - zip/npy errors of every kind: one line naming the file
        raise InputFileError(p, f"cannot read the stacked npz ({exc.__class__.__name__})") from None
    if depth.ndim != 3 or depth.dtype.kind not in "uif" or depth.size > MAX_STACK_PIXELS:
        raise InputFileError(p, f"'{key}' must be an (N, H, W) number array, got shape {depth.shape} dtype {depth.dtype}")
    u = unit or stored_unit or "mm"
    if u not in ("mm", "m"):
        raise InputFileError(p, f"unit must be mm or m, got {u!r}")
    scale = 1000.0 if u == "m" else 1.0
    n, h, w = depth.shape
    intr = None
    if k is not None:
        try:
            kk = np.asarray(k, np.float64).reshape(-1)
        except (TypeError, ValueError):
            kk = np.zeros(0)
        if kk.size not in (4, 9) or not np.isfinite(kk).all():
            raise InputFileError(p, "'intrinsics' must be fx, fy, cx, cy (or a 3x3 matrix) of finite numbers")
        fx, fy, cx, cy = (kk[0], kk[1], kk[2], kk[3]) if kk.size == 4 else (kk[0], kk[4], kk[2], kk[5])
        if fx <= 0 or fy <= 0:
            raise InputFileError(p, f"non-positive focal length in 'intrinsics' ({fx:g}, {fy:g})")
        intr = Intrinsics(float(fx), float(fy), float(cx), float(cy), w, h)
    if stamps is not None:
        stamps = np.asarray(stamps, np.float64).reshape(-1)
        if len(stamps) != n or not np.isfinite(stamps).all():
            raise InputFileError(p, f"'timestamps' must hold {n} finite numbers")

    def items() -> Iterator[SequenceFrame]:
        for i in range(n):
            frame = DepthFrame(depth[i].astype(np.float32) * np.float32(scale), intr, f"{p}[{i}]")
            if prepare is not None:
                frame = prepare(frame)
            yield SequenceFrame(i, f"{p.stem}[{i}]", float(stamps[i]) if stamps is not None else i / fps, frame)

    return DepthSequence(items, str(p), n)


def iterable_sequence(frames: Iterable[DepthFrame | None], *, fps: float = DEFAULT_FPS, name: str = "frames") -> DepthSequence:
    """Frames from Python (a list, a generator, a camera loop); ``None`` is a frame without data."""

    def items() -> Iterator[SequenceFrame]:
        for i, f in enumerate(frames):
            t = frame_time(f) if f is not None else None
            src = (f.source if f is not None else "") or f"{name}[{i}]"
            yield SequenceFrame(i, src, t if t is not None else i / fps, f, None if f is not None else "no frame")

    length = len(frames) if hasattr(frames, "__len__") else None  # type: ignore[arg-type]
    return DepthSequence(items, name, length)


def open_sequence(source, *, fps: float = DEFAULT_FPS, order: str = "auto", unit: str | None = None,
                  prepare: Callable[[DepthFrame], DepthFrame] | None = None) -> DepthSequence:
    """Any supported sequence source (see module doc)."""
    if isinstance(source, DepthSequence):
        return source
    if isinstance(source, (str, Path)):
        p = Path(source)
        if p.is_dir():
            return folder_sequence(p, fps=fps, order=order, unit=unit, prepare=prepare)
        if p.is_file() and p.suffix.lower() == ".npz":
            return npz_sequence(p, fps=fps, unit=unit, prepare=prepare)
        if not p.exists():
            raise InputFileError(p, "no such file or folder")
        raise InputFileError(p, "a sequence is a folder of frames or a stacked .npz")
    return iterable_sequence(source, fps=fps)
