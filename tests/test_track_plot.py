"""pose_over_time.png: the legend names the raw-pose dots and defines z0 (no tracker needed)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from facerecon.export.track import plot_pose_over_time, pose_figure
from facerecon.geometry.pose import HeadPose


def _tracks(n: int = 30):
    out = []
    for i in range(n):
        yaw = 30.0 * np.sin(i / 6.0)
        pose = HeadPose.from_euler(yaw, 5.0, 0.0, [10.0, 0.0, 600.0 + i])
        raw = HeadPose.from_euler(yaw + 1.5 * np.cos(i), 5.5, 0.3, [10.0, 0.0, 600.0 + i])
        tracked = i != 12
        out.append(SimpleNamespace(time_s=i / 30.0, tracked=tracked, pose=pose if tracked else None,
                                   raw_pose=raw if tracked else None))
    return out


def test_pose_plot_legend_names_raw_dots_and_z0(tmp_path: Path):
    import matplotlib.pyplot as plt

    tracks = _tracks()
    fig = pose_figure(tracks, "synthetic")
    try:
        angles, translation = fig.axes[:2]
        texts = [t.get_text() for t in angles.get_legend().get_texts()]
        assert any("raw pose" in t for t in texts), texts
        assert [t for t in texts if "filtered" in t] == ["yaw (filtered)", "pitch (filtered)", "roll (filtered)"]
        texts = [t.get_text() for t in translation.get_legend().get_texts()]
        z0 = np.median([600.0 + i for i in range(30) if i != 12])
        assert any(t.startswith("tz - z0 (mm)") and f"z0 = median tz = {z0:.0f} mm" in t for t in texts), texts
    finally:
        plt.close(fig)
    plot_pose_over_time(tracks, tmp_path / "p.png", title="synthetic")
    assert (tmp_path / "p.png").stat().st_size > 10_000
