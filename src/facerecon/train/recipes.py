"""Recipes: build the data sets and run the trainings named in ``configs/train.toml``."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Callable

from .data import PositionSet, build_synthetic_set, unlabelled_set
from .pose import PoseTrainConfig, load_train_config
from .shape import ShapeTrainConfig

Progress = Callable[[str, int, int], None]


def _set_name(row: dict) -> str:
    return f"{row['preset']}-{row['sensor']}-s{row['seed']}-n{row['n']}"


def build_data(recipe: str, out_dir: str | Path, workers: int = 2, progress: Progress | None = None,
               parts: tuple[str, ...] = ("train", "validation", "test", "target")) -> dict[str, Path]:
    """Build (or reuse) every set of a data recipe under ``out_dir``; returns their paths."""
    cfg = load_train_config(recipe, "data")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for part in ("train", "validation", "test"):
        if part not in parts:
            continue
        built = []
        for row in cfg.get(part, []):
            path = out / f"{part}-{_set_name(row)}.safetensors"
            if not path.exists():
                jitter = float(cfg.get("center_jitter_mm", 0.0)) if part == "train" else 0.0
                cb = (lambda k, n, name=path.stem: progress(name, k, n)) if progress else None
                build_synthetic_set(row["preset"], row["sensor"], int(row["n"]), int(row["seed"]), workers, cb,
                                    center_jitter_mm=jitter).save(path)
            built.append(path)
            paths[f"{part}:{row['preset']}"] = path
        if part == "train" and built:
            merged = out / "train.safetensors"
            if not merged.exists():
                PositionSet.concat([PositionSet.load(p) for p in built]).save(merged)
            paths["train"] = merged
    if "target" in parts:
        path = out / "target.safetensors"
        if not path.exists():
            from ..realdata.target import real_domain_frames, strip_eval_labels

            # unlabelled: the evaluation-only poses some frames carry are removed before use
            frames = strip_eval_labels(real_domain_frames(int(cfg.get("real_renders", 0)), int(cfg.get("real_seed", 0))))
            unlabelled_set(frames, "real-domain").save(path)
        paths["target"] = path
    return paths


def _config(cls, recipe: str, section: str, overrides: dict | None = None):
    row = {**load_train_config(recipe, section), **(overrides or {})}
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in row.items() if k in known}, extra={k: v for k, v in row.items() if k not in known})


def pose_config(recipe: str, overrides: dict | None = None) -> PoseTrainConfig:
    return _config(PoseTrainConfig, recipe, "pose", overrides)


def shape_config(recipe: str, overrides: dict | None = None) -> ShapeTrainConfig:
    return _config(ShapeTrainConfig, recipe, "shape", overrides)
