"""int8 / fp16 variants of the shipped pose and shape networks on onnxruntime's CPU provider: speed and agreement.

    python benchmarks/quantise.py [--config fast] [--n 200] [--calib 48] [--test 48] [--out DIR]

Variants of each network's ONNX file (the one ``facerecon assets build`` made):

* ``fp32``: the shipped file;
* ``int8-dynamic``: ``onnxruntime.quantization.quantize_dynamic`` (int8 weights, activations
  quantised per call);
* ``int8-static``: ``quantize_static`` in QDQ format, int8 weights per channel, uint8 activations,
  calibrated (MinMax) on position images of synthetic renders (``facerecon.synth``, seed 9000+),
  never on the real benchmark frames;
* ``fp16``: ``onnxruntime.transformers.float16`` with float32 inputs/outputs (where the CPU
  provider has no fp16 kernel it inserts casts; kept to show what it costs).

Speed: the calling thread's CPU time per call (``time.thread_time``; one intra-op thread, so
onnxruntime computes on the calling thread), the variants timed round-robin so that all see
the same load, median of ``--n`` calls; the pose network on a batch of 2 (the test-time flip),
the shape network on 1.  Agreement with fp32 on held-out synthetic position images (seed
19000+): the pose network's flip-averaged rotation (degrees) and translation (mm), the shape
network's offsets (mm).  Accuracy on real frames: ``benchmarks/real_geometry.py`` with
``precision`` set in ``configs/nets.toml`` (see docs/speed.md, "Quantisation (item 5)").
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np


def make_variants(src: Path, out: Path, calib: np.ndarray, batch: int) -> dict[str, Path]:
    """name -> ONNX file of every variant of ``src`` (written under ``out``); ``int8-static`` is the
    file ``precision = "int8"`` runs (:func:`facerecon.pipeline.quantise.quantise_int8`)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from facerecon.pipeline.quantise import quantise_int8

    out.mkdir(parents=True, exist_ok=True)
    stem = src.stem
    paths = {"fp32": src}
    pre = out / f"{stem}.pre.onnx"
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    p = out / f"{stem}.int8-dynamic.onnx"
    quantize_dynamic(str(pre), str(p), weight_type=QuantType.QInt8)
    paths["int8-dynamic"] = p
    # "-inner": the first convolution (the raw millimetre-scale input) and the fully connected
    # layers (the outputs) kept in float32
    g = onnx.load(str(src), load_external_data=False).graph
    convs = [n.name for n in g.node if n.op_type == "Conv"]
    keep = [convs[0]] + [n.name for n in g.node if n.op_type in ("Gemm", "MatMul")]
    for variant, exclude in (("int8-static", []), ("int8-static-inner", keep)):
        paths[variant] = quantise_int8(src, out / f"{stem}.{variant}.onnx", calib, batch, exclude)
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        p = out / f"{stem}.fp16.onnx"
        onnx.save(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True), str(p))
        paths["fp16"] = p
    except Exception as exc:  # noqa: BLE001 - reported, the other variants still measured
        print(f"fp16: not converted ({exc.__class__.__name__}: {exc})")
    return paths


def cpu_ms(runners: dict, x: np.ndarray, n: int, warmup: int = 10) -> dict[str, float]:
    """Median thread CPU ms per call of each runner, timed round-robin."""
    for r in runners.values():
        for _ in range(warmup):
            r(x)
    ts = {k: [] for k in runners}
    for _ in range(n):
        for k, r in runners.items():
            t = time.thread_time()
            r(x)
            ts[k].append(1e3 * (time.thread_time() - t))
    return {k: statistics.median(v) for k, v in ts.items()}


def _angle_deg(qa: np.ndarray, qb: np.ndarray) -> float:
    """Angle between two rotations given as quaternions (2 atan2(|a - b|, |a + b|): exact near 0, unlike arccos)."""
    qa, qb = np.asarray(qa, np.float64), np.asarray(qb, np.float64)
    qb = qb if float(qa @ qb) >= 0 else -qb
    return float(np.degrees(2 * np.arctan2(np.linalg.norm(qa - qb), np.linalg.norm(qa + qb))))


def pose_agreement(ref, other, test: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per test image: rotation (deg) and translation (mm) between the two runners' flip-averaged poses."""
    from facerecon.nets.decode import flip_average, mirror_position_images

    rot, tr = [], []
    for x, s in zip(test, scales):
        batch = np.stack([x, mirror_position_images(x)])
        qa, ta = flip_average(*ref(batch)[:2])
        qb, tb = flip_average(*other(batch)[:2])
        rot.append(_angle_deg(qa[0], qb[0]))
        tr.append(float(np.linalg.norm(ta[0] - tb[0])) * s)
    return np.asarray(rot), np.asarray(tr)


def shape_agreement(ref, other, test: np.ndarray) -> np.ndarray:
    """Per test image: the largest per-vertex offset difference (mm)."""
    from facerecon.nets.decode import OFFSET_UNIT_MM

    return np.asarray([float(np.linalg.norm(ref(x[None])[0][0] - other(x[None])[0][0], axis=-1).max()) * OFFSET_UNIT_MM
                       for x in test])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="fast")
    ap.add_argument("--n", type=int, default=200, help="timed calls per variant")
    ap.add_argument("--calib", type=int, default=48, help="synthetic calibration images (seed 9000+; 48 as shipped)")
    ap.add_argument("--test", type=int, default=48, help="held-out synthetic images for the agreement (seed 19000+)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/facerecon-quantise"))
    args = ap.parse_args(argv)
    from facerecon.pipeline.quantise import (
        CALIBRATION_SEED,
        calibration_images,
        synthetic_position_images,
    )
    from facerecon.pipeline.runtime import (
        OnnxRunner,
        ensure_onnx,
        weights_file,
        weights_path,
    )

    t0 = time.perf_counter()
    calib = calibration_images(args.calib, CALIBRATION_SEED)
    test, scales = synthetic_position_images(args.test, 19000)
    print(f"synthetic position images: {len(calib)} calibration, {len(test)} held out ({time.perf_counter() - t0:.0f} s)")
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; 1 intra-op thread; median thread CPU ms of {args.n} calls")
    for kind, batch in (("pose", 2), ("shape", 1)):
        wf = weights_file(kind, weights_path(kind, args.config), args.config)
        src = ensure_onnx(wf, quiet=True)[0]
        paths = make_variants(src, args.out, calib, batch)
        runners = {}
        for k, p in paths.items():
            try:
                runners[k] = OnnxRunner(p, 1)
            except Exception as exc:  # noqa: BLE001 - a variant the CPU provider cannot run: reported
                print(f"{kind} {k}: onnxruntime cannot run it ({exc.__class__.__name__}: {str(exc).splitlines()[0][:160]})")
        x = np.ascontiguousarray(test[:batch])
        ms = cpu_ms(runners, x, args.n)
        for k, r in runners.items():
            size = paths[k].stat().st_size / 1e6
            if kind == "pose":
                rot, tr = pose_agreement(runners["fp32"], r, test, scales)
                agree = f"vs fp32: rotation median {np.median(rot):.3f} max {rot.max():.3f} deg, translation median {np.median(tr):.3f} max {tr.max():.3f} mm"
            else:
                off = shape_agreement(runners["fp32"], r, test)
                agree = f"vs fp32: largest vertex offset difference median {np.median(off):.3f} max {off.max():.3f} mm"
            print(f"{kind:5s} {k:13s} {ms[k]:7.3f} ms ({ms[k] / ms['fp32']:.2f} x fp32)  {size:5.1f} MB  {agree}")
    print(f"load average after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
