"""Shared test fixtures: paths into ../shared (never copied into the repo)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACERECON_SHARED", REPO.parent / "shared"))
REAL = SHARED / "data" / "real"
ICT_ARCHIVE = SHARED / "assets" / "ict-facekit" / "ICT-FaceKit-FaceXModel.tar.xz"
# The library never looks for ../shared itself: the tests pass its location in.
if SHARED.is_dir():
    os.environ.setdefault("FACERECON_SHARED", str(SHARED))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture(scope="session")
def real_dir() -> Path:
    return _need(REAL)


@pytest.fixture(scope="session")
def ict_archive() -> Path:
    return _need(ICT_ARCHIVE)


@pytest.fixture(autouse=True)
def _pose_json_follows_the_schema(request):
    """Every pose.json a test's CLI run writes (under its tmp_path) must follow the shipped
    schema (facerecon/data/pose.schema.json): checked after each test that uses tmp_path."""
    if "tmp_path" not in request.fixturenames:
        yield
        return
    root = request.getfixturevalue("tmp_path")  # taken before the test, so it is torn down after this check
    yield
    import json as _json

    from facerecon.export.pose_json import validate

    for p in list(root.rglob("pose.json")) + list(root.rglob("*.pose.json")):
        try:
            doc = _json.loads(p.read_text())
        except ValueError:
            continue  # a test's own malformed input
        if isinstance(doc, dict) and "schema_version" in doc:  # what facerecon wrote (not a data set's label, a test's own file)
            validate(doc)
