"""Shards: deterministic bytes, resume, workers, torch datasets, derived labels."""
from __future__ import annotations

import json

import numpy as np
import pytest

from facerecon.errors import ConfigError
from facerecon.facemodel import FaceModel
from facerecon.synth.dataset import generate_dataset, load_manifest, shard_name
from facerecon.synth.shards import decode_map, encode_map


@pytest.fixture(scope="session")
def face_model(ict_archive):
    return FaceModel.load()


@pytest.fixture(scope="session")
def dataset(tmp_path_factory, ict_archive):
    root = tmp_path_factory.mktemp("synth") / "a"
    generate_dataset(root, "ict3dhp", "kinect-v1", n=10, seed=42, shard_size=4)
    return root


def _bytes(root):
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


def test_map_codec_is_lossless():
    rng = np.random.default_rng(0)
    for img in (rng.integers(0, 65535, (31, 47)).astype(np.uint16), rng.integers(0, 9, (20, 30)).astype(np.uint8),
                np.zeros((3, 4), np.uint16), np.full((5, 300), 1234, np.uint16)):  # fmt: skip
        assert np.array_equal(decode_map(encode_map(img)), img)


def test_same_seed_same_bytes_and_resume(dataset, tmp_path):
    m = load_manifest(dataset)
    assert m["complete"] and m["n"] == 10 and [e["count"] for e in m["shards"]] == [4, 4, 2]
    again = tmp_path / "b"
    generate_dataset(again, "ict3dhp", "kinect-v1", n=10, seed=42, shard_size=4, workers=2)
    assert _bytes(again) == _bytes(dataset)  # workers do not change a byte
    # interrupt: one shard lost, one half-written temp file left behind -> re-run resumes
    (again / shard_name(1)).unlink()
    (again / ".shard-000002.x.part.fsyn").write_bytes(b"partial")
    generate_dataset(again, "ict3dhp", "kinect-v1", n=10, seed=42, shard_size=4)
    assert _bytes(again) == _bytes(dataset)
    other = tmp_path / "c"
    generate_dataset(other, "ict3dhp", "kinect-v1", n=4, seed=43, shard_size=4)
    assert (other / shard_name(0)).read_bytes() != (dataset / shard_name(0)).read_bytes()
    with pytest.raises(ConfigError):
        generate_dataset(again, "biwi", "kinect-v1", n=10, seed=42, shard_size=4)


def test_torch_datasets_agree(dataset, face_model):
    import torch

    from facerecon.synth.torch_data import DerivedLabels, SynthIterableDataset, SynthShardDataset
    from facerecon.synth.torch_data import collate_raw

    ds = SynthShardDataset(dataset)
    assert len(ds) == 10
    s = ds[5]
    assert s["depth_mm"].shape == (480, 640) and s["depth_mm"].dtype == np.float32
    assert s["labels"]["index"] == 5 and s["labels"]["preset"] == "ict3dhp"
    it = list(SynthIterableDataset("ict3dhp", "kinect-v1", seed=42, start=5, n=1))
    assert np.array_equal(it[0]["depth_mm"], s["depth_mm"])
    for k in ("quaternion", "translation_mm", "identity", "landmarks_2d", "landmarks_visible"):
        assert np.array_equal(it[0]["labels"][k], s["labels"][k])
    loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate_raw)
    assert [len(b) for b in loader] == [3, 3, 3, 1]
    d = DerivedLabels(face_model)(s)
    assert d["labels"]["vertices_cam"].shape == (face_model.n_vertices, 3)
    assert np.abs(face_model.landmarks(d["labels"]["vertices_cam"]) - s["labels"]["landmarks_3d"]).max() < 0.01
    assert d["labels"]["face_offsets"].shape == (len(face_model.region_vertices("face")), 3)
    m = json.loads((dataset / "manifest.json").read_text())
    assert m["sensor_config"]["name"] == "kinect-v1" and m["depth_unit_mm"] == 1.0
