"""The ARKit-52 rig (`--rig arkit52`, the GLB default) next to ICT's 55 (`--rig ict`): names and
order, shapes, weights in [0, 1], MediaPipe / ARKit / ICT-named drivers, the CLI option."""
from __future__ import annotations

import json

import gltf_helpers
import numpy as np
import pytest
from gltf_helpers import load_posed, read_accessor, synthetic_rec, validate

ict_model = gltf_helpers.ict_model  # the session-scoped face model fixture, shared by the glTF tests

# Apple's ARFaceAnchor.BlendShapeLocation, in the order of its documentation (left eye, right eye,
# mouth and jaw, eyebrows / cheeks / nose, tongue; = Unreal's EARFaceBlendShape). Written out here,
# independently of src/facerecon/data/arkit52.json.
ARKIT_52 = [
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight", "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff", "cheekSquintLeft",
    "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
]  # fmt: skip
# MediaPipe FaceLandmarker's blendshape categories (output_face_blendshapes): _neutral + 51, no tongueOut.
MEDIAPIPE_52 = ["_neutral"] + sorted(n for n in ARKIT_52 if n != "tongueOut")


@pytest.fixture(scope="module")
def model(ict_model):
    return ict_model


@pytest.fixture(scope="module")
def rec(model):
    """A synthetic reconstruction whose weights leave [0, 1] on both sides (as the depth networks' may)."""
    r = synthetic_rec(model, seed=11)
    r.expression = r.expression.copy()
    r.expression[model.expression_names.index("jawOpen")] = -0.04
    r.expression[model.expression_names.index("mouthSmile_L")] = 1.06
    return r


@pytest.fixture(scope="module")
def glbs(model, rec, tmp_path_factory):
    from facerecon.export.gltf import write_glb

    out = tmp_path_factory.mktemp("rig")
    for rig in ("arkit52", "ict"):
        write_glb(out / f"{rig}.glb", rec, model, "head", rig=rig)
    write_glb(out / "default.glb", rec, model, "head")
    return out


def _names(path):
    from pygltflib import GLTF2

    return GLTF2().load(str(path)).meshes[0].extras["targetNames"]


def test_table_is_52_arkit_names_in_order():
    from facerecon.export.rig import arkit52_names, arkit52_table

    assert arkit52_names() == ARKIT_52 and len(set(ARKIT_52)) == 52
    sources = dict(arkit52_table())
    assert sources["browInnerUp"] == ("browInnerUp_L", "browInnerUp_R") and sources["cheekPuff"] == ("cheekPuff_L", "cheekPuff_R")
    assert sources["tongueOut"] == () and sources["jawLeft"] == ("jawLeft",) and sources["eyeBlinkLeft"] == ("eyeBlink_L",)


def test_default_glb_is_arkit52_exactly(glbs, model):
    names = _names(glbs / "arkit52.glb")
    assert names == ARKIT_52
    assert _names(glbs / "default.glb") == ARKIT_52
    assert not any(n.startswith("pupil") or n.endswith(("_L", "_R")) for n in names)
    from pygltflib import GLTF2

    g = GLTF2().load(str(glbs / "arkit52.glb"))
    assert all(len(p.targets) == 52 for p in g.meshes[0].primitives) and len(g.meshes[0].weights) == 52
    ex = g.meshes[0].extras
    assert ex["rig"] == "arkit52" and ex["ict_sources"][names.index("tongueOut")] == []


def test_ict_rig_keeps_the_55(glbs, model):
    from facerecon.export.gltf import arkit_target_name

    names = _names(glbs / "ict.glb")
    assert names == [arkit_target_name(n) for n in model.expression_names] and len(names) == 55
    assert "browInnerUpLeft" in names and "pupilDilateRight" in names and "browInnerUp" not in names


def test_arkit_shapes_are_ict_sums_and_tongue_is_zero(glbs, model):
    """Each arkit52 target at weight 1 moves the sum of its ICT shapes (browInnerUp = left + right)."""
    path = glbs / "arkit52.glb"
    zero, _ = load_posed(path, model.n_vertices, np.zeros(52))
    basis = model.expression_basis
    ix = model.expression_names.index
    for name, srcs in (("browInnerUp", ("browInnerUp_L", "browInnerUp_R")), ("cheekPuff", ("cheekPuff_L", "cheekPuff_R")),
                       ("jawOpen", ("jawOpen",)), ("eyeBlinkLeft", ("eyeBlink_L",)), ("mouthLeft", ("mouthLeft",))):
        w = np.zeros(52)
        w[ARKIT_52.index(name)] = 1.0
        moved, _ = load_posed(path, model.n_vertices, w)
        want = sum(basis[ix(s)] for s in srcs)
        assert np.abs((moved - zero) - want).max() < 1e-3 and np.abs(want).max() > 1.0, name
    w = np.zeros(52)
    w[ARKIT_52.index("tongueOut")] = 1.0
    tongue, _ = load_posed(path, model.n_vertices, w)
    assert np.abs(tongue - zero).max() == 0.0


def test_weights_clamped_to_0_1_on_both_rigs(glbs, model, rec):
    from pygltflib import GLTF2

    e = np.asarray(rec.expression)
    assert e.min() < 0 and e.max() > 1  # the fixture leaves [0, 1]
    for rig in ("arkit52", "ict", "default"):
        w = np.asarray(GLTF2().load(str(glbs / f"{rig}.glb")).meshes[0].weights)
        assert w.min() >= 0.0 and w.max() <= 1.0, rig
    ict = np.asarray(GLTF2().load(str(glbs / "ict.glb")).meshes[0].weights)
    np.testing.assert_allclose(ict, np.clip(e, 0, 1), atol=1e-12)
    ark = np.asarray(GLTF2().load(str(glbs / "arkit52.glb")).meshes[0].weights)
    ix = model.expression_names.index
    assert ark[ARKIT_52.index("jawOpen")] == 0.0 and ark[ARKIT_52.index("mouthSmileLeft")] == 1.0
    assert abs(ark[ARKIT_52.index("browInnerUp")] - np.clip((e[ix("browInnerUp_L")] + e[ix("browInnerUp_R")]) / 2, 0, 1)) < 1e-12
    assert ark[ARKIT_52.index("tongueOut")] == 0.0
    # pose.json: the same clamp in the one writer every command goes through
    from facerecon.export.pose_json import pose_document

    doc = pose_document(frame="f", method="network", face=True, confidence=0.9, expression=e,
                        expression_names=list(model.expression_names))
    vals = np.array(list(doc["expression"].values()))
    assert vals.min() == 0.0 and vals.max() == 1.0 and doc["expression"]["jawOpen"] == 0.0


def test_arkit52_default_weights_reproduce_the_reconstruction(model, tmp_path):
    """At its default weights the arkit52 GLB is the reconstruction, up to what 52 names cannot say
    (left != right browInnerUp / cheekPuff, the pupils): exact for a face without those."""
    from facerecon.export.gltf import write_glb

    r = synthetic_rec(model, seed=5)
    e = r.expression.copy()
    ix = model.expression_names.index
    for a in ("browInnerUp", "cheekPuff"):
        e[ix(a + "_L")] = e[ix(a + "_R")] = (e[ix(a + "_L")] + e[ix(a + "_R")]) / 2
    e[ix("PupilDilate_L")] = e[ix("PupilDilate_R")] = 0.0
    r.expression = e
    r.vertices_head = model.vertices(r.identity, e).astype(np.float64)
    write_glb(tmp_path / "f.glb", r, model, "head", rig="arkit52")
    v, _ = load_posed(tmp_path / "f.glb", model.n_vertices)
    assert np.isfinite(v).all() and np.abs(v - r.vertices_head).max() < 0.01


def _mediapipe_frames(names, rng, n=3):
    return [[{"index": i, "score": float(s), "categoryName": c, "displayName": ""} for i, (c, s) in
             enumerate(zip(names, rng.uniform(0.05, 0.95, len(names))))] for _ in range(n)]


def test_mediapipe_style_list_drives_every_arkit52_target(glbs, tmp_path):
    """52 categories with ARKit's names: each score lands on the target of that name, every target driven."""
    from facerecon.export.animation import add_weight_animation, blendshape_track, retarget

    glb = glbs / "arkit52.glb"
    names = _names(glb)
    rng = np.random.default_rng(0)
    shuffled = list(rng.permutation(ARKIT_52))  # any order: matched by name
    frames = _mediapipe_frames(shuffled, rng)
    track = blendshape_track(frames, fps=30)
    rt = retarget(track, names)
    assert rt.undriven == [] and rt.unused == [] and len(rt.mapping) == 52
    for j, name in enumerate(names):
        assert rt.mapping[name] == [name]
        want = [next(c["score"] for c in f if c["categoryName"] == name) for f in frames]
        np.testing.assert_allclose(rt.weights[:, j], want, atol=0)
    info = add_weight_animation(glb, tmp_path / "mp.glb", track.times_s, rt.weights)
    assert info["targets"] == 52
    from pygltflib import GLTF2

    g = GLTF2().load(str(tmp_path / "mp.glb"))
    s = g.animations[0].samplers[0]
    w = read_accessor(g, g.binary_blob(), s.output)[:, 0].reshape(3, 52)
    np.testing.assert_allclose(w, rt.weights, atol=1e-6)
    (rep,) = validate(tmp_path / "mp.glb")
    assert rep["errors"] == 0 and rep["warnings"] == 0, rep["messages"]
    # a {name: weight} dict per frame, MediaPipe's real list (_neutral, no tongueOut)
    d = retarget(blendshape_track([{"browInnerUp": 0.3, "cheekPuff": 0.7}]), names)
    assert d.weights[0, names.index("browInnerUp")] == 0.3 and d.weights[0, names.index("cheekPuff")] == 0.7
    real = blendshape_track(_mediapipe_frames(MEDIAPIPE_52, rng, 1))
    rr = retarget(real, names)
    assert real.ignored == ["_neutral"] and "_neutral" not in real.names
    assert rr.undriven == ["tongueOut"] and rr.unused == []


def test_drivers_on_both_rigs(glbs):
    """ARKit curves split onto the ict rig; ICT names (pose.json) merge onto arkit52 by the table's mean."""
    from facerecon.export.animation import blendshape_track, retarget

    ark, ict = _names(glbs / "arkit52.glb"), _names(glbs / "ict.glb")
    t = blendshape_track([{"browInnerUp": 0.3, "cheekPuff": 0.5, "tongueOut": 0.2, "jawOpen": 1.4}])
    r = retarget(t, ict)
    assert r.mapping["browInnerUp"] == ["browInnerUpLeft", "browInnerUpRight"] and "tongueOut" in r.unused
    assert r.weights[0, ict.index("browInnerUpRight")] == 0.3 and r.weights[0, ict.index("jawOpen")] == 1.0  # clamped
    r = retarget(t, ark)
    assert r.weights[0, ark.index("tongueOut")] == 0.2 and r.weights[0, ark.index("jawOpen")] == 1.0
    pose = blendshape_track([{"browInnerUp_L": 0.2, "browInnerUp_R": 0.4, "cheekPuff_L": 0.6, "eyeBlink_L": 0.9,
                              "PupilDilate_L": 0.5, "jawOpen": -0.1}])
    r = retarget(pose, ark)
    assert abs(r.weights[0, ark.index("browInnerUp")] - 0.3) < 1e-12 and abs(r.weights[0, ark.index("cheekPuff")] - 0.3) < 1e-12
    assert r.weights[0, ark.index("eyeBlinkLeft")] == 0.9 and r.weights[0, ark.index("jawOpen")] == 0.0
    assert r.mapping["browInnerUp_L"] == ["browInnerUp"] and r.unused == ["PupilDilate_L"]
    r = retarget(pose, ict)
    assert r.weights[0, ict.index("browInnerUpRight")] == 0.4 and r.weights[0, ict.index("pupilDilateLeft")] == 0.5


def test_animate_cli_blendshapes_json(glbs, tmp_path, monkeypatch):
    import typer

    import facerecon.cli as cli

    app = typer.Typer(name="facerecon", add_completion=False, pretty_exceptions_enable=False)
    app.callback()(lambda: None)
    monkeypatch.setattr(cli, "app", app)
    monkeypatch.setattr(cli, "_COMMAND_MODULES", ("animate",))
    rng = np.random.default_rng(2)
    src = tmp_path / "mp.json"
    src.write_text(json.dumps({"frames": _mediapipe_frames(ARKIT_52, rng, 4)}))
    for rig in ("arkit52", "ict"):
        out = tmp_path / f"anim_{rig}.glb"
        assert cli.main(["animate", str(glbs / f"{rig}.glb"), "--blendshapes", str(src), "--fps", "25", "-o", str(out)]) == 0
        from pygltflib import GLTF2

        g = GLTF2().load(str(out))
        t = read_accessor(g, g.binary_blob(), g.animations[0].samplers[0].input)[:, 0]
        np.testing.assert_allclose(t, np.arange(4) / 25, atol=1e-6)


def test_reconstruct_rejects_unknown_rig(tmp_path, capsys, monkeypatch):
    import typer

    import facerecon.cli as cli

    app = typer.Typer(name="facerecon", add_completion=False, pretty_exceptions_enable=False)
    app.callback()(lambda: None)
    monkeypatch.setattr(cli, "app", app)
    monkeypatch.setattr(cli, "_COMMAND_MODULES", ("reconstruct",))
    assert cli.main(["reconstruct", str(tmp_path), "-o", str(tmp_path / "o"), "--rig", "vrm"]) == 2  # a usage error
    err = capsys.readouterr().err
    assert "--rig: unknown 'vrm'; choose arkit52 or ict" in err


def test_reconstruct_cli_both_rigs_on_a_real_frame(real_dir, tmp_path):
    """`reconstruct --format glb` on the Kinect frame: arkit52 by default, ict on request; weights
    in [0, 1] in the GLB and pose.json; the validator is clean on both."""
    from pygltflib import GLTF2

    from facerecon.cli import main

    frame = real_dir / "kinect-pcl" / "person.pcd"
    for rig, args in (("arkit52", []), ("ict", ["--rig", "ict"])):
        assert main(["reconstruct", str(frame), "-o", str(tmp_path / rig), "--format", "glb", "--outputs", "all", "--no-overlay", *args]) == 0
    names = {rig: GLTF2().load(str(tmp_path / rig / "person" / "face.glb")).meshes[0].extras["targetNames"] for rig in ("arkit52", "ict")}
    assert names["arkit52"] == ARKIT_52 and len(names["ict"]) == 55 and "browInnerUpLeft" in names["ict"]
    for rig in ("arkit52", "ict"):
        w = np.asarray(GLTF2().load(str(tmp_path / rig / "person" / "face.glb")).meshes[0].weights)
        e = np.array(list(json.loads((tmp_path / rig / "person" / "pose.json").read_text())["expression"].values()))
        assert w.min() >= 0 and w.max() <= 1 and e.min() >= 0 and e.max() <= 1 and len(e) == 55
    reports = validate(*(tmp_path / rig / "person" / n for rig in ("arkit52", "ict") for n in ("face.glb", "face_head.glb")))
    for rep in reports:
        assert rep["errors"] == 0 and rep["warnings"] == 0, rep["messages"]
