"""The real-domain frames: the unlabelled target set for domain adaptation, and held-out james renders.

:func:`real_domain_frames` returns, in this order,

1. the 30 real TrueDepth frames of the mannequin (``truedepth-mannequin/DepthFrames``),
2. the real Kinect v1 frame ``kinect-pcl/person.pcd``, and with ``pcl_dir`` the six real
   Kinect face patches ``object_template_*.pcd`` of that folder (:func:`kinect_patch_frames`),
3. ``n_renders`` frames of *real geometry* seen through modelled sensors: renders of
   the james scan and splats of the mannequin's fused cloud, alternating, at poses,
   distances, cameras and sensors drawn from the synthetic presets' tables (default
   ``biwi``: Kinect v1 with Biwi's intrinsics and background clipped like Biwi's
   published frames; ``truedepth``: the TrueDepth camera, phone held sideways, i.e.
   image roll ~+-90 degrees).  Mannequin poses are redrawn until yaw and pitch lie in
   what its fused cloud covers (:data:`MANNEQUIN_YAW_RANGE`, :data:`MANNEQUIN_PITCH_RANGE`);
   the james scan is completed by a back-of-head, neck and torso proxy (all poses).

**Unlabelled for training.**  Every frame's ``meta`` carries, where one is known, the
head pose under ``meta['pose_for_eval_only']`` (:data:`~facerecon.realdata.EVAL_POSE_KEY`):
the exact pose of a render, or the registration-based reference pose of a real
TrueDepth frame.  It is there so that evaluation can score predictions on the real
domain; **training code must not read it** (use :func:`strip_eval_labels` to hand the
frames to a trainer without it).  ``meta['domain']`` says what a frame is
(``real-truedepth``, ``real-kinect``, ``real-scan`` render, ``real-splat``).

Determinism: frame ``i`` of the renders draws everything from
``SeedSequence([seed, i, stream])`` with a stream tag that differs between the training
set (:func:`real_domain_frames`) and the evaluation set (:func:`james_eval_frames`), so
no seed makes an evaluation frame coincide with a training frame.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputFileError
from ..geometry.camera import camera_preset
from ..geometry.pose import HeadPose
from ..geometry.raster import splat_points
from ..geometry.rotations import _rz, euler_to_matrix
from ..io import read_depth
from ..io.frame import DepthFrame
from ..io.pcd import read_pcd_points
from ..synth.presets import chance, draw, load_preset
from ..synth.sampling import sample_camera, sample_pose
from . import EVAL_POSE_KEY, real_data_path
from .mannequin import frame_files
from .mannequin_poses import mannequin_reference
from .mannequin_splat import splat_mannequin
from .scan import load_james_scan, render_scan

DEFAULT_PRESETS = ("biwi", "truedepth")
_TRAIN_STREAM = 0x5EA1_7A61  # SeedSequence tags: training renders vs held-out evaluation renders
_EVAL_STREAM = 0xE7A1_0E7A
#: Yaw range (upright head frame, degrees) in which the mannequin's fused cloud shows no
#: large holes: the real sweep that built it spans -67..+43 (see mannequin_reference).
MANNEQUIN_YAW_RANGE = (-70.0, 45.0)
#: ... and pitch range: the sweep was level (upright pitch 7-11 degrees); seen from far below
#: or above, the cloud's missing chin underside / crown show as holes.
MANNEQUIN_PITCH_RANGE = (-25.0, 30.0)


def strip_eval_labels(frames: list[DepthFrame]) -> list[DepthFrame]:
    """Copies of ``frames`` whose ``meta`` holds no pose or segment (what a trainer should get)."""
    out = []
    for f in frames:
        meta = {k: v for k, v in f.meta.items() if not k.endswith("_for_eval_only") and k != "pose"}
        out.append(DepthFrame(f.depth_mm, f.intrinsics, f.source, f.color, meta))
    return out


#: Disc radius of the face-patch splats, in units of the patches' median point spacing (they are
#: voxel-downsampled to ~3.4 mm): large enough to close the surface, small enough to keep its edge.
PATCH_SPLAT_SPACING = 0.75


def kinect_patch_frames(pcl_dir: str | Path, camera: str = "kinect-v1") -> list[DepthFrame]:
    """The real Kinect face patches ``object_template_*.pcd`` of ``pcl_dir`` as depth frames (unlabelled).

    They are unorganised clouds (PCL's template-alignment tutorial: faces of real people
    cut out of Kinect v1 frames and voxel-downsampled), so each is splatted (z-buffered
    discs of :data:`PATCH_SPLAT_SPACING` x its point spacing) into an image of ``camera``.
    Real-sensor face-only surfaces: what the networks must handle, with no pose known.
    """
    from scipy.spatial import cKDTree


    files = sorted(Path(pcl_dir).glob("object_template_*.pcd"))
    if not files:
        raise InputFileError(pcl_dir, "no object_template_*.pcd face patches in this folder")
    k = camera_preset(camera)
    out = []
    for f in files:
        pts = read_pcd_points(f)
        spacing = float(np.median(cKDTree(pts).query(pts, k=2)[0][:, 1]))
        depth = splat_points(pts, k, radius_mm=PATCH_SPLAT_SPACING * spacing)
        meta = {"domain": "real-kinect-patch", "subject": f"kinect-pcl {f.stem}", "splat_radius_mm": PATCH_SPLAT_SPACING * spacing}
        out.append(DepthFrame(depth, k, str(f), None, meta))
    return out


def real_frames(*, with_reference_poses: bool = True, kinect: bool = True, pcl_dir: str | Path | None = None) -> list[DepthFrame]:
    """The real sensor frames: 30 TrueDepth mannequin frames (+ reference poses), ``person.pcd``
    (from ``pcl_dir`` when given), and with ``pcl_dir`` the six Kinect face patches."""

    files = frame_files()
    ref = mannequin_reference() if with_reference_poses else None
    out = []
    for i, f in enumerate(files):
        fr = read_depth(f)
        fr.meta["domain"] = "real-truedepth"
        fr.meta["subject"] = "truedepth-mannequin"
        if ref is not None:
            fr.meta[EVAL_POSE_KEY] = ref.pose(i)
            fr.meta["pose_kind"] = "reference (registration to Expected.ply)"
        out.append(fr)
    if kinect:
        fr = read_depth(Path(pcl_dir) / "person.pcd" if pcl_dir is not None else real_data_path("kinect-pcl", "person.pcd"))
        fr.meta["domain"] = "real-kinect"
        fr.meta["subject"] = "kinect-pcl person"
        out.append(fr)
    if pcl_dir is not None:
        out += kinect_patch_frames(pcl_dir)
    return out


def _render_one(subject: str, preset_name: str, seed: int, index: int, stream: int) -> DepthFrame:

    preset = load_preset(preset_name)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), stream, 0]))
    srng = np.random.default_rng(np.random.SeedSequence([int(seed), int(index), stream, 1]))
    k = sample_camera(preset, rng)
    r, t, img_roll, euler_up = sample_pose(preset, k, rng)
    if subject == "mannequin":
        # the fused cloud has no back of the head: redraw until yaw and pitch lie in what it
        # covers (deterministic: the same stream), clip after 30 tries
        (ylo, yhi), (plo, phi) = MANNEQUIN_YAW_RANGE, MANNEQUIN_PITCH_RANGE
        for _ in range(30):
            if ylo <= euler_up["yaw"] <= yhi and plo <= euler_up["pitch"] <= phi:
                break
            r, t, img_roll, euler_up = sample_pose(preset, k, rng)
        yaw, pitch = float(np.clip(euler_up["yaw"], ylo, yhi)), float(np.clip(euler_up["pitch"], plo, phi))
        if (yaw, pitch) != (euler_up["yaw"], euler_up["pitch"]):
            euler_up = {**euler_up, "yaw": yaw, "pitch": pitch}
            r = _rz(np.deg2rad(np.float64(img_roll))) @ euler_to_matrix(yaw, pitch, euler_up["roll"])
    sc = preset.scene
    wall = chance(sc.get("wall", 0.9), rng)
    gap = float(draw(sc.get("wall_gap_mm", [500, 2500]), rng))
    tilt = (float(draw(sc.get("wall_tilt_deg", 0.0), rng)), 0.5 * float(draw(sc.get("wall_tilt_deg", 0.0), rng)))
    clip = float(draw(sc.get("clip_beyond_head_mm", [400, 900]), rng)) if chance(sc.get("clip_background", 0.0), rng) else None
    sensor = preset.get("sensor", "ideal")
    if subject == "james":
        fr = render_scan(load_james_scan(), HeadPose(r, t), k, sensor, srng, background="wall" if wall else "body",
                         wall_gap_mm=gap, wall_tilt_deg=tilt, image_roll_deg=img_roll)  # fmt: skip
    else:
        fr = splat_mannequin(HeadPose(r, t), k, sensor, srng, background="wall" if wall else "none", wall_gap_mm=gap)
    if clip is not None:
        fr.depth_mm[fr.depth_mm > t[2] + clip] = 0.0
    fr.meta.update({
        "preset": preset_name, "seed": int(seed), "index": int(index), "image_roll_deg": float(img_roll),
        "euler_upright_for_eval_only": dict(euler_up), "clip_beyond_head_mm": clip, "wall_gap_mm": gap if wall else None,
    })  # fmt: skip
    fr.source = f"{fr.source} [{preset_name}, seed {seed}, #{index}]"
    return fr


def _plan(n: int, presets: tuple[str, ...], subjects: tuple[str, ...]) -> list[tuple[str, str]]:
    """(subject, preset) of each render: presets cycle fastest, then subjects, so all pairs recur evenly."""
    return [(subjects[(i // len(presets)) % len(subjects)], presets[i % len(presets)]) for i in range(n)]


def real_domain_frames(
    n_renders: int,
    seed: int = 0,
    presets: tuple[str, ...] | list[str] = DEFAULT_PRESETS,
    *,
    include_real: bool = True,
    with_reference_poses: bool = True,
    pcl_dir: str | Path | None = None,
) -> list[DepthFrame]:
    """The UNLABELLED real-domain set for domain adaptation (see module doc).

    Args:
        n_renders: number of james renders + mannequin splats (alternating pairs of presets).
        seed: seed of the renders (deterministic: same arguments, same frames).
        presets: synthetic presets whose pose/distance/camera/sensor tables are sampled.
        include_real: prepend the 31 real frames (30 TrueDepth + person.pcd).
        with_reference_poses: attach the TrueDepth frames' reference poses (evaluation only;
            needs the cached or recomputed mannequin registration, ~15 s the first time).
        pcl_dir: a ``kinect-pcl`` folder: its ``person.pcd`` and its six real face patches
            ``object_template_*.pcd`` join the real frames (with ``include_real``).

    ``meta['pose_for_eval_only']`` holds a ``HeadPose`` where known: NOT for training.
    """
    presets = tuple(presets)
    out = real_frames(with_reference_poses=with_reference_poses, pcl_dir=pcl_dir) if include_real else []
    for i, (subject, preset) in enumerate(_plan(int(n_renders), presets, ("james", "mannequin"))):
        out.append(_render_one(subject, preset, seed, i, _TRAIN_STREAM))
    return out


def james_eval_frames(n: int, seed: int = 0, presets: tuple[str, ...] | list[str] = DEFAULT_PRESETS) -> list[DepthFrame]:
    """``n`` held-out renders of the james scan with exact poses in ``meta['pose_for_eval_only']``.

    Drawn from a random stream disjoint from :func:`real_domain_frames`'s (whatever the
    seeds), with the same preset tables; presets cycle.  For evaluation only.
    """
    presets = tuple(presets)
    return [_render_one("james", presets[i % len(presets)], seed, i, _EVAL_STREAM) for i in range(int(n))]


def pose_summary(frames: list[DepthFrame]) -> list[dict]:
    """Per frame: domain, source, and the evaluation pose as Euler angles (deg) + translation (mm), if any."""
    rows = []
    for f in frames:
        pose = f.meta.get(EVAL_POSE_KEY)
        row = {"domain": f.meta.get("domain"), "source": f.source}
        if pose is not None:
            row["euler_deg"] = pose.euler_deg.tolist()
            row["translation_mm"] = pose.t_mm.tolist()
        rows.append(row)
    return rows


def plot_frames(out_path, frames: list[DepthFrame] | None = None, n: int = 12) -> None:
    """Figure: a few real-domain frames of each kind (depth, near range), with their evaluation pose if any."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = frames if frames is not None else real_domain_frames(8, seed=0)
    real = [f for f in frames if f.meta.get("domain") == "real-truedepth"]
    pick = [real[0], real[len(real) // 2], real[-1]] if real else []
    pick += [f for f in frames if f.meta.get("domain") == "real-kinect"][:1]
    pick += [f for f in frames if f.meta.get("domain") in ("real-scan", "real-splat")][: max(n - len(pick), 0)]
    cols = 4
    rows = (len(pick) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.6 * rows), squeeze=False)
    for a, f in zip(axes.flat, pick):
        d = f.depth_mm
        near = float(np.percentile(d[d > 0], 2)) if (d > 0).any() else 0.0
        a.imshow(np.where(d > 0, d, np.nan), cmap="viridis", vmin=near, vmax=near + 600)
        title = f"{f.meta.get('domain')}" + (f" / {f.meta['preset']}" if f.meta.get("preset") else "")
        pose = f.meta.get(EVAL_POSE_KEY)
        if pose is not None:
            y, p, r = pose.euler_deg
            title += f"\nyaw {y:.0f} pitch {p:.0f} roll {r:.0f}, z {pose.t_mm[2]:.0f} mm"
        a.set_title(title, fontsize=8)
        a.set_xticks([])
        a.set_yticks([])
    for a in list(axes.flat)[len(pick):]:
        a.axis("off")
    fig.suptitle("Real-domain frames (unlabelled for training; poses shown are evaluation-only)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out_path, dpi=70)
    plt.close(fig)
