"""One pose JSON schema for every command: ``facerecon/data/pose.schema.json`` (``schema_version`` 2).

:func:`pose_document` writes the core keys every command shares (frame, method, the face
decision, confidence, the pose in four forms, identity and expression weights, timings);
what only one method has goes into its own block (``depth``, ``photo``, ``photo_depth``,
``track``).  ``reconstruct`` (every method), ``pose`` and each frame of ``track`` go through
here, and the tests validate every CLI output against the schema (:func:`validate`).
Documented in ``docs/pose_json.md``.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np

from ..geometry.pose import EULER_CONVENTION, HeadPose

SCHEMA_VERSION = 2


def pose_keys(pose: HeadPose) -> dict:
    """The four forms of a pose under the schema's names."""
    yaw, pitch, roll = (float(a) for a in pose.euler_deg)
    return {"rotation_matrix": pose.R.tolist(), "translation_mm": [float(v) for v in pose.t_mm],
            "quaternion_wxyz": [float(v) for v in pose.quaternion_wxyz], "euler_deg": {"yaw": yaw, "pitch": pitch, "roll": roll}}


def pose_document(*, frame: str, method: str, face: bool, confidence: float, pose: HeadPose | None = None, reason: str = "",
                  identity=None, expression=None, expression_names=None, timings_ms: dict | None = None, **blocks) -> dict:
    """The core keys, then the method's blocks (``None`` blocks are left out)."""
    doc: dict = {"schema_version": SCHEMA_VERSION, "frame": str(frame), "method": method, "face": bool(face)}
    if reason and not face:
        doc["reason"] = reason
    doc["confidence"] = round(float(np.clip(confidence, 0.0, 1.0)), 6)
    if pose is not None:
        doc.update(pose_keys(pose), euler_convention=EULER_CONVENTION)
    if identity is not None:
        doc["identity"] = np.round(np.asarray(identity, np.float64), 5).tolist()
    if expression is not None:  # clamped to ARKit's [0, 1] here, for every command (the depth networks' can leave it a little)
        doc["expression"] = {n: round(float(w), 6) for n, w in zip(expression_names, np.clip(np.asarray(expression, np.float64), 0.0, 1.0))}
    if timings_ms:
        doc["timings_ms"] = {k: round(float(v), 3) for k, v in timings_ms.items()}
    doc.update({k: v for k, v in blocks.items() if v is not None})
    return doc


def depth_block(res, detail_map=None) -> dict:
    """What only the depth paths have: the path taken, crop, check, confidence terms, the networks' own pose;
    ``detail_map``: the detail layer's maps (:class:`.maps.DetailMaps`) when they were made."""
    out = {"path": res.path.to_json(), "crop_box_px": [float(v) for v in res.position_image.crop_box],
           "head_box_px": [int(v) for v in res.location.box], "landmark_fit": float(res.landmark_fit),
           "confidence_terms": {k: round(float(v), 4) for k, v in res.confidence_terms.items()},
           "plausibility": {k: round(float(v), 4) for k, v in res.plausibility.items()}, "check": res.check.to_json()}
    if res.network_pose is not None:
        out["network"] = {**pose_keys(res.network_pose), **({"check": res.network_check.to_json()} if res.network_check else {})}
    out["other_head_regions"] = len(res.other_heads)
    if res.vertices_head is not None:  # a result with a surface: whether it carries the out-of-span correction
        out["detail"] = res.detail
        if res.correction is not None:
            out["correction"] = res.correction.stats()
        if detail_map is not None:
            out["detail_map"] = detail_map.to_json()
    if res.other_heads:
        out["other_heads"] = [{"head_box_px": [int(v) for v in h.box], "center_mm": [float(v) for v in h.center_mm]} for h in res.other_heads]
    return out


def depth_document(res, frame: str, method: str, model=None, detail_map=None, **blocks) -> dict:
    """pose.json of a depth result (``reconstruct`` with ``network`` / ``fit``, ``pose``, ``photo-depth``):
    identity and expression weights when the result has a mesh (names from ``model``); ``detail_map``
    (:class:`.maps.DetailMaps`): ``depth.detail_map``."""
    has_mesh = res.vertices_head is not None and res.face
    return pose_document(frame=frame, method=method, face=res.face, confidence=res.confidence, pose=res.pose, reason=res.reason,
                         identity=res.identity if has_mesh else None, expression=res.expression if has_mesh and model is not None else None,
                         expression_names=None if model is None else list(model.expression_names), timings_ms=res.timings_ms,
                         depth=depth_block(res, detail_map), **blocks)


def photo_document(rec, model, method: str = "photo", **blocks) -> dict:
    """pose.json of a photo result (``photo``, ``rgbd``): pose, camera, fit statistics, identity and expression weights."""
    e, f = rec.photo, rec.photo.fit
    photo = {"face_index": int(e.face_index), "face_box": np.round(e.face_box, 2).tolist(), "camera": rec.camera.to_json(),
             "fit": {"iterations": f.iterations, "rigid_iterations": f.rigid_iterations, "converged": f.converged,
                     "rms_px": round(f.rms_px, 3), "contour_rms_px": round(f.contour_rms_px, 3), "ms": round(f.ms, 2)},
             "texture": None if rec.texture is None else rec.texture.stats(),
             "landmark_sources": list(getattr(e, "landmark_sources", ("facemesh",)))}
    photo.update(photo_size_block(rec, model))
    return pose_document(frame=rec.source, method=method, face=True, confidence=rec.confidence, pose=rec.pose, identity=rec.identity,
                         expression=rec.expression, expression_names=list(model.expression_names), timings_ms=rec.timings_ms,
                         photo=photo, **blocks)


def photo_size_block(rec, model) -> dict:
    """The photo's distance (only with a known focal length) and the face size it rests on, against
    the head-size prior (ICT's identity prior: one photo cannot tell size from distance)."""
    from ..photo.fit import EYE_CORNERS_68, size_prior

    i, j = EYE_CORNERS_68
    mean, sd = size_prior(model)
    fitted = float(np.linalg.norm(rec.landmarks_3d[i] - rec.landmarks_3d[j]))
    known = rec.camera.focal_known
    fit = rec.photo.fit
    cue = fit.size_cue  # the iris (photo.iris; off by default: docs/photo.md round 8)
    basis = "ICT identity prior" + ("" if cue is None else " and the iris (11.7 +- 0.5 mm)")
    return {"distance_mm": round(float(np.linalg.norm(rec.pose.t_mm)), 1) if known else None,
            "size": {"eye_corners_mm": round(fitted, 2), "prior_mean_mm": round(mean, 2), "prior_sd_mm": round(sd, 2),
                     "iris": None if cue is None else {"eye_depth_mm": round(float(cue.eye_depth_mm), 1),
                                                       "sd_rel": round(float(cue.sd_rel), 4), **cue.source},
                     "iris_note": fit.size_cue_note or None,
                     "basis": basis + ("" if known else "; distance not reported: the focal length is a guess")}}


def track_document(t, expression_names: list[str]) -> dict:
    """One frame of ``track`` (the filtered pose in the core keys, the raw pose in the block)."""
    track = {"index": int(t.index), "time_s": float(t.time_s), "status": t.status, "recovered": t.recovered, "localised": t.localised,
             "warm_start": t.warm_start, "residual_mm": round(t.residual_mm, 3) if np.isfinite(t.residual_mm) else None,
             "raw_pose": None if t.raw_pose is None else pose_keys(t.raw_pose), "identity_frozen": t.identity_frozen}
    return pose_document(frame=t.source, method="track", face=t.tracked, confidence=t.confidence, pose=t.pose, reason=t.message,
                         expression=t.expression, expression_names=expression_names, timings_ms=t.timings_ms, track=track)


@lru_cache(maxsize=1)
def schema() -> dict:
    """The shipped JSON Schema (``facerecon/data/pose.schema.json``)."""
    return json.loads(resources.files("facerecon").joinpath("data/pose.schema.json").read_text(encoding="utf-8"))


def validate(doc: dict) -> None:
    """Raise ``jsonschema.ValidationError`` when ``doc`` does not follow the schema (needs the ``jsonschema`` package)."""
    import jsonschema

    jsonschema.Draft202012Validator(schema()).validate(doc)
