"""Recipes: build the data sets and run the trainings named in ``configs/train.toml``."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Callable

from ..errors import ConfigError
from ..facemodel import FaceModel
from ..realdata.scan import load_james_scan
from ..settings import check_keys
from ..synth.deform import scan_displacement
from .data import PositionSet, build_synthetic_set, unlabelled_set
from .pose import PoseTrainConfig, load_train_config
from .shape import ShapeTrainConfig

Progress = Callable[[str, int, int], None]


#: Keys of a ``[data.NAME]`` recipe, and of each of its set rows.
DATA_KEYS = ("center_jitter_mm", "train", "validation", "test", "real_renders", "real_seed", "scans", "pcl_dir")
ROW_KEYS = ("preset", "sensor", "n", "seed")


def _set_name(row: dict, tag: str = "") -> str:
    return f"{row['preset']}-{row['sensor']}-s{row['seed']}-n{row['n']}{tag}"


def scan_identities(paths: list[str | Path]) -> dict:
    """Real head scans as extra synthetic identities: name -> (V, 3) ICT displacement.

    Each path is a menpo-style scan (``NAME.obj`` + ``NAME.ljson`` with the 68 landmarks,
    or its folder), brought into the ICT head frame by :func:`facerecon.realdata.scan.load_james_scan`
    and turned into a displacement of the ICT face by :func:`facerecon.synth.deform.scan_displacement`.
    """

    model = FaceModel.load()
    out = {}
    for p in paths:
        scan = load_james_scan(p, model=model)
        out[Path(scan.source).stem] = scan_displacement(model, scan.vertices, scan.faces, scan.landmarks_68)
    return out


def build_data(recipe: str, out_dir: str | Path, workers: int = 2, progress: Progress | None = None,
               parts: tuple[str, ...] = ("train", "validation", "test", "target"), *,
               scans: list[str | Path] = (), pcl_dir: str | Path | None = None,
               shard: tuple[int, int] | None = None) -> dict[str, Path]:  # fmt: skip
    """Build (or reuse) every set of a data recipe under ``out_dir``; returns their paths.

    ``scans``: real scans as extra identities of the synthetic training frames (presets with
    ``[shape] scan_identity``; also the recipe's ``scans``); ``pcl_dir``: a ``kinect-pcl``
    folder whose ``person.pcd`` and six face patches join the unlabelled target set (also
    the recipe's ``pcl_dir``).  Off by default: library code never looks for data itself.
    ``shard = (k, n)``: build only data shard k of n of the TRAINING set (samples
    ``[m k / n, m (k+1) / n)`` of every row: one DDP rank generates only its own frames) into
    ``train.shard-k-of-n.safetensors``; the other parts are built whole.
    """
    cfg = load_train_config(recipe, "data")
    check_keys(cfg, DATA_KEYS, f"recipe [data.{recipe}]: ")
    for part in ("train", "validation", "test"):
        for row in cfg.get(part, []):
            check_keys(row, ROW_KEYS, f"recipe [data.{recipe}] {part} row: ")
    scans = [*cfg.get("scans", []), *scans]
    pcl_dir = pcl_dir or cfg.get("pcl_dir") or None
    scan_disp = scan_identities(scans) if scans else None
    scan_tag = ("-scan-" + "-".join(sorted(scan_disp))) if scan_disp else ""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for part in ("train", "validation", "test"):
        if part not in parts:
            continue
        built = []
        for row in cfg.get(part, []):
            n, start, tag = int(row["n"]), 0, scan_tag if part == "train" else ""
            if shard is not None and part == "train":
                k, m = shard
                start, n = int(row["n"]) * k // m, int(row["n"]) * (k + 1) // m - int(row["n"]) * k // m
                tag += f".shard-{k}-of-{m}"
            path = out / f"{part}-{_set_name(row, tag)}.safetensors"
            if not path.exists():
                jitter = float(cfg.get("center_jitter_mm", 0.0)) if part == "train" else 0.0
                cb = (lambda i, total, name=path.stem: progress(name, i, total)) if progress else None
                build_synthetic_set(row["preset"], row["sensor"], n, int(row["seed"]), workers, cb, start=start,
                                    center_jitter_mm=jitter, scans=scan_disp if part == "train" else None).save(path)  # fmt: skip
            built.append(path)
            paths[f"{part}:{row['preset']}"] = path
        if part == "train" and built:
            merged = out / (shard_file("train", *shard) if shard is not None else "train.safetensors")
            if not merged.exists():
                PositionSet.concat([PositionSet.load(p) for p in built]).save(merged)
            paths["train"] = merged
    if "target" in parts:
        path = out / "target.safetensors"
        if not path.exists():
            from ..realdata.target import real_domain_frames, strip_eval_labels

            # unlabelled: the evaluation-only poses some frames carry are removed before use
            frames = strip_eval_labels(real_domain_frames(int(cfg.get("real_renders", 0)), int(cfg.get("real_seed", 0)),
                                                          pcl_dir=pcl_dir))  # fmt: skip
            unlabelled_set(frames, "real-domain").save(path)
        paths["target"] = path
    return paths


def parse_overrides(pairs: list[str]) -> dict:
    """``["lambda1=0.3", "init_from=runs/x.safetensors"]`` -> dict: TOML values, bare words as strings."""
    import tomllib


    out = {}
    for p in pairs:
        if "=" not in p:
            raise ConfigError(f"--set expects key=value, got {p!r}")
        k, v = p.split("=", 1)
        try:
            out.update(tomllib.loads(f"{k} = {v}"))
        except tomllib.TOMLDecodeError:  # a bare word or path: a string (init_from=runs/x.safetensors)
            out[k.strip()] = v
    return out


def load_sets(data: Path, need_target: bool, shard: tuple[int, int] | None = None):
    """(train, target or None, validation or None) position sets of a ``train data`` folder.

    ``shard = (k, n)``: only data shard k of n of the training and target sets (a DDP rank's
    part): the per-shard files of ``train data --shard k/n`` if they exist, else that shard read
    out of the full files.  Validation is always whole (rank 0 evaluates).
    """

    data = Path(data)
    train = data / "train.safetensors"
    target = data / "target.safetensors"
    if shard is not None:
        k, n = shard
        own = data / shard_file("train", k, n)
        if own.exists():
            train = own
    if not train.exists():
        raise ConfigError(f"{train}: missing; run 'facerecon train data' first")
    if need_target and not target.exists():
        raise ConfigError(f"{target}: missing real-domain set; run 'facerecon train data' first")
    val = sorted(data.glob("validation-*.safetensors"))
    validation = PositionSet.concat([PositionSet.load(v) for v in val]) if val else None
    if shard is None:
        return PositionSet.load(train), PositionSet.load(target) if target.exists() else None, validation
    k, n = shard
    src = PositionSet.load(train) if train.name == shard_file("train", k, n) else PositionSet.load_shard(train, k, n)
    tgt = PositionSet.load_shard(target, k, n) if target.exists() else None
    return {k: src}, ({k: tgt} if tgt is not None else None), validation


def shard_file(part: str, k: int, n: int) -> str:
    return f"{part}.shard-{k}-of-{n}.safetensors"


def _config(cls, recipe: str, section: str, overrides: dict | None = None):
    """The dataclass of a recipe row with ``overrides`` (``--set``) on top; unknown keys in either are errors."""
    known = [f.name for f in fields(cls)]
    row = load_train_config(recipe, section)
    check_keys(row, known, f"recipe [{section}.{recipe}]: ")
    check_keys(overrides or {}, known, "--set: ")
    return cls(**{**row, **(overrides or {})})


def pose_config(recipe: str, overrides: dict | None = None) -> PoseTrainConfig:
    return _config(PoseTrainConfig, recipe, "pose", overrides)


def shape_config(recipe: str, overrides: dict | None = None) -> ShapeTrainConfig:
    return _config(ShapeTrainConfig, recipe, "shape", overrides)
