# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# distutils: extra_compile_args = -ffp-contract=off
"""Cython kernel of token extraction (-> ``aemg._ext.tokens_cy``): cut, per-channel RMS energy,
z-score and dominant channel of every token, written into preallocated rows.

Bit-identical to ``aemg.tokenizer.tokens_numba.extract_into`` (the same float64 operations in the
same order: 4 interleaved lanes per row, ``(l0 + l1) + (l2 + l3)``, then the tail; no FMA).
Reference: ``aemg.tokenizer.tokens.extract_tokens_reference``.
"""
from libc.math cimport sqrt, NAN
from libc.stdint cimport int64_t


cdef inline void _row_sums(const float* row, Py_ssize_t n, double mean, double* s1,
                           double* s2) noexcept nogil:
    cdef double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
    cdef double b0 = 0.0, b1 = 0.0, b2 = 0.0, b3 = 0.0
    cdef double v0, v1, v2, v3, v, r1, r2
    cdef Py_ssize_t j, n4 = n - n % 4
    for j in range(0, n4, 4):
        v0 = <double>row[j] - mean
        v1 = <double>row[j + 1] - mean
        v2 = <double>row[j + 2] - mean
        v3 = <double>row[j + 3] - mean
        a0 += v0
        a1 += v1
        a2 += v2
        a3 += v3
        b0 += v0 * v0
        b1 += v1 * v1
        b2 += v2 * v2
        b3 += v3 * v3
    r1 = (a0 + a1) + (a2 + a3)
    r2 = (b0 + b1) + (b2 + b3)
    for j in range(n4, n):
        v = <double>row[j] - mean
        r1 += v
        r2 += v * v
    s1[0] = r1
    s2[0] = r2


def extract_into(const float[:, ::1] x, const int64_t[::1] rel_starts, Py_ssize_t token_len,
                 double flat_rel, double tiny, float[:, :, ::1] payload, float[:, ::1] energy,
                 short[::1] dominant):
    """Fill ``payload[n] (C, L)``, ``energy[n] (C,)``, ``dominant[n]`` for every token ``n``
    (x (C, T) float32; token ``[s, s + L)`` inside x for every ``s`` of ``rel_starts``)."""
    cdef Py_ssize_t n, c, j, s, arg, n_ch = x.shape[0]
    cdef double inv_len = 1.0 / token_len
    cdef double s1, s2, d1, d2, rms, mean, std, lim
    cdef float mean32, scale32, e32, best
    cdef bint found_nan
    cdef const float* row
    cdef float* out
    with nogil:
        for n in range(rel_starts.shape[0]):
            s = rel_starts[n]
            best = 0.0
            arg = 0
            found_nan = False
            for c in range(n_ch):
                row = &x[c, s]
                _row_sums(row, token_len, 0.0, &s1, &s2)
                rms = sqrt(s2 * inv_len)
                mean = s1 * inv_len
                _row_sums(row, token_len, mean, &d1, &d2)
                std = sqrt(d2 * inv_len)
                out = &payload[n, c, 0]
                lim = flat_rel * rms
                if lim < tiny:
                    lim = tiny
                if std <= lim:
                    for j in range(token_len):
                        out[j] = 0.0
                elif std != std:
                    for j in range(token_len):
                        out[j] = NAN
                else:
                    mean32 = <float>mean
                    scale32 = <float>(1.0 / std)
                    for j in range(token_len):
                        out[j] = (row[j] - mean32) * scale32
                e32 = <float>rms
                energy[n, c] = e32
                if not found_nan:
                    if e32 != e32:
                        found_nan = True
                        arg = c
                    elif c == 0 or e32 > best:
                        best = e32
                        arg = c
            dominant[n] = <short>arg
