"""Preprocessing: head localisation and position images (the network input)."""
from __future__ import annotations

from .localize import HeadLocation, LocalizeParams, localize_head

__all__ = ["HeadLocation", "LocalizeParams", "localize_head"]
