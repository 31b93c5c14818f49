"""Preprocessing: head localisation and position images (the network input).

``localize_head(frame) -> HeadLocation`` finds the head in a raw depth frame;
``make_position_image(frame, center_mm) -> PositionImage`` cuts the 160x160x3 network input
around it.  Both are used identically for synthetic and real frames.
"""
from __future__ import annotations

from .localize import HeadLocation, LocalizeParams, localize_head, min_pool_depth
from .position_image import (
    DEFAULT_BAND_MM,
    DEFAULT_OUT,
    DEFAULT_SIZE_MM,
    POSITION_SCALE_MM,
    PositionImage,
    make_position_image,
    stack_position_images,
)

__all__ = [
    "HeadLocation",
    "LocalizeParams",
    "localize_head",
    "min_pool_depth",
    "PositionImage",
    "make_position_image",
    "stack_position_images",
    "POSITION_SCALE_MM",
    "DEFAULT_SIZE_MM",
    "DEFAULT_OUT",
    "DEFAULT_BAND_MM",
]
