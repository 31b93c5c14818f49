"""``facerecon synth`` and ``facerecon synth-preview``: labelled synthetic depth datasets.

    facerecon synth --preset biwi --sensor kinect-v1 --n 20000 -o DIR --seed 0 --workers 2
    facerecon synth --preset biwi --n 200 -o DIR --format folder --meshes   # labelled folder dataset
    facerecon synth-preview DIR -o sheet.png

Generation is deterministic per (seed, index), resumable (finished shards are kept) and
spreads shards over ``--workers`` processes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._console import stderr_console

from ..errors import ConfigError

console = stderr_console()


class Rate:
    """The progress bar's frames/s: the samples this run made over the wall time since the
    command started (model loading included), never a burst's rate; samples that were already
    there (a resumed run) are not counted."""

    def __init__(self, start_s: float, already: int = 0):
        self.start_s, self.already = start_s, already

    def __call__(self, done: int, now_s: float) -> float:
        made = done - self.already
        return made / (now_s - self.start_s) if made > 0 and now_s > self.start_s else 0.0


def _existing_folder_samples(out: Path, n: int, depth_format: str) -> int:
    """Samples ``0 .. n-1`` a folder dataset already holds (a resumed ``--format folder`` run skips them)."""
    from ..datasets.synth_folder import sample_name

    if not out.is_dir():
        return 0
    names = {p.name for p in out.iterdir()}
    return sum(f"{sample_name(i)}.depth.{depth_format}" in names for i in range(n))


def synth(
    preset: str = typer.Option("biwi", "--preset", help="Preset: facewarehouse, biwi, ict3dhp, truedepth (configs/synth_presets.toml)."),
    sensor: Optional[str] = typer.Option(None, "--sensor", help="Sensor model: ideal, kinect-v1, tof, truedepth (default: the preset's)."),
    n: int = typer.Option(1000, "--n", help="Number of samples."),
    out: Path = typer.Option(..., "-o", "--out", help="Output directory (created; re-running resumes)."),
    seed: int = typer.Option(0, "--seed", help="Dataset seed: sample i is drawn from (seed, i)."),
    workers: int = typer.Option(1, "--workers", help="Worker processes (each loads the face model once)."),
    shard_size: int = typer.Option(256, "--shard-size", help="Samples per shard file."),
    presets_file: Optional[Path] = typer.Option(None, "--presets-file", help="Use this synth_presets.toml instead of the packaged one."),
    sensors_file: Optional[Path] = typer.Option(None, "--sensors-file", help="Use this sensors.toml instead of the packaged one."),
    fmt: str = typer.Option("shards", "--format", help="shards (training format, default) or folder (the documented "
                            "folder format of facerecon.datasets.folder: depth + pose.json + landmarks.json per sample, "
                            "for `facerecon eval` and other tools; written by one process, --workers and --shard-size do not apply)."),
    meshes: bool = typer.Option(False, "--meshes/--no-meshes", help="--format folder: also write each sample's ground-truth "
                                "head mesh NAME.mesh.obj (head frame, ICT topology, ~3 MB each)."),
    depth_format: str = typer.Option("npz", "--depth-format", help="--format folder: npz (float32 mm) or png (16-bit integer mm)."),
) -> None:
    """Generate a synthetic dataset of depth frames with exact pose/shape/landmark labels (sharded, or a plain folder)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from ..synth.dataset import generate_dataset

    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    if fmt not in ("shards", "folder"):
        raise ConfigError(f"--format must be shards or folder, got {fmt!r}")
    if fmt == "shards" and meshes:
        raise ConfigError("--meshes needs --format folder (shards rebuild meshes from the stored weights)")
    columns = (
        TextColumn("[bold]synth[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
    )  # fmt: skip
    import time

    state: dict = {"rate": None}
    start = time.perf_counter()
    already = _existing_folder_samples(out, n, depth_format) if fmt == "folder" else None
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"{preset}/{sensor or 'default'}", total=n, rate="")

        def progress(done: int, total: int) -> None:
            now = time.perf_counter()
            if state["rate"] is None:  # shards report what was already there before making any
                state["rate"] = Rate(start, already if already is not None else done)
            rate = state["rate"](done, now)
            bar.update(task, completed=done, rate=f"{rate:6.1f} frames/s" if rate else "")

        files = {"preset_file": str(presets_file) if presets_file else None, "sensor_file": str(sensors_file) if sensors_file else None}
        if fmt == "folder":  # one process: every sample is its own files, written atomically, depth last
            from ..datasets.synth_folder import export_folder

            written = export_folder(out, preset, sensor, n=n, seed=seed, meshes=meshes, depth_format=depth_format,
                                    progress=progress, **files)  # fmt: skip
        else:
            manifest = generate_dataset(out, preset, sensor, n=n, seed=seed, workers=workers, shard_size=shard_size,
                                        progress=progress, **files)  # fmt: skip
    if fmt == "folder":
        console.print(f"wrote [bold]{written}[/bold] new samples ({n} in all, preset {preset}, seed {seed}) -> {out} "
                      "(folder format)")  # fmt: skip
        return
    size = sum((out / e["file"]).stat().st_size for e in manifest["shards"])
    console.print(f"wrote [bold]{manifest['n']}[/bold] samples ({manifest['preset']}, {manifest['sensor']}, seed {seed}) "
                  f"in {len(manifest['shards'])} shards, {size / 1e6:.1f} MB -> {out}")  # fmt: skip


def synth_preview(
    directory: Path = typer.Argument(..., help="A dataset directory written by `facerecon synth`."),
    out: Path = typer.Option(..., "-o", "--out", help="Contact sheet PNG to write."),
    count: int = typer.Option(16, "--count", help="Number of samples on the sheet (spread over the dataset)."),
    cols: int = typer.Option(4, "--cols", help="Columns of the grid."),
) -> None:
    """Contact sheet of a synthetic dataset: shaded depth, face-mask outline, landmarks (green visible, red hidden)."""
    import numpy as np

    from ..synth.dataset import load_manifest
    from ..synth.preview import contact_sheet
    from ..synth.shards import ShardReader

    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out must be a .png file, got {out}")
    m = load_manifest(directory)
    total = int(m["n"])
    idx = np.unique(np.linspace(0, total - 1, max(1, min(count, total))).astype(int))
    fm = m.get("face_model", {})
    samples, readers = [], {}
    for i in idx:
        e = next(e for e in m["shards"] if e["start"] <= i < e["start"] + e["count"])
        if e["file"] not in readers:
            readers[e["file"]] = ShardReader(directory / e["file"], fm.get("n_identity", 100), fm.get("n_expression", 55))
        samples.append(readers[e["file"]].sample(int(i - e["start"]), float(m["depth_unit_mm"])))
    contact_sheet(samples, out, cols=cols, title=f"{directory.name}: preset {m['preset']}, sensor {m['sensor']}, seed {m['seed']}")
    console.print(f"wrote [bold]{out}[/bold] ({len(samples)} samples)")


def register(app: typer.Typer) -> None:
    app.command("synth")(synth)
    app.command("synth-preview")(synth_preview)
