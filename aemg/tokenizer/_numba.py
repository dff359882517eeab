"""Numba backend of the energy envelope and raw segmentation (``cache=True``, no fastmath).

Bit-identical to :mod:`aemg.tokenizer._reference` (same float64 operations in the same order; no
fastmath, so LLVM neither reassociates nor contracts to FMA). The fused kernel works in blocks of
``BLOCK`` time steps: channel energies are accumulated into a small float64 buffer (vectorisable,
one contiguous row at a time), then one sequential pass updates the prefix sum, the ring of the
last ``W`` prefix values and the hysteresis state.
"""
from __future__ import annotations

import numba as nb
import numpy as np

BLOCK = 512
_INF = np.inf


@nb.njit(cache=True, nogil=True)
def _block_energy(x, t, n, e):  # pragma: no cover - compiled
    """e[:n] = sum_c x[c, t:t+n]**2 (float64, channel order, non-finite -> 0); returns #non-finite."""
    bad = 0
    for j in range(n):
        e[j] = 0.0
    for c in range(x.shape[0]):
        for j in range(n):
            v = np.float64(x[c, t + j])
            s = v * v
            ok = s < _INF
            e[j] += s if ok else 0.0
            bad += 0 if ok else 1
    return bad


@nb.njit(cache=True, nogil=True)
def segment_chunk(x, start, ring, fstate, istate, on_sum, off_sum, cross):  # pragma: no cover
    """Process ``x[:, start:]`` until done or ``cross`` could overflow; returns (next t, #crossings).

    x : (C, T) C-contiguous; ring/fstate/istate: :class:`~aemg.tokenizer._reference.KernelState`
    arrays (updated); cross : int64 output buffer (capacity >= BLOCK).
    """
    C, T = x.shape
    W = ring.shape[0]
    p = fstate[0]
    pos = istate[0]
    active = istate[1]
    t_abs = istate[2]
    bad = istate[3]
    cap = cross.shape[0]
    k = 0
    e = np.empty(BLOCK)
    t = start
    while t < T:
        n = min(BLOCK, T - t)
        if cap - k < n:
            break
        bad += _block_energy(x, t, n, e)
        for j in range(n):
            p += e[j]
            old = ring[pos]
            ring[pos] = p
            pos += 1
            if pos == W:
                pos = 0
            w = p - old
            if active:
                if w <= off_sum:
                    active = 0
                    cross[k] = t_abs + j
                    k += 1
            elif w > on_sum:
                active = 1
                cross[k] = t_abs + j
                k += 1
        t += n
        t_abs += n
    fstate[0] = p
    istate[0] = pos
    istate[1] = active
    istate[2] = t_abs
    istate[3] = bad
    return t, k


@nb.njit(cache=True, nogil=True)
def envelope_sum(x, W, out):  # pragma: no cover - compiled
    """out[t] = (P[t] - P[t-W]) / (C W); returns #non-finite."""
    C, T = x.shape
    ring = np.zeros(W)
    e = np.empty(BLOCK)
    denom = np.float64(C * W)
    p = 0.0
    pos = 0
    bad = 0
    t = 0
    while t < T:
        n = min(BLOCK, T - t)
        bad += _block_energy(x, t, n, e)
        for j in range(n):
            p += e[j]
            old = ring[pos]
            ring[pos] = p
            pos += 1
            if pos == W:
                pos = 0
            out[t + j] = (p - old) / denom
        t += n
    return bad


@nb.njit(cache=True, nogil=True)
def envelope_per_channel(x, W, out):  # pragma: no cover - compiled
    """out[c, t] = (Pc[t] - Pc[t-W]) / W; returns #non-finite."""
    C, T = x.shape
    ring = np.empty(W)
    denom = np.float64(W)
    bad = 0
    for c in range(C):
        ring[:] = 0.0
        p = 0.0
        pos = 0
        for t in range(T):
            v = np.float64(x[c, t])
            s = v * v
            ok = s < _INF
            p += s if ok else 0.0
            bad += 0 if ok else 1
            old = ring[pos]
            ring[pos] = p
            pos += 1
            if pos == W:
                pos = 0
            out[c, t] = (p - old) / denom
    return bad


def envelope(x: np.ndarray, window: int, per_channel: bool = False) -> tuple[np.ndarray, int]:
    """Backend entry of op ``"envelope"`` (see :func:`aemg.tokenizer._reference.envelope`)."""
    x = np.ascontiguousarray(x)
    C, T = x.shape
    if per_channel:
        out = np.empty((C, T), dtype=np.float64)
        bad = envelope_per_channel(x, int(window), out)
    else:
        out = np.empty(T, dtype=np.float64)
        bad = envelope_sum(x, int(window), out)
    return out, int(bad)
