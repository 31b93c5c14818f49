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
    outputs ``quat`` (B, 4) + ``trans`` (B, 3) and ``offsets`` (B, 3N).  The files are the ones
    the onnxruntime backend caches under $FACERECON_HOME/onnx (exported once per weights file)."""
    import shutil

    import numpy as np
    import torch

    from ..errors import FaceReconError
    from ..fileutil import atomic_path
    from ..nets import DAPoseNet
    from ..nets.argan import DAShapeNet
    from ..pipeline.weights import OnnxRunner, cached_onnx, load_weights, network_input, weights_meta, weights_path

    pose_path = pose_weights or weights_path("pose", config)
    shape_path = shape_weights or weights_path("shape", config)
    pose = DAPoseNet(weights_meta(pose_path).get("net", config))
    load_weights(pose, pose_path)
    meta = weights_meta(shape_path)
    if "subset_vertices" not in meta:
        raise FaceReconError(f"{shape_path}: not a shape weights file (no subset_vertices in its record)")
    shape = DAShapeNet(meta.get("net", config), len(meta["subset_vertices"]))
    load_weights(shape, shape_path)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for kind, net in (("pose", pose.eval()), ("shape", shape.eval())):
        with console.status(f"exporting the {kind} network"):
            src = cached_onnx(net)
        dst = out / f"{kind}_{config}.onnx"
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
        line = f"{dst}  ({dst.stat().st_size / 1e6:.2f} MB)"
        if check:
            data = rng.normal(scale=0.5, size=(2, 3, net.encoder.input_size, net.encoder.input_size)).astype(np.float32)
            with torch.no_grad():
                ref = net(torch.from_numpy(data))
            got = OnnxRunner(src)(network_input(data))
            ref = ref if isinstance(ref, tuple) else (ref,)
            got = got if isinstance(got, tuple) else (got,)
            err = max(float((a - b).abs().max()) for a, b in zip(got, ref))
            line += f"  max |onnxruntime - torch| = {err:.2e}"
        console.print(line)


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
