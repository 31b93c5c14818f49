"""16-bit PNG, .npy and .npz depth: units, writers, refusals."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facerecon.geometry.camera import Intrinsics
from facerecon.errors import InputFileError
from facerecon.io.images import (
    read_depth_npy,
    read_depth_npz,
    read_depth_png,
    write_depth_npz,
    write_depth_png,
)


def _depth_mm() -> np.ndarray:
    d = np.zeros((48, 64))
    d[10:40, 20:50] = np.linspace(600, 900, 30)[None, :]
    return d


def test_png_round_trip(tmp_path: Path) -> None:
    write_depth_png(tmp_path / "d.png", _depth_mm() + 0.4)
    with Image.open(tmp_path / "d.png") as im:
        assert im.mode.startswith("I")
    f = read_depth_png(tmp_path / "d.png")
    np.testing.assert_array_equal(f.depth_mm, np.rint(_depth_mm() + 0.4) * (_depth_mm() > 0))
    assert f.intrinsics is None and f.meta["unit"] == "mm"


def test_png_refuses_8bit_and_truncation(tmp_path: Path) -> None:
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(tmp_path / "grey.png")
    with pytest.raises(InputFileError, match="not 16-bit") as exc:
        read_depth_png(tmp_path / "grey.png")
    assert "grey.png" in str(exc.value)
    write_depth_png(tmp_path / "d.png", _depth_mm())
    (tmp_path / "cut.png").write_bytes((tmp_path / "d.png").read_bytes()[:60])
    with pytest.raises(InputFileError) as exc:
        read_depth_png(tmp_path / "cut.png")
    assert "\n" not in str(exc.value) and "cut.png" in str(exc.value)


def test_npy_units(tmp_path: Path) -> None:
    mm = _depth_mm().astype(np.float32)
    np.save(tmp_path / "m.npy", mm / 1000.0)
    np.save(tmp_path / "mm.npy", mm)
    np.testing.assert_allclose(read_depth_npy(tmp_path / "m.npy", unit="m").depth_mm, mm, rtol=1e-6)
    np.testing.assert_allclose(read_depth_npy(tmp_path / "mm.npy", unit="mm").depth_mm, mm)
    guessed = read_depth_npy(tmp_path / "m.npy")  # no unit: guessed from the values
    assert guessed.meta["unit"] == "m" and guessed.meta["unit_guessed"]
    np.testing.assert_allclose(guessed.depth_mm, mm, rtol=1e-6)
    with pytest.raises(InputFileError, match="look like metres") as exc:
        read_depth_npy(tmp_path / "m.npy", unit="mm")
    assert "m.npy" in str(exc.value)
    with pytest.raises(InputFileError, match="look like millimetres"):
        read_depth_npy(tmp_path / "mm.npy", unit="m")
    np.save(tmp_path / "int.npy", mm.astype(np.uint16))
    assert read_depth_npy(tmp_path / "int.npy").meta["unit"] == "mm"


def test_npy_refuses_non_2d_and_garbage(tmp_path: Path) -> None:
    np.save(tmp_path / "cube.npy", np.ones((4, 5, 6), np.float32))
    with pytest.raises(InputFileError, match="2-D") as exc:
        read_depth_npy(tmp_path / "cube.npy")
    assert "cube.npy" in str(exc.value)
    np.save(tmp_path / "ok.npy", _depth_mm())
    (tmp_path / "cut.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:300])
    with pytest.raises(InputFileError) as exc:
        read_depth_npy(tmp_path / "cut.npy")
    assert "\n" not in str(exc.value) and "cut.npy" in str(exc.value)


def test_npz_round_trip_and_keys(tmp_path: Path) -> None:
    k = Intrinsics(60.0, 61.0, 31.5, 23.5, 64, 48)
    colour = np.zeros((48, 64, 3), np.uint8)
    write_depth_npz(tmp_path / "f.npz", _depth_mm(), k, colour)
    f = read_depth_npz(tmp_path / "f.npz")
    np.testing.assert_allclose(f.depth_mm, _depth_mm())
    assert f.intrinsics == k and f.meta["unit"] == "mm" and f.color is not None
    np.savez(tmp_path / "metres.npz", depth=_depth_mm() / 1000, unit="m", intrinsics=k.matrix)
    g = read_depth_npz(tmp_path / "metres.npz")
    np.testing.assert_allclose(g.depth_mm, _depth_mm(), rtol=1e-6)
    assert g.intrinsics == k
    np.savez(tmp_path / "nodepth.npz", image=_depth_mm())
    with pytest.raises(InputFileError, match="no 'depth'") as exc:
        read_depth_npz(tmp_path / "nodepth.npz")
    assert "nodepth.npz" in str(exc.value)
    (tmp_path / "cut.npz").write_bytes((tmp_path / "f.npz").read_bytes()[:100])
    with pytest.raises(InputFileError) as exc:
        read_depth_npz(tmp_path / "cut.npz")
    assert "\n" not in str(exc.value) and "cut.npz" in str(exc.value)
