# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# distutils: extra_compile_args = -ffp-contract=off
"""Cython backend of the energy envelope and raw segmentation (-> ``aemg._ext.segment_cy``).

Bit-identical to ``aemg.tokenizer.segment_reference``: the same float64 operations in the same order
(``-ffp-contract=off`` forbids fusing ``v*v + e`` into an FMA on CPUs that have one). Inputs are
C-contiguous (C, T) arrays of float32, float64, int16 or int8; the Python driver in
``aemg.tokenizer.segment`` makes them so.
"""
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from libc.string cimport memmove

import numpy as np

ctypedef fused sample_t:
    float
    double
    short
    signed char

cdef enum:
    BLOCK = 1024
    MAX_BLOCK = 8192  # the driver's crossing buffer must hold at least this many


cdef inline void _block_energy(const sample_t[:, ::1] x, Py_ssize_t t, Py_ssize_t n,
                               double* e) noexcept nogil:
    """e[:n] = sum_c x[c, t:t+n]**2 in float64, channel order (vectorised over time).

    A non-finite square makes e[j] non-finite (squares are >= 0: no inf - inf); the caller then
    recomputes it with _careful_energy, which gives the same value when all squares are finite.
    """
    cdef Py_ssize_t c, j
    cdef const sample_t* row
    cdef double v
    for j in range(n):
        e[j] = 0.0
    for c in range(x.shape[0]):
        row = &x[c, t]
        for j in range(n):
            v = <double>row[j]
            e[j] += v * v


cdef inline double _careful_energy(const sample_t[:, ::1] x, Py_ssize_t t, int64_t* bad) noexcept nogil:
    """sum_c x[c, t]**2 with non-finite squares counted as 0 (and counted in bad)."""
    cdef Py_ssize_t c
    cdef double v, s, acc = 0.0
    for c in range(x.shape[0]):
        v = <double>x[c, t]
        s = v * v
        if s < INFINITY:
            acc += s
        else:
            bad[0] += 1
    return acc


cdef inline double _block_prefix(const sample_t[:, ::1] x, Py_ssize_t t, Py_ssize_t n, double* e,
                                 double* hist, Py_ssize_t W, double p, int64_t* bad) noexcept nogil:
    """Append the prefix sums P[t..t+n-1] (from ``p`` = P[t-1]) to hist[W:W+n], energies summed in
    float64 in time order; returns P[t+n-1]. The one definition of the envelope's arithmetic here
    (segmentation and envelope share it)."""
    cdef Py_ssize_t j
    cdef double ej
    _block_energy(x, t, n, e)
    for j in range(n):
        ej = e[j]
        if not ej < INFINITY:
            ej = _careful_energy(x, t + j, bad)
        p += ej
        hist[W + j] = p
    return p


def segment_chunk(const sample_t[:, ::1] x, Py_ssize_t start, double[::1] ring, double[::1] fstate,
                  int64_t[::1] istate, double on_sum, double off_sum, int64_t[::1] cross):
    """Process ``x[:, start:]`` until done or ``cross`` could overflow; returns (next t, #crossings).

    ring/fstate/istate: ``KernelState`` arrays (updated in place; the ring is left in time order,
    pos = 0); cross: int64 output buffer with capacity >= MAX_BLOCK. Same block scheme as the Numba
    kernel: energies (vectorised), prefix sums (sequential) after the W previous ones, a
    vectorised count of state flips, and the scalar hysteresis only for blocks that have one.
    """
    cdef Py_ssize_t T = x.shape[1], W = ring.shape[0], cap = cross.shape[0]
    cdef Py_ssize_t blk = max(<Py_ssize_t>BLOCK, min(W, <Py_ssize_t>MAX_BLOCK))
    cdef Py_ssize_t t = start, n, j, k = 0, flips
    cdef double p = fstate[0], w
    cdef Py_ssize_t pos = istate[0]
    cdef int64_t active = istate[1], t_abs = istate[2], bad = istate[3]
    cdef double[::1] e_buf = np.empty(blk, dtype=np.float64)
    cdef double[::1] h_buf = np.empty(W + blk, dtype=np.float64)
    cdef double* e = &e_buf[0]
    cdef double* hist = &h_buf[0]
    for j in range(W):  # time order: P[t-W] ... P[t-1]
        hist[j] = ring[(pos + j) % W]
    with nogil:
        while t < T:
            n = T - t
            if n > blk:
                n = blk
            if cap - k < n:
                break
            p = _block_prefix(x, t, n, e, hist, W, p, &bad)
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
            memmove(hist, hist + n, W * sizeof(double))
            t += n
            t_abs += n
    for j in range(W):
        ring[j] = hist[j]
    fstate[0] = p
    istate[0] = 0
    istate[1] = active
    istate[2] = t_abs
    istate[3] = bad
    return t, k


def _envelope_sum(const sample_t[:, ::1] x, Py_ssize_t W, double[::1] out):
    cdef Py_ssize_t C = x.shape[0], T = x.shape[1], t = 0, n, j
    cdef Py_ssize_t blk = max(<Py_ssize_t>BLOCK, min(W, <Py_ssize_t>MAX_BLOCK))
    cdef double p = 0.0
    cdef double denom = <double>(C * W)
    cdef int64_t bad = 0
    cdef double[::1] e_buf = np.empty(blk, dtype=np.float64)
    cdef double[::1] h_buf = np.zeros(W + blk, dtype=np.float64)
    cdef double* e = &e_buf[0]
    cdef double* hist = &h_buf[0]
    with nogil:
        while t < T:
            n = T - t
            if n > blk:
                n = blk
            p = _block_prefix(x, t, n, e, hist, W, p, &bad)
            for j in range(n):
                out[t + j] = (hist[W + j] - hist[j]) / denom
            memmove(hist, hist + n, W * sizeof(double))
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
    """Backend entry of op ``"envelope"`` (see ``aemg.tokenizer.segment_reference.envelope``)."""
    x = np.ascontiguousarray(x)
    C, T = x.shape
    if per_channel:
        out = np.empty((C, T), dtype=np.float64)
        bad = _envelope_per_channel(x, window, out)
    else:
        out = np.empty(T, dtype=np.float64)
        bad = _envelope_sum(x, window, out)
    return out, int(bad)
