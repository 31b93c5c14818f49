"""``facerecon export onnx``: the pose and shape networks as ONNX files (onnxruntime, other runtimes)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._console import stderr_console

export_app = typer.Typer(help="Export the networks for other runtimes.", no_args_is_help=True)
console = stderr_console()


@export_app.command("onnx")
def onnx_cmd(
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (created): pose_<config>.onnx, shape_<config>.onnx."),
    config: str = typer.Option("fast", help="Network configuration of the shipped weights."),
    pose_weights: Optional[Path] = typer.Option(None, help="A pose weights file instead of the shipped one."),
    shape_weights: Optional[Path] = typer.Option(None, help="A shape weights file instead of the shipped one."),
    check: bool = typer.Option(True, "--check/--no-check", help="Run both files with onnxruntime and compare with torch."),
) -> None:
    """Export DAPoseNet and DAShapeNet (eval mode, BatchNorm folded) to ONNX.

    Input ``position_image`` (B, 3, 160, 160) float32 (facerecon.preprocess.make_position_image);
    outputs ``quat`` (B, 4) + ``trans`` (B, 3) and ``offsets`` (B, N, 3).  The files are the ones
    the runtime runs from $FACERECON_HOME/onnx (built once per weights file: facerecon assets build)."""
    import shutil

    import numpy as np
    import torch

    from ..fileutil import atomic_path
    from ..nets.records import weights_file
    from ..pipeline.runtime import OnnxRunner, ensure_onnx, weights_path
    from ..pipeline.weights import load_module

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for kind, given in (("pose", pose_weights), ("shape", shape_weights)):
        wf = weights_file(kind, given or weights_path(kind, config), config)
        with console.status(f"exporting the {kind} network"):
            src, _ = ensure_onnx(wf, quiet=True)  # the runtime's file, built once per weights file
        dst = out / f"{kind}_{config}.onnx"
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
        line = f"{dst}  ({dst.stat().st_size / 1e6:.2f} MB)"
        if check:
            net = load_module(wf)
            size = wf.config.input_size
            data = rng.normal(scale=0.5, size=(2, 3, size, size)).astype(np.float32)
            with torch.no_grad():
                ref = net(torch.from_numpy(data))
            ref = ref if isinstance(ref, tuple) else (ref,)
            got = OnnxRunner(src)(data)
            err = max(float(np.abs(a - b.numpy()).max()) for a, b in zip(got, ref))
            line += f"  max |onnxruntime - torch| = {err:.2e}"
        console.print(line)

def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
