# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# distutils: extra_compile_args = -ffp-contract=off
"""Cython backend of the energy envelope and raw segmentation (-> ``aemg._ext.nct_cy``).

Bit-identical to ``aemg.tokenizer._reference``: the same float64 operations in the same order
(``-ffp-contract=off`` forbids fusing ``v*v + e`` into an FMA on CPUs that have one). Inputs are
C-contiguous (C, T) arrays of float32, float64, int16 or int8; the Python driver in
``aemg.tokenizer.segment`` makes them so.
"""
from libc.math cimport INFINITY
from libc.stdint cimport int64_t

import numpy as np

ctypedef fused sample_t:
    float
    double
    short
    signed char

cdef enum:
    BLOCK = 512


cdef inline int64_t _block_energy(const sample_t[:, ::1] x, Py_ssize_t t, Py_ssize_t n,
                                  double* e) noexcept nogil:
    """e[:n] = sum_c x[c, t:t+n]**2 (float64, channel order, non-finite -> 0); returns #non-finite."""
    cdef Py_ssize_t c, j
    cdef double v, s
    cdef int64_t bad = 0
    for j in range(n):
        e[j] = 0.0
    for c in range(x.shape[0]):
        for j in range(n):
            v = <double>x[c, t + j]
            s = v * v
            if s < INFINITY:
                e[j] += s
            else:
                bad += 1
    return bad


def segment_chunk(const sample_t[:, ::1] x, Py_ssize_t start, double[::1] ring, double[::1] fstate,
                  int64_t[::1] istate, double on_sum, double off_sum, int64_t[::1] cross):
    """Process ``x[:, start:]`` until done or ``cross`` could overflow; returns (next t, #crossings).

    ring/fstate/istate: ``KernelState`` arrays (updated in place); cross: int64 output buffer with
    capacity >= 512.
    """
    cdef Py_ssize_t T = x.shape[1], W = ring.shape[0], cap = cross.shape[0]
    cdef Py_ssize_t t = start, n, j, k = 0
    cdef double p = fstate[0], old, w
    cdef Py_ssize_t pos = istate[0]
    cdef int64_t active = istate[1], t_abs = istate[2], bad = istate[3]
    cdef double e[BLOCK]
    with nogil:
        while t < T:
            n = T - t
            if n > BLOCK:
                n = BLOCK
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


def _envelope_sum(const sample_t[:, ::1] x, Py_ssize_t W, double[::1] out):
    cdef Py_ssize_t C = x.shape[0], T = x.shape[1], t = 0, n, j, pos = 0
    cdef double p = 0.0, old
    cdef double denom = <double>(C * W)
    cdef int64_t bad = 0
    cdef double e[BLOCK]
    cdef double[::1] ring = np.zeros(W, dtype=np.float64)
    with nogil:
        while t < T:
            n = T - t
            if n > BLOCK:
                n = BLOCK
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


def _envelope_per_channel(const sample_t[:, ::1] x, Py_ssize_t W, double[:, ::1] out):
    cdef Py_ssize_t C = x.shape[0], T = x.shape[1], c, t, pos
    cdef double p, old, v, s
    cdef double denom = <double>W
    cdef int64_t bad = 0
    cdef double[::1] ring = np.zeros(W, dtype=np.float64)
    with nogil:
        for c in range(C):
            for t in range(W):
                ring[t] = 0.0
            p = 0.0
            pos = 0
            for t in range(T):
                v = <double>x[c, t]
                s = v * v
                if s < INFINITY:
                    p += s
                else:
                    bad += 1
                old = ring[pos]
                ring[pos] = p
                pos += 1
                if pos == W:
                    pos = 0
                out[c, t] = (p - old) / denom
    return bad


def envelope(x, Py_ssize_t window, bint per_channel=False):
    """Backend entry of op ``"envelope"`` (see ``aemg.tokenizer._reference.envelope``)."""
    x = np.ascontiguousarray(x)
    C, T = x.shape
    if per_channel:
        out = np.empty((C, T), dtype=np.float64)
        bad = _envelope_per_channel(x, window, out)
    else:
        out = np.empty(T, dtype=np.float64)
        bad = _envelope_sum(x, window, out)
    return out, int(bad)
