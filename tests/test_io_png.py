"""io/png.py: the per-frame PNG encoder decodes (Pillow) to the array it was given, for every kind it writes."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from facerecon.io.png import png_bytes


@pytest.mark.parametrize("shape,dtype", [((37, 53), np.uint8), ((37, 53), np.uint16), ((37, 53, 3), np.uint8),
                                         ((37, 53, 4), np.uint8), ((1, 1), np.uint16)])
@pytest.mark.parametrize("level", [0, 1, 9])
def test_png_bytes_decode_to_the_same_array(shape, dtype, level):
    rng = np.random.default_rng(3)
    img = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=np.int64).astype(dtype)
    if shape[0] > 20:
        img[5:20] = img[5]  # runs and repeated rows, as the maps have
    with Image.open(io.BytesIO(png_bytes(img, level))) as im:
        im.load()
        back = np.asarray(im)
    assert back.shape == img.shape
    assert np.array_equal(back.astype(np.int64), img.astype(np.int64))


def test_png_bytes_of_a_strided_view_and_bad_input():
    img = np.arange(64 * 64 * 3, dtype=np.uint32).astype(np.uint8).reshape(64, 64, 3)[::2, 1::3]
    with Image.open(io.BytesIO(png_bytes(img))) as im:
        assert np.array_equal(np.asarray(im), img)
    for bad in (np.zeros((4, 4), np.float32), np.zeros((4, 4, 2), np.uint8), np.zeros((4, 4, 3), np.uint16), np.zeros((0, 4), np.uint8)):
        with pytest.raises(ValueError, match="normal map must be"):
            png_bytes(bad, what="normal map")
    with pytest.raises(ValueError, match="level"):
        png_bytes(np.zeros((2, 2), np.uint8), 10)
