"""``facerecon train data|pose|shape|export``: the project's own training commands."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

train_app = typer.Typer(help="Build training data, train DAPoseNet / DAShapeNet, export shipped weights.", no_args_is_help=True)
console = Console(stderr=True)


def _bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console)


def _overrides(pairs: list[str]) -> dict:
    import tomllib

    out = {}
    for p in pairs:
        if "=" not in p:
            from ..errors import ConfigError

            raise ConfigError(f"--set expects key=value, got {p!r}")
        k, v = p.split("=", 1)
        try:
            out.update(tomllib.loads(f"{k} = {v}"))
        except tomllib.TOMLDecodeError:  # a bare word or path: a string (init_from=runs/x.safetensors)
            out[k.strip()] = v
    return out


@train_app.command("data")
def data_cmd(
    recipe: str = typer.Option("fast", help="A [data.NAME] recipe of configs/train.toml."),
    out: Path = typer.Option(Path("runs/data"), "-o", "--out", help="Folder for the position-image sets."),
    workers: int = typer.Option(2, help="Generator processes."),
) -> None:
    """Generate the synthetic (labelled) and real-domain (unlabelled) position-image sets."""
    from ..train.recipes import build_data

    with _bar() as bar:
        tasks: dict[str, int] = {}

        def progress(name: str, k: int, n: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=n, info="")
            bar.update(tasks[name], completed=k)

        paths = build_data(recipe, out, workers, progress)
    for k, p in paths.items():
        console.print(f"{k}: {p}")


def _load_sets(data: Path, need_target: bool):
    from ..errors import ConfigError
    from ..train.data import PositionSet

    train = data / "train.safetensors"
    if not train.exists():
        raise ConfigError(f"{train}: missing; run 'facerecon train data' first")
    val = sorted(data.glob("validation-*.safetensors"))
    target = data / "target.safetensors"
    if need_target and not target.exists():
        raise ConfigError(f"{target}: missing real-domain set; run 'facerecon train data' first")
    return (PositionSet.load(train), PositionSet.load(target) if target.exists() else None,
            PositionSet.concat([PositionSet.load(v) for v in val]) if val else None)


@train_app.command("pose")
def pose_cmd(
    recipe: str = typer.Option("fast", help="A [pose.NAME] recipe of configs/train.toml."),
    data: Path = typer.Option(Path("runs/data"), help="Folder made by 'facerecon train data'."),
    out: Path = typer.Option(..., "-o", "--out", help="Run folder (checkpoint, log.csv); re-running resumes."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe field, e.g. --set selfsup_steps=0."),
) -> None:
    """Train DAPoseNet: supervised on synthetic data, then self-supervised on real-domain frames."""
    from ..train.pose import train_pose
    from ..train.recipes import pose_config

    cfg = pose_config(recipe, _overrides(set_))
    source, target, val = _load_sets(data, cfg.selfsup_steps > 0)
    with _bar() as bar:
        task = bar.add_task("DAPoseNet", total=cfg.supervised_steps + cfg.selfsup_steps, info="")

        def progress(step, total, row):
            bar.update(task, completed=step, info=f"{row['stage']} loss {row['loss']:.3f}")

        train_pose(out, source, target, cfg, validation=val, progress=progress)
    console.print(f"done: {out / 'checkpoint.safetensors'}")


@train_app.command("shape")
def shape_cmd(
    recipe: str = typer.Option("fast", help="A [shape.NAME] recipe of configs/train.toml."),
    data: Path = typer.Option(Path("runs/data"), help="Folder made by 'facerecon train data'."),
    out: Path = typer.Option(..., "-o", "--out", help="Run folder; re-running resumes."),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe field, e.g. --set lambda1=0.3."),
) -> None:
    """Train DAShapeNet with AR-GAN domain adaptation (or source-only with gan=false)."""
    from ..train.recipes import shape_config
    from ..train.shape import train_shape

    cfg = shape_config(recipe, _overrides(set_))
    source, target, val = _load_sets(data, cfg.gan)
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
