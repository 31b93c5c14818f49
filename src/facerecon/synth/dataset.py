"""Sharded synthetic datasets: generation (resumable, multi-process), manifest, torch datasets.

Layout of a dataset directory::

    manifest.json          counts, preset/sensor names and full configs, seed, shards + sha256
    shard-000000.fsyn ...  ``shard_size`` samples each (see :mod:`facerecon.synth.shards`)

Sample ``i`` is generated from ``(seed, i)`` alone, so the bytes do not depend on the
number of workers or on interruptions: every shard is written atomically (an interrupt
loses at most the shards in progress) and re-running the same command skips finished
shards.

Both torch datasets yield the same raw sample dict (an :class:`SynthIterableDataset`
sample equals what :class:`SynthShardDataset` reads back for the same seed and index)::

    {"depth_mm": (H, W) float32, 0 = missing (quantised to the storage unit),
     "intrinsics": Intrinsics, "labels": dict (see facerecon.synth.labels), "segment": (H, W) uint8}

and apply an optional ``transform(sample)`` hook (e.g. the position-image conversion of
``facerecon.preprocess``, or :class:`DerivedLabels` which adds the mesh / face offsets).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ConfigError, InputFileError
from ..facemodel.model import FaceModel
from ..fileutil import write_text_atomic
from .generator import SynthGenerator
from .presets import Preset, load_preset
from .sensors import SensorModel, load_sensor
from .shards import ARRAY_SCHEMA, decode_arrays, encode_sample, jsonable, quantize_depth, read_shard_header, write_shard

MANIFEST = "manifest.json"
DATASET_FORMAT = "facerecon-synth"
DEFAULT_SHARD_SIZE = 256
NOTES = ("Large labels are not stored: rebuild the ground-truth mesh and the face offsets from the stored identity/"
         "expression weights and pose with FaceModel (facerecon.synth.labels.gt_vertices / gt_face_offsets, or the "
         "DerivedLabels transform).  Depth is uint16 in depth_unit_mm steps, 0 = no measurement.")  # fmt: skip


def shard_name(k: int) -> str:
    return f"shard-{k:06d}.fsyn"


def plan_shards(n: int, shard_size: int) -> list[tuple[int, int, int]]:
    """[(shard, start index, count)] covering samples 0..n-1."""
    return [(k, s, min(shard_size, n - s)) for k, s in enumerate(range(0, n, shard_size))]


def storage_unit_mm(sensor: SensorModel) -> float:
    """Depth storage step of a sensor (``storage_unit_mm`` in sensors.toml, default 0.25 mm)."""
    return float(sensor.table.get("storage_unit_mm", 0.25))


def raw_sample(sample, unit_mm: float) -> dict:
    """The raw sample dict of a generated :class:`~facerecon.synth.generator.SynthSample`, as stored."""
    meta, blobs = encode_sample(sample.depth_mm, sample.segment, sample.labels, unit_mm)
    labels = json.loads(json.dumps(meta))
    labels.update(decode_arrays(blobs["arrays"], len(sample.labels["identity"]), len(sample.labels["expression"])))
    assert all(n in labels for n, _, _ in ARRAY_SCHEMA)
    depth = quantize_depth(sample.depth_mm, unit_mm).astype(np.float32) * np.float32(unit_mm)
    return {"depth_mm": depth, "intrinsics": sample.intrinsics, "labels": labels, "segment": sample.segment}


def _model_info(model) -> dict:
    return {"model": model.meta.get("model", "ICT-FaceKit"), "n_vertices": model.n_vertices, "n_identity": model.n_identity,
            "n_expression": model.n_expression,
            "neutral_sha256": hashlib.sha256(np.ascontiguousarray(model.neutral).tobytes()).hexdigest()[:16]}  # fmt: skip


def make_manifest(preset: Preset, sensor: SensorModel, seed: int, n: int, shard_size: int, model) -> dict:
    return jsonable({
        "format": DATASET_FORMAT, "version": 1, "preset": preset.name, "sensor": sensor.name, "seed": int(seed),
        "n": int(n), "shard_size": int(shard_size), "depth_unit_mm": storage_unit_mm(sensor),
        "preset_config": preset.to_dict(), "sensor_config": sensor.to_dict(), "face_model": _model_info(model),
        "streams": "sample i: scene from SeedSequence([seed, i, 0]), sensor from SeedSequence([seed, i, 1])",
        "notes": NOTES, "complete": False,
        "shards": [{"file": shard_name(k), "start": s, "count": c} for k, s, c in plan_shards(n, shard_size)],
    })  # fmt: skip


def load_manifest(root: str | Path) -> dict:
    p = Path(root) / MANIFEST
    try:
        m = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(p, "no manifest.json: not a synthetic dataset directory (run `facerecon synth` first)") from None
    except (OSError, ValueError) as exc:
        raise InputFileError(p, f"cannot read manifest: {exc}") from None
    if m.get("format") != DATASET_FORMAT:
        raise InputFileError(p, f"not a {DATASET_FORMAT} manifest")
    return m


def _same_dataset(a: dict, b: dict) -> bool:
    keys = ("preset", "sensor", "seed", "shard_size", "depth_unit_mm", "preset_config", "sensor_config", "face_model")
    return all(a.get(k) == b.get(k) for k in keys)


def _shard_ok(path: Path, start: int, count: int) -> bool:
    try:
        h, _ = read_shard_header(path)
    except InputFileError:
        return False
    return h.get("start") == start and h.get("count") == count


# -- workers --------------------------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(preset_name, sensor_name, seed, queue, preset_file=None, sensor_file=None, model=None) -> None:

    p, s = load_preset(preset_name, preset_file), load_sensor(sensor_name, sensor_file)
    _WORKER["gen"] = SynthGenerator(p, s, seed, model=model)
    _WORKER["queue"] = queue


def _make_shard(task: tuple[str, int, int, int]) -> tuple[int, int]:
    out_dir, shard, start, count = task
    gen, queue = _WORKER["gen"], _WORKER.get("queue")
    unit = storage_unit_mm(gen.sensor)
    samples, pending = [], 0
    for i in range(start, start + count):
        s = gen.generate(i)
        meta, blobs = encode_sample(s.depth_mm, s.segment, s.labels, unit)
        samples.append((i, meta, blobs))
        pending += 1
        if queue is not None and pending >= 8:
            queue.put(pending)
            pending = 0
    size = write_shard(Path(out_dir) / shard_name(shard), shard, start, samples, {"preset": gen.preset.name,
                                                                              "sensor": gen.sensor.name, "seed": gen.seed})  # fmt: skip
    if queue is not None and pending:
        queue.put(pending)
    return shard, size


def generate_dataset(
    out_dir: str | Path,
    preset: str = "biwi",
    sensor: str | None = None,
    n: int = 1000,
    seed: int = 0,
    workers: int = 1,
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: Callable[[int, int], None] | None = None,
    preset_file: str | None = None,
    sensor_file: str | None = None,
) -> dict:
    """Generate (or resume) a dataset; returns the final manifest.

    ``progress(done, total)`` is called as samples finish (including skipped shards).
    """

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    p = load_preset(preset, preset_file)
    s = load_sensor(sensor or p.get("sensor", "ideal"), sensor_file)
    if n < 1 or shard_size < 1:
        raise ConfigError("--n and --shard-size must be positive")
    model = FaceModel.load()
    manifest = make_manifest(p, s, seed, n, shard_size, model)
    if (out / MANIFEST).exists():
        old = load_manifest(out)
        if not _same_dataset(old, manifest):
            raise ConfigError(f"{out} holds a different synthetic dataset (preset/sensor/seed/shard size/config); "
                              "use another directory")  # fmt: skip
    for stale in out.glob(".shard-*.part*"):  # temp files of shards interrupted mid-write
        stale.unlink(missing_ok=True)
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    todo = [(str(out), k, st, c) for k, st, c in plan_shards(n, shard_size) if not _shard_ok(out / shard_name(k), st, c)]
    done = n - sum(c for *_, c in todo)
    if progress:
        progress(done, n)
    if todo and workers <= 1:
        _init_worker(p.name, s.name, seed, None, preset_file, sensor_file, model)
        for task in todo:
            _make_shard(task)
            done += task[3]
            if progress:
                progress(done, n)
    elif todo:
        done = _run_pool(todo, p.name, s.name, seed, workers, preset_file, sensor_file, done, n, progress)
    manifest["complete"] = True
    for entry in manifest["shards"]:
        entry["sha256"] = hashlib.sha256((out / entry["file"]).read_bytes()).hexdigest()
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def _run_pool(todo, preset, sensor, seed, workers, preset_file, sensor_file, done, n, progress) -> int:
    import multiprocessing as mp
    import queue as queue_mod

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
    os.environ.update({k: "1" for k in saved})  # one thread per worker process
    try:
        pool = ctx.Pool(workers, initializer=_init_worker, initargs=(preset, sensor, seed, q, preset_file, sensor_file))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        result = pool.map_async(_make_shard, todo, chunksize=1)
        while not result.ready() or not q.empty():
            try:
                done += q.get(timeout=0.2)
                if progress:
                    progress(done, n)
            except queue_mod.Empty:
                pass
        result.get()
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    return done

