"""Numba backend of the energy envelope and raw segmentation (``cache=True``, no fastmath).

Bit-identical to :mod:`aemg.tokenizer.segment_reference` (same float64 operations in the same
order; no fastmath, so LLVM neither reassociates nor contracts to FMA). The fused kernel works in
blocks of ``BLOCK`` time steps: channel energies are accumulated into a small float64 buffer
(vectorisable, one contiguous row at a time), then one sequential pass updates the prefix sum, the
ring of the last ``W`` prefix values and the hysteresis state.
"""
from __future__ import annotations

import numba as nb
import numpy as np

BLOCK = 1024
MAX_BLOCK = 8192  # the driver's crossing buffer must hold at least this many
_INF = np.inf


@nb.njit(cache=True, nogil=True)
def _block_energy(x, t, n, e):  # pragma: no cover - compiled
    """e[:n] = sum_c x[c, t:t+n]**2 in float64, channel order (vectorised over time).

    A non-finite square makes e[j] non-finite (squares are >= 0: no inf - inf); the caller then
    recomputes that e[j] with :func:`_careful_energy`, which gives the same float64 value when
    every square is finite.
    """
    for j in range(n):
        e[j] = 0.0
    for c in range(x.shape[0]):
        row = x[c, t:t + n]  # a slice: unit-stride loads the compiler can vectorise
        for j in range(n):
            v = np.float64(row[j])
            e[j] += v * v


@nb.njit(cache=True, nogil=True)
def _careful_energy(x, t):  # pragma: no cover - compiled
    """(sum_c x[c, t]**2 with non-finite squares counted as 0, number of non-finite squares)."""
    acc = 0.0
    bad = 0
    for c in range(x.shape[0]):
        v = np.float64(x[c, t])
        s = v * v
        if s < _INF:
            acc += s
        else:
            bad += 1
    return acc, bad


@nb.njit(cache=True, nogil=True)
def _block_prefix(x, t, n, e, hist, W, p):  # pragma: no cover - compiled
    """Append the prefix sums P[t..t+n-1] (starting from ``p`` = P[t-1]) to ``hist[W:W+n]``, the
    energies summed in float64 in time order; returns (P[t+n-1], #non-finite squares). The one
    definition of the envelope's arithmetic in this backend (segmentation and envelope share it)."""
    _block_energy(x, t, n, e)
    bad = 0
    for j in range(n):
        ej = e[j]
        if not ej < _INF:
            ej, b = _careful_energy(x, t + j)
            bad += b
        p += ej
        hist[W + j] = p
    return p, bad


@nb.njit(cache=True, nogil=True)
def segment_chunk(x, start, ring, fstate, istate, on_sum, off_sum, cross):  # pragma: no cover
    """Process ``x[:, start:]`` until done or ``cross`` could overflow; returns (next t, #crossings).

    x : (C, T) C-contiguous; ring/fstate/istate:
    :class:`~aemg.tokenizer.segment_reference.KernelState` arrays (updated; the ring is left in time order,
    ``pos = 0``); cross : int64 output buffer (capacity >= MAX_BLOCK).

    Per block of ``n`` time steps: (1) channel energies (vectorised); (2) the prefix sums, the only
    sequential part, into ``hist[W:W+n]`` after the ``W`` previous ones; (3) window sums
    ``hist[W+j] - hist[j]`` and a vectorised count of samples that would flip the current state;
    (4) only when that count is non-zero, the scalar hysteresis over the block.
    """
    C, T = x.shape
    W = ring.shape[0]
    blk = max(BLOCK, min(W, MAX_BLOCK))
    p = fstate[0]
    pos = istate[0]
    active = istate[1]
    t_abs = istate[2]
    bad = istate[3]
    cap = cross.shape[0]
    k = 0
    e = np.empty(blk)
    hist = np.empty(W + blk)
    for i in range(W):  # time order: P[t-W] ... P[t-1]
        hist[i] = ring[(pos + i) % W]
    t = start
    while t < T:
        n = min(blk, T - t)
        if cap - k < n:
            break
        p, b = _block_prefix(x, t, n, e, hist, W, p)
        bad += b
        flips = 0
        if active:
            for j in range(n):
                flips += (hist[W + j] - hist[j]) <= off_sum
        else:
            for j in range(n):
                flips += (hist[W + j] - hist[j]) > on_sum
        if flips:
            for j in range(n):
                w = hist[W + j] - hist[j]
                if active:
                    if w <= off_sum:
                        active = 0
                        cross[k] = t_abs + j
                        k += 1
                elif w > on_sum:
                    active = 1
                    cross[k] = t_abs + j
                    k += 1
        for i in range(W):
            hist[i] = hist[n + i]
        t += n
        t_abs += n
    for i in range(W):
        ring[i] = hist[i]
    fstate[0] = p
    istate[0] = 0
    istate[1] = active
    istate[2] = t_abs
    istate[3] = bad
    return t, k


@nb.njit(cache=True, nogil=True)
def envelope_sum(x, W, out):  # pragma: no cover - compiled
    """out[t] = (P[t] - P[t-W]) / (C W); returns #non-finite (blocks as in segment_chunk)."""
    C, T = x.shape
    blk = max(BLOCK, min(W, MAX_BLOCK))
    e = np.empty(blk)
    hist = np.zeros(W + blk)
    denom = np.float64(C * W)
    p = 0.0
    bad = 0
    t = 0
    while t < T:
        n = min(blk, T - t)
        p, b = _block_prefix(x, t, n, e, hist, W, p)
        bad += b
        for j in range(n):
            out[t + j] = (hist[W + j] - hist[j]) / denom
        for i in range(W):
            hist[i] = hist[n + i]
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
        row = x[c]
        for t in range(T):
            v = np.float64(row[t])
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
    """Backend entry of op ``"envelope"`` (see :func:`aemg.tokenizer.segment_reference.envelope`)."""
    x = np.ascontiguousarray(x)
    C, T = x.shape
    if per_channel:
        out = np.empty((C, T), dtype=np.float64)
        bad = envelope_per_channel(x, int(window), out)
    else:
        out = np.empty(T, dtype=np.float64)
        bad = envelope_sum(x, int(window), out)
    return out, int(bad)
