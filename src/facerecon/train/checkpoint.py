"""Checkpoints and shipped weights as safetensors (never pickle).

A checkpoint holds model weights, optimiser state (flattened into tensors) and a JSON
record of the training position (epoch, step, RNG seeds, config) in the safetensors
metadata, so a run can resume exactly where it stopped.  Shipped weights are the same
format without the optimiser.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..errors import InputFileError
from ..fileutil import atomic_path
from ..nets.records import CHECKPOINT_PREFIX, is_checkpoint_keys, read_header

_MODEL = CHECKPOINT_PREFIX
_OPT = "opt."


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{_OPT}{pid}.{k}"] = v.detach().contiguous().clone()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], record: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        pid, name = key[len(_OPT):].split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    for pid, sc in record.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(sc)
    return {"state": state, "param_groups": record["param_groups"]}


def save_checkpoint(
    path: str | Path,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    meta: dict[str, Any] | None = None,
) -> None:
    """Write modules (+ optimisers) and a JSON ``meta`` record atomically."""
    tensors: dict[str, torch.Tensor] = {}
    record: dict[str, Any] = {"meta": meta or {}, "optimizers": {}}
    for name, mod in modules.items():
        for k, v in mod.state_dict().items():
            tensors[f"{_MODEL}{name}.{k}"] = v.detach().contiguous().clone()
    for name, opt in (optimizers or {}).items():
        t, rec = _flatten_optimizer(opt)
        tensors.update({f"{_OPT}{name}.{k[len(_OPT):]}": v for k, v in t.items()})
        record["optimizers"][name] = rec
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"facerecon": json.dumps(record)})


def read_record(path: str | Path, tensors: bool = False) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The ``facerecon`` JSON record of a safetensors file (checkpoint or shipped weights), and its tensors if asked."""
    if not tensors:
        return read_header(path)[0], {}
    try:
        with safe_open(str(path), framework="pt") as f:
            record = json.loads((f.metadata() or {}).get("facerecon", "{}"))
            data = {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise InputFileError(path, f"not a facerecon safetensors file ({exc})") from None
    return record, data


def read_meta(path: str | Path) -> dict[str, Any]:
    return read_record(path)[0].get("meta", {})


def is_checkpoint(path: str | Path) -> bool:
    """Training checkpoints keep their tensors under ``model.<module>.``; shipped weights do not."""
    return is_checkpoint_keys(read_header(path)[1])


def load_weights(module: torch.nn.Module, path: str | Path) -> dict:
    """Load exported (float16/float32) weights into ``module``; returns the metadata record."""
    meta, sd = read_record(path, tensors=True)
    ref = module.state_dict()
    sd = {k: v.to(ref[k].dtype) if k in ref else v for k, v in sd.items()}
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise InputFileError(path, f"weights do not fit the network: {str(exc).splitlines()[0]}") from None
    module.eval()
    return meta


def load_trained(path: str | Path, checkpoint_modules: dict[str, torch.nn.Module], exported: torch.nn.Module) -> dict:
    """Start networks from a training checkpoint (its ``checkpoint_modules``) or from exported
    weights (into ``exported``, left in train mode); returns the file's metadata record."""
    if is_checkpoint(path):
        return load_checkpoint(path, checkpoint_modules)
    meta = load_weights(exported, path)
    exported.train()
    return meta


def load_checkpoint(
    path: str | Path,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    strict: bool = True,
) -> dict[str, Any]:
    """Load into ``modules`` (+ ``optimizers``); returns the ``meta`` record."""
    record, tensors = read_record(path, tensors=True)
    for name, mod in modules.items():
        prefix = f"{_MODEL}{name}."
        sd = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            mod.load_state_dict(sd, strict=strict)
        except RuntimeError as exc:
            raise InputFileError(path, f"weights do not fit module {name!r}: {str(exc).splitlines()[0]}") from None
    for name, opt in (optimizers or {}).items():
        rec = record.get("optimizers", {}).get(name)
        if rec is None:
            continue
        prefix = f"{_OPT}{name}."
        t = {_OPT + k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        opt.load_state_dict(_unflatten_optimizer(t, rec))
    return record.get("meta", {})
