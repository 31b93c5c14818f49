"""Tracking on the real TrueDepth sweep against the phone's IMU, and the tracker's throughput.

    .venv/bin/python benchmarks/track_eval.py --shared ../shared [--plot docs/track_truedepth.png] [--json OUT.json]

The 30 real TrueDepth frames (``data/real/truedepth-mannequin/DepthFrames``) are a phone
sweeping around a still mannequin head; ``motion-data.json`` logs the phone's attitude
(CoreMotion quaternions, 100 Hz), interpolated (slerp) to each frame's timestamp.  The head
is still, so the head's rotation between frames i and j in the camera frame is the phone's
rotation between them: for every pair of frames, the rotation angle of ``R_i^T R_j`` (head
poses) is compared with that of ``A_i^T A_j`` (attitudes); reported: median and 90th
percentile of ``|angle_pose - angle_imu|`` over the 435 pairs.  A stricter figure compares
the whole relative rotation (axis too) after fitting the fixed camera-to-phone rotation
(3 parameters, on the same data): ``geodesic``.

Methods: per-frame networks (``PoseEstimator.estimate(refine=0)``), the per-frame default output (``Reconstructor.reconstruct``),
and ``track`` (with and without refinement; filtered and raw pose).  Throughput: the tracker
over the sequence, second pass (steady state: caches warm, ONNX exported), frames per second,
CPU time per frame (all threads of the process) and per-stage medians.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def slerp_attitudes(motion_path: Path, times: np.ndarray) -> np.ndarray:
    """(N, 3, 3) phone attitudes at ``times`` (slerp between the two nearest IMU samples)."""
    from facerecon.geometry.rotations import quat_to_matrix

    rows = json.loads(motion_path.read_text(encoding="utf-8"))
    ts = np.array([r["timestamp"] for r in rows], np.float64)
    q = np.array([[r["attitude_w"], r["attitude_x"], r["attitude_y"], r["attitude_z"]] for r in rows], np.float64)
    order = np.argsort(ts)
    ts, q = ts[order], q[order]
    out = []
    for t in times:
        j = int(np.clip(np.searchsorted(ts, t), 1, len(ts) - 1))
        a, b = q[j - 1], q[j]
        if np.dot(a, b) < 0:
            b = -b
        u = float(np.clip((t - ts[j - 1]) / max(ts[j] - ts[j - 1], 1e-9), 0.0, 1.0))
        ang = np.arccos(np.clip(np.dot(a, b), -1.0, 1.0))
        qi = a if ang < 1e-9 else (np.sin((1 - u) * ang) * a + np.sin(u * ang) * b) / np.sin(ang)
        out.append(quat_to_matrix(qi / np.linalg.norm(qi)))
    return np.asarray(out)


def _angle(r: np.ndarray) -> np.ndarray:
    from facerecon.geometry.rotations import rotation_angle_deg

    return rotation_angle_deg(r)


def _rotvec(r: np.ndarray) -> np.ndarray:
    from facerecon.tracking.filters import rotation_log

    return np.array([rotation_log(x) for x in r])


def pair_errors(rot: np.ndarray, att: np.ndarray, ok: np.ndarray) -> dict:
    """Angle-difference and (camera-to-phone fitted) geodesic errors over all pairs of valid frames."""
    idx = np.flatnonzero(ok)
    i, j = np.triu_indices(len(idx), 1)
    i, j = idx[i], idx[j]
    rel_p = np.swapaxes(rot[i], -1, -2) @ rot[j]
    ang_err = np.abs(_angle(rel_p) - _angle(np.swapaxes(att[i], -1, -2) @ att[j]))
    # whole relative rotation: camera-frame relative rotation R_i R_j^T = M Q_ij M^T with Q_ij the
    # phone's relative rotation in one of CoreMotion's two conventions and M fixed (Kabsch on rotation vectors)
    rel_c = rot[i] @ np.swapaxes(rot[j], -1, -2)
    best = None
    for q in (np.swapaxes(att[i], -1, -2) @ att[j], att[i] @ np.swapaxes(att[j], -1, -2)):
        for qq in (q, np.swapaxes(q, -1, -2)):
            a, b = _rotvec(qq), _rotvec(rel_c)
            u, _, vt = np.linalg.svd(b.T @ a)
            m = u @ np.diag([1, 1, np.sign(np.linalg.det(u @ vt))]) @ vt
            geo = _angle(np.swapaxes(rel_c, -1, -2) @ (m @ qq @ m.T))
            if best is None or np.median(geo) < np.median(best):
                best = geo
    return {"pairs": int(len(i)), "frames": int(len(idx)),
            "median_deg": float(np.median(ang_err)), "p90_deg": float(np.percentile(ang_err, 90)),
            "geodesic_median_deg": float(np.median(best)), "geodesic_p90_deg": float(np.percentile(best, 90))}


def per_frame(rec, frames, refine: int | None) -> tuple[np.ndarray, np.ndarray, float]:
    """Each frame alone: ``refine=0`` the bare pose network (``PoseEstimator.estimate``),
    ``None`` the default single-frame output (``Reconstructor.reconstruct``: check, refinement,
    fallback and the joint shape stage)."""
    from facerecon.errors import FaceReconError

    rot = np.tile(np.eye(3), (len(frames), 1, 1))
    ok = np.zeros(len(frames), bool)
    t0 = time.perf_counter()
    for k, f in enumerate(frames):
        try:
            res = rec.pose.estimate(f, refine=0) if refine == 0 else rec.reconstruct(f, refine=refine)
        except FaceReconError:
            continue
        rot[k], ok[k] = res.pose.R, True
    return rot, ok, (time.perf_counter() - t0) / len(frames)


def run_tracker(tracker, frames):
    tracker.reset()
    tracks = [tracker.update(f) for f in frames]
    return tracks


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, required=True, help="The shared data folder (../shared).")
    ap.add_argument("--config", default="fast")
    ap.add_argument("--plot", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "track_truedepth.png")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--passes", type=int, default=2, help="Tracker passes over the sequence for the throughput (last one timed).")
    args = ap.parse_args(argv)

    from facerecon.io import read_depth
    from facerecon.pipeline import Reconstructor
    from facerecon.tracking import Tracker
    from facerecon.tracking.sources import folder_files, frame_time

    folder = args.shared / "data" / "real" / "truedepth-mannequin" / "DepthFrames"
    frames = [read_depth(p) for p in folder_files(folder)]
    times = np.array([frame_time(f) for f in frames], np.float64)
    order = np.argsort(times)
    frames, times = [frames[k] for k in order], times[order]
    att = slerp_attitudes(folder / "motion-data.json", times)
    print(f"{len(frames)} TrueDepth frames, {times[-1] - times[0]:.2f} s; phone turned {float(_angle(att[:1].transpose(0, 2, 1) @ att[-1:])[0]):.1f} deg")

    rec = Reconstructor.from_pretrained(args.config)
    results: dict = {"command": "python benchmarks/track_eval.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    rows = {}
    curves = {}
    for name, refine in (("per-frame networks", 0), ("per-frame default", None)):
        rot, ok, sec = per_frame(rec, frames, refine)
        rows[name] = {**pair_errors(rot, att, ok), "ms_per_frame": 1e3 * sec}
        curves[name] = (rot, ok)
    for name, refine in (("track", True), ("track --no-refine", False)):
        tracker = Tracker(rec, {"refine": {"enabled": refine}})
        for _ in range(max(1, args.passes)):
            t0, c0 = time.perf_counter(), time.process_time()
            tracks = run_tracker(tracker, frames)
            sec, cpu = time.perf_counter() - t0, time.process_time() - c0
        ok = np.array([t.tracked for t in tracks])
        for which in ("pose", "raw_pose"):
            rot = np.array([getattr(t, which).R if t.tracked else np.eye(3) for t in tracks])
            label = name + (" (filtered)" if which == "pose" else " (raw)")
            rows[label] = pair_errors(rot, att, ok)
            curves[label] = (rot, ok)
        stages = {k: float(np.median([t.timings_ms.get(k, 0.0) for t in tracks[1:]])) for k in tracks[-1].timings_ms}
        rows[name + " (filtered)"].update({"frames_per_second": len(frames) / sec, "ms_per_frame": 1e3 * sec / len(frames),
                                           "cpu_ms_per_frame": 1e3 * cpu / len(frames),
                                           "stage_median_ms": stages, "tracked": int(ok.sum()),
                                           "localised": int(sum(t.localised for t in tracks)),
                                           "identity_frozen_at": next((t.index for t in tracks if t.identity_frozen), None)})
        if refine:
            track_list = tracks
    results["methods"] = rows
    print(f"\n{'method':32s} {'median':>7s} {'p90':>7s} {'geo med':>8s} {'geo p90':>8s} {'ms/frame':>9s}  (relative rotation vs IMU, deg)")
    for name, r in rows.items():
        ms = r.get("ms_per_frame")
        print(f"{name:32s} {r['median_deg']:7.2f} {r['p90_deg']:7.2f} {r['geodesic_median_deg']:8.2f} {r['geodesic_p90_deg']:8.2f} "
              f"{'' if ms is None else f'{ms:9.1f}'}")
    for name in ("track (filtered)", "track --no-refine (filtered)"):
        r = rows[name]
        print(f"{name}: {r['frames_per_second']:.1f} frames/s ({r['cpu_ms_per_frame']:.1f} ms of CPU per frame), stages (median ms) "
              + ", ".join(f"{k} {v:.1f}" for k, v in r["stage_median_ms"].items())
              + f"; localised on {r['localised']} of {len(frames)} frames; identity frozen at frame {r['identity_frozen_at']}")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from facerecon.fileutil import atomic_path

        t = times - times[0]
        fig, axes = plt.subplots(2, 1, figsize=(9, 7))
        axes[0].plot(t, _angle(att[:1].transpose(0, 2, 1) @ att), "k-", lw=2.5, label="phone IMU (reference)")
        styles = {"per-frame networks": "o:", "per-frame default": "s:", "track (filtered)": "-", "track (raw)": "."}
        for name, st in styles.items():
            rot, ok = curves[name]
            k0 = int(np.flatnonzero(ok)[0])
            ang = np.where(ok, _angle(rot[k0:k0 + 1].transpose(0, 2, 1) @ rot), np.nan)
            axes[0].plot(t, ang, st, ms=4, label=f"{name}: pairs median {rows[name]['median_deg']:.2f}, p90 {rows[name]['p90_deg']:.2f} deg")
        axes[0].set_ylabel("rotation since the first frame (deg)")
        axes[0].legend(fontsize=7)
        axes[0].grid(alpha=0.3)
        axes[0].set_title("real TrueDepth sweep: head rotation vs the phone's IMU", fontsize=9)
        eul = np.array([tr.pose.euler_deg if tr.tracked else [np.nan] * 3 for tr in track_list])
        raw = np.array([tr.raw_pose.euler_deg if tr.tracked else [np.nan] * 3 for tr in track_list])
        for k, (nm, c) in enumerate(zip(("yaw", "pitch", "roll"), ("tab:blue", "tab:orange", "tab:green"))):
            axes[1].plot(t, eul[:, k], "-", color=c, label=f"{nm} (track, filtered)")
            axes[1].plot(t, raw[:, k], ".", color=c, ms=4)
        axes[1].set_xlabel("time (s)")
        axes[1].set_ylabel("Euler angles (deg), dots: raw")
        axes[1].legend(fontsize=7)
        axes[1].grid(alpha=0.3)
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.plot) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
        print(f"plot -> {args.plot}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
