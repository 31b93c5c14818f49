"""facerecon.settings: typed frozen dataclasses built from TOML tables (the packaged files are the defaults)."""
from __future__ import annotations

import dataclasses

import pytest

from facerecon.errors import ConfigError
from facerecon.settings import from_toml, packaged_toml, toml_defaults, with_overrides


@dataclasses.dataclass(frozen=True)
class Inner:
    size: int
    gate_mm: tuple[float, float]


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str
    weight: float
    enabled: bool
    inner: Inner


TABLE = {"name": "a", "weight": 1, "enabled": True, "inner": {"size": 3, "gate_mm": [25, 6.0]}}


def test_builds_nested_and_coerces():
    cfg = from_toml(Outer, TABLE)
    assert cfg == Outer("a", 1.0, True, Inner(3, (25.0, 6.0)))
    assert type(cfg.weight) is float and type(cfg.inner.gate_mm) is tuple and type(cfg.inner.gate_mm[0]) is float
    # strings as they come from --set section.key=value
    cfg = from_toml(Outer, TABLE, {"weight": "0.5", "enabled": "false", "inner": {"size": "7"}})
    assert (cfg.weight, cfg.enabled, cfg.inner.size, cfg.inner.gate_mm) == (0.5, False, 7, (25.0, 6.0))


@pytest.mark.parametrize("overrides, match", [
    ({"wieght": 2.0}, r"unknown setting 'wieght' \(did you mean 'weight'\?\)"),
    ({"inner": {"sise": 2}}, r"unknown setting 'inner.sise' \(did you mean 'inner.size'\?\)"),
])
def test_unknown_key_names_the_nearest(overrides, match):
    with pytest.raises(ConfigError, match=match):
        from_toml(Outer, TABLE, overrides, "test")
    with pytest.raises(ConfigError, match="did you mean 'weight'"):
        from_toml(Outer, {**TABLE, "wieght": 2.0}, None, "test")


def test_missing_key_is_an_error():
    with pytest.raises(ConfigError, match="missing setting.*enabled"):
        from_toml(Outer, {k: v for k, v in TABLE.items() if k != "enabled"}, None, "test")
    with pytest.raises(ConfigError, match=r"\[inner\]: missing setting.*gate_mm"):
        from_toml(Outer, {**TABLE, "inner": {"size": 3}}, None, "test")


@pytest.mark.parametrize("key, value", [("weight", "heavy"), ("enabled", 1), ("name", 3), ("inner", 4)])
def test_wrong_type_is_an_error(key, value):
    with pytest.raises(ConfigError, match="must be"):
        from_toml(Outer, {**TABLE, key: value}, None, "test")
    with pytest.raises(ConfigError, match="must be a tuple"):
        from_toml(Outer, TABLE, {"inner": {"gate_mm": [1.0, 2.0, 3.0]}})


def test_frozen_and_with_overrides():
    cfg = from_toml(Outer, TABLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.weight = 2.0
    new = with_overrides(cfg, {"inner": {"size": 9}})
    assert new.inner == Inner(9, (25.0, 6.0)) and cfg.inner.size == 3


def test_toml_defaults_from_the_packaged_file():
    @toml_defaults("configs/fit.toml", "fit")
    class Fit:
        n_identity: int
        n_expression: int
        rigid_iterations: int
        iterations: int
        n_model_points: int
        max_distance_mm: tuple[float, float]
        identity_prior: float
        expression_prior: float
        landmark_weight: float
        region: str
        seed: int
        sampling: str

    table = packaged_toml("configs/fit.toml")["fit"]
    assert Fit() == from_toml(Fit, table) and Fit(seed=5).seed == 5 and Fit().max_distance_mm == tuple(table["max_distance_mm"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        Fit().seed = 1

    with pytest.raises(ConfigError, match=r"configs/fit.toml \[baseline\]: unknown setting 'iterations'"):
        @toml_defaults("configs/fit.toml", "baseline")
        class Short:  # a key of the file that is no field
            rigid_iterations: int
            max_distance_mm: tuple[float, float]
    with pytest.raises(ConfigError, match="missing setting.*seed"):
        @toml_defaults("configs/fit.toml", "baseline")
        class Long:  # a field the file does not give
            rigid_iterations: int
            iterations: int
            max_distance_mm: tuple[float, float]
            seed: int
    with pytest.raises(ConfigError, match="written in configs/fit.toml, not in Python"):
        @toml_defaults("configs/fit.toml", "baseline")
        class Twice:
            rigid_iterations: int = 20
            iterations: int
            max_distance_mm: tuple[float, float]


def test_packaged_configurations_build():
    """Every configuration built from a packaged table (an import error otherwise) and its --set path."""
    from facerecon.fitting import FitConfig
    from facerecon.photo.detect import DetectConfig
    from facerecon.photo.landmarks import LandmarkConfig
    from facerecon.preprocess.localize import DEFAULT_PARAMS, LocalizeParams

    assert DEFAULT_PARAMS == LocalizeParams() and dataclasses.replace(DEFAULT_PARAMS, min_fill=0.6).min_fill == 0.6
    assert LocalizeParams(work_width=64).max_candidates == DEFAULT_PARAMS.max_candidates
    base = FitConfig.preset("baseline")
    assert (base.rigid_iterations, base.iterations, base.max_distance_mm) == (20, 12, (40.0, 6.0))
    assert dataclasses.replace(base, rigid_iterations=8, iterations=12, max_distance_mm=(25.0, 6.0)) == FitConfig()
    with pytest.raises(ConfigError, match="did you mean 'baseline'"):
        FitConfig.preset("baselin")
    assert DetectConfig().thresholds == (0.6, 0.7, 0.7) and LandmarkConfig().input_range == (0.0, 1.0)
    with pytest.raises(ConfigError, match="min_face_px >= 12"):
        DetectConfig(min_face_px=4)
