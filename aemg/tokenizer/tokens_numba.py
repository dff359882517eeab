"""Numba kernel of token extraction: cut, per-channel RMS energy, z-score and dominant channel in one
pass over each token, written straight into preallocated output rows.

Reference: :func:`aemg.tokenizer.tokens.extract_tokens_reference` (NumPy, float64 sums; equal to
float32 rounding). Bit-identical to the Cython kernel ``csrc/tokens_cy.pyx``: the same float64
operations in the same order (sums over a row in 4 interleaved lanes, ``(l0 + l1) + (l2 + l3)``,
then the tail; no fastmath), so results do not depend on the backend or the machine's SIMD width.
"""
from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def _row_sums(row, n, mean):  # pragma: no cover - compiled
    """(sum (row - mean), sum (row - mean)**2) of row[:n] in float64, 4 lanes then the tail."""
    a0 = a1 = a2 = a3 = 0.0
    b0 = b1 = b2 = b3 = 0.0
    n4 = n - n % 4
    for j in range(0, n4, 4):
        v0 = np.float64(row[j]) - mean
        v1 = np.float64(row[j + 1]) - mean
        v2 = np.float64(row[j + 2]) - mean
        v3 = np.float64(row[j + 3]) - mean
        a0 += v0
        a1 += v1
        a2 += v2
        a3 += v3
        b0 += v0 * v0
        b1 += v1 * v1
        b2 += v2 * v2
        b3 += v3 * v3
    s1 = (a0 + a1) + (a2 + a3)
    s2 = (b0 + b1) + (b2 + b3)
    for j in range(n4, n):
        v = np.float64(row[j]) - mean
        s1 += v
        s2 += v * v
    return s1, s2


@nb.njit(cache=True, nogil=True)
def extract_into(x, rel_starts, token_len, flat_rel, tiny, payload, energy, dominant):  # pragma: no cover
    """Fill ``payload[n] (C, L)``, ``energy[n] (C,)`` and ``dominant[n]`` for every token ``n``.

    x : (C, T) float32, C-contiguous; rel_starts : (N,) int64, each token ``[s, s + L)`` inside x;
    payload : (N, C, L) float32; energy : (N, C) float32; dominant : (N,) int16.
    """
    n_ch = x.shape[0]
    inv_len = 1.0 / token_len
    for n in range(rel_starts.shape[0]):
        s = rel_starts[n]
        best = np.float32(0.0)
        arg = 0
        found_nan = False
        for c in range(n_ch):
            row = x[c, s:s + token_len]
            s1, s2 = _row_sums(row, token_len, 0.0)
            rms = np.sqrt(s2 * inv_len)
            mean = s1 * inv_len
            d1, d2 = _row_sums(row, token_len, mean)
            std = np.sqrt(d2 * inv_len)
            out = payload[n, c]
            if std <= max(flat_rel * rms, tiny):
                for j in range(token_len):
                    out[j] = 0.0
            elif std != std:  # NaN in the token: a NaN row, as the reference gives
                for j in range(token_len):
                    out[j] = np.nan
            else:
                mean32 = np.float32(mean)
                scale32 = np.float32(1.0 / std)
                for j in range(token_len):
                    out[j] = (row[j] - mean32) * scale32
            e32 = np.float32(rms)
            energy[n, c] = e32
            # as np.argmax: the first maximum; a NaN counts as the maximum
            if not found_nan:
                if e32 != e32:
                    found_nan = True
                    arg = c
                elif c == 0 or e32 > best:
                    best = e32
                    arg = c
        dominant[n] = arg
