"""SynData: fast, realistic synthetic depth frames of faces with exact labels (CPU only).

Pipeline per frame (``SynthGenerator.generate(index)``): draw parameters from a named
preset (:mod:`.sampling`, presets in ``configs/synth_presets.toml``) -> build a scene: ICT
head + neck/torso, hair, occluders, room (:mod:`.scene`, :mod:`.meshes`) -> exact z-buffer
render (:mod:`.render`, numba) -> sensor model (:mod:`.sensors`, ``configs/sensors.toml``)
-> labels (:mod:`.labels`).  Datasets: :mod:`.dataset` (sharded, deterministic, resumable,
multi-process), :mod:`.torch_data` (torch datasets), :mod:`.preview` (contact sheets).

Public names are imported lazily (``from facerecon.synth import SynthGenerator``).
"""
from __future__ import annotations

_EXPORTS = {
    "SynthGenerator": "generator", "SynthSample": "generator", "render_scene": "generator",
    "render_mesh": "render", "splat_points": "render", "RenderOutput": "render",
    "load_preset": "presets", "load_sensor": "sensors", "preset_names": "presets", "sensor_names": "sensors",
    "named_expressions": "presets", "apply_sensor": "sensors", "STAGES": "sensors",
    "gt_vertices": "labels", "gt_face_offsets": "labels",
    "generate_dataset": "dataset", "load_manifest": "dataset",
    "SynthShardDataset": "torch_data", "SynthIterableDataset": "torch_data", "DerivedLabels": "torch_data",
    "FACE_SEGMENTS": "scene", "SEGMENT_NAMES": "scene",
}  # fmt: skip

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
