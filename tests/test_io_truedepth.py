"""TrueDepth PLY frames and the fused Expected.ply cloud (real StandardCyborg files)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facerecon.errors import ConfigError, InputFileError
from facerecon.io.truedepth import is_truedepth_ply, read_ply_cloud, read_ply_points, read_truedepth_frame


@pytest.fixture(scope="module")
def frames_dir(real_dir: Path) -> Path:
    return real_dir / "truedepth-mannequin" / "DepthFrames"


def test_frame(frames_dir: Path) -> None:
    f = read_truedepth_frame(frames_dir / "frame-000.ply")
    assert (f.width, f.height) == (320, 240)
    k = f.intrinsics
    assert abs(k.fx - 298.6) < 0.1 and abs(k.fy - 298.6) < 0.1
    assert abs(k.cx - 159.2) < 0.1 and abs(k.cy - 119.1) < 0.1
    assert f.color is not None and f.color.shape == (240, 320, 3) and f.color.dtype == np.uint8
    d = f.depth_mm[f.valid]
    assert d.max() < 100_000  # the 9999 m sentinel is gone
    assert 0.02 < (~f.valid).mean() < 0.3
    assert 250 < d.min() < 320 and 400 < np.median(d) < 600  # the head is ~0.3 m away
    assert "camera_intrinsics" in f.meta["truedepth"]


def test_colour_is_the_rounded_channels(frames_dir: Path) -> None:
    """The colour image (one compiled pass) is the float channels x 255, rounded and clipped, NaN as 0 and
    infinities as 0 / 255: the NumPy expression's values, on a real frame and on hostile channel values."""
    from facerecon.io._fixed import colour_u8
    from facerecon.io.ply import read_ply_elements

    def numpy_colour(chans):
        rgb = np.nan_to_num(np.stack([np.asarray(c, np.float64) for c in chans], axis=-1), nan=0.0)
        with np.errstate(over="ignore"):
            return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)

    path = frames_dir / "frame-000.ply"
    col = read_ply_elements(path)[1]["color"]
    assert np.array_equal(read_truedepth_frame(path).color.reshape(-1, 3), numpy_colour([col[c] for c in "rgb"]))
    hostile = np.array([np.nan, np.inf, -np.inf, 0.5 / 255, 1.5 / 255, 254.5 / 255, -1e-9, 2.0, 1e38, -1e38, 0.0], np.float32)
    chans = [hostile, hostile[::-1].copy(), np.roll(hostile, 3)]
    got = np.empty((len(hostile), 3), np.uint8)
    colour_u8(*chans, got)
    assert np.array_equal(got, numpy_colour(chans))


def test_all_frames_share_the_camera(frames_dir: Path) -> None:
    files = sorted(frames_dir.glob("frame-*.ply"))
    assert len(files) == 30
    for p in files[::10]:
        assert is_truedepth_ply(p)
        assert abs(read_truedepth_frame(p).intrinsics.fx - 298.6) < 0.5


def test_expected_cloud(real_dir: Path) -> None:
    path = real_dir / "truedepth-mannequin" / "Expected.ply"
    assert not is_truedepth_ply(path)
    cloud = read_ply_cloud(path)
    pts = cloud["points"]
    assert pts.shape == (45428, 3)
    assert cloud["normals"].shape == pts.shape and cloud["colors"].dtype == np.uint8
    extent = pts.max(0) - pts.min(0)
    assert (extent > 150).all() and (extent < 500).all()  # a head in mm
    np.testing.assert_allclose(read_ply_points(path)[:5], pts[:5])


def test_unit_contradiction(frames_dir: Path) -> None:
    with pytest.raises(ConfigError):
        read_truedepth_frame(frames_dir / "frame-000.ply", unit="mm")


@pytest.mark.parametrize("cut", [100, 5000, 1_000_000])
def test_truncated_frame(frames_dir: Path, tmp_path: Path, cut: int) -> None:
    bad = tmp_path / "frame_cut.ply"
    bad.write_bytes((frames_dir / "frame-000.ply").read_bytes()[:cut])
    with pytest.raises(InputFileError) as exc:
        read_truedepth_frame(bad)
    assert "\n" not in str(exc.value) and "frame_cut.ply" in str(exc.value)


def test_corrupt_metadata(frames_dir: Path, tmp_path: Path) -> None:
    blob = bytearray((frames_dir / "frame-000.ply").read_bytes())
    i = blob.index(b'{"absolute_timestamp"')
    blob[i] = ord("x")
    bad = tmp_path / "frame_json.ply"
    bad.write_bytes(bytes(blob))
    with pytest.raises(InputFileError, match="not valid JSON") as exc:
        read_truedepth_frame(bad)
    assert "frame_json.ply" in str(exc.value)


def test_truncated_expected(real_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "Expected_cut.ply"
    bad.write_bytes((real_dir / "truedepth-mannequin" / "Expected.ply").read_bytes()[:200_000])
    with pytest.raises(InputFileError, match="truncated") as exc:
        read_ply_points(bad)
    assert "\n" not in str(exc.value) and "Expected_cut.ply" in str(exc.value)
