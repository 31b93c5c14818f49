"""`facerecon synth` / `synth-preview` through the command module's register()."""
from __future__ import annotations

import typer
from typer.testing import CliRunner

from facerecon.cli.synth import register


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    return app


def test_synth_and_preview(tmp_path, ict_archive):
    out = tmp_path / "ds"
    r = CliRunner().invoke(_app(), ["synth", "--preset", "truedepth", "--n", "3", "-o", str(out), "--seed", "1",
                                    "--shard-size", "2"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (out / "manifest.json").exists() and (out / "shard-000001.fsyn").exists()
    sheet = tmp_path / "sheet.png"
    r = CliRunner().invoke(_app(), ["synth-preview", str(out), "-o", str(sheet), "--count", "3"])
    assert r.exit_code == 0, r.output
    assert sheet.stat().st_size > 10_000
    r = CliRunner().invoke(_app(), ["synth", "--preset", "nope", "--n", "1", "-o", str(tmp_path / "x")])
    assert r.exit_code != 0
