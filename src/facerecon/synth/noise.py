"""Reproducible random fields for the sensor models (numba).

* per-pixel uniforms from a counter-based hash (splitmix64) of a drawn 63-bit key;
* standard-normal fields read from a fixed pool of pre-drawn normals at a drawn offset;
  a coarse grid (``cell`` px spacing) is bilinearly interpolated and rescaled to unit
  variance, so ``cell`` is the correlation length.

Everything is drawn from the frame's sensor Generator, so frames reproduce exactly.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

_POOL_SIZE = 1 << 21
_NORMAL_POOL = np.random.default_rng(20240917).standard_normal(_POOL_SIZE, dtype=np.float32)


@njit(cache=True)
def _u01(key, i):
    """Uniform [0, 1) from (key, i): splitmix64 finaliser (counter-based, no state)."""
    x = np.uint64(key) + np.uint64(i) * np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return np.float64(x >> np.uint64(11)) * (1.0 / 9007199254740992.0)


def coarse_noise(rng: np.random.Generator, h: int, w: int, cell: int = 1) -> tuple[np.ndarray, int]:
    """A standard-normal grid covering (h, w) at ``cell`` px spacing (a view into the pool), and the cell."""
    cell = max(int(round(cell)), 1)
    gh, gw = (h, w) if cell == 1 else (h // cell + 2, w // cell + 2)
    off = int(rng.integers(0, _POOL_SIZE - gh * gw))
    return _NORMAL_POOL[off : off + gh * gw].reshape(gh, gw), cell


@njit(cache=True)
def _expand(g, cell, h, w):
    """Separable bilinear upsampling of a coarse normal grid (node (i, j) at pixel (i*cell, j*cell)),
    rescaled so that every pixel is again a unit-variance normal."""
    gh = g.shape[0]
    rows = np.empty((gh, w), np.float32)
    for gy in range(gh):
        for x in range(w):
            x0 = x // cell
            t = np.float32((x - x0 * cell) / cell)
            rows[gy, x] = (g[gy, x0] + (g[gy, x0 + 1] - g[gy, x0]) * t) / np.sqrt((1 - t) ** 2 + t * t)
    out = np.empty((h, w), np.float32)
    for y in range(h):
        y0 = y // cell
        ty = np.float32((y - y0 * cell) / cell)
        f = np.float32(1.0 / np.sqrt((1 - ty) ** 2 + ty * ty))
        for x in range(w):
            out[y, x] = (rows[y0, x] + (rows[y0 + 1, x] - rows[y0, x]) * ty) * f
    return out


def noise_field(rng: np.random.Generator, h: int, w: int, cell: int = 1) -> np.ndarray:
    """Reproducible (h, w) float32 standard-normal noise, correlated over ``cell`` px."""
    g, cell = coarse_noise(rng, h, w, cell)
    if cell == 1:
        return g
    return _expand(g, cell, int(h), int(w))


@njit(cache=True)
def _smooth_n(g, cell, y, x):
    """Standard normal at pixel (y, x) from a coarse normal grid (spatially correlated over ``cell`` px)."""
    y0, x0 = y // cell, x // cell
    ty, tx = (y - y0 * cell) / cell, (x - x0 * cell) / cell
    v = (g[y0, x0] * (1 - tx) + g[y0, x0 + 1] * tx) * (1 - ty) + (g[y0 + 1, x0] * (1 - tx) + g[y0 + 1, x0 + 1] * tx) * ty
    return v / np.sqrt(((1 - tx) ** 2 + tx**2) * ((1 - ty) ** 2 + ty**2))  # unit variance again


@njit(cache=True)
def _smooth_u(g, cell, y, x):
    """Uniform [0, 1) at pixel (y, x), spatially correlated (see :func:`_smooth_n`; logistic approximation
    of the normal CDF, within 0.01)."""
    return 1.0 / (1.0 + math.exp(-1.702 * _smooth_n(g, cell, y, x)))


def key(rng: np.random.Generator) -> int:
    """A 62-bit hash key drawn from ``rng``."""
    return int(rng.integers(0, 1 << 62))
