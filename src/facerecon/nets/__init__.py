"""Networks (torch): encoder F, DAPoseNet, their configurations and losses.

Configurations are rows of ``facerecon/configs/nets.toml`` (``paper``, ``fast``).
"""
from __future__ import annotations

from .configs import NetConfig, load_net_configs, net_config, net_config_names
from .encoder import Encoder, conv_macs, count_parameters
from .losses import landmark_chamfer_loss, pose_loss
from .pose import (
    DAPoseNet,
    PoseNetOutput,
    canonicalize_quaternion,
    fold_batchnorm,
    normalize_quaternion,
    output_to_pose,
    output_to_poses,
    pose_to_target,
    quaternion_to_matrix,
)

__all__ = [
    "NetConfig", "load_net_configs", "net_config", "net_config_names",
    "Encoder", "conv_macs", "count_parameters",
    "DAPoseNet", "PoseNetOutput", "fold_batchnorm", "output_to_pose", "output_to_poses", "pose_to_target",
    "quaternion_to_matrix", "normalize_quaternion", "canonicalize_quaternion",
    "pose_loss", "landmark_chamfer_loss",
]
