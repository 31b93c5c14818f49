"""Rigged GLB export: Khronos validator, round trip against the OBJ, targets, texture, speed and size."""
from __future__ import annotations

import time

import gltf_helpers
import numpy as np
import pytest
from gltf_helpers import load_posed, synthetic_rec, validate

ict_model = gltf_helpers.ict_model  # the session-scoped face model fixture, shared by the glTF tests


@pytest.fixture(scope="module")
def model(ict_model):
    return ict_model


@pytest.fixture(scope="module")
def rec(model):
    return synthetic_rec(model)


@pytest.fixture(scope="module")
def written(model, rec, tmp_path_factory):
    from facerecon.geometry.camera import Intrinsics
    from facerecon.export import write_face_meshes

    out = tmp_path_factory.mktemp("glb")
    tex = np.zeros((64, 64, 3), np.uint8)
    tex[..., 0] = np.arange(64, dtype=np.uint8)[None] * 4
    k = Intrinsics(520.0, 520.0, 320.0, 240.0, 640, 480)
    paths = write_face_meshes(rec, model, out, ("obj", "glb"), texture=tex, intrinsics=k, rig="ict")
    return out, paths


@pytest.fixture(scope="module")
def written_arkit(model, rec, tmp_path_factory):
    """The default rig (arkit52), as reconstruct writes it."""
    from facerecon.export import write_face_meshes

    out = tmp_path_factory.mktemp("glb52")
    return out, write_face_meshes(rec, model, out, ("obj", "glb"))


def test_writes_textured_obj_and_glbs(written):
    out, paths = written
    names = {p.name for p in paths}
    assert {"face.obj", "face_head.obj", "face.glb", "face_head.glb", "face.png", "face.mtl"} <= names
    text = (out / "face.obj").read_text()
    assert text.startswith("mtllib face.mtl\n") and "\nusemtl face\nf " in text
    assert "map_Kd face.png" in (out / "face.mtl").read_text()


def test_obj_texture_only_on_face_skin(model, written):
    """The texture is ICT's face-skin tile: eyes and the back of the head (UVs in [1, 2]) must not wrap onto it."""
    out, _ = written
    current, materials = None, []
    for line in (out / "face.obj").read_text().splitlines():
        if line.startswith("usemtl "):
            current = line.split()[1]
        elif line.startswith("f "):
            materials.append(current)
    skin = np.asarray(model.polygon_material) == model.materials.index("M_Face")
    assert len(materials) == len(skin)
    assert (np.array(materials) == "face").tolist() == skin.tolist()
    assert "newmtl rest" in (out / "face.mtl").read_text()


def test_validator_zero_errors_zero_warnings(written, written_arkit):
    """Both rigs: ict (55 targets, textured, with the sensor camera) and arkit52 (52, tongueOut a zero target)."""
    paths = [d / n for d in (written[0], written_arkit[0]) for n in ("face.glb", "face_head.glb")]
    for rep in validate(*paths):
        assert rep["errors"] == 0 and rep["warnings"] == 0, rep["messages"]


def test_round_trip_matches_obj_and_reconstruction(model, rec, written):
    from facerecon.io.mesh import read_mesh

    out, _ = written
    cam, g = load_posed(out / "face.glb", model.n_vertices)
    assert np.isfinite(cam).all()  # every ICT vertex is in the file
    obj = read_mesh(out / "face.obj").vertices
    assert np.abs(cam - obj).max() < 0.01
    assert np.abs(cam - rec.vertices_camera).max() < 0.01
    head, _ = load_posed(out / "face_head.glb", model.n_vertices)
    assert np.abs(head - rec.vertices_head).max() < 0.01
    # the root node turns the camera frame into glTF's y-up, -z-forward frame
    assert g.nodes[0].rotation == [1.0, 0.0, 0.0, 0.0] and g.nodes[0].children == [1]


def test_morph_targets_are_the_named_ict_expressions(model, rec, written):
    """--rig ict: today's 55 targets (names, order, extras) and deltas."""
    from facerecon.export.gltf import arkit_target_name

    out, _ = written
    _, g = load_posed(out / "face.glb", model.n_vertices)
    names = g.meshes[0].extras["targetNames"]
    assert len(names) == model.n_expression == 55
    assert names == [arkit_target_name(n) for n in model.expression_names]
    assert g.meshes[0].extras == {"targetNames": names, "ict_names": list(model.expression_names)}
    for n in ("jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "browInnerUpLeft", "cheekPuffRight", "mouthSmileLeft", "pupilDilateLeft"):
        assert n in names
    np.testing.assert_allclose(g.meshes[0].weights, rec.expression, atol=1e-12)
    # jawOpen at 1 moves exactly the ICT jawOpen delta
    w = np.zeros(55)
    w[names.index("jawOpen")] = 1.0
    zero, _ = load_posed(out / "face_head.glb", model.n_vertices, np.zeros(55))
    jaw, _ = load_posed(out / "face_head.glb", model.n_vertices, w)
    d = model.expression_basis[model.expression_names.index("jawOpen")]
    assert np.abs((jaw - zero) - d).max() < 1e-3 and np.abs(d).max() > 5.0


def test_texture_embedded_and_camera(written):
    from pygltflib import GLTF2

    out, _ = written
    g = GLTF2().load(str(out / "face.glb"))
    assert len(g.images) == 1 and g.images[0].mimeType == "image/png"
    textured = [m for m in g.materials if m.pbrMetallicRoughness.baseColorTexture is not None]
    assert [m.name for m in textured] == ["face_skin"]
    cam = g.cameras[0]
    assert cam.extras["fx"] == 520.0 and abs(cam.perspective.yfov - 2 * np.arctan(240 / 520)) < 1e-9


def test_export_time_and_size(model, rec, tmp_path):
    from facerecon.export.gltf import gltf_layout, write_glb

    gltf_layout(model)  # per-model work, cached
    t = time.perf_counter()
    info = write_glb(tmp_path / "face.glb", rec, model)
    ms = (time.perf_counter() - t) * 1e3
    print(f"GLB export {ms:.0f} ms, {info.bytes} bytes")
    assert info.bytes == (tmp_path / "face.glb").stat().st_size
    assert info.bytes < 12_000_000 and ms < 5000  # loose: the machine may be busy


def test_vertex_normals_are_the_sparse_products(model):
    """The GLB's normals (one compiled pass) are NumPy's cross products summed by the layout's CSR normal
    operator and made unit length, bit for bit; unused vertices get (0, 0, -1)."""
    from facerecon.export.gltf import _vertex_normals, gltf_layout

    layout = gltf_layout(model, "arkit52")
    rng = np.random.default_rng(3)
    for k in range(3):
        v = np.asarray(model.neutral, np.float64) + rng.normal(0.0, 0.5 * k, (model.n_vertices, 3))
        tris = layout.triangles
        fn = np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])
        vn = layout.vertex_normals_op @ fn
        norm = np.linalg.norm(vn, axis=1, keepdims=True)
        bad = norm[:, 0] < 1e-12
        want = np.where(bad[:, None], [0.0, 0.0, -1.0], vn / np.where(bad[:, None], 1.0, norm))
        got = _vertex_normals(layout, v)
        assert np.array_equal(got.view(np.int64), want.view(np.int64))
