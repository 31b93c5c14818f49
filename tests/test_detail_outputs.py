"""The detail layer in the outputs (#20 item 3): ``reconstruct`` writes face_displacement.png and
face_normal.png where the correction is on, the GLB carries the normal map and validates, the OBJ's
material names it, pose.json says how to decode the map (or why there is none); ``--detail off`` and
``--outputs minimal`` write none; a frame with flying pixels gives bounded maps; an implausible map
is not written."""
from __future__ import annotations

import json

import gltf_helpers
import numpy as np
import pytest
from gltf_helpers import validate
from PIL import Image

from facerecon.export.maps import DISPLACEMENT_FILE, NORMAL_FILE, MapsConfig, detail_maps, read_displacement_png
from facerecon.export.pose_json import validate as validate_pose
from facerecon.io.frame import DepthFrame

ict_model = gltf_helpers.ict_model


@pytest.fixture(scope="module")
def engine(ict_model):
    from facerecon.pipeline import Reconstructor

    return Reconstructor.from_pretrained("fast", model=ict_model)


def _check_maps(folder, block: dict) -> np.ndarray:
    """The written maps agree with pose.json's block; returns the decoded displacement (mm)."""
    assert block["written"] is True and block["displacement"] == DISPLACEMENT_FILE and block["normal"] == NORMAL_FILE
    d = read_displacement_png(folder / DISPLACEMENT_FILE, block["scale_mm"], block["offset_mm"])
    assert d.shape == (block["size"], block["size"])
    assert np.abs(d).max() <= block["max_mm"] + block["scale_mm"]
    measured = np.abs(d) > block["scale_mm"]
    assert 0.5 * block["coverage"] < measured.mean() / 0.25  # roughly: the face tile holds ~a quarter of the image's texels
    with Image.open(folder / NORMAL_FILE) as im:
        n = np.asarray(im)
    assert n.shape == (block["size"], block["size"], 3) and n.dtype == np.uint8
    assert n[..., 2].min() >= 128  # tangent-space normals point out of the surface
    return d


def test_cli_writes_the_maps_on_a_real_frame(tmp_path, real_dir):
    """A TrueDepth frame: the maps, the block, the GLB with its normal texture (Khronos validator), the MTL;
    --detail off and --outputs minimal write no maps."""
    from pygltflib import GLTF2

    from facerecon.cli import main

    frame = real_dir / "truedepth-mannequin" / "DepthFrames" / "frame-045.ply"
    for name, extra in (("on", []), ("off", ["--detail", "off"])):
        assert main(["reconstruct", str(frame), "-o", str(tmp_path / name), "--no-overlay", *extra]) == 0
    on = tmp_path / "on" / "frame-045"
    pose = json.loads((on / "pose.json").read_text())
    assert pose["depth"]["detail"] == "on"
    block = pose["depth"]["detail_map"]
    _check_maps(on, block)
    assert 0.1 < block["coverage"] < 0.6 and block["rms_mm"] < 2.0  # a mannequin close up: a third of the face skin
    assert "norm face_normal.png" in (on / "face.mtl").read_text() and (on / "face.obj").read_text()[:40].startswith("mtllib face.mtl")
    for rep in validate(on / "face.glb"):
        assert rep["errors"] == 0 and rep["warnings"] == 0, rep["messages"]
    g = GLTF2().load(str(on / "face.glb"))
    skin = next(m for m in g.materials if m.name == "face_skin")
    assert skin.normalTexture is not None and len(g.images) == 1
    # the GLB's image is the file's bytes (one encoding)
    view = g.bufferViews[g.images[0].bufferView]
    blob = g.binary_blob()[view.byteOffset or 0: (view.byteOffset or 0) + view.byteLength]
    assert blob == (on / NORMAL_FILE).read_bytes()
    off = tmp_path / "off" / "frame-045"
    assert not (off / DISPLACEMENT_FILE).exists() and not (off / NORMAL_FILE).exists() and not (off / "face.mtl").exists()
    assert "detail_map" not in json.loads((off / "pose.json").read_text())["depth"]
    assert not GLTF2().load(str(off / "face.glb")).images


def test_which_outputs_write_the_maps():
    from facerecon.cli._options import OutputPlan

    assert [OutputPlan(level, ("obj", "glb"), True).maps for level in ("minimal", "default", "all")] == [False, True, True]


@pytest.fixture(scope="module")
def synthetic(engine):
    """A synthetic Kinect v1 frame (the training generator's scene: head, body, background) that the
    pipeline finds, with its result."""
    from facerecon.errors import NoFaceFoundError
    from facerecon.synth.generator import SynthGenerator

    gen = SynthGenerator("facewarehouse", "kinect-v1", seed=4242)
    for i in range(6):
        s = gen.generate(i)
        frame = DepthFrame(s.depth_mm, s.intrinsics, f"synthetic frame {i}")
        try:
            rec = engine.reconstruct(frame)
        except NoFaceFoundError:
            continue
        if rec.face and rec.detail == "on":
            return frame, rec
    pytest.fail("no synthetic frame of 6 gave a face with the correction on")


def _write(rec, model, frame, out, maps):
    """What reconstruct's writer does with a frame (export.write_face_meshes + pose.json)."""
    from facerecon.export import write_face_meshes, write_json
    from facerecon.export.pose_json import depth_document

    out.mkdir(parents=True)
    write_face_meshes(rec, model, out, ("obj", "glb"), intrinsics=frame.intrinsics, head_frame=False, maps=maps)
    doc = depth_document(rec, frame.source, "network", model, detail_map=maps)
    validate_pose(doc)
    write_json(out / "pose.json", doc)
    return doc


def test_synthetic_frame_with_flying_pixels_gives_bounded_maps(engine, ict_model, synthetic, tmp_path):
    """The API path on a synthetic Kinect v1 frame, clean and with 300 flying pixels on the face:
    both write maps bounded by max_mm, the measured values agree away from the spikes."""
    clean, rec0 = synthetic
    depth = clean.depth_mm.copy()
    rng = np.random.default_rng(5)
    box = np.zeros(depth.shape, bool)
    x0, y0, x1, y1 = (int(v) for v in rec0.location.box)
    box[y0:y1, x0:x1] = True
    face = np.argwhere((depth > 0) & box)
    spikes = face[rng.choice(len(face), 300, replace=False)]
    depth[spikes[:, 0], spikes[:, 1]] += rng.choice([-1.0, 1.0], 300) * rng.uniform(20, 300, 300)
    spiky = DepthFrame(depth, clean.intrinsics, "spiky synthetic frame")
    # the maps of the same result (base surface and pose) over the clean and the spiky depth: bounded
    # (_check_maps), and where both measured, the spikes changed nothing beyond the smoothing's reach
    decoded = []
    for name, frame in (("clean", clean), ("spiky", spiky)):
        maps = detail_maps(rec0, ict_model, frame)
        assert maps.written, maps.reason
        decoded.append(_check_maps(tmp_path / name, _write(rec0, ict_model, frame, tmp_path / name, maps)["depth"]["detail_map"]))
    both = (np.abs(decoded[0]) > 0) & (np.abs(decoded[1]) > 0)
    assert both.sum() > 10000
    assert np.percentile(np.abs(decoded[0][both] - decoded[1][both]), 99) < 0.5
    assert (decoded[1] != 0).sum() < (decoded[0] != 0).sum()  # the spikes' surroundings are masked (holes, never invented values)
    # the whole pipeline on the spiky frame: its maps (written or refused with a reason) stay bounded
    rec = engine.reconstruct(spiky)
    assert rec.face
    if rec.detail == "on":
        maps = detail_maps(rec, ict_model, spiky)
        doc = _write(rec, ict_model, spiky, tmp_path / "spiky-pipeline", maps)
        assert np.abs(maps.displacement.displacement).max() <= maps.displacement.max_mm
        if maps.written:
            _check_maps(tmp_path / "spiky-pipeline", doc["depth"]["detail_map"])


def test_an_implausible_map_writes_none_and_says_why(ict_model, synthetic, tmp_path):
    frame, rec = synthetic
    for cfg, word in ((MapsConfig(min_coverage=0.99, max_rms_mm=2.0), "coverage"), (MapsConfig(min_coverage=0.1, max_rms_mm=1e-3), "rms")):
        maps = detail_maps(rec, ict_model, frame, maps_cfg=cfg)
        assert not maps.written and maps.normals is None and maps.reason.startswith(word)
        out = tmp_path / word
        doc = _write(rec, ict_model, frame, out, maps)
        block = doc["depth"]["detail_map"]
        assert block["written"] is False and block["reason"] == maps.reason
        assert not (out / DISPLACEMENT_FILE).exists() and not (out / NORMAL_FILE).exists() and not (out / "face.mtl").exists()
        assert (out / "face.glb").is_file()
