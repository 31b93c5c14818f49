"""The io floor's compiled loops, imported when first used: the byte rows of
:func:`facerecon.io.mesh._fixed_point_lines` (an OBJ written) and a TrueDepth frame's colour image (one read)."""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def fixed_point_text(prefix, a, out, digits3, bits, last_bits, last_out):  # pragma: no cover - compiled
    """Fill ``out`` ((n, len(prefix) + 15 k + 1) uint8) with the lines of the float64 values ``a`` ((n, k)):
    per row ``prefix``, then per value two blanks, the integer part right-aligned in 6 places (blanks before,
    at least one digit) with '-' just before its first digit, '.', the 6 decimals; '\\n' last.  The scaling of
    ``facerecon.io.mesh._fixed_point_lines``'s NumPy path is done here value by value (the same float64 operations:
    ``fixed = rint(|x| 1e6)``, ``ip = floor((fixed + 0.5) 1e-6)``, ``frac = int(fixed - ip 1e6)``, '-' where
    ``x < 0`` and ``fixed > 0``) instead of five NumPy passes and their arrays.  -1, with ``out`` untouched,
    where a value is not finite or its magnitude is a million or more (the caller's plain formatting).
    ``digits3``: the (1000, 3) table of "000" .. "999" (the decimals in two 3-digit groups).

    ``last_out``: the lines of an earlier block of the same shape (else any other shape, e.g. (0, 0): none): a row
    whose values have the bits of that block's row (``bits`` / ``last_bits``: the two blocks viewed as int64) takes
    its line as it is (a line is its row's alone: fixed width).  Returns the rows reused, or -1 (``out`` untouched).
    One kernel for both uses: a second would be one more of numba's cached kernels to load at a cold start."""
    n, k = a.shape
    for i in range(n):
        for c in range(k):
            x = a[i, c]
            if not np.isfinite(x) or abs(x) >= 999999.0:
                return -1
    width = out.shape[1]
    reusing = last_out.shape[0] == n and last_out.shape[1] == width and last_bits.shape[0] == n and last_bits.shape[1] == k
    reused = 0
    for i in range(n):
        same = reusing
        if reusing:
            for c in range(k):
                if bits[i, c] != last_bits[i, c]:
                    same = False
                    break
        if same:
            for j in range(width):
                out[i, j] = last_out[i, j]
            reused += 1
        else:
            _row_text(prefix, a, i, out, digits3)
    return reused


@njit(cache=True, nogil=True, inline="always")
def _row_text(prefix, a, i, out, digits3):  # pragma: no cover - compiled
    """Row ``i``'s line of :func:`fixed_point_text` (its values checked by the caller)."""
    k = a.shape[1]
    m = prefix.shape[0]
    for j in range(m):
        out[i, j] = prefix[j]
    for c in range(k):
        x = a[i, c]
        fixed = np.rint(abs(x) * 1e6)
        ipf = np.floor((fixed + 0.5) * 1e-6)
        f = np.int64(fixed - ipf * 1e6)
        ipv = np.int64(ipf)
        o = m + 15 * c
        for j in range(8):
            out[i, o + j] = 32
        p = o + 7
        while True:
            q = ipv // 10
            out[i, p] = 48 + (ipv - 10 * q)
            ipv = q
            if ipv == 0:
                break
            p -= 1
        if x < 0 and fixed > 0:
            out[i, p - 1] = 45
        out[i, o + 8] = 46
        fhi = f // 1000
        flo = f - 1000 * fhi
        for j in range(3):
            out[i, o + 9 + j] = digits3[fhi, j]
            out[i, o + 12 + j] = digits3[flo, j]
    out[i, m + 15 * k] = 10


@njit(cache=True, nogil=True)
def colour_u8(r, g, b, out):  # pragma: no cover - compiled
    """``out`` ((n, 3) uint8) = ``np.clip(np.rint(np.nan_to_num(rgb, nan=0.0) * 255.0), 0, 255)`` of the float
    channels ``r``, ``g``, ``b`` (n,), in float64 value by value: NaN -> 0, +-inf -> +-the largest float64 (so
    255 / 0), the same values as the NumPy expression without its four (n, 3) float64 arrays."""
    big = np.finfo(np.float64).max
    for i in range(r.shape[0]):
        for k in range(3):
            x = np.float64(r[i] if k == 0 else (g[i] if k == 1 else b[i]))
            if np.isnan(x):
                x = 0.0
            elif np.isinf(x):
                x = big if x > 0 else -big
            y = np.rint(x * 255.0)
            out[i, k] = np.uint8(min(max(y, 0.0), 255.0))
