"""Every writer path of one depth frame into a folder, to compare two checkouts byte for byte.

    PYTHONPATH=OTHER/src python benchmarks/writer_bytes.py FRAME OUT_A
    PYTHONPATH=src       python benchmarks/writer_bytes.py FRAME OUT_B
    diff -r OUT_A OUT_B

Writes, twice each (the second call through the writers' caches: topology, GLB templates), the
meshes of ``write_face_meshes`` in OBJ, PLY and rigged GLB with the detail maps (``maps0/1``),
without them (``plain0/1``) and with a texture (``tex0/1``), the second round with another expression
and source name; then ``write_mesh`` OBJs of ICT's triangles with and without UVs and of mixed polygons.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("frame", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args(argv)

    from facerecon.cli._frames import load_frame
    from facerecon.export import write_face_meshes
    from facerecon.export.maps import detail_maps
    from facerecon.io.mesh import write_mesh
    from facerecon.pipeline import Reconstructor

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    f = load_frame(args.frame, None, None)
    eng = Reconstructor.from_pretrained("fast", search_others=True)
    rec = eng.reconstruct(f)
    m = eng.model
    maps = detail_maps(rec, m, f)
    for i in range(2):
        for name, kw in (("maps", {"maps": maps, "formats": ("obj", "ply", "glb"), "intrinsics": f.intrinsics}),
                         ("plain", {"formats": ("obj", "ply", "glb"), "intrinsics": f.intrinsics}),
                         ("tex", {"formats": ("obj", "glb"), "texture": np.full((16, 16, 3), 100, np.uint8), "head_frame": False})):
            d = out / f"{name}{i}"
            d.mkdir(exist_ok=True)
            write_face_meshes(rec, m, d, **kw)
        rec = dataclasses.replace(rec, expression=np.asarray(rec.expression) * 0.5, source=rec.source + "x")
    write_mesh(out / "tri.obj", m.neutral, m.triangles)
    write_mesh(out / "tri_uv.obj", m.neutral, m.triangles, m.uv, m.triangle_uv)
    write_mesh(out / "mixed.obj", np.random.default_rng(0).normal(size=(6, 3)), [[0, 1, 2], [2, 3, 4, 5], [0, 5, 1]])
    print(f"wrote {sum(1 for p in out.rglob('*') if p.is_file())} files under {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
