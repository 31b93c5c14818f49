"""PCD reader on the real Kinect files, all three DATA encodings, and broken files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facerecon.geometry.camera import Intrinsics, camera_preset
from facerecon.errors import ConfigError, InputFileError
from facerecon.io.pcd import read_pcd, read_pcd_header, read_pcd_points, write_pcd


def _one_line(exc: pytest.ExceptionInfo, name: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg and name in msg


@pytest.fixture(scope="module")
def person(real_dir: Path):
    return read_pcd(real_dir / "kinect-pcl" / "person.pcd")


def test_person_frame(person) -> None:
    assert (person.width, person.height) == (640, 480)
    k = person.intrinsics
    assert k is not None
    assert abs(k.fx - 525) < 0.5 and abs(k.fy - 525) < 0.5
    assert abs(k.cx - 319.5) < 0.5 and abs(k.cy - 239.5) < 0.5
    assert person.meta["intrinsics_fit_rms_px"] < 0.01
    d = person.depth_mm[person.valid]
    assert 0.7 < person.valid.mean() < 0.9  # NaN points -> 0
    assert 500 < d.min() < 1000 and 2000 < np.median(d) < 3500 and d.max() < 5000  # mm, not m
    # the person in front (centre-bottom of the image) is about 0.6-1.2 m away
    assert 600 < np.median(person.depth_mm[300:400, 230:300][person.valid[300:400, 230:300]]) < 1200


def test_object_templates_are_unorganised_face_patches(real_dir: Path) -> None:
    for i in range(6):
        f = real_dir / "kinect-pcl" / f"object_template_{i}.pcd"
        h = read_pcd_header(f)
        assert h.height == 1 and h.data == "ascii" and h.fields[:3] == ["x", "y", "z"]
        pts = read_pcd_points(f)
        assert pts.shape[0] == h.points and 1000 < pts.shape[0] < 2000
        assert 650 < pts[:, 2].min() and pts[:, 2].max() < 850  # ~0.7 m from the camera, in mm
        extent = pts.max(0) - pts.min(0)
        assert (extent[:2] > 100).all() and (extent[:2] < 250).all()  # a face-sized patch
    with pytest.raises(InputFileError, match="unorganised") as exc:
        read_pcd(f)
    _one_line(exc, f.name)
    frame = read_pcd(f, intrinsics=camera_preset("kinect-v1"))
    assert frame.valid.sum() > 1000


@pytest.mark.parametrize("data", ["ascii", "binary", "binary_compressed"])
def test_encodings_round_trip(tmp_path: Path, data: str) -> None:
    k = Intrinsics(100.0, 100.0, 15.5, 11.5, 32, 24)
    depth = np.full((24, 32), 800.0)
    depth[5:10, 5:10] = np.nan
    pts = k.depth_to_points(np.nan_to_num(depth)).astype(np.float64)
    pts[np.isnan(depth)] = np.nan
    write_pcd(tmp_path / f"c_{data}.pcd", pts, data=data)
    frame = read_pcd(tmp_path / f"c_{data}.pcd")
    assert frame.meta["format"] == f"pcd-{data}"
    np.testing.assert_allclose(frame.depth_mm, np.nan_to_num(depth), atol=1e-3)
    assert abs(frame.intrinsics.fx - 100) < 1e-2 and abs(frame.intrinsics.cx - 15.5) < 1e-2
    flat = read_pcd_points(tmp_path / f"c_{data}.pcd")
    assert flat.shape == (24 * 32 - 25, 3)


def test_unit_mm_claim_on_metres_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "c.pcd"
    write_pcd(f, np.full((4, 4, 3), 700.0) * [0, 0, 1] + [1, 1, 0], data="binary")
    with pytest.raises(InputFileError, match="look like metres") as exc:
        read_pcd(f, unit="mm")
    _one_line(exc, "c.pcd")


def test_intrinsics_size_mismatch(real_dir: Path) -> None:
    with pytest.raises(ConfigError):
        read_pcd(real_dir / "kinect-pcl" / "person.pcd", intrinsics=camera_preset("kinect-v2"))


@pytest.mark.parametrize("cut", [60, 200, 500_000])
def test_truncated_person(real_dir: Path, tmp_path: Path, cut: int) -> None:
    bad = tmp_path / "person_cut.pcd"
    bad.write_bytes((real_dir / "kinect-pcl" / "person.pcd").read_bytes()[:cut])
    with pytest.raises(InputFileError) as exc:
        read_pcd(bad)
    _one_line(exc, "person_cut.pcd")


def test_corrupt_compressed_block(real_dir: Path, tmp_path: Path) -> None:
    blob = bytearray((real_dir / "kinect-pcl" / "person.pcd").read_bytes())
    start = blob.index(b"binary_compressed\n") + 18 + 8
    blob[start : start + 64] = b"\xff" * 64  # long back references before any output
    bad = tmp_path / "person_corrupt.pcd"
    bad.write_bytes(bytes(blob))
    with pytest.raises(InputFileError, match="corrupt PCD compressed block") as exc:
        read_pcd(bad)
    _one_line(exc, "person_corrupt.pcd")


def test_bad_ascii_and_binary(real_dir: Path, tmp_path: Path) -> None:
    src = (real_dir / "kinect-pcl" / "object_template_0.pcd").read_bytes()
    bad = tmp_path / "template_cut.pcd"
    bad.write_bytes(src[: len(src) // 2])
    with pytest.raises(InputFileError, match="ascii data has") as exc:
        read_pcd_points(bad)
    _one_line(exc, "template_cut.pcd")
    write_pcd(tmp_path / "b.pcd", np.ones((4, 4, 3)) * 500, data="binary")
    (tmp_path / "b_cut.pcd").write_bytes((tmp_path / "b.pcd").read_bytes()[:-10])
    with pytest.raises(InputFileError, match="truncated") as exc:
        read_pcd(tmp_path / "b_cut.pcd")
    _one_line(exc, "b_cut.pcd")


def test_header_errors(tmp_path: Path) -> None:
    f = tmp_path / "h.pcd"
    f.write_text("VERSION 0.7\nFIELDS x y z\nSIZE 4 4\nTYPE F F F\nWIDTH 2\nHEIGHT 1\nPOINTS 2\nDATA ascii\n0 0 1\n0 0 1\n")
    with pytest.raises(InputFileError, match="different lengths"):
        read_pcd_points(f)
    f.write_text("VERSION 0.7\nFIELDS a b\nSIZE 4 4\nTYPE F F\nWIDTH 2\nHEIGHT 2\nPOINTS 4\nDATA ascii\n" + "1 2\n" * 4)
    with pytest.raises(InputFileError, match="no x/y/z field"):
        read_pcd(f)


def test_packed_rgb_field(tmp_path: Path) -> None:
    header = (
        "VERSION 0.7\nFIELDS x y z rgb\nSIZE 4 4 4 4\nTYPE F F F U\nCOUNT 1 1 1 1\n"
        "WIDTH 2\nHEIGHT 2\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS 4\nDATA binary\n"
    )
    rec = np.zeros(4, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<u4")])
    rec["x"] = [-0.001, 0.001, -0.001, 0.001]
    rec["y"] = [-0.001, -0.001, 0.001, 0.001]
    rec["z"] = 0.8
    rec["rgb"] = [0xFF0000, 0x00FF00, 0x0000FF, 0x102030]
    f = tmp_path / "rgb.pcd"
    f.write_bytes(header.encode() + rec.tobytes())
    frame = read_pcd(f)
    assert frame.color is not None
    np.testing.assert_array_equal(frame.color[1, 1], [0x10, 0x20, 0x30])
    np.testing.assert_array_equal(frame.color[0, 0], [255, 0, 0])
    np.testing.assert_allclose(frame.depth_mm, 800.0)
