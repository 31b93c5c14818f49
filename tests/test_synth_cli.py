"""`facerecon synth` / `synth-preview` through the command module's register()."""
from __future__ import annotations

import pytest
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


def test_progress_rate_is_samples_over_wall_time(tmp_path):
    """The bar's frames/s: samples made this run / seconds since the command started (loading
    included), resumed samples not counted; never the rate of the samples after the first."""
    from facerecon.cli.synth import Rate, _existing_folder_samples

    r = Rate(100.0)
    assert r(0, 106.0) == 0.0  # the face model loading: nothing made yet
    assert r(1, 106.5) == pytest.approx(1 / 6.5)
    assert r(10, 107.0) == pytest.approx(10 / 7.0)  # issue #25: 10 frames in 7 s is 1.4 frames/s, not 36
    resumed = Rate(0.0, already=8)
    assert resumed(8, 1.0) == 0.0 and resumed(10, 2.0) == pytest.approx(1.0)
    for i in (0, 1, 3):
        (tmp_path / f"{i:06d}.depth.npz").write_bytes(b"x")
    (tmp_path / "000002.depth.png").write_bytes(b"x")
    assert _existing_folder_samples(tmp_path, 3, "npz") == 2
    assert _existing_folder_samples(tmp_path / "missing", 3, "npz") == 0
