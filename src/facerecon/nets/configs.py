"""Network configurations: a TOML table (``facerecon/configs/nets.toml``), not code branches.

``net_config("paper")`` / ``net_config("fast")`` return a :class:`NetConfig`; a dict or a
path to another TOML file works too (``load_net_configs(path)``).
"""
from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..errors import ConfigError

N_ENCODER_WIDTHS = 10


@dataclass(frozen=True)
class NetConfig:
    """One row of ``nets.toml`` (see the comments there)."""

    name: str
    encoder_widths: tuple[int, ...]
    feature_dim: int = 512
    input_size: int = 160
    pose_hidden: int = 256
    leaky_slope: float = 0.2
    inference_threads: int = 1
    test_time_flip: bool = False
    inference_backend: str = "torch"  # torch | onnxruntime | auto (facerecon.pipeline.runtime.load_network)
    precision: str = "fp32"  # fp32 | int8: the onnxruntime backend's ONNX file (facerecon.pipeline.quantise)
    source: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if len(self.encoder_widths) != N_ENCODER_WIDTHS:
            raise ConfigError(
                f"net config {self.name!r}: encoder_widths needs {N_ENCODER_WIDTHS} entries, got {len(self.encoder_widths)}"
            )
        if any(int(w) <= 0 for w in self.encoder_widths) or self.feature_dim <= 0 or self.pose_hidden <= 0:
            raise ConfigError(f"net config {self.name!r}: widths must be positive")
        if self.inference_threads < 1:
            raise ConfigError(f"net config {self.name!r}: inference_threads must be at least 1")
        if self.inference_backend not in ("torch", "onnxruntime", "auto"):
            raise ConfigError(f"net config {self.name!r}: inference_backend must be torch, onnxruntime or auto, "
                              f"got {self.inference_backend!r}")
        if self.precision not in ("fp32", "int8"):
            raise ConfigError(f"net config {self.name!r}: precision must be fp32 or int8, got {self.precision!r}")
        if self.input_size % 32 or self.input_size < 32:
            raise ConfigError(f"net config {self.name!r}: input_size must be a multiple of 32, got {self.input_size}")

    @property
    def final_kernel(self) -> int:
        """Kernel of the last encoder conv: the map left after 5 stride-2 convs."""
        return self.input_size // 32

    def to_dict(self) -> dict:
        d = asdict(self)
        d["encoder_widths"] = list(self.encoder_widths)
        d.pop("extra")
        d.update(self.extra)
        return d

    @staticmethod
    def from_dict(name: str, row: dict) -> "NetConfig":
        known = {"encoder_widths", "feature_dim", "input_size", "pose_hidden", "leaky_slope", "inference_threads", "test_time_flip",
                 "inference_backend", "precision", "source"}
        try:
            return NetConfig(
                name=name,
                encoder_widths=tuple(int(w) for w in row["encoder_widths"]),
                feature_dim=int(row.get("feature_dim", 512)),
                input_size=int(row.get("input_size", 160)),
                pose_hidden=int(row.get("pose_hidden", 256)),
                leaky_slope=float(row.get("leaky_slope", 0.2)),
                inference_threads=int(row.get("inference_threads", 1)),
                test_time_flip=bool(row.get("test_time_flip", False)),
                inference_backend=str(row.get("inference_backend", "torch")),
                precision=str(row.get("precision", "fp32")),
                source=str(row.get("source", "")),
                extra={k: v for k, v in row.items() if k not in known},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"net config {name!r}: malformed ({exc})") from None


def load_net_configs(path: str | Path | None = None) -> dict[str, NetConfig]:
    """All configurations in a TOML file (default: the packaged ``configs/nets.toml``)."""
    if path is None:
        return dict(_packaged())
    try:
        table = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read network configurations ({exc})") from None
    return {name: NetConfig.from_dict(name, row) for name, row in table.items()}


@lru_cache(maxsize=1)
def _packaged() -> dict[str, NetConfig]:
    text = resources.files("facerecon").joinpath("configs/nets.toml").read_text(encoding="utf-8")
    return {name: NetConfig.from_dict(name, row) for name, row in tomllib.loads(text).items()}


def net_config_names() -> list[str]:
    return sorted(_packaged())


def net_config(name_or_config: "str | NetConfig | dict") -> NetConfig:
    """A configuration by name (``paper``, ``fast``, ...), or pass one through."""
    if isinstance(name_or_config, NetConfig):
        return name_or_config
    if isinstance(name_or_config, dict):
        return NetConfig.from_dict(str(name_or_config.get("name", "custom")), name_or_config)
    table = _packaged()
    if name_or_config not in table:
        raise ConfigError(f"unknown network configuration {name_or_config!r}; known: {', '.join(sorted(table))}")
    return table[name_or_config]
