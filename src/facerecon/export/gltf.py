"""Rigged glTF 2.0 (GLB): the reconstructed person as an ICT-FaceKit rig with ARKit-named morph targets.

What a file holds (see docs/animation.md):

* one mesh, one primitive per ICT material (skin, back of the head, gums, teeth, sclera, iris,
  eye shells, lashes) so a viewer can colour them apart; the base positions are the person's
  face at expression 0 (``vertices_head`` minus the expression deltas: identity and anything
  else the reconstruction baked in), in **metres** (the file's mm are scaled by 0.001);
* morph targets (POSITION deltas) by rig (:mod:`.rig`): ``arkit52`` (default) ARKit's 52
  blendshapes by name and in ARKit's order (``browInnerUp`` / ``cheekPuff`` = the sum of ICT's
  left and right shapes, ``tongueOut`` zero, pupils dropped), or ``ict`` ICT's 55 (the 53
  ARKit-style expressions, ``eyeBlink_L`` -> ``eyeBlinkLeft``, ``browInnerUp`` and ``cheekPuff``
  split left / right, and the two pupil-dilation shapes as ``pupilDilateLeft/Right``); names in
  ``mesh.extras.targetNames``; deltas are sparse accessors (only vertices a shape moves);
* ``mesh.weights`` = the reconstructed expression as the rig's weights, clamped to ARKit's
  [0, 1], so the file opens showing the reconstruction;
* ICT's UVs as TEXCOORD_0 (glTF's v runs down: v' = 1 - v). ICT stores UVs per face corner, so
  a vertex on a UV seam becomes several glTF vertices; ``_ICT_VERTEX`` (an application-specific
  attribute) keeps the ICT vertex index of every glTF vertex and the morph deltas follow the split;
* smooth normals of the base mesh (no normal morph targets: they would double the size);
* optionally (``normal_texture``) a tangent-space normal map of the face skin (the detail layer,
  :func:`facerecon.fitting.detail.normal_map`) as the face material's ``normalTexture``, with the
  ``TANGENT`` frame it was baked in (:func:`facerecon.facemodel.uv.uv_tangents` on the base mesh:
  xyz along +u, w so that the bitangent points up the image, glTF's "+Y up") on the face primitive;
  the morph targets move the positions under it, so the detail animates with the expression;
* nodes: ``camera_to_gltf`` (root: 180 deg about x, so the camera frame's x right / y down /
  z forward becomes glTF's x right / y up / -z forward and the file opens upright) -> ``face``
  (the head pose R, t: head frame -> camera frame; identity in the head-frame copy).
  With ``intrinsics`` a glTF perspective camera sits at the camera origin (exact intrinsics in
  its extras), so a viewer can look at the mesh as the sensor saw it.

The per-model work (seam split, sparse deltas, normal operator) is cached on the model, and an
untextured file per (rig, frame kind, intrinsics) as a byte template (:class:`_GlbTemplate`): a
further frame fills in positions, normals, bounds, weights and pose (~20 ms instead of ~55, same bytes).
"""
from __future__ import annotations

import io
import json
import re
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..facemodel.model import content_fingerprint, csr_unit_normals, incidence_csr, triangle_normals
from ..facemodel.uv import uv_tangents
from ..fileutil import atomic_path
from .rig import (
    DEFAULT_RIG,
    check_rig,
    current_rig,
    ict_target_name,
    rig_targets,
    target_weights,
)

M_PER_MM = 1e-3
# Deltas smaller than this (mm, largest coordinate) are left out of the sparse morph targets:
# a coordinate then differs by at most 1e-4 mm x sum(|weights|) (typically < 0.001 mm; round trip target 0.01 mm).
DELTA_EPS_MM = 1e-4
# camera frame (x right, y down, z forward) -> glTF (x right, y up, z towards the viewer): 180 deg about x
CAMERA_TO_GLTF_XYZW = [1.0, 0.0, 0.0, 0.0]

_FLOAT, _USHORT, _UINT, _UBYTE = 5126, 5123, 5125, 5121
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963

# RGBA base colours (linear) per ICT material; the cosmetic eye shells are nearly transparent
# (ICT draws them with alpha textures).
_MATERIAL_LOOK: dict[str, tuple[float, float, float, float]] = {
    "M_Face": (0.80, 0.60, 0.50, 1.0),
    "M_BackHead": (0.80, 0.60, 0.50, 1.0),
    "M_GumsTongue": (0.60, 0.22, 0.25, 1.0),
    "M_Teeth": (0.90, 0.88, 0.80, 1.0),
    "M_ScleraLeft": (0.92, 0.92, 0.90, 1.0),
    "M_ScleraRight": (0.92, 0.92, 0.90, 1.0),
    "M_IrisLeft": (0.20, 0.13, 0.08, 1.0),
    "M_IrisRight": (0.20, 0.13, 0.08, 1.0),
    "M_LacrimalFluid": (1.0, 1.0, 1.0, 0.05),
    "M_EyeBlend": (0.80, 0.60, 0.50, 0.0),
    "M_EyeOcclusion": (0.0, 0.0, 0.0, 0.0),
    "M_EyeLashes": (0.06, 0.05, 0.04, 0.45),
}
_DEFAULT_LOOK = (0.8, 0.6, 0.5, 1.0)
# The photo texture (one UV tile, [0,1]^2) belongs to the skin of the face only (group face_skin).
# Primitives: ICT materials grouped so that the file has few accessors (a dozen primitives x 55
# targets made pygltflib's JSON the slowest part of the export); colours within a group are
# per-vertex (COLOR_0), the texture only ever on the face skin.
_GROUPS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("face_skin", ("M_Face",), False),
    ("head_mouth_eyes", ("M_BackHead", "M_GumsTongue", "M_Teeth", "M_ScleraLeft", "M_ScleraRight", "M_IrisLeft", "M_IrisRight"), False),
    ("eye_shells_lashes", ("M_LacrimalFluid", "M_EyeBlend", "M_EyeOcclusion", "M_EyeLashes"), True),
)


def arkit_target_name(ict_name: str) -> str:
    """ICT ``eyeBlink_L`` -> ARKit ``eyeBlinkLeft``; ``jawOpen`` stays; ``PupilDilate_L`` -> ``pupilDilateLeft``."""
    return ict_target_name(ict_name)


@dataclass
class _Primitive:
    material: str  # group name
    materials: tuple
    blend: bool
    colour: np.ndarray  # (n, 4) uint8 per-vertex RGBA from the ICT material
    src: np.ndarray  # (n,) ICT vertex of each glTF vertex
    uv_index: np.ndarray  # (n,) ICT UV index of each glTF vertex
    texcoord: np.ndarray  # (n, 2) float32, glTF convention (v down)
    indices: np.ndarray  # (3t,) uint16 or uint32
    targets: list  # per morph target: (local indices uint16/uint32 ascending, (k, 3) float32 deltas in m, min, max)


@dataclass
class GltfLayout:
    """Model-dependent, reconstruction-independent part of the export (cached per model)."""

    primitives: list[_Primitive]
    target_names: list[str]
    ict_names: list[str]  # the model's expression names (ICT)
    expression_basis: np.ndarray  # (E, V, 3) float64, mm
    triangles: np.ndarray  # (T, 3) all ICT triangles, outward winding
    vertex_normals_op: object  # Csr (V, T): sums triangle area-normals at vertices
    rig: str = DEFAULT_RIG
    target_sources: list | None = None  # per target: the indices of the ICT shapes it sums

    @property
    def n_gltf_vertices(self) -> int:
        return int(sum(len(p.src) for p in self.primitives))


def gltf_layout(model, rig: str = DEFAULT_RIG) -> GltfLayout:
    """The seam split and sparse morph deltas of ``rig`` for ``model`` (built once per rig, then cached on the model)."""
    rig = check_rig(rig)
    cache = model.__dict__.setdefault("_gltf_layout_cache", {})
    if rig not in cache:
        cache[rig] = _build_layout(model, rig)
    return cache[rig]


def _index_array(a: np.ndarray, n: int) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.uint16 if n < 65535 else np.uint32)


def _build_layout(model, rig: str) -> GltfLayout:
    tris = np.asarray(model.triangles, np.int64)
    tuv = np.asarray(model.triangle_uv, np.int64)
    neutral = np.asarray(model.neutral, np.float64)
    # ICT winds its triangles clockwise seen from outside the head in our (right-handed, y-down)
    # head frame? Decide from the data: the face normals must point towards the camera (-z).
    fn = np.cross(neutral[tris[:, 1]] - neutral[tris[:, 0]], neutral[tris[:, 2]] - neutral[tris[:, 0]])
    face = model.region_mask("narrow_face")[tris].all(1)
    if fn[face, 2].sum() > 0:
        tris, tuv = tris[:, ::-1].copy(), tuv[:, ::-1].copy()
    basis = _expression_basis64(model)
    ict_names = list(model.expression_names)
    target_names, sources = rig_targets(rig, ict_names)
    prims = []
    mats = np.asarray(model.triangle_material)
    names = list(model.materials)
    grouped = {m for _, ms, _ in _GROUPS for m in ms}
    groups = list(_GROUPS) + [("other", tuple(m for m in names if m not in grouped), False)]
    for gname, gmats, blend in groups:
        ids = [names.index(m) for m in gmats if m in names]
        sel = np.isin(mats, ids)
        if not sel.any():
            continue
        # the distinct (vertex, uv) corners, in (vertex, uv) order: one int64 key per corner
        # (np.unique over rows, axis=0, sorts a void view: ~0.3 s of every cold start)
        n_uv = len(model.uv)
        keys, inverse = np.unique(tris[sel].ravel() * n_uv + tuv[sel].ravel(), return_inverse=True)
        src, pair_uv = keys // n_uv, keys % n_uv
        uv = np.asarray(model.uv, np.float64)[pair_uv]
        texcoord = np.stack([uv[:, 0], 1.0 - uv[:, 1]], 1).astype(np.float32)
        n = len(src)
        # a vertex's colour: the look of the material of (one of) its triangles
        corner_mat = np.repeat(mats[sel], 3)
        vert_mat = np.empty(n, np.int64)
        vert_mat[inverse.reshape(-1)] = corner_mat
        looks = np.array([_MATERIAL_LOOK.get(m, _DEFAULT_LOOK) for m in names])
        rgba = looks[vert_mat]
        _paint_irises(rgba, neutral[src], [names[i] for i in vert_mat])
        colour = np.round(rgba * 255).astype(np.uint8)
        targets = []
        for srcs in sources:  # a target's displacement: the sum of its ICT shapes (none: zero)
            d = basis[srcs[0], src] if len(srcs) == 1 else sum((basis[e, src] for e in srcs), np.zeros((n, 3)))
            keep = np.abs(d).max(1) > DELTA_EPS_MM
            local = np.flatnonzero(keep)
            vals = (d[keep] * M_PER_MM).astype(np.float32)
            mn = vals.min(0) if len(vals) else np.zeros(3, np.float32)
            mx = vals.max(0) if len(vals) else np.zeros(3, np.float32)
            if len(vals) < n:  # the vertices left out are zeros
                mn, mx = np.minimum(mn, 0), np.maximum(mx, 0)
            targets.append((_index_array(local, n), vals, mn, mx))
        prims.append(_Primitive(gname, tuple(gmats), blend, colour, src, pair_uv, texcoord, _index_array(inverse.reshape(-1), n),
                                targets))
    return GltfLayout(prims, target_names, ict_names, basis, tris, _normals_operator(tris, model.n_vertices), rig, sources)


def _expression_basis64(model) -> np.ndarray:
    """(E, V, 3) float64 mm: the model's expression basis as the writer computes with it (cached on the model)."""
    cache = model.__dict__.setdefault("_gltf_basis64", {})
    if "basis" not in cache:
        cache["basis"] = np.asarray(model.expression_basis, np.float64)
    return cache["basis"]


def _normals_operator(tris: np.ndarray, n_vertices: int):
    """The sparse (V, T) matrix (:class:`Csr`: scipy's CSR arrays, without importing scipy.sparse) that sums the
    triangles' area normals at their vertices."""
    t = len(tris)
    return incidence_csr(tris.ravel(), np.repeat(np.arange(t), 3), (n_vertices, t))


def _paint_irises(rgba: np.ndarray, v: np.ndarray, mat_names: list[str]) -> None:
    """ICT's sclera meshes are whole eyeballs (the iris is a texture): paint iris and pupil on
    their front caps, around the axis from each eyeball's centre towards the camera (-z)."""
    for side in ("Left", "Right"):
        sel = np.array([m == f"M_Sclera{side}" for m in mat_names])
        if not sel.any():
            continue
        d = v[sel] - v[sel].mean(0)
        cos = -d[:, 2] / np.maximum(np.linalg.norm(d, axis=1), 1e-9)
        c = rgba[sel]
        c[cos > np.cos(np.deg2rad(32))] = _MATERIAL_LOOK["M_IrisLeft"]
        c[cos > np.cos(np.deg2rad(12))] = (0.02, 0.02, 0.02, 1.0)
        rgba[sel] = c


def _vertex_normals(layout, v: np.ndarray) -> np.ndarray:
    """Unit vertex normals of ``v`` on ``layout``'s triangles (a GltfLayout or a _GlbTemplate): the
    triangles' area normals summed at their vertices by the layout's normal operator (a (V, T) CSR
    matrix), unit length; unused vertices get (0, 0, -1)."""
    op = layout.vertex_normals_op
    fn = triangle_normals(np.ascontiguousarray(v, np.float64), np.ascontiguousarray(layout.triangles, np.int64))
    return csr_unit_normals(fn, op.indptr, op.indices, op.data, True)


class _Blob:
    """The GLB binary chunk: 4-byte aligned bufferViews."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.size = 0
        self.views: list = []

    def view(self, data: bytes, target: int | None = None) -> int:
        from pygltflib import BufferView

        self.views.append(BufferView(buffer=0, byteOffset=self.size, byteLength=len(data), target=target))
        self.parts.append(data)
        self.size += len(data)
        pad = -self.size % 4
        if pad:
            self.parts.append(b"\0" * pad)
            self.size += pad
        return len(self.views) - 1

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def _minmax(a: np.ndarray) -> tuple[list[float], list[float]]:
    # per column over a transposed copy: min / max along axis 0 of an (n, 3) array is ~30x slower (same values)
    a = np.ascontiguousarray(a.reshape(len(a), -1).T)
    return [float(x) for x in a.min(1)], [float(x) for x in a.max(1)]


def base_vertices_head(rec, layout: GltfLayout) -> np.ndarray:
    """(V, 3) mm: the reconstruction at expression 0 (everything but the expression baked in)."""
    return _base_vertices(rec, layout.expression_basis)


def _base_vertices(rec, e: np.ndarray) -> np.ndarray:
    expr = np.asarray(rec.expression, np.float64).reshape(-1)
    expr = np.pad(expr, (0, e.shape[0] - len(expr)))
    v = np.asarray(rec.vertices_head, np.float64)
    return v - np.tensordot(expr, e, axes=(0, 0))


def _node_pose(pose) -> tuple[list[float], list[float]]:
    """The face node's rotation (xyzw) and translation (m) of a head pose."""
    w, x, y, z = (float(v) for v in pose.quaternion_wxyz)
    q = np.array([x, y, z, w])
    return [float(v) for v in q / np.linalg.norm(q)], [float(v) * M_PER_MM for v in np.asarray(pose.t_mm, np.float64)]


def _png_bytes(texture: np.ndarray, what: str = "texture", compress_level: int = 6) -> bytes:
    from PIL import Image

    img = np.asarray(texture)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or img.dtype != np.uint8:
        raise ValueError(f"{what} must be an (H, W, 3) uint8 image, got {img.shape} {img.dtype}")
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def build_glb(rec, model, frame: str = "camera", texture: np.ndarray | None = None, intrinsics=None,
              png: bytes | None = None, rig: str | None = None, normal_texture: np.ndarray | None = None,
              normal_png: bytes | None = None) -> bytes:
    """The GLB bytes of ``rec`` (``frame`` = 'camera': node carries the head pose; 'head': identity;
    ``rig``: 'arkit52' or 'ict', see :mod:`.rig`; None: the current default).  ``normal_texture``
    ((S, S, 3) uint8, ICT's face UV tile, glTF tangent space; or its PNG bytes ``normal_png``) becomes
    the face skin's ``normalTexture``, with ``TANGENT`` on the face primitive."""
    return b"".join(_glb_parts(rec, model, frame, texture, intrinsics, png, rig, normal_texture, normal_png))


def _glb_parts(rec, model, frame: str = "camera", texture: np.ndarray | None = None, intrinsics=None,
               png: bytes | None = None, rig: str | None = None, normal_texture: np.ndarray | None = None,
               normal_png: bytes | None = None) -> list[bytes]:
    """:func:`build_glb`'s bytes as the pieces they are joined from."""
    rig = check_rig(rig or current_rig())
    if normal_texture is not None and texture is None and png is None:
        normal_png = _png_bytes(normal_texture, "normal texture")
    templated = texture is None and png is None and normal_texture is None  # untextured, or the normal map's PNG alone
    if templated and str(getattr(rec, "source", "")):
        template = _glb_template(rec, model, rig, frame, intrinsics, normal_png)
        if template is not None:
            return template.render_parts(rec, model, normal_png)
    layout = gltf_layout(model, rig)
    return [_glb_bytes(_gltf_document(rec, model, layout, frame, texture, intrinsics, png, normal_texture, normal_png))]


def _glb_bytes(doc) -> bytes:
    g, blob = doc
    g.set_binary_blob(blob.bytes())
    return b"".join(g.save_to_bytes())


_SLOT = "@@facerecon-slot-{}@@"
_SLOT_RE = re.compile(r'"@@facerecon-slot-(\d+)@@"')
_MAX_TEMPLATES = 16  # per model: (rig, frame, intrinsics, normal map) keys; a folder from one sensor uses one or two


@dataclass
class _GlbTemplate:
    """An untextured GLB (or one with the detail layer's normal map alone) of one (model, rig, frame kind,
    intrinsics) as constant bytes with holes.

    Between two reconstructions only the base positions and normals (binary), the position
    accessors' min / max, the mesh weights, the face node's pose and the source name (JSON)
    change: 52 sparse morph targets, indices, UVs, colours and the whole JSON structure do not.
    The JSON is kept as the text pygltflib wrote, split at those values; the binary chunk as the
    constant runs between the position / normal views. Rendering fills the holes with the same
    arithmetic and the same ``json`` formatting, so the bytes equal a full pygltflib build
    (checked on the build the template is made from, and in tests/test_gltf_template.py).  With a
    normal map, the face primitive's tangents are a binary hole too, and the PNG (its length varies)
    is the binary chunk's tail, its bufferView's and the buffer's byteLength JSON slots.

    A template holds what rendering needs of the layout (the triangles, each primitive's ICT vertex
    and UV index per glTF vertex), so a template read from the disk cache (:func:`_read_template`)
    renders without the layout (the seam split, the morph deltas) or pygltflib.
    """

    json_parts: list[str]  # constant JSON text; slot k sits between json_parts[k] and json_parts[k + 1]
    slots: list[tuple]  # per JSON slot, in text order: ("min" | "max", primitive) / ("weights",) / ("rotation",) / ("translation",) / ("source",)
    #                     / ("image_length",) / ("buffer_length",)
    bin_parts: list[bytes]  # constant binary runs; hole k (a primitive's positions, normals or tangents; the image) after bin_parts[k]
    holes: list[tuple]  # per binary hole, in offset order: ("POSITION" | "NORMAL" | "TANGENT", primitive) / ("IMAGE",)
    rig: str
    triangles: np.ndarray  # (T, 3) the layout's triangles (outward winding)
    src: list[np.ndarray]  # per primitive: the ICT vertex of each glTF vertex
    uv_index: list[np.ndarray]  # per primitive: the ICT UV index of each glTF vertex
    n_vertices: int  # the model's
    _op: object = field(default=None, repr=False, compare=False)

    @property
    def vertex_normals_op(self):
        if self._op is None:
            self._op = _normals_operator(self.triangles, self.n_vertices)
        return self._op

    def render(self, rec, model, normal_png: bytes | None = None) -> bytes:
        return b"".join(self.render_parts(rec, model, normal_png))

    def render_parts(self, rec, model, normal_png: bytes | None = None) -> list[bytes]:
        """The GLB of :meth:`render` as the pieces it is joined from (a writer writes them as they are:
        the constant runs, ~6.6 MB of morph targets, are not copied into a new object per frame)."""
        base = _base_vertices(rec, _expression_basis64(model))
        normals = _vertex_normals(self, base)
        tangents = uv_tangents(model, base, normals) if normal_png is not None else None
        arrays, bounds = {}, {}
        for i, (src, uv_index) in enumerate(zip(self.src, self.uv_index)):
            pos = (base[src] * M_PER_MM).astype(np.float32)
            arrays["POSITION", i] = pos
            arrays["NORMAL", i] = normals[src].astype(np.float32)
            if tangents is not None and ("TANGENT", i) in self.holes:
                arrays["TANGENT", i] = tangents[uv_index].astype(np.float32)
            bounds["min", i], bounds["max", i] = _minmax(pos)
        if normal_png is not None:  # the tail, padded to 4 bytes as _Blob does
            arrays["IMAGE",] = np.frombuffer(normal_png + b"\0" * (-len(normal_png) % 4), np.uint8)
        rotation, translation = _node_pose(rec.pose)
        values = {("weights",): [float(w) for w in target_weights(rec.expression, self.rig, list(model.expression_names))],
                  ("rotation",): rotation, ("translation",): translation, ("source",): str(getattr(rec, "source", ""))}
        if normal_png is not None:
            values["image_length",] = len(normal_png)
            values["buffer_length",] = sum(len(b) for b in self.bin_parts) + sum(arrays[h].nbytes for h in self.holes)
        text = [self.json_parts[0]]
        for slot, part in zip(self.slots, self.json_parts[1:]):
            value = bounds[slot] if slot[0] in ("min", "max") else values[slot]
            text += [json.dumps(value, separators=(",", ":"), allow_nan=False), part]
        js = "".join(text).encode("utf-8")
        js += b" " * (-len(js) % 4)
        binary = [self.bin_parts[0]]
        for hole, part in zip(self.holes, self.bin_parts[1:]):
            binary += [arrays[hole].tobytes(), part]
        n_bin = sum(len(b) for b in binary)
        head = struct.pack("<4sIII4s", b"glTF", 2, 12 + 8 + len(js) + 8 + n_bin, len(js), b"JSON")
        return [head, js, struct.pack("<I4s", n_bin, b"BIN\0"), *binary]


def glb_templates(model) -> dict:
    """The GLB templates made or read in this process for ``model``: (rig, frame, intrinsics, with a normal
    map) -> :class:`_GlbTemplate`, or None where the template would not give the full build's bytes."""
    return model.__dict__.setdefault("_glb_templates", {})


def _glb_template(rec, model, rig: str, frame: str, intrinsics, normal_png: bytes | None = None) -> _GlbTemplate | None:
    """The template of (``rig``, ``frame``, ``intrinsics``, with or without a normal map) for ``model``: from
    this process's cache, else from the disk cache (:func:`_template_file`), else made from ``rec``'s full
    build (and written to the disk cache); None where the template would not give the full build's bytes
    (then the caller builds in full)."""
    k = intrinsics
    key = (rig, frame, None if k is None or frame != "camera" else
           tuple(float(x) for x in (k.fx, k.fy, k.cx, k.cy, k.width, k.height)), normal_png is not None)
    templates = glb_templates(model)
    if key in templates:
        return templates[key]
    path, key_text = _template_file(model, key)
    template = _read_template(path, key_text, model) if path is not None else None
    if template is None:
        layout = gltf_layout(model, rig)
        full = _glb_bytes(_gltf_document(rec, model, layout, frame, None, intrinsics, None, None, normal_png))
        template = _make_template(full, layout, frame)
        if template is not None and template.render(rec, model, normal_png) != full:
            template = None
        if template is not None and path is not None:
            _write_template(path, key_text, template)
    if len(templates) >= _MAX_TEMPLATES:
        templates.pop(next(iter(templates)))
    templates[key] = template
    return template


def _make_template(glb: bytes, layout: GltfLayout, frame: str) -> _GlbTemplate | None:
    n_json = struct.unpack_from("<I", glb, 12)[0]
    text = glb[20:20 + n_json].decode("utf-8").rstrip(" ")
    binary = glb[20 + n_json + 8:]
    doc = json.loads(text)
    if json.dumps(doc, separators=(",", ":"), allow_nan=False) != text:
        return None
    slots, holes = [], []

    def hole(obj: dict, name: str, slot: tuple) -> None:
        obj[name] = _SLOT.format(len(slots))
        slots.append(slot)

    prims = doc["meshes"][0]["primitives"]
    if len(prims) != len(layout.primitives) or _SLOT_RE.search(text):
        return None
    for i, prim in enumerate(prims):
        acc = doc["accessors"][prim["attributes"]["POSITION"]]
        hole(acc, "min", ("min", i))
        hole(acc, "max", ("max", i))
        for attr in ("POSITION", "NORMAL", "TANGENT"):
            if attr not in prim["attributes"]:
                continue
            view = doc["bufferViews"][doc["accessors"][prim["attributes"][attr]]["bufferView"]]
            holes.append((view.get("byteOffset", 0), view["byteLength"], (attr, i)))
    images = doc.get("images", [])
    if len(images) > 1:
        return None
    if images:  # the normal map: the last bufferView, up to the end of the binary chunk (its padding included)
        view = doc["bufferViews"][images[0]["bufferView"]]
        off = view.get("byteOffset", 0)
        if off + view["byteLength"] + (-view["byteLength"] % 4) != len(binary) or doc["buffers"][0]["byteLength"] != len(binary):
            return None
        holes.append((off, len(binary) - off, ("IMAGE",)))
        hole(view, "byteLength", ("image_length",))
        hole(doc["buffers"][0], "byteLength", ("buffer_length",))
    hole(doc["meshes"][0], "weights", ("weights",))
    if frame == "camera":
        hole(doc["nodes"][1], "rotation", ("rotation",))
        hole(doc["nodes"][1], "translation", ("translation",))
    hole(doc["asset"]["extras"]["facerecon"], "source", ("source",))
    pieces = _SLOT_RE.split(json.dumps(doc, separators=(",", ":"), allow_nan=False))
    json_parts, order = pieces[0::2], [int(x) for x in pieces[1::2]]
    holes.sort()
    bin_parts, at = [], 0
    for off, n, _ in holes:
        bin_parts.append(binary[at:off])
        at = off + n
    bin_parts.append(binary[at:])
    return _GlbTemplate(json_parts, [slots[k] for k in order], bin_parts, [h for _, _, h in holes], layout.rig, layout.triangles,
                        [p.src for p in layout.primitives], [p.uv_index for p in layout.primitives], int(layout.expression_basis.shape[1]))


# -- the templates on disk ---------------------------------------------------------------------------------------------
# A template costs a full build (the layout's seam split and 52-55 sparse morph targets, pygltflib: ~0.4 s of a
# cold start) and is the same for every run with the same model, rig, frame kind, intrinsics and writer code, so
# it is kept in $FACERECON_HOME/gltf beside the ONNX files: one file per key, named by the digest of the key, written
# atomically, checked on reading (fileutil.read_cache_file: the key itself, lengths, CRC-32 of the payload; here the
# index ranges) and rebuilt when it does not pass.

GLB_CACHE_VERSION = 2  # bump when what a template file holds changes
_VALUE_SLOTS = (("weights",), ("rotation",), ("translation",), ("source",), ("image_length",), ("buffer_length",))
_CODE_FINGERPRINT: list = []


def _code_fingerprint() -> str:
    """The writer's code (this module and the rig tables, by content) and the installed pygltflib (by its
    file's size and time: reading its version from the package metadata costs ~90 ms)."""
    import hashlib
    import os
    from importlib.util import find_spec

    if _CODE_FINGERPRINT:
        return _CODE_FINGERPRINT[0]
    h = hashlib.sha256()
    for f in (__file__, Path(__file__).with_name("rig.py")):
        h.update(Path(f).read_bytes())
    spec = find_spec("pygltflib")
    st = os.stat(spec.origin) if spec is not None and spec.origin else None
    _CODE_FINGERPRINT.append(f"{h.hexdigest()[:20]}|pygltflib:{'none' if st is None else f'{st.st_size}:{st.st_mtime_ns}'}"
                             f"|numpy:{np.__version__}")
    return _CODE_FINGERPRINT[0]


def _template_file(model, key: tuple) -> tuple[Path | None, str]:
    """(the disk cache file of a template key, the key as text); (None, "") where there is none to use."""
    import hashlib

    from ..facemodel.ict import facerecon_home

    try:
        key_text = json.dumps({"version": GLB_CACHE_VERSION, "key": list(key), "model": content_fingerprint(model),
                               "code": _code_fingerprint()}, sort_keys=True)
    except (OSError, AttributeError, TypeError, ValueError):
        return None, ""
    digest = hashlib.sha256(key_text.encode("utf-8")).hexdigest()[:24]
    return facerecon_home() / "gltf" / f"glb-template-{key[0]}-{key[1]}-{digest}.bin", key_text


def _write_template(path: Path, key_text: str, t: _GlbTemplate) -> None:
    """Write the template to the disk cache (atomic; a cache that cannot be written is left alone)."""
    from ..fileutil import write_cache_file

    header = {"json_parts": t.json_parts, "slots": [list(x) for x in t.slots], "holes": [list(x) for x in t.holes],
              "rig": t.rig, "n_vertices": t.n_vertices, "n_primitives": len(t.src)}
    arrays = [*t.bin_parts, np.asarray(t.triangles, "<i4"), *(np.asarray(a, "<i4") for a in t.src),
              *(np.asarray(a, "<i4") for a in t.uv_index)]
    write_cache_file(path, key_text, header, arrays)


def _read_template(path: Path, key_text: str, model) -> _GlbTemplate | None:
    """The template in ``path`` when the file is there, is whole and of ``key_text`` and its indices fit ``model``; else None."""
    from ..fileutil import read_cache_file

    got = read_cache_file(path, key_text)
    if got is None:
        return None
    h, arrays = got
    try:
        slots, holes = [tuple(x) for x in h["slots"]], [tuple(x) for x in h["holes"]]
        json_parts = [str(x) for x in h["json_parts"]]
        n_prim, nv = int(h["n_primitives"]), int(h["n_vertices"])
        n_bin = len(holes) + 1
        if len(json_parts) != len(slots) + 1 or len(arrays) != n_bin + 1 + 2 * n_prim or not all(isinstance(b, bytes) for b in arrays[:n_bin]):
            return None
        bin_parts = arrays[:n_bin]
        tris, src, uv_index = arrays[n_bin], arrays[n_bin + 1: n_bin + 1 + n_prim], arrays[n_bin + 1 + n_prim:]
        tris, src, uv_index = tris.astype(np.int64), [a.astype(np.int64) for a in src], [a.astype(np.int64) for a in uv_index]
        ok = (nv == model.n_vertices and tris.ndim == 2 and tris.shape[1] == 3 and tris.min() >= 0 and tris.max() < nv
              and all(a.ndim == 1 and len(a) == len(b) and (not len(a) or (a.min() >= 0 and a.max() < nv and b.min() >= 0
                                                                            and b.max() < len(model.uv)))
                      for a, b in zip(src, uv_index))
              and all(x[0] in ("POSITION", "NORMAL", "TANGENT") and 0 <= int(x[1]) < n_prim or x == ("IMAGE",) for x in holes)
              and all(x[0] in ("min", "max") and 0 <= int(x[1]) < n_prim or x in _VALUE_SLOTS for x in slots))
        return _GlbTemplate(json_parts, slots, bin_parts, holes, str(h["rig"]), tris, src, uv_index, nv) if ok else None
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None


def _gltf_document(rec, model, layout: GltfLayout, frame: str, texture, intrinsics, png, normal_texture, normal_png):
    """The pygltflib document of :func:`build_glb` and its binary chunk (unset)."""
    from pygltflib import (
        GLTF2,
        Accessor,
        AccessorSparseIndices,
        AccessorSparseValues,
        Asset,
        Attributes,
        Buffer,
        Camera,
        Image,
        Material,
        Mesh,
        Node,
        NormalMaterialTexture,
        PbrMetallicRoughness,
        Perspective,
        Primitive,
        Sampler,
        Scene,
        Sparse,
        Texture,
        TextureInfo,
    )

    base = base_vertices_head(rec, layout)
    normals = _vertex_normals(layout, base)
    blob = _Blob()
    accessors: list = []

    def acc(view, ctype, count, typ, mn=None, mx=None, sparse=None, normalized=None) -> int:
        accessors.append(Accessor(bufferView=view, byteOffset=None if view is None else 0, componentType=ctype, count=count,
                                  type=typ, min=mn, max=mx, sparse=sparse, normalized=normalized))
        return len(accessors) - 1

    def idx_ctype(a: np.ndarray) -> int:
        return _USHORT if a.dtype == np.uint16 else _UINT

    materials, images, textures, samplers = [], [], [], []
    tex_index: dict[str, int] = {}  # "colour" / "normal" -> index into textures
    image_data: list[bytes] = []  # the PNGs go at the end of the binary chunk (after the geometry: the template's tail)
    for kind, data, image in (("colour", png, texture), ("normal", normal_png, normal_texture)):
        if data is None and image is None:
            continue
        data = data if data is not None else _png_bytes(image, "texture" if kind == "colour" else "normal texture")
        if not samplers:
            samplers.append(Sampler(magFilter=9729, minFilter=9987, wrapS=33071, wrapT=33071))
        image_data.append(data)
        textures.append(Texture(sampler=0, source=len(image_data) - 1))
        tex_index[kind] = len(textures) - 1
    colour_tex, normal_tex = tex_index.get("colour"), tex_index.get("normal")
    # the tangent frame the normal map was baked in (facerecon.facemodel.uv.uv_tangents), per ICT UV index
    tangents = uv_tangents(model, base, normals) if normal_tex is not None else None
    primitives = []
    # the writer clamps to ARKit's [0, 1] (the depth networks' weights can leave it a little; the
    # base above removes the unclamped expression, so weight 0 is the person's neutral face)
    weights = [float(w) for w in target_weights(rec.expression, layout.rig, layout.ict_names)]
    for p in layout.primitives:
        pos = (base[p.src] * M_PER_MM).astype(np.float32)
        mn, mx = _minmax(pos)
        a_pos = acc(blob.view(pos.tobytes(), _ARRAY_BUFFER), _FLOAT, len(pos), "VEC3", mn, mx)
        a_nrm = acc(blob.view(normals[p.src].astype(np.float32).tobytes(), _ARRAY_BUFFER), _FLOAT, len(pos), "VEC3")
        a_uv = acc(blob.view(p.texcoord.tobytes(), _ARRAY_BUFFER), _FLOAT, len(pos), "VEC2")
        # float: exact for ICT's 26,719 vertices, and a plain attribute type every loader accepts
        a_ict = acc(blob.view(p.src.astype(np.float32).tobytes(), _ARRAY_BUFFER), _FLOAT, len(pos), "SCALAR")
        a_idx = acc(blob.view(p.indices.tobytes(), _ELEMENT_ARRAY_BUFFER), idx_ctype(p.indices), len(p.indices), "SCALAR")
        textured = colour_tex is not None and p.material == "face_skin"  # the photo is the colour there
        detailed = normal_tex is not None and p.material == "face_skin"
        a_tan = (acc(blob.view(tangents[p.uv_index].astype(np.float32).tobytes(), _ARRAY_BUFFER), _FLOAT, len(pos), "VEC4")
                 if detailed else None)
        a_col = None if textured else acc(blob.view(p.colour.tobytes(), _ARRAY_BUFFER), _UBYTE, len(pos), "VEC4", normalized=True)
        # all targets' sparse indices in one bufferView and their values in another (fewer JSON objects)
        offsets, chunks, off = [], [], 0
        for local, _, _, _ in p.targets:
            offsets.append(off)
            data = local.tobytes() + b"\0" * (-local.nbytes % 4)
            chunks.append(data)
            off += len(data)
        moved = any(len(local) for local, _, _, _ in p.targets)
        v_idx = blob.view(b"".join(chunks)) if moved else None
        v_val = blob.view(b"".join(vals.tobytes() for _, vals, _, _ in p.targets)) if moved else None
        targets, voff = [], 0
        for (local, vals, tmn, tmx), ioff in zip(p.targets, offsets):
            if len(local) == 0:  # no bufferView and no sparse: all zeros
                targets.append(Attributes(POSITION=acc(None, _FLOAT, len(pos), "VEC3", [0.0] * 3, [0.0] * 3)))
                continue
            sparse = Sparse(count=len(local),
                            indices=AccessorSparseIndices(bufferView=v_idx, byteOffset=ioff, componentType=idx_ctype(local)),
                            values=AccessorSparseValues(bufferView=v_val, byteOffset=voff))
            voff += vals.nbytes
            targets.append(Attributes(POSITION=acc(None, _FLOAT, len(pos), "VEC3",
                                                   [float(x) for x in tmn], [float(x) for x in tmx], sparse)))
        colour = (1.0, 1.0, 1.0, 1.0)  # the per-vertex colours carry the look
        pbr = PbrMetallicRoughness(baseColorFactor=list(colour), metallicFactor=0.0, roughnessFactor=0.75)
        if textured:
            pbr.baseColorTexture = TextureInfo(index=colour_tex)
        materials.append(Material(name=p.material, pbrMetallicRoughness=pbr, alphaMode="BLEND" if p.blend else "OPAQUE",
                                  doubleSided=p.blend, normalTexture=NormalMaterialTexture(index=normal_tex) if detailed else None))
        attrs = Attributes(POSITION=a_pos, NORMAL=a_nrm, TANGENT=a_tan, TEXCOORD_0=a_uv, COLOR_0=a_col, _ICT_VERTEX=a_ict)
        primitives.append(Primitive(attributes=attrs, indices=a_idx, material=len(materials) - 1, targets=targets,
                                    extras={"ict_materials": list(p.materials)}))
    images = [Image(bufferView=blob.view(data), mimeType="image/png") for data in image_data]
    face_node = Node(name="face", mesh=0, extras={"frame": frame})
    if frame == "camera":
        face_node.rotation, face_node.translation = _node_pose(rec.pose)
    nodes = [Node(name="camera_to_gltf", rotation=list(CAMERA_TO_GLTF_XYZW), children=[1],
                  extras={"note": "180 deg about x: camera frame (x right, y down, z forward) -> glTF (y up, -z forward)"}),
             face_node]
    cameras = []
    if intrinsics is not None and frame == "camera":
        k = intrinsics
        cameras.append(Camera(type="perspective", name="depth_camera",
                              perspective=Perspective(aspectRatio=float(k.width) / float(k.height),
                                                      yfov=float(2 * np.arctan(0.5 * k.height / k.fy)), znear=0.01, zfar=10.0),
                              extras={"fx": float(k.fx), "fy": float(k.fy), "cx": float(k.cx), "cy": float(k.cy),
                                      "width": int(k.width), "height": int(k.height)}))
        # the glTF camera looks along its -z, up +y: at the world origin with no rotation it is the sensor
        nodes.append(Node(name="depth_camera", camera=0))
    if layout.rig == "ict":
        extras = {"targetNames": list(layout.target_names), "ict_names": list(layout.ict_names)}
    else:  # which ICT shapes each target sums (an empty list: tongueOut, zero displacement)
        extras = {"targetNames": list(layout.target_names), "rig": layout.rig,
                  "ict_sources": [[layout.ict_names[e] for e in s] for s in layout.target_sources]}
    mesh = Mesh(name="face", primitives=primitives, weights=weights, extras=extras)
    g = GLTF2(
        asset=Asset(generator="facerecon (pygltflib)", version="2.0",
                    extras={"facerecon": {"source": str(getattr(rec, "source", "")), "frame": frame, "units": "m (mm x 0.001)",
                                          "topology": "ICT-FaceKit (MIT)", "attributes": {"_ICT_VERTEX": "ICT vertex index"}}}),
        scene=0, scenes=[Scene(nodes=[0] + ([2] if cameras else []))], nodes=nodes, meshes=[mesh], materials=materials,
        accessors=accessors, bufferViews=blob.views, buffers=[Buffer(byteLength=blob.size)], cameras=cameras,
        images=images, textures=textures, samplers=samplers,
    )
    return g, blob


@dataclass
class GlbExport:
    path: Path
    bytes: int
    ms: float


def write_glb(path: Path, rec, model, frame: str = "camera", texture: np.ndarray | None = None, intrinsics=None,
              png: bytes | None = None, rig: str | None = None, normal_texture: np.ndarray | None = None,
              normal_png: bytes | None = None) -> GlbExport:
    """Write one rigged GLB atomically; returns its size and the time it took (layout cache excluded on reuse)."""
    t0 = time.perf_counter()
    parts = _glb_parts(rec, model, frame, texture, intrinsics, png, rig, normal_texture, normal_png)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:  # the pieces as they are: no 8 MB concatenation
            fh.writelines(parts)
    return GlbExport(Path(path), sum(len(p) for p in parts), (time.perf_counter() - t0) * 1e3)


def write_rigged_glbs(rec, model, out_dir: Path, texture: np.ndarray | None = None, intrinsics=None,
                      rig: str | None = None, head_frame: bool = True, normal_texture: np.ndarray | None = None,
                      normal_png: bytes | None = None) -> list[GlbExport]:
    """``face.glb`` (camera frame, head pose on the node) and, with ``head_frame``, ``face_head.glb`` (head frame);
    ``normal_texture``: the detail layer's normal map on the face skin (see :func:`build_glb`), or ``normal_png``
    its PNG bytes (already encoded for ``face_normal.png``)."""
    png = _png_bytes(texture) if texture is not None else None
    npng = _png_bytes(normal_texture, "normal texture") if normal_texture is not None else normal_png
    out = [write_glb(Path(out_dir) / "face.glb", rec, model, "camera", None, intrinsics, png, rig, None, npng)]
    if head_frame:
        out.append(write_glb(Path(out_dir) / "face_head.glb", rec, model, "head", None, None, png, rig, None, npng))
    return out
