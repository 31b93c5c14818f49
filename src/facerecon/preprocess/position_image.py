"""Position images: the network input (paper: crop, rescale to 160x160, depth-to-position).

One function, :func:`make_position_image`, is used for synthetic and real frames, for
training and for inference.  It

1. **crops a metric square** of ``size_mm`` (default 300 mm) centred on the 3D head centre,
   measured at the centre's depth: the crop is ``fx * size_mm / Z`` by
   ``fy * size_mm / Z`` source pixels, so the head has the same size in the position
   image at any distance and with any camera;
2. **resamples** it to ``out x out`` pixels (default 160) *without blending depths*:
   each output pixel takes the nearest valid depth among ``k x k`` nearest-neighbour
   samples of its footprint (``k = ceil(source pixels per output pixel)``, at most 4;
   min-pooling, so a silhouette edge never produces a depth between the face and the
   wall; invalid stays invalid; pixels outside the source image are invalid);
3. **removes the background**: pixels nearer than ``Zc - band_front_mm`` or farther than
   ``Zc + band_back_mm`` (default 180 mm each way around the head centre depth ``Zc``)
   are invalid;
4. **converts depth to camera-space positions** with the crop's own intrinsics
   (``X = (j - cx') Z / fx'``, ``Y = (i - cy') Z / fy'``; the crop intrinsics are exact, so
   a pixel of the crop and of the source image see the same ray);
5. **normalises**: ``(X, Y, Z) - centre`` divided by ``scale_mm`` (``POSITION_SCALE_MM`` =
   100 mm), so the head lies within about [-1.5, 1.5] in x and y (crop half-size 150 mm)
   and [-1.8, 1.8] in z (the depth band).  Invalid pixels are 0 in all three channels
   (the network input stays 3 channels, as in the paper); ``valid`` keeps the mask.

Coordinates stay those of the **camera frame** (only translated and scaled, never rotated
to the viewing ray), so a network reading a position image predicts camera-frame rotations.

The :class:`PositionImage` keeps what is needed to map outputs back to the camera frame:
``center_mm``, ``scale_mm``, the crop box and the crop intrinsics.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ..geometry.camera import Intrinsics
from ..errors import ConfigError
from ..io.frame import DepthFrame

POSITION_SCALE_MM = 100.0  # position image units: 1.0 = 100 mm
DEFAULT_SIZE_MM = 300.0  # side of the metric crop square at the centre's depth
DEFAULT_OUT = 160  # output side in pixels (the paper's 160 x 160)
DEFAULT_BAND_MM = (180.0, 180.0)  # background removal: (in front of, behind) the centre depth
MAX_POOL = 4  # at most MAX_POOL x MAX_POOL source samples per output pixel


@dataclass
class PositionImage:
    """A network input and the transform back to the camera frame.

    Attributes:
        data: (3, out, out) float32, channels-first (network layout): camera-frame
            ``(X, Y, Z) - center_mm`` divided by ``scale_mm``; 0 where not ``valid``.
        valid: (out, out) bool: a measured point inside the depth band.
        center_mm: (3,) crop centre in the camera frame (mm); position (0, 0, 0).
        scale_mm: millimetres per position unit.
        size_mm: side of the metric crop square at the centre's depth.
        crop_box: ``(u0, v0, u1, v1)`` the crop's outer edges in source pixel coordinates
            (pixel centres at integers, so a full-image crop would be
            ``(-0.5, -0.5, W - 0.5, H - 0.5)``).
        intrinsics: pinhole intrinsics of the ``out x out`` crop.
        source_intrinsics: intrinsics of the frame it was cut from.
        band_mm: ``(front, back)`` depth band around ``center_mm[2]``.
        source: the frame's source.
    """

    data: np.ndarray
    valid: np.ndarray
    center_mm: np.ndarray
    scale_mm: float
    size_mm: float
    crop_box: tuple[float, float, float, float]
    intrinsics: Intrinsics
    source_intrinsics: Intrinsics
    band_mm: tuple[float, float] = DEFAULT_BAND_MM
    source: str = ""

    @property
    def size(self) -> int:
        return int(self.data.shape[-1])

    def to_camera(self, p_norm: np.ndarray) -> np.ndarray:
        """Position-image coordinates (..., 3) -> camera-frame mm (..., 3)."""
        return np.asarray(p_norm, np.float64) * self.scale_mm + self.center_mm

    def from_camera(self, p_mm: np.ndarray) -> np.ndarray:
        """Camera-frame mm (..., 3) -> position-image coordinates (..., 3)."""
        return (np.asarray(p_mm, np.float64) - self.center_mm) / self.scale_mm

    def points_mm(self, stride: int = 1) -> np.ndarray:
        """(N, 3) camera-frame points (mm) of the valid pixels (of every ``stride``-th row and column)."""
        if stride == 1:
            return self.to_camera(self.data[:, self.valid].T)
        return self.to_camera(self.data[:, ::stride, ::stride][:, self.valid[::stride, ::stride]].T)

    def points(self) -> np.ndarray:
        """(N, 3) position-image coordinates of the valid pixels."""
        return self.data[:, self.valid].T.copy()


def _sample_grid(e0: float, side: float, out: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Source pixel indices (out, k) of k nearest-neighbour samples per output pixel, and in-image flags."""
    j = np.arange(out, dtype=np.float64)[:, None]
    m = (np.arange(k, dtype=np.float64)[None, :] + 0.5) / k
    u = e0 + (j + m) * (side / out) - 0.5  # continuous source pixel coordinate
    idx = np.floor(u + 0.5).astype(np.intp)
    inside = (idx >= 0) & (idx < n)
    return np.clip(idx, 0, n - 1), inside


@njit(cache=True, nogil=True)
def _position_data(bits, rows, rin, cols, cin, z_lo, z_hi, inv_scale, cx, fx, cy, fy, c32, data, valid):
    """The crop in one pass: each output pixel's nearest sample (on the depth's float32 bit pattern: positive
    floats order like uint32, and ``bits - 1`` wraps an invalid 0 to the largest uint32, so it never wins; a
    sample outside the image counts as none), its band test, and its position (float32, the NumPy form's
    operations in its order: ``(z * x/z - centre) * (valid / scale)``).  Fills ``data`` (3, S, S) and
    ``valid`` (S, S); the NumPy form gathered an (S * kv, S * ku) block of rows and columns first."""
    out, kv = rows.shape
    ku = cols.shape[1]
    one = np.uint32(1)
    zbits = np.empty((out, out), np.uint32)
    for i in range(out):
        for j in range(out):
            m = np.uint32(0xFFFFFFFF)
            for a in range(kv):
                if not rin[i, a]:
                    continue
                r = rows[i, a]
                for b in range(ku):
                    if cin[j, b]:
                        m = min(m, np.uint32(bits[r, cols[j, b]] - one))
            zbits[i, j] = np.uint32(m + one)  # no sample: 0
    z = zbits.view(np.float32)
    zero32 = np.float32(0.0)
    vm_in, vm_out = np.float32(1.0) * inv_scale, zero32 * inv_scale
    for i in range(out):
        ys = (np.float32(i) - cy) / fy  # y / z of the row
        for j in range(out):
            zf = z[i, j]
            ok = zf > zero32 and zf >= z_lo and zf <= z_hi
            valid[i, j] = ok
            vm = vm_in if ok else vm_out
            xs = (np.float32(j) - cx) / fx  # x / z of the column
            data[0, i, j] = (zf * xs - c32[0]) * vm
            data[1, i, j] = (zf * ys - c32[1]) * vm
            data[2, i, j] = (zf - c32[2]) * vm


def make_position_image(
    frame: DepthFrame,
    center_mm,
    size_mm: float = DEFAULT_SIZE_MM,
    out: int = DEFAULT_OUT,
    *,
    scale_mm: float = POSITION_SCALE_MM,
    band_mm: tuple[float, float] = DEFAULT_BAND_MM,
) -> PositionImage:
    """Crop, resample and convert a depth frame around a 3D centre (see module doc).

    Args:
        frame: depth frame (mm, 0 = invalid) with intrinsics.
        center_mm: (3,) crop centre in the camera frame, mm (e.g. ``HeadLocation.center_mm``).
        size_mm: side of the metric crop square at the centre's depth.
        out: output side in pixels.
        scale_mm: millimetres per position unit.
        band_mm: ``(front, back)``: keep depths in ``[Zc - front, Zc + back]``.
    """
    intr = frame.intrinsics
    if intr is None:
        raise ConfigError(f"{frame.source or 'depth frame'}: no intrinsics; give a camera preset or --intrinsics")
    c = np.asarray(center_mm, dtype=np.float64).reshape(3)
    if not np.isfinite(c).all() or c[2] <= 0:
        raise ValueError(f"crop centre must be in front of the camera, got {c.tolist()}")
    side_u = intr.fx * size_mm / c[2]
    side_v = intr.fy * size_mm / c[2]
    uc = intr.fx * c[0] / c[2] + intr.cx
    vc = intr.fy * c[1] / c[2] + intr.cy
    # crop square in "edge" coordinates (pixel u covers [u, u + 1)), centred on the centre's pixel
    e0u = uc + 0.5 - side_u / 2
    e0v = vc + 0.5 - side_v / 2
    crop_intr = Intrinsics(
        intr.fx * out / side_u,
        intr.fy * out / side_v,
        (intr.cx + 0.5 - e0u) * out / side_u - 0.5,
        (intr.cy + 0.5 - e0v) * out / side_v - 0.5,
        out,
        out,
    )
    ku = int(min(MAX_POOL, max(1, np.ceil(side_u / out - 1e-6))))
    kv = int(min(MAX_POOL, max(1, np.ceil(side_v / out - 1e-6))))
    cols, cin = _sample_grid(e0u, side_u, out, ku, frame.width)
    rows, rin = _sample_grid(e0v, side_v, out, kv, frame.height)

    # min-pooling on the float bit pattern: positive floats order like uint32 and
    # 0 - 1 wraps to the largest uint32, so invalid samples never win
    bits = np.ascontiguousarray(frame.depth_mm, dtype=np.float32).view(np.uint32)
    front, back = band_mm
    data = np.empty((3, out, out), np.float32)
    valid = np.empty((out, out), np.bool_)
    _position_data(bits, rows, rin, cols, cin, float(c[2] - front), float(c[2] + back), np.float32(1.0 / scale_mm),
                   np.float32(crop_intr.cx), np.float32(crop_intr.fx), np.float32(crop_intr.cy), np.float32(crop_intr.fy),
                   c.astype(np.float32), data, valid)
    return PositionImage(
        data=data,
        valid=valid,
        center_mm=c,
        scale_mm=float(scale_mm),
        size_mm=float(size_mm),
        crop_box=(e0u - 0.5, e0v - 0.5, e0u + side_u - 0.5, e0v + side_v - 0.5),
        intrinsics=crop_intr,
        source_intrinsics=intr,
        band_mm=(float(front), float(back)),
        source=frame.source,
    )


def stack_position_images(images: list[PositionImage]) -> np.ndarray:
    """(B, 3, S, S) float32 batch of position images (for ``torch.from_numpy``)."""
    return np.stack([p.data for p in images], 0)
