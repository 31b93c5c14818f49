"""One exception family for everything facerecon reports to a user.

Every error carries a one-line message; errors about a file name the file first, so
the CLI can print ``error: <file>: <problem>`` and exit non-zero without a traceback.
"""
from __future__ import annotations

from pathlib import Path


class FaceReconError(Exception):
    """Base class: a problem the user can act on (bad input, missing asset, ...)."""

    def one_line(self) -> str:
        return " ".join(str(self).split())


class InputFileError(FaceReconError):
    """A file that cannot be read as what it claims to be (truncated, corrupt, wrong shape or unit)."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class UnsupportedFormatError(InputFileError):
    """The file's format (by extension or content) is not one facerecon reads."""


class AssetError(FaceReconError):
    """The face model (or another asset) cannot be found, fetched or converted."""


class NoFaceFoundError(FaceReconError):
    """A depth frame in which no head could be localised."""


class ConfigError(FaceReconError):
    """An unknown preset/configuration name or an invalid setting."""


class UsageError(ConfigError):
    """A command-line option with a value the command cannot take (unknown preset, format, method,
    ``--set`` key): found before any model loads; the command line exits with code 2."""


class InputWarning(UserWarning):
    """A file was read, but non-physical values in it were cleaned (e.g. depth beyond a sensor's range).

    Emitted with :func:`warnings.warn`; the message names the file and what was changed.
    """
