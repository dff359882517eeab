"""The compiled zero-phase SOS cascade and resampler (ops ``"sosfiltfilt"``, ``"resample_poly"`` and
their float32 path ``"sosfiltfilt32"``, ``"resample_poly32"``) against the SciPy references.

Stated tolerance (float64 path): 0 in float64 (the Cython kernel performs SciPy's ``_sosfilt``
float64 operations in the same order, without FMA); with ``dtype=np.float32`` the output is the
float64 result rounded once, so it equals ``reference.astype(np.float32)`` exactly. Float32 path:
see its section below.
"""
import numpy as np
import pytest
from scipy import signal

from aemg import backends
from aemg.data.rectify import (
    _band_sos,
    _notch_sos,
    sosfiltfilt_reference,
    welch_channel_sum,
    zero_phase,
    zero_phase32,
)
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
@pytest.mark.parametrize("up, down", [(1, 2), (5, 2), (2, 1), (128, 125), (1, 4), (125, 512)])
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


# -- the float32 path ("sosfiltfilt32", "resample_poly32") -------------------------------------------
# Stated tolerance: 0 against the reference, which is SciPy's own float32 computation (float32
# sections and FIR, odd extension and recursions in float32); the kernels do the same float32
# operations in the same order on 8 lanes (4 for the last channels). Their distance to the float64
# path is measured on real data in docs/notes/rectify.md (Session 6) and bounded in test_rectify.py.

COMPILED32 = [b for b in backends.available("sosfiltfilt32") if b != "scipy"]
RESAMPLERS32 = [b for b in backends.available("resample_poly32") if b != "scipy"]


def test_float32_references_compute_in_float32(rng):
    x = make((3, 200), np.float32, "C", rng)
    sos = cascade()
    y = backends.get("sosfiltfilt32", "scipy")(sos, x, 45)
    assert y.dtype == np.float32
    # not the float64 result rounded: the arithmetic itself is float32
    assert not np.array_equal(y, zero_phase(sos, x, dtype=np.float32))
    np.testing.assert_allclose(y, zero_phase(sos, x), rtol=0, atol=1e-4 * np.abs(x).max())
    r = backends.get("resample_poly32", "scipy")(x, 1, 2)
    assert r.dtype == np.float32 and r.shape == (3, 100)


@pytest.mark.parametrize("backend", COMPILED32)
@pytest.mark.parametrize("T", [1, 2, 3, 7, 44, 45, 46, 999, 2491])
@pytest.mark.parametrize("C", [1, 3, 4, 5, 8, 9, 10, 13, 16, 17])
def test_float32_cascade_bit_identical_to_scipy_float32(backend, C, T, rng):
    x = make((C, T), np.float32, "C", rng) + np.float32(2000.0)  # a DC offset, as ADC counts have
    sos = cascade()
    pad = min(3 * (2 * len(sos) + 1), T - 1)
    ref = backends.get("sosfiltfilt32", "scipy")(sos, x, pad)
    got = backends.get("sosfiltfilt32", backend)(sos, x, pad)
    assert got.dtype == np.float32 and got.shape == (C, T)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("backend", COMPILED32)
@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64, np.int32])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_float32_cascade_dtypes_and_non_contiguous_input(backend, dtype, layout, rng):
    x = make((11, 513), dtype, layout, rng)
    sos = cascade(200.0, (50.0,))
    ref = backends.get("sosfiltfilt32", "scipy")(sos, np.ascontiguousarray(x, dtype=np.float32), 27)
    np.testing.assert_array_equal(backends.get("sosfiltfilt32", backend)(sos, x, 27), ref)
    np.testing.assert_array_equal(zero_phase32(sos, x, backend=backend),
                                  zero_phase32(sos, x, backend="scipy"))


@pytest.mark.parametrize("backend", COMPILED32)
def test_float32_cascade_one_sample_empty_no_sections_and_nan(backend, rng):
    sos = cascade()
    one = np.array([[3.0], [-2.0]], np.float32)
    np.testing.assert_array_equal(zero_phase32(sos, one, backend=backend),
                                  zero_phase32(sos, one, backend="scipy"))
    empty = zero_phase32(sos, np.zeros((3, 0), np.int16), backend=backend)
    assert empty.shape == (3, 0) and empty.dtype == np.float32
    x = make((2, 50), np.int16, "C", rng)
    none = zero_phase32(np.zeros((0, 6)), x, backend=backend)
    assert none.dtype == np.float32
    np.testing.assert_array_equal(none, x.astype(np.float32))
    with pytest.raises(DataError, match="2-D"):
        zero_phase32(sos, np.zeros(5), backend=backend)
    x = make((9, 300), np.float32, "C", rng)
    x[2, 100] = np.nan
    got, ref = zero_phase32(sos, x, backend=backend), zero_phase32(sos, x, backend="scipy")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    keep = [c for c in range(9) if c != 2]
    np.testing.assert_array_equal(got[keep], ref[keep])  # other channels, other lanes untouched
    assert np.isnan(got[2]).all()


@pytest.mark.parametrize("backend", RESAMPLERS32)
@pytest.mark.parametrize("up, down", [(1, 2), (5, 2), (2, 1), (128, 125), (1, 4), (125, 512)])
@pytest.mark.parametrize("T", [1, 2, 3, 17, 41, 999])
@pytest.mark.parametrize("C", [1, 5, 8, 10, 16])
def test_float32_resample_bit_identical_to_scipy_float32(backend, up, down, T, C, rng):
    x = make((C, T), np.float32, "C", rng)
    x[0] = 0.0
    ref = backends.get("resample_poly32", "scipy")(x, up, down)
    got = backends.get("resample_poly32", backend)(x, up, down)
    assert got.dtype == np.float32 and got.shape == ref.shape == (C, -(-T * up // down))
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(ref))


@pytest.mark.parametrize("backend", RESAMPLERS32)
@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_float32_resample_dtypes_layouts_and_nan(backend, dtype, layout, rng):
    x = make((10, 301), dtype, layout, rng)
    ref = backends.get("resample_poly32", "scipy")(np.ascontiguousarray(x, dtype=np.float32), 5, 2)
    np.testing.assert_array_equal(backends.get("resample_poly32", backend)(x, 5, 2), ref)
    y = make((10, 301), np.float32, "C", rng)
    y[3, 150] = np.nan
    got, ref = (backends.get("resample_poly32", b)(y, 1, 2) for b in (backend, "scipy"))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(got[~np.isnan(ref)], ref[~np.isnan(ref)])


@pytest.mark.parametrize("backend", RESAMPLERS)
@pytest.mark.parametrize("up, down", [(1, 2), (5, 2), (128, 125), (125, 512)])
def test_resample_nan_reaches_the_outputs_it_reaches_in_scipy(backend, up, down, rng):
    """The filter's zero post-padding is SciPy's for each length: 0 * NaN is NaN, so a longer
    padding would spread a NaN to outputs SciPy keeps finite."""
    for T in (17, 301, 1000):
        x = make((5, T), np.float64, "C", rng)
        x[3, T // 2] = np.nan
        x[1, T - 1] = np.inf
        ref = backends.get("resample_poly", "scipy")(x, up, down)
        got = backends.get("resample_poly", backend)(x, up, down)
        np.testing.assert_array_equal(got, ref)  # NaN == NaN here, inf included
