"""Numba kernel of token extraction: cut, per-channel RMS energy, z-score and dominant channel in one
pass over each token, written straight into preallocated output rows.

Reference: :func:`aemg.tokenizer.tokens.extract_tokens_reference` (NumPy). Sums are float64 with
reassociation allowed (``fastmath`` without ``nnan``/``ninf``, so NaN and inf still propagate), so
results match the reference to float32 rounding, and are bit-identical run to run on one machine.
"""
from __future__ import annotations

import numba as nb
import numpy as np

_FAST = {"reassoc", "contract", "nsz", "arcp"}  # no nnan / ninf: NaN and inf behave as in NumPy


@nb.njit(cache=True, nogil=True, fastmath=_FAST)
def extract_into(x, rel_starts, token_len, flat_rel, tiny, payload, energy, dominant):  # pragma: no cover
    """Fill ``payload[n] (C, L)``, ``energy[n] (C,)`` and ``dominant[n]`` for every token ``n``.

    x : (C, T) float32, C-contiguous; rel_starts : (N,) int64, each token ``[s, s + L)`` inside x;
    payload : (N, C, L) float32; energy : (N, C) float32; dominant : (N,) int16.
    """
    n_ch = x.shape[0]
    inv_len = 1.0 / token_len
    for n in range(rel_starts.shape[0]):
        s = rel_starts[n]
        best = -1.0
        arg = 0
        found_nan = False
        for c in range(n_ch):
            row = x[c, s:s + token_len]
            s1 = 0.0
            s2 = 0.0
            for j in range(token_len):
                v = np.float64(row[j])
                s1 += v
                s2 += v * v
            rms = np.sqrt(s2 * inv_len)
            mean = s1 * inv_len
            s3 = 0.0
            for j in range(token_len):
                d = np.float64(row[j]) - mean
                s3 += d * d
            std = np.sqrt(s3 * inv_len)
            out = payload[n, c]
            if std <= max(flat_rel * rms, tiny):
                for j in range(token_len):
                    out[j] = 0.0
            elif std != std:  # NaN in the token: NaN row, as the reference gives
                for j in range(token_len):
                    out[j] = np.nan
            else:
                mean32 = np.float32(mean)
                scale32 = np.float32(1.0 / std)
                for j in range(token_len):
                    out[j] = (row[j] - mean32) * scale32
            e32 = np.float32(rms)
            energy[n, c] = e32
            # argmax as np.argmax: the first maximum, a NaN counts as the maximum
            if not found_nan:
                if e32 != e32:
                    found_nan = True
                    arg = c
                elif e32 > best or c == 0:
                    best = e32
                    arg = c
        dominant[n] = arg
