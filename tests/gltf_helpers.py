"""Shared by the glTF, animation and viewer tests: the Khronos validator, an independent GLB reader,
and one seeded synthetic reconstruction (session-scoped: the face model loads once)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
VALIDATE = REPO / "tools" / "js" / "validate.mjs"
VALIDATOR_PKG = REPO / "tools" / "js" / "node_modules" / "gltf-validator"

_TYPES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
_DTYPES = {5126: np.float32, 5125: np.uint32, 5123: np.uint16, 5121: np.uint8}


def validate(*paths: Path) -> list[dict]:
    """Run the Khronos glTF validator (node) on files; skip when node or the package is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the glTF validator cannot run (make install)")
    if not VALIDATOR_PKG.is_dir():
        pytest.skip(f"gltf-validator is not installed in {VALIDATOR_PKG.parent} (run make install)")
    out = subprocess.run([node, str(VALIDATE), *map(str, paths)], capture_output=True, text=True, timeout=120)
    reports = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == len(paths), out.stderr
    return reports


def read_accessor(g, blob: bytes, index: int) -> np.ndarray:
    """An accessor's elements (sparse substitution applied), read independently of the exporter."""
    a = g.accessors[index]
    n = _TYPES[a.type]
    dtype = _DTYPES[a.componentType]
    if a.bufferView is None:
        out = np.zeros((a.count, n), dtype)
    else:
        v = g.bufferViews[a.bufferView]
        start = (v.byteOffset or 0) + (a.byteOffset or 0)
        out = np.frombuffer(blob, dtype, a.count * n, start).reshape(a.count, n).copy()
    if a.sparse is not None:
        s = a.sparse
        iv, vv = g.bufferViews[s.indices.bufferView], g.bufferViews[s.values.bufferView]
        idx = np.frombuffer(blob, _DTYPES[s.indices.componentType], s.count, (iv.byteOffset or 0) + (s.indices.byteOffset or 0))
        val = np.frombuffer(blob, dtype, s.count * n, (vv.byteOffset or 0) + (s.values.byteOffset or 0)).reshape(s.count, n)
        out[idx.astype(np.int64)] = val
    if a.normalized and dtype == np.uint8:
        out = out.astype(np.float32) / 255.0
    return out


def _quat_matrix(q) -> np.ndarray:
    x, y, z, w = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def load_posed(path: Path, n_vertices: int, weights=None) -> tuple[np.ndarray, object]:
    """(V, 3) mm in the node's parent frame (camera frame for face.glb): base + weights x targets, face node applied."""
    from pygltflib import GLTF2

    g = GLTF2().load(str(path))
    blob = g.binary_blob()
    mesh = g.meshes[0]
    w = np.asarray(mesh.weights if weights is None else weights, np.float64)
    node = next(nd for nd in g.nodes if nd.mesh == 0)
    r = _quat_matrix(node.rotation) if node.rotation else np.eye(3)
    t = np.asarray(node.translation or [0, 0, 0], np.float64)
    out = np.full((n_vertices, 3), np.nan)
    for p in mesh.primitives:
        base = read_accessor(g, blob, p.attributes.POSITION).astype(np.float64)
        for wi, tgt in zip(w, p.targets):
            base += wi * read_accessor(g, blob, tgt["POSITION"] if isinstance(tgt, dict) else tgt.POSITION)
        ict = read_accessor(g, blob, p.attributes._ICT_VERTEX)[:, 0].astype(np.int64)
        out[ict] = (base @ r.T + t) * 1000.0
    return out, g


@pytest.fixture(scope="session")
def ict_model(ict_archive):
    from facerecon.facemodel import FaceModel

    return FaceModel.load()


def synthetic_rec(model, seed: int = 7, expression: bool = True, euler=(25.0, -12.0, 6.0), t=(15.0, -30.0, 620.0)):
    """A FaceResult-shaped object: seeded identity (and expression), a head pose."""
    from facerecon.geometry.pose import HeadPose
    from facerecon.geometry.rotations import euler_to_matrix

    rng = np.random.default_rng(seed)
    identity = rng.normal(0, 1, model.n_identity)
    expr = np.clip(rng.normal(0.15, 0.25, model.n_expression), 0, 1) if expression else np.zeros(model.n_expression)
    vh = model.vertices(identity, expr).astype(np.float64)
    pose = HeadPose(euler_to_matrix(*euler), np.asarray(t, np.float64))
    vc = pose.apply(vh)
    return SimpleNamespace(vertices_head=vh, vertices_camera=vc, identity=identity, expression=expr, pose=pose,
                           source="synthetic test face", landmarks_3d=vc[model.landmarks_68])
