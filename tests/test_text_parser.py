"""The compiled integer-table parser of ``parse_table`` against ``np.loadtxt`` (exact: same values,
same shape; anything it does not parse goes to ``np.loadtxt``, so errors are unchanged)."""
import io

import numpy as np
import pytest

from aemg.data.readers import base
from aemg.data.readers.base import parse_table
from aemg.errors import DataError

pytestmark = pytest.mark.skipif(base._INT_PARSER is None, reason="aemg._ext.parse_cy not built")

CASES = ["1,2,3\n4,5,6\n", "1,2,3\r\n4,5,6\r\n", "1,2,3\n\n4,5,6", " -1 , +2,3 \n4,5,6\n",
         "1 2 3\n 4\t5 6 \n", "1,2\n3\n", "1.5,2\n", "1,,2\n", "h\n1,2\n", "12-3 4\n5 6 7\n",
         "\n\n1,2\n", "1,2,\n", "nan,1\n", "   \n1,2\n", "1,2\n   \n", "9999999999999999,1\n", "-0,1\n",
         "1,2\n3,x\n", "\u00e91,2\n"]


def loadtxt(text, delimiter, skip):
    return np.loadtxt(io.StringIO(text), delimiter=delimiter, skiprows=skip, ndmin=2, comments=None)


@pytest.mark.parametrize("text", CASES)
@pytest.mark.parametrize("delimiter", [",", None])
@pytest.mark.parametrize("skip", [0, 1])
def test_fast_path_equals_loadtxt_or_declines(text, delimiter, skip):
    fast = base._parse_int_table(text, delimiter, skip, None)
    if fast is None:
        return
    ref = loadtxt(text, delimiter, skip)
    assert fast.dtype == np.float64 and fast.shape == ref.shape
    np.testing.assert_array_equal(fast, ref)
    np.testing.assert_array_equal(np.signbit(fast), np.signbit(ref))


def test_fast_path_takes_plain_integer_tables(rng):
    x = rng.integers(-2048, 2048, (500, 10))
    text = "\n".join(",".join(map(str, row)) for row in x) + "\n"
    fast = base._parse_int_table(text, ",", 0, 10)
    assert fast is not None
    np.testing.assert_array_equal(fast, x)
    np.testing.assert_array_equal(parse_table(text, "f.txt", delimiter=",", n_columns=10, dtype=np.float32),
                                  x)
    assert base._parse_int_table(text, ",", 0, 9) is None  # wrong width: loadtxt's path reports it


@pytest.mark.parametrize("text, message", [("1,2\n3\n", "row 2 has 1 columns, expected 2"),
                                           ("1,2\n3,x\n", "row 2: 'x' is not a number"),
                                           ("\n\n", "no data rows")])
def test_errors_are_unchanged(text, message):
    with pytest.raises(DataError, match=message):
        parse_table(text, "f.txt", delimiter=",")
