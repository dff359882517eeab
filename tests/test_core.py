"""Recording validation and the device registry (backend dispatch: tests/test_backends.py)."""
import numpy as np
import pytest

from aemg.data import Device, Recording, get_device, intervals_to_labels, labels_to_intervals
from aemg.errors import ConfigError, DataError


def test_recording_converts_to_float32_and_validates():
    rec = Recording(np.zeros((8, 100), dtype=np.int16), 200, "myo", units="int8", subject=3)
    assert rec.data.dtype == np.float32 and rec.data.flags.c_contiguous
    assert rec.subject == "3" and rec.duration == 0.5
    with pytest.raises(DataError, match="channels but device"):
        Recording(np.zeros((7, 10)), 200, "myo")
    with pytest.raises(DataError, match="2-D"):
        Recording(np.zeros(10), 200, "myo")
    bad = np.zeros((8, 10))
    bad[2, 5] = np.nan
    with pytest.raises(DataError, match="channel 3, sample 6 \\(1-based"):
        Recording(bad, 200, "myo", source="x.csv")
    # finite samples whose float32 sum overflows are fine; an inf is found where it is
    huge = np.full((8, 10), 3e38, np.float32)
    assert Recording(huge, 200, "myo").data.max() == np.float32(3e38)
    huge[7, 9] = -np.inf
    with pytest.raises(DataError, match="channel 8, sample 10 \\(1-based"):
        Recording(huge, 200, "myo")
    with pytest.raises(DataError, match="positive"):
        Recording(np.zeros((8, 10)), 0, "myo")
    with pytest.raises(DataError, match="one per sample"):
        Recording(np.zeros((8, 10)), 200, "myo", labels=np.zeros(9, int))
    with pytest.raises(DataError, match="units"):
        Recording(np.zeros((8, 10)), 200, "myo", units="furlongs")
    with pytest.raises(DataError, match="has no name"):
        Recording(np.zeros((8, 10)), 200, "myo", label=3, classes=("a", "b"))


def test_header_roundtrip_and_intervals():
    labels = np.array([-1, -1, 2, 2, 2, -1, 1, 1], dtype=np.int32)
    rec = Recording(np.ones((8, 8)), 4.0, "myo", labels=labels, dataset="d", meta={"rep": 1})
    back = Recording.from_header(rec.header(), rec.data, rec.labels)
    assert back.header() == rec.header() and back.device == rec.device
    iv = rec.intervals()
    assert iv == [(0.5, 1.25, 2), (1.5, 2.0, 1)]
    assert np.array_equal(intervals_to_labels(iv, 8, 4.0), labels)
    assert labels_to_intervals(np.array([], np.int32), 4.0) == []


def test_device_specs():
    assert get_device("myo").n_channels == 8
    r = get_device("ring:6@0.5")
    assert r.n_channels == 6 and np.isclose(r.angles[0], 0.5)
    g = get_device("grid:4x8@0.01")
    assert g.n_channels == 32 and np.ptp(g.z) == pytest.approx(0.03)
    with pytest.raises(ConfigError, match="not a known device"):
        get_device("octopus")
    with pytest.raises(ConfigError, match="same|angles but"):
        Device("bad", np.zeros(3), np.zeros(2))


def test_irregular_times_validated():
    t = np.array([0.0, 0.001, 0.001, 0.003])
    rec = Recording(np.zeros((8, 4)), 200, "myo", times=t)
    assert rec.times.dtype == np.float64
    with pytest.raises(DataError, match=r"backwards at sample 3 \(1-based\)"):
        Recording(np.zeros((8, 4)), 200, "myo", times=[0.0, 0.002, 0.001, 0.003], source="f.txt")
    with pytest.raises(DataError, match="times have shape"):
        Recording(np.zeros((8, 4)), 200, "myo", times=[0.0, 1.0])
