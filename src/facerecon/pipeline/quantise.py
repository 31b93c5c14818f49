"""The int8 ONNX files of the networks (``precision = "int8"`` in ``configs/nets.toml``, opt-in).

Static int8 in onnxruntime's QDQ format: int8 weights per output channel, uint8 activations
with ranges calibrated (MinMax) on position images of synthetic renders (:mod:`facerecon.synth`,
fixed seeds, the presets in turn), never on real frames.  Built from the float32 ONNX file beside
it by :func:`facerecon.pipeline.runtime.ensure_onnx` (``facerecon assets build``); building needs
the ``onnx`` package (the ``export`` extra, installed with torch), running it only onnxruntime.
Measured speed and agreement: ``benchmarks/quantise.py``, docs/speed.md "Quantisation (item 5)".
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..fileutil import atomic_path

__all__ = ["CALIBRATION_IMAGES", "CALIBRATION_SEED", "INT8_VERSION", "PRECISIONS", "calibration_images", "quantise_int8", "synthetic_position_images"]

PRECISIONS = ("fp32", "int8")
INT8_VERSION = 1  # bump when the recipe below changes (part of the int8 file's name)
CALIBRATION_IMAGES = 48
CALIBRATION_SEED = 9000
CALIBRATION_PRESETS = ("biwi", "ict3dhp", "facewarehouse", "truedepth")


def synthetic_position_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3, S, S) float32 position images of synthetic renders (preset k gets seed ``seed + k``,
    the presets in turn) made as at inference (localise -> position image), and their scales (mm);
    renders without a head found are skipped."""
    from ..errors import FaceReconError
    from ..io.frame import DepthFrame
    from ..preprocess.localize import localize_head
    from ..preprocess.position_image import make_position_image
    from ..synth.generator import SynthGenerator

    gens = [SynthGenerator(p, None, seed + k) for k, p in enumerate(CALIBRATION_PRESETS)]
    data, scales, i = [], [], 0
    while len(data) < n:
        gen = gens[i % len(gens)]
        s = gen.generate(i // len(gens))
        i += 1
        frame = DepthFrame(s.depth_mm, s.intrinsics, source=f"synth:{gen.preset.name}")
        try:
            pim = make_position_image(frame, localize_head(frame).center_mm)
        except FaceReconError:
            continue
        data.append(pim.data.astype(np.float32))
        scales.append(float(pim.scale_mm))
    return np.stack(data), np.asarray(scales)


@lru_cache(maxsize=2)  # the pose and the shape network's files are built from the same images
def calibration_images(n: int = CALIBRATION_IMAGES, seed: int = CALIBRATION_SEED) -> np.ndarray:
    """The calibration set of the int8 files: :func:`synthetic_position_images` (read-only)."""
    out = synthetic_position_images(n, seed)[0]
    out.flags.writeable = False
    return out


def quantise_int8(src: str | Path, dst: str | Path, images: np.ndarray, batch: int, nodes_to_exclude=()) -> Path:
    """Write the static int8 (QDQ) version of the float32 ONNX file ``src`` to ``dst`` (atomically),
    calibrated on ``images`` fed ``batch`` at a time (2 for the pose network: the image and its
    mirror, as the test-time flip runs it)."""
    import tempfile

    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ..nets.decode import mirror_position_images

    name = onnx.load(str(src), load_external_data=False).graph.input[0].name
    rows = np.concatenate([images, mirror_position_images(images)]) if batch == 2 else np.asarray(images, np.float32)
    feeds = iter([{name: np.ascontiguousarray(rows[i:i + batch])} for i in range(0, len(rows) - batch + 1, batch)])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(feeds, None)

    dst = Path(dst)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        with atomic_path(dst) as out:
            quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=list(nodes_to_exclude))
    return dst
