"""Faces outside the model's span: smooth displacement fields over the head, and real scans as identities.

Real faces are not 100-mode PCA faces.  A frame can add to its model face (identity +
expression blend) a displacement that is a smooth function of each vertex's *neutral*
head-frame position (so the same field applies to every expression and to the full
topology when the ground truth is rebuilt):

* ``rbf``: a few Gaussian bumps (centre on the face, direction, radius), scaled together
  so that their sum peaks at exactly ``amplitude_mm`` over the face (:data:`ANCHOR_REGION`);
* ``scale``: per-region scaling about a landmark (nose, chin, mouth, jaw sides, brow),
  faded out with a Gaussian of the region's radius;
* ``asym``: one side of the face shifted (smoothly across the midline), i.e. asymmetry;
* then the **rigid part of the whole field is removed** (Kabsch over the face): the
  deformed face is, in the least-squares sense, exactly where the undeformed one was, so
  the pose labels (the head frame) stay exact.

Everything is plain JSON (``labels["deform"]``) and :func:`displacement` is a pure
function of it, so :func:`facerecon.synth.labels.gt_vertices` can rebuild the surface.

:func:`scan_displacement` turns a real head scan that is already in the ICT head frame
(e.g. ``facerecon.realdata.scan.load_james_scan``) into a per-vertex displacement of the
ICT neutral face: a thin-plate warp through the 68 landmarks, then the face vertices are
projected onto the scan surface where it is near.  The generator uses it as an extra
identity (``[shape] scan_identity``); its frames carry exact pose labels, and their
shape labels name the scan (``labels["identity_source"]``) rather than model weights.
"""
from __future__ import annotations

import numpy as np

from ..geometry.transforms import fit_similarity
from .spec import chance, draw

#: ICT region over which amplitudes are measured and the rigid part is removed.
ANCHOR_REGION = "narrow_face"
#: Regions for per-region scaling: (iBUG landmark index of the centre, radius mm).
SCALE_REGIONS = {
    "nose": (30, 22.0), "chin": (8, 30.0), "mouth": (62, 26.0), "jaw_left": (4, 32.0), "jaw_right": (12, 32.0),
    "brow": (27, 40.0), "cheek_left": (2, 30.0), "cheek_right": (14, 30.0),
}  # fmt: skip


def _gauss(points: np.ndarray, centre, radius: float) -> np.ndarray:
    d2 = np.sum((points - np.asarray(centre, np.float64)) ** 2, axis=1)
    return np.exp(-0.5 * d2 / float(radius) ** 2)


def raw_field(points: np.ndarray, params: dict) -> np.ndarray:
    """(N, 3) displacement before the gain and the rigid correction (see module doc)."""
    p = np.asarray(points, np.float64)
    out = np.zeros_like(p)
    rbf = np.zeros_like(p)
    for b in params.get("rbf", []):
        rbf += _gauss(p, b["c"], b["r"])[:, None] * np.asarray(b["a"], np.float64)
    out += float(params.get("rbf_gain", 1.0)) * rbf
    for s in params.get("scale", []):
        c = np.asarray(s["c"], np.float64)
        out += _gauss(p, c, s["r"])[:, None] * (np.asarray(s["s"], np.float64) - 1.0) * (p - c)
    a = params.get("asym")
    if a:
        # 0 on one side, 1 on the other, a smooth ramp over +-20 mm of the midline
        t = np.clip(0.5 + a["side"] * p[:, 0] / 40.0, 0.0, 1.0)
        w = t * t * (3 - 2 * t) * np.exp(-0.5 * ((p[:, 1] - a["y"]) / 70.0) ** 2)
        out += w[:, None] * np.asarray(a["a"], np.float64)
    return out


def displacement(points: np.ndarray, params: dict | None) -> np.ndarray:
    """(N, 3) float64 displacement of vertices at neutral head-frame ``points`` (zeros if ``params`` is None)."""
    p = np.asarray(points, np.float64)
    if not params:
        return np.zeros_like(p)
    moved = p + raw_field(p, params)
    rig = params.get("rigid")
    if rig:
        moved = moved @ np.asarray(rig["R"], np.float64).T + np.asarray(rig["t"], np.float64)
    return moved - p


def sample_deformation(shape: dict, anchors: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> dict | None:
    """Draw one frame's deformation from a preset's ``[shape]`` table (None: no deformation).

    ``anchors``: (N, 3) neutral points of :data:`ANCHOR_REGION` (a subsample is enough);
    ``landmarks``: (68, 3) neutral iBUG landmarks.  Draws a fixed count of random numbers
    per option whatever the outcome, so streams stay aligned.
    """
    out: dict = {}
    if chance(shape.get("deform", 0.0), rng):
        k = int(draw(shape.get("deform_count", [2, 5]), rng))
        amp = float(draw(shape.get("deform_amplitude_mm", [1.0, 4.0]), rng))
        bumps = []
        for _ in range(k):
            c = anchors[int(rng.integers(len(anchors)))]
            a = rng.normal(size=3)
            bumps.append({"c": c.tolist(), "a": (a / np.linalg.norm(a)).tolist(),
                          "r": float(draw(shape.get("deform_radius_mm", [20.0, 50.0]), rng))})  # fmt: skip
        peak = float(np.max(np.linalg.norm(raw_field(anchors, {"rbf": bumps}), axis=1)))
        out.update(rbf=bumps, rbf_gain=amp / max(peak, 1e-9), amplitude_mm=amp)
    if chance(shape.get("region_scale", 0.0), rng):
        sd = float(draw(shape.get("region_scale_sd", 0.06), rng))
        out["scale"] = [{"region": name, "c": landmarks[i].tolist(), "r": r,
                         "s": np.clip(1.0 + rng.normal(0.0, sd, 3), 0.75, 1.25).tolist()}
                        for name, (i, r) in SCALE_REGIONS.items()]  # fmt: skip
    if chance(shape.get("asymmetry", 0.0), rng):
        mm = float(draw(shape.get("asymmetry_mm", [1.0, 3.0]), rng))
        a = rng.normal(size=3)
        out["asym"] = {"side": float(rng.choice([-1.0, 1.0])), "y": float(rng.uniform(-40, 60)),
                       "a": (mm * a / np.linalg.norm(a)).tolist(), "mm": mm}  # fmt: skip
    if not out:
        return None
    # remove the field's rigid part over the face: the head frame (the pose label) stays put
    moved = anchors + raw_field(anchors, out)
    tf = fit_similarity(moved, anchors)
    out["rigid"] = {"R": tf.R.tolist(), "t": tf.t.tolist()}
    return out


def scan_displacement(model, scan_vertices: np.ndarray, scan_faces: np.ndarray, scan_landmarks_68: np.ndarray,
                      *, near_mm: float = 6.0, far_mm: float = 14.0) -> np.ndarray:  # fmt: skip
    """(V, 3) float32 displacement taking the ICT neutral face to a head-frame scan (see module doc).

    1. thin-plate-spline warp of all ICT vertices through the 68 landmark pairs (smoothed:
       scan landmarks are a few mm noisy);
    2. vertices of the ICT ``face`` region are moved onto the nearest scan surface point,
       fully where it is nearer than ``near_mm`` after the warp, fading out by ``far_mm``
       (where the scan has no surface, e.g. the ears of a face-only scan, the warp stays).
    """
    from scipy.interpolate import RBFInterpolator

    from ..metrics.surface import SurfaceIndex

    neutral = model.neutral.astype(np.float64)
    ict_lm = neutral[model.landmarks_68]
    warp = RBFInterpolator(ict_lm, np.asarray(scan_landmarks_68, np.float64) - ict_lm, kernel="thin_plate_spline",
                           smoothing=50.0)  # fmt: skip
    warped = neutral + warp(neutral)
    face = model.region_vertices("face")
    res = SurfaceIndex(np.asarray(scan_vertices, np.float64), np.asarray(scan_faces, np.int64)).query(warped[face])
    w = np.clip((far_mm - res.distances) / (far_mm - near_mm), 0.0, 1.0)[:, None]
    warped[face] = warped[face] * (1 - w) + res.points * w
    return (warped - neutral).astype(np.float32)
