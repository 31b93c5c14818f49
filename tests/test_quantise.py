"""The ``precision`` key of configs/nets.toml: fp32 by default, int8 opt-in (a static int8 ONNX file
beside the float32 one, its own name), anything else a one-line error."""
from __future__ import annotations

from dataclasses import replace
from importlib.util import find_spec

import numpy as np
import pytest

from facerecon.errors import AssetError, ConfigError
from facerecon.nets.configs import NetConfig, load_net_configs
from facerecon.nets.records import weights_file
from facerecon.pipeline import runtime
from facerecon.pipeline.runtime import (
    onnx_file,
    onnx_path,
    onnx_precision,
    weights_path,
)


def test_precision_is_fp32_unless_asked_and_unknown_values_are_errors(monkeypatch):
    monkeypatch.delenv("FACERECON_PRECISION", raising=False)
    for cfg in load_net_configs().values():
        assert cfg.precision == "fp32" and onnx_precision(cfg) == "fp32"
    row = {"encoder_widths": [8] * 10, "precision": "int8"}
    assert NetConfig.from_dict("q", row).precision == "int8"
    with pytest.raises(ConfigError, match="precision must be fp32 or int8, got 'fp16'"):
        NetConfig.from_dict("q", {**row, "precision": "fp16"})
    fast = load_net_configs()["fast"]
    monkeypatch.setenv("FACERECON_PRECISION", "int8")
    assert onnx_precision(fast) == "int8" and onnx_precision(fast, "fp32") == "fp32"
    monkeypatch.setenv("FACERECON_PRECISION", "int4")
    with pytest.raises(ConfigError, match="int4"):
        onnx_precision(fast)
    with pytest.raises(ConfigError, match="int4"):  # not the torch fallback of a failed ONNX file
        runtime.load_network("pose", weights_path("pose", "fast"), backend="onnxruntime")


def test_int8_file_has_its_own_name_and_the_fp32_name_is_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv("FACERECON_HOME", str(tmp_path))
    monkeypatch.delenv("FACERECON_PRECISION", raising=False)
    wf = weights_file("pose", weights_path("pose", "fast"), "fast")
    fp32 = onnx_path(wf)
    assert onnx_path(replace(wf, config=replace(wf.config, precision="int8"))) == fp32  # the float32 graph is the same
    fp32.parent.mkdir(parents=True, exist_ok=True)  # the remembered weights digests may be there already
    fp32.write_bytes(b"")  # present: nothing is built
    int8 = fp32.with_name(f"{fp32.stem}.int8-v{runtime.INT8_VERSION}.onnx")
    int8.write_bytes(b"")
    assert onnx_file(wf) == (fp32, False)
    assert onnx_file(wf, "int8") == (int8, False)
    assert onnx_file(replace(wf, config=replace(wf.config, precision="int8"))) == (int8, False)


def test_missing_int8_file_without_onnx_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("FACERECON_HOME", str(tmp_path))
    wf = weights_file("shape", weights_path("shape", "fast"), "fast")
    fp32 = onnx_path(wf)
    fp32.parent.mkdir(parents=True, exist_ok=True)  # the remembered weights digests may be there already
    fp32.write_bytes(b"")
    monkeypatch.setattr(runtime, "find_spec", lambda name: None if name == "onnx" else find_spec(name))
    with pytest.raises(AssetError) as err:
        onnx_file(wf, "int8")
    text = err.value.one_line()
    assert "\n" not in text and "facerecon assets build" in text and "shape_fast.safetensors" in text


@pytest.mark.slow
def test_int8_pose_network_is_built_quantised_and_close_to_fp32(tmp_path, monkeypatch, ict_archive):  # calibration renders need ICT
    """Built from the float32 file (synthetic calibration), it holds int8 QDQ nodes and answers
    within the measured spread of fp32 on held-out synthetic images (docs/speed.md: median 0.34, max 0.92 degrees)."""
    pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    monkeypatch.setenv("FACERECON_HOME", str(tmp_path))
    from facerecon.nets.decode import flip_average, mirror_position_images
    from facerecon.pipeline.quantise import synthetic_position_images

    wf = weights_file("pose", weights_path("pose", "fast"), "fast")
    fp32, _ = onnx_file(wf, "fp32", quiet=True)
    int8, built = onnx_file(wf, "int8", quiet=True)
    assert built and int8 != fp32 and int8.stat().st_size < fp32.stat().st_size / 2
    assert any(n.op_type == "QuantizeLinear" for n in onnx.load(str(int8)).graph.node)
    a, b = runtime.OnnxRunner(fp32), runtime.OnnxRunner(int8)
    angles = []
    for x in synthetic_position_images(8, 19000)[0]:  # other seeds than the calibration's
        batch = np.stack([x, mirror_position_images(x)])
        qa, qb = flip_average(*a(batch)[:2])[0][0].astype(np.float64), flip_average(*b(batch)[:2])[0][0].astype(np.float64)
        qb = qb if qa @ qb >= 0 else -qb
        angles.append(np.degrees(2 * np.arctan2(np.linalg.norm(qa - qb), np.linalg.norm(qa + qb))))
    assert 0 < np.median(angles) < 1.0 and max(angles) < 3.0
