"""Real-geometry training data: face-only crops, out-of-span shapes with exact labels, checked preset keys."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from facerecon.errors import ConfigError
from facerecon.facemodel import FaceModel
from facerecon.geometry.transforms import fit_similarity
from facerecon.synth.deform import ANCHOR_REGION, raw_field
from facerecon.synth.generator import SynthGenerator
from facerecon.synth.labels import gt_vertices
from facerecon.synth.presets import Preset, load_preset
from facerecon.synth.scene import SEG_BODY, SEG_HAIR, SEG_HEAD, SEG_OCCLUDER


@pytest.fixture(scope="module")
def face_model(ict_archive):
    return FaceModel.load()


def _preset(base: str, name: str, **sections) -> Preset:
    p = load_preset(base)
    table = copy.deepcopy(p.table)
    for sec, values in sections.items():
        if sec == "top":
            table.update(values)
        else:
            table[sec] = {**table.get(sec, {}), **values}
    return Preset(name, table, p.expressions)


def test_face_only_frames_have_no_hair_torso_or_scalp_and_the_crop_varies(face_model):
    preset = _preset("biwi", "face-only-test", scene={"face_only": 1.0, "face_only_background": 0.0})
    gen = SynthGenerator(preset, "ideal", seed=3, model=face_model)
    crops, kept = [], []
    for i in range(4):
        s = gen.generate(i, keep_render=True)
        crop = s.labels["scene"]["face_only"]
        assert crop is not None
        assert not np.isin(s.segment, (SEG_HAIR, SEG_BODY, SEG_HEAD, SEG_OCCLUDER)).any()
        assert s.face_mask.sum() > 50  # the face itself is there
        crops.append((crop["top"], crop["bottom"], crop["left"], crop["right"], crop["back"]))
        kept.append(s.scene.n_head_triangles)
    assert len(set(crops)) == 4 and len(set(kept)) == 4  # a different boundary per frame
    # the same (seed, index) gives the same crop; another seed another one
    assert gen.frame_params(2).scene["face_only"] == SynthGenerator(preset, "ideal", 3, face_model).frame_params(2).scene["face_only"]
    assert gen.frame_params(2).scene["face_only"] != SynthGenerator(preset, "ideal", 4, face_model).frame_params(2).scene["face_only"]
    # the full-head presets are unchanged: scalp and body still there
    full = SynthGenerator("biwi", "ideal", seed=3, model=face_model).generate(0)
    assert np.isin(full.segment, (SEG_HEAD, SEG_BODY)).any()


def test_out_of_span_deformation_has_the_stated_amplitude_and_exact_labels(face_model):
    amp = 3.0
    preset = _preset("facewarehouse", "deform-test", shape={"deform": 1.0, "deform_amplitude_mm": amp})
    gen = SynthGenerator(preset, "ideal", seed=7, model=face_model)
    anchors = face_model.region_vertices(ANCHOR_REGION)
    for i in range(3):
        p = gen.frame_params(i)
        d = p.deform
        assert d is not None and d["amplitude_mm"] == amp
        # the bumps' sum peaks at exactly the amplitude over the face (the field is measured where drawn)
        peak = np.linalg.norm(raw_field(gen._anchors, {"rbf": d["rbf"], "rbf_gain": d["rbf_gain"]}), axis=1).max()
        assert peak == pytest.approx(amp, rel=1e-6)
        # ... and moves the model surface by about that much (after its rigid part is removed)
        lab = {"identity": p.identity, "expression": p.expression}
        v0 = gt_vertices(face_model, lab, "head")
        v1 = gt_vertices(face_model, {**lab, "deform": d}, "head")
        moved = np.linalg.norm(v1 - v0, axis=1)[anchors]
        assert 0.5 * amp < moved.max() < 1.5 * amp, moved.max()
        # no rigid motion of the face: the head frame, i.e. the pose label, stays where it was
        tf = fit_similarity(v1[anchors], v0[anchors])
        angle = np.degrees(np.arccos(np.clip((np.trace(tf.R) - 1) / 2, -1, 1)))
        assert angle < 0.05 and np.linalg.norm(tf.t) < 0.1, (angle, tf.t)
        # the ideal render lies on the deformed ground-truth mesh at the labelled pose (exact labels)
        s = gen.generate(i, keep_render=True)
        r = s.render
        face = s.face_mask & (r.triangle_id >= 0)
        v, u = np.nonzero(face)
        tid = r.triangle_id[face]
        back = s.intrinsics.unproject(np.stack([u, v], 1), s.ideal_depth[face])
        for with_deform, bound in ((True, (0.0, 0.05)), (False, (0.3, np.inf))):
            labels = s.labels if with_deform else {k: v_ for k, v_ in s.labels.items() if k != "deform"}
            gt = gt_vertices(face_model, labels, "camera")
            corners = gt[gen.assets.model_triangles[tid]]
            on_mesh = np.einsum("nk,nkc->nc", r.barycentrics[face].astype(np.float64), corners)
            err = np.linalg.norm(back - on_mesh, axis=1)
            assert bound[0] <= err.max() < bound[1], (with_deform, err.max())
        assert np.abs(face_model.landmarks(gt_vertices(face_model, s.labels, "camera")) - s.labels["landmarks_3d"]).max() < 0.01


def test_unknown_preset_keys_are_errors_with_the_nearest_name(tmp_path):
    f = tmp_path / "p1.toml"  # one file per case: loaded files are cached by path
    f.write_text('[presets.a]\nyaw_degs = [-10, 10]\n')
    with pytest.raises(ConfigError, match=r"unknown setting 'yaw_degs' \(did you mean 'yaw_deg'\?\)"):
        load_preset("a", f)
    f = tmp_path / "p2.toml"
    f.write_text('[presets.b]\nbase = "c"\n[presets.b.scene]\nface_onyl = 0.5\n[presets.c]\nyaw_deg = 5\n')
    with pytest.raises(ConfigError, match="'face_only'"):
        load_preset("b", f)
    f = tmp_path / "p3.toml"
    f.write_text('[expressions]\nneutral = {}\n[presets.d]\nbase = "e"\n[presets.d.scene]\nface_only = 0.5\n[presets.e]\nyaw_deg = 5\n'
                 '[presets.e.scene]\nhair = 0.3\n')
    p = load_preset("d", f)  # base: merged key by key
    assert p.get("yaw_deg") == 5 and p.scene == {"hair": 0.3, "face_only": 0.5}
    for name in ("biwi-faces", "ict3dhp-faces", "truedepth-faces"):
        assert load_preset(name).scene["face_only"] > 0
    from facerecon.synth.sensors import load_sensor

    f = tmp_path / "s.toml"  # sensor stage parameters too (they once failed only when a frame was made)
    f.write_text('[x]\nsource = "-"\n[[x.stages]]\ntype = "axial_noise"\nsigma0 = 1.0\n')
    with pytest.raises(ConfigError, match=r"unknown setting 'sigma0' \(did you mean 'sigma0_mm'\?\)"):
        load_sensor("x", f)


def test_a_scan_becomes_an_identity_with_exact_labels(face_model):
    from facerecon.metrics.surface import SurfaceIndex
    from facerecon.synth.deform import scan_displacement

    m = face_model
    # a "scan": the ICT face with a known smooth bump (5 mm on the left cheek), its own triangles and landmarks
    tris = m.region_triangles("face")
    bump = 5.0 * np.exp(-0.5 * np.sum((m.neutral - m.neutral[m.landmarks_68[3]]) ** 2, axis=1) / 30.0**2)
    scan_v = m.neutral + bump[:, None] * np.array([0.0, 0.0, -1.0])
    disp = scan_displacement(m, scan_v, tris, scan_v[m.landmarks_68])
    face = m.region_vertices("narrow_face")
    dist = SurfaceIndex(scan_v, tris).query((m.neutral + disp)[face]).distances
    assert np.median(dist) < 0.05 and np.percentile(dist, 99) < 0.5
    preset = _preset("facewarehouse", "scan-test", shape={"scan_identity": 1.0})
    gen = SynthGenerator(preset, "ideal", seed=1, model=m, scans={"bumpy": disp})
    s = gen.generate(0)
    assert s.labels["identity_source"] == "scan:bumpy" and not np.any(s.labels["identity"])
    with pytest.raises(ConfigError):
        gt_vertices(m, s.labels, "head")  # the scan is needed to rebuild the mesh
    head = gt_vertices(m, s.labels, "head", scans={"bumpy": disp})
    expr_only = m.vertices(np.zeros(m.n_identity), s.labels["expression"])
    np.testing.assert_allclose(head, expr_only + disp, atol=1e-3)
    assert np.abs(m.landmarks(gt_vertices(m, s.labels, "camera", scans={"bumpy": disp})) - s.labels["landmarks_3d"]).max() < 0.01


def test_real_kinect_face_patches_join_the_target_set(real_dir):
    from facerecon.realdata.target import kinect_patch_frames
    from facerecon.train.data import unlabelled_set

    frames = kinect_patch_frames(real_dir / "kinect-pcl")
    assert len(frames) == 6 and all(f.meta["domain"] == "real-kinect-patch" for f in frames)
    assert all((f.depth_mm > 0).sum() > 5000 for f in frames)  # splatted into closed surfaces
    s = unlabelled_set(frames, "real-domain")
    assert len(s) == 6 and not s.labelled  # the localiser finds each patch
    with pytest.raises(Exception, match="object_template"):
        kinect_patch_frames(real_dir / "scan-james")


def test_whole_head_cut_keeps_scalp_inside_the_boundary_and_is_drawn_only_when_named(face_model):
    # crop_whole_head: the boundary cuts every head segment (scalp, ears), as a patch cut from a real scan
    scene = {"face_only": 1.0, "face_only_background": 0.0, "crop_side_mm": [100.0, 110.0], "crop_back_mm": [40.0, 60.0]}
    whole = _preset("biwi", "whole-test", scene={**scene, "crop_whole_head": 1.0})
    s = SynthGenerator(whole, "ideal", seed=3, model=face_model).generate(0, keep_render=True)
    assert s.labels["scene"]["face_only"]["whole_head"] is True
    assert np.isin(s.segment, SEG_HEAD).any()
    assert not np.isin(s.segment, (SEG_HAIR, SEG_BODY, SEG_OCCLUDER)).any()
    face = _preset("biwi", "face-test", scene={**scene, "crop_whole_head": 0.0})
    s = SynthGenerator(face, "ideal", seed=3, model=face_model).generate(0, keep_render=True)
    assert not np.isin(s.segment, SEG_HEAD).any()
    # a preset that does not name the key draws nothing for it: its crops are unchanged
    plain = _preset("biwi", "plain-test", scene={"face_only": 1.0})
    crop = SynthGenerator(plain, "ideal", seed=5, model=face_model).frame_params(1).scene["face_only"]
    assert "whole_head" not in crop
