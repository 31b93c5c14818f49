"""Real-domain data: the james scan, the TrueDepth mannequin, and the unlabelled target set.

* :mod:`.scan` -- the menpo ``james`` face scan brought into the canonical head frame of
  the ICT model, and rendered at known poses through a sensor model;
* :mod:`.mannequin` -- the StandardCyborg TrueDepth mannequin's files and its head frame (ICT
  face registered to the fused ``Expected.ply`` cloud); :mod:`.mannequin_poses` -- reference
  head poses of its 30 real frames; :mod:`.mannequin_splat` -- splats of the cloud at any pose;
* :mod:`.target` -- ``real_domain_frames``: the *unlabelled* real-domain set used for
  domain adaptation, and ``james_eval_frames`` (held-out seeds) for evaluation.

Poses attached to frames here live under ``meta['pose_for_eval_only']``: they exist so
that evaluation can score predictions on real-domain data.  **Training code must never
read them** (the real domain is unlabelled by construction of the method).

The shared real files are not shipped with the package.  Every loader takes their path as
an argument; without one they come from ``$FACERECON_REAL_DATA`` (a folder holding
``scan-james/``, ``truedepth-mannequin/``, ``kinect-pcl/``), else
``$FACERECON_SHARED/data/real``.  Library code never searches the file system for them:
tests and benchmarks pass the location in (the test suite sets ``FACERECON_SHARED``).  Slow derived results (the mannequin
registration) are cached under ``$FACERECON_HOME/realdata``.
"""
from __future__ import annotations

import os
from importlib import import_module
from pathlib import Path
from typing import Any

from ..errors import AssetError

#: The key of ``DepthFrame.meta`` that holds a known ``HeadPose`` of a real-domain frame.
#: Evaluation only: training code must not read it.
EVAL_POSE_KEY = "pose_for_eval_only"


def real_data_root() -> Path:
    """The folder holding ``scan-james/``, ``truedepth-mannequin/`` and ``kinect-pcl/``."""
    env = os.environ.get("FACERECON_REAL_DATA")
    if env:
        return Path(env).expanduser()
    env = os.environ.get("FACERECON_SHARED")
    if env:
        return Path(env).expanduser() / "data" / "real"
    raise AssetError(
        "real data folder not given: pass its path, or set FACERECON_REAL_DATA to the folder holding scan-james/, "
        "truedepth-mannequin/ and kinect-pcl/ (or FACERECON_SHARED to the folder above data/real)"
    )


def real_data_path(*parts: str) -> Path:
    """A path inside :func:`real_data_root`, checked to exist."""
    p = real_data_root().joinpath(*parts)
    if not p.exists():
        raise AssetError(f"{p}: real data file not found (set FACERECON_REAL_DATA)")
    return p


def cache_dir() -> Path:
    """``$FACERECON_HOME/realdata`` (created on demand by writers)."""
    from ..facemodel.ict import facerecon_home

    return facerecon_home() / "realdata"


_LAZY = {
    "HeadScan": "scan", "load_james_scan": "scan", "render_scan": "scan", "ScanRender": "scan",
    "MannequinAlignment": "mannequin", "MannequinReference": "mannequin_poses", "align_mannequin": "mannequin",
    "mannequin_reference": "mannequin_poses", "splat_mannequin": "mannequin_splat", "load_mannequin_cloud": "mannequin",
    "real_domain_frames": "target", "james_eval_frames": "target", "real_frames": "target",
    "strip_eval_labels": "target", "pose_summary": "target", "plot_frames": "target",
}  # fmt: skip

__all__ = ["EVAL_POSE_KEY", "real_data_root", "real_data_path", "cache_dir", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
