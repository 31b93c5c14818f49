"""Networks (torch): encoder F, DAPoseNet, their configurations and losses; the decode of their outputs (NumPy).

Configurations are rows of ``facerecon/configs/nets.toml`` (``paper``, ``fast``).  The names
below load on first use: :mod:`.configs` and :mod:`.decode` need no torch, and the inference
runtime (``pipeline.runtime``) imports only those two, so ``reconstruct`` / ``pose`` / ``track``
run without torch.
"""
from __future__ import annotations

from importlib import import_module

_WHERE = {
    "NetConfig": "configs", "load_net_configs": "configs", "net_config": "configs", "net_config_names": "configs",
    "Encoder": "encoder", "conv_macs": "encoder", "count_parameters": "encoder",
    "landmark_chamfer_loss": "losses", "pose_loss": "losses",
    "DAPoseNet": "pose", "PoseNetOutput": "pose", "canonicalize_quaternion": "pose", "fold_batchnorm": "pose",
    "normalize_quaternion": "pose", "pose_to_target": "pose", "quaternion_to_matrix": "pose",
    "mirror_position_images": "decode", "output_to_pose": "decode",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_WHERE[name]}", __name__), name)
