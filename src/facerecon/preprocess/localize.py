"""Head localisation in a raw depth frame (no colour needed).

Method (on a min-pooled depth image ~128 pixels wide: ~2.5-4 ms per frame on one core)
-------------------------------------------------------------------------------------
1. **Downsample** by an integer factor ``s`` (640 -> 128: s = 5; 320 -> 107: s = 3) keeping
   the *nearest* valid depth of a 2 x 2 subset of each ``s x s`` block (min-pooling:
   foreground is never blended with background; 0 = no measurement).
2. **Segment** into depth-connected blobs: where a right/lower neighbour is farther by
   more than ``edge_abs_mm + edge_rel * z`` (occlusion edge) the *farther* pixel is
   dropped (foreground objects stay whole and are cut from what lies behind them), and
   the remaining valid pixels are labelled 4-connected.  A person is one blob (head +
   neck + shoulders + torso), the wall behind is another.
3. **Score** candidate centres of every blob of head size or larger with a *metric*
   two-box test (box sizes in pixels are ``f * size_mm / z`` at the candidate's depth, so
   the test does not depend on distance or camera):
   ``fill`` = fraction of the inner box (160 mm square) covered by the same blob,
   ``ring`` = fraction of the ring between the inner and the outer box (320 mm square)
   covered by the same blob, counted over the ring's part inside the image (an object
   cut by the image border must not look like it sticks out).  A head is a solid region
   of head size (``fill`` high) that sticks out of its blob: only the neck and the top of
   the shoulders reach the ring, on *one side*, so ``ring`` is low.  A torso, a wall or a
   large box has ``ring`` near 1; an arm or a pole has a low ``fill``.  **Nothing assumes
   that the head's up is image-up**, so a phone held sideways (the TrueDepth frames, head
   rotated ~90 degrees in the image) works the same way; ``body_direction`` reports on
   which side the body is attached.  Score = ``fill - ring``.  Each blob's best candidate
   is ranked by ``score - near_prior * ln(z / z_nearest)`` (a mild preference for the
   nearer head-like thing: the camera looks at the person).
   3b. **Face-only surfaces**: when no candidate passes, the test is repeated with
   ``fill >= face_only_min_fill`` (0.3) and ``ring <= face_only_max_ring`` (0.1): a face
   without hair, neck or shoulders (a face scan, a face-only render, a face patch) is smaller
   than the 160 mm box (measured fill 0.34-0.48 on face-only renders of the mannequin and of
   the ``biwi-faces`` preset, ring 0.00-0.02) and has nothing around it.  Balls of head size
   pass it too (fill 0.39-0.49); the robust check after the networks refuses them.  Frames
   where step 3 finds a candidate are unchanged by it.
   3c. **Heads joined to what lies far behind them**: when 3b finds nothing either, the
   full-head test is repeated with the ring counting only its blob's pixels at most
   ``ring_half_mm`` behind the candidate (the far side of a 3D outer box): a person whose torso
   touches a slanted wall is one blob with the wall, and the wall 250 mm behind the head
   filled the ring (``facewarehouse`` frame of the saying-no benchmark).  The blob then holds
   more than one candidate (up to ``max_candidates``, an inner box apart), and step 5's head
   surface starts from the inner box's pixels near the candidate's depth.  Frames where step
   3 or 3b finds a candidate are unchanged by it.
4. **Refine** (best ranked first) by mean shift in 3D: the visible head surface is the
   set of blob points within ``collect_radius_mm`` (110 mm) of the estimate; its
   centroid is the new estimate.
5. **Verify**: fit ``z = quadratic(x, y)`` to the head surface.  A head is convex towards
   the camera (mean curvature 1/400..1/30 per mm), and where it is nearly flat in one
   direction (a face from brow to chin, joined by the neck, the hair cut away by the
   sensor; a profile view) it is a rounded fold, not a crease: a box edge facing the
   camera fits two planes far better than a parabola (``_crease_ratio``).  It is smooth (fit residual below 12 mm + 1.5 mm * (z/m)^2);
   and it lies in front of its surroundings (at most 10 % of the outer box is nearer by
   more than 80 mm and belongs to another blob).  This rejects flat head-sized patches
   (a box face, a picture), box edges and corners facing the camera (creases), noisy
   fragments of far background, and pieces of background seen between foreground
   objects.  If the candidate fails, the next one is tried (at most ``max_candidates``).
6. **Centre**: the head surface centroid pushed back along the viewing ray by
   ``centre_offset_mm`` (60 mm: a sphere of radius 90 mm has its centre 2R/3 behind the
   pixel-averaged depth of its visible side), i.e. an estimate of the centre of the
   head volume.  This is the point :func:`~facerecon.preprocess.make_position_image`
   crops around; it is *not* the origin of the face-model head frame (the pose network
   predicts that relative to this centre).

Limits (documented, not handled)
--------------------------------
* The head must be depth-separated from what is behind it by more than the edge
  threshold (~15 mm + 3 % of the depth): a head resting on a pillow, a high headrest or
  a wall joins a large blob and its ``ring`` goes up (rejected, or the wrong part wins).
* A head-sized rounded object (a ball, a vase) passes every test; it wins over the real
  head when it scores better (sticks out more cleanly) or is much nearer.  With several
  people the best-ranked head wins: use ``hint_box`` to choose (e.g. last frame's box).
* Hands in front of or touching the face, hats, and long hair change the silhouette and
  can lower the score or shift the centre.
* Heads of fewer than ~4 working pixels across (beyond ~4 m on a Kinect v1) are not
  found; a head larger than the frame (closer than ~0.25 m) loses ``fill``.
* Score and confidence are heuristics in [0, 1], not probabilities.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from ..geometry.camera import Intrinsics
from ..errors import ConfigError, NoFaceFoundError
from ..io.frame import DepthFrame
from ..settings import toml_defaults


@toml_defaults("configs/localize.toml", "localize")
class LocalizeParams:
    """Tunable constants of :func:`localize_head`; the values and what they mean: ``configs/localize.toml``."""

    work_width: int
    min_depth_mm: float
    max_depth_mm: float
    edge_abs_mm: float
    edge_rel: float
    head_half_mm: float
    ring_half_mm: float
    min_fill: float
    max_ring: float
    min_ring_visible: float
    min_score: float
    face_only_min_fill: float
    face_only_max_ring: float
    collect_radius_mm: float
    min_head_points: int
    min_blob_pixels: int
    max_blobs: int
    min_extent_mm: float
    centre_offset_mm: float
    min_curvature: float
    max_curvature: float
    min_k_min: float
    max_crease_ratio: float
    fit_rms_mm: float
    noise_rel: float
    occluder_margin_mm: float
    max_occluded: float
    max_candidates: int
    near_prior: float


DEFAULT_PARAMS = LocalizeParams()


@dataclass(frozen=True)
class HeadLocation:
    """Where the head is in a depth frame.

    Attributes:
        center_mm: (3,) estimated centre of the head volume in the camera frame (mm):
            the visible head surface centroid pushed ``centre_offset_mm`` back along the
            viewing ray.
        surface_mm: (3,) centroid of the visible head surface points (mm).
        box: ``(x0, y0, x1, y1)`` pixel box of the head surface points in the frame's
            pixel coordinates (inclusive-exclusive, ints, clipped to the image).
        score: two-box head score in [0, 1] (``fill - ring``, see module doc).
        confidence: heuristic in [0, 1] combining the score and the shape check.
        body_direction: (2,) unit image vector from the head towards the attached body
            (neck/shoulders) or None when nothing is attached; ``(0, 1)`` is image-down
            for an upright person, ``(+-1, 0)`` for a phone held sideways.
        n_points: head surface points used (working resolution).
        source: the frame's source.
    """

    center_mm: np.ndarray
    surface_mm: np.ndarray
    box: tuple[int, int, int, int]
    score: float
    confidence: float
    body_direction: np.ndarray | None = None
    n_points: int = 0
    source: str = ""
    diagnostics: dict = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict:
        return {
            "center_mm": [float(v) for v in self.center_mm],
            "surface_mm": [float(v) for v in self.surface_mm],
            "box": [int(v) for v in self.box],
            "score": float(self.score),
            "confidence": float(self.confidence),
            "body_direction": None if self.body_direction is None else [float(v) for v in self.body_direction],
            "n_points": int(self.n_points),
        }


# ---------------------------------------------------------------------------------
# helpers


def min_pool_depth(depth_mm: np.ndarray, s: int, full: bool = False) -> np.ndarray:
    """Nearest valid depth of each ``s x s`` block (0 where the block has none).

    By default only a 2 x 2 subset of each block is read (offsets ``s//4`` and ``3s//4``;
    all of it when ``s <= 2`` or ``full``): ~0.2 ms for 640x480 -> 160x120, against
    ~0.6 ms for the full block.  Works on the float32 bit pattern (positive floats order
    like uint32; 0 - 1 wraps to the largest uint32, so invalid pixels never win).
    """
    d = np.ascontiguousarray(depth_mm, dtype=np.float32)
    if s == 1:
        return d.copy()
    h, w = (d.shape[0] // s) * s, (d.shape[1] // s) * s
    a = d[:h, :w].view(np.uint32)
    offs = list(range(s)) if (full or s <= 2) else sorted({s // 4, (3 * s) // 4})
    m = a[offs[0] :: s, offs[0] :: s] - np.uint32(1)
    for i in offs:
        for j in offs:
            if i != offs[0] or j != offs[0]:
                np.minimum(m, a[i::s, j::s] - np.uint32(1), out=m)
    return (m + np.uint32(1)).view(np.float32)


def _segment(z: np.ndarray, p: LocalizeParams) -> tuple[np.ndarray, int, np.ndarray]:
    """Label depth-connected blobs (see module doc, step 2): labels, their count, their boxes (``_label4``)."""
    keep = _edge_keep(np.ascontiguousarray(z, np.float32), np.float32(p.edge_abs_mm), np.float32(p.edge_rel))
    labels, n, box = _label4(keep)
    return labels, int(n), box


@njit(cache=True, nogil=True)
def _edge_keep(z, edge_abs, edge_rel):
    """Valid pixels (z > 0) less the farther side of every occlusion edge: of two valid 4-neighbours whose depths
    differ by more than ``edge_abs + edge_rel * (the nearer depth)``, the farther one (step 2 of the module doc).
    float32 as the NumPy form (a float32 image and Python-float settings) had it, in one pass."""
    h, w = z.shape
    keep = np.empty((h, w), np.bool_)
    for r in range(h):
        for c in range(w):
            keep[r, c] = z[r, c] > 0
    for r in range(h):
        for c in range(w):
            za = z[r, c]
            if not za > 0:
                continue
            if c + 1 < w and z[r, c + 1] > 0:  # the pixel to the right
                zb = z[r, c + 1]
                thr = edge_abs + edge_rel * min(zb, za)
                d = zb - za  # > 0: the right pixel farther
                if d > thr:
                    keep[r, c + 1] = False
                if -d > thr:
                    keep[r, c] = False
            if r + 1 < h and z[r + 1, c] > 0:  # the pixel below
                zb = z[r + 1, c]
                thr = edge_abs + edge_rel * min(zb, za)
                d = zb - za
                if d > thr:
                    keep[r + 1, c] = False
                if -d > thr:
                    keep[r, c] = False
    return keep


@njit(cache=True)
def _label4(keep):
    """4-connected components of a boolean image, numbered 1.. in the raster order of their first pixel: what
    ``scipy.ndimage.label(keep)`` returns (int32 labels, the count), without importing scipy.ndimage (~90 ms of a
    cold start; docs/speed.md "Cold start, round 5"), and each label's box (row k: first row, first column, last
    row, last column of label k; row 0 unused). Provisional labels joined by union-find, then renumbered in a second
    raster pass."""
    h, w = keep.shape
    labels = np.zeros((h, w), np.int32)
    parent = np.zeros(h * w // 2 + 2, np.int32)  # a 4-connected raster scan opens at most one label per 2 pixels
    n = 0
    for r in range(h):
        for c in range(w):
            if not keep[r, c]:
                continue
            up = labels[r - 1, c] if r > 0 else 0
            left = labels[r, c - 1] if c > 0 else 0
            if up == 0 and left == 0:
                n += 1
                parent[n] = n
                labels[r, c] = n
                continue
            a = up if up > 0 else left
            while parent[a] != a:
                a = parent[a]
            if up > 0 and left > 0:
                b = left
                while parent[b] != b:
                    b = parent[b]
                if a != b:
                    lo, hi = (a, b) if a < b else (b, a)
                    parent[hi] = lo
                    a = lo
            labels[r, c] = a
    final = np.zeros(n + 1, np.int32)
    box = np.zeros((n + 1, 4), np.int64)
    count = 0
    for r in range(h):
        for c in range(w):
            a = labels[r, c]
            if a == 0:
                continue
            while parent[a] != a:
                a = parent[a]
            if final[a] == 0:
                count += 1
                final[a] = count
                box[count, 0] = r
                box[count, 1] = c
                box[count, 2] = r
                box[count, 3] = c
            k = final[a]
            labels[r, c] = k
            box[k, 1] = min(box[k, 1], c)
            box[k, 2] = r
            box[k, 3] = max(box[k, 3], c)
    return labels, count, box[: count + 1]


@njit(cache=True, nogil=True)
def _blob_sums(labels, area_w, z, n):
    """Per label 0..n: the sum of ``area_w``, the pixel count and the sum of ``z``, in one raster pass: the three
    ``np.bincount`` of the NumPy form (weights widened to float64, summed in pixel order: the same values)."""
    area = np.zeros(n + 1)
    count = np.zeros(n + 1, np.int64)
    zsum = np.zeros(n + 1)
    h, w = labels.shape
    for r in range(h):
        for c in range(w):
            b = labels[r, c]
            area[b] += np.float64(area_w[r, c])
            count[b] += 1
            zsum[b] += np.float64(z[r, c])
    return area, count, zsum


@njit(cache=True, nogil=True)
def _blob_integral(labels, b):
    """(h + 1, w + 1) float32 integral image of ``labels == b`` (a zero first row and column): the counts are
    integers below 2^24, exact in float32 whatever the order of the sums (the NumPy form's two cumsums)."""
    h, w = labels.shape
    ii = np.zeros((h + 1, w + 1), np.float32)
    for r in range(h):
        run = 0
        for c in range(w):
            run += labels[r, c] == b
            ii[r + 1, c + 1] = ii[r, c + 1] + np.float32(run)
    return ii


def _blob_box(box: np.ndarray, b: int) -> tuple[slice, slice]:
    """Label ``b``'s bounding box as (row slice, column slice) from ``_label4``'s boxes (row b: first row, first
    column, last row, last column): ``scipy.ndimage.find_objects``' entry for it (only the candidates' boxes are
    made: a cluttered frame has hundreds of small labels)."""
    r0, c0, r1, c1 = (int(v) for v in box[b])
    return slice(r0, r1 + 1), slice(c0, c1 + 1)


def _visible_area(r, c, h, hh, ww) -> np.ndarray:
    """Number of pixels of the boxes [r-h, r+h] x [c-h, c+h] inside an hh x ww image."""
    rows = np.minimum(r + h, hh - 1) - np.maximum(r - h, 0) + 1
    cols = np.minimum(c + h, ww - 1) - np.maximum(c - h, 0) + 1
    return (np.maximum(rows, 0) * np.maximum(cols, 0)).astype(np.float64)


def _quadric_curvatures(pts: np.ndarray, max_points: int = 800) -> tuple[float, float, float]:
    """Fit ``z = a x^2 + b xy + c y^2 + d x + e y + f`` (mm) to the points.

    Returns the eigenvalues ``(k_min, k_max)`` of the fitted surface's Hessian (1/mm,
    positive = convex towards the camera; a sphere of radius r gives 1/r) and the
    fit's RMS residual (mm).  Normal equations on at most ``max_points`` points (fast).
    """
    if len(pts) > max_points:
        pts = pts[:: int(np.ceil(len(pts) / max_points))]
    c = pts - pts.mean(0)
    x, y, z = c[:, 0] / 100.0, c[:, 1] / 100.0, c[:, 2]  # x, y in dm: well-conditioned
    a = np.stack([x * x, x * y, y * y, x, y, np.ones_like(x)], 1)
    coef = np.linalg.solve(a.T @ a + 1e-9 * np.eye(6), a.T @ z)
    hess = np.array([[2 * coef[0], coef[1]], [coef[1], 2 * coef[2]]]) / 1e4
    k = np.linalg.eigvalsh(hess)
    rms = float(np.sqrt(np.mean((a @ coef - z) ** 2)))
    return float(k[0]), float(k[1]), rms


def _crease_ratio(pts: np.ndarray, max_points: int = 800) -> float:
    """How much better a crease (two planes meeting at an edge) fits than a smooth fold.

    The points are fitted along their most-curved direction ``s`` (from the quadric's
    Hessian) by ``z = a s^2 + b s + c t + d`` and by ``z = a |s - s0| + b s + c t + d``
    (best ``s0`` near the middle); returns rms(crease) / rms(smooth).  Measured: a box
    edge facing the camera 0.1-0.4, the edges of the synthetic scenes' boxes 0.2-0.4,
    faces whose quadric looks like a ridge (hair cut away, profile views) 1.0-1.25.
    """
    if len(pts) > max_points:
        pts = pts[:: int(np.ceil(len(pts) / max_points))]
    c = pts - pts.mean(0)
    x, y, z = c[:, 0] / 100.0, c[:, 1] / 100.0, c[:, 2]
    a = np.stack([x * x, x * y, y * y, x, y, np.ones_like(x)], 1)
    coef = np.linalg.lstsq(a, z, rcond=None)[0]
    _, v = np.linalg.eigh(np.array([[2 * coef[0], coef[1]], [coef[1], 2 * coef[2]]]))
    s = np.stack([x, y], 1) @ v[:, 1]  # most-curved direction
    t = np.stack([x, y], 1) @ v[:, 0]
    one = np.ones_like(s)

    def rms(cols):
        m = np.stack(cols, 1)
        r = z - m @ np.linalg.lstsq(m, z, rcond=None)[0]
        return float(np.sqrt(np.mean(r * r)))

    smooth = rms([s * s, s, t, one])
    apex = float(np.median(s))
    best = min(rms([np.abs(s - s0), s, t, one]) for s0 in np.linspace(apex - 0.4, apex + 0.4, 17))
    return best / max(smooth, 1e-6)


def _ring_in_depth(z, labels, rw, cw, blob, h_in, h_out, zc, half_mm: float) -> np.ndarray:
    """Pixels of each candidate's blob in its ring (outer box minus inner box) at most ``half_mm``
    behind the candidate: what lies far behind a head is not around it (step 3c of the module doc)."""
    hh, ww = z.shape
    out = np.zeros(len(rw))
    for k in range(len(rw)):
        r, c, ho, hi = int(rw[k]), int(cw[k]), int(h_out[k]), int(h_in[k])
        ra, rb, ca, cb = max(0, r - ho), min(hh, r + ho + 1), max(0, c - ho), min(ww, c + ho + 1)
        win = (labels[ra:rb, ca:cb] == blob[k]) & (z[ra:rb, ca:cb] <= zc[k] + half_mm)
        inner = win[max(0, r - hi) - ra:min(hh, r + hi + 1) - ra, max(0, c - hi) - ca:min(ww, c + hi + 1) - ca]
        out[k] = float(win.sum() - inner.sum())
    return out


@dataclass
class _Head:
    """Result of :func:`_verify` (working-resolution arrays of a window around the head)."""

    est: np.ndarray  # (3,) head surface centroid, mm
    pts: np.ndarray  # (N, 3) blob points in the window
    rr: np.ndarray  # (N,) their working-image rows
    cc: np.ndarray  # (N,) ... and columns
    sel: np.ndarray  # (N,) bool: on the head surface
    curv: tuple[float, float]
    rms: float
    occluded: float


def _verify(z, labels, b, r0, c0, wi, f, p: "LocalizeParams", joined: bool = False):
    """Mean-shift the candidate onto the head surface and check its shape.

    Works on a window of +-3 collect radii around the candidate.  Returns a
    :class:`_Head` or a reason string.  ``joined`` (step 3c): the start is the mean of the
    inner box's pixels within ``ring_half_mm`` of the candidate's depth only (its blob reaches
    far behind it).
    """
    hh, ww = z.shape
    hw = int(np.ceil(f * 3.0 * p.collect_radius_mm / z[r0, c0]))
    ra, rb, ca, cb = max(0, r0 - hw), min(hh, r0 + hw + 1), max(0, c0 - hw), min(ww, c0 + hw + 1)
    # a large head (near camera) is subsampled to ~16 points per collect radius
    q = max(1, int(f * p.collect_radius_mm / z[r0, c0] / 16.0))
    rr, cc = np.nonzero(labels[ra:rb:q, ca:cb:q] == b)
    rr = rr * q + ra
    cc = cc * q + ca
    zb = z[rr, cc].astype(np.float64)
    x = (cc - wi.cx) * (zb / wi.fx)
    y = (rr - wi.cy) * (zb / wi.fy)
    h = f * p.head_half_mm / z[r0, c0]
    near = (np.abs(rr - r0) <= h) & (np.abs(cc - c0) <= h)
    if joined:
        near &= np.abs(zb - z[r0, c0]) <= p.ring_half_mm
    if near.sum() >= 3:
        est = np.array([x[near].mean(), y[near].mean(), zb[near].mean()])
    else:
        k = int(np.argmin((rr - r0) ** 2 + (cc - c0) ** 2))
        est = np.array([x[k], y[k], zb[k]])
    r2 = p.collect_radius_mm**2
    for _ in range(8):
        sel = (x - est[0]) ** 2 + (y - est[1]) ** 2 + (zb - est[2]) ** 2 <= r2
        m = int(sel.sum())
        if m < p.min_head_points:
            return "too few points"
        new = np.array([x[sel].sum(), y[sel].sum(), zb[sel].sum()]) / m
        moved = float(np.linalg.norm(new - est))
        est = new
        if moved < 1.0:
            break
    sel = (x - est[0]) ** 2 + (y - est[1]) ** 2 + (zb - est[2]) ** 2 <= r2
    if sel.sum() < p.min_head_points:
        return "too few points"
    pts = np.stack([x, y, zb], 1)
    k_min, k_max, rms = _quadric_curvatures(pts[sel])
    k_mean = 0.5 * (k_min + k_max)
    if not (p.min_curvature <= k_mean <= p.max_curvature):
        return f"not rounded like a head (mean curvature {k_mean * 1000:.1f}/m)"
    # A face is nearly flat from brow to chin and joins the neck, so a head can look like
    # a ridge; a box edge facing the camera is a ridge too, but with a crease.
    if k_min < p.min_k_min and _crease_ratio(pts[sel]) < p.max_crease_ratio:
        return f"not rounded like a head (a ridge: curvatures {k_min * 1000:.1f}/m and {k_max * 1000:.1f}/m)"
    zc = est[2]
    max_rms = p.fit_rms_mm + p.noise_rel * zc * zc * 1e-6
    if rms > max_rms:
        return f"surface too rough for a head ({rms:.0f} mm rms)"
    # occlusion: a head is in front of its surroundings; a fragment of background is not
    u = wi.fx * est[0] / zc + wi.cx
    v = wi.fy * est[1] / zc + wi.cy
    ho = int(round(f * p.ring_half_mm / zc))
    ra, rb = max(0, int(round(v)) - ho), min(hh, int(round(v)) + ho + 1)
    ca, cb = max(0, int(round(u)) - ho), min(ww, int(round(u)) + ho + 1)
    win = z[ra:rb, ca:cb]
    nearer = (win > 0) & (win < zc - p.occluder_margin_mm) & (labels[ra:rb, ca:cb] != b)
    occl = float(nearer.sum()) / float((2 * ho + 1) ** 2)
    if occl > p.max_occluded:
        return f"lies behind something nearer ({occl:.0%} of its surroundings)"
    return _Head(est, pts, rr, cc, sel, (k_min, k_max), rms, occl)


# ---------------------------------------------------------------------------------


def localize_head(
    frame: DepthFrame,
    hint_box: tuple[float, float, float, float] | None = None,
    params: LocalizeParams = DEFAULT_PARAMS,
) -> HeadLocation:
    """Find the head in a depth frame (see the module doc for the method and its limits).

    Args:
        frame: depth frame with intrinsics (depth in mm, 0 = invalid).
        hint_box: optional ``(x0, y0, x1, y1)`` pixel box (e.g. last frame's head box or
            a detector's face box); only candidates whose centre lies inside are kept.
        params: tuning constants.

    Raises:
        NoFaceFoundError: nothing in the frame looks like a head (one line, names the source).
        ConfigError: the frame has no intrinsics.
    """
    src = frame.source or "depth frame"
    intr = frame.intrinsics
    if intr is None:
        raise ConfigError(f"{src}: no intrinsics; give a camera preset or --intrinsics")
    p = params
    s = max(1, int(np.ceil(frame.width / p.work_width - 0.25)))
    z = min_pool_depth(frame.depth_mm, s)
    z[(z < p.min_depth_mm) | (z > p.max_depth_mm)] = 0
    hh, ww = z.shape
    wi = Intrinsics(intr.fx, intr.fy, intr.cx, intr.cy, ww * s, hh * s).resize(ww, hh)
    f = 0.5 * (wi.fx + wi.fy)
    if not (z > 0).any():
        raise NoFaceFoundError(f"{src}: no head found (no valid depth)")

    labels, n, boxes = _segment(z, p)
    if n == 0:
        raise NoFaceFoundError(f"{src}: no head found (no valid depth)")
    # per-blob metric area (mm^2), pixel count, mean depth; keep blobs at least ~ a third of a
    # face, nearest first (at most max_blobs: in heavy clutter the farthest are dropped)
    area, count, zsum = _blob_sums(labels, np.ascontiguousarray((z / f) ** 2), z, n)
    zmean_all = zsum / np.maximum(count, 1)
    min_area = 0.35 * (2 * p.head_half_mm) ** 2
    ok = (area >= min_area) & (count >= p.min_blob_pixels)
    ok[0] = False
    cand_blobs = [int(b) for b in np.flatnonzero(ok)[np.argsort(zmean_all[ok], kind="stable")]][: p.max_blobs]
    if not cand_blobs:
        raise NoFaceFoundError(f"{src}: no head found (no surface of head size)")

    in_hint = None
    if hint_box is not None:
        hx0, hy0, hx1, hy1 = (float(v) for v in hint_box)
        cols = (np.arange(ww) + 0.5) * s - 0.5  # working-pixel centres in frame pixels
        rows = (np.arange(hh) + 0.5) * s - 0.5
        in_hint = ((rows >= hy0) & (rows <= hy1))[:, None] & ((cols >= hx0) & (cols <= hx1))[None, :]

    # --- step 3: two-box score, best pixel of each blob ------------------------------
    # Each blob gets its own integral image (of its bounding-box window: boxes clipped to
    # it lose no blob pixel; their areas stay the full box areas).  Candidate centres are
    # taken on a grid of step g ~ a third of the inner box half-size (the score varies on
    # the scale of the box; the 3D refinement recovers the resolution), and all blobs'
    # candidates are scored in one vectorised pass.
    buf, rrs, ccs, per_blob = [], [], [], []
    off = 0
    for b in cand_blobs:
        sl = _blob_box(boxes, b)
        zmean = zmean_all[b]
        # cheap pre-filter: the bounding box must be at least ~ a face wide and high
        if min(sl[0].stop - sl[0].start, sl[1].stop - sl[1].start) * zmean / f < p.min_extent_mm:
            continue
        g = max(2, int(f * p.head_half_mm / zmean / 3.0))
        win = labels[sl]
        sub = win[g // 2 :: g, g // 2 :: g] == b
        rr, cc = np.nonzero(sub if in_hint is None else sub & in_hint[sl][g // 2 :: g, g // 2 :: g])
        if rr.size == 0:
            continue
        rr = rr * g + g // 2
        cc = cc * g + g // 2
        ii = _blob_integral(win, b)
        buf.append(ii.ravel())
        rrs.append(rr)
        ccs.append(cc)
        per_blob.append((rr.size, off, win.shape[0], win.shape[1], sl[0].start, sl[1].start, b))
        off += ii.size
    if not per_blob:
        raise NoFaceFoundError(f"{src}: no head found (no surface of head size)")
    ii = np.concatenate(buf)
    rr = np.concatenate(rrs)
    cc = np.concatenate(ccs)
    pb = np.array(per_blob, dtype=np.intp)
    o, mh, mw, r0w, c0w, blob = (np.repeat(pb[:, k], pb[:, 0]) for k in range(1, 7))
    rw = rr + r0w  # working-image coordinates
    cw = cc + c0w
    zb = z[rw, cw]
    h_in = np.maximum(np.rint(f * p.head_half_mm / zb), 1).astype(np.intp)
    h_out = np.maximum(np.rint(f * p.ring_half_mm / zb), h_in + 1).astype(np.intp)
    stride = mw + 1

    def box_sum(h):
        a0 = np.maximum(rr - h, 0) * stride
        a1 = np.minimum(rr + h + 1, mh) * stride
        b0 = np.maximum(cc - h, 0)
        b1 = np.minimum(cc + h + 1, mw)
        return ii[o + a1 + b1] - ii[o + a0 + b1] - ii[o + a1 + b0] + ii[o + a0 + b0]

    s_in = box_sum(h_in)
    s_out = box_sum(h_out)
    # the ring is the covered fraction of its part inside the image (outside is unknown,
    # so an object cut by the image border does not look like it sticks out); with too
    # little of it visible, the unseen part counts half covered.  The inner box keeps its
    # full area (a head cut by the border loses fill).
    ring_vis = _visible_area(rw, cw, h_out, hh, ww) - _visible_area(rw, cw, h_in, hh, ww)
    a_in = (2 * h_in + 1) ** 2
    ring_full = ((2 * h_out + 1) ** 2 - a_in).astype(np.float64)
    s_ring = s_out - s_in
    fill = s_in / a_in
    ring = np.where(
        ring_vis >= p.min_ring_visible * ring_full,
        s_ring / np.maximum(ring_vis, 1.0),
        (s_ring + 0.5 * (ring_full - ring_vis)) / ring_full,
    )
    score = np.where((fill >= p.min_fill) & (ring <= p.max_ring), fill - ring, -np.inf)
    if not (score >= p.min_score).any():
        # nothing head-sized sticks out: a face-only surface (a face scan or render without hair,
        # neck and shoulders, a face cut from its surround) covers only 35-50 % of the head box,
        # with nothing around it; the same test with the face-only fill (step 3b of the module doc)
        score = np.where((fill >= p.face_only_min_fill) & (ring <= p.face_only_max_ring), fill - ring, -np.inf)
    if not (score >= p.min_score).any():
        # still nothing: the head's blob may reach far behind it (a body leaning on a slanted wall
        # joins the wall, and the wall fills the ring).  The ring again, counting only what lies
        # at most the outer box's half side behind the candidate (step 3c of the module doc)
        near = np.flatnonzero(fill >= p.min_fill)
        s_ring3 = _ring_in_depth(z, labels, rw[near], cw[near], blob[near], h_in[near], h_out[near], zb[near], p.ring_half_mm)
        ring3 = np.full_like(ring, np.inf)
        ring3[near] = np.where(ring_vis[near] >= p.min_ring_visible * ring_full[near], s_ring3 / np.maximum(ring_vis[near], 1.0),
                               (s_ring3 + 0.5 * (ring_full[near] - ring_vis[near])) / ring_full[near])
        score = np.where((fill >= p.min_fill) & (ring3 <= p.max_ring), fill - ring3, -np.inf)
        ring = np.where(np.isfinite(ring3), ring3, ring)
        joined = True  # the head shares its blob with what it leans on: several candidates per blob
    else:
        joined = False
    # best pixel of each blob (pixels are grouped by blob)
    starts = np.flatnonzero(np.r_[True, blob[1:] != blob[:-1]])
    best = np.maximum.reduceat(score, starts)
    seg = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, blob.size]))
    first = np.flatnonzero(score == best[seg])
    first = first[np.r_[True, seg[first][1:] != seg[first][:-1]]]
    if joined:  # the best pixels of the blobs, each apart from every better one by an inner box
        first = []
        for k in np.argsort(-score, kind="stable"):
            if score[k] < p.min_score or len(first) >= p.max_candidates:
                break
            if all(blob[j] != blob[k] or max(abs(rw[j] - rw[k]), abs(cw[j] - cw[k])) > h_in[j] for j in first):
                first.append(k)
    cands = [
        (float(score[k]), int(blob[k]), int(rw[k]), int(cw[k]), float(fill[k]), float(ring[k]))
        for k in first
        if score[k] >= p.min_score
    ]
    if not cands:
        raise NoFaceFoundError(f"{src}: no head found (no head-sized blob sticking out of its surroundings)")
    # rank: score with a mild preference for nearer candidates (the head is usually the
    # nearest head-like thing: the camera looks at the person)
    z_near = min(float(z[r, c]) for _, _, r, c, _, _ in cands)
    cands.sort(key=lambda t: -(t[0] - p.near_prior * np.log(z[t[2], t[3]] / z_near)))

    # --- steps 4-5: refine and verify the best candidates in turn --------------------
    reasons = []
    for score, b, r0, c0, fill, ring in cands[: p.max_candidates]:
        hd = _verify(z, labels, b, r0, c0, wi, f, p, joined)
        if isinstance(hd, str):
            reasons.append(hd)
            continue
        break
    else:
        raise NoFaceFoundError(f"{src}: no head found (best candidate: {reasons[0]})")
    k_mean = 0.5 * (hd.curv[0] + hd.curv[1])
    diag = {"fill": fill, "ring": ring, "k_min": hd.curv[0], "k_max": hd.curv[1], "fit_rms": hd.rms,
            "occluded": hd.occluded, "stride": s, "rejected": reasons}

    surface = hd.est
    centre = surface + p.centre_offset_mm * surface / np.linalg.norm(surface)

    # pixel box of the head points (frame pixel coordinates)
    hr, hc = hd.rr[hd.sel], hd.cc[hd.sel]
    box = (
        int(max(0, hc.min() * s)),
        int(max(0, hr.min() * s)),
        int(min(frame.width, (hc.max() + 1) * s)),
        int(min(frame.height, (hr.max() + 1) * s)),
    )
    # body direction: blob points in a 3D shell around the head (neck, shoulders), seen in the image
    d2 = ((hd.pts - surface) ** 2).sum(1)
    shell = (d2 > (1.35 * p.collect_radius_mm) ** 2) & (d2 <= (2.5 * p.collect_radius_mm) ** 2)
    body_dir = None
    if shell.sum() >= 3:
        uc = wi.fx * surface[0] / surface[2] + wi.cx
        vc = wi.fy * surface[1] / surface[2] + wi.cy
        v = np.array([hd.cc[shell].mean() - uc, hd.rr[shell].mean() - vc])
        nv = np.linalg.norm(v)
        if nv > 0.25 * f * p.collect_radius_mm / surface[2]:
            body_dir = v / nv
    npts = int(hd.sel.sum())

    # confidence: score mapped to [0, 1], times a shape term (curvature near 1/100 mm)
    shape = float(np.clip(1.0 - abs(np.log(max(k_mean, 1e-6) * 100.0)) / np.log(4.0), 0.0, 1.0))
    conf = float(np.clip((score - p.min_score) / 0.4, 0.0, 1.0) * (0.5 + 0.5 * shape))
    return HeadLocation(
        center_mm=centre,
        surface_mm=surface,
        box=box,
        score=float(np.clip(score, 0.0, 1.0)),
        confidence=conf,
        body_direction=body_dir,
        n_points=npts,
        source=frame.source,
        diagnostics=diag,
    )
