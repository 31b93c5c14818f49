"""A full synthetic depth scene: ICT head + neck, torso, hair, occluders, room background.

:class:`HeadAssets` is built once per :class:`~facerecon.facemodel.FaceModel` (render
subset, triangle segments, anchors for hair and neck); :func:`build_scene` turns one
frame's vertices and :class:`~facerecon.synth.sampling.FrameParams` into a single
camera-frame triangle soup with a segment label per triangle.  Nothing here is random.

The ICT skin is cut below the neck (neutral y > ``NECK_CUT_Y``): the shoulder stub of
ICT-FaceKit would turn with the head; a neck tube joins the cut to a torso that has its
own (partly head-following) yaw.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ..facemodel.model import FaceModel
from . import meshes as M

SEG_NONE, SEG_FACE, SEG_FACE_OUTER, SEG_HEAD, SEG_EYES, SEG_MOUTH = 0, 1, 2, 3, 4, 5
SEG_HAIR, SEG_BODY, SEG_OCCLUDER, SEG_BACKGROUND = 6, 7, 8, 9
SEGMENT_NAMES = ("none", "face", "face_outer", "head", "eyes", "mouth", "hair", "body", "occluder", "background")
#: Segments that make up the face mask: the ICT ``face`` region (narrow face + ears/throat) and the eyeballs.
FACE_SEGMENTS = (SEG_FACE, SEG_FACE_OUTER, SEG_EYES)

NECK_CUT_Y = 112.0  # mm, head frame: ICT skin below this (neutral) is replaced by the neck tube
HAIR_CENTRE = np.array([0.0, -45.0, 5.0])
_GRID_EL = np.linspace(-80.0, 90.0, 35)  # radius look-up grid over directions from HAIR_CENTRE (deg)
_GRID_AZ = np.linspace(0.0, 360.0, 37)  # azimuth 0 = face (-z), 90 = subject's left (+x); last = first
_CONE_DEG = 8.0
_SHELL_ROWS, _SHELL_COLS = 14, 40
_SHELL_AZ = np.linspace(0.0, 360.0, _SHELL_COLS, endpoint=False)
_SHELL_S = np.linspace(0.0, 1.0, _SHELL_ROWS)[:, None] ** 0.8


@dataclass
class HeadAssets:
    subset: np.ndarray  # (S,) model vertex indices rendered
    triangles: np.ndarray  # (T, 3) int32 rows into subset
    model_triangles: np.ndarray  # (T, 3) the same triangles as model vertex indices
    segments: np.ndarray  # (T,) uint8
    landmark_rows: np.ndarray  # (68,) rows into subset
    ring_rows: np.ndarray  # rows of the vertices along the neck cut
    cone_rows: np.ndarray  # skin rows gathered per grid direction (CSR values) for the hair / cap shell
    cone_start: np.ndarray  # (n_grid,) CSR offsets into cone_rows
    neutral: np.ndarray  # (S, 3) float64 neutral head-frame positions of the subset (crops, deformations)

    @classmethod
    def build(cls, model: FaceModel) -> "HeadAssets":
        regions = ("face", "head_and_neck", "eyeballs", "mouth_socket")
        tri = model.region_triangles(*regions)
        keep = (model.neutral[tri][:, :, 1] <= NECK_CUT_Y).all(axis=1)
        # eyeballs: only the front cap (within ~65 deg of the gaze) can show between the lids
        eye = model.region_mask("eyeballs")
        for side in (-1, 1):
            idx = model.region_vertices("eyeballs")
            idx = idx[np.sign(model.neutral[idx, 0]) == side]
            c = model.neutral[idx].mean(0)
            rel = model.neutral - c
            front = -rel[:, 2] / np.maximum(np.linalg.norm(rel, axis=1), 1e-9) > np.cos(np.deg2rad(65))
            in_eye = eye & (np.sign(model.neutral[:, 0]) == side)
            keep &= ~(in_eye[tri].all(axis=1) & ~front[tri].all(axis=1))
        tri = tri[keep]
        seg = np.full(len(tri), SEG_HEAD, np.uint8)
        for name, s in (("face", SEG_FACE_OUTER), ("narrow_face", SEG_FACE), ("eyeballs", SEG_EYES), ("mouth_socket", SEG_MOUTH)):
            seg[model.region_mask(name)[tri].all(axis=1)] = s
        subset = np.unique(np.concatenate([tri.ravel(), model.landmarks_68]))
        lookup = np.full(model.n_vertices, -1, np.int64)
        lookup[subset] = np.arange(len(subset))
        y = model.neutral[subset, 1]
        skin = model.region_mask("face", "head_and_neck")[subset]
        ring_rows = np.nonzero(skin & (y > NECK_CUT_Y - 6) & (y <= NECK_CUT_Y))[0]
        # hair/cap shell: per grid direction, the skin vertices within a cone (radius = their max distance)
        cand = np.nonzero(skin & (y < NECK_CUT_Y - 20))[0][::2]
        rel = model.neutral[subset[cand]] - HAIR_CENTRE
        rel /= np.linalg.norm(rel, axis=1, keepdims=True)
        cosang = _dirs(*np.meshgrid(_GRID_EL, _GRID_AZ, indexing="ij")).reshape(-1, 3) @ rel.T
        rows, starts = [], []
        for i in range(cosang.shape[0]):
            inside = np.nonzero(cosang[i] > np.cos(np.deg2rad(_CONE_DEG)))[0]
            if len(inside) == 0:
                inside = np.array([int(np.argmax(cosang[i]))])
            starts.append(sum(len(r) for r in rows))
            rows.append(cand[inside])
        return cls(
            subset=subset.astype(np.int64),
            triangles=lookup[tri].astype(np.int32),
            model_triangles=tri.astype(np.int32),
            segments=seg,
            landmark_rows=lookup[model.landmarks_68],
            ring_rows=ring_rows,
            cone_rows=np.concatenate(rows),
            cone_start=np.asarray(starts, np.int64),
            neutral=model.neutral[subset].astype(np.float64),
        )


@dataclass
class Scene:
    """Camera-frame triangle soup; the first ``n_head_vertices``/``n_head_triangles`` are the ICT head."""

    vertices: np.ndarray  # (N, 3) float64 camera frame
    triangles: np.ndarray  # (T, 3) int32
    segments: np.ndarray  # (T,) uint8
    n_head_vertices: int
    n_head_triangles: int


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _dirs(el_deg, az_deg) -> np.ndarray:
    e, a = np.deg2rad(el_deg), np.deg2rad(az_deg)
    return np.stack([np.cos(e) * np.sin(a), -np.sin(e), -np.cos(e) * np.cos(a)], -1)


@njit(cache=True)
def _cone_max(v, rows, start, c):
    n = start.shape[0]
    out = np.zeros(n)
    for i in range(n):
        stop = start[i + 1] if i + 1 < n else rows.shape[0]
        best = 0.0
        for j in range(start[i], stop):
            r = rows[j]
            d = (v[r, 0] - c[0]) ** 2 + (v[r, 1] - c[1]) ** 2 + (v[r, 2] - c[2]) ** 2
            best = max(best, d)
        out[i] = np.sqrt(best)
    return out


def skull_radius_grid(assets: HeadAssets, v_head: np.ndarray) -> np.ndarray:
    """(len(_GRID_EL), len(_GRID_AZ)) outer radius of the head around HAIR_CENTRE per direction."""
    r = _cone_max(np.ascontiguousarray(v_head, np.float64), assets.cone_rows, assets.cone_start, HAIR_CENTRE)
    return r.reshape(len(_GRID_EL), len(_GRID_AZ))


def _lookup(grid: np.ndarray, el: np.ndarray, az: np.ndarray) -> np.ndarray:
    fe = np.clip((el - _GRID_EL[0]) / (_GRID_EL[1] - _GRID_EL[0]), 0, len(_GRID_EL) - 1.001)
    fa = np.clip((az % 360.0) / (_GRID_AZ[1] - _GRID_AZ[0]), 0, len(_GRID_AZ) - 1.001)
    e0, a0 = fe.astype(int), fa.astype(int)
    te, ta = fe - e0, fa - a0
    g = grid
    return ((g[e0, a0] * (1 - ta) + g[e0, a0 + 1] * ta) * (1 - te) + (g[e0 + 1, a0] * (1 - ta) + g[e0 + 1, a0 + 1] * ta) * te)


def shell_mesh(assets: HeadAssets, v_head: np.ndarray, line_el, thickness, bumps=(), top_extra=0.0, curtain=False):
    """A hair/cap shell over the skull (head frame) covering directions above the elevation line ``line_el(az)``.

    Rows run from the line (a smooth hairline) to the crown; the shell thins towards the line.
    """
    grid = skull_radius_grid(assets, v_head)
    az, s = _SHELL_AZ, _SHELL_S
    line = line_el(np.minimum(az, 360.0 - az))
    el = line[None, :] + (90.0 - line[None, :]) * s
    azb = np.broadcast_to(az, el.shape)
    r = _lookup(grid, el, azb)
    if curtain:  # long hair falls vertically below the widest ring
        rho = _lookup(grid, np.zeros_like(az), az)
        r = np.where(el < 0, np.maximum(r, rho[None, :] / np.cos(np.deg2rad(np.minimum(-el, 75.0)))), r)
    dirs = _dirs(el, azb)
    th = thickness * (0.15 + 0.85 * _smoothstep((el - line[None, :]) / 14.0))
    th = th + top_extra * np.clip(np.sin(np.deg2rad(el)), 0, 1)
    for kx, ky, kz, freq, amp, ph in bumps:
        th = th + amp * np.sin(freq * (dirs @ np.array([kx, ky, kz])) + ph)
    verts = HAIR_CENTRE + dirs * (r + np.maximum(th, 1.0))[..., None]
    # rows advance up (-y) and columns turn from -z towards +x, i.e. counter-clockwise about -y: outward
    tri = M.grid_triangles(_SHELL_ROWS, _SHELL_COLS)
    return verts.reshape(-1, 3), tri


def _hair_line(p: dict):
    knots = np.array([0.0, 50.0, 100.0, 180.0])
    vals = np.array([p["front_el"], p["temple_el"], p["ear_el"], p["back_el"]])
    return lambda a: np.interp(a, knots, vals)


def _glasses(assets: HeadAssets, vh: np.ndarray, g: dict) -> list:
    lm = vh[assets.landmark_rows]
    parts = []
    ang = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    inner = []
    for eye, outer_lm in ((lm[36:42].mean(0), lm[0]), (lm[42:48].mean(0), lm[16])):
        c = eye + np.array([0.0, g["drop"], -g["forward"]])
        path = c + np.stack([g["rx"] * np.cos(ang), g["ry"] * np.sin(ang), np.zeros_like(ang)], 1)
        parts.append(M.closed_tube(path, g["thick"] / 2, k=5))
        side = np.sign(eye[0])
        rim_out = c + np.array([side * g["rx"], 0.0, 0.0])
        ear = np.array([outer_lm[0] + side * 8.0, outer_lm[1] - 6.0, outer_lm[2] + 25.0])
        parts.append(M.capsule(rim_out, ear, g["thick"] * 0.6, n_lat=4, n_lon=6))
        inner.append(c - np.array([side * g["rx"], 0.0, 0.0]))
    parts.append(M.capsule(inner[0], inner[1], g["thick"] * 0.6, n_lat=4, n_lon=6))
    return parts


def _hand(assets: HeadAssets, vh: np.ndarray, h: dict) -> list:
    p = vh[assets.landmark_rows[h["target"]]]
    out = p - np.array([0.0, -20.0, -10.0])
    out /= np.linalg.norm(out)
    s = h["size"]
    centre = p + out * (h["gap"] + 16 * s)
    up0 = M.cross3(out, [1.0, 0, 0]) if abs(out[0]) < 0.9 else M.cross3(out, [0, 1.0, 0])
    up0 /= np.linalg.norm(up0)
    spin = np.deg2rad(h["spin"])
    up = np.cos(spin) * up0 + np.sin(spin) * M.cross3(out, up0)
    side = M.cross3(up, out)
    rot = np.stack([side, up, out], 1)
    parts = [M.ellipsoid(centre, (44 * s, 50 * s, 15 * s), rot, n_lat=8, n_lon=14)]
    curl = np.deg2rad(h["curl"])
    fdir = np.cos(curl) * up - np.sin(curl) * out
    for i, off in enumerate((-27, -9, 9, 27)):
        base = centre + up * 42 * s + side * off * s
        parts.append(M.capsule(base, base + fdir * (70 - 6 * abs(i - 1.5)) * s, 8.5 * s, n_lat=4, n_lon=8))
    parts.append(M.capsule(centre + side * 40 * s, centre + (side * 70 + up * 30 - out * 10) * s, 10 * s, n_lat=4, n_lon=8))
    arm = -up + 0.5 * np.asarray(h["arm_dir"])
    arm /= np.linalg.norm(arm)
    wrist = centre - up * 55 * s
    parts.append(M.capsule(wrist, wrist + arm * 260, 30 * s, n_lat=6, n_lon=12))
    return parts


def _cap(assets: HeadAssets, vh: np.ndarray, c: dict) -> list:
    line = lambda a: np.interp(a, [0.0, 90.0, 180.0], [38.0, 12.0, 5.0])  # noqa: E731
    v, t = shell_mesh(assets, vh, line, c["thickness"])
    ry = M.euler(c["yaw"], -c["tilt"], 0.0)
    front = vh[assets.landmark_rows[27]] + np.array([0.0, -75.0, 10.0])  # above the nose bridge
    brim_c = HAIR_CENTRE + ry @ (front - HAIR_CENTRE + np.array([0.0, 0.0, -c["brim"] / 2]))
    brim = M.ellipsoid(brim_c, (85.0, 4.0, c["brim"] / 1.6 + 10), ry, n_lat=6, n_lon=16)
    return [(v, t), brim]


# Torso profile in the body frame (y down from the neck base, z back): (y, rx / shoulder_half, rz / chest_depth, z centre)
_TORSO = np.array([
    [12.0, 0.48, 0.7, 12.0], [30.0, 0.72, 0.85, 15.0], [55.0, 0.9, 0.95, 18.0], [85.0, 0.98, 1.0, 20.0],
    [140.0, 1.0, 1.0, 20.0], [400.0, 0.92, 1.0, 22.0], [700.0, 0.82, 0.95, 22.0],
])  # fmt: skip
_RING_K = 24
_UZ, _VX = np.array([0.0, 0, 1]), np.array([1.0, 0, 0])  # ring axes: z x x = +y (rings stacked downwards)


def _body(assets: HeadAssets, vh: np.ndarray, b: dict, r_up: np.ndarray, t_up: np.ndarray, chair: dict | None):
    """One ring stack from the ICT neck cut through the neck base to the waist, arms, and a chair back."""
    ring = vh[assets.ring_rows]
    rc = ring.mean(0)
    rx = (ring[:, 0].max() - ring[:, 0].min()) / 2 * 0.93
    rz = (ring[:, 2].max() - ring[:, 2].min()) / 2 * 0.93
    head_rings = [M.ellipse_ring(rc + [0, dy, 0], _UZ, _VX, rz, rx, k=_RING_K) for dy in (-20.0, 0.0)]
    rb = M.euler(b["yaw"], b["pitch"], b["roll"])
    origin = r_up @ rc + t_up + rb @ np.array([0.0, b["neck_len"], 0.0])
    ns, sh, cd = b["neck_scale"], b["shoulder_half"], b["chest_depth"]
    body_rings = [M.ellipse_ring([0.0, -5.0, 8.0], _UZ, _VX, rz * ns, rx * 1.05 * ns, k=_RING_K)]
    body_rings += [M.ellipse_ring([0.0, y, zc], _UZ, _VX, fz * cd, fx * sh, k=_RING_K) for y, fx, fz, zc in _TORSO]
    head_cam = [r @ r_up.T + t_up for r in head_rings]
    body_cam = [r @ rb.T + origin for r in body_rings]
    mid = [head_cam[-1] * (1 - a) + body_cam[0] * a for a in (0.35, 0.7)]
    parts = [M.ring_stack(np.stack(head_cam + mid + body_cam))]
    arms = [M.capsule([sd * (sh - 30.0), 70.0, 20.0], [sd * (sh - 5.0), 430.0, 30.0], b["shoulder_r"] * 0.8, 6, 12) for sd in (-1, 1)]
    v, t = M.merge(arms)
    parts.append((v @ rb.T + origin, t))
    furniture = []
    if chair is not None:
        zb = 20.0 + cd + chair["gap"] + chair["thick"] / 2
        seat = [M.box([0.0, chair["top"] + chair["height"] / 2, zb], [chair["width"], chair["height"], chair["thick"]])]
        if chair["headrest"]:
            seat.append(M.box([0.0, -140.0, zb + 40], [260.0, 180.0, chair["thick"]]))
        v, t = M.merge(seat)
        furniture.append((v @ rb.T + origin, t))
    return parts, furniture


def _background(bg: dict, view: float) -> list:
    parts = []
    o = np.zeros(3)
    if "wall" in bg:
        w = bg["wall"]
        n = M.euler(w["tilt_y"], w["tilt_x"], 0.0) @ np.array([0.0, 0.0, -1.0])
        p0 = np.array([0.0, 0.0, w["z"]])
        rays = np.array([[-view, -view, 1.0], [view, -view, 1.0], [view, view, 1.0], [-view, view, 1.0]])
        den = rays @ n
        if np.all(den < -0.05):
            corners = rays * ((p0 @ n) / den)[:, None]
        else:
            corners = rays * w["z"]
        parts.append(M.quad(corners, o))
    if "floor" in bg:
        f = bg["floor"]
        y, far = f["y"], f["far"]
        parts.append(M.quad(np.array([[-8000, y, 150.0], [8000, y, 150.0], [8000, y, far], [-8000, y, far]]), o))
    if "side_wall" in bg:
        s = bg["side_wall"]
        ry = M.euler(s["yaw"], 0.0, 0.0)
        c = np.array([[0.0, -5000, -3000.0], [0.0, 3000, -3000.0], [0.0, 3000, s["far"]], [0.0, -5000, s["far"]]])
        corners = c @ ry.T + [s["x"], 0.0, 3000.0]
        corners[:, 2] = np.maximum(corners[:, 2], 150.0)
        parts.append(M.quad(corners, o))
    for bx in bg.get("boxes", []):
        parts.append(M.box(bx["centre"], bx["size"], M.euler(bx["yaw"], 0.0, 0.0)))
    return parts


#: Segments a face-only surface keeps (the ICT face region, eyeballs and mouth socket: no scalp, no neck).
FACE_ONLY_SEGMENTS = (SEG_FACE, SEG_FACE_OUTER, SEG_EYES, SEG_MOUTH)


def crop_mask(neutral: np.ndarray, crop: dict) -> np.ndarray:
    """(S,) bool: neutral head-frame points inside a face-only crop (:func:`~facerecon.synth.sampling.sample_crop`).

    The outline is a superellipse in (x, y) with its own extent on each side (left/right
    half-widths, forehead ``top`` and chin/throat ``bottom`` y), exponent ``roundness``
    (2: an ellipse, large: a box), and points deeper than ``back`` (z) are cut (how far round
    the sides the surface goes).
    """
    x, y, z = neutral[:, 0], neutral[:, 1], neutral[:, 2]
    yc = 0.5 * (crop["top"] + crop["bottom"])
    hy = 0.5 * (crop["bottom"] - crop["top"])
    nx = np.where(x >= 0, x / crop["left"], -x / crop["right"])  # +x is the subject's left
    ny = np.abs(y - yc) / hy
    n = crop["roundness"]
    return (np.abs(nx) ** n + ny**n <= 1.0) & (z <= crop["back"])


def head_triangles(assets: HeadAssets, scene: dict) -> tuple[np.ndarray, np.ndarray]:
    """The ICT head triangles (rows into the subset) and segments a frame shows: all, or a face-only crop."""
    crop = scene.get("face_only")
    if not crop:
        return assets.triangles, assets.segments
    inside = crop_mask(assets.neutral, crop)
    keep = inside[assets.triangles].all(axis=1)
    if not crop.get("whole_head"):  # a cut of the whole head (scalp, ears) as a real scan patch is, else the face region
        keep &= np.isin(assets.segments, FACE_ONLY_SEGMENTS)
    return assets.triangles[keep], assets.segments[keep]


def build_scene(assets: HeadAssets, v_head: np.ndarray, params, *, with_background: bool = True) -> Scene:
    """Camera-frame scene for one frame; ``v_head`` are the subset vertices (head frame, mm)."""
    vh = np.asarray(v_head, np.float64)
    rc = M.euler(0.0, 0.0, params.image_roll_deg)
    r_up = rc.T @ params.rotation
    t_up = rc.T @ params.translation
    sc = params.scene
    head_parts, extra = [], []  # extra: (mesh, segment) in the upright camera frame
    hair = sc.get("hair")
    if hair is not None:
        v, t = shell_mesh(assets, vh, _hair_line(hair), hair["thickness"], hair["bumps"], hair["top_extra"], hair["curtain"])
        head_parts.append(((v, t), SEG_HAIR))
    if sc.get("glasses") is not None:
        head_parts += [(m, SEG_OCCLUDER) for m in _glasses(assets, vh, sc["glasses"])]
    if sc.get("hand") is not None:
        head_parts += [(m, SEG_OCCLUDER) for m in _hand(assets, vh, sc["hand"])]
    if sc.get("cap") is not None:
        head_parts += [(m, SEG_OCCLUDER) for m in _cap(assets, vh, sc["cap"])]
    for (v, t), s in head_parts:
        extra.append(((v @ r_up.T + t_up, t), s))
    if sc.get("body") is not None:
        body, furniture = _body(assets, vh, sc["body"], r_up, t_up, sc.get("chair"))
        extra += [(m, SEG_BODY) for m in body] + [(m, SEG_BACKGROUND) for m in furniture]
    if with_background and sc.get("background"):
        view = 1.4 * float(np.max([params.intrinsics.width, params.intrinsics.height])) / 2 / params.intrinsics.fx
        extra += [(m, SEG_BACKGROUND) for m in _background(sc["background"], view)]
    head_cam = vh @ params.rotation.T + params.translation
    head_tris, head_segs = head_triangles(assets, sc)
    verts, tris, segs, off = [head_cam], [head_tris], [head_segs], len(head_cam)
    for (v, t), s in extra:
        verts.append(v @ rc.T)
        tris.append(t + off)
        segs.append(np.full(len(t), s, np.uint8))
        off += len(v)
    return Scene(np.concatenate(verts), np.concatenate(tris).astype(np.int32), np.concatenate(segs),
                 len(head_cam), len(head_tris))  # fmt: skip
