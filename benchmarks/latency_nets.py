"""Single-frame CPU latency of the DAPoseNet configurations and of the whole pose path.

    .venv/bin/python benchmarks/latency_nets.py [--n 30] [--threads 2] [--compile] [--frames DIR_OR_FILES...]

For the configurations in ``facerecon/configs/nets.toml`` and a few narrower candidates
(width multipliers of the paper widths): parameters, multiply-accumulates, and the
median latency of one 1x3xSxS forward pass (eval mode, ``torch.no_grad``, warm-up, median
of ``--n``) in eager mode, with ``channels_last``, and as a frozen TorchScript trace
(``torch.jit.trace`` + ``torch.jit.freeze``: BatchNorm folded into the convolutions);
``--compile`` adds ``torch.compile`` (slow to compile).  Then the whole pose path on real
frames (read -> localise -> position image -> network) for ``fast`` and ``paper``.
Numbers depend on the machine and on its load: rerun on the target machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from facerecon.nets import DAPoseNet, conv_macs, count_parameters, net_config
from facerecon.pipeline.runtime import module_network
from facerecon.nets.configs import NetConfig

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FRAMES = [
    REPO.parent / "shared/data/real/kinect-pcl/person.pcd",
    REPO.parent / "shared/data/real/truedepth-mannequin/DepthFrames/frame-000.ply",
    REPO.parent / "shared/data/real/truedepth-mannequin/DepthFrames/frame-045.ply",
]


def median_ms(fn, n: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(ts)


def median_ms_interleaved(fns: dict, n: int, warmup: int = 5) -> dict:
    """Median ms of each callable, timed round-robin so that all see the same machine load."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    ts = {k: [] for k in fns}
    for _ in range(n):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            ts[k].append(time.perf_counter() - t0)
    return {k: 1000.0 * statistics.median(v) for k, v in ts.items()}


def scaled(cfg: NetConfig, mult: float, name: str) -> NetConfig:
    w = tuple(max(8, int(round(c * mult / 8)) * 8) for c in cfg.encoder_widths)
    return NetConfig(name=name, encoder_widths=w, feature_dim=cfg.feature_dim, input_size=cfg.input_size,
                     pose_hidden=cfg.pose_hidden, leaky_slope=cfg.leaky_slope)


class _Raw(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, t):
        return self.m.forward_raw(t)


def variants(model: DAPoseNet, size: int, compile_: bool):
    """name -> callable running one forward pass."""
    x = torch.randn(1, 3, size, size)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    out = {"eager": lambda: model.forward_raw(x)}
    m_cl = DAPoseNet(model.config).eval()
    m_cl.load_state_dict(model.state_dict())
    m_cl = m_cl.to(memory_format=torch.channels_last)
    out["channels_last"] = lambda: m_cl.forward_raw(x_cl)
    folded = module_network(model, "torch").runner.module  # the runtime's torch backend
    out["bn_folded_cl"] = lambda: folded(x_cl)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.freeze(torch.jit.trace(_Raw(model).eval(), x))
    out["jit_frozen"] = lambda: traced(x)
    ort = module_network(model, "onnxruntime")  # the pipeline's backend (exported once, cached)
    x_np = x.numpy()
    out["onnxruntime"] = lambda: ort(x_np)
    if compile_:
        comp = torch.compile(_Raw(model).eval())
        t0 = time.perf_counter()
        with torch.no_grad():
            comp(x)  # compile now, not in the timing
        print(f"  (torch.compile took {time.perf_counter() - t0:.0f} s)")
        out["compile"] = lambda: comp(x)
    return out


COLS = [("eager", "eager"), ("channels_last", "ch_last"), ("bn_folded_cl", "fold+cl"), ("jit_frozen", "jit_frz"),
        ("onnxruntime", "onnxrt"), ("compile", "compile")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    ap.add_argument("--frames", nargs="*", default=None)
    ap.add_argument("--skip-path", action="store_true", help="networks only")
    ap.add_argument("--path-only", action="store_true", help="whole pose path only")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.n} single-frame runs, "
          f"load average {os.getloadavg()[0]:.2f} (other processes inflate the numbers)")

    paper = net_config("paper")
    fast = net_config("fast")
    cands = [paper, scaled(paper, 0.5, "x1/2"), scaled(paper, 0.25, "x1/4"), scaled(paper, 0.1875, "x3/16"),
             fast, scaled(paper, 0.125, "x1/8")]
    seen = set()
    cols = [c for c in COLS if c[0] != "compile" or args.compile]
    hdr = f"{'config':8s} {'widths':48s} {'params':>8s} {'MMAC':>6s}" + "".join(f" {h:>8s}" for _, h in cols)
    if not args.path_only:
        print(hdr + "   (ms; fold+cl = the runtime's torch backend, onnxrt = its onnxruntime backend)")
    for cfg in [] if args.path_only else cands:
        key = (cfg.encoder_widths, cfg.input_size, cfg.pose_hidden)
        if key in seen:
            continue
        seen.add(key)
        torch.manual_seed(0)
        model = DAPoseNet(cfg).eval()
        params = count_parameters(model)
        macs = conv_macs(model, cfg.input_size)
        with torch.no_grad():
            times = median_ms_interleaved(variants(model, cfg.input_size, args.compile), args.n)
        line = f"{cfg.name:8s} {str(list(cfg.encoder_widths)):48s} {params / 1e6:7.2f}M {macs / 1e6:6.0f}"
        print(line + "".join(f" {times[k]:8.2f}" for k, _ in cols), flush=True)

    if args.skip_path:
        return 0
    # ---- whole pose path on real frames ---------------------------------------------
    from facerecon.io import read_depth
    from facerecon.preprocess import localize_head, make_position_image

    frames = [Path(f) for f in args.frames] if args.frames else [f for f in DEFAULT_FRAMES if f.exists()]
    if not frames:
        print("no frames for the pose path (give --frames)")
        return 0
    print("\nwhole pose path per frame (read excluded): localise + position image + network (runtime.module_network, the configuration's backend).")
    print("Steady state of a pipeline that runs one configuration frame after frame; configurations")
    print("alternate in blocks of 5 frames (same machine load for all), the first frame of a block is not counted.")
    path_cfgs = {"fast": fast, "x1/8": scaled(paper, 0.125, "x1/8"), "paper": paper}
    nets = {}
    for name, cfg in path_cfgs.items():
        torch.manual_seed(0)
        nets[name] = (module_network(DAPoseNet(cfg).eval()), cfg.input_size)
    print(f"{'frame':16s} {'config':6s} {'localise':>9s} {'crop':>6s} {'network':>8s} {'total':>7s}  (ms, medians)")
    worst = {k: 0.0 for k in nets}
    for path in frames:
        frame = read_depth(path)

        def whole(name):
            t0 = time.perf_counter()
            lo = localize_head(frame)
            t1 = time.perf_counter()
            p = make_position_image(frame, lo.center_mm, out=nets[name][1])
            t2 = time.perf_counter()
            nets[name][0](p.data[None])
            t3 = time.perf_counter()
            return t1 - t0, t2 - t1, t3 - t2, t3 - t0

        rec = {k: [] for k in nets}
        for _ in range(max(1, args.n // 4)):
            for name in nets:
                for i in range(5):
                    t = whole(name)
                    if i:
                        rec[name].append(t)
        for name in nets:
            med = 1000.0 * np.median(np.array(rec[name]), axis=0)
            worst[name] = max(worst[name], med[3])
            print(f"{path.name:16s} {name:6s} {med[0]:9.2f} {med[1]:6.2f} {med[2]:8.2f} {med[3]:7.2f}", flush=True)
    print("\nbudget 10 ms (whole path, worst frame): "
          + ", ".join(f"{k} {v:.2f} ms {'ok' if v < 10 else 'over'}" for k, v in worst.items()))
    print(f"load average now {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
