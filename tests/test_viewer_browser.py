"""`facerecon view` in a real browser (Debian's Chromium through Playwright) and the server's file rules.

The demo folder is what `reconstruct --format glb` writes (face.glb with the sensor camera, face_head.glb,
pose.json naming the depth frame, landmarks.json) for a seeded synthetic face whose depth frame is
rendered here, plus an animated GLB from the CSV fixture. The screenshot is kept in
out/test-artifacts/viewer.png (docs/viewer.png is the same page on a real Kinect frame: docs/animation.md).
"""
from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path

import gltf_helpers
import numpy as np
import pytest
from gltf_helpers import synthetic_rec

pytestmark = pytest.mark.slow  # Chromium, the demo folder and a server (~12 s together)

ict_model = gltf_helpers.ict_model  # the session-scoped face model fixture, shared by the glTF tests

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "out" / "test-artifacts"
CSV = Path(__file__).resolve().parent / "data" / "arkit_performance.csv"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


@pytest.fixture(scope="module")
def demo(ict_model, tmp_path_factory):
    from facerecon.geometry.camera import Intrinsics
    from facerecon.export import landmarks_json, write_face_meshes, write_json
    from facerecon.export.animation import add_weight_animation, read_arkit_csv, retarget
    from facerecon.export.gltf import gltf_layout, write_glb
    from facerecon.io.frame import DepthFrame
    from facerecon.io.images import write_frame_npz
    from facerecon.geometry.raster import render_mesh

    m = ict_model
    out = tmp_path_factory.mktemp("viewer")
    rec = synthetic_rec(m, seed=1, expression=False, euler=(15.0, -5.0, 0.0), t=(0.0, 10.0, 650.0))
    k = Intrinsics(570.0, 570.0, 320.0, 240.0, 640, 480)
    rec.landmarks_2d = k.project(rec.landmarks_3d)
    depth = render_mesh(rec.vertices_camera, m.region_triangles("face", "head_and_neck", "eyeballs"), k, barycentrics=False).depth
    write_frame_npz(out / "frame.npz", DepthFrame(depth.astype(np.float32), k, source="synthetic"))
    write_face_meshes(rec, m, out, ("glb",), intrinsics=k, maps=_ripples(rec, m))  # the default rig, arkit52; a normal map
    write_glb(out / "face_ict.glb", rec, m, "camera", intrinsics=k, rig="ict")  # the other rig, for the menu
    write_json(out / "landmarks.json", landmarks_json(rec))
    yaw, pitch, roll = rec.pose.euler_deg
    write_json(out / "pose.json", {"frame": str(out / "frame.npz"), "method": "synthetic", "translation_mm": rec.pose.t_mm.tolist(),
                                   "euler_deg": {"yaw": yaw, "pitch": pitch, "roll": roll}, "confidence": 1.0,
                                   "timings_ms": {"total": 12.5}})
    track = read_arkit_csv(CSV)
    add_weight_animation(out / "face.glb", out / "anim.glb", track.times_s, retarget(track, gltf_layout(m).target_names).weights)
    mouth = rec.vertices_camera[m.landmarks_68[48:68]].mean(0)
    return out, mouth


def _ripples(rec, m):
    """Detail maps with 1 mm ripples across the face skin (a pattern the toggle visibly switches)."""
    from facerecon.export.maps import DetailMaps
    from facerecon.fitting.detail import DisplacementMap, normal_map, texel_frame

    s = 256
    rows, cols, _, _ = texel_frame(m, rec.vertices_head, s)
    d = np.zeros((s, s), np.float32)
    d[rows, cols] = np.sin(cols * 0.6)  # ~10 texels a period: ~2.4 mm of face at 256
    mask = np.zeros((s, s), bool)
    mask[rows, cols] = True
    disp = DisplacementMap(d, mask, 6.0)
    return DetailMaps(disp, normal_map(m, rec.vertices_head, disp), True)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (make install installs Debian's chromium where it can)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("python playwright is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(demo):
    from facerecon.viewer import start

    srv, thread = start(demo[0])
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def page(browser, server):
    """One page for the browser tests (loading it costs seconds under SwiftShader); ``page.errors``: console
    errors, page errors and failed requests."""
    page = browser.new_page(viewport={"width": 1100, "height": 700})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url} {r.failure}"))
    page.goto(server.url)
    page.wait_for_function("window.viewer && window.viewer.ready && window.viewer.frames > 0", timeout=90_000)
    page.errors = errors
    yield page
    page.close()


def _pixels(page, box) -> np.ndarray:
    from io import BytesIO

    from PIL import Image

    x, y, w, h = box
    return np.asarray(Image.open(BytesIO(page.screenshot(clip={"x": x, "y": y, "width": w, "height": h}))).convert("RGB"), np.int16)


def _set_slider(page, name: str, value: float) -> None:
    page.evaluate("([id, v]) => { const el = document.getElementById(id); el.value = v; el.dispatchEvent(new Event('input')); }",
                  [f"morph-{name}", value])
    page.wait_for_function("window.viewer.frames > 0")
    page.evaluate("window.viewer.render()")


def test_page_loads_and_jaw_slider_opens_the_mouth(demo, page):
    out, mouth = demo
    assert page.evaluate("window.viewer.targetNames.length") == 52  # arkit52, the default rig
    assert page.locator("#morph-jawOpen").count() == 1 and page.locator("#morph-browInnerUp").count() == 1
    assert page.locator("#morph-tongueOut").count() == 1
    assert page.evaluate("document.getElementById('picture').style.display") == "block"  # mesh over the depth picture
    x, y = page.evaluate("(p) => window.viewer.cameraToScreen(p)", mouth.tolist())
    mouth_box = (x - 45, y - 40, 90, 80)
    corner = page.evaluate("(() => { const r = document.getElementById('canvas').getBoundingClientRect(); return [r.left + 5, r.top + 5]; })()")
    corner_box = (corner[0], corner[1], 80, 80)
    before, corner_before = _pixels(page, mouth_box), _pixels(page, corner_box)
    _set_slider(page, "jawOpen", 1.0)
    after, corner_after = _pixels(page, mouth_box), _pixels(page, corner_box)
    changed = (np.abs(after - before).max(-1) > 30).mean()
    assert changed > 0.05, f"only {changed:.3f} of the mouth region changed"
    assert (np.abs(corner_after - corner_before).max(-1) > 30).mean() < 0.01  # the rest of the picture stays
    page.check("#toggle-landmarks")
    _set_slider(page, "jawOpen", 0.5)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer.png"))
    assert page.errors == [], page.errors
    assert "yaw 15.0" in page.inner_text("#info") and "12.5" in page.inner_text("#info")


def test_detail_toggle_switches_the_normal_map(demo, page):
    """face.glb carries a normal map: the checkbox takes it off the face skin (the shading changes there) and puts it back."""
    _, mouth = demo
    assert page.evaluate("window.viewer.detailShown()") == 1
    x, y = page.evaluate("(p) => window.viewer.cameraToScreen(p)", mouth.tolist())
    box = (x - 60, y - 140, 120, 100)  # cheeks and nose above the mouth
    page.evaluate("window.viewer.render()")
    with_map = _pixels(page, box)
    page.uncheck("#toggle-detail")
    page.evaluate("window.viewer.render()")
    assert page.evaluate("window.viewer.detailShown()") == 0
    without = _pixels(page, box)
    page.check("#toggle-detail")
    page.evaluate("window.viewer.render()")
    again = _pixels(page, box)
    changed = (np.abs(with_map - without).max(-1) > 12).mean()
    assert changed > 0.05, f"only {changed:.3f} of the face changed with the normal map off"
    assert np.abs(again - with_map).max() <= 2
    assert page.errors == [], page.errors


def test_animation_plays_and_pauses(page):
    page.select_option("#glb", "files/anim.glb")
    page.wait_for_function("window.viewer.ready && !document.getElementById('play').disabled", timeout=90_000)
    page.click("#play")
    # playing moves the morph targets (the performance starts neutral: wait for a jaw or blink weight
    # rather than a fixed time, in which a loaded machine may not render a frame)
    page.wait_for_function("(() => { const v = window.viewer; if (!v.meshes.length) return false; const w = v.meshes[0].morphTargetInfluences;"
                           " return w[v.targetNames.indexOf('jawOpen')] > 0 || w[v.targetNames.indexOf('eyeBlinkLeft')] > 0; })()",
                           timeout=30_000)
    page.click("#play")  # pause: the sliders show the weights where it stopped
    stopped = page.evaluate("(() => { const v = window.viewer; const w = v.meshes[0].morphTargetInfluences;"
                            " return [w[v.targetNames.indexOf('jawOpen')], w[v.targetNames.indexOf('eyeBlinkLeft')]]; })()")
    shown = [float(page.input_value("#morph-jawOpen")), float(page.input_value("#morph-eyeBlinkLeft"))]
    assert np.allclose(shown, stopped, atol=0.011), (shown, stopped)
    assert page.errors == [], page.errors


def test_ict_rig_gets_its_55_sliders(page):
    """The viewer reads the target names from the GLB: the ict rig's 55 (split brows, pupils) work too."""
    page.select_option("#glb", "files/face_ict.glb")
    page.wait_for_function("window.viewer.ready && window.viewer.targetNames.length === 55", timeout=90_000)
    assert page.locator("#morph-browInnerUpLeft").count() == 1 and page.locator("#morph-browInnerUp").count() == 0
    assert page.locator("#morph-pupilDilateLeft").count() == 1
    _set_slider(page, "browInnerUpLeft", 1.0)
    i = page.evaluate("window.viewer.targetNames.indexOf('browInnerUpLeft')")
    assert page.evaluate(f"window.viewer.meshes[0].morphTargetInfluences[{i}]") == 1.0
    assert page.errors == [], page.errors


def test_server_serves_only_the_folder(demo, server):
    assert server.server_address[0] == "127.0.0.1"

    def status(path: str) -> int:
        try:
            with urllib.request.urlopen(server.url.rstrip("/") + path, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    assert status("/files/face.glb") == 200 and status("/files/pose.json") == 200 and status("/manifest.json") == 200
    assert status("/static/vendor/three.module.min.js") == 200 and status("/derived/input.png") == 200
    for bad in ("/files/../pose.json", "/files/%2e%2e/%2e%2e/etc/passwd", "/files/frame.npz", "/static/../server.py",
                "/static/%2e%2e/server.py", "/files/", "/etc/passwd"):
        assert status(bad) == 404, bad


@pytest.mark.parametrize("name", ["anim.glb", "face_head.glb"])
def test_bare_glb_is_framed(browser, demo, tmp_path, name):
    """A GLB alone in its folder (no picture, pose or landmarks): the camera fits the model's bounds,
    so the whole model is on the canvas and fills a good part of it (issue #25: it opened zoomed in, clipped)."""
    from facerecon.viewer import start

    shutil.copyfile(demo[0] / name, tmp_path / name)
    srv, thread = start(tmp_path / name)
    page = browser.new_page(viewport={"width": 1100, "height": 700})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(srv.url)
        page.wait_for_function("window.viewer && window.viewer.ready && window.viewer.frames > 0", timeout=90_000)
        x0, y0, x1, y1 = page.evaluate("window.viewer.modelNdc()")
        assert -1.0 <= x0 and x1 <= 1.0 and -1.0 <= y0 and y1 <= 1.0, (x0, y0, x1, y1)  # nothing clipped
        assert max(x1 - x0, y1 - y0) > 0.9, (x0, y0, x1, y1)  # and not a speck: > 45 % of the canvas
        if name == "face_head.glb":
            page.screenshot(path=str(ARTIFACTS / "viewer_bare_glb.png"))
        assert errors == [], errors
    finally:
        page.close()
        srv.shutdown()
        srv.server_close()


def test_photo_input_is_the_picture(tmp_path, demo):
    """The photo path's pose.json names the photo: it is served as the picture behind the mesh."""
    import json
    from io import BytesIO

    from PIL import Image

    from facerecon.viewer import start

    shutil.copyfile(demo[0] / "face.glb", tmp_path / "face.glb")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(tmp_path.parent / "photo_in.jpg")
    (tmp_path / "pose.json").write_text(json.dumps({"frame": str(tmp_path.parent / "photo_in.jpg"), "method": "photo"}))
    srv, thread = start(tmp_path)
    try:
        assert srv.manifest.picture == "derived"
        with urllib.request.urlopen(srv.url + "derived/input.png", timeout=10) as r:
            assert Image.open(BytesIO(r.read())).size == (640, 480)
        with pytest.raises(urllib.error.HTTPError):  # outside the folder: used for the picture, never served
            urllib.request.urlopen(srv.url + "files/photo_in.jpg", timeout=10)
    finally:
        srv.shutdown()
        srv.server_close()


def test_view_cli_errors(tmp_path, capsys, monkeypatch):
    import typer

    import facerecon.cli as cli

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.callback()(lambda: None)
    monkeypatch.setattr(cli, "app", app)
    monkeypatch.setattr(cli, "_COMMAND_MODULES", ("view",))
    assert cli.main(["view", str(tmp_path), "--no-browser"]) == 1
    assert "no .glb in the folder" in capsys.readouterr().err
    assert cli.main(["view", str(tmp_path / "x.obj"), "--no-browser"]) == 1
    assert "no such file" in capsys.readouterr().err
