"""Presets and sensor models are data (TOML) and all of them load and draw."""
from __future__ import annotations

import numpy as np
import pytest

from facerecon.errors import ConfigError
from facerecon.facemodel import FaceModel
from facerecon.synth.presets import draw, load_preset, load_sensor, named_expressions, preset_names, sensor_names


@pytest.fixture(scope="session")
def face_model(ict_archive):
    return FaceModel.load()


def test_all_presets_and_sensors_load():
    assert {"facewarehouse", "biwi", "ict3dhp", "truedepth"} <= set(preset_names())
    assert {"ideal", "kinect-v1", "tof", "truedepth"} <= set(sensor_names())
    for name in preset_names():
        p = load_preset(name)
        load_sensor(p.get("sensor"))
    for name in sensor_names():
        s = load_sensor(name)
        assert s.table.get("source"), f"sensor {name} documents no source"
    with pytest.raises(ConfigError):
        load_preset("nope")
    with pytest.raises(ConfigError):
        load_sensor("nope")


def test_named_expressions_use_model_names(face_model):
    exprs = named_expressions()
    assert len(exprs) >= 20
    assert len(load_preset("facewarehouse").get("expressions")) == 20
    for name, weights in exprs.items():
        for shape, w in weights.items():
            assert shape in face_model.expression_names, (name, shape)
            assert 0 <= w <= 1


def test_draw_specs():
    rng = np.random.default_rng(0)
    assert draw(3.0, rng) == 3.0
    xs = [draw([1.0, 2.0], rng) for _ in range(200)]
    assert 1 <= min(xs) and max(xs) <= 2
    assert all(isinstance(draw([1, 3], rng), int) for _ in range(10))
    ys = [draw({"normal": [0, 10], "clip": [-5, 5]}, rng) for _ in range(200)]
    assert -5 <= min(ys) and max(ys) <= 5
    zs = [draw({"choice": [-90, 90], "jitter": 1}, rng) for _ in range(200)]
    assert all(abs(abs(z) - 90) < 6 for z in zs)


def test_draw_choice_of_ranges_and_profile_presets():
    # a choice whose values are ranges: |x| in [55, 90], both signs (the near-profile presets)
    rng = np.random.default_rng(1)
    xs = np.array([draw({"choice": [[-90.0, -55.0], [55.0, 90.0]]}, rng) for _ in range(400)])
    assert np.all((np.abs(xs) >= 55) & (np.abs(xs) <= 90))
    assert 0.35 < np.mean(xs > 0) < 0.65
    for name in ("biwi-faces-profile", "truedepth-faces-profile"):
        p = load_preset(name)
        assert p.scene["face_only"] == 1.0
        ys = [draw(p.get("yaw_deg"), rng) for _ in range(50)]
        assert all(55 <= abs(y) <= 90 for y in ys)
