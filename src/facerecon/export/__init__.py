"""Writing results: meshes (OBJ with ICT UVs, PLY, rigged GLB: :mod:`.gltf`), JSON, overlay pictures. All atomic.

:mod:`.animation` reads ARKit performances and adds them to a rigged GLB as glTF animations.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..fileutil import atomic_path, write_bytes_atomic, write_text_atomic
from ..geometry.raster import render_mesh
from ..io.frame import DepthFrame
from ..io.mesh import write_mesh
from ..viz.depthmap import depth_to_rgb
from ..viz.shaded import shade
from .gltf import _png_bytes, write_rigged_glbs

MESH_FORMATS = ("obj", "ply", "glb")


def write_face_meshes(rec, model, out_dir: Path, formats: tuple[str, ...] = ("obj", "ply"), texture: np.ndarray | None = None,
                      intrinsics=None, head_frame: bool = True, rig: str | None = None, model_surface: bool = True) -> list[Path]:
    """``face.<fmt>`` (camera frame) and ``face_head.<fmt>`` (canonical head frame; not with
    ``head_frame=False``), ICT topology and UVs: the returned surface (with the out-of-span correction
    when ``rec.detail`` is "on"); then also ``face_model.<fmt>`` (camera frame, OBJ / PLY) with the
    model-only surface (not with ``model_surface=False``).

    OBJ/PLY keep ICT's vertex order (mm). GLB is the rig of :mod:`.gltf` (metres, morph targets of
    ``rig``: 'arkit52', ARKit's 52 by name and order, or 'ict', ICT's 55; None: the current default,
    see :mod:`.rig`; pose on the node). ``texture`` (an (H, W, 3) uint8 image of ICT's UV tile
    [0, 1]^2) goes to ``face.png``, referenced by the OBJs through ``face.mtl``, and into the GLBs.
    ``intrinsics`` adds the sensor as a camera to ``face.glb``.
    """

    out_dir = Path(out_dir)
    written = []
    if texture is not None and "obj" in formats:
        write_bytes_atomic(out_dir / "face.png", _png_bytes(texture))
        # the texture covers ICT's face skin (M_Face, UV tile [0,1]^2) only: the eyes and the back of the
        # head have UVs of their own (the back of the head in [1,2], which would wrap onto face pixels)
        write_text_atomic(out_dir / "face.mtl", "# facerecon: texture of the ICT-FaceKit UV tile [0,1]^2 (face skin)\n"
                          "newmtl face\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\nmap_Kd face.png\n"
                          "newmtl rest\nKa 1 1 1\nKd 0.75 0.62 0.55\nKs 0 0 0\nd 1\nillum 1\n")
        written += [out_dir / "face.png", out_dir / "face.mtl"]
    polys, polys_uv = model.polygon_lists() if any(f != "glb" for f in formats) else (None, None)
    for fmt in formats:
        if fmt == "glb":
            written += [e.path for e in write_rigged_glbs(rec, model, out_dir, texture, intrinsics, rig, head_frame)]
            continue
        frames = (("face", rec.vertices_camera, "camera"), ("face_head", rec.vertices_head, "head"))
        for name, verts, frame in frames if head_frame else frames[:1]:
            path = out_dir / f"{name}.{fmt}"
            write_mesh(path, verts, polys, model.uv, polys_uv,
                       header=f"facerecon reconstruction of {rec.source}; ICT-FaceKit Light topology (MIT); mm; {frame} frame")
            if fmt == "obj" and texture is not None:
                _use_material(path, model)
            written.append(path)
        if model_surface and getattr(rec, "detail", "off") == "on" and rec.model_vertices_head is not None:  # duck-typed results have none
            path = out_dir / f"face_model.{fmt}"
            write_mesh(path, rec.model_vertices_camera, polys, model.uv, polys_uv,
                       header=f"facerecon reconstruction of {rec.source}, the face model's fit alone (no out-of-span correction); "
                              "ICT-FaceKit Light topology (MIT); mm; camera frame")
            written.append(path)
    return written


def _use_material(path: Path, model) -> None:
    """Point an OBJ written by ``write_mesh`` at ``face.mtl``: material ``face`` (textured) on ICT's
    face-skin polygons, ``rest`` elsewhere (its face lines are in ICT's polygon order)."""
    text = path.read_text(encoding="utf-8")
    i = text.find("\nf ")
    head, faces = text[: i + 1], text[i + 1:].splitlines(keepends=True)
    material = model.polygon_material
    skin = model.materials.index("M_Face") if "M_Face" in model.materials else 0
    out, k, current = [], 0, None
    for line in faces:
        if line.startswith("f "):
            name = "face" if material is None or material[k] == skin else "rest"
            if name != current:
                out.append(f"usemtl {name}\n")
                current = name
            k += 1
        out.append(line)
    write_text_atomic(path, "mtllib face.mtl\n" + head + "".join(out))


def write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=1))


def landmarks_json(rec) -> dict:
    return {
        "order": "Multi-PIE / iBUG 68",
        "landmarks_3d_mm_camera": np.round(rec.landmarks_3d, 3).tolist(),
        "landmarks_2d_px": np.round(rec.landmarks_2d, 2).tolist(),
    }


def _render_depth(vertices_cam: np.ndarray, triangles: np.ndarray, frame: DepthFrame) -> np.ndarray:

    return render_mesh(vertices_cam, triangles, frame.intrinsics, barycentrics=False).depth


def residual_map(rec, model, frame: DepthFrame) -> tuple[np.ndarray, np.ndarray]:
    """(rendered face depth, measured - rendered depth in mm where both exist, NaN elsewhere)."""
    tris = model.region_triangles("face")
    rendered = _render_depth(rec.vertices_camera, tris, frame)
    both = (rendered > 0) & (frame.depth_mm > 0)
    res = np.full(rendered.shape, np.nan, np.float32)
    res[both] = frame.depth_mm[both] - rendered[both]
    return rendered, res


def save_overlay(rec, model, frame: DepthFrame, path: Path, residual_range_mm: float = 10.0) -> dict:
    """Two panels: the shaded mesh over the depth image, and the depth residual (mm) on the face."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    rgb = depth_to_rgb(frame.depth_mm).astype(np.float32) / 255.0
    shaded = shade(rec.vertices_camera, model.region_triangles("face", "head_and_neck", "eyeballs"), frame.intrinsics)
    over = rgb.copy()
    m = np.isfinite(shaded)
    over[m] = 0.35 * rgb[m] + 0.65 * shaded[m, None]
    _, res = residual_map(rec, model, frame)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    axes[0].imshow(over)
    axes[0].plot(rec.landmarks_2d[:, 0], rec.landmarks_2d[:, 1], ".", color="lime", ms=2)
    yaw, pitch, roll = rec.pose.euler_deg
    axes[0].set_title(f"mesh over depth  yaw {yaw:.1f}  pitch {pitch:.1f}  roll {roll:.1f}  conf {rec.confidence:.2f}", fontsize=9)
    axes[1].imshow(rgb * 0.3)
    im = axes[1].imshow(res, cmap="RdBu_r", vmin=-residual_range_mm, vmax=residual_range_mm)
    ok = np.isfinite(res)
    med = float(np.median(np.abs(res[ok]))) if ok.any() else float("nan")
    axes[1].set_title(f"depth residual on the face (measured - mesh), median |r| = {med:.2f} mm", fontsize=9)
    fig.colorbar(im, ax=axes[1], fraction=0.046, label="mm")
    box = rec.location.box
    for ax in axes:
        ax.set_xlim(box[0] - 60, box[2] + 60)
        ax.set_ylim(box[3] + 60, box[1] - 60)
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return {"median_abs_residual_mm": med, "residual_pixels": int(ok.sum())}


def save_pose_overlay(frame: DepthFrame, pose, box, path: Path, axis_mm: float = 80.0) -> None:
    """Depth image with the head axes (x red, y green, z blue) drawn at the head origin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    k = frame.intrinsics
    o = pose.t_mm
    fig, ax = plt.subplots(figsize=(6.4, 4.8 * frame.height / frame.width * 1.0 + 0.4))
    ax.imshow(depth_to_rgb(frame.depth_mm))
    p0 = k.project(o)
    for axis, colour in zip(np.eye(3), ("red", "lime", "blue")):
        p1 = k.project(o + pose.R @ (axis * axis_mm))
        ax.annotate("", xy=p1, xytext=p0, arrowprops=dict(arrowstyle="->", color=colour, lw=2))
    x0, y0, x1, y1 = box
    ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="white", lw=1))
    yaw, pitch, roll = pose.euler_deg
    ax.set_title(f"yaw {yaw:.1f}  pitch {pitch:.1f}  roll {roll:.1f} deg   t = ({o[0]:.0f}, {o[1]:.0f}, {o[2]:.0f}) mm", fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
