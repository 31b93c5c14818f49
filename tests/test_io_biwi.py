"""Biwi frames: round trip through our writer (no real Biwi file is shared) and broken files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facerecon.geometry.camera import camera_preset
from facerecon.errors import ConfigError, InputFileError
from facerecon.io.biwi import (
    read_biwi_calibration,
    read_biwi_depth,
    read_biwi_frame,
    read_biwi_pose,
    write_biwi_depth,
    write_biwi_frame,
)


def _depth() -> np.ndarray:
    rng = np.random.default_rng(1)
    d = np.zeros((480, 640))
    d[120:330, 250:420] = rng.integers(700, 1300, (210, 170))
    d[200:210, 300:310] = 0  # a hole inside the head
    d[0, 0], d[-1, -1] = 900, 901  # runs touching both ends
    return d


def _rotation() -> np.ndarray:
    a = np.deg2rad(20)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def test_round_trip(tmp_path: Path) -> None:
    d, rot, t = _depth(), _rotation(), np.array([12.5, -30.25, 950.0])
    path = tmp_path / "01" / "frame_00004_depth.bin"
    write_biwi_frame(path, d, (rot, t), camera_preset("kinect-v1-biwi"))
    frame = read_biwi_frame(path)
    np.testing.assert_array_equal(frame.depth_mm, d.astype(np.float32))
    assert frame.intrinsics == camera_preset("kinect-v1-biwi")
    r2, t2 = frame.meta["pose"]
    np.testing.assert_allclose(r2, rot, atol=1e-7)
    np.testing.assert_allclose(t2, t)


def test_file_layout(tmp_path: Path) -> None:
    path = tmp_path / "frame_00000_depth.bin"
    write_biwi_depth(path, np.array([[0, 0, 5, 6], [0, 0, 0, 0]]))
    words = np.frombuffer(path.read_bytes()[:16], dtype="<i4")
    assert list(words) == [4, 2, 2, 2]  # width, height, n_empty, n_full
    assert list(np.frombuffer(path.read_bytes()[16:20], dtype="<i2")) == [5, 6]
    assert list(np.frombuffer(path.read_bytes()[20:], dtype="<i4")) == [4, 0]  # trailing empty run


def test_without_companions(tmp_path: Path) -> None:
    path = tmp_path / "frame_00001_depth.bin"
    write_biwi_depth(path, _depth())
    frame = read_biwi_frame(path)
    assert frame.intrinsics is None and "pose" not in frame.meta
    with pytest.raises(ConfigError):
        read_biwi_frame(path, unit="m")


def test_calibration_text(tmp_path: Path) -> None:
    cal = tmp_path / "depth.cal"
    cal.write_text("575.816 0 320 \n0 575.816 240 \n0 0 1 \n\n0 0 0 0 \n\n1 0 0 \n0 1 0 \n0 0 1 \n\n0 0 0 \n\n640 480\n")
    k = read_biwi_calibration(cal)
    assert (k.fx, k.cx, k.cy, k.width, k.height) == (575.816, 320.0, 240.0, 640, 480)


@pytest.mark.parametrize("cut", [3, 8, 20, 5000])
def test_truncated_depth(tmp_path: Path, cut: int) -> None:
    good = tmp_path / "frame_00002_depth.bin"
    write_biwi_depth(good, _depth())
    bad = tmp_path / "frame_00003_depth.bin"
    bad.write_bytes(good.read_bytes()[:cut])
    with pytest.raises(InputFileError) as exc:
        read_biwi_depth(bad)
    assert "\n" not in str(exc.value) and "frame_00003_depth.bin" in str(exc.value)


def test_corrupt_depth(tmp_path: Path) -> None:
    bad = tmp_path / "frame_00005_depth.bin"
    bad.write_bytes(np.array([4, 2, 3, 100], dtype="<i4").tobytes() + b"\x00" * 200)
    with pytest.raises(InputFileError, match="overflows"):
        read_biwi_depth(bad)
    bad.write_bytes(np.array([100000, 100000], dtype="<i4").tobytes())
    with pytest.raises(InputFileError, match="over the cap"):
        read_biwi_depth(bad)
    bad.write_bytes(np.array([4, 2, -1, 3], dtype="<i4").tobytes())
    with pytest.raises(InputFileError, match="negative"):
        read_biwi_depth(bad)


def test_bad_pose(tmp_path: Path) -> None:
    p = tmp_path / "frame_00006_pose.txt"
    p.write_text("1 0 0\n0 1 0\n\n1 2 3\n")
    with pytest.raises(InputFileError, match="12 numbers") as exc:
        read_biwi_pose(p)
    assert "frame_00006_pose.txt" in str(exc.value)
    p.write_text("2 0 0\n0 1 0\n0 0 1\n\n1 2 3\n")
    with pytest.raises(InputFileError, match="not a rotation"):
        read_biwi_pose(p)
