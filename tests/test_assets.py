"""Face-model assets: pinned-content verification, resolution order, clean errors."""
from __future__ import annotations

import tarfile

import pytest

from facerecon.errors import AssetError
from facerecon.facemodel import ict


@pytest.mark.slow  # decompresses the whole archive (~3 s)
def test_shared_archive_matches_the_pinned_upstream_files(ict_archive):
    ict.verify_source(ict_archive)  # raises on any mismatch


@pytest.mark.slow  # decompresses the whole archive (~3 s)
def test_tampered_copy_is_rejected(ict_archive, tmp_path):
    bad = tmp_path / "ict.tar"
    with tarfile.open(ict_archive) as src, tarfile.open(bad, "w") as dst:
        for m in src:
            if m.name.endswith("vertex_indices.json"):
                data = src.extractfile(m).read() + b" "
                m.size = len(data)
                import io

                dst.addfile(m, io.BytesIO(data))
            elif m.isfile() and m.name.endswith(("generic_neutral_mesh.obj", "identity000.obj", "jawOpen.obj")):
                dst.addfile(m, src.extractfile(m))
    with pytest.raises(AssetError, match="does not match the pinned upstream"):
        ict.verify_source(bad)


def test_missing_or_wrong_sources_give_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("FACERECON_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FACERECON_ICT", raising=False)
    with pytest.raises(AssetError, match="facerecon assets fetch"):
        ict.resolve_cache()
    with pytest.raises(AssetError, match="not found"):
        ict.resolve_cache(tmp_path / "nope.tar.xz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AssetError, match="not ICT-FaceKit"):
        ict.resolve_cache(tmp_path / "empty")
