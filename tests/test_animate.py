"""Retargeting: Live Link Face CSV parser (good and malformed files), reconstruction sequences, animated GLB."""
from __future__ import annotations

import json
from pathlib import Path

import gltf_helpers
import numpy as np
import pytest
from gltf_helpers import read_accessor, synthetic_rec, validate

from facerecon.errors import InputFileError
from facerecon.export.animation import ARKIT_CURVES, read_arkit_csv, read_reconstruction_sequence, retarget

ict_model = gltf_helpers.ict_model  # the session-scoped face model fixture, shared by the glTF tests

DATA = Path(__file__).resolve().parent / "data"
CSV = DATA / "arkit_performance.csv"


def test_fixture_parses_at_60_fps():
    tr = read_arkit_csv(CSV)
    assert tr.n_frames == 40 and tr.fps == 60.0
    assert tr.names == list(ARKIT_CURVES)  # all 52 curves, Live Link Face order
    assert "HeadYaw" in tr.ignored and "BlendShapeCount" in tr.ignored
    # frames 40..79 at 60 fps with sub-frame fractions: 39 frame steps
    assert tr.times_s[0] == 0.0 and abs(tr.times_s[-1] - (39 + (0.341 + 0.013 * 39) % 1 - 0.341) / 60) < 1e-9
    assert (np.diff(tr.times_s) > 0).all()
    jaw = tr.weights[:, tr.names.index("JawOpen")]
    assert jaw.max() > 0.7 and jaw[0] < 0.01


def test_fps_override():
    tr = read_arkit_csv(CSV, fps=120.0)
    assert tr.fps == 120.0 and abs(tr.times_s[1] - read_arkit_csv(CSV).times_s[1] / 2) < 1e-9
    with pytest.raises(InputFileError, match="frame number 59 does not exist at 30 fps"):
        read_arkit_csv(CSV, fps=30.0)


def test_retarget_maps_52_to_ict_53():
    from facerecon.export.gltf import arkit_target_name

    ict = ["browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "cheekPuff_L", "cheekPuff_R", "eyeBlink_L", "eyeBlink_R",
           "jawOpen", "mouthSmile_L", "PupilDilate_L"]
    targets = [arkit_target_name(n) for n in ict]
    tr = read_arkit_csv(CSV)
    rt = retarget(tr, targets)
    assert rt.mapping["BrowInnerUp"] == ["browInnerUpLeft", "browInnerUpRight"]
    assert rt.mapping["CheekPuff"] == ["cheekPuffLeft", "cheekPuffRight"]
    assert rt.mapping["EyeBlinkLeft"] == ["eyeBlinkLeft"] and rt.mapping["JawOpen"] == ["jawOpen"]
    assert "TongueOut" in rt.unused and "pupilDilateLeft" in rt.undriven
    j = targets.index("browInnerUpRight")
    np.testing.assert_array_equal(rt.weights[:, j], tr.weights[:, tr.names.index("BrowInnerUp")])
    assert (rt.weights[:, targets.index("pupilDilateLeft")] == 0).all()
    # ICT-style names (our own reconstructions) match too
    assert retarget(tr, ict).mapping["EyeBlinkLeft"] == ["eyeBlink_L"]


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "take.csv"
    p.write_text(text)
    return p


HEAD = "Timecode,BlendShapeCount,EyeBlinkLeft,JawOpen\n"


@pytest.mark.parametrize("text, message", [
    ("", "empty CSV"),
    ("Frame,EyeBlinkLeft\n0,0.1\n", "no Timecode column"),
    ("Timecode,BlendShapeCount,Foo,Bar\n00:00:00:01.000,2,0.1,0.2\n", "no ARKit blendshape column"),
    (HEAD, "header only"),
    (HEAD + "00:00:00:01.000,2,0.1,abc\n", "row 2: JawOpen = 'abc' is not a number"),
    (HEAD + "yesterday,2,0.1,0.2\n", "row 2: timecode 'yesterday' is not HH:MM:SS:FF"),
    (HEAD + "00:00:00:01.000,2,0.1\n", "row 2: 3 fields, the header has 4"),
    (HEAD + "00:00:00:05.000,2,0.1,0.2\n00:00:00:01.000,2,0.1,0.2\n", "row 3: timecode goes backwards"),
    (HEAD + "00:00:00:01.000,2,0.1,nan\n", "not finite"),
])
def test_malformed_csv_one_line_errors(tmp_path, text, message):
    p = _write(tmp_path, text)
    with pytest.raises(InputFileError) as exc:
        read_arkit_csv(p)
    line = exc.value.one_line()
    assert message in line and str(p) in line and "\n" not in str(exc.value)


def test_missing_csv(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        read_arkit_csv(tmp_path / "nope.csv")


def test_reconstruction_sequence(tmp_path):
    for i, w in enumerate((0.0, 0.5, 1.0)):
        d = tmp_path / f"frame_{i + 1}"
        d.mkdir()
        (d / "pose.json").write_text(json.dumps({"expression": {"jawOpen": w, "eyeBlink_L": 1 - w}}))
    (tmp_path / "frame_10").mkdir()
    (tmp_path / "frame_10" / "pose.json").write_text(json.dumps({"expression": {"jawOpen": 0.25, "eyeBlink_L": 0.0}}))
    tr = read_reconstruction_sequence(tmp_path, fps=10)
    # natural order: frame_1, 2, 3, 10
    np.testing.assert_allclose(tr.weights[:, 0], [0.0, 0.5, 1.0, 0.25])
    np.testing.assert_allclose(tr.times_s, [0, 0.1, 0.2, 0.3])
    (tmp_path / "frame_11").mkdir()
    (tmp_path / "frame_11" / "pose.json").write_text(json.dumps({"translation_mm": [0, 0, 1]}))
    with pytest.raises(InputFileError, match="no 'expression' block"):
        read_reconstruction_sequence(tmp_path)


@pytest.fixture(scope="module", params=["arkit52", "ict"])
def face_glb(ict_model, tmp_path_factory, request):
    """A rigged GLB of a seeded random face at expression 0, on each rig."""
    from facerecon.export.gltf import write_glb

    path = tmp_path_factory.mktemp(f"anim_{request.param}") / "face.glb"
    write_glb(path, synthetic_rec(ict_model, seed=3, expression=False), ict_model, rig=request.param)
    return path


@pytest.fixture
def main(monkeypatch):
    """facerecon's CLI entry with only the animate command registered (other topics may be mid-edit)."""
    import typer

    import facerecon.cli as cli

    app = typer.Typer(name="facerecon", add_completion=False, pretty_exceptions_enable=False)
    app.callback()(lambda: None)  # a group, not a single-command app
    monkeypatch.setattr(cli, "app", app)
    monkeypatch.setattr(cli, "_COMMAND_MODULES", ("animate",))
    return cli.main


def test_animate_cli_csv_and_reconstructions(face_glb, tmp_path, main):
    from pygltflib import GLTF2

    out = tmp_path / "anim.glb"
    assert main(["animate", str(face_glb), "--arkit-csv", str(CSV), "-o", str(out)]) == 0
    g = GLTF2().load(str(out))
    assert len(g.animations) == 1
    s = g.animations[0].samplers[0]
    ch = g.animations[0].channels[0]
    assert s.interpolation == "LINEAR" and ch.target.path == "weights" and g.nodes[ch.target.node].mesh == 0
    blob = g.binary_blob()
    t = read_accessor(g, blob, s.input)[:, 0]
    w = read_accessor(g, blob, s.output)[:, 0].reshape(len(t), -1)
    names = g.meshes[0].extras["targetNames"]
    assert w.shape == (40, len(names)) and len(names) in (52, 55)
    tr = read_arkit_csv(CSV)
    np.testing.assert_allclose(t, tr.times_s, atol=1e-6)
    np.testing.assert_allclose(w[:, names.index("jawOpen")], tr.weights[:, tr.names.index("JawOpen")], atol=1e-6)
    # a second performance, from per-frame reconstructions
    seq = tmp_path / "seq"
    for i in range(3):
        (seq / f"f{i}").mkdir(parents=True)
        (seq / f"f{i}" / "pose.json").write_text(json.dumps({"expression": {"jawOpen": i / 2, "mouthSmile_L": 0.3}}))
    out2 = tmp_path / "anim2.glb"
    assert main(["animate", str(face_glb), "--from-reconstructions", str(seq), "--fps", "15", "-o", str(out2)]) == 0
    g2 = GLTF2().load(str(out2))
    w2 = read_accessor(g2, g2.binary_blob(), g2.animations[0].samplers[0].output)[:, 0].reshape(3, -1)
    np.testing.assert_allclose(w2[:, names.index("jawOpen")], [0, 0.5, 1])
    np.testing.assert_allclose(w2[:, names.index("mouthSmileLeft")], 0.3, atol=1e-7)
    (rep,) = validate(out)
    assert rep["errors"] == 0 and rep["warnings"] == 0, rep["messages"]


def test_animate_cli_errors_are_one_line(face_glb, tmp_path, capsys, main):
    bad = _write(tmp_path, HEAD + "00:00:00:01.000,2,0.1,oops\n")
    assert main(["animate", str(face_glb), "--arkit-csv", str(bad), "-o", str(tmp_path / "a.glb")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "oops" in err and len(err.splitlines()) == 1
    assert main(["animate", str(face_glb), "-o", str(tmp_path / "a.glb")]) == 1
    assert "exactly one of" in capsys.readouterr().err
    assert main(["animate", str(face_glb), "--arkit-csv", str(CSV), "--blendshapes", str(CSV), "-o", str(tmp_path / "a.glb")]) == 1
    assert "exactly one of" in capsys.readouterr().err
    bad_json = tmp_path / "bs.json"
    bad_json.write_text('[[{"categoryName": "jawOpen"}]]')
    assert main(["animate", str(face_glb), "--blendshapes", str(bad_json), "-o", str(tmp_path / "a.glb")]) == 1
    err = capsys.readouterr().err.strip()
    assert "without a name or a score" in err and str(bad_json) in err and len(err.splitlines()) == 1
    assert main(["animate", str(CSV), "--arkit-csv", str(CSV), "-o", str(tmp_path / "a.glb")]) == 1
    assert "expected a .glb" in capsys.readouterr().err
