"""``facerecon assets fetch|build|info``: get and inspect the ICT-FaceKit face model."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ._console import stderr_console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

assets_app = typer.Typer(help="Get, convert and inspect the ICT-FaceKit Light face model (MIT, no registration).", no_args_is_help=True)
console = stderr_console()


@assets_app.command("fetch")
def fetch_cmd(
    url: str = typer.Option(None, help="Archive URL (default: upstream ICT-FaceKit at the pinned commit)."),
) -> None:
    """Download ICT-FaceKit at the pinned commit, verify it and convert it to the cache."""
    from ..facemodel import ict

    with console.status(f"downloading {url or ict.UPSTREAM_URL}"):
        cache = ict.fetch(url or ict.UPSTREAM_URL)
    console.print(f"face model ready: {cache}")


@assets_app.command("build")
def build_cmd(
    source: Optional[Path] = typer.Argument(None, help="ICT-FaceKit folder, .zip or .tar.xz (default: $FACERECON_ICT)."),
    force: bool = typer.Option(False, "--force", help="Convert again even if the cache is up to date."),
) -> None:
    """Convert ICT-FaceKit OBJ files into the compact cache (once; later loads take < 0.5 s), and
    build the ONNX files the runtime runs the shipped networks from (once per weights file; needs
    torch, which reconstruct / pose / track then do not)."""
    import os

    from ..errors import AssetError
    from ..facemodel import ict

    src = source or (Path(os.environ["FACERECON_ICT"]) if os.environ.get("FACERECON_ICT") else None)
    if src is None:
        cache = ict.resolve_cache()  # raises with advice when there is nothing
        console.print(f"face model cache: {cache}")
        _build_networks()
        return
    if not Path(src).exists():
        raise AssetError(f"{src}: no such file or folder")
    cache = ict.default_cache_path()
    if src.suffix != ".safetensors" and (force or not (cache.exists() and ict._cache_matches(cache, Path(src)))):
        with Progress(TextColumn("converting ICT-FaceKit"), BarColumn(), TextColumn("{task.completed}/{task.total} shapes"),
                      TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("convert", total=None)
            report = ict.convert(Path(src), cache, progress=lambda k, n: bar.update(task, completed=k, total=n))
        console.print(f"converted {src} -> {report.cache_path} in {report.seconds:.1f} s")
    else:
        console.print(f"face model cache up to date: {ict.resolve_cache(src)}")
    _build_networks()


def _build_networks() -> None:
    """The ONNX files of every shipped weights file (``$FACERECON_HOME/onnx``)."""
    import time

    from ..pipeline.runtime import build_onnx_files, shipped_configs

    for config in shipped_configs():
        t = time.perf_counter()
        with console.status(f"building the ONNX files of the {config} networks"):
            built = build_onnx_files(config)
        for wf, path, new in built:
            console.print(f"{wf.kind} network ({wf.path.name}): {'built' if new else 'up to date'} {path}")
        if any(new for _, _, new in built):
            console.print(f"built in {time.perf_counter() - t:.1f} s")


@assets_app.command("info")
def info_cmd(path: Optional[Path] = typer.Argument(None, help="Model source or cache (default: resolution order).")) -> None:
    """Print the face model's source, licence and sizes."""
    from ..facemodel import FaceModel

    m = FaceModel.load(path)
    t = Table(title="ICT-FaceKit Light (as converted by facerecon)", show_header=False)
    t.add_row("cache", m.meta.get("cache_path", "?"))
    t.add_row("source", m.meta.get("source_path", "?"))
    t.add_row("upstream", m.meta.get("upstream", "?"))
    t.add_row("licence", (m.meta.get("licence", "?").strip().splitlines() or ["?"])[0])
    t.add_row("units / frame", f"{m.meta.get('units')} / {m.meta.get('frame')}")
    t.add_row("vertices", f"{m.n_vertices:,}")
    t.add_row("triangles", f"{len(m.triangles):,} ({len(m.polygons):,} polygons)")
    t.add_row("identity modes", str(m.n_identity))
    t.add_row("expressions", f"{m.n_arkit_expression} ARKit-style + {m.n_expression - m.n_arkit_expression} pupil")
    t.add_row("landmarks", f"{len(m.landmarks_68)} (Multi-PIE), 9 for alignment")
    Console().print(t)


def register(app: typer.Typer) -> None:
    app.add_typer(assets_app, name="assets")
