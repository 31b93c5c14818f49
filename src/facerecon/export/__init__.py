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
                      intrinsics=None, head_frame: bool = True, rig: str | None = None, model_surface: bool = True,
                      maps=None) -> list[Path]:
    """``face.<fmt>`` (camera frame) and ``face_head.<fmt>`` (canonical head frame; not with
    ``head_frame=False``), ICT topology and UVs: the returned surface (with the out-of-span correction
    when ``rec.detail`` is "on"); then also ``face_model.<fmt>`` (camera frame, OBJ / PLY) with the
    model-only surface (not with ``model_surface=False``).

    OBJ/PLY keep ICT's vertex order (mm). GLB is the rig of :mod:`.gltf` (metres, morph targets of
    ``rig``: 'arkit52', ARKit's 52 by name and order, or 'ict', ICT's 55; None: the current default,
    see :mod:`.rig`; pose on the node). ``texture`` (an (H, W, 3) uint8 image of ICT's UV tile
    [0, 1]^2) goes to ``face.png``, referenced by the OBJs through ``face.mtl``, and into the GLBs.
    ``intrinsics`` adds the sensor as a camera to ``face.glb``.  ``maps`` (a written
    :class:`.maps.DetailMaps`, :func:`.maps.detail_maps`): ``face_displacement.png`` and
    ``face_normal.png``, the normal map as the GLBs' ``normalTexture`` on the face skin and as
    ``norm`` in ``face.mtl`` (the OBJ-MTL PBR extension's normal-map key; ``map_Bump`` is a height map to most readers).
    """
    from .maps import NORMAL_FILE, write_detail_maps

    out_dir = Path(out_dir)
    written = []
    maps = maps if maps is not None and maps.written else None
    if maps is not None:
        written += write_detail_maps(out_dir, maps)
    material = "obj" in formats and (texture is not None or maps is not None)
    if texture is not None and "obj" in formats:
        write_bytes_atomic(out_dir / "face.png", _png_bytes(texture))
        written.append(out_dir / "face.png")
    if material:
        # the texture and the normal map cover ICT's face skin (M_Face, UV tile [0,1]^2) only: the eyes and the back of
        # the head have UVs of their own (the back of the head in [1,2], which would wrap onto face pixels)
        write_text_atomic(out_dir / "face.mtl", "# facerecon: maps of the ICT-FaceKit UV tile [0,1]^2 (face skin)\n"
                          "newmtl face\nKa 1 1 1\nKd " + ("1 1 1" if texture is not None else "0.75 0.62 0.55") + "\nKs 0 0 0\nd 1\nillum 1\n"
                          + ("map_Kd face.png\n" if texture is not None else "")
                          + (f"norm {NORMAL_FILE}\n" if maps is not None else "")
                          + "newmtl rest\nKa 1 1 1\nKd 0.75 0.62 0.55\nKs 0 0 0\nd 1\nillum 1\n")
        written.append(out_dir / "face.mtl")
    # ICT's polygons as stored, (F, 4) with -1 padding its triangles: the writers' topology cache keeps their layout
    polys, polys_uv = model.polygons, model.polygon_uv
    obj_cache = None
    if "obj" in formats:
        from ..facemodel.ict import facerecon_home

        obj_cache = facerecon_home() / "obj"  # the OBJ face block of ICT's polygons, built once (io.mesh.write_mesh)
    for fmt in formats:
        if fmt == "glb":
            written += [e.path for e in write_rigged_glbs(rec, model, out_dir, texture, intrinsics, rig, head_frame,
                                                          normal_png=None if maps is None else maps.png())]
            continue
        frames = (("face", rec.vertices_camera, "camera"), ("face_head", rec.vertices_head, "head"))
        # both frames take the material: the maps are in UV / tangent space, unchanged by the pose
        mtl = {"mtllib": "face.mtl", "materials": _obj_materials(model)} if fmt == "obj" and material else {}
        for name, verts, frame in frames if head_frame else frames[:1]:
            path = out_dir / f"{name}.{fmt}"
            write_mesh(path, verts, polys, model.uv, polys_uv,
                       header=f"facerecon reconstruction of {rec.source}; ICT-FaceKit Light topology (MIT); mm; {frame} frame",
                       cache_dir=obj_cache, **mtl)
            written.append(path)
        if model_surface and getattr(rec, "detail", "off") == "on" and rec.model_vertices_head is not None:  # duck-typed results have none
            path = out_dir / f"face_model.{fmt}"
            write_mesh(path, rec.model_vertices_camera, polys, model.uv, polys_uv,
                       header=f"facerecon reconstruction of {rec.source}, the face model's fit alone (no out-of-span correction); "
                              "ICT-FaceKit Light topology (MIT); mm; camera frame", cache_dir=obj_cache)
            written.append(path)
    return written


def _obj_materials(model) -> tuple[str, ...]:
    """The ``face.mtl`` material of each of ICT's polygons (the OBJ's face order): ``face`` (textured)
    on the face skin, ``rest`` elsewhere; cached on the model (io.mesh caches the face block per tuple)."""
    cache = model.__dict__.setdefault("_obj_materials_cache", {})
    if "names" not in cache:
        material = model.polygon_material
        skin = model.materials.index("M_Face") if "M_Face" in model.materials else 0
        face = np.ones(len(model.polygons), bool) if material is None else np.asarray(material) == skin
        cache["names"] = tuple(np.where(face, "face", "rest").tolist())
    return cache["names"]


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


# The depth overlay: marks and what the legend calls them.
OVERLAY_MESH_GREY = (166, 166, 166)
OVERLAY_LANDMARK = (0, 255, 0)
OVERLAY_MARGIN_PX = 60  # around the face box, in depth pixels
OVERLAY_PANEL_PX = 460  # a panel's long side after scaling (nearest neighbour: depth pixels stay visible)


def overlay_picture(rec, model, frame: DepthFrame, residual_range_mm: float = 10.0) -> tuple[np.ndarray, dict]:
    """(picture, residual statistics): two panels over the face box (+ OVERLAY_MARGIN_PX): the shaded
    mesh over the depth image with the 68 landmarks, and the depth residual (mm) on the face over
    the dimmed depth, with a colour bar; titles above, a legend strip below.  Pillow + NumPy only."""
    from PIL import Image, ImageDraw

    from ..viz.draw import colormap_at, colour_bar, draw_points, font, legend_strip

    rgb = depth_to_rgb(frame.depth_mm).astype(np.float32) / 255.0
    shaded = shade(rec.vertices_camera, model.region_triangles("face", "head_and_neck", "eyeballs"), frame.intrinsics)
    over = rgb.copy()
    m = np.isfinite(shaded)
    over[m] = 0.35 * rgb[m] + 0.65 * shaded[m, None]
    _, res = residual_map(rec, model, frame)
    ok = np.isfinite(res)
    med = float(np.median(np.abs(res[ok]))) if ok.any() else float("nan")
    resid = rgb * 0.3
    resid[ok] = colormap_at("RdBu_r", (res[ok] + residual_range_mm) / (2 * residual_range_mm))
    # the face box and its margin, padded with black where it leaves the frame
    h, w = frame.depth_mm.shape
    x0, y0, x1, y1 = (float(b) for b in rec.location.box)
    c0, r0 = int(np.floor(x0 - OVERLAY_MARGIN_PX)), int(np.floor(y0 - OVERLAY_MARGIN_PX))
    c1, r1 = max(int(np.ceil(x1 + OVERLAY_MARGIN_PX)), c0 + 1), max(int(np.ceil(y1 + OVERLAY_MARGIN_PX)), r0 + 1)
    scale = OVERLAY_PANEL_PX / max(c1 - c0, r1 - r0)
    size = (max(1, round((c1 - c0) * scale)), max(1, round((r1 - r0) * scale)))

    def panel(img: np.ndarray):
        crop = np.zeros((r1 - r0, c1 - c0, 3), np.uint8)
        a0, b0, a1, b1 = max(c0, 0), max(r0, 0), min(c1, w), min(r1, h)
        if a1 > a0 and b1 > b0:
            crop[b0 - r0:b1 - r0, a0 - c0:a1 - c0] = np.clip(img[b0:b1, a0:a1] * 255 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(crop).resize(size, Image.NEAREST)

    left, right = panel(over), panel(resid)
    sx, sy = size[0] / (c1 - c0), size[1] / (r1 - r0)
    # a pixel centre (u, v) lands at ((u + 0.5 - c0) * s - 0.5, ...) of the scaled panel
    draw_points(ImageDraw.Draw(left), rec.landmarks_2d, OVERLAY_LANDMARK, max(1.5, sx * 0.8), sx,
                (c0 - 0.5 + 0.5 / sx, r0 - 0.5 + 0.5 / sy))
    fs = 13
    bar = colour_bar(size[1], "RdBu_r", -residual_range_mm, residual_range_mm, "mm", fs)
    gap, title_h = 8, int(fs * 2.2)
    width = size[0] * 2 + gap * 2 + bar.size[0]
    legend = legend_strip(width, fs, [
        ("mesh", OVERLAY_MESH_GREY, "left: the reconstructed mesh, shaded, over the depth image (near red, far blue)"),
        ("dot", OVERLAY_LANDMARK, "left: the 68 landmarks of the mesh, projected"),
        ("mesh", tuple(int(c * 255) for c in colormap_at("RdBu_r", 1.0)),
         f"right: depth residual, measured - mesh: red = the depth lies behind the mesh (+{residual_range_mm:g} mm)"),
        ("mesh", tuple(int(c * 255) for c in colormap_at("RdBu_r", 0.0)),
         f"right: blue = the depth lies in front of it (-{residual_range_mm:g} mm); no colour: no depth or no mesh")])
    out = Image.new("RGB", (width, title_h + size[1] + legend.size[1]), (24, 24, 24))
    out.paste(left, (0, title_h))
    out.paste(right, (size[0] + gap, title_h))
    out.paste(bar, (size[0] * 2 + gap * 2, title_h))
    out.paste(legend, (0, title_h + size[1]))
    draw = ImageDraw.Draw(out)
    yaw, pitch, roll = rec.pose.euler_deg
    for x, text in ((0, f"mesh over depth  yaw {yaw:.1f}  pitch {pitch:.1f}  roll {roll:.1f}  conf {rec.confidence:.2f}"),
                    (size[0] + gap, f"depth residual on the face, median |r| = {med:.2f} mm")):
        draw.text((x + 4, title_h // 2), text, fill=(235, 235, 235), font=font(fs), anchor="lm")
    return np.asarray(out), {"median_abs_residual_mm": med, "residual_pixels": int(ok.sum())}


def save_overlay(rec, model, frame: DepthFrame, path: Path, residual_range_mm: float = 10.0) -> dict:
    """Write :func:`overlay_picture` as a PNG; returns the residual statistics (for pose.json)."""
    from PIL import Image

    img, stats = overlay_picture(rec, model, frame, residual_range_mm)
    with atomic_path(path) as tmp:
        # compress_level 1: the picture is small and the batch writes one per frame (level 6 was ~3x the CPU)
        Image.fromarray(img).save(tmp, format="PNG", compress_level=1)
    return stats


def save_pose_overlay(frame: DepthFrame, pose, box, path: Path, axis_mm: float = 80.0) -> None:
    """Depth image with the head axes (x red, y green, z blue) drawn at the head origin, the face box
    in white and the pose in a title strip; scaled to 640 px wide.  Pillow + NumPy only."""
    from PIL import Image, ImageDraw

    from ..viz.draw import font

    k = frame.intrinsics
    o = np.asarray(pose.t_mm, np.float64)
    img = Image.fromarray(depth_to_rgb(frame.depth_mm))
    s = 640.0 / img.size[0]
    img = img.resize((640, max(1, round(img.size[1] * s))), Image.NEAREST)
    fs, title_h = 13, 26
    out = Image.new("RGB", (img.size[0], img.size[1] + title_h), (24, 24, 24))
    out.paste(img, (0, title_h))
    draw = ImageDraw.Draw(out)

    def at(uv) -> np.ndarray:  # a pixel centre (u, v) of the frame on the picture
        return (np.asarray(uv, np.float64) + 0.5) * s - 0.5 + np.array([0.0, title_h])

    p0 = at(k.project(o))
    for axis, colour in zip(np.eye(3), ((255, 0, 0), (0, 255, 0), (0, 0, 255))):
        p1 = at(k.project(o + pose.R @ (axis * axis_mm)))
        if not (np.isfinite(p0).all() and np.isfinite(p1).all()):
            continue
        draw.line([*p0, *p1], fill=colour, width=3)
        d = p1 - p0
        n = np.hypot(*d)
        if n > 1e-6:  # the arrow head: two strokes back from the tip
            d /= n
            for c, sn in ((np.cos(0.45), np.sin(0.45)), (np.cos(0.45), -np.sin(0.45))):
                back = p1 - 12.0 * np.array([c * d[0] - sn * d[1], sn * d[0] + c * d[1]])
                draw.line([*p1, *back], fill=colour, width=3)
    x0, y0, x1, y1 = (float(b) for b in box)
    draw.rectangle([*at((x0, y0)), *at((x1, y1))], outline=(255, 255, 255), width=1)
    yaw, pitch, roll = pose.euler_deg
    draw.text((6, title_h // 2), f"yaw {yaw:.1f}  pitch {pitch:.1f}  roll {roll:.1f} deg   t = ({o[0]:.0f}, {o[1]:.0f}, {o[2]:.0f}) mm",
              fill=(235, 235, 235), font=font(fs), anchor="lm")
    with atomic_path(path) as tmp:
        out.save(tmp, format="PNG", compress_level=1)
