"""Local browser viewer for reconstructions and rigged GLBs (``facerecon view``); see :mod:`.server`."""
from __future__ import annotations

from .server import Manifest, ViewerServer, scan, start

__all__ = ["Manifest", "ViewerServer", "scan", "start"]
