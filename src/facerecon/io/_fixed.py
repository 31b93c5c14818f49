"""The byte rows of :func:`facerecon.io.mesh._fixed_point_lines` in numba (imported when an OBJ is written)."""
from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True)
def fixed_point_rows(prefix, ip, frac, neg, out):  # pragma: no cover - compiled
    """Fill ``out`` ((n, len(prefix) + 15 k + 1) uint8): per row ``prefix``, then per value two blanks, the
    integer part ``ip`` right-aligned in 6 places (blanks before, at least one digit) with '-' just before
    its first digit where ``neg``, '.', the 6 decimals ``frac``; '\\n' last."""
    n, k = ip.shape
    m = prefix.shape[0]
    for i in range(n):
        for j in range(m):
            out[i, j] = prefix[j]
        for c in range(k):
            o = m + 15 * c
            for j in range(8):
                out[i, o + j] = 32
            x = ip[i, c]
            p = o + 7
            while True:
                out[i, p] = 48 + x % 10
                x //= 10
                if x == 0:
                    break
                p -= 1
            if neg[i, c]:
                out[i, p - 1] = 45
            out[i, o + 8] = 46
            f = frac[i, c]
            for j in range(o + 14, o + 8, -1):
                out[i, j] = 48 + f % 10
                f //= 10
        out[i, m + 15 * k] = 10
