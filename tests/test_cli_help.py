"""`facerecon --help`: the summary names photos as well as depth frames; flags show no `<bool>` type."""
from __future__ import annotations

import pytest

from facerecon.cli import main


@pytest.mark.parametrize("args", [["--help"], ["track", "--help"], ["view", "--help"], ["photo-depth", "--help"]])
def test_help_shows_flags_without_a_type(args, capsys):
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Usage" in out and "<bool>" not in out, out
    assert "--help" in out and "Show this message" in out
    if args == ["--help"]:
        text = " ".join(out.split())
        assert "single depth image" not in text and "photos" in text and "depth frames" in text, text
    if args[0] == "track":
        assert "--no-refine" in out and "<float>" in out  # value options keep their type
