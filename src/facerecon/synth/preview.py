"""Contact sheets of synthetic frames (depth, face mask, landmarks), side by side with real frames.

Depth is shown in colour (turbo, 2nd-98th percentile of the valid pixels) multiplied by a
hill-shade, so noise, quantisation steps and holes (white) are visible at a glance.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..facemodel.model import FaceModel
from ..fileutil import atomic_path
from ..io import read_depth
from .dataset import raw_sample, storage_unit_mm
from .generator import SynthGenerator
from .presets import preset_names
from .scene import FACE_SEGMENTS
from .sensors import sensor_names


def shaded_depth(depth: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """(H, W, 3) float RGB: turbo colour of the depth times a hill-shade; missing pixels white."""
    import matplotlib

    d = np.asarray(depth, np.float64)
    ok = d > 0
    if not ok.any():
        return np.ones(d.shape + (3,))
    lo, hi = np.percentile(d[ok], [2, 98]) if vmin is None or vmax is None else (vmin, vmax)
    t = np.clip((d - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = matplotlib.colormaps["turbo"](t)[..., :3]
    gy, gx = np.gradient(np.where(ok, d, np.nan))
    scale = np.nanmedian(d[ok]) / 500.0  # gradients relative to the pixel footprint
    shade = np.clip(0.75 + 0.25 * np.tanh(-(gx + gy) / (2.0 * scale)), 0.3, 1.0)
    shade = np.where(np.isfinite(shade), shade, 1.0)
    out = rgb * shade[..., None]
    out[~ok] = 1.0
    return out


def _panel(ax, sample: dict, title: str, show_labels: bool = True) -> None:
    d = sample["depth_mm"]
    ax.imshow(shaded_depth(d), interpolation="nearest")
    seg = sample.get("segment")
    if show_labels and seg is not None:
        mask = np.isin(seg, FACE_SEGMENTS)
        if mask.any():
            ax.contour(mask.astype(float), levels=[0.5], colors="white", linewidths=0.6)
    lab = sample.get("labels") or {}
    if show_labels and "landmarks_2d" in lab:
        lm = np.asarray(lab["landmarks_2d"])
        vis = np.asarray(lab["landmarks_visible"], bool)
        ax.scatter(lm[vis, 0], lm[vis, 1], s=2, c="lime", linewidths=0)
        ax.scatter(lm[~vis, 0], lm[~vis, 1], s=2, c="red", linewidths=0)
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def _title(sample: dict) -> str:
    lab = sample.get("labels") or {}
    if "euler_deg" not in lab:
        return str(sample.get("title", ""))
    y, p, r = np.asarray(lab["euler_deg"])
    t = np.asarray(lab["translation_mm"])
    return f"#{lab.get('index', '?')} {lab.get('expression_name', '')}  y{y:.0f} p{p:.0f} r{r:.0f}  z{t[2]:.0f}mm"


def _zoom(ax, sample: dict, zoom_mm: float) -> None:
    """Show a ``zoom_mm`` wide window around the head (labelled frames) or the nearest surface (real frames)."""
    d = sample["depth_mm"]
    k = sample.get("intrinsics")
    lab = sample.get("labels") or {}
    if k is None or not (d > 0).any():
        return
    if "translation_mm" in lab:
        t = np.asarray(lab["translation_mm"], np.float64)
        (u, v), z = k.project(t[None])[0], float(t[2])
    else:  # the nearest 5 % of the valid pixels
        ys, xs = np.nonzero(d > 0)
        near = d[ys, xs] <= np.percentile(d[ys, xs], 5)
        u, v, z = float(xs[near].mean()), float(ys[near].mean()), float(np.median(d[ys, xs][near])) + 60.0
    half = 0.5 * zoom_mm * k.fx / max(z, 1.0)
    ax.set_xlim(u - half, u + half)
    ax.set_ylim(v + half, v - half)


def contact_sheet(samples: list[dict], out: str | Path, cols: int = 4, title: str = "", zoom_mm: float | None = None) -> Path:
    """Grid of raw samples (depth shaded, face-mask outline, landmarks green = visible / red = hidden);
    ``zoom_mm``: each panel shows a window that wide around the head instead of the whole frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, int(np.ceil(len(samples) / cols)))
    h, w = samples[0]["depth_mm"].shape
    aspect = 1.0 if zoom_mm else h / w
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 3.2, rows * 3.2 * aspect + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, s in zip(axes.flat, samples):
        ax.axis("on")
        _panel(ax, s, _title(s))
        if zoom_mm:
            _zoom(ax, s, zoom_mm)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
    return out


def compare_sheet(synthetic: list[dict], real: list[dict], out: str | Path, title: str = "", cols: int = 4,
                  zoom_mm: float | None = None) -> Path:  # fmt: skip
    """Real frames (first row(s), titled "real: ...") followed by synthetic ones, same rendering."""
    real = [{**r, "title": "REAL " + r.get("title", "")} for r in real]
    return contact_sheet(real + synthetic, out, cols=cols, title=title, zoom_mm=zoom_mm)


def face_only_sheet(out: str | Path, real: list[dict] = (), preset: str = "biwi-faces", n: int = 16, seed: int = 0,
                    scans: dict | None = None, cols: int = 6, zoom_mm: float = 360.0) -> Path:  # fmt: skip
    """The real-geometry training data: ``real`` frames (dicts with depth_mm/intrinsics/title, e.g. the
    Kinect face patches) then ``n`` frames of a ``*-faces`` preset, zoomed on the head, titled
    with what each frame is (face-only crop, body or not, out-of-span shape, scan identity)."""

    gen = SynthGenerator(preset, None, seed, scans=scans)
    unit = storage_unit_mm(gen.sensor)
    synth = []
    for i in range(n):
        smp = gen.generate(i)
        lab, sc = smp.labels, smp.labels["scene"]
        kind = ["face-only" if sc.get("face_only") else ("head+body" if sc.get("body") else "head, no body")]
        if sc.get("hair"):
            kind.append("hair")
        if lab.get("deform"):
            kind.append("deformed")
        if lab.get("identity_source", "model") != "model":
            kind.append(lab["identity_source"])
        y, p, r = np.asarray(lab["euler_deg"])
        synth.append({**raw_sample(smp, unit), "title": f"#{i} {', '.join(kind)}\ny{y:.0f} p{p:.0f} r{r:.0f}"})
    for s in synth:  # titles from the dict, not from the labels
        s["labels"] = {k: v for k, v in s["labels"].items() if k not in ("euler_deg",)}
    title = f"preset {preset} ({gen.sensor.name}): " + ("REAL frames first, then synthetic" if real else "synthetic")
    return compare_sheet(synth, list(real), out, title=title, cols=cols, zoom_mm=zoom_mm)


def real_frames_for(preset_camera: str, real_dir: str | Path, limit: int = 4) -> list[dict]:
    """Real frames in ``real_dir`` (shared/data/real) that match a camera: Kinect v1 or TrueDepth."""
    root = Path(real_dir)
    if preset_camera.startswith("truedepth"):
        files = sorted((root / "truedepth-mannequin" / "DepthFrames").glob("*.ply"))
        files = [files[i] for i in np.linspace(0, len(files) - 1, min(limit, len(files))).astype(int)] if files else []
    else:
        files = [root / "kinect-pcl" / "person.pcd"]
    out = []
    for f in files:
        if not f.exists():
            continue
        fr = read_depth(f)
        d = np.where(fr.depth_mm < 8000, fr.depth_mm, 0).astype(np.float32)
        out.append({"depth_mm": d, "intrinsics": fr.intrinsics, "title": f.name})
    return out


def preset_sheet(preset: str, out: str | Path, real_dir: str | Path | None = None, n: int = 8, seed: int = 0,
                 sensor: str | None = None, cols: int = 4) -> Path:  # fmt: skip
    """Sheet for one preset: the matching real frames (if ``real_dir``) then ``n`` synthetic frames."""

    gen = SynthGenerator(preset, sensor, seed)
    unit = storage_unit_mm(gen.sensor)
    synth = [raw_sample(gen.generate(i), unit) for i in range(n)]
    real = real_frames_for(gen.preset.get("camera", "kinect-v1"), real_dir) if real_dir else []
    title = f"preset {preset}, sensor {gen.sensor.name}: " + ("REAL frames first, then synthetic" if real else "synthetic")
    return compare_sheet(synth, real, out, title=title, cols=cols)


def sensor_sheet(out: str | Path, preset: str = "ict3dhp", indices: tuple[int, ...] = (2, 4), seed: int = 0) -> Path:
    """The same scenes through every sensor model (rows: scenes, columns: sensors)."""

    model = FaceModel.load()
    names = sensor_names()
    gens = [SynthGenerator(preset, n, seed, model=model) for n in names]
    samples = []
    for i in indices:
        for g in gens:
            s = raw_sample(g.generate(i), storage_unit_mm(g.sensor))
            samples.append({**s, "title": f"#{i} sensor {g.sensor.name}", "labels": None})
    return contact_sheet(samples, out, cols=len(names), title=f"preset {preset}: the same scenes through each sensor model")


def main(argv: list[str] | None = None) -> None:
    """``python -m facerecon.synth.preview REAL_DIR OUT_DIR``: synth_<preset>.png per preset, synth_sensors.png."""
    import sys


    args = sys.argv[1:] if argv is None else argv
    real_dir, out_dir = Path(args[0]), Path(args[1])
    for name in preset_names():
        print(preset_sheet(name, out_dir / f"synth_{name}.png", real_dir, n=8))
    print(sensor_sheet(out_dir / "synth_sensors.png"))


if __name__ == "__main__":
    main()
