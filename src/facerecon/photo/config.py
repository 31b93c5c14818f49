"""``configs/photo_fit.toml``: the photo path's settings (camera default, landmark targets, fit, texture) as typed data.

The packaged file is the only place a value is written; typed frozen dataclasses are built from it
(:mod:`facerecon.settings`).  A user's TOML file and ``overrides`` (``{"fit": {"iterations": 10}}``)
replace single values; an unknown table or key is a ``ConfigError`` naming the nearest valid one.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from ..errors import ConfigError
from ..settings import from_toml, packaged_toml, toml_defaults, with_overrides

ROBUST_LOSSES = ("geman_mcclure", "huber", "l2")
CONTOUR_RULES = ("band", "occluding")
DEPTH_STAGES = ("joint", "pose")


@toml_defaults("configs/photo_fit.toml", "fit")
class PhotoFitConfig:
    """The ``[fit]`` table of ``configs/photo_fit.toml`` (see the comments there)."""

    n_identity: int
    n_expression: int
    rigid_iterations: int
    iterations: int
    tolerance: float
    identity_prior: float
    expression_prior: float
    expression_l1: float
    robust: str
    robust_scale: float
    contour_weight: float
    contour_band_mm: float
    contour_front_mm: float
    contour_back_mm: float
    contour_rule: str
    contour_radius_mm: float
    contour_grazing: float
    contour_reach: float
    damping: float
    contour_updates: int
    hidden_weight: float
    hidden_facing: float
    joint_identity_prior: str
    depth_weight: float
    depth_scale: float
    depth_free_tilt: bool
    depth_weight_rgbd: float
    depth_stage: str
    depth_turn_deg: tuple[float, float]
    depth_turn_only: bool
    depth_stage_rgbd: str

    def __post_init__(self) -> None:
        if self.depth_weight < 0 or self.depth_weight_rgbd < 0 or self.depth_scale <= 0:
            raise ConfigError("fit.depth_weight and fit.depth_weight_rgbd must be >= 0, fit.depth_scale > 0")
        if self.depth_stage not in DEPTH_STAGES or self.depth_stage_rgbd not in DEPTH_STAGES:
            raise ConfigError(f"fit.depth_stage / depth_stage_rgbd: unknown {self.depth_stage!r} / {self.depth_stage_rgbd!r}; "
                              f"choose from {', '.join(DEPTH_STAGES)}")
        if len(self.depth_turn_deg) != 2 or not 0 <= self.depth_turn_deg[0] <= self.depth_turn_deg[1]:
            raise ConfigError("fit.depth_turn_deg needs two angles [no depth rows up to, full weight from], increasing")
        if self.joint_identity_prior not in ("once", "per_photo"):
            raise ConfigError(f"fit.joint_identity_prior: unknown {self.joint_identity_prior!r}; choose from once, per_photo")
        if self.contour_rule not in CONTOUR_RULES:
            raise ConfigError(f"fit.contour_rule: unknown {self.contour_rule!r}; choose from {', '.join(CONTOUR_RULES)}")
        if self.robust not in ROBUST_LOSSES:
            raise ConfigError(f"fit.robust: unknown {self.robust!r}; choose from {', '.join(ROBUST_LOSSES)}")
        if not 0 <= self.n_identity <= 100 or not 0 <= self.n_expression <= 53:
            raise ConfigError("fit.n_identity must be in [0, 100] and fit.n_expression in [0, 53]")

    def for_rgbd(self) -> PhotoFitConfig:
        """The settings of the colour fit that starts ``--method rgbd`` (its depth rows: ``depth_*_rgbd``)."""
        return replace(self, depth_weight=self.depth_weight_rgbd, depth_stage=self.depth_stage_rgbd)

    @classmethod
    def load(cls, path=None, **overrides) -> "PhotoFitConfig":
        """The packaged settings (or a TOML file's), with single keys overridden."""
        return load_photo_config(path, {"fit": overrides} if overrides else None).fit


@toml_defaults("configs/photo_fit.toml", "texture")
class TextureConfig:
    """The ``[texture]`` table of ``configs/photo_fit.toml``."""

    size: int
    min_facing: float
    depth_tolerance_mm: float
    mirror_fill: bool
    mirror_below: float

    @classmethod
    def load(cls, path=None, **overrides) -> "TextureConfig":
        return load_photo_config(path, {"texture": overrides} if overrides else None).texture


@dataclass(frozen=True)
class CameraSettings:
    default_fov_deg: float


@dataclass(frozen=True)
class TargetSettings:
    use: str
    ibug68_weight: float


@dataclass(frozen=True)
class IrisSettings:
    """The ``[iris]`` table: the iris as a size cue (see the comments there)."""

    enabled: bool
    iris_mm: float
    iris_sd_mm: float
    model_sd: float
    max_yaw_deg: float
    min_iris_px: float

    def __post_init__(self) -> None:
        if not (self.iris_mm > 0 and self.iris_sd_mm >= 0 and self.model_sd >= 0 and self.min_iris_px >= 0
                and 0 <= self.max_yaw_deg <= 90):
            raise ConfigError("iris: iris_mm must be > 0, iris_sd_mm, model_sd and min_iris_px >= 0, max_yaw_deg in [0, 90]")
        if self.iris_sd_mm == 0 and self.model_sd == 0:
            raise ConfigError("iris: iris_sd_mm and model_sd cannot both be 0 (a measurement without error)")

    @property
    def sd_rel(self) -> float:
        """Relative sd of the distance it gives: the population's and the model's, independent."""
        return float((self.iris_sd_mm / self.iris_mm) ** 2 + self.model_sd ** 2) ** 0.5


@dataclass(frozen=True)
class PhotoConfig:
    """All of ``configs/photo_fit.toml``."""

    camera: CameraSettings
    targets: TargetSettings
    fit: PhotoFitConfig
    iris: IrisSettings
    texture: TextureConfig


@lru_cache(maxsize=1)
def _packaged() -> PhotoConfig:
    return from_toml(PhotoConfig, packaged_toml("configs/photo_fit.toml"), None, "configs/photo_fit.toml")


def load_photo_config(path: str | Path | None = None, overrides: dict | None = None) -> PhotoConfig:
    """The photo settings: the packaged file, updated by ``path`` (a TOML file) and ``overrides``."""
    cfg = _packaged()
    if path is not None:
        try:
            extra = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read photo settings ({exc})") from None
        cfg = with_overrides(cfg, extra, str(path))
    return with_overrides(cfg, overrides, "photo settings") if overrides else cfg

