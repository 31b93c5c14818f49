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
