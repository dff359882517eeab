"""The compiled zero-phase SOS cascade (``"sosfiltfilt"`` op) against the SciPy reference.

Stated tolerance: 0 in float64 (the Cython kernel performs SciPy's ``_sosfilt`` float64 operations
in the same order, without FMA); with ``dtype=np.float32`` the output is the float64 result rounded
once, so it equals ``reference.astype(np.float32)`` exactly.
"""
import numpy as np
import pytest
from scipy import signal

from aemg import backends
from aemg.data.rectify import _band_sos, _notch_sos, sosfiltfilt_reference, welch_channel_sum, zero_phase
from aemg.errors import DataError

COMPILED = [b for b in backends.available("sosfiltfilt") if b != "scipy"]


def cascade(rate=500.0, lines=(60.0, 120.0, 180.0)):
    return np.vstack([_band_sos(rate, 20.0, 225.0, 4), _notch_sos(rate, lines, 30.0)])


def make(shape, dtype, layout, rng):
    x = rng.normal(0, 300, shape)
    if np.issubdtype(dtype, np.integer):
        x = np.round(x)
    x = x.astype(dtype)
    if layout == "F":
        x = np.asfortranarray(x)
    elif layout == "strided":  # every other sample, channels reversed: no contiguous axis
        wide = np.zeros((shape[0], 2 * shape[1]), dtype=dtype)
        wide[:, ::2] = x[::-1]
        x = wide[::-1, ::2]
    return x


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("T", [1, 2, 3, 7, 44, 45, 46, 999, 2491])
@pytest.mark.parametrize("C", [1, 3, 4, 5, 10])
def test_bit_identical_to_scipy_on_odd_lengths_and_channel_counts(backend, C, T, rng):
    x = make((C, T), np.float32, "C", rng)
    sos = cascade()
    ref = sosfiltfilt_reference(sos, x, min(3 * (2 * len(sos) + 1), T - 1))
    got = zero_phase(sos, x, backend=backend)
    assert got.dtype == np.float64 and got.shape == (C, T)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(zero_phase(sos, x, backend="scipy"), ref)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64, np.int32])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_dtypes_and_non_contiguous_input(backend, dtype, layout, rng):
    x = make((6, 513), dtype, layout, rng)
    sos = cascade(200.0, (50.0,))
    ref = zero_phase(sos, np.ascontiguousarray(x, dtype=np.float64), backend="scipy")
    np.testing.assert_array_equal(zero_phase(sos, x, backend=backend), ref)
    got32 = zero_phase(sos, x, backend=backend, dtype=np.float32)
    assert got32.dtype == np.float32
    np.testing.assert_array_equal(got32, ref.astype(np.float32))


@pytest.mark.parametrize("backend", COMPILED)
def test_one_sample_empty_and_no_sections(backend, rng):
    sos = cascade()
    one = np.array([[3.0], [-2.0]])
    np.testing.assert_array_equal(zero_phase(sos, one, backend=backend),
                                  zero_phase(sos, one, backend="scipy"))
    assert zero_phase(sos, np.zeros((3, 0)), backend=backend).shape == (3, 0)
    x = make((2, 50), np.float32, "C", rng)
    np.testing.assert_array_equal(zero_phase(np.zeros((0, 6)), x, backend=backend), x.astype(np.float64))
    with pytest.raises(DataError, match="2-D"):
        zero_phase(sos, np.zeros(5), backend=backend)


@pytest.mark.parametrize("backend", COMPILED)
def test_nan_propagates_like_scipy(backend, rng):
    x = make((5, 300), np.float64, "C", rng)
    x[2, 100] = np.nan
    sos = cascade()
    got, ref = zero_phase(sos, x, backend=backend), zero_phase(sos, x, backend="scipy")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(got[[0, 1, 3, 4]], ref[[0, 1, 3, 4]])  # other channels untouched
    assert np.isnan(got[2]).all()


def test_welch_channel_sum_matches_scipy(rng):
    for C, T, rate in ((10, 4982, 1000.0), (8, 998, 200.0), (3, 37, 100.0)):
        x = rng.normal(3.0, 50.0, (C, T))
        nper = min(T, int(2 * rate))
        f, p = signal.welch(x, fs=rate, nperseg=nper, axis=-1)
        f2, p2 = welch_channel_sum(x, rate, nper)
        np.testing.assert_allclose(f2, f, rtol=1e-14)
        np.testing.assert_allclose(p2, p.sum(axis=0), rtol=1e-12, atol=1e-14 * p.sum(axis=0).max())
        # a band of bins from 2 on (no mean removal then: it changes no such bin)
        bins = slice(3, nper // 4)
        f3, p3 = welch_channel_sum(x, rate, nper, bins)
        np.testing.assert_allclose(f3, f[bins], rtol=1e-14)
        np.testing.assert_allclose(p3, p.sum(axis=0)[bins], rtol=1e-12, atol=1e-14 * p.sum(axis=0).max())


RESAMPLERS = [b for b in backends.available("resample_poly") if b != "scipy"]


@pytest.mark.parametrize("backend", RESAMPLERS)
@pytest.mark.parametrize("up, down", [(1, 2), (5, 2), (2, 1), (128, 125), (1, 4)])
@pytest.mark.parametrize("T", [1, 2, 3, 17, 41, 999])
def test_resample_bit_identical_to_scipy(backend, up, down, T, rng):
    """Tolerance 0, signed zeros included (an all-zero channel stays +0.0 as in SciPy)."""
    x = make((5, T), np.float64, "C", rng)
    x[2] = 0.0
    ref = backends.get("resample_poly", "scipy")(x, up, down)
    got = backends.get("resample_poly", backend)(x, up, down)
    assert got.shape == ref.shape == (5, -(-T * up // down))
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(ref))


@pytest.mark.parametrize("backend", RESAMPLERS)
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_resample_dtypes_and_layouts(backend, dtype, layout, rng):
    x = make((6, 301), dtype, layout, rng)
    ref = backends.get("resample_poly", "scipy")(np.ascontiguousarray(x, dtype=np.float64), 5, 2)
    np.testing.assert_array_equal(backends.get("resample_poly", backend)(x, 5, 2), ref)
