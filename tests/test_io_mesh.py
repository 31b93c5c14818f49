"""Mesh I/O: the real james scan, landmark order, OBJ round trip with per-corner UVs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facerecon.errors import InputFileError, UnsupportedFormatError
from facerecon.io.mesh import read_ljson_landmarks, read_mesh, write_mesh


@pytest.fixture(scope="module")
def james(real_dir: Path):
    return read_mesh(real_dir / "scan-james" / "james.obj")


def test_james_counts(james, real_dir: Path) -> None:
    assert james.n_vertices == 6393 and james.n_faces == 12228
    assert james.uv is not None and james.uv.shape == (6680, 2)  # more UVs than vertices (seams)
    assert james.face_uv.shape == (12228, 3)
    first = next(ln for ln in (real_dir / "scan-james" / "james.obj").read_text().splitlines() if ln.startswith("v "))
    np.testing.assert_allclose(james.vertices[0], [float(x) for x in first.split()[1:4]])  # file order kept
    extent = james.vertices.max(0) - james.vertices.min(0)
    assert (extent > 150).all() and (extent < 400).all()  # a head in mm


def test_landmarks(real_dir: Path, james) -> None:
    path = real_dir / "scan-james" / "james.ljson"
    lm = read_ljson_landmarks(path)
    assert lm.shape == (68, 3)
    raw = read_ljson_landmarks(path, order="file")
    assert sorted(map(tuple, raw)) == sorted(map(tuple, lm))
    # iBUG order: nose tip (30) is the most forward point, chin (8) the lowest,
    # eye corners 36/45 on opposite sides, eyebrows above the eyes.
    assert lm[:, 2].argmax() == 30 and lm[:, 1].argmin() == 8
    assert lm[36, 0] < lm[39, 0] < lm[42, 0] < lm[45, 0]
    assert lm[17:27, 1].mean() > lm[36:48, 1].mean()
    # the stored order is different (eyes before brows): reordering is needed
    assert raw[:, 2].argmax() != 30
    from scipy.spatial import cKDTree

    assert cKDTree(james.vertices).query(lm)[0].max() < 10  # on the scan surface (mm)


def test_obj_round_trip_per_corner_uv(tmp_path: Path, james) -> None:
    out = tmp_path / "j.obj"
    write_mesh(out, james.vertices, james.faces, james.uv, james.face_uv)
    back = read_mesh(out)
    assert back.n_vertices == james.n_vertices
    np.testing.assert_allclose(back.vertices, james.vertices, atol=1e-5)
    np.testing.assert_array_equal(back.faces, james.faces)
    np.testing.assert_array_equal(back.face_uv, james.face_uv)
    np.testing.assert_allclose(back.uv, james.uv, atol=1e-6)


def test_quads_and_units(tmp_path: Path) -> None:
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0]], float)
    faces = [[0, 1, 2, 3], [1, 4, 2]]
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5], [0.2, 0.2]])
    face_uv = [[0, 1, 2, 3], [5, 4, 2]]
    write_mesh(tmp_path / "q.obj", v, faces, uv, face_uv)
    assert "f 1/1 2/2 3/3 4/4" in (tmp_path / "q.obj").read_text()
    m = read_mesh(tmp_path / "q.obj", unit="cm")
    assert m.n_faces == 3 and m.n_vertices == 5
    np.testing.assert_allclose(m.vertices, v * 10)
    np.testing.assert_array_equal(m.face_uv[2], [5, 4, 2])


@pytest.mark.parametrize("ext", ["ply", "glb"])
def test_trimesh_formats(tmp_path: Path, james, ext: str) -> None:
    write_mesh(tmp_path / f"j.{ext}", james.vertices, james.faces, james.uv, james.face_uv)
    back = read_mesh(tmp_path / f"j.{ext}")
    assert back.n_faces == james.n_faces
    if ext == "ply":  # order kept, no UVs (they are per corner)
        assert back.n_vertices == james.n_vertices
        np.testing.assert_allclose(back.vertices, james.vertices, atol=1e-3)
    else:  # GLB splits vertices on UV seams
        assert back.n_vertices == len(np.unique(np.stack([james.faces.ravel(), james.face_uv.ravel()], 1), axis=0))
        assert back.uv is not None


def test_broken_files(tmp_path: Path, real_dir: Path) -> None:
    text = (real_dir / "scan-james" / "james.obj").read_text()
    (tmp_path / "cut.obj").write_text(text[: len(text) // 3])
    with pytest.raises(InputFileError) as exc:
        read_mesh(tmp_path / "cut.obj")
    assert "\n" not in str(exc.value) and "cut.obj" in str(exc.value)
    (tmp_path / "bad.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n")
    with pytest.raises(InputFileError, match="refers to vertex 9"):
        read_mesh(tmp_path / "bad.obj")
    (tmp_path / "m.xyz").write_text("0 0 0\n")
    with pytest.raises(UnsupportedFormatError):
        read_mesh(tmp_path / "m.xyz")
    lj = (real_dir / "scan-james" / "james.ljson").read_text()
    (tmp_path / "cut.ljson").write_text(lj[:500])
    with pytest.raises(InputFileError) as exc:
        read_ljson_landmarks(tmp_path / "cut.ljson")
    assert "cut.ljson" in str(exc.value)


def test_obj_text_paths_agree(monkeypatch) -> None:
    """The OBJ writer's fast paths give the bytes of the plain ones: the numba rows of the vertex lines
    (against the NumPy table, which the tests of the format itself cover), and the face block of a padded
    (F, K) polygon array (-1 pads a triangle) with usemtl runs against one format per polygon."""
    import numpy as np

    from facerecon.io import mesh

    rng = np.random.default_rng(1)
    values = [rng.normal(0, 60, (500, 3)), rng.normal(0, 1e5, (300, 3)), rng.uniform(-1, 1, (200, 2)),
              np.array([[0.0, -0.0, -1e-7], [999998.9999994, -999998.9999996, 5e-7], [-4e-7, -5e-7, -6e-7],
                        [1.0000005, 2.5e-6, -123456.7890125]]),
              # the plain formatting's cases, which the compiled pass hands back: not finite, a million or more
              np.array([[1.0, np.inf, 2.0], [np.nan, 0.0, -1.0]]), np.array([[999999.0, 1.0, 2.0]]), np.array([[-1e6, 0.5, 3.0]])]
    for a in values:
        for prefix in (b"v", b"vt"):
            monkeypatch.setattr(mesh, "_NUMBA", False)
            plain = mesh._fixed_point_lines(prefix, a)
            monkeypatch.setattr(mesh, "_NUMBA", True)
            assert mesh._fixed_point_lines(prefix, a) == plain
            # "%.6f" but for the sign of values that round to zero (random values: no exact half-way ties, which the
            # table rounds to even on the scaled value, e.g. 2.5e-6 -> 0.000002 where "%.6f" gives 0.000003)
            assert len(a) < 100 or [x.lstrip("-") for x in plain.decode().split()] == [
                x.lstrip("-") for row in a for x in (prefix.decode(), *(f"{v:.6f}" for v in row))]
    polys = rng.integers(0, 1_200_000, (400, 4))
    polys[rng.random(400) < 0.3, 3] = -1
    puv = rng.integers(0, 999, (400, 4))
    puv[polys[:, 3] == -1, 3] = -1
    names = tuple(rng.choice(["face", "rest", "50%"], 400).tolist())
    topo = mesh._Topology(polys, puv)
    expected, current = [], None
    for q, t, name in zip(polys, puv, names):
        if name != current:
            expected.append(f"usemtl {name}")
            current = name
        expected.append("f " + " ".join(f"{a + 1}/{b + 1}" for a, b in zip(q, t) if a >= 0))
    assert topo.obj_faces(True, names).decode() == "\n".join(expected) + "\n"
    assert topo.obj_faces(False).decode() == "\n".join("f " + " ".join(str(a + 1) for a in q if a >= 0) for q in polys) + "\n"
    lists = [q[q >= 0] for q in polys]
    assert mesh._Topology(lists, [t[t >= 0] for t in puv]).obj_faces(True, names) == topo.obj_faces(True, names)


def test_vertex_lines_reuse_the_last_block() -> None:
    """A vertex block written after another of the same shape reuses its lines where a row has the same bits
    (a frame's face.obj, then face_model.obj): every block gives the bytes of a fresh ``_fixed_point_lines``,
    whatever was written before (rows changed by one ulp, 0.0 after -0.0, the plain path's values between)."""
    from facerecon.io import mesh

    rng = np.random.default_rng(7)
    a = rng.normal(0, 80, (1000, 3))
    b = a.copy()
    b[rng.random(1000) < 0.2] += 0.5
    b[3, 1] = np.nextafter(b[3, 1], np.inf)
    a[5], b[5] = [-0.0, 1.0, 2.0], [0.0, 1.0, 2.0]
    hostile = a.copy()
    hostile[9, 0] = np.nan
    for block in (a, b, b, hostile, a, rng.normal(0, 80, (999, 3)), b, a[::-1]):
        assert bytes(mesh._vertex_lines(block)) == mesh._fixed_point_lines(b"v", block)
