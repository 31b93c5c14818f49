"""The ``facerecon`` command line (typer + rich).

Each topic lives in its own module with a ``register(app)`` function; this module wires
them together and turns every :class:`~facerecon.errors.FaceReconError` into a one-line
message and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import typer

from .. import __version__
from ..errors import FaceReconError, UsageError

# Topic modules, in the order their commands appear in --help.
_COMMAND_MODULES = ("reconstruct", "pose", "track", "depth", "face", "synth", "eval", "train", "animate", "view", "photo_depth", "export", "assets")

_APP_SETTINGS = dict(
    name="facerecon",
    help="Metric 3D face reconstruction (ICT-FaceKit mesh, rigged glTF) and head pose from depth frames "
         "(Kinect, TrueDepth, ...) and photos, frame by frame or tracked through a sequence; on the CPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: paragraphs reflowed to the width (rich mode kept the docstrings' line
    # breaks, so sentences broke mid-line, and read "[shape]" as markup)
    rich_markup_mode=None,
    context_settings={"max_content_width": 120},
)
app = typer.Typer(**_APP_SETTINGS)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"facerecon {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """facerecon: depth frame or photo -> head pose + metric 3D face mesh (ICT-FaceKit topology)."""


def _flags_without_type() -> None:
    """typer 0.26+ prints ``<bool>`` beside every ``--flag/--no-flag`` in ``--help``; a flag takes
    no value, so it shows none (an option with its own metavar keeps it)."""
    try:
        from typer.core import TyperOption
    except ImportError:  # another typer layout: leave its help as it is
        return
    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "_facerecon_flags", False):
        return

    def display_type_rich(self, ctx):
        if getattr(self, "is_flag", False) and getattr(self, "metavar", None) is None:
            return None
        return shown(self, ctx)

    display_type_rich._facerecon_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich


_NOT_PLAIN = object()  # _plain_value: not a value converted here (typer's own adapter decides)
_CANONICAL_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,14})")
_CANONICAL_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]{1,15})?")


def _plain_value(annotation, info, value, param, ctx):
    """``value`` as typer's pydantic adapter for ``annotation`` returns it, where that is unambiguous: a str for
    str, a bool for bool, an int / a decimal string for int / float without bounds, a path (typer's own path checks),
    lists of those; else ``_NOT_PLAIN``."""
    from typing import get_args, get_origin

    from typer._param_types import coerce_cli_path, routes_to_path

    if info.parser is not None:
        return _NOT_PLAIN
    if get_origin(annotation) is list:
        # typer's list adapter: a lone value becomes a one-item list, each item through the item's adapter
        items = [_plain_value(get_args(annotation)[0], info, item, param, ctx)
                 for item in (value if isinstance(value, (list, tuple)) else [value])]
        return _NOT_PLAIN if any(item is _NOT_PLAIN for item in items) else items
    if get_origin(annotation) is not None:
        return _NOT_PLAIN
    if annotation in (str, bool):
        return value if type(value) is annotation else _NOT_PLAIN
    if annotation in (int, float):
        if info.min is not None or info.max is not None or info.clamp:
            return _NOT_PLAIN
        if type(value) is annotation:
            return value
        if annotation is float and type(value) is int and abs(value) < 2**53:
            return float(value)
        if type(value) is str and (_CANONICAL_INT if annotation is int else _CANONICAL_FLOAT).fullmatch(value):
            return annotation(value)  # correctly rounded, as pydantic's parse of the same digits
        return _NOT_PLAIN
    if isinstance(annotation, type) and issubclass(annotation, Path) and routes_to_path(annotation, info):
        path_type = info.path_type or annotation
        if not (isinstance(path_type, type) and issubclass(path_type, Path)):
            return _NOT_PLAIN
        if type(value) is str and value and "\0" not in value:
            value = path_type(value)  # pydantic's Path(str); typer's own checks (exists, ...) follow
        if not isinstance(value, path_type):
            return _NOT_PLAIN
        try:
            return coerce_cli_path(value, info, path_type=path_type, param=param, ctx=ctx)
        except Exception:  # its error message comes from typer's own adapter
            return _NOT_PLAIN
    return _NOT_PLAIN


def _coercion_without_pydantic() -> None:
    """typer 0.29 converts every parameter through a pydantic ``TypeAdapter``: importing pydantic (with
    importlib.metadata for its plugins) and building the adapters cost ~0.1 s of CPU on every command, a tenth
    of a cold frame (docs/speed.md "Cold start, round 5"). Values whose conversion is unambiguous
    (``_plain_value``) are converted here to what the adapter returns; any other value, type or error goes to
    typer's own adapter, built then: the values, --help and every error message stay typer's."""
    try:
        from typer import _coercion, core
    except ImportError:  # another typer layout (< 0.29 has no pydantic): leave it
        return
    build = getattr(core, "build_runtime_param", None)
    base = getattr(_coercion, "RuntimeParam", None)
    if build is None or base is None or getattr(build, "_facerecon_plain", False):
        return
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class PlainFirst(base):
        descriptor: object = None

        def _coerce_value(self, value, param, ctx):
            plain = _plain_value(self.annotation, self.parameter_info, value, param, ctx)
            if plain is not _NOT_PLAIN:
                return plain
            typer_own = self.__dict__.get("_typer_own")
            if typer_own is None:
                typer_own = build(self.descriptor)
                object.__setattr__(self, "_typer_own", typer_own)
            return typer_own._coerce_value(value, param=param, ctx=ctx)

    def build_plain_first(descriptor):
        if descriptor.file_annotation is not None:  # typer opens files without pydantic
            return build(descriptor)
        return PlainFirst(parameter_info=descriptor.parameter_info, annotation=descriptor.annotation, descriptor=descriptor)

    build_plain_first._facerecon_plain = True  # type: ignore[attr-defined]
    core.build_runtime_param = build_plain_first


def get_app() -> typer.Typer:
    """The app with every topic registered (done on first use, so topic modules import alone)."""
    _flags_without_type()
    _coercion_without_pydantic()
    if not getattr(app, "_facerecon_registered", False):
        for name in _COMMAND_MODULES:
            importlib.import_module(f"{__name__}.{name}").register(app)
        app._facerecon_registered = True  # type: ignore[attr-defined]
    return app


# `facerecon reconstruct|pose|track ...` (the command first): an app of that command alone, the same root
# (name, settings, --version): its usage lines, --help and errors are the full app's, without importing the other
# topics' modules and building their ~30 commands (~45 ms of a cold frame; docs/speed.md "Cold start, round 5").
_SOLO_COMMANDS = ("reconstruct", "pose", "track")


def _app_for(argv: list[str] | None) -> typer.Typer:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in _SOLO_COMMANDS:
        return get_app()
    _flags_without_type()
    _coercion_without_pydantic()
    solo = typer.Typer(**_APP_SETTINGS)
    solo.callback()(_root)
    importlib.import_module(f"{__name__}.{args[0]}").register(solo)
    return solo


def _click_exception_types() -> tuple[type, ...]:
    """ClickException from typer's bundled click (typer >= 0.29) and/or a standalone click."""
    types: list[type] = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            types.append(importlib.import_module(name).ClickException)
        except (ImportError, AttributeError):
            pass
    return tuple(types)


def _terminate(signum, frame):
    # SIGTERM unwinds like Ctrl-C, so atomic writes (fileutil.atomic_path / atomic_dir)
    # remove their temporary files instead of leaving .part files behind
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; exit codes: docs/reliability.md (0 ok, 1 error, 2 usage, 3 no face, 4 partial, 130 interrupted)."""
    import signal
    import threading

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        rc = _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if argv is None and _command(argv) in _QUICK_EXIT_COMMANDS and sys.getprofile() is None and sys.gettrace() is None:
        _quick_exit(rc)
    return rc


# The per-frame commands end without the interpreter's teardown: finalising numba, llvmlite, onnxruntime,
# scipy and the rest of the ~1,000 modules a frame loads took ~0.2 s after the last file was written (a
# third of the cold start's margin: docs/speed.md "Cold start, round 4"). Everything they write is
# closed and renamed into place (fileutil.atomic_path / atomic_dir) and their threads joined before
# _main returns; they register no atexit work. Only for the process's own command line (argv None: the
# installed script, python -m facerecon.cli), never for main(argv) called from Python, nor under a profiler or
# tracer (python -m cProfile, coverage: they write their results at the normal exit).
_QUICK_EXIT_COMMANDS = ("reconstruct", "pose", "track")


def _quick_exit(rc: int) -> None:
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # a closed or broken pipe: as the normal exit would
            pass
    os._exit(rc)


# The per-frame commands run their own threads (a reader, the frame pipeline, a writer; docs/speed.md):
# OpenBLAS's own threads only spin-wait beside them (~55 ms of CPU at numpy's import, and up to twice the
# CPU of a written frame for the same wall time), so these commands start with one BLAS thread unless
# the environment says otherwise.
_ONE_BLAS_THREAD_COMMANDS = ("reconstruct", "pose", "track")


def _command(argv: list[str] | None) -> str | None:
    """The command named on the command line (its first word that is not an option)."""
    args = sys.argv[1:] if argv is None else argv
    return next((a for a in args if not a.startswith("-")), None)


def _one_blas_thread(argv: list[str] | None) -> None:
    import os

    if _command(argv) in _ONE_BLAS_THREAD_COMMANDS and "numpy" not in sys.modules:  # read when numpy loads OpenBLAS
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _main(argv: list[str] | None) -> int:
    import os

    _one_blas_thread(argv)
    try:
        # with standalone_mode=False click returns a command's exit code instead of exiting
        rc = _app_for(argv)(args=argv, standalone_mode=False)
        return rc if isinstance(rc, int) else 0
    except UsageError as exc:  # an option's value, found before any model loads
        typer.secho(f"error: {exc.one_line()}", err=True, fg="red")
        return 2
    except FaceReconError as exc:
        typer.secho(f"error: {exc.one_line()}", err=True, fg="red")
        return 1
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # click usage errors carry their own exit code
        from facerecon.cli._frames import interrupt_behind

        if interrupt_behind(exc):  # Ctrl-C / SIGTERM inside compiled code (see interrupt_behind)
            typer.echo("interrupted", err=True)
            return 130
        if isinstance(exc, _click_exception_types()):
            exc.show()
            return exc.exit_code
        if os.environ.get("FACERECON_DEBUG"):
            raise
        # no traceback for any input: one line, the way to get the traceback, exit 1
        if isinstance(exc, OSError) and exc.strerror:
            where = f"{exc.filename}: " if exc.filename else ""
            typer.secho(f"error: {where}{exc.strerror}", err=True, fg="red")
        else:
            detail = " ".join(str(exc).split())[:200]
            typer.secho(f"error: unexpected {exc.__class__.__name__}: {detail} (FACERECON_DEBUG=1 shows the traceback)",
                        err=True, fg="red")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
