"""The compiled number-table parser of ``parse_table`` against ``np.loadtxt`` (exact: same values bit
for bit, same shape; anything it does not parse goes to ``np.loadtxt``, so errors are unchanged)."""
import io

import numpy as np
import pytest

from aemg.data.readers import base
from aemg.data.readers.base import parse_table
from aemg.errors import DataError

pytestmark = pytest.mark.skipif(base._FAST_PARSER is None, reason="aemg._ext.parse_cy not built")

CASES = ["1,2,3\n4,5,6\n", "1,2,3\r\n4,5,6\r\n", "1,2,3\n\n4,5,6", " -1 , +2,3 \n4,5,6\n",
         "1 2 3\n 4\t5 6 \n", "1,2\n3\n", "1.5,2\n", "1,,2\n", "h\n1,2\n", "12-3 4\n5 6 7\n",
         "\n\n1,2\n", "1,2,\n", "nan,1\n", "   \n1,2\n", "1,2\n   \n", "9999999999999999,1\n", "-0,1\n",
         "1,2\n3,x\n", "\u00e91,2\n",
         # decimal numbers: fractions, exponents, signs, leading/trailing zeros, edge forms
         ".5,5.\n-.5,+5.\n", "0.78384,-0.12341\n", "1e5,1E-5\n", "-1.5e+03,2.5e-3\n", "1e,2\n",
         "1.e3,.1e-2\n", ".,1\n", "-,1\n", "1.5.3,2\n", "1e5.5,2\n", "-0.0,0.000\n", "0.0001230000,100\n",
         "1_0,2\n",
         "inf,1\n", "-inf,1\n", "1e400,1\n", "1e-400,1\n", "-2.251999999999999780e+00 9.15e-01\n",
         "123456789012345678901234567890,1\n", "0.1234567890123456789012,1\n", "1e22,1e23\n",
         "9007199254740993,1\n", "9007199254740993e1,1\n", "12345678901234567e-5,3\n", "1e-22,1e-23\n",
         "4.9e-324,2.2250738585072014e-308\n", "1.7976931348623157e308,1\n", "0e99999,1\n",
         "1.5 ,  2.5\n", "1.5\t2.5\n", "", "5", "-5.5\n", "5\r\n", "1" + "0" * 70 + ",1\n"]


def loadtxt(text, delimiter, skip):
    return np.loadtxt(io.StringIO(text), delimiter=delimiter, skiprows=skip, ndmin=2, comments=None)


def assert_same(fast, ref):
    assert fast.dtype == np.float64 and fast.shape == ref.shape
    np.testing.assert_array_equal(fast.view(np.uint64), ref.view(np.uint64))  # bit for bit, signed zeros too


@pytest.mark.parametrize("text", CASES)
@pytest.mark.parametrize("delimiter", [",", None])
@pytest.mark.parametrize("skip", [0, 1])
def test_fast_path_equals_loadtxt_or_declines(text, delimiter, skip):
    fast = base._parse_fast_table(text, delimiter, skip, None)
    if fast is None:
        return
    assert_same(fast, loadtxt(text, delimiter, skip))


@pytest.mark.parametrize("text", [".5,5.\n-.5,+5.\n", "1e5,1E-5\n", "-0.0,0.000\n", "1e22,1e23\n",
                                  "9007199254740993e1,1\n", "12345678901234567e-5,3\n", "1e400,1\n",
                                  "4.9e-324,2.2250738585072014e-308\n",
                                  "-2.251999999999999780e+00,9.15e-01\n", "0.1234567890123456789012,1\n"])
def test_fast_path_takes_decimal_forms(text):
    fast = base._parse_fast_table(text, ",", 0, None)
    assert fast is not None
    assert_same(fast, loadtxt(text, ",", 0))


@pytest.mark.parametrize("field, expected", [("4503599627370496.5", 4503599627370496.0),  # ties: to even
                                             ("4503599627370497.5", 4503599627370498.0),
                                             ("4503599627370496.51", 4503599627370497.0),
                                             ("-4503599627370497.49", -4503599627370497.0),
                                             ("9007199254740993", 9007199254740992.0),
                                             ("18014398509481990e1", 180143985094819900.0)])
def test_wide_significands_round_to_nearest_even(field, expected):
    """Significands above 2**53 (the 128-bit path of ``csrc/parse_num.h``) at and around exact
    halfway points between two doubles."""
    fast = base._parse_fast_table(field + ",1\n", ",", 0, 2)
    assert fast is not None and fast[0, 0] == expected == float(field)
    assert_same(fast, loadtxt(field + ",1\n", ",", 0))


@pytest.mark.parametrize("text", ["1e,2\n", ".,1\n", "1.5.3,2\n", "1_0,2\n", "nan,1\n", "inf,1\n",
                                  "1" + "0" * 70 + ",1\n"])
def test_fast_path_declines_what_it_does_not_parse(text):
    assert base._parse_fast_table(text, ",", 0, None) is None


@pytest.mark.parametrize("fmt", ["%d", "%.5g", "%.6f", "%.8e", "%.18e", "%r", "%.17g", "%.3f", "%.20f"])
def test_random_values_equal_loadtxt_bit_for_bit(rng, fmt):
    """Values of every magnitude in the formats exports use (NumPy's default ``%.18e`` needs the
    general conversion: 19 significant digits; ``%.20f`` of small values: leading zeros)."""
    x = rng.standard_normal((400, 7)) * 10.0 ** rng.integers(-30, 30, (400, 7))
    x[::7, 0] = 0.0
    x[::11, 1] = -0.0
    if fmt == "%d":
        x = np.round(x.clip(-1e15, 1e15))
    text = "\n".join(",".join((fmt % v) if fmt != "%r" else repr(float(v)) for v in row) for row in x) + "\n"
    fast = base._parse_fast_table(text, ",", 0, 7)
    assert fast is not None
    assert_same(fast, loadtxt(text, ",", 0))
    if fmt in ("%r", "%.17g", "%.18e"):  # round-trip formats: the values themselves
        assert_same(fast, x)


@pytest.mark.parametrize("delimiter", [".", "e", "-", "+", "5"])
def test_a_delimiter_that_is_part_of_numbers_is_left_to_loadtxt(delimiter):
    text = delimiter.join(["1", "2", "3"]) + "\n"
    assert base._parse_fast_table(text, delimiter, 0, None) is None
    if delimiter == ".":  # loadtxt splits on it: three columns, not the number 1.2
        np.testing.assert_array_equal(parse_table(text, "f.txt", delimiter="."), [[1.0, 2.0, 3.0]])


def test_fast_path_takes_plain_integer_tables(rng):
    x = rng.integers(-2048, 2048, (500, 10))
    text = "\n".join(",".join(map(str, row)) for row in x) + "\n"
    fast = base._parse_fast_table(text, ",", 0, 10)
    assert fast is not None
    np.testing.assert_array_equal(fast, x)
    np.testing.assert_array_equal(parse_table(text, "f.txt", delimiter=",", n_columns=10, dtype=np.float32),
                                  x)
    assert base._parse_fast_table(text, ",", 0, 9) is None  # wrong width: loadtxt's path reports it


def test_fast_path_takes_bytes_and_whitespace_tables(rng):
    x = rng.standard_normal((50, 4))
    text = "\n".join(" ".join("%.18e" % v for v in row) for row in x) + "\n"  # np.savetxt's default
    fast = base._parse_fast_table(text.encode(), None, 0, 4)
    assert_same(fast, x)


@pytest.mark.parametrize("text, message", [("1,2\n3\n", "row 2 has 1 columns, expected 2"),
                                           ("1,2\n3,x\n", "row 2: 'x' is not a number"),
                                           ("1.5,2\n3,1e\n", "row 2: '1e' is not a number"),
                                           ("\n\n", "no data rows")])
def test_errors_are_unchanged(text, message):
    with pytest.raises(DataError, match=message):
        parse_table(text, "f.txt", delimiter=",")
