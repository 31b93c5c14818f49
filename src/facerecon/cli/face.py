"""``facerecon sample-face``: random faces from the model, as OBJ meshes and a preview."""
from __future__ import annotations

from pathlib import Path

import typer

from ._console import stderr_console

console = stderr_console()


def sample_face(
    n: int = typer.Option(5, "--n", min=1, max=1000, help="How many faces."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (created)."),
    seed: int = typer.Option(0, help="Random seed (same seed, same faces)."),
    identity_scale: float = typer.Option(1.0, help="Standard deviations of the identity weights."),
    expression: bool = typer.Option(True, "--expression/--neutral", help="Random sparse ARKit expressions."),
) -> None:
    """Sample random identities (N(0,1) on 100 modes) and expressions; write OBJ (with UVs) + preview PNG."""
    import json

    import numpy as np

    from ..facemodel import FaceModel
    from ..fileutil import write_text_atomic
    from ..io.mesh import write_mesh
    from ..viz.shaded import save_face_grid

    model = FaceModel.load()
    rng = np.random.default_rng(seed)
    identity = rng.normal(size=(n, model.n_identity)).astype(np.float32) * identity_scale
    expr = np.zeros((n, model.n_expression), np.float32)
    if expression:
        for i in range(n):
            k = rng.integers(1, 4)
            idx = rng.choice(model.n_arkit_expression, size=k, replace=False)
            expr[i, idx] = rng.uniform(0.3, 1.0, size=k)
    verts = model.vertices(identity, expr)
    out.mkdir(parents=True, exist_ok=True)
    polys, polys_uv = model.polygon_lists()
    for i in range(n):
        write_mesh(out / f"face_{i:03d}.obj", verts[i], polys, model.uv, polys_uv,
                   header="facerecon sample-face: ICT-FaceKit Light topology (MIT), mm, canonical head frame (x left, y down, z into the head)")
        active = {model.expression_names[j]: round(float(expr[i, j]), 3) for j in np.flatnonzero(expr[i])}
        write_text_atomic(
            out / f"face_{i:03d}.json",
            json.dumps({"seed": seed, "index": i, "identity": identity[i].round(4).tolist(), "expression": active}, indent=1),
        )
    save_face_grid(model, verts, out / "preview.png")
    console.print(f"wrote {n} faces (OBJ, JSON) and preview.png to {out}")


def register(app: typer.Typer) -> None:
    app.command("sample-face")(sample_face)
