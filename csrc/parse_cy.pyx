# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# distutils: extra_compile_args = -ffp-contract=off
"""Cython parser of delimited *integer* text tables (-> ``aemg._ext.parse_cy``), the common case of
raw ADC or int8 counts saved as text (3DC's ``.txt.gz``). Used by
``aemg.data.readers.base.parse_table`` before ``np.loadtxt``: it returns ``None`` for anything it
does not parse exactly (a decimal point, an exponent, a non-ASCII byte, a ragged row, a
whitespace-only line, a number of more than 15 digits), and the caller then falls back to
``np.loadtxt`` and its error messages, so results and errors are those of ``np.loadtxt`` either way.
"""
import numpy as np

cdef inline bint _blank(unsigned char ch) noexcept nogil:
    return ch == 32 or ch == 9  # space, tab


def parse_int_table(const unsigned char[::1] buf, int delimiter, Py_ssize_t skip_rows,
                    Py_ssize_t n_columns):
    """Parse ``buf`` (ASCII bytes) into a float64 array (rows, columns), or return None.

    ``delimiter``: the separator's byte value, or -1 for runs of spaces/tabs; ``skip_rows``: lines
    skipped first; ``n_columns``: expected columns (-1: the first data row's). Empty lines (also
    ``\\r``-only) are ignored, as ``np.loadtxt`` does; lines end at ``\\n`` with an optional ``\\r``.
    Returns None when there is no data row.
    """
    cdef Py_ssize_t n = buf.shape[0], i = 0, lines = 1, rows = 0, col, width = n_columns
    cdef Py_ssize_t start, digits, cap
    cdef unsigned char ch
    cdef bint neg, ok = True, seen
    cdef double v
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
    cap = lines
    arr = np.empty((cap, width), dtype=np.float64)
    out = arr
    with nogil:
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
                neg = False
                if i < n and (buf[i] == 45 or buf[i] == 43):
                    neg = buf[i] == 45
                    i += 1
                v = 0.0
                digits = 0
                while i < n and 48 <= buf[i] <= 57:
                    v = v * 10.0 + (buf[i] - 48)
                    digits += 1
                    i += 1
                if digits == 0 or digits > 15 or col >= width:
                    ok = False
                    break
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
