"""Shared CLI plumbing: expand inputs to frames, resolve intrinsics, per-frame failure
reporting and the batch exit codes (docs/reliability.md)."""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Iterator

from ..geometry.camera import camera_preset, parse_intrinsics
from ..errors import ConfigError, FaceReconError, InputFileError
from ..io.frame import DepthFrame

DEPTH_SUFFIXES = (".png", ".npy", ".npz", ".pcd", ".ply", ".bin")
# Always photos (never depth): the photo reader reports their decoding errors.  PNG and TIFF
# may be either; photo.image.is_photo_file tells (8-bit colour or grey = photo, 16-bit = depth).
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".ppm", ".pgm", ".bmp", ".webp", ".gif")
MAYBE_PHOTO_SUFFIXES = (".png", ".tif", ".tiff")
DEPTH_TYPES = "depth frames (.png 16-bit, .npy, .npz, .pcd, .ply, Biwi .bin)"
PHOTO_TYPES = "photos (.jpg, .jpeg, .png 8-bit, .ppm, .pgm, .bmp, .webp, .gif, .tif)"
RECONSTRUCT_HINT = "photos go through facerecon reconstruct (pose.json has the head pose)"

# Exit codes of the batch commands (reconstruct, pose); documented in docs/reliability.md.
EXIT_OK = 0  # every input gave a face
EXIT_FAILED = 1  # no input could be read or processed, or a configuration error
EXIT_USAGE = 2  # command-line usage error (click)
EXIT_NO_FACE = 3  # inputs were read, but none gave a face
EXIT_PARTIAL = 4  # some inputs gave a face, others failed or had none
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM

# Pipelined batches (reconstruct, pose, track): frames read this many ahead on a reader thread,
# outputs written on this many writer threads (one: the writers hold the GIL for most of their
# work, a second one only competes with the pipeline; docs/speed.md)
PIPELINE_AHEAD = 4
PIPELINE_WRITERS = 1


def expand_inputs(inputs: list[Path], photos: bool = True) -> list[Path]:
    """Files as given; folders become their depth files (sorted by name, not recursive).

    A folder named like a depth file (``frames.png/``) is kept as an input, so it fails as
    "is a directory" instead of silently becoming an empty batch.  A folder is an error
    (one line naming it and the supported input types) when it holds no depth file and no
    other input of the batch does either; with ``photos`` (``reconstruct``) photos in it count
    as inputs (its photo path lists them), without (``pose``) the error points them to
    ``facerecon reconstruct``.
    """
    out: list[Path] = []
    empty: list[Path] = []
    for p in inputs:
        if p.is_dir() and p.suffix.lower() not in DEPTH_SUFFIXES:
            try:
                found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in DEPTH_SUFFIXES
                               and not q.name.startswith(".") and q.name != "Expected.ply")
            except OSError as exc:
                raise InputFileError(p, f"cannot list the folder: {exc.strerror or exc}") from None
            if not found:
                empty.append(p)
            out += found
        else:
            out.append(p)
    if empty and not out:
        has_photos = _holds_photos(empty)
        if not (photos and has_photos):
            if photos:
                what = f"holds no {DEPTH_TYPES} and no {PHOTO_TYPES}"
            else:
                what = f"holds no {DEPTH_TYPES}" + (f"; {RECONSTRUCT_HINT}" if has_photos else "")
            raise InputFileError(empty[0], f"folder {what}")
    return out


def _holds_photos(folders: list[Path]) -> bool:
    """Whether the folders hold photos (read by ``reconstruct``'s photo path, not listed here)."""
    try:
        return any(q.is_file() and not q.name.startswith(".") and q.suffix.lower() in PHOTO_SUFFIXES + MAYBE_PHOTO_SUFFIXES
                   for f in folders for q in f.iterdir())
    except OSError:
        return False


def is_photo_path(path: Path) -> bool:
    """A photo by its name (JPEG, ...) or, for PNG / TIFF, by its content (8-bit)."""
    suffix = path.suffix.lower()
    if suffix in PHOTO_SUFFIXES:
        return True
    if suffix in MAYBE_PHOTO_SUFFIXES and path.is_file():
        from ..photo.image import is_photo_file

        try:
            return bool(is_photo_file(path))
        except Exception:  # noqa: BLE001 - unreadable: the depth reader says why
            return False
    return False


class Lazy:
    """A model made on first use: a batch whose inputs all fail to read never loads one."""

    def __init__(self, make: Callable[[], Any]):
        self._make, self._value = make, None

    def __call__(self) -> Any:
        if self._value is None:
            self._value = self._make()
        return self._value


def failure_text(path: Path, exc: BaseException) -> str:
    """One line about a frame's failure, without the frame's own path (callers print
    ``f"{path}: {text}"``, so the path appears once): the problem of an error about this
    very file, the whole message of an error about another file (e.g. its Biwi depth.cal),
    and the exception type for anything outside the FaceReconError family."""
    if isinstance(exc, InputFileError) and Path(exc.path) == Path(path):
        return " ".join(exc.problem.split())
    if isinstance(exc, FaceReconError):
        text = exc.one_line()
    elif isinstance(exc, OSError):
        text = f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else f"{exc.__class__.__name__}: {exc}"
    else:
        if os.environ.get("FACERECON_DEBUG"):
            raise exc
        text = f"unexpected {exc.__class__.__name__}: {' '.join(str(exc).split())[:200]} (FACERECON_DEBUG=1 shows the traceback)"
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def batch_exit_code(n_inputs: int, n_failed: int, n_no_face: int) -> int:
    """The batch's exit code from its counts (see the ``EXIT_*`` constants)."""
    if n_failed == 0 and n_no_face == 0:
        return EXIT_OK
    if n_failed + n_no_face < n_inputs:
        return EXIT_PARTIAL
    return EXIT_NO_FACE if n_no_face else EXIT_FAILED


def finish_batch(console, n_inputs: int, n_failed: int, n_no_face: int = 0) -> None:
    """Print the batch summary and exit with :func:`batch_exit_code` when it is not 0."""
    import typer

    code = batch_exit_code(n_inputs, n_failed, n_no_face)
    if code != EXIT_OK:
        console.print(f"{n_failed + n_no_face} of {n_inputs} frames failed ({n_no_face} no face)")
        raise typer.Exit(code)


def load_frame(path: Path, camera: str | None, intrinsics: str | None, unit: str | None = None) -> DepthFrame:
    from ..io import read_depth

    if camera and intrinsics:
        raise ConfigError("give either --camera or --intrinsics, not both")
    frame = read_depth(path, unit=unit)
    if camera:
        k = camera_preset(camera)
        if (k.width, k.height) != (frame.width, frame.height):
            k = k.resize(frame.width, frame.height)
        frame = frame.with_intrinsics(k)
    elif intrinsics:
        frame = frame.with_intrinsics(parse_intrinsics(intrinsics, frame.width, frame.height))
    if frame.intrinsics is None:
        raise ConfigError(f"{path}: the file has no intrinsics; give --camera PRESET or --intrinsics fx,fy,cx,cy")
    k = frame.intrinsics
    if not (all(math.isfinite(v) for v in (k.fx, k.fy, k.cx, k.cy)) and k.fx > 0 and k.fy > 0):
        raise ConfigError(f"intrinsics fx {k.fx:g}, fy {k.fy:g}, cx {k.cx:g}, cy {k.cy:g} are not finite with positive focal lengths")
    return frame


def frame_stem(path: Path, used: set[str]) -> str:
    """A per-frame output folder name, unique within a batch."""
    stem = path.stem.replace(".", "_")
    name, k = stem, 1
    while name in used:
        k += 1
        name = f"{stem}_{k}"
    used.add(name)
    return name


def interrupt_behind(exc: BaseException) -> bool:
    """Whether ``exc`` is a Ctrl-C / SIGTERM in disguise: a KeyboardInterrupt raised by the signal handler
    while the main thread was inside a compiled (numba) function comes back as a SystemError ("returned a
    result with an exception set") caused by it, which must stop the batch like the interrupt itself."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def raise_if_interrupt(exc: BaseException) -> None:
    """Raise the interrupt hidden behind ``exc`` (see :func:`interrupt_behind`); the per-frame ``except
    Exception`` handlers call this before counting ``exc`` as the frame's failure."""
    if interrupt_behind(exc):
        raise KeyboardInterrupt from exc


class InterruptReport:
    """Around a batch loop: on Ctrl-C / SIGTERM (KeyboardInterrupt), print how far the batch got,
    after the progress bar has stopped, and let the interrupt go on (``cli.main``: exit 130).
    ``watch(bar, task)`` names the rich progress task whose completed count is the frames done."""

    def __init__(self, console, total: int | None, failures: list | None = None, noun: str = "frames",
                 after: str = "the outputs of finished frames are kept, the one in progress wrote nothing"):
        self.console, self.total, self.failures, self.noun, self.after = console, total, failures, noun, after
        self.bar = self.task = None
        self.done = 0  # frames finished, when there is no progress task to count them

    def watch(self, bar, task):
        self.bar, self.task = bar, task
        return task

    def frames_done(self) -> int:
        if self.bar is not None and self.task is not None:
            return int(next((t.completed for t in self.bar.tasks if t.id == self.task), 0))
        return self.done

    def __enter__(self) -> "InterruptReport":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            n = self.frames_done()
            of = f" of {self.total}" if self.total else ""
            failed = f", {len(self.failures)} failed" if self.failures else ""
            self.console.print(f"interrupted after {n}{of} {self.noun}{failed}; {self.after}", style="yellow", markup=False,
                               soft_wrap=True)
        return False


def read_ahead(items: Iterable, depth: int = 4) -> Iterator:
    """``items`` iterated on a background thread, up to ``depth`` items ahead of the consumer: a
    batch reads (and parses) the next frames while the current one goes through the pipeline.
    The same items in the same order; an exception of the iteration is raised here, where the
    item it stopped at would have come; leaving the loop early stops the reader."""
    import queue
    import threading

    done = object()
    q: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put((done, exc))

    threading.Thread(target=work, name="facerecon-reader", daemon=True).start()
    try:
        while True:
            item, exc = q.get()
            if item is done:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()


class Outcome:
    """What a frame's handler (or its write job) says when it is done: ``refused`` (why it is not a
    face: counted as "no face", printed red) and/or ``line`` (printed when the frame is done)."""

    __slots__ = ("refused", "line")

    def __init__(self, refused: str | None = None, line: str | None = None):
        self.refused, self.line = refused, line


def run_batch(console, label: str, items: Iterable[tuple[Path, Any, str | None]], total: int,
              handle: Callable[[Path, Any], Any], *, no_face_errors: bool = True, ahead: int = 0,
              writers: int = 0) -> tuple[list[str], int]:
    """The one batch loop of the CLI: a progress bar (from two inputs on), ``handle(path,
    payload)`` for each ``(path, payload, error)`` of ``items`` (``error``: the input could not
    be read), and every failure reported as one red line naming the input, the batch going on.
    ``handle`` writes the input's outputs and returns ``None``, the line saying why it is not a
    face (counted as "no face", printed in red) or an :class:`Outcome`; or it returns a write job
    (a callable returning one of those) that writes the outputs.  ``no_face_errors``: a
    ``NoFaceFoundError`` raised by ``handle`` counts as "no face" (photos: the detector found
    none); otherwise as a failure (depth frames: the localiser found no head, exit code 1).

    Pipelined batches: ``ahead`` > 0 reads that many inputs ahead on a reader thread
    (:func:`read_ahead`); ``writers`` > 0 runs the write jobs on that many writer threads while
    the next inputs are handled.  Whatever the threads, every input's outcome is reported in the
    input order, the same lines, counts and files as the serial loop (``writers`` = 0: each job
    runs at once).  Returns ``(failure lines, no-face count)`` for :func:`finish_batch`."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from ..errors import NoFaceFoundError

    failures: list[str] = []
    no_face = 0
    interrupted = InterruptReport(console, total, failures)
    pool = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="facerecon-writer") if writers > 0 else None
    pending: deque = deque()  # (path, error text or None, a future / a finished value / an exception), input order
    in_flight = 2 * writers + 1  # frames handled but not yet reported (bounds the results held in memory)

    def settle(bar, task) -> None:
        nonlocal no_face
        # the oldest frame leaves the queue only once its outcome is in: an interrupt while waiting for its
        # write leaves it to the interrupt's own settling below, which counts it when the write has completed
        path, error, job = pending[0]
        out = failed = None
        if error is None:
            try:
                if isinstance(job, BaseException):
                    raise job
                out = job.result() if hasattr(job, "result") else job
            except Exception as exc:  # one input's failure never stops the batch
                failed = exc
        pending.popleft()
        if failed is not None:
            raise_if_interrupt(failed)
            if isinstance(failed, NoFaceFoundError) and no_face_errors:
                no_face += 1
                console.print(f"{path}: {failure_text(path, failed)}", style="red", markup=False, soft_wrap=True)
            else:
                error = failure_text(path, failed)
        elif error is None:
            out = out if isinstance(out, Outcome) else Outcome(refused=out)
            if out.line is not None:
                console.print(out.line, markup=False)
            if out.refused is not None:
                no_face += 1
                console.print(out.refused, style="red", markup=False, soft_wrap=True)
        if error is not None:
            failures.append(f"{path}: {error}")
            console.print(failures[-1], style="red", markup=False, soft_wrap=True)
        bar.advance(task)

    source = read_ahead(items, ahead) if ahead > 0 else items
    try:
        with interrupted, _progress(console, total) as bar:
            task = interrupted.watch(bar, bar.add_task(label, total=total))
            try:
                for path, payload, error in source:
                    job = None
                    if error is None:
                        try:
                            job = handle(path, payload)
                            if callable(job):
                                job = pool.submit(job) if pool is not None else job()
                        except Exception as exc:  # reported in order by settle
                            raise_if_interrupt(exc)
                            job = exc
                    pending.append((path, error, job))
                    while pending and (len(pending) > in_flight or not hasattr(pending[0][2], "done") or pending[0][2].done()):
                        settle(bar, task)
                while pending:
                    settle(bar, task)
            except KeyboardInterrupt:
                # Ctrl-C / SIGTERM: the writes under way complete (each folder is atomic) and count as
                # finished; the queued ones and the frame in the pipeline write nothing
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
                while pending and not (hasattr(pending[0][2], "cancelled") and pending[0][2].cancelled()):
                    settle(bar, task)
                raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return failures, no_face


def _progress(console, total: int):
    """rich's progress bar of a batch; for a single input (rich's bar disabled: it prints nothing) a counter
    only, without importing rich.progress (~10 ms CPU of a one-frame command's cold start)."""
    if total < 2:
        return _Counter()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console)


class _Counter:
    """What :func:`run_batch` and :class:`InterruptReport` use of a rich ``Progress`` (tasks, their ids and
    completed counts), showing nothing."""

    class _Task:
        def __init__(self, task_id: int) -> None:
            self.id, self.completed = task_id, 0

    def __init__(self) -> None:
        self.tasks: list = []

    def __enter__(self) -> "_Counter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        return False

    def add_task(self, description: str, total: int | None = None) -> int:
        self.tasks.append(self._Task(len(self.tasks)))
        return self.tasks[-1].id

    def advance(self, task_id: int, advance: int = 1) -> None:
        self.tasks[task_id].completed += advance


def iterate_frames(paths: list[Path], camera: str | None, intrinsics: str | None, unit: str | None = None
                   ) -> Iterator[tuple[Path, DepthFrame | None, str | None]]:
    """(path, frame, None) or (path, None, error text without the path; see :func:`failure_text`):
    a bad frame never stops a batch."""
    # usage errors of the whole command, not of one frame: once, before the first frame
    if camera and intrinsics:
        raise ConfigError("give either --camera or --intrinsics, not both")
    if camera:
        camera_preset(camera)
    for p in paths:
        try:
            frame = load_frame(p, camera, intrinsics, unit)
        except Exception as exc:  # any reader failure is this frame's, the batch goes on
            raise_if_interrupt(exc)
            yield p, None, failure_text(p, exc)
            continue
        yield p, frame, None
