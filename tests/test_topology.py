"""Topology mapping onto the standard ring of virtual electrodes."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aemg.data.devices import TWO_PI, Device, get_device, known_devices
from aemg.data.topology import coverage_mask, map_topology, topology_matrix, virtual_angles
from aemg.errors import DataError

DEVICES = sorted(known_devices()) + ["ring:1", "ring:2", "ring:6", "ring:8@0.3", "grid:4x6@0.012"]


@pytest.mark.parametrize("name", DEVICES)
def test_rows_are_convex_weights(name):
    W = topology_matrix(name)
    dev = get_device(name)
    assert W.shape == (16, dev.n_channels) and W.dtype == np.float64
    np.testing.assert_allclose(W.sum(axis=1), 1.0, atol=1e-12)
    assert W.min() >= 0.0
    assert coverage_mask(name).shape == (16,) and coverage_mask(name).dtype == bool


def test_ring_of_16_maps_to_itself():
    np.testing.assert_array_equal(topology_matrix("ring:16"), np.eye(16))
    np.testing.assert_array_equal(topology_matrix("standard16"), np.eye(16))
    assert coverage_mask("ring:16").all()


def test_ring8_cosine_pattern_is_reproduced():
    # linear interpolation of a cosine sampled every 45 deg: error <= 1 - cos(22.5 deg) = 0.0761
    W = topology_matrix("myo")
    theta = TWO_PI * np.arange(8) / 8
    for phase in (0.0, 0.4, 1.3):
        got = W @ np.cos(theta - phase)
        np.testing.assert_allclose(got, np.cos(virtual_angles(16) - phase), atol=0.077)
    # and it is interpolation, not channel replication: odd virtual electrodes mix two channels
    assert np.all((W[1::2] > 0).sum(axis=1) == 2)
    np.testing.assert_array_equal(W[::2], np.eye(8))


@pytest.mark.parametrize("n,steps", [(8, 2), (8, 3), (16, 1), (16, 5), (10, 4)])
def test_rotating_the_armband_is_a_circular_shift(n, steps):
    base = topology_matrix(f"ring:{n}")
    rotated = topology_matrix(Device.ring(n, offset=TWO_PI * steps / 16, name=f"rot{n}_{steps}"))
    np.testing.assert_allclose(rotated, np.roll(base, steps, axis=0), atol=1e-12)


def test_grabmyo_uses_both_forearm_rings_and_ignores_the_wrist():
    W = topology_matrix("grabmyo")
    assert np.all(W[:, 16:] == 0)                          # wrist rings 150 mm away: no weight
    w_ring2 = np.exp(-0.5)                                 # second ring 30 mm = one z_scale away
    np.testing.assert_allclose(W[0, 0], 1 / (1 + w_ring2))
    np.testing.assert_allclose(W[0, 8], w_ring2 / (1 + w_ring2))
    assert coverage_mask("grabmyo").all()


def test_ninapro_spot_electrodes_do_not_smear_the_ring():
    W = topology_matrix("ninapro12")
    np.testing.assert_array_equal(W[:, :8], topology_matrix("ring:8"))
    assert np.all(W[:, 8:] == 0)


def test_hd_grid_partial_coverage():
    cov = coverage_mask("hdgrid8x8")
    W = topology_matrix("hdgrid8x8")
    # the grid spans 8 x 10 mm / 45 mm = 1.78 rad centred on pi/2: virtual 3, 4, 5 (0.39 rad apart)
    np.testing.assert_array_equal(np.flatnonzero(cov), [3, 4, 5])
    # outside coverage: the weights at the nearest edge column of the grid (columns 0 and 7)
    col = np.arange(64) % 8
    assert np.all(W[6][col != 7] == 0) and np.all(W[0][col != 0] == 0)
    np.testing.assert_array_equal(W[6], W[7])
    # inside: interpolation between columns, rows weighted by distance to the main row (z=-5 mm)
    dev = get_device("hdgrid8x8")
    rows = np.unique(dev.z)
    per_row = np.array([W[4][np.isclose(dev.z, z)].sum() for z in rows])
    main_row = int(np.argmin(np.abs(rows + 0.005)))
    assert per_row.argmax() == main_row and per_row[0] < per_row[main_row] > per_row[-1]


def test_map_topology_dtypes_and_layouts(rng):
    x = rng.normal(size=(8, 50))
    ref = topology_matrix("myo") @ x
    out = map_topology(x, "myo")
    assert out.dtype == np.float32 and out.shape == (16, 50)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    xi = (x * 100).astype(np.int16)
    np.testing.assert_allclose(map_topology(xi, "myo"), topology_matrix("myo") @ xi, rtol=1e-5)
    wide = np.asfortranarray(np.repeat(x, 2, axis=1))[:, ::2]   # non-contiguous view
    np.testing.assert_allclose(map_topology(wide, "myo"), ref, rtol=1e-5, atol=1e-6)
    assert map_topology(np.zeros((8, 0)), "myo").shape == (16, 0)
    assert map_topology(x, "myo", n_virtual=8).shape == (8, 50)


def test_bad_input_raises():
    with pytest.raises(DataError, match="expected shape"):
        map_topology(np.zeros((10, 5)), "myo")
    with pytest.raises(DataError, match="n_virtual"):
        topology_matrix("myo", n_virtual=0)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 24), offset=st.floats(0, TWO_PI), n_virtual=st.integers(1, 32))
def test_any_ring_gives_convex_rows_and_reproduces_constants(n, offset, n_virtual):
    W = topology_matrix(Device.ring(n, offset=offset, name=f"h{n}_{offset!r}"), n_virtual)
    np.testing.assert_allclose(W.sum(axis=1), 1.0, atol=1e-12)
    assert W.min() >= 0.0 and W.max() <= 1.0 + 1e-12
    if n >= 2:
        assert coverage_mask(Device.ring(n, offset=offset, name=f"h{n}_{offset!r}"), n_virtual).all()
