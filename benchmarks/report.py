"""Render docs/benchmarks.md (and its figures) from benchmarks.json: generated, never hand-edited."""
from __future__ import annotations

from pathlib import Path


def _f(x, nd=2):
    return "-" if x is None else f"{x:.{nd}f}"


def _plot_sweep(results: dict, out: Path) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(n, r["truedepth_sweep"]) for n, r in results["pose"].items() if "pred_relative_deg" in r.get("truedepth_sweep", {})]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ref = rows[0][1]["ref_relative_deg"]
    ax.plot(ref, "k--", label="reference (registration to Expected.ply)")
    for name, s in rows:
        ax.plot(s["pred_relative_deg"], marker=".", label=f"{name} (decreasing steps: {s['n_decreasing_steps']})")
    ax.set_xlabel("frame index (every 3rd frame of the sweep)")
    ax.set_ylabel("rotation angle relative to frame 0 (deg)")
    ax.set_title("Real TrueDepth sweep, ear to ear")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "bench_truedepth_sweep.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _plot_shape_curves(results: dict, out: Path) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(n, r["synthetic_facewarehouse"]["per_sample"]) for n, r in results["shape"].items() if "synthetic_facewarehouse" in r]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for name, per in rows:
        med = [p[1] for p in per[:30]]
        ax.plot(range(1, len(med) + 1), med, marker="o", ms=3, label=name)
    ax.set_xlabel("test sample (facewarehouse preset, kinect-v1 sensor)")
    ax.set_ylabel("median point-to-surface error (mm)")
    ax.set_title("Per-sample shape error (cf. the paper's Fig. 5)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "bench_shape_per_sample.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _fit_section(results: dict) -> list[str]:
    fits = results.get("fit_vs_networks")
    if not fits:
        return []
    lines = ["## Networks vs the classical fitting baseline", "",
             "`facerecon reconstruct --method fit` (FittingReconstructor: the localiser's frontal start, rigid point-to-plane ICP, "
             "then identity + expression by regularised Gauss-Newton; no network) against the networks, and the networks "
             "followed by the rigid refinement with its fallback and 12 joint pose + identity iterations (`--refine 6 --refine-shape 12`), on the same frames. "
             "Synthetic: whole `facewarehouse` frames (kinect-v1, seed 1003, frames 0..N-1), 9-landmark alignment, surface "
             "distances, geodesic pose error; real: as in the shape tables above.", "",
             "| method | data | N | failed | pred->gt median mm | gt->pred median mm | pose geodesic mean deg | s / frame |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in fits.items():
        e = r["synthetic_facewarehouse_frames"]
        lines.append(f"| {name} | synthetic facewarehouse frames | {e['n']} | {e['n_failed']} | {_f(e.get('pred_to_gt_median_mm'))} | "
                     f"{_f(e.get('gt_to_pred_median_mm'))} | {_f(e.get('geodesic_mean_deg'))} | {_f(e.get('seconds_per_frame'), 3)} |")
        for key, label in (("james", "james renders"), ("truedepth_vs_expected", "TrueDepth vs Expected.ply")):
            e = r[key]
            lines.append(f"| {name} | {label} | {e['n']} | {e['n_failed']} | {_f(e.get('pred_to_gt_median_mm'))} | "
                         f"{_f(e.get('gt_to_pred_median_mm'))} | - | {_f(r['latency_ms_truedepth'] / 1e3, 3)} |")
    lat = {n: r["latency_ms_truedepth"] for n, r in fits.items()}
    net = next((v for n, v in lat.items() if n.startswith("networks (")), None)
    if net and "fit" in lat:
        lines += ["", f"Speed ratio on the TrueDepth frame: the networks take {_f(net, 1)} ms, the fit {_f(lat['fit'], 0)} ms "
                  f"(network / fit = 1 / {lat['fit'] / net:.0f})."]
    return lines + [""]


def _speed_section(results: dict) -> list[str]:
    speed = results.get("speed")
    if not speed:
        return []
    lines = ["## Speed per stage and peak memory", "",
             "`benchmarks/speed.py --config NAME` (one process per configuration; median ms over 30 runs per frame; "
             "throughput = whole `reconstruct` calls per second, sequential; peak RSS of that process). Inside `reconstruct` "
             "the shape network runs on the second core beside the pose network and its check, so the stages add up to more "
             "than the total; `pose path` is `PoseEstimator.estimate` alone (what `facerecon pose` runs).", "",
             "| config | weights | frame | localize | crop | pose network | check | shape network | mesh | pose path | total | frames/s | peak RSS MiB |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for cfg, r in speed.items():
        for frame, f in r["frames"].items():
            st = f["stages_ms"]
            lines.append(f"| {cfg} | {r['weights']} | {frame} | {_f(st.get('localize'))} | {_f(st.get('crop'))} | {_f(st.get('network'))} | "
                         f"{_f(st.get('check'))} | {_f(st.get('shape_network'))} | {_f(st.get('mesh_and_refine'))} | "
                         f"{_f(f['pose_path_ms'], 1)} | {_f(f['total_ms'], 1)} | {_f(f['throughput_fps'], 1)} | {_f(r['peak_rss_mib'], 0)} |")
    return lines + [""]


def write_report(results: dict, out: Path) -> Path:
    out = Path(out)
    lines = ["# facerecon benchmarks", "",
             "Generated by `benchmarks/evaluate.py` (do not edit by hand). Every number below comes from this run.", "",
             f"- machine: {results['machine']}", f"- command: `{results['command']}`",
             f"- run time: {results['seconds']} s", "- test sets (held out, never used in training): "
             + ", ".join(f"`{k}` (seed {v.get('seed')}, {v.get('n_requested')} frames, {v.get('n_no_head')} without a head found)"
                         for k, v in results["test_sets"].items()),
             f"- james renders: {results['james_frames']['n']} frames, seed {results['james_frames']['seed']} (evaluation stream)", ""]
    if results["pose"]:
        lines += ["## Head pose", "", "Mean absolute error in degrees (yaw / pitch / roll in the project's convention; "
                  "MAE = mean of the three), geodesic error, translation error in mm.", "",
                  "| model | data | N | yaw | pitch | roll | MAE | geodesic mean | translation mm | failed |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, r in results["pose"].items():
            for key, label in [(k, k.replace("synthetic_", "synthetic ")) for k in r if k.startswith("synthetic_")] + [("james", "james renders")]:
                e = r[key]
                if "yaw_mae" not in e:
                    lines.append(f"| {name} | {label} | {e.get('n')} | - | - | - | - | - | - | {e.get('n_failed')} |")
                    continue
                failed = e.get("n_no_head", e.get("n_failed", 0))
                lines.append(f"| {name} | {label} | {e['n']} | {_f(e['yaw_mae'])} | {_f(e['pitch_mae'])} | {_f(e['roll_mae'])} | "
                             f"{_f(e['mae'])} | {_f(e['geodesic_mean'])} | {_f(e.get('translation_mean_mm'), 1)} | {failed} |")
        lines += ["", "Real TrueDepth sweep (30 frames, ear to ear): the predicted rotation angle relative to the first "
                  "frame should grow with the frame index.", "",
                  "| model | frames | decreasing steps | rank correlation with frame index | geodesic error vs reference (mean) | latency ms / frame |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for name, r in results["pose"].items():
            s = r["truedepth_sweep"]
            lines.append(f"| {name} | {s.get('n')} | {s.get('n_decreasing_steps', '-')} | {_f(s.get('spearman'), 3)} | "
                         f"{_f(s.get('pose', {}).get('geodesic_mean'))} | {_f(r['latency_ms_truedepth'], 1)} |")
        if any(" + refine " in n for n in results["pose"]):
            lines += ["", "`MODEL + refine N + joint (default output)`: the pose after N rigid point-to-plane ICP iterations "
                      "of the reconstructed face (first shape model) onto the frame's points with the robust check's fallback, "
                      "then the joint pose + identity stage (check.toml [shape]): what `facerecon reconstruct` and "
                      "`facerecon pose` return by default; real frames only."]
        fig = _plot_sweep(results, out)
        if fig:
            lines += ["", f"![sweep]({fig})", ""]
    if results["shape"]:
        lines += ["## Face shape", "",
                  "Synthetic test sets: the full reconstructed mesh against the ground-truth mesh after rigid alignment on the 9 "
                  "landmarks, inside the face region without ears and neck; distances to the surface (triangles), both ways; "
                  "eq. 8 Chamfer in mm^2. The mean face (all weights 0) as a prediction is the bar to beat.", "",
                  "| model | data | N | pred->gt mean | pred->gt median | gt->pred mean | gt->pred median | eq. 8 Chamfer mm^2 | mean-face median |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, r in results["shape"].items():
            for key in [k for k in r if k.startswith("synthetic_")]:
                e = r[key]
                lines.append(f"| {name} | {key.replace('synthetic_', 'synthetic ')} | {e['n']} | {_f(e['pred_to_gt_mean_mm'])} | "
                             f"{_f(e['pred_to_gt_median_mm'])} | {_f(e['gt_to_pred_mean_mm'])} | {_f(e['gt_to_pred_median_mm'])} | "
                             f"{_f(e['chamfer_eq8_mm2'])} | {_f(e['mean_face_baseline_median_mm'])} |")
        lines += ["", "Real geometry: james scan renders (mesh vs scan after landmark + ICP alignment) and the real TrueDepth frames "
                  "against the fused `Expected.ply` (scan-to-mesh after ICP, NoW-style).", "",
                  "| model | data | N | failed | pred->gt mean | pred->gt median | gt->pred median | latency ms / frame |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, r in results["shape"].items():
            for key, label in (("james", "james renders"), ("truedepth_vs_expected", "TrueDepth vs Expected.ply")):
                e = r[key]
                lines.append(f"| {name} | {label} | {e['n']} | {e['n_failed']} | {_f(e.get('pred_to_gt_mean_mm'))} | "
                             f"{_f(e.get('pred_to_gt_median_mm'))} | {_f(e.get('gt_to_pred_median_mm'))} | {_f(r['latency_ms_truedepth'], 1)} |")
        fig = _plot_shape_curves(results, out)
        if fig:
            lines += ["", f"![per-sample]({fig})", ""]
    lines += _fit_section(results) + _speed_section(results)
    path = out / "benchmarks.md"
    path.write_text("\n".join(lines) + "\n")
    return path
