"""One synthetic frame from (preset, sensor, seed, index): sample -> scene -> render -> sensor -> labels.

>>> gen = SynthGenerator("biwi", "kinect-v1", seed=0)      # loads FaceModel once
>>> s = gen.generate(17)                                   # same (seed, 17) -> same frame
>>> s.depth_mm, s.intrinsics, s.labels["quaternion"], s.segment

Random streams: the scene is drawn from ``SeedSequence([seed, index, 0])``, the sensor
from ``SeedSequence([seed, index, 1])`` and the real-geometry options (face-only crops,
out-of-span shapes, scan identities) from ``SeedSequence([seed, index, 2])``, so any
worker, order or resume gives identical frames, and the same scene can be seen through
different sensors.

Real scans as identities: ``SynthGenerator(..., scans={"james": displacement})`` with a
(V, 3) displacement of the ICT neutral face from
:func:`facerecon.synth.deform.scan_displacement` (the caller loads the scan: this layer
never looks for data files); the preset's ``[shape] scan_identity`` is the chance a frame
uses one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from ..geometry.camera import Intrinsics
from ..facemodel.model import FaceModel
from .labels import landmark_labels, pose_labels
from .presets import Preset, load_preset
from ..geometry.raster import RenderOutput, barycentrics_of, rasterize_inverse_depth
from .deform import ANCHOR_REGION, displacement
from .sampling import FrameParams, sample_frame, sample_variants
from .scene import FACE_SEGMENTS, HeadAssets, Scene, build_scene
from .sensors import SensorModel, apply_sensor, load_sensor


@njit(cache=True)
def _blend(neutral, bases, idx, w):
    """neutral + sum_j w[j] * bases[idx[j]] in a fixed order (bit-reproducible)."""
    out = neutral.copy()
    for j in range(idx.shape[0]):
        k = idx[j]
        wk = w[j]
        for i in range(out.shape[0]):
            out[i] += wk * bases[k, i]
    return out


@njit(cache=True)
def _tri_cos(verts, tris, t):
    """|cos| between triangle t's normal and the view ray to its centroid."""
    ia, ib, ic = tris[t, 0], tris[t, 1], tris[t, 2]
    ax, ay, az = verts[ia, 0], verts[ia, 1], verts[ia, 2]
    e1x, e1y, e1z = verts[ib, 0] - ax, verts[ib, 1] - ay, verts[ib, 2] - az
    e2x, e2y, e2z = verts[ic, 0] - ax, verts[ic, 1] - ay, verts[ic, 2] - az
    nx = e1y * e2z - e1z * e2y
    ny = e1z * e2x - e1x * e2z
    nz = e1x * e2y - e1y * e2x
    cx = ax + (e1x + e2x) / 3.0
    cy = ay + (e1y + e2y) / 3.0
    cz = az + (e1z + e2z) / 3.0
    den = np.sqrt((nx * nx + ny * ny + nz * nz) * (cx * cx + cy * cy + cz * cz)) + 1e-30
    return abs(nx * cx + ny * cy + nz * cz) / den


@njit(cache=True)
def _pixel_maps(izbuf, verts, tris, tri_seg, tid):
    """Per pixel: depth (from 1/z), segment of the visible triangle, |cos| of its view angle (at its
    centroid; computed once per visible triangle)."""
    cos_t = np.full(tris.shape[0], -1.0, np.float32)
    h, w = tid.shape
    depth = np.zeros((h, w), np.float32)
    seg = np.zeros((h, w), np.uint8)
    cos = np.ones((h, w), np.float32)
    for y in range(h):
        for x in range(w):
            t = tid[y, x]
            if t >= 0:
                depth[y, x] = 1.0 / izbuf[y, x]
                seg[y, x] = tri_seg[t]
                c = cos_t[t]
                if c < 0:
                    c = _tri_cos(verts, tris, t)
                    cos_t[t] = c
                cos[y, x] = c
    return depth, seg, cos


def render_scene(scene: Scene, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact render of a scene: (depth float32, triangle_id, segment uint8, |cos view angle| float32, projected uvz)."""
    izbuf, tid, uvz = rasterize_inverse_depth(scene.vertices, scene.triangles, intrinsics, cull_backfaces=True)
    depth, segment, cos = _pixel_maps(izbuf, scene.vertices, scene.triangles, scene.segments, tid)
    return depth, tid, segment, cos, uvz


@dataclass
class SynthSample:
    """One generated frame.  ``labels`` holds numpy arrays and plain values (see :mod:`.labels`)."""

    depth_mm: np.ndarray  # (H, W) float32 sensor depth, 0 = no measurement
    intrinsics: Intrinsics
    labels: dict
    segment: np.ndarray  # (H, W) uint8 exact visible segment (facerecon.synth.scene.SEG_*)
    ideal_depth: np.ndarray | None = None  # exact z-buffer depth (only with keep_render)
    render: RenderOutput | None = None  # triangle ids + barycentrics of ``scene`` (only with keep_render)
    scene: Scene | None = None
    timings: dict = field(default_factory=dict)

    @property
    def face_mask(self) -> np.ndarray:
        """Pixels whose visible surface is the ICT face region (incl. eyeballs)."""
        return np.isin(self.segment, FACE_SEGMENTS)


class SynthGenerator:
    """Generates frames of one preset through one sensor model; holds the model and caches."""

    def __init__(
        self,
        preset: str | Preset = "biwi",
        sensor: str | SensorModel | None = None,
        seed: int = 0,
        model: FaceModel | None = None,
        scans: dict[str, np.ndarray] | None = None,
    ):
        self.preset = preset if isinstance(preset, Preset) else load_preset(preset)
        sensor = sensor or self.preset.get("sensor", "ideal")
        self.sensor = sensor if isinstance(sensor, SensorModel) else load_sensor(sensor)
        self.seed = int(seed)
        self.model = model if model is not None else FaceModel.load()
        self.assets = HeadAssets.build(self.model)
        neutral, bases = self.model._subset_bases(self.assets.subset)
        self._neutral = np.ascontiguousarray(neutral, np.float32).reshape(-1)
        self._bases = bases
        self._seg_lut_head = self.assets.segments
        self.scans = {k: np.asarray(v, np.float32)[self.assets.subset] for k, v in sorted((scans or {}).items())}
        self._anchors = self.model.neutral[self.model.region_vertices(ANCHOR_REGION)[::8]].astype(np.float64)
        self._landmarks = self.model.neutral[self.model.landmarks_68].astype(np.float64)

    # -- streams --------------------------------------------------------------------
    def rng(self, index: int, stream: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, int(index), int(stream)]))

    def frame_params(self, index: int) -> FrameParams:
        m = self.model
        p = sample_frame(self.preset, m.expression_names, m.n_identity, self.rng(index, 0))
        return sample_variants(self.preset, p, self.rng(index, 2), self._anchors, self._landmarks, tuple(self.scans))

    def head_vertices(self, params: FrameParams) -> np.ndarray:
        """(S, 3) float32 head-frame vertices of the render subset (model blend + scan identity + deformation)."""
        w = np.concatenate([params.identity, params.expression]).astype(np.float32)
        idx = np.nonzero(w)[0].astype(np.int64)
        v = _blend(self._neutral, self._bases, idx, w[idx]).reshape(-1, 3)
        if params.identity_source.startswith("scan:"):
            v = v + self.scans[params.identity_source[5:]]
        if params.deform:
            v = v + displacement(self.assets.neutral, params.deform).astype(np.float32)
        return v

    # -- one frame --------------------------------------------------------------------
    def generate(self, index: int, *, keep_render: bool = False) -> SynthSample:
        t0 = time.perf_counter()
        p = self.frame_params(index)
        vh = self.head_vertices(p)
        t1 = time.perf_counter()
        scene = build_scene(self.assets, vh, p)
        t2 = time.perf_counter()
        k = p.intrinsics
        ideal, tid, segment, cos, uvz = render_scene(scene, k)
        t3 = time.perf_counter()
        depth, applied = apply_sensor(self.sensor, ideal, k, self.rng(index, 1), segment=segment, cos_view=cos)
        clip = p.scene.get("clip_beyond_head_mm")
        if clip is not None:
            depth[depth > p.translation[2] + clip] = 0.0
        t4 = time.perf_counter()
        lm_cam = vh[self.assets.landmark_rows].astype(np.float64) @ p.rotation.T + p.translation
        lm2d, vis = landmark_labels(lm_cam, k, ideal)
        labels = {
            **pose_labels(p.rotation, p.translation),
            "identity": p.identity,
            "expression": p.expression,
            "expression_name": p.expression_name,
            "landmarks_3d": lm_cam,
            "landmarks_2d": lm2d,
            "landmarks_visible": vis,
            "image_roll_deg": p.image_roll_deg,
            "intrinsics": k.to_dict(),
            "preset": self.preset.name,
            "sensor": self.sensor.name,
            "seed": self.seed,
            "index": int(index),
            "scene": p.scene,
            "sensor_params": [[name, prm] for name, prm in applied],
        }
        if p.deform:  # only when used: frames of presets without the options keep their exact bytes
            labels["deform"] = p.deform
        if p.identity_source != "model":
            labels["identity_source"] = p.identity_source
        t5 = time.perf_counter()
        sample = SynthSample(depth, k, labels, segment)
        sample.timings = {"sample+vertices": t1 - t0, "scene": t2 - t1, "render": t3 - t2, "sensor": t4 - t3, "labels": t5 - t4}
        if keep_render:
            sample.ideal_depth = ideal
            sample.render = RenderOutput(ideal, tid, barycentrics_of(uvz, scene.triangles, tid))
            sample.scene = scene
        return sample

    __call__ = generate
