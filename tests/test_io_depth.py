"""read_depth: dispatch on extension/content and one-line errors for bad paths."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facerecon.geometry.camera import camera_preset
from facerecon.errors import ConfigError, FaceReconError, InputFileError, UnsupportedFormatError
from facerecon.io import DepthFrame, read_depth
from facerecon.io.biwi import write_biwi_frame
from facerecon.io.images import write_depth_png


def _check(exc: pytest.ExceptionInfo, name: str) -> None:
    assert isinstance(exc.value, FaceReconError)
    assert "\n" not in exc.value.one_line() and name in str(exc.value)


def test_dispatch_real_files(real_dir: Path) -> None:
    pcd = read_depth(real_dir / "kinect-pcl" / "person.pcd")
    assert isinstance(pcd, DepthFrame) and pcd.meta["format"] == "pcd-binary_compressed"
    ply = read_depth(real_dir / "truedepth-mannequin" / "DepthFrames" / "frame-030.ply")
    assert ply.meta["format"] == "truedepth-ply" and (ply.width, ply.height) == (320, 240)
    over = read_depth(real_dir / "kinect-pcl" / "person.pcd", intrinsics=camera_preset("kinect-v1-biwi"))
    assert over.intrinsics == camera_preset("kinect-v1-biwi")
    with pytest.raises(ConfigError):
        read_depth(ply.source, intrinsics=camera_preset("kinect-v1"))


def test_dispatch_written_files(tmp_path: Path) -> None:
    d = np.zeros((480, 640))
    d[100:200, 100:200] = 800
    write_depth_png(tmp_path / "a.png", d)
    np.save(tmp_path / "b.npy", d / 1000)
    np.savez(tmp_path / "c.npz", depth=d)
    write_biwi_frame(tmp_path / "frame_00001_depth.bin", d)
    for name in ("a.png", "b.npy", "c.npz", "frame_00001_depth.bin"):
        f = read_depth(tmp_path / name)
        np.testing.assert_allclose(f.depth_mm, d, rtol=1e-6)
    assert read_depth(tmp_path / "b.npy", unit="m").meta["unit"] == "m"
    # content wins when the extension is unknown
    (tmp_path / "noext").write_bytes((tmp_path / "a.png").read_bytes())
    assert read_depth(tmp_path / "noext").meta["format"] == "png16"
    k = camera_preset("kinect-v1")
    assert read_depth(tmp_path / "a.png", intrinsics=k).intrinsics == k


def test_bad_paths(tmp_path: Path, real_dir: Path) -> None:
    with pytest.raises(InputFileError, match="no such file") as exc:
        read_depth(tmp_path / "missing.png")
    _check(exc, "missing.png")
    with pytest.raises(InputFileError, match="directory") as exc:
        read_depth(tmp_path)
    _check(exc, tmp_path.name)
    (tmp_path / "empty.pcd").write_bytes(b"")
    with pytest.raises(InputFileError, match="empty") as exc:
        read_depth(tmp_path / "empty.pcd")
    _check(exc, "empty.pcd")
    (tmp_path / "x.exr").write_bytes(b"v/1\x01 not supported")
    with pytest.raises(UnsupportedFormatError) as exc:
        read_depth(tmp_path / "x.exr")
    _check(exc, "x.exr")
    with pytest.raises(UnsupportedFormatError, match="not a depth frame") as exc:
        read_depth(real_dir / "truedepth-mannequin" / "Expected.ply")
    _check(exc, "Expected.ply")
    (tmp_path / "fake.png").write_bytes(b"hello, not an image")
    with pytest.raises(InputFileError) as exc:
        read_depth(tmp_path / "fake.png")
    _check(exc, "fake.png")
    (tmp_path / "liar.png").write_bytes((real_dir / "kinect-pcl" / "object_template_0.pcd").read_bytes())
    with pytest.raises(InputFileError, match="look like .pcd") as exc:
        read_depth(tmp_path / "liar.png")
    _check(exc, "liar.png")
