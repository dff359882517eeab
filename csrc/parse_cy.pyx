# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# distutils: extra_compile_args = -ffp-contract=off
"""Cython parser of delimited numeric text tables (-> ``aemg._ext.parse_cy``): raw ADC counts and
decimal exports (``0.78384``, ``-1.5e-03``, NumPy's ``%.18e``) saved as text. Used by
``aemg.data.readers.base.parse_table`` before ``np.loadtxt``, with the same values bit for bit:

- a number of at most 19 significant digits is read exactly into an integer ``M`` and a decimal
  exponent ``e``; ``M`` itself (``e = 0``), or ``M * 10**e`` / ``M / 10**-e`` with ``M <= 2**53``
  and ``|e| <= 22``, is one correctly rounded IEEE operation on exact operands (Clinger's fast
  path), so it equals a correctly rounded conversion; larger ``M`` (NumPy's ``%.18e``) with
  ``-22 <= e <= 19`` are rounded exactly in 128-bit integers (``csrc/parse_num.h``);
- any other number (more digits, a larger exponent) goes to ``PyOS_string_to_double``, the
  correctly rounded conversion that ``np.loadtxt`` itself calls.

It returns ``None`` for anything else (``nan``/``inf`` words, a non-ASCII byte, a ragged row, a
malformed number, a field of more than 63 bytes), and the caller then falls back to
``np.loadtxt`` and its error messages, so results and errors are those of ``np.loadtxt`` either way.
"""
import numpy as np

from cpython.ref cimport PyObject
from libc.math cimport NAN
from libc.stdint cimport uint64_t
from libc.string cimport memcpy


cdef extern from "parse_num.h":
    double wide_decimal(uint64_t m, long e) noexcept nogil

cdef extern from "Python.h":
    double PyOS_string_to_double(const char *s, char **endptr, PyObject *overflow_exception) except? -1.0

cdef double[23] _POW10 = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13,
                          1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22]
cdef uint64_t[20] _IPOW10
_IPOW10[0] = 1
for _k in range(1, 20):
    _IPOW10[_k] = _IPOW10[_k - 1] * 10
cdef uint64_t _EXACT = 1ULL << 53  # integers up to this are exact doubles
cdef int _MAX_DIGITS = 19           # significant digits that always fit a uint64
cdef enum:
    _FIELD_BYTES = 64               # longest field given to the general conversion, with its NUL


cdef inline bint _blank(unsigned char ch) noexcept nogil:
    return ch == 32 or ch == 9  # space, tab


cdef inline bint _digit(unsigned char ch) noexcept nogil:
    return 48 <= ch <= 57


cdef inline double _exact_or_nan(uint64_t m, long e) noexcept nogil:
    """``m * 10**e`` when one IEEE operation on exact operands gives it, else NaN (no decimal
    number parses to NaN, so NaN means "use the general conversion")."""
    if m == 0 or e == 0:
        return <double>m  # uint64 -> double: one correctly rounded conversion
    if m > _EXACT:
        return wide_decimal(m, e)
    if 0 < e <= 22:
        return <double>m * _POW10[e]
    if -22 <= e < 0:
        return <double>m / _POW10[-e]
    if 22 < e <= 22 + 15 and m <= _EXACT // _IPOW10[e - 22]:  # m * 10**(e-22) is still exact
        return <double>(m * _IPOW10[e - 22]) * _POW10[22]
    return NAN


def parse_number_table(const unsigned char[::1] buf, int delimiter, Py_ssize_t skip_rows,
                       Py_ssize_t n_columns):
    """Parse ``buf`` (ASCII bytes) into a float64 array (rows, columns), or return None.

    ``delimiter``: the separator's byte value, or -1 for runs of spaces/tabs; ``skip_rows``: lines
    skipped first; ``n_columns``: expected columns (-1: the first data row's). Empty lines (also
    ``\\r``-only) are ignored, as ``np.loadtxt`` does; lines end at ``\\n`` with an optional ``\\r``.
    A number is ``[+-]digits[.digits][(e|E)[+-]digits]`` (digits on at least one side of the
    point). Returns None when there is no data row or the text is not such a table.
    """
    cdef Py_ssize_t n = buf.shape[0], i = 0, lines = 1, rows = 0, col, width = n_columns
    cdef Py_ssize_t start, fstart, mdigits
    cdef unsigned char ch
    cdef bint neg, eneg, point, ok = True, seen
    cdef uint64_t m
    cdef int sig, zeros
    cdef long e10, ex
    cdef double v
    cdef char field[_FIELD_BYTES]
    cdef double[:, ::1] out
    for i in range(n):
        if buf[i] == 10:
            lines += 1
    i = 0
    while skip_rows > 0 and i < n:  # skip raw lines
        if buf[i] == 10:
            skip_rows -= 1
        i += 1
    if width < 0:  # count the columns of the first non-empty line
        start = i
        while start < n and (buf[start] == 10 or buf[start] == 13):
            start += 1
        width = 0
        seen = False
        while start < n and buf[start] != 10 and buf[start] != 13:
            ch = buf[start]
            if delimiter < 0:
                if _blank(ch):
                    seen = False
                elif not seen:
                    seen = True
                    width += 1
            elif ch == delimiter:
                width += 1
            start += 1
        if delimiter >= 0 and width >= 0:
            width += 1
        if width == 0:
            return None
    arr = np.empty((lines, width), dtype=np.float64)
    out = arr
    while i < n and ok:
        # one line
        if buf[i] == 10:
            i += 1
            continue
        if buf[i] == 13 and (i + 1 == n or buf[i + 1] == 10):
            i += 1
            continue
        col = 0
        while True:
            while i < n and _blank(buf[i]):
                i += 1
            if delimiter < 0 and (i == n or buf[i] == 10 or buf[i] == 13):
                break
            fstart = i
            neg = False
            if i < n and (buf[i] == 45 or buf[i] == 43):
                neg = buf[i] == 45
                i += 1
            # mantissa: m holds the significant digits, `zeros` the zeros after the last non-zero
            # one (multiplied in only when another non-zero digit follows), e10 the decimal exponent
            m = 0
            sig = 0
            zeros = 0
            e10 = 0
            mdigits = 0
            point = False
            while i < n:
                ch = buf[i]
                if ch == 46 and not point:  # '.': the digits after it lower the exponent
                    point = True
                    i += 1
                    continue
                if not _digit(ch):
                    break
                ch -= 48
                mdigits += 1
                i += 1
                if point:
                    e10 -= 1
                if ch == 0:
                    if m != 0:
                        zeros += 1
                elif sig + zeros + 1 <= _MAX_DIGITS:
                    m = m * _IPOW10[zeros + 1] + ch
                    sig += zeros + 1
                    zeros = 0
                else:
                    sig = _MAX_DIGITS + 1  # too many digits: the general conversion
            if mdigits == 0 or col >= width:
                ok = False
                break
            if i < n and (buf[i] == 101 or buf[i] == 69):  # 'e' / 'E'
                i += 1
                eneg = False
                if i < n and (buf[i] == 45 or buf[i] == 43):
                    eneg = buf[i] == 45
                    i += 1
                if i == n or not _digit(buf[i]):
                    ok = False
                    break
                ex = 0
                while i < n and _digit(buf[i]):
                    if ex < 100000:
                        ex = ex * 10 + (buf[i] - 48)
                    i += 1
                e10 += -ex if eneg else ex
            e10 += zeros
            v = NAN if sig > _MAX_DIGITS else _exact_or_nan(m, e10)
            if v != v:  # the general, correctly rounded conversion of the field's bytes
                if i - fstart >= _FIELD_BYTES:
                    ok = False
                    break
                memcpy(field, &buf[fstart], i - fstart)
                field[i - fstart] = 0
                try:
                    v = PyOS_string_to_double(field, NULL, NULL)
                except ValueError:
                    ok = False
                    break
                neg = False  # the sign is in the field
            out[rows, col] = -v if neg else v
            col += 1
            start = i
            while i < n and _blank(buf[i]):
                i += 1
            if i == n or buf[i] == 10 or buf[i] == 13:
                break
            if delimiter >= 0:
                if buf[i] != delimiter:
                    ok = False
                    break
                i += 1
            elif i == start:  # whitespace-separated fields need a blank between them
                ok = False
                break
        if not ok:
            break
        if i < n and buf[i] == 13:
            i += 1
            if i < n and buf[i] != 10:
                ok = False
                break
        if col != width:
            ok = False
            break
        rows += 1
        if i < n:
            i += 1  # the newline
    if not ok or rows == 0:
        return None
    return arr[:rows]
