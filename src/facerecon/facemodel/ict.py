"""ICT-FaceKit Light: find it, convert it once to a compact cache, fetch it when asked.

Resolution order (first that applies wins):

1. an explicit ``path`` argument (a directory, ``.zip`` or ``.tar.xz`` of ICT-FaceKit, or
   a converted ``.safetensors`` cache file);
2. the ``FACERECON_ICT`` environment variable (same kinds of path);
3. the converted cache in ``$FACERECON_HOME`` (default ``~/.cache/facerecon``);
4. otherwise an :class:`AssetError` that says to run ``facerecon assets fetch``.

A source archive or folder is converted once into ``$FACERECON_HOME/ict-facekit-light.safetensors``
(millimetres, canonical head frame, float32) together with the source's identity (path,
size, mtime) so that a changed source is converted again. The cache records the source
and the MIT licence text of ICT-FaceKit.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import AssetError
from ..fileutil import atomic_path
from . import obj_parse

CACHE_NAME = "ict-facekit-light.safetensors"
CONVERTER_VERSION = "1"
UPSTREAM_REPO = "https://github.com/ICT-VGL/ICT-FaceKit"
UPSTREAM_COMMIT = "da5f95a"
UPSTREAM_URL = f"{UPSTREAM_REPO}/archive/{UPSTREAM_COMMIT}.zip"
# SHA-256 of files inside the upstream tree at the pinned commit (checked after a fetch;
# the archive's own hash depends on how the host packs it, the contents do not).
UPSTREAM_FILE_SHA256 = {
    "FaceXModel/generic_neutral_mesh.obj": "eedbc2576d8e5ea57f55255b8f98263213a1efb5431d8bfceed1d7aef10271f9",
    "FaceXModel/vertex_indices.json": "4f9b35306299980dd46bee4a6b79bb95dfae1953693b74b35a64f7febfd081a5",
    "FaceXModel/identity000.obj": "918160cf82d541336b4c367cf93199c9827832bde02511b8fbdf9019d6f1a773",
    "FaceXModel/jawOpen.obj": "8d84355e10f48b05550980cee385bcd426f4797090da76a20de0535bb2f99f4a",
}
N_IDENTITY = 100
PUPIL_SHAPES = ("PupilDilate_L", "PupilDilate_R")
CM_TO_MM = 10.0
# ICT axes (x subject's left, y up, z out of the face) -> canonical head frame
# (x subject's left, y down, z into the head): a 180 degree turn about x.
ICT_TO_HEAD = np.diag([1.0, -1.0, -1.0])


def facerecon_home() -> Path:
    return Path(os.environ.get("FACERECON_HOME", Path.home() / ".cache" / "facerecon")).expanduser()


def default_cache_path() -> Path:
    return facerecon_home() / CACHE_NAME


# -- reading a source (folder, zip, tar.xz) ------------------------------------------
class _Source:
    """Uniform access to the files of an ICT-FaceKit tree, wherever they live."""

    def __init__(self, path: Path):
        self.path = path
        if path.is_dir():
            self._files = {str(p.relative_to(path)).replace(os.sep, "/"): p for p in path.rglob("*") if p.is_file()}
            self._read: Callable[[str], bytes] = lambda name: self._files[name].read_bytes()
            names = list(self._files)
        elif path.suffix == ".zip":
            import zipfile  # here and below: a frame that reads the converted model imports no archive or network code

            self._zip = zipfile.ZipFile(path)
            names = [n for n in self._zip.namelist() if not n.endswith("/")]
            self._read = self._zip.read
        elif path.name.endswith((".tar.xz", ".tar.gz", ".tgz", ".tar")):
            import tarfile

            # Stream once: reading members out of order from an xz stream re-decompresses.
            with tarfile.open(path) as tf:
                self._blobs = {}
                for m in tf:
                    if m.isfile() and (m.name.endswith((".obj", ".json")) or Path(m.name).name in ("LICENSE", "README.md")):
                        f = tf.extractfile(m)
                        assert f is not None
                        self._blobs[m.name.lstrip("./")] = f.read()
            names = list(self._blobs)
            self._read = self._blobs.__getitem__
        else:
            raise AssetError(f"{path}: not an ICT-FaceKit folder, .zip or .tar.xz")
        # Find the FaceXModel folder whatever the top-level prefix (archives from hosts add one).
        anchors = [n for n in names if n.endswith("FaceXModel/generic_neutral_mesh.obj")]
        if not anchors:
            raise AssetError(f"{path}: no FaceXModel/generic_neutral_mesh.obj inside: not ICT-FaceKit")
        self.model_prefix = anchors[0][: -len("generic_neutral_mesh.obj")]
        self.root_prefix = self.model_prefix[: -len("FaceXModel/")]
        self.names = set(names)

    def model_file(self, name: str) -> bytes:
        key = self.model_prefix + name
        if key not in self.names:
            raise AssetError(f"{self.path}: missing FaceXModel/{name}")
        return self._read(key)

    def root_file(self, name: str) -> bytes | None:
        key = self.root_prefix + name
        return self._read(key) if key in self.names else None


def _source_identity(path: Path) -> dict:
    st = path.stat()
    return {"source_path": str(path.resolve()), "source_size": str(st.st_size), "source_mtime": str(int(st.st_mtime))}


@dataclass
class ConversionReport:
    cache_path: Path
    seconds: float
    n_vertices: int
    n_identity: int
    n_expression: int


def convert(source: Path, cache_path: Path | None = None, progress: Callable[[int, int], None] | None = None) -> ConversionReport:
    """Convert an ICT-FaceKit tree to the compact cache (mm, canonical head frame)."""
    from safetensors.numpy import save_file

    t0 = time.perf_counter()
    source = Path(source)
    if not source.exists():
        raise AssetError(f"{source}: no such file or folder")
    cache_path = Path(cache_path) if cache_path else default_cache_path()
    src = _Source(source)
    try:
        indices = json.loads(src.model_file("vertex_indices.json"))
    except json.JSONDecodeError as exc:
        raise AssetError(f"{source}: vertex_indices.json is not valid JSON ({exc.msg})") from None
    expressions = list(indices["expressions"]) + list(PUPIL_SHAPES)
    try:
        neutral_obj = obj_parse.parse_full(src.model_file("generic_neutral_mesh.obj").decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise AssetError(f"{source}: generic_neutral_mesh.obj cannot be parsed ({exc})") from None
    to_head = (ICT_TO_HEAD * CM_TO_MM)
    neutral = neutral_obj.vertices @ to_head.T
    n_v = len(neutral)
    names = [f"identity{i:03d}.obj" for i in range(N_IDENTITY)] + [f"{e}.obj" for e in expressions]
    deltas = np.empty((len(names), n_v, 3), dtype=np.float32)
    for k, name in enumerate(names):
        try:
            v = obj_parse.parse_vertices(src.model_file(name).decode())
        except (ValueError, UnicodeDecodeError) as exc:
            raise AssetError(f"{source}: FaceXModel/{name} cannot be parsed ({exc})") from None
        if v.shape != (n_v, 3):
            raise AssetError(f"{source}: FaceXModel/{name} has {len(v)} vertices, the neutral mesh {n_v}")
        deltas[k] = (v @ to_head.T - neutral).astype(np.float32)
        if progress:
            progress(k + 1, len(names))
    tris, tri_uv, tri_mat, tri_poly = obj_parse.triangulate(
        neutral_obj.polygons, neutral_obj.polygon_uv, neutral_obj.polygon_material
    )
    licence = (src.root_file("LICENSE") or b"").decode("utf-8", "replace")
    if "MIT" not in licence and "Permission is hereby granted" not in licence:
        licence = "MIT License, Copyright (c) 2020 USC Institute for Creative Technologies (see upstream LICENSE)"
    meta = {
        "format": "facerecon-ict-cache",
        "converter_version": CONVERTER_VERSION,
        "model": "ICT-FaceKit Light (FaceXModel)",
        "upstream": f"{UPSTREAM_REPO} @ {UPSTREAM_COMMIT}",
        "licence": licence,
        "units": "mm",
        "frame": "canonical head frame: x subject's left, y down, z into the head; origin = ICT model origin",
        "identity_names": json.dumps([f"identity{i:03d}" for i in range(N_IDENTITY)]),
        "expression_names": json.dumps(expressions),
        "materials": json.dumps(neutral_obj.materials),
        "landmarks_68": json.dumps(indices["idx_to_landmark_verts"]),
        "ict_rigid_landmarks": json.dumps(indices.get("idx_to_rigid_landmark_idx", [])),
        **_source_identity(source),
    }
    tensors = {
        "neutral": neutral.astype(np.float32),
        "identity_basis": deltas[:N_IDENTITY],
        "expression_basis": deltas[N_IDENTITY:],
        "uv": neutral_obj.uv,
        "polygons": neutral_obj.polygons,
        "polygon_uv": neutral_obj.polygon_uv,
        "polygon_material": neutral_obj.polygon_material.astype(np.int32),
        "triangles": tris,
        "triangle_uv": tri_uv,
        "triangle_material": tri_mat.astype(np.int32),
        "triangle_polygon": tri_poly,
        "fitting_vertices": np.asarray(indices.get("idx_to_fitting_verts", []), dtype=np.int32),
        "rigid_vertices": np.asarray(indices.get("idx_to_rigid_verts", []), dtype=np.int32),
    }
    with atomic_path(cache_path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return ConversionReport(cache_path, time.perf_counter() - t0, n_v, N_IDENTITY, len(expressions))


def _cache_matches(cache: Path, source: Path) -> bool:
    from safetensors import safe_open

    try:
        with safe_open(str(cache), framework="numpy") as f:
            meta = f.metadata() or {}
    except Exception:
        return False
    ident = _source_identity(source)
    return meta.get("converter_version") == CONVERTER_VERSION and all(meta.get(k) == v for k, v in ident.items())


def resolve_cache(path: str | Path | None = None, *, convert_if_needed: bool = True) -> Path:
    """Path of a converted cache file, following the documented resolution order."""
    candidates: list[tuple[str, Path]] = []
    if path is not None:
        candidates.append(("argument", Path(path).expanduser()))
    env = os.environ.get("FACERECON_ICT")
    if env:
        candidates.append(("FACERECON_ICT", Path(env).expanduser()))
    for origin, p in candidates:
        if not p.exists():
            raise AssetError(f"{p}: ICT-FaceKit not found (from {origin})")
        if p.suffix == ".safetensors":
            return p
        cache = default_cache_path()
        if cache.exists() and _cache_matches(cache, p):
            return cache
        if not convert_if_needed:
            raise AssetError(f"{p}: not converted yet; run 'facerecon assets build'")
        return convert(p, cache).cache_path
    cache = default_cache_path()
    if cache.exists():
        return cache
    raise AssetError(
        "ICT-FaceKit face model not found: run 'facerecon assets fetch' (downloads it, MIT licence, no registration) "
        "or set FACERECON_ICT to an ICT-FaceKit folder/.zip/.tar.xz"
    )


def fetch(url: str = UPSTREAM_URL, dest_dir: Path | None = None, timeout: float = 60.0) -> Path:
    """Download the upstream archive at the pinned commit, verify its contents, convert it."""
    dest_dir = Path(dest_dir) if dest_dir else facerecon_home()
    dest = dest_dir / f"ICT-FaceKit-{UPSTREAM_COMMIT}.zip"
    if not dest.exists():
        import urllib.request

        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                data = resp.read()
        except OSError as exc:
            raise AssetError(f"{url}: download failed ({exc}); set FACERECON_ICT to a local copy instead") from None
        with atomic_path(dest) as tmp:
            tmp.write_bytes(data)
    verify_source(dest)
    return convert(dest).cache_path


def verify_source(path: Path) -> None:
    """Check the pinned files of an ICT-FaceKit source against their recorded SHA-256."""
    src = _Source(Path(path))
    for name, expected in UPSTREAM_FILE_SHA256.items():
        got = hashlib.sha256(src.model_file(name.split("/", 1)[1])).hexdigest()
        if got != expected:
            raise AssetError(f"{path}: {name} does not match the pinned upstream commit {UPSTREAM_COMMIT} (sha256 {got[:12]}...)")


def read_cache_metadata(cache: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(cache), framework="numpy") as f:
        return dict(f.metadata() or {})
