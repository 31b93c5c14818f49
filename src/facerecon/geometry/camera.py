"""Pinhole depth cameras: intrinsics, named presets, depth <-> points, projection.

Camera frame: x right, y down, z forward, millimetres (OpenCV convention).  Pixel
``(u, v)`` has its centre at integer coordinates; column ``u`` grows right, row ``v`` down.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels for an image of ``width`` x ``height`` pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @property
    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    def crop(self, x0: int, y0: int, width: int, height: int) -> "Intrinsics":
        """Intrinsics of the sub-image whose top-left pixel is (x0, y0) in this image."""
        return Intrinsics(self.fx, self.fy, self.cx - x0, self.cy - y0, int(width), int(height))

    def resize(self, width: int, height: int) -> "Intrinsics":
        """Intrinsics after scaling the whole image to ``width`` x ``height`` pixels.

        Pixel centres map as ``u' = (u + 0.5) * sx - 0.5``, the convention of area and
        bilinear resizing with aligned corners off (OpenCV, PIL, torch).
        """
        sx, sy = width / self.width, height / self.height
        return Intrinsics(
            self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5, int(width), int(height)
        )

    def with_size(self, width: int, height: int) -> "Intrinsics":
        return replace(self, width=int(width), height=int(height))

    # -- geometry -------------------------------------------------------------------
    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) camera-frame points -> (..., 2) pixel coordinates (u, v)."""
        p = np.asarray(points, dtype=np.float64)
        z = p[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.fx * p[..., 0] / z + self.cx
            v = self.fy * p[..., 1] / z + self.cy
        return np.stack([u, v], axis=-1)

    def unproject(self, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Pixel coordinates (..., 2) and depth (...) along z -> (..., 3) camera points."""
        uv = np.asarray(uv, dtype=np.float64)
        d = np.asarray(depth, dtype=np.float64)
        x = (uv[..., 0] - self.cx) / self.fx * d
        y = (uv[..., 1] - self.cy) / self.fy * d
        return np.stack([x, y, d], axis=-1)

    def depth_to_points(self, depth: np.ndarray) -> np.ndarray:
        """(H, W) depth image (z, any unit) -> (H, W, 3) points in the same unit.

        Pixels with depth 0 (no measurement) map to (0, 0, 0).
        """
        depth = np.asarray(depth)
        if depth.shape != (self.height, self.width):
            raise ValueError(f"depth image is {depth.shape[1]}x{depth.shape[0]}, intrinsics are {self.width}x{self.height}")
        u = np.arange(self.width, dtype=np.float32)
        v = np.arange(self.height, dtype=np.float32)
        d = depth.astype(np.float32)
        x = (u[None, :] - np.float32(self.cx)) * (d / np.float32(self.fx))
        y = (v[:, None] - np.float32(self.cy)) * (d / np.float32(self.fy))
        return np.stack([x, y, d], axis=-1)

    def valid_points(self, depth: np.ndarray) -> np.ndarray:
        """(N, 3) points of the pixels with a measurement (depth > 0)."""
        pts = self.depth_to_points(depth)
        return pts[np.asarray(depth) > 0]

    def to_dict(self) -> dict:
        return {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy, "width": self.width, "height": self.height}

    @staticmethod
    def from_dict(d: dict) -> "Intrinsics":
        return Intrinsics(float(d["fx"]), float(d["fy"]), float(d["cx"]), float(d["cy"]), int(d["width"]), int(d["height"]))


@lru_cache(maxsize=1)
def _preset_table() -> dict[str, dict]:
    text = resources.files("facerecon").joinpath("data/cameras.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def camera_presets() -> dict[str, str]:
    """Preset name -> where its numbers come from."""
    return {name: row["source"] for name, row in _preset_table().items()}


def camera_preset(name: str) -> Intrinsics:
    """Named intrinsics (``kinect-v1``, ``kinect-v1-biwi``, ``kinect-v2``, ``realsense-d435``, ``truedepth-320x240``)."""
    table = _preset_table()
    if name not in table:
        raise ConfigError(f"unknown camera preset {name!r}; known: {', '.join(sorted(table))}")
    return Intrinsics.from_dict(table[name])


def parse_intrinsics(text: str, width: int, height: int) -> Intrinsics:
    """Parse ``"fx,fy,cx,cy"`` (as given on the command line) for an image of the given size."""
    try:
        fx, fy, cx, cy = (float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"--intrinsics must be 'fx,fy,cx,cy' (four numbers), got {text!r}") from None
    if fx <= 0 or fy <= 0:
        raise ConfigError(f"--intrinsics: focal lengths must be positive, got {text!r}")
    return Intrinsics(fx, fy, cx, cy, int(width), int(height))


def fit_intrinsics(points: np.ndarray) -> Intrinsics:
    """Recover pinhole intrinsics from an organised (H, W, 3) point cloud (NaN = invalid).

    Least squares on u = fx * x/z + cx and v = fy * y/z + cy over the valid pixels.
    """
    h, w, _ = points.shape
    vv, uu = np.mgrid[0:h, 0:w]
    ok = np.isfinite(points).all(-1) & (points[..., 2] > 0)
    if ok.sum() < 10:
        raise ValueError("too few valid points to fit intrinsics")
    xz = points[..., 0][ok] / points[..., 2][ok]
    yz = points[..., 1][ok] / points[..., 2][ok]
    (fx, cx), *_ = np.linalg.lstsq(np.stack([xz, np.ones_like(xz)], 1), uu[ok].astype(np.float64), rcond=None)
    (fy, cy), *_ = np.linalg.lstsq(np.stack([yz, np.ones_like(yz)], 1), vv[ok].astype(np.float64), rcond=None)
    return Intrinsics(float(fx), float(fy), float(cx), float(cy), w, h)
