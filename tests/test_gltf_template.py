"""The per-layout GLB template: the same bytes as a full pygltflib build, for different results."""
from __future__ import annotations

import gltf_helpers
import pytest
from gltf_helpers import synthetic_rec

ict_model = gltf_helpers.ict_model


def _full(rec, model, rig, frame, intrinsics):
    from facerecon.export import gltf

    layout = gltf.gltf_layout(model, rig)
    return gltf._glb_bytes(gltf._gltf_document(rec, model, layout, frame, None, intrinsics, None, None, None))


@pytest.mark.parametrize("rig", ["arkit52", "ict"])
def test_template_bytes_equal_full_build(ict_model, rig):
    from facerecon.export import gltf
    from facerecon.export.gltf import build_glb
    from facerecon.geometry.camera import Intrinsics

    k = Intrinsics(520.0, 520.0, 320.0, 240.0, 640, 480)
    recs = [synthetic_rec(ict_model, seed=3, euler=(20.0, -5.0, 3.0), t=(10.0, -20.0, 600.0)),
            synthetic_rec(ict_model, seed=11, euler=(-30.0, 12.0, -8.0), t=(-25.0, 5.0, 450.0))]
    recs[1].source = "another frame \u00e9"  # non-ASCII names are escaped alike
    gltf.glb_templates(ict_model).clear()
    for frame, intrinsics in (("camera", k), ("head", None), ("camera", None)):
        for rec in recs:  # the first makes the template, the second fills it
            new = build_glb(rec, ict_model, frame, intrinsics=intrinsics, rig=rig)
            assert new == _full(rec, ict_model, rig, frame, intrinsics), (rig, frame, rec.source)
    made = gltf.glb_templates(ict_model)
    assert all(made[rig, f, None if k is None else (520.0, 520.0, 320.0, 240.0, 640.0, 480.0), False] is not None
               for f, k in (("camera", k), ("head", None), ("camera", None)))
    assert build_glb(recs[0], ict_model, "camera", intrinsics=k, rig=rig) != build_glb(recs[1], ict_model, "camera",
                                                                                       intrinsics=k, rig=rig)


def test_textured_and_nameless_results_take_the_full_build(ict_model):
    import json
    import struct

    import numpy as np

    from facerecon.export.gltf import build_glb

    rec = synthetic_rec(ict_model, seed=5)
    rec.source = ""  # pygltflib drops an empty string: the template would not be that file
    assert build_glb(rec, ict_model, "head", rig="arkit52") == _full(rec, ict_model, "arkit52", "head", None)
    tex = np.full((8, 8, 3), 128, np.uint8)
    glb = build_glb(rec, ict_model, "head", texture=tex, rig="arkit52")
    doc = json.loads(glb[20:20 + struct.unpack_from("<I", glb, 12)[0]])
    assert doc["images"][0]["mimeType"] == "image/png"


def test_normal_map_template_bytes_equal_full_build(ict_model):
    """With the detail layer's normal map (reconstruct's default GLB): the tangents and the PNG (of any
    length: the binary chunk's tail) fill the template, and the bytes equal a full build."""
    import numpy as np

    from facerecon.export import gltf
    from facerecon.geometry.camera import Intrinsics

    k = Intrinsics(520.0, 520.0, 320.0, 240.0, 640, 480)
    recs = [synthetic_rec(ict_model, seed=3, euler=(20.0, -5.0, 3.0), t=(10.0, -20.0, 600.0)),
            synthetic_rec(ict_model, seed=11, euler=(-30.0, 12.0, -8.0), t=(-25.0, 5.0, 450.0)),
            synthetic_rec(ict_model, seed=12, euler=(5.0, 2.0, 1.0), t=(0.0, 0.0, 500.0))]
    rng = np.random.default_rng(0)
    pngs = [gltf._png_bytes(rng.integers(100, 156, (s, s, 3), dtype=np.uint8)) for s in (16, 24, 33)]
    assert len({len(p) % 4 for p in pngs}) > 1  # different tails' padding
    layout = gltf.gltf_layout(ict_model, "arkit52")
    gltf.glb_templates(ict_model).clear()
    for frame, intrinsics in (("camera", k), ("head", None)):
        for rec, png in zip(recs, pngs):  # the first makes the template, the others fill it
            new = gltf.build_glb(rec, ict_model, frame, intrinsics=intrinsics, rig="arkit52", normal_png=png)
            full = gltf._glb_bytes(gltf._gltf_document(rec, ict_model, layout, frame, None, intrinsics, None, None, png))
            assert new == full, (frame, rec.source)
    assert sum(t is not None and ("IMAGE",) in t.holes for t in gltf.glb_templates(ict_model).values()) == 2


def test_template_from_the_disk_cache(ict_model, tmp_path, monkeypatch):
    """A template is written to $FACERECON_HOME/gltf once and read back by a later process (here: the
    in-memory cache emptied) without the layout or pygltflib, the same bytes; a damaged file (a flipped
    byte, a truncated one, another key's) is not used: the template is made again and the file rewritten."""
    import numpy as np

    from facerecon.export import gltf
    from facerecon.geometry.camera import Intrinsics

    monkeypatch.setenv("FACERECON_HOME", str(tmp_path))
    k = Intrinsics(520.0, 520.0, 320.0, 240.0, 640, 480)
    recs = [synthetic_rec(ict_model, seed=3, euler=(20.0, -5.0, 3.0), t=(10.0, -20.0, 600.0)),
            synthetic_rec(ict_model, seed=11, euler=(-30.0, 12.0, -8.0), t=(-25.0, 5.0, 450.0))]
    png = gltf._png_bytes(np.random.default_rng(0).integers(100, 156, (16, 16, 3), dtype=np.uint8))
    layout = gltf.gltf_layout(ict_model, "arkit52")
    cases = [("camera", k, None), ("head", None, png)]
    full = {(f, i): gltf._glb_bytes(gltf._gltf_document(rec, ict_model, layout, f, None, kk, None, None, p))
            for f, kk, p in cases for i, rec in enumerate(recs)}
    gltf.glb_templates(ict_model).clear()
    for f, kk, p in cases:
        assert gltf.build_glb(recs[0], ict_model, f, intrinsics=kk, rig="arkit52", normal_png=p) == full[f, 0]
    files = sorted((tmp_path / "gltf").glob("glb-template-*.bin"))
    assert len(files) == 2

    def no_full_build(*a, **kw):
        raise AssertionError("a template from the disk cache needs no full build")

    with monkeypatch.context() as m:
        m.setattr(gltf, "gltf_layout", no_full_build)
        gltf.glb_templates(ict_model).clear()
        for f, kk, p in cases:
            for i, rec in enumerate(recs):
                assert gltf.build_glb(rec, ict_model, f, intrinsics=kk, rig="arkit52", normal_png=p) == full[f, i]
    good = files[0].read_bytes()
    for bad in (good[:-1] + bytes([good[-1] ^ 1]), good[: len(good) // 2], files[1].read_bytes()):
        files[0].write_bytes(bad)
        gltf.glb_templates(ict_model).clear()
        for f, kk, p in cases:
            assert gltf.build_glb(recs[1], ict_model, f, intrinsics=kk, rig="arkit52", normal_png=p) == full[f, 1]
        assert files[0].read_bytes() == good  # made again and rewritten

