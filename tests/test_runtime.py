"""The torch-free runtime: the NumPy decode is the torch decode bit for bit, ONNX files are keyed
without torch, a missing one is said in one line, and reconstruct / pose / track never import torch."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facerecon.errors import AssetError
from facerecon.nets.decode import canonicalize_quaternions, decoded_quaternions, flip_average, mirrored_back, normalize_quaternions
from facerecon.nets.records import weights_file
from facerecon.pipeline import runtime
from facerecon.pipeline.runtime import onnx_path, weights_path

REPO = Path(__file__).resolve().parents[1]


def test_decode_is_the_torch_decode_bit_for_bit():
    """The decode the pipeline ran in torch until the runtime, written out here as it was, against
    nets.decode on 10^4 random float32 outputs: equal bit for bit."""
    torch = pytest.importorskip("torch")

    def t_normalize(q):
        return q / q.norm(dim=-1, keepdim=True).clamp_min(1e-8)

    def t_canonicalize(q):
        return q * torch.where(q[..., :1] < 0, -torch.ones_like(q[..., :1]), torch.ones_like(q[..., :1]))

    def t_flip(quat, trans):
        n = quat.shape[0] // 2
        q = t_normalize(quat)
        q1, q2 = q[:n], q[n:] * q.new_tensor((1.0, 1.0, -1.0, -1.0))
        q2 = torch.where((q1 * q2).sum(-1, keepdim=True) < 0, -q2, q2)
        return t_normalize(q1 + q2), 0.5 * (trans[:n] + trans[n:] * trans.new_tensor((-1.0, 1.0, 1.0)))

    rng = np.random.default_rng(0)
    q = (rng.normal(size=(10_000, 4)) * rng.uniform(0.5, 2.0, (10_000, 1))).astype(np.float32)
    t = rng.normal(size=(10_000, 3)).astype(np.float32)
    tq, tt = torch.from_numpy(q), torch.from_numpy(t)
    np.testing.assert_array_equal(normalize_quaternions(q), t_normalize(tq).numpy())
    qa, ta = flip_average(q, t)
    qb, tb = t_flip(tq, tt)
    np.testing.assert_array_equal(qa, qb.numpy())
    np.testing.assert_array_equal(ta, tb.numpy())
    np.testing.assert_array_equal(decoded_quaternions(qa), t_canonicalize(t_normalize(qb)).double().numpy())
    qm, tm = mirrored_back(q, t)
    np.testing.assert_array_equal(qm, (t_normalize(tq) * tq.new_tensor((1.0, 1.0, -1.0, -1.0))).numpy())
    np.testing.assert_array_equal(tm, (tt * tt.new_tensor((-1.0, 1.0, 1.0))).numpy())
    assert (canonicalize_quaternions(q)[:, 0] >= 0).all() and qa.dtype == np.float32


def test_onnx_file_is_keyed_by_the_weights_bytes_and_the_graph(tmp_path, monkeypatch):
    monkeypatch.setenv("FACERECON_HOME", str(tmp_path / "home"))
    shipped = weights_path("pose", "fast")
    wf = weights_file("pose", shipped, "fast")
    path = onnx_path(wf)
    assert path.parent == tmp_path / "home" / "onnx" and path.name.startswith("DAPoseNet-")
    copy = tmp_path / "copy.safetensors"
    shutil.copyfile(shipped, copy)
    assert onnx_path(weights_file("pose", copy)) == path  # the same bytes elsewhere: the same file
    data = bytearray(copy.read_bytes())
    data[-1] ^= 1  # one bit of the last tensor
    copy.write_bytes(bytes(data))
    assert onnx_path(weights_file("pose", copy)) != path
    # how the network runs (threads, flip, backend) is not part of the graph; its widths are
    from dataclasses import replace

    assert onnx_path(replace(wf, config=replace(wf.config, inference_threads=2, test_time_flip=False))) == path
    assert onnx_path(replace(wf, config=replace(wf.config, pose_hidden=128))) != path


def test_missing_onnx_without_torch_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("FACERECON_HOME", str(tmp_path))
    monkeypatch.setattr(runtime, "_torch_installed", lambda: False)
    with pytest.raises(AssetError) as err:
        runtime.load_network("pose", weights_path("pose", "fast"), backend="onnxruntime")
    text = err.value.one_line()
    assert "\n" not in text and "facerecon assets build" in text and "pose_fast.safetensors" in text
    # no ONNX file, whole or partial (the weights' remembered SHA-256, weights-sha256.json, may be there)
    assert not (tmp_path / "onnx").exists() or not any(p.name != "weights-sha256.json" for p in (tmp_path / "onnx").iterdir())


def _frames(tmp_path: Path) -> list[Path]:
    """Depth frames for the CLI: real TrueDepth frames from ../shared when present (their files
    carry the intrinsics), else synthetic Kinect frames written as .npz with their intrinsics."""
    shared = Path(os.environ.get("FACERECON_SHARED", REPO.parent / "shared"))
    real = shared / "data" / "real" / "truedepth-mannequin" / "DepthFrames"
    if real.is_dir():
        return sorted(real.glob("frame-*.ply"))[:4]
    from facerecon.synth.generator import SynthGenerator

    gen = SynthGenerator("facewarehouse", "kinect-v1", seed=7)
    out = []
    for i in range(4):
        s = gen.generate(i)
        k = s.intrinsics
        p = tmp_path / f"syn-{i}.npz"
        np.savez(p, depth=s.depth_mm, intrinsics=np.array([k.fx, k.fy, k.cx, k.cy]))
        out.append(p)
    return out


WRAPPER = """
import json, sys
from facerecon.cli import main
codes = []
for args in json.loads(sys.argv[1]):
    try:
        codes.append(main(args))
    except SystemExit as exc:
        codes.append(exc.code)
print(json.dumps({"codes": codes, "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))}))
"""


def test_reconstruct_pose_track_never_import_torch(tmp_path):
    """The CLI's depth commands on the runtime: one process runs reconstruct, pose and track
    (with their outputs) and then looks at sys.modules."""
    runtime.build_onnx_files("fast")  # what `facerecon assets build` left (built here, with torch, when missing)
    frames = _frames(tmp_path)
    seq = tmp_path / "seq"
    seq.mkdir()
    for f in frames:
        shutil.copyfile(f, seq / f.name)
    runs = [["reconstruct", str(frames[0]), "-o", str(tmp_path / "rec")],
            ["pose", str(frames[0]), "-o", str(tmp_path / "pose")],
            ["track", str(seq), "-o", str(tmp_path / "track")]]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("FACERECON_BACKEND", None)
    r = subprocess.run([sys.executable, "-c", WRAPPER, json.dumps(runs)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert all(c in (0, 3, 4, None) for c in got["codes"]), (got, r.stderr[-2000:])  # ran through (a frame may be no face)
    assert got["torch"] == [], f"torch was imported: {got['torch'][:5]}"
    assert "building the ONNX file" not in r.stderr
    assert list((tmp_path / "rec").rglob("pose.json")) and list((tmp_path / "pose").glob("*.pose.json"))
    assert (tmp_path / "track" / "track.json").exists()


def _tree(root: Path) -> dict:
    """Every file under ``root`` by relative path: bytes, pose.json without its timings."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.name == "pose.json":
                doc = json.loads(data)
                doc.get("debug", {}).pop("timings_ms", None)
                doc.pop("timings_ms", None)
                doc.get("depth", {}).get("detail_map", {}).pop("ms", None)  # the detail maps' times (made on the writer)
                data = json.dumps(doc, sort_keys=True).encode()
            out[str(p.relative_to(root))] = data
    return out


def test_pipelined_batch_writes_what_the_serial_one_does(tmp_path, monkeypatch, capsys):
    """reconstruct DIR with the reader and writer threads against the same command one frame after
    the other: the same files (bytes; pose.json but for its timings), lines in the same order, the
    same exit code, an unreadable frame among them."""
    import re

    import facerecon.cli._frames as frames_mod
    from facerecon.cli import main

    folder = tmp_path / "in"
    folder.mkdir()
    for f in _frames(tmp_path)[:3]:
        shutil.copyfile(f, folder / f.name)
    (folder / "broken.npy").write_bytes(b"not an array")
    runs = {}
    for mode in ("serial", "pipelined"):
        if mode == "serial":
            monkeypatch.setattr(frames_mod, "PIPELINE_AHEAD", 0)
            monkeypatch.setattr(frames_mod, "PIPELINE_WRITERS", 0)
        else:
            monkeypatch.undo()
            assert frames_mod.PIPELINE_AHEAD > 0 and frames_mod.PIPELINE_WRITERS > 0
        out = tmp_path / f"out-{mode}"
        code = main(["reconstruct", str(folder), "-o", str(out), "--format", "obj", "--no-overlay"])
        lines = [re.sub(r"[\d.]+ ms", "ms", ln).replace(str(out), "OUT") for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        runs[mode] = (code, lines, _tree(out))
    (c1, l1, t1), (c2, l2, t2) = runs["serial"], runs["pipelined"]
    assert c1 == c2 and c1 != 0  # the broken frame: a partial batch
    assert l1 == l2 and any("broken.npy" in ln for ln in l1)
    assert t1.keys() == t2.keys() and len(t1) >= 3
    assert all(t1[k] == t2[k] for k in t1), [k for k in t1 if t1[k] != t2[k]]


def test_read_ahead_keeps_order_and_raises_where_the_error_was():
    from facerecon.cli._frames import read_ahead

    assert list(read_ahead(iter(range(50)), 3)) == list(range(50))

    def failing():
        yield 1
        yield 2
        raise ValueError("third")

    got = []
    with pytest.raises(ValueError, match="third"):
        for x in read_ahead(failing(), 2):
            got.append(x)
    assert got == [1, 2]
    it = read_ahead(iter(range(10**6)), 2)  # leaving early stops the reader
    assert next(it) == 0
    it.close()


def test_a_failed_onnx_build_falls_back_to_torch_with_a_warning(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from facerecon.pipeline import weights

    monkeypatch.setenv("FACERECON_HOME", str(tmp_path))

    def broken(wf, path):
        raise RuntimeError("exporter unavailable")

    monkeypatch.setattr(weights, "build_onnx", broken)
    with pytest.warns(UserWarning, match="using torch"):
        net = runtime.load_network("pose", weights_path("pose", "fast"), backend="onnxruntime")
    assert net.backend == "torch"
    quat, trans = net(np.zeros((1, 3, 160, 160), np.float32))
    assert quat.shape == (1, 4) and trans.shape == (1, 3)
