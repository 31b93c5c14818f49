"""Regression tests for the audit's reader crash signatures (issue 15) and the class fixes.

Each hostile file must give one ``InputFileError`` line that names the file (never another
exception type), be refused before a large allocation, or be read with its non-physical
values cleaned and an ``InputWarning`` said.
"""
from __future__ import annotations

import io
import json
import struct
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from facerecon.errors import FaceReconError, InputFileError, InputWarning
from facerecon.io import read_depth
from facerecon.io._common import MAX_PIXELS
from facerecon.io.biwi import read_biwi_calibration, read_biwi_depth, read_biwi_pose
from facerecon.evaluate.fuzz import truedepth_ply_bytes
from facerecon.io.images import read_depth_npy, read_depth_npz, write_depth_npz
from facerecon.io.mesh import read_ljson_landmarks, read_mesh
from facerecon.io.pcd import read_pcd, read_pcd_points
from facerecon.io.ply import read_ply_elements
from facerecon.io.truedepth import read_ply_cloud, read_truedepth_frame


def refused(reader, path: Path, match: str | None = None, *args) -> str:
    """The reader raises exactly one InputFileError line naming ``path`` (and ``match``)."""
    with pytest.raises(InputFileError) as exc:
        reader(path, *args)
    msg = str(exc.value)
    assert "\n" not in msg and msg.count(str(path)) == 1, msg
    if match:
        assert match in msg, msg
    return msg


def _depth(h: int = 6, w: int = 8) -> np.ndarray:
    return np.full((h, w), 600.0, np.float32)


# -- npy / npz -------------------------------------------------------------------------


def _npy_with_header(header: bytes, payload: bytes = b"\0" * 16) -> bytes:
    header = header + b" " * (64 - 10 - len(header) - 1) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + payload


def test_npy_header_that_does_not_parse(tmp_path: Path) -> None:
    f = tmp_path / "t.npy"
    f.write_bytes(_npy_with_header(b"{'descr': '<f4', 'fortran_order': False, 'shape': (2,"))
    with pytest.raises(Exception) as raw:  # the audit's signature: numpy raises tokenize.TokenError
        np.load(f)
    assert not isinstance(raw.value, (ValueError, FaceReconError))
    refused(read_depth_npy, f, "header")
    refused(read_depth, f)


def test_npy_header_claiming_a_huge_array_is_refused_before_allocating(tmp_path: Path) -> None:
    f = tmp_path / "big.npy"
    f.write_bytes(_npy_with_header(b"{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000), }"))
    tracemalloc.start()
    refused(read_depth_npy, f, "over the cap")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20
    f.write_bytes(_npy_with_header(b"{'descr': '<f8', 'fortran_order': False, 'shape': (300, 300), }"))
    refused(read_depth_npy, f, "truncated")  # 720,000 bytes claimed, 16 present
    f.write_bytes(_npy_with_header(b"{'descr': '|O', 'fortran_order': False, 'shape': (2, 2), }"))
    refused(read_depth_npy, f, "pickle")


def test_npz_with_a_corrupt_member(tmp_path: Path) -> None:
    f = tmp_path / "c.npz"
    rng = np.random.default_rng(0)
    write_depth_npz(f, rng.uniform(500, 900, (40, 50)).astype(np.float32))
    blob = bytearray(f.read_bytes())
    start = blob.index(b"depth.npy") + len(b"depth.npy")  # inside the deflated member data
    for i in range(start + 40, start + 80):
        blob[i] ^= 0x5A
    f.write_bytes(bytes(blob))
    with pytest.raises(Exception) as raw:  # the audit's signature: zlib.error (or a CRC BadZipFile)
        with np.load(f) as z:
            z["depth"]
    assert not isinstance(raw.value, FaceReconError)
    refused(read_depth_npz, f, "'depth'")
    refused(read_depth, f)


def test_npy_content_named_npz(tmp_path: Path) -> None:
    f = tmp_path / "wrong.npz"
    np.save(tmp_path / "x.npy", _depth())
    f.write_bytes((tmp_path / "x.npy").read_bytes())
    refused(read_depth_npz, f, "not a readable .npz")
    refused(read_depth, f, "look like .npy")


def test_npz_string_intrinsics_unit_and_colour(tmp_path: Path) -> None:
    f = tmp_path / "s.npz"
    np.savez(f, depth=_depth(), intrinsics=np.array(["525", "525", "3.5", "2.5"]))
    refused(read_depth_npz, f, "'intrinsics' must be numbers")
    refused(read_depth, f, "'intrinsics' must be numbers")
    np.savez(f, depth=_depth(), unit=np.array(3.0))
    refused(read_depth_npz, f, "'unit' must be a string")
    np.savez(f, depth=_depth(), unit=np.array("furlong"))
    refused(read_depth_npz, f, "stored unit")
    np.savez(f, depth=_depth(), color=np.array(["x"] * 144).reshape(6, 8, 3))
    refused(read_depth_npz, f, "'color'")


@pytest.mark.parametrize("k", [[0.0, 525.0, 3.5, 2.5], [-525.0, 525.0, 3.5, 2.5], [np.inf, 525.0, 3.5, 2.5],
                               [525.0, 525.0, np.nan, 2.5]])  # fmt: skip
def test_non_physical_intrinsics_are_refused(tmp_path: Path, k) -> None:
    f = tmp_path / "k.npz"
    np.savez(f, depth=_depth(), intrinsics=np.array(k))
    refused(read_depth_npz, f, "'intrinsics'")


def test_npz_member_bomb_is_refused(tmp_path: Path) -> None:
    """A tiny deflated member that claims (and expands to) far more than the cap."""
    f = tmp_path / "bomb.npz"
    n = MAX_PIXELS + 1
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float64))
    header["shape"] = (n, 8)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("depth.npy", "w", force_zip64=True) as fh:
            fh.write(buf.getvalue())
            chunk = bytes(1 << 20)
            for _ in range(8 * n // len(chunk) + 1):
                fh.write(chunk)
    assert f.stat().st_size < 2 * 2**20
    tracemalloc.start()
    refused(read_depth_npz, f, "over the cap")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 * 2**20


def test_depth_beyond_range_is_cleaned_with_a_warning(tmp_path: Path) -> None:
    d = _depth()
    d[0, :3] = [-5.0, np.inf, 2e6]  # negative, infinite, 2 km
    d[1, 0] = np.nan  # "no measurement" in every format: silently 0
    np.save(tmp_path / "d.npy", d)
    with pytest.warns(InputWarning, match="3 depth value") as rec:
        f = read_depth_npy(tmp_path / "d.npy", unit="mm")
    assert str(tmp_path / "d.npy") in str(rec[0].message)
    assert (f.depth_mm[0, :3] == 0).all() and f.depth_mm[1, 0] == 0 and (f.depth_mm[2:] == 600).all()
    np.save(tmp_path / "ok.npy", _depth())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean file says nothing
        read_depth_npy(tmp_path / "ok.npy", unit="mm")


def test_png_chunk_length_beyond_the_file_allocates_nothing(tmp_path: Path) -> None:
    """Found by benchmarks/fuzz.py: Pillow reads a lying IDAT length with fp.read(n), 4 GB up front."""
    from facerecon.io.images import read_depth_png, write_depth_png

    f = tmp_path / "d.png"
    write_depth_png(f, _depth())
    blob = bytearray(f.read_bytes())
    i = blob.index(b"IDAT") - 4
    blob[i : i + 4] = (0xFFFFFFAB).to_bytes(4, "big")
    f.write_bytes(bytes(blob))
    tracemalloc.start()
    refused(read_depth_png, f, "PNG chunk IDAT claims 4,294,967,211 bytes")
    refused(read_depth, f, "PNG chunk IDAT")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5 * 2**20


# -- TrueDepth PLY ---------------------------------------------------------------------


@pytest.mark.parametrize("meta", [b"[1, 2, 3]", b'"a string"', b"42", b"null", b'{"camera_intrinsics": [1, 2]}',
                                  b'{"width": "640", "height": 480}', b'{"width": true, "height": 1}'])  # fmt: skip
def test_truedepth_metadata_of_the_wrong_type(tmp_path: Path, meta: bytes) -> None:
    f = tmp_path / "frame.ply"
    f.write_bytes(truedepth_ply_bytes(_depth() / 1000, raw_meta=meta))
    refused(read_truedepth_frame, f, "TrueDepth metadata")
    refused(read_depth, f)


def test_truedepth_deeply_nested_metadata(tmp_path: Path) -> None:
    f = tmp_path / "frame.ply"
    f.write_bytes(truedepth_ply_bytes(_depth() / 1000, raw_meta=b"[" * 100_000 + b"]" * 100_000))
    with pytest.raises(RecursionError):  # the audit's signature
        json.loads(b"[" * 100_000 + b"]" * 100_000)
    refused(read_truedepth_frame, f, "nested too deeply")


def _info(**cam) -> dict:
    base = {"width": 8, "height": 6, "intrinsic_matrix": [2881.0, 0, 0, 0, 2881.0, 0, 1536.0, 1149.0, 1],
            "intrinsic_matrix_reference_dimensions_width": 3088.0, "intrinsic_matrix_reference_dimensions_height": 2316.0}
    base.update(cam)
    return {"camera_intrinsics": base}


@pytest.mark.parametrize("cam, match", [
    ({"width": float("inf")}, "width/height"), ({"width": -1, "height": -48}, "width/height"),
    ({"width": 8.5}, "width/height"), ({"width": 1 << 40, "height": 1 << 40}, "over the cap"),
    ({"intrinsic_matrix_reference_dimensions_width": 1e308}, "focal length"),
    ({"intrinsic_matrix_reference_dimensions_width": float("inf")}, "reference size"),
    ({"intrinsic_matrix_reference_dimensions_height": 0}, "reference size"),
    ({"intrinsic_matrix": [float("inf"), 0, 0, 0, 2881.0, 0, 1536.0, 1149.0, 1]}, "not finite"),
    ({"intrinsic_matrix": [-2881.0, 0, 0, 0, 2881.0, 0, 1536.0, 1149.0, 1]}, "focal length"),
    ({"intrinsic_matrix": ["a"] * 9}, "camera_intrinsics"),
])  # fmt: skip
def test_truedepth_non_physical_sizes_and_intrinsics(tmp_path: Path, cam: dict, match: str) -> None:
    f = tmp_path / "frame.ply"
    f.write_bytes(truedepth_ply_bytes(_depth() / 1000, _info(**cam)))
    refused(read_truedepth_frame, f, match)


def test_truedepth_good_frame_and_sentinel(tmp_path: Path) -> None:
    d = _depth() / 1000
    d[0, 0] = 9999.0  # the format's "no measurement": silent
    f = tmp_path / "frame.ply"
    f.write_bytes(truedepth_ply_bytes(d, _info()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fr = read_truedepth_frame(f)
    assert fr.depth_mm[0, 0] == 0 and abs(fr.depth_mm[1, 1] - 600) < 1e-3
    assert abs(fr.intrinsics.fx - 2881.0 * 8 / 3088) < 1e-6
    d[0, 1] = -0.5
    f.write_bytes(truedepth_ply_bytes(d, _info()))
    with pytest.warns(InputWarning, match="1 depth value"):
        assert read_truedepth_frame(f).depth_mm[0, 1] == 0


# -- PLY -------------------------------------------------------------------------------


def _ply(header_body: str, data: bytes = b"") -> bytes:
    return f"ply\nformat ascii 1.0\n{header_body}end_header\n".encode() + data


def test_ply_duplicate_property_names(tmp_path: Path) -> None:
    f = tmp_path / "dup.ply"
    f.write_bytes(_ply("element vertex 1\nproperty float x\nproperty float x\nproperty float z\n", b"1 2 3\n"))
    refused(read_ply_elements, f, "declared twice")
    refused(read_ply_cloud, f, "declared twice")
    f.write_bytes(_ply("element vertex 1\nproperty float x\nelement vertex 1\nproperty float y\n", b"1\n2\n"))
    refused(read_ply_elements, f, "declared twice")


def test_ply_negative_and_huge_element_counts(tmp_path: Path) -> None:
    f = tmp_path / "neg.ply"
    f.write_bytes(_ply("element vertex -5\nproperty float x\nproperty float y\nproperty float z\n", b"1 2 3\n"))
    refused(read_ply_elements, f, "negative element count")
    f.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 4294967296\nend_header\n")
    refused(read_ply_elements, f, "over the cap")
    f.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 1000000\nproperty float x\nend_header\n" + b"\0" * 8)
    refused(read_ply_elements, f, "truncated")


def test_ply_list_and_scalar_face_properties(tmp_path: Path) -> None:
    """Scalars before and after a list, rows of different lengths: each scalar in its own column."""
    f = tmp_path / "faces.ply"
    body = ("element vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
            "element face 2\nproperty uchar before\nproperty list uchar int vertex_indices\nproperty uchar flag\n")
    f.write_bytes(_ply(body, b"0 0 1\n1 0 1\n0 1 1\n9 3 0 1 2 7\n8 4 0 1 2 0 6\n"))
    _, data = read_ply_elements(f)
    assert data["face"]["before"].tolist() == [9, 8] and data["face"]["flag"].tolist() == [7, 6]
    assert len(read_ply_cloud(f)["points"]) == 3
    f.write_bytes(_ply(body, b"0 0 1\n1 0 1\n0 1 1\n9 3 0 1\n8 4 0 1 2 0 6\n"))  # a row too short
    refused(read_ply_elements, f, "malformed rows")
    f.write_bytes(_ply(body, b"0 0 1\n1 0 1\n0 1 1\n9 -3 0 1 2 7\n8 4 0 1 2 0 6\n"))  # negative list length
    refused(read_ply_elements, f, "malformed rows")


def test_ply_cloud_nan_vertices_dropped_with_a_warning(tmp_path: Path) -> None:
    f = tmp_path / "cloud.ply"
    f.write_bytes(_ply("element vertex 3\nproperty float x\nproperty float y\nproperty float z\n",
                       b"0 0 1\nnan 0 1\n0 inf 1\n"))  # fmt: skip
    with pytest.warns(InputWarning, match="2 vertices"):
        assert read_ply_cloud(f)["points"].shape == (1, 3)


# -- PCD -------------------------------------------------------------------------------


@pytest.mark.parametrize("count", ["0", "-1", "-3", "100000"])
def test_pcd_bad_count(tmp_path: Path, count: str) -> None:
    f = tmp_path / "c.pcd"
    f.write_bytes(f"VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 {count} 1\nWIDTH 2\nHEIGHT 1\nPOINTS 2\n"
                  "DATA ascii\n0 0 1\n0 0 1\n".encode())  # fmt: skip
    refused(read_pcd_points, f, "COUNT")
    refused(read_depth, f, "COUNT")


def test_pcd_sizes_checked_before_allocating(tmp_path: Path) -> None:
    f = tmp_path / "big.pcd"
    head = "VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH {w}\nHEIGHT {h}\nPOINTS {n}\nDATA {d}\n"
    f.write_bytes(head.format(w=1 << 30, h=1, n=1 << 30, d="ascii").encode() + b"0 0 1\n")
    refused(read_pcd_points, f, "over the cap")
    f.write_bytes(head.format(w=4000, h=4000, n=16_000_000, d="ascii").encode() + b"0 0 1\n")
    refused(read_pcd_points, f, "truncated")
    f.write_bytes(head.format(w=4000, h=4000, n=16_000_000, d="binary_compressed").encode()
                  + struct.pack("<II", 10, 16_000_000 * 12) + b"\0" * 10)  # fmt: skip
    refused(read_pcd_points, f, "cannot expand")


def test_pcd_infinite_points_warned(tmp_path: Path) -> None:
    f = tmp_path / "inf.pcd"
    f.write_bytes(b"VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 3\nHEIGHT 1\nPOINTS 3\n"
                  b"DATA ascii\n0 0 1\nnan nan nan\n0 inf 1\n")  # fmt: skip
    with pytest.warns(InputWarning, match="1 points with infinite"):
        assert read_pcd_points(f).shape == (1, 3)


# -- OBJ, landmarks --------------------------------------------------------------------


def test_obj_face_index_beyond_int64(tmp_path: Path) -> None:
    f = tmp_path / "m.obj"
    f.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 99999999999999999999999\n")
    refused(read_mesh, f, "malformed face")
    f.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1/1 2/-99999999999999999999999 3/1\nvt 0 0\n")
    refused(read_mesh, f, "malformed face")


def test_ply_mesh_sizes_checked_before_trimesh(tmp_path: Path) -> None:
    from facerecon.io.mesh import write_mesh

    f = tmp_path / "m.ply"
    write_mesh(f, np.eye(3), [[0, 1, 2]])
    assert read_mesh(f).n_faces == 1
    blob = f.read_bytes().replace(b"element vertex 3", b"element vertex 3000000")
    f.write_bytes(blob)
    tracemalloc.start()
    refused(read_mesh, f, "PLY header announces")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5 * 2**20
    f.write_bytes(blob.replace(b"element vertex 3000000", b"element vertex -3"))
    refused(read_mesh, f, "negative element count")


def test_obj_nan_vertices_refused(tmp_path: Path) -> None:
    f = tmp_path / "m.obj"
    f.write_text("v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n")
    refused(read_mesh, f, "vertex 2 has a NaN")


def test_ljson_hostile(tmp_path: Path) -> None:
    f = tmp_path / "l.ljson"
    pts = [[0.0, 0.0, 0.0]] * 68
    for doc in ([1, 2], {"landmarks": {"points": pts}, "labels": [{"label": "jaw", "mask": [1.5] * 17}]},
                {"landmarks": {"points": pts}, "labels": ["jaw"]}, {"landmarks": {"points": "abc"}}):
        f.write_text(json.dumps(doc))
        refused(read_ljson_landmarks, f)
    f.write_text("[" * 100_000 + "]" * 100_000)
    refused(read_ljson_landmarks, f, "nested too deeply")


# -- Biwi ------------------------------------------------------------------------------


def test_biwi_header_claiming_16384_squared_allocates_nothing(tmp_path: Path) -> None:
    f = tmp_path / "frame_00001_depth.bin"
    f.write_bytes(struct.pack("<iiii", 16384, 16384, 16384 * 16384, 0))  # the audit's 16-byte file
    assert f.stat().st_size == 16
    tracemalloc.start()
    refused(read_biwi_depth, f, "over the cap")
    refused(read_depth, f, "over the cap")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5 * 2**20
    f.write_bytes(struct.pack("<ii", -640, -480))
    refused(read_biwi_depth, f, "not positive")


def test_biwi_companions_non_physical(tmp_path: Path) -> None:
    cal = tmp_path / "depth.cal"
    cal.write_text("0 0 320\n0 575 240\n0 0 1\n")
    refused(read_biwi_calibration, cal, "focal length", 640, 480)
    cal.write_text("1e999 0 320\n0 575 240\n0 0 1\n")
    refused(read_biwi_calibration, cal, "not finite", 640, 480)
    pose = tmp_path / "frame_00001_pose.txt"
    pose.write_text("1 0 0\n0 1 0\n0 0 1\n\n0 0 1e999\n")
    refused(read_biwi_pose, pose, "finite")


# -- the class fix: any unforeseen failure inside a reader is one line naming the file ---


def test_unexpected_exception_inside_a_reader_becomes_one_line(tmp_path: Path, monkeypatch) -> None:
    import facerecon.io.pcd as pcd

    f = tmp_path / "x.pcd"
    f.write_bytes(b"VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 1\nHEIGHT 1\nPOINTS 1\nDATA ascii\n0 0 1\n")

    def boom(*args, **kwargs):
        raise KeyError("something nobody foresaw")

    monkeypatch.setattr(pcd, "_parse_header", boom)
    msg = refused(read_pcd, f, "KeyError")
    assert "something nobody foresaw" in msg
    refused(read_depth, f, "KeyError")


def test_directory_and_missing_file_are_one_line(tmp_path: Path) -> None:
    d = tmp_path / "frames.png"
    d.mkdir()
    refused(read_depth, d, "is a directory")
    refused(read_depth, tmp_path / "missing.pcd", "no such file")
