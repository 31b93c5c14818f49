"""The commands' stderr console: rich on a terminal; plain, unwrapped lines otherwise.

When stderr is not a terminal (a log file, a pipe, CI), rich would wrap at 80 columns and split
paths across lines; there every line is printed whole (``soft_wrap``) and tables get room."""
from __future__ import annotations

from rich.console import Console

PIPE_WIDTH = 250  # tables take only the columns they need; long lines are never wrapped


def stderr_console() -> Console:
    console = Console(stderr=True)
    if console.is_terminal:
        return console
    return Console(stderr=True, soft_wrap=True, width=PIPE_WIDTH, highlight=False)
