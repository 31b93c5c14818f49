"""``facerecon train data|pose|shape|export``: the project's own training commands."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from ._console import stderr_console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

train_app = typer.Typer(help="Build training data, train DAPoseNet / DAShapeNet, export shipped weights.", no_args_is_help=True)
console = stderr_console()


def _bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console)


def _overrides(pairs: list[str]) -> dict:
    from ..train.recipes import parse_overrides

    return parse_overrides(pairs)


@train_app.command("data")
def data_cmd(
    recipe: str = typer.Option("fast", help="A \\[data.NAME] recipe of configs/train.toml."),
    out: Path = typer.Option(Path("runs/data"), "-o", "--out", help="Folder for the position-image sets."),
    workers: int = typer.Option(2, help="Generator processes."),
    scan: list[Path] = typer.Option([], "--scan", help="A real head scan (NAME.obj + NAME.ljson with the 68 landmarks, "
                                    "e.g. shared/data/real/scan-james) as an extra identity of the synthetic training "
                                    "frames (presets with \\[shape] scan_identity, e.g. biwi-faces). Repeatable."),
    pcl_dir: Optional[Path] = typer.Option(None, "--pcl-dir", help="A kinect-pcl folder: its person.pcd and six real face "
                                           "patches object_template_*.pcd join the unlabelled target set (build it "
                                           "into a fresh --out: an existing target.safetensors is kept)."),
    shard: Optional[str] = typer.Option(None, "--shard", help="K/N: build only data shard K of N of the training set "
                                        "(a seed range of every row), e.g. on each of N machines before a DDP run."),
) -> None:
    """Generate the synthetic (labelled) and real-domain (unlabelled) position-image sets."""
    from ..errors import ConfigError
    from ..train.recipes import build_data

    part = None
    if shard is not None:
        try:
            k, n = (int(x) for x in shard.split("/"))
            assert 0 <= k < n
        except (ValueError, AssertionError):
            raise ConfigError(f"--shard expects K/N with 0 <= K < N, got {shard!r}") from None
        part = (k, n)
    with _bar() as bar:
        tasks: dict[str, int] = {}

        def progress(name: str, k: int, n: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=n, info="")
            bar.update(tasks[name], completed=k)

        paths = build_data(recipe, out, workers, progress, scans=scan, pcl_dir=pcl_dir, shard=part)
    for k, p in paths.items():
        console.print(f"{k}: {p}")


@train_app.command("pose")
def pose_cmd(
    recipe: str = typer.Option("fast", help="A \\[pose.NAME] recipe of configs/train.toml."),
    data: Path = typer.Option(Path("runs/data"), help="Folder made by 'facerecon train data'."),
    out: Path = typer.Option(..., "-o", "--out", help="Run folder (checkpoint, log.csv); re-running resumes."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe field, e.g. --set selfsup_steps=0 "
                                   "(unknown names are errors: the nearest valid one is named)."),
    ddp: bool = typer.Option(False, "--ddp", help="Data-parallel with torch.distributed: start this command under "
                             "torchrun (`torchrun --nproc-per-node 2 $(which facerecon) train pose --ddp ...`); each rank "
                             "reads only its shard of the data, the recipe's batch is the global batch, rank 0 writes "
                             "the run (gloo on CPU, NCCL on GPUs)."),
) -> None:
    """Train DAPoseNet: supervised on synthetic data, then self-supervised on real-domain frames."""
    from ..train import ddp as ddp_mod
    from ..train.recipes import parse_overrides

    d = ddp_mod.init_from_env() if ddp else ddp_mod.Dist()
    try:
        if not d.main:  # other ranks: no progress bar, no output
            ddp_mod.run_pose(recipe, data, out, parse_overrides(set_), d)
            return
        with _bar() as bar:
            task = bar.add_task("DAPoseNet" + (f" ({d.world} ranks)" if d.active else ""), total=None, info="")

            def progress(step, total, row):
                bar.update(task, total=total, completed=step, info=f"{row['stage']} loss {row['loss']:.3f}")

            ddp_mod.run_pose(recipe, data, out, parse_overrides(set_), d, progress=progress)
        console.print(f"done: {out / 'checkpoint.safetensors'}")
    finally:
        ddp_mod.shutdown(d)


@train_app.command("shape")
def shape_cmd(
    recipe: str = typer.Option("fast", help="A \\[shape.NAME] recipe of configs/train.toml."),
    data: Path = typer.Option(Path("runs/data"), help="Folder made by 'facerecon train data'."),
    out: Path = typer.Option(..., "-o", "--out", help="Run folder; re-running resumes."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe field, e.g. --set lambda1=0.3."),
) -> None:
    """Train DAShapeNet with AR-GAN domain adaptation (or source-only with gan=false)."""
    from ..train.recipes import shape_config
    from ..train.shape import train_shape

    cfg = shape_config(recipe, _overrides(set_))
    from ..train.recipes import load_sets

    source, target, val = load_sets(data, cfg.gan)
    with _bar() as bar:
        task = bar.add_task("DAShapeNet", total=cfg.steps, info="")

        def progress(step, total, row):
            bar.update(task, completed=step, info=f"L_R {row.get('L_R', float('nan')):.4f}")

        train_shape(out, source, target if cfg.gan else None, cfg, validation=val, progress=progress)
    console.print(f"done: {out / 'checkpoint.safetensors'}")


@train_app.command("export")
def export_cmd(
    kind: str = typer.Argument(..., help="pose | shape"),
    run: Path = typer.Argument(..., help="Run folder with checkpoint.safetensors."),
    out: Path = typer.Option(..., "-o", "--out", help="Weights file to write (.safetensors)."),
    command: Optional[str] = typer.Option(None, help="The training command to record in the weights' metadata."),
) -> None:
    """Export a checkpoint's inference network as float16 safetensors with its training record."""
    from ..errors import ConfigError
    from ..train.checkpoint import load_checkpoint, read_meta
    from ..train.pose import export_weights

    meta = read_meta(run / "checkpoint.safetensors")
    cfg = meta["config"]
    if kind == "pose":
        from ..nets.pose import DAPoseNet

        net = DAPoseNet(cfg["net"])
        load_checkpoint(run / "checkpoint.safetensors", {"pose": net}, strict=True)
    elif kind == "shape":
        from ..nets.argan import DAShapeNet

        net = DAShapeNet(cfg["net"], int(cfg["n_vertices"]))
        load_checkpoint(run / "checkpoint.safetensors", {"F": net.encoder, "R": net.regressor}, strict=True)
    else:
        raise ConfigError(f"kind must be pose or shape, got {kind!r}")
    record = {"kind": kind, "net": cfg["net"], "config": cfg, "steps": meta["step"], "train_seconds": round(meta["seconds"], 1),
              "command": command or " ".join(shlex.quote(a) for a in sys.argv)}
    if kind == "shape":
        record["subset_vertices"] = meta["subset_vertices"]
    export_weights(net, out, record)
    console.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
