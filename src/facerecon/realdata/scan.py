"""The james face scan (menpo3d) in the canonical head frame, and renders of it at known poses.

Alignment (what defines james's head frame)
-------------------------------------------
``james.obj`` is y-up, z towards the viewer, x towards the subject's left, millimetres.

1. **Axes**: flip y and z (a 180 degree turn about x) -> x subject's left, y down,
   z into the head, the axes of :mod:`facerecon.facemodel`.
2. **Landmarks**: rigid Kabsch (rotation + translation, *no scale*: the project is
   metric) of james's 9 alignment landmarks (``ALIGNMENT_LANDMARKS_9``: eye corners,
   nasion, nose tip, mouth corners, chin; iBUG indices into ``james.ljson``) onto the
   same 9 landmarks of the ICT neutral face.
3. **ICP** (``refine_icp=True``, default): rigid point-to-point ICP of the scan's
   central face (scan points within ``ICP_MAX_DIST_MM`` of the ICT face whose x-y lies
   within ``ICP_RADIUS_MM`` of the ICT nose tip: eyes, nose, cheeks, mouth) onto that
   part of the ICT neutral surface.  Only the central face is used on purpose: james's
   face is ~20 % longer than the ICT mean face (nasion-chin 136 mm vs 113 mm), and ICP
   over the whole face slides along y without converging (10 mm after 50 iterations).

Measured (james.obj/james.ljson as shared): 9-landmark RMS after step 2 is 6.33 mm (chin
13.8 mm, nasion 9.4 mm: face length; the others 1-5 mm); step 3 moves the scan by
~1.4 degrees and ~3 mm (surface RMS 1.9 mm over the central face) and the landmark RMS
becomes 6.68 mm (chin 14.5, nasion 9.7, eye corners 3-6, nose tip 2.4, mouth corners
1-2 mm).  A similarity (with scale) would fit the landmarks to 3.8 mm with scale 0.906;
we do not scale.

Renders complete the scan (open at the back, cut at the neck) with proxies so that a
head localiser sees a head-like blob: the back of the ICT head stretched to the scan's
size (plus flat plugs where the ICT ears would stick out), a neck tube and torso
hanging "down" in the image, and optionally a wall.

Because james's head frame *is* the ICT head frame (by this alignment), a render of the
scan at a ``HeadPose`` has exactly that head pose in the camera frame: the
poses of :func:`render_scan` are known and used only for evaluation.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..facemodel.model import ALIGNMENT_LANDMARKS_9, FaceModel
from ..geometry.camera import Intrinsics
from ..geometry.pose import HeadPose
from ..geometry.raster import rasterize
from ..geometry.rotations import _rz, euler_to_matrix, matrix_to_euler
from ..geometry.transforms import SimilarityTransform, fit_similarity
from ..io.frame import DepthFrame
from ..io.mesh import read_ljson_landmarks, read_mesh
from ..metrics.align import icp_to_surface
from ..metrics.surface import SurfaceIndex
from ..synth import meshes as M
from ..synth.presets import load_sensor
from ..synth.sensors import apply_sensor
from . import EVAL_POSE_KEY, real_data_path

#: james.obj axes (x subject's left, y up, z towards the viewer) -> head frame (x left, y down, z into the head).
FILE_TO_HEAD_AXES = np.diag([1.0, -1.0, -1.0])
ICP_RADIUS_MM = 60.0  # central face used by the ICP refinement (x-y distance from the ICT nose tip)
ICP_MAX_DIST_MM = 10.0  # scan points farther than this from the ICT face (after step 2) are not used
FACE_DIST_MM = 12.0  # scan triangles this close to the ICT narrow face are labelled "face"

# Segment labels shared with the synthetic scenes (facerecon.synth.scene.SEG_*).
SEG_FACE, SEG_HEAD, SEG_BODY, SEG_BACKGROUND = 1, 3, 7, 9


@dataclass
class HeadScan:
    """A real head scan in the canonical head frame (treat as read-only; it is cached).

    Attributes:
        vertices: (V, 3) float64 head-frame vertices, mm.
        faces: (F, 3) int64 triangles (outward winding: counter-clockwise seen from outside).
        landmarks_68: (68, 3) float64 iBUG-68 landmarks in the head frame.
        transform: file coordinates -> head frame (axis flip, Kabsch and ICP composed):
            ``head = transform.apply(file_point)``.
        landmark_transform: the same without the ICP refinement.
        landmark_rms_mm: RMS over the 9 alignment landmarks against the ICT neutral face
            after ``transform``; ``landmark_rms_kabsch_mm`` after ``landmark_transform``.
        icp_rms_mm: surface RMS of the ICP refinement (None without it).
        face_triangle: (F,) bool, triangles on the face (near the ICT narrow face).
        back_cap: ``(vertices, triangles)`` of a proxy closing the open back of the head
            (the back of the ICT head stretched to the scan's size), head frame;
            rendered unless ``close_back=False``.
        neck: ``(centre (3,), rx, rz, y_bottom)``: the neck ellipse below the chin (head
            frame) and the scan's lowest y; the body proxy's neck tube runs through it.
    """

    vertices: np.ndarray
    faces: np.ndarray
    landmarks_68: np.ndarray
    transform: SimilarityTransform
    landmark_transform: SimilarityTransform
    landmark_rms_mm: float
    landmark_rms_kabsch_mm: float
    icp_rms_mm: float | None
    face_triangle: np.ndarray
    back_cap: tuple[np.ndarray, np.ndarray]
    neck: tuple[np.ndarray, float, float, float]
    source: str = ""
    timings: dict = field(default_factory=dict)

    def to_camera(self, pose: HeadPose) -> np.ndarray:
        """(V, 3) camera-frame vertices at head ``pose``."""
        return self.vertices @ pose.R.T + pose.t_mm

    def surface(self) -> SurfaceIndex:
        """Exact point-to-surface index over the scan (head frame), built once."""
        if "_surface" not in self.__dict__:
            self.__dict__["_surface"] = SurfaceIndex(self.vertices, self.faces)
        return self.__dict__["_surface"]


_CACHE: dict = {}


def _rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum((np.asarray(a) - np.asarray(b)) ** 2, axis=1))))


def load_james_scan(
    path: str | Path | None = None,
    *,
    refine_icp: bool = True,
    model: FaceModel | None = None,
) -> HeadScan:
    """Load ``james.obj`` + ``james.ljson`` and bring them into the ICT head frame (see module doc).

    ``path``: the ``scan-james`` folder or ``james.obj`` (default: the shared real data).
    Results are cached per (path, refine_icp) in this process (~0.5 s, +~1.5 s with ICP).
    """

    p = Path(path) if path is not None else real_data_path("scan-james")
    obj = p / "james.obj" if p.is_dir() else p
    key = (str(obj.resolve()), bool(refine_icp))
    if key in _CACHE:
        return _CACHE[key]
    t0 = time.perf_counter()
    mesh = read_mesh(obj)
    lm_file = read_ljson_landmarks(obj.with_suffix(".ljson"))
    model = model if model is not None else FaceModel.load()
    t1 = time.perf_counter()

    flip = SimilarityTransform(FILE_TO_HEAD_AXES, np.zeros(3))
    l0 = flip.apply(lm_file)
    neutral = model.neutral.astype(np.float64)
    ict_lm = neutral[model.landmarks_68]
    idx = list(ALIGNMENT_LANDMARKS_9)
    kabsch = fit_similarity(l0[idx], ict_lm[idx])
    landmark_tf = flip.then(kabsch)
    rms_kabsch = _rms(landmark_tf.apply(lm_file)[idx], ict_lm[idx])

    face_tris = model.region_triangles("narrow_face")
    face_index = SurfaceIndex(neutral, face_tris)
    v1 = landmark_tf.apply(mesh.vertices)
    dist_face = face_index.query(v1).distances
    tf, icp_rms = landmark_tf, None
    t2 = time.perf_counter()
    if refine_icp:
        nose = neutral[model.landmarks_68[30]]
        central = np.linalg.norm(neutral[face_tris].mean(axis=1)[:, :2] - nose[:2], axis=1) < ICP_RADIUS_MM
        target = SurfaceIndex(neutral, face_tris[central])
        d_c = target.query(v1).distances
        src = v1[d_c < ICP_MAX_DIST_MM][::2]  # every other point: half the time, same result (< 0.1 mm)
        res = icp_to_surface(src, target, mode="point_to_point", max_iter=100, tol_mm=1e-3, max_distance_mm=ICP_MAX_DIST_MM)
        tf, icp_rms = landmark_tf.then(res.transform), res.rms_mm
    t3 = time.perf_counter()
    verts = tf.apply(mesh.vertices)
    lms = tf.apply(lm_file)
    faces = np.asarray(mesh.faces, np.int64)
    face_tri = (dist_face[faces] < FACE_DIST_MM).all(axis=1)
    scan = HeadScan(
        vertices=verts,
        faces=faces,
        landmarks_68=lms,
        transform=tf,
        landmark_transform=landmark_tf,
        landmark_rms_mm=_rms(lms[idx], ict_lm[idx]),
        landmark_rms_kabsch_mm=rms_kabsch,
        icp_rms_mm=icp_rms,
        face_triangle=face_tri,
        back_cap=_back_cap(verts, lms, model),
        neck=_neck_ellipse(verts, lms),
        source=str(obj),
    )
    scan.timings = {"read": t1 - t0, "kabsch": t2 - t1, "icp": t3 - t2, "total": time.perf_counter() - t0}
    _CACHE[key] = scan
    return scan


# -- proxies that complete the scan for rendering ---------------------------------------------------


def _back_cap(v: np.ndarray, lms: np.ndarray, model: FaceModel) -> tuple[np.ndarray, np.ndarray]:
    """The back of the ICT head, stretched to the scan's size, behind the scan's open back edge.

    Scale (about the head-frame origin): x = median ratio of the cranium half-widths
    (scan / ICT, over heights 40-120 mm above the eyes, back half of the head), y = ratio
    of the top-of-head heights, z = their mean; then shrunk by 2 % so that where both
    exist the scan is in front.  Kept: ICT skin triangles farther back than where the
    scan's coverage ends (so the proxy cannot show through the face), down to 40 mm below
    the chin (where the neck tube of the body proxy takes over).
    """
    neutral = model.neutral.astype(np.float64)
    hv = neutral[model.region_vertices("face", "head_and_neck")]
    tris = model.region_triangles("head_and_neck")  # not "face": its ears would stick out of the scan
    y_eye = float(lms[36:48, 1].mean())
    ratios = []
    for y0 in np.arange(y_eye - 120.0, y_eye - 30.0, 10.0):
        a = v[(np.abs(v[:, 1] - y0) < 5) & (v[:, 2] > -30)]
        b = hv[(np.abs(hv[:, 1] - y0) < 5) & (hv[:, 2] > -30)]
        if len(a) > 5 and len(b) > 5:
            ratios.append(np.ptp(a[:, 0]) / max(np.ptp(b[:, 0]), 1e-6))
    sx = float(np.clip(np.median(ratios), 0.8, 1.4)) if ratios else 1.0
    sy = float(np.clip(v[:, 1].min() / min(hv[:, 1].min(), -1.0), 0.8, 1.4))
    scale = np.array([sx, sy, 0.5 * (sx + sy)]) * 0.98
    cap_v = neutral * scale
    # where the scan's coverage ends: the lowest of its per-height back-most z over the cranium
    zmax = [v[np.abs(v[:, 1] - y0) < 5, 2].max() for y0 in np.arange(v[:, 1].min() + 15.0, y_eye, 10.0)
            if (np.abs(v[:, 1] - y0) < 5).sum() > 5]  # fmt: skip
    z_cut = float(min(zmax)) - 10.0 if zmax else 0.0
    corners = cap_v[tris]
    keep = (corners[:, :, 2] > z_cut).all(axis=1) & (corners[:, :, 1] < float(lms[8, 1]) + 40.0).all(axis=1)
    tris = tris[keep]
    used = np.unique(tris)
    remap = np.full(len(cap_v), -1, np.int64)
    remap[used] = np.arange(len(used))
    parts = [(cap_v[used], remap[tris].astype(np.int32))]
    # the ICT ears (face region) would stick out of the scan; plug the holes they leave with
    # flat ellipsoids set a little inwards (hidden where the scan has its own ears)
    face_v = neutral[model.region_vertices("face")]
    for side in (-1.0, 1.0):
        ear = face_v[(face_v[:, 0] * side > 60.0) & (face_v[:, 2] > -10.0)]
        if len(ear) > 10:
            c = ear.mean(axis=0) * scale * np.array([0.85, 1.0, 1.0])
            parts.append(M.ellipsoid(c, (18.0, 38.0, 30.0), n_lat=8, n_lon=16))
    v_out, t_out = M.merge(parts)
    return v_out, t_out


def _neck_ellipse(v: np.ndarray, lms: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """Neck ellipse (centre, half width rx, half depth rz, y) 20-50 mm below the chin (the scan has its front half)."""
    y_chin = float(lms[8, 1])
    band = v[(v[:, 1] > y_chin + 20.0) & (v[:, 1] < y_chin + 50.0)]
    if len(band) < 20:
        band = v[v[:, 1] > np.percentile(v[:, 1], 90)]
    x2, x98 = np.percentile(band[:, 0], [2, 98])
    rx = float(np.clip(0.75 * (x98 - x2) / 2.0, 45.0, 70.0))
    rz = rx * 1.05
    z_front = float(np.percentile(band[:, 2], 2))
    centre = np.array([0.5 * (x2 + x98), y_chin + 35.0, z_front + rz])
    return centre, rx, rz, float(v[:, 1].max())


_TORSO = np.array([
    # (y below the neck base, rx / shoulder_half, rz / chest_depth, z centre), body frame (y down, z back)
    [10.0, 0.45, 0.7, 10.0], [30.0, 0.72, 0.85, 14.0], [55.0, 0.9, 0.95, 18.0], [85.0, 0.98, 1.0, 20.0],
    [140.0, 1.0, 1.0, 20.0], [450.0, 0.9, 1.0, 22.0],
])  # fmt: skip
_UZ, _VX = np.array([0.0, 0, 1]), np.array([1.0, 0, 0])  # ring axes: z x x = +y (rings advance downwards)


def _body_proxy(
    neck: tuple[np.ndarray, float, float, float], r_head: np.ndarray, t_head: np.ndarray, r_body: np.ndarray,
    neck_len: float = 35.0, shoulder_half: float = 185.0, chest_depth: float = 110.0, k: int = 24,
) -> tuple[np.ndarray, np.ndarray]:
    """Neck tube from inside the scan's neck (head frame, turns with the head) to a torso (body frame).

    ``r_body`` orients the torso in the camera frame (its +y is "down" along the body).
    Returns camera-frame (vertices, triangles).
    """
    c, rx, rz, y_bottom = neck
    dys = [-60.0, -30.0, 0.0] + ([y_bottom - c[1]] if y_bottom - c[1] > 15.0 else [])
    head_rings = [M.ellipse_ring(c + [0.0, dy, 0.0], _UZ, _VX, rz, rx, k=k) for dy in dys]
    head_cam = [r @ r_head.T + t_head for r in head_rings]
    origin = r_head @ (c + [0.0, dys[-1], 0.0]) + t_head + r_body @ np.array([0.0, neck_len, 0.0])
    body_rings = [M.ellipse_ring([0.0, -5.0, 5.0], _UZ, _VX, rz * 1.05, rx * 1.08, k=k)]
    body_rings += [M.ellipse_ring([0.0, y, zc], _UZ, _VX, fz * chest_depth, fx * shoulder_half, k=k) for y, fx, fz, zc in _TORSO]
    body_cam = [r @ r_body.T + origin for r in body_rings]
    mid = [head_cam[-1] * (1 - a) + body_cam[0] * a for a in (0.4, 0.75)]
    return M.ring_stack(np.stack(head_cam + mid + body_cam))


def _wall(z: float, intr: Intrinsics, tilt_x: float = 0.0, tilt_y: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A plane facing the camera at depth ``z`` on the optical axis, covering the view."""
    view = 1.4 * max(intr.width, intr.height) / 2 / min(intr.fx, intr.fy)
    n = euler_to_matrix(tilt_y, tilt_x, 0.0) @ np.array([0.0, 0.0, -1.0])
    p0 = np.array([0.0, 0.0, z])
    rays = np.array([[-view, -view, 1.0], [view, -view, 1.0], [view, view, 1.0], [-view, view, 1.0]])
    den = rays @ n
    corners = rays * ((p0 @ n) / den)[:, None] if np.all(den < -0.05) else rays * z
    return M.quad(corners, np.zeros(3))


def upright_roll_deg(rotation: np.ndarray) -> float:
    """The multiple of 90 degrees nearest to the head's roll in the image (how the camera is held)."""
    down = np.asarray(rotation, np.float64)[:, 1]  # head-frame y (down) in the camera frame
    roll = np.rad2deg(np.arctan2(-down[0], down[1]))
    return float(90.0 * np.round(roll / 90.0)) % 360.0


def body_rotation(rotation: np.ndarray, image_roll_deg: float | None = None, follow: float = 0.5) -> np.ndarray:
    """Orientation of a torso under a head at ``rotation``: gravity-down in the (rolled) image, yaw ``follow`` x head yaw."""
    roll = upright_roll_deg(rotation) if image_roll_deg is None else float(image_roll_deg)
    rc = _rz(np.deg2rad(np.float64(roll)))
    yaw = float(matrix_to_euler(rc.T @ np.asarray(rotation, np.float64))[0])
    return rc @ euler_to_matrix(follow * yaw, 0.0, 0.0)


@dataclass
class ScanRender:
    """Camera-frame triangle soup of a scan render, with a segment label per triangle."""

    vertices: np.ndarray
    triangles: np.ndarray
    segments: np.ndarray
    n_scan_triangles: int


def scan_scene(
    scan: HeadScan,
    pose: HeadPose,
    intrinsics: Intrinsics,
    background: str = "wall",
    *,
    close_back: bool = True,
    wall_gap_mm: float = 600.0,
    wall_tilt_deg: tuple[float, float] = (0.0, 0.0),
    image_roll_deg: float | None = None,
    body_follow: float = 0.5,
) -> ScanRender:
    """The camera-frame scene of :func:`render_scan` (no randomness)."""
    if background not in ("none", "body", "wall"):
        raise ValueError(f"background must be 'none', 'body' or 'wall', got {background!r}")
    r, t = pose.R, pose.t_mm
    seg = np.where(scan.face_triangle, SEG_FACE, SEG_HEAD).astype(np.uint8)
    parts = [((scan.vertices @ r.T + t, scan.faces.astype(np.int32)), seg)]
    if close_back and len(scan.back_cap[1]):
        v, tr = scan.back_cap
        parts.append(((v @ r.T + t, tr), np.full(len(tr), SEG_HEAD, np.uint8)))
    if background in ("body", "wall"):
        v, tr = _body_proxy(scan.neck, r, t, body_rotation(r, image_roll_deg, body_follow))
        parts.append(((v, tr), np.full(len(tr), SEG_BODY, np.uint8)))
    if background == "wall":
        v, tr = _wall(float(t[2]) + float(wall_gap_mm), intrinsics, *wall_tilt_deg)
        parts.append(((v, tr), np.full(len(tr), SEG_BACKGROUND, np.uint8)))
    verts, tris, segs, off = [], [], [], 0
    for (v, tr), s in parts:
        verts.append(v)
        tris.append(np.asarray(tr, np.int64) + off)
        segs.append(s)
        off += len(v)
    return ScanRender(np.concatenate(verts), np.concatenate(tris).astype(np.int32), np.concatenate(segs), len(scan.faces))


def render_soup(
    vertices: np.ndarray, triangles: np.ndarray, segments: np.ndarray, intrinsics: Intrinsics
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact render with back faces culled: (depth float32 mm, segment uint8, |cos| of the view angle float32)."""
    depth, tid, _ = rasterize(vertices, triangles, intrinsics, cull_backfaces=True)
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    n = np.cross(b - a, c - a)
    cen = (a + b + c) / 3.0
    cos_t = np.abs(np.einsum("ij,ij->i", n, cen)) / (np.linalg.norm(n, axis=1) * np.linalg.norm(cen, axis=1) + 1e-30)
    ok = tid >= 0
    segment = np.zeros(tid.shape, np.uint8)
    cos = np.ones(tid.shape, np.float32)
    segment[ok] = segments[tid[ok]]
    cos[ok] = cos_t[tid[ok]]
    return depth, segment, cos


def render_scan(
    scan: HeadScan,
    pose: HeadPose,
    intrinsics: Intrinsics,
    sensor_name: str = "ideal",
    rng: np.random.Generator | None = None,
    background: str = "wall",
    **scene_kw,
) -> DepthFrame:
    """Depth frame (mm) of ``scan`` at head ``pose`` through the named sensor model.

    Args:
        scan: from :func:`load_james_scan`.
        pose: head frame -> camera frame (``x_cam = R v + t``, mm).
        intrinsics: the camera.
        sensor_name: a model of ``configs/sensors.toml`` (``ideal``, ``kinect-v1``,
            ``tof``, ``truedepth``, ...).
        rng: the sensor's random stream (default: ``default_rng(0)``).
        background: ``'none'`` (scan and its back-of-head cap only), ``'body'`` (plus a
            neck/torso proxy hanging "down" in the image, i.e. the nearest multiple of
            90 degrees to the head's image roll unless ``image_roll_deg`` is given) or
            ``'wall'`` (plus a plane ``wall_gap_mm`` behind the head).
        scene_kw: ``close_back``, ``wall_gap_mm``, ``wall_tilt_deg`` (x, y),
            ``image_roll_deg``, ``body_follow`` (see :func:`scan_scene`).

    Returns a DepthFrame whose ``meta[EVAL_POSE_KEY] = pose`` is the exact head pose
    (evaluation only) and ``meta['segment_for_eval_only']`` the visible segment per pixel
    (1 face, 3 rest of the head, 7 body, 9 background, 0 none).
    """

    rng = rng if rng is not None else np.random.default_rng(0)
    sc = scan_scene(scan, pose, intrinsics, background, **scene_kw)
    ideal, segment, cos = render_soup(sc.vertices, sc.triangles, sc.segments, intrinsics)
    sensor = load_sensor(sensor_name)
    depth, applied = apply_sensor(sensor, ideal, intrinsics, rng, segment=segment, cos_view=cos)
    meta = {
        "format": "render",
        "domain": "real-scan",
        "subject": "james",
        "sensor": sensor_name,
        "background": background,
        EVAL_POSE_KEY: pose,
        "segment_for_eval_only": segment,
        "sensor_params": [[name, prm] for name, prm in applied],
    }
    return DepthFrame(depth, intrinsics, f"james-scan render ({sensor_name})", None, meta)
