# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# distutils: extra_compile_args = -ffp-contract=off
"""Cython kernel of the zero-phase SOS cascade (-> ``aemg._ext.filt_cy``): band-pass and notches in
one forward-backward pass, ``scipy.signal.sosfiltfilt`` with odd padding, fused; and the polyphase
resampler of ``scipy.signal.resample_poly``.

Bit-identical to SciPy's float64 ``sosfiltfilt(sos, x, padlen=padlen)`` (same float64 operations
in the same order as SciPy's ``_sosfilt``: direct form II transposed, no FMA), for int16, float32
and float64 input of any strides; the output is float64 or float32 (then rounded once at the end).
Four channels are filtered together (interleaved lanes) so the recursions of several channels and
sections overlap. Reference: ``aemg.data.rectify.sosfiltfilt_reference``.

The ``*32_into`` functions are the float32 path: SciPy's float32 computation (``sosfiltfilt`` /
``resample_poly`` of float32 samples with float32 coefficients), the same operations in the same
order on 8 float lanes (4 for the last channels), bit-identical to it. References:
``aemg.data.rectify.sosfiltfilt32_reference``, ``resample_poly32_reference``.
"""
from libc.stdlib cimport free

cdef extern from "stdlib.h" nogil:
    int posix_memalign(void** ptr, size_t alignment, size_t size)

ctypedef fused sample_t:
    short
    float
    double

ctypedef fused out_t:
    float
    double

cdef extern from "filt_kernel.h" nogil:
    int aemg_sos_cascade4(double* buf, Py_ssize_t n, int step, const double* sos, const double* zi,
                          Py_ssize_t n_sec)
    int AEMG_MAX_SECTIONS
    void aemg_upfirdn4(const double* x, Py_ssize_t len_x, const double* h_tf, Py_ssize_t len_h,
                       Py_ssize_t up, Py_ssize_t down, Py_ssize_t y0, Py_ssize_t n_out, double* out)
    int aemg_sos_cascade8f(float* buf, Py_ssize_t n, int step, const float* sos, const float* zi,
                           Py_ssize_t n_sec)
    int aemg_sos_cascade4f(float* buf, Py_ssize_t n, int step, const float* sos, const float* zi,
                           Py_ssize_t n_sec)
    void aemg_upfirdn8f(const float* x, Py_ssize_t len_x, const float* h_tf, Py_ssize_t len_h,
                        Py_ssize_t up, Py_ssize_t down, Py_ssize_t y0, Py_ssize_t n_out, float* out)
    void aemg_upfirdn4f(const float* x, Py_ssize_t len_x, const float* h_tf, Py_ssize_t len_h,
                        Py_ssize_t up, Py_ssize_t down, Py_ssize_t y0, Py_ssize_t n_out, float* out)

cdef enum:
    LANES = 4


cdef inline void _gather(const sample_t[:, :] x, Py_ssize_t c0, double* buf, Py_ssize_t off,
                         Py_ssize_t n) noexcept nogil:
    """Rows ``c0 .. c0 + 3`` of ``x`` as float64 into the lanes of ``buf`` from vector ``off``; the
    lanes of missing rows are zero over all ``n`` vectors of ``buf``."""
    cdef Py_ssize_t j, t, c, C = x.shape[0], T = x.shape[1]
    for j in range(LANES):
        c = c0 + j
        if c >= C:
            for t in range(n):
                buf[t * LANES + j] = 0.0
        else:
            for t in range(T):
                buf[(off + t) * LANES + j] = <double>x[c, t]


cdef inline void _scatter(const double* buf, Py_ssize_t off, Py_ssize_t c0, out_t[:, ::1] out) noexcept nogil:
    """The lanes of ``buf`` from vector ``off`` into rows ``c0 .. c0 + 3`` of ``out`` (those that exist)."""
    cdef Py_ssize_t j, t, c
    for j in range(LANES):
        c = c0 + j
        if c >= out.shape[0]:
            break
        for t in range(out.shape[1]):
            out[c, t] = <out_t>buf[(off + t) * LANES + j]


cdef bint _cascade_args_ok(Py_ssize_t C, Py_ssize_t T, Py_ssize_t out_rows, Py_ssize_t out_cols,
                           Py_ssize_t padlen, Py_ssize_t zi_len, Py_ssize_t n_sec,
                           Py_ssize_t sos_cols) except -1:
    """The checks of both zero-phase cascades (float64 and float32): ValueError naming the bad
    argument; False when there is nothing to do (T = 0), True otherwise."""
    if out_rows != C or out_cols != T:
        raise ValueError(f"out has shape ({out_rows}, {out_cols}), expected ({C}, {T})")
    if T == 0:
        return False
    if padlen < 0 or padlen > T - 1:
        raise ValueError(f"padlen {padlen} outside [0, {T - 1}]")
    if zi_len != 2 * n_sec or sos_cols != 6:
        raise ValueError("sos must be (S, 6) and zi (2 S,)")
    if n_sec > AEMG_MAX_SECTIONS:
        raise ValueError(f"{n_sec} sections: at most {AEMG_MAX_SECTIONS}")
    return True


cdef bint _upfirdn_args_ok(Py_ssize_t C, Py_ssize_t out_rows, Py_ssize_t n_out, Py_ssize_t len_h,
                           Py_ssize_t up, Py_ssize_t down, Py_ssize_t y0) except -1:
    """The checks of both resamplers (float64 and float32): ValueError naming the bad argument;
    False when there is nothing to do (no output or no channel), True otherwise."""
    if out_rows != C:
        raise ValueError(f"out has {out_rows} rows, expected {C}")
    if up < 1 or down < 1 or len_h % up or y0 < 0:
        raise ValueError("need up, down >= 1, len(h_tf) a multiple of up, y0 >= 0")
    if n_out == 0 or C == 0:
        return False
    return True


def sosfiltfilt_into(const sample_t[:, :] x, const double[:, ::1] sos, const double[::1] zi,
                     Py_ssize_t padlen, out_t[:, ::1] out):
    """Write the zero-phase SOS cascade of ``x`` (C, T) into ``out`` (C, T).

    ``sos`` (S, 6) normalised sections (a0 = 1); ``zi`` (2 S,) = ``sosfilt_zi(sos).ravel()``;
    ``padlen`` in [0, T - 1]: odd extension at both ends, as SciPy's ``padtype="odd"``.
    """
    cdef Py_ssize_t C = x.shape[0], T = x.shape[1], n_sec = sos.shape[0]
    cdef Py_ssize_t n = T + 2 * padlen, c0, j, t, c
    cdef double* buf
    cdef double first, last
    if not _cascade_args_ok(C, T, out.shape[0], out.shape[1], padlen, zi.shape[0], n_sec, sos.shape[1]):
        return
    if n_sec == 0:
        for c in range(C):
            for t in range(T):
                out[c, t] = <out_t>x[c, t]
        return
    if posix_memalign(<void**>&buf, 32, n * LANES * sizeof(double)) != 0:
        raise MemoryError()
    with nogil:
        for c0 in range(0, C, 4):  # LANES
            _gather(x, c0, buf, padlen, n)
            for j in range(min(LANES, C - c0)):  # odd extension at both ends
                c = c0 + j
                first = <double>x[c, 0]
                last = <double>x[c, T - 1]
                for t in range(padlen):
                    buf[t * LANES + j] = 2 * first - <double>x[c, padlen - t]
                for t in range(padlen):
                    buf[(padlen + T + t) * LANES + j] = 2 * last - <double>x[c, T - 2 - t]
            aemg_sos_cascade4(buf, n, 1, &sos[0, 0], &zi[0], n_sec)
            aemg_sos_cascade4(buf, n, -1, &sos[0, 0], &zi[0], n_sec)
            _scatter(buf, padlen, c0, out)
    free(buf)


def upfirdn_into(const sample_t[:, :] x, const double[::1] h_tf, Py_ssize_t up, Py_ssize_t down,
                 Py_ssize_t y0, out_t[:, ::1] out):
    """Write outputs ``y0 .. y0 + out.shape[1] - 1`` of SciPy's zero-padded
    ``upfirdn(h, x, up, down)`` along time of ``x`` (C, T) into ``out`` (C, n), bit-identical in
    float64. ``h_tf``: ``scipy.signal._upfirdn._pad_h(h, up)``; the caller keeps every output within
    the full upfirdn length."""
    cdef Py_ssize_t C = x.shape[0], T = x.shape[1], n_out = out.shape[1], len_h = h_tf.shape[0]
    cdef Py_ssize_t c0, c, j, t
    cdef double* xb
    cdef double* yb
    if not _upfirdn_args_ok(C, out.shape[0], n_out, len_h, up, down, y0):
        return
    if posix_memalign(<void**>&xb, 32, max(T, 1) * LANES * sizeof(double)) != 0:
        raise MemoryError()
    if posix_memalign(<void**>&yb, 32, n_out * LANES * sizeof(double)) != 0:
        free(xb)
        raise MemoryError()
    with nogil:
        for c0 in range(0, C, 4):  # LANES
            _gather(x, c0, xb, 0, T)
            aemg_upfirdn4(xb, T, &h_tf[0], len_h, up, down, y0, n_out, yb)
            _scatter(yb, 0, c0, out)
    free(xb)
    free(yb)


# -- float32 path ------------------------------------------------------------------------------------

cdef inline void _gather32(const sample_t[:, :] x, Py_ssize_t c0, int L, float* buf, Py_ssize_t off,
                           Py_ssize_t n) noexcept nogil:
    """Rows ``c0 .. c0 + L - 1`` of ``x`` as float32 into the ``L`` lanes of ``buf`` from vector
    ``off``; the lanes of missing rows are zero over all ``n`` vectors."""
    cdef Py_ssize_t j, t, c, C = x.shape[0], T = x.shape[1]
    for j in range(L):
        c = c0 + j
        if c >= C:
            for t in range(n):
                buf[t * L + j] = 0.0
        else:
            for t in range(T):
                buf[(off + t) * L + j] = <float>x[c, t]


cdef inline void _scatter32(const float* buf, int L, Py_ssize_t off, Py_ssize_t c0,
                            float[:, ::1] out) noexcept nogil:
    cdef Py_ssize_t j, t, c
    for j in range(L):
        c = c0 + j
        if c >= out.shape[0]:
            break
        for t in range(out.shape[1]):
            out[c, t] = buf[(off + t) * L + j]


def sosfiltfilt32_into(const sample_t[:, :] x, const float[:, ::1] sos, const float[::1] zi,
                       Py_ssize_t padlen, float[:, ::1] out):
    """float32 zero-phase SOS cascade of ``x`` (C, T) into ``out`` (C, T) float32: SciPy's
    ``sosfiltfilt(sos, x.astype(float32), padlen=padlen)`` with float32 ``sos`` (S, 6), bit for bit.
    ``zi`` (2 S,) float32 = ``sosfilt_zi(sos).ravel()`` of the float32 sections."""
    cdef Py_ssize_t C = x.shape[0], T = x.shape[1], n_sec = sos.shape[0]
    cdef Py_ssize_t n = T + 2 * padlen, c0, j, t, c
    cdef int L
    cdef float* buf
    cdef float first, last
    if not _cascade_args_ok(C, T, out.shape[0], out.shape[1], padlen, zi.shape[0], n_sec, sos.shape[1]):
        return
    if n_sec == 0:
        for c in range(C):
            for t in range(T):
                out[c, t] = <float>x[c, t]
        return
    if posix_memalign(<void**>&buf, 32, n * 8 * sizeof(float)) != 0:
        raise MemoryError()
    with nogil:
        c0 = 0
        while c0 < C:
            L = 8 if C - c0 > 4 else 4
            _gather32(x, c0, L, buf, padlen, n)
            for j in range(min(L, C - c0)):  # odd extension at both ends, in float32 as SciPy
                c = c0 + j
                first = <float>x[c, 0]
                last = <float>x[c, T - 1]
                for t in range(padlen):
                    buf[t * L + j] = <float>2 * first - <float>x[c, padlen - t]
                for t in range(padlen):
                    buf[(padlen + T + t) * L + j] = <float>2 * last - <float>x[c, T - 2 - t]
            if L == 8:
                aemg_sos_cascade8f(buf, n, 1, &sos[0, 0], &zi[0], n_sec)
                aemg_sos_cascade8f(buf, n, -1, &sos[0, 0], &zi[0], n_sec)
            else:
                aemg_sos_cascade4f(buf, n, 1, &sos[0, 0], &zi[0], n_sec)
                aemg_sos_cascade4f(buf, n, -1, &sos[0, 0], &zi[0], n_sec)
            _scatter32(buf, L, padlen, c0, out)
            c0 += L
    free(buf)


def upfirdn32_into(const sample_t[:, :] x, const float[::1] h_tf, Py_ssize_t up, Py_ssize_t down,
                   Py_ssize_t y0, float[:, ::1] out):
    """float32 outputs ``y0 .. y0 + out.shape[1] - 1`` of SciPy's zero-padded ``upfirdn(h, x, up,
    down)`` of ``x`` (C, T) as float32, into ``out`` (C, n) float32, bit for bit; ``h_tf``:
    ``_pad_h(h, up)`` of the float32 filter."""
    cdef Py_ssize_t C = x.shape[0], T = x.shape[1], n_out = out.shape[1], len_h = h_tf.shape[0]
    cdef Py_ssize_t c0
    cdef int L
    cdef float* xb
    cdef float* yb
    if not _upfirdn_args_ok(C, out.shape[0], n_out, len_h, up, down, y0):
        return
    if posix_memalign(<void**>&xb, 32, max(T, 1) * 8 * sizeof(float)) != 0:
        raise MemoryError()
    if posix_memalign(<void**>&yb, 32, n_out * 8 * sizeof(float)) != 0:
        free(xb)
        raise MemoryError()
    with nogil:
        c0 = 0
        while c0 < C:
            L = 8 if C - c0 > 4 else 4
            _gather32(x, c0, L, xb, 0, T)
            if L == 8:
                aemg_upfirdn8f(xb, T, &h_tf[0], len_h, up, down, y0, n_out, yb)
            else:
                aemg_upfirdn4f(xb, T, &h_tf[0], len_h, up, down, y0, n_out, yb)
            _scatter32(yb, L, 0, c0, out)
            c0 += L
    free(xb)
    free(yb)
