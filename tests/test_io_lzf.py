"""LZF: valid streams decode; corrupt ones raise LZFError (never crash)."""
from __future__ import annotations

import numpy as np
import pytest

from facerecon.io.lzf import LZFError, lzf_compress_literal, lzf_decompress


def test_literal_round_trip() -> None:
    data = bytes(range(256)) * 5 + b"xyz"
    assert lzf_decompress(lzf_compress_literal(data), len(data)) == data


def test_back_reference_with_overlap() -> None:
    # literal "ab" then back reference: length 7+2 (ctrl 0xE0 | offset hi 0, ext len 0, offset lo 1)
    stream = bytes([1]) + b"ab" + bytes([0xE0, 0x00, 0x01])
    assert lzf_decompress(stream, 11) == b"ab" + b"ababababa"


@pytest.mark.parametrize(
    "stream, size, message",
    [
        (bytes([0x20, 0x05]), 3, "before the start"),  # reference into nothing
        (bytes([5]) + b"abc", 6, "truncated"),  # literal run longer than the input
        (lzf_compress_literal(b"abcdef"), 3, "beyond"),  # expands beyond the announced size
        (lzf_compress_literal(b"abc"), 10, "expands to 3"),  # shorter than announced
        (bytes([1]) + b"ab" + bytes([0xE0]), 20, "truncated"),  # reference cut short
    ],
)
def test_corrupt_streams_raise(stream: bytes, size: int, message: str) -> None:
    with pytest.raises(LZFError, match=message):
        lzf_decompress(stream, size)


def test_random_garbage_never_crashes() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        blob = rng.integers(0, 256, rng.integers(1, 200), dtype=np.uint8).tobytes()
        try:
            out = lzf_decompress(blob, int(rng.integers(0, 400)))
        except LZFError:
            continue
        assert isinstance(out, bytes)
