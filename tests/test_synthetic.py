"""The seeded synthetic EMG dataset."""
import numpy as np
import pytest

from aemg.data.devices import TWO_PI
from aemg.data.synthetic import SyntheticConfig, generate, generate_unit, subject_params, synthetic_units
from aemg.errors import ConfigError, DataError

SMALL = SyntheticConfig(n_subjects=4, repetitions=2, n_gestures=3, trial_s=2.0)


def test_units_and_determinism():
    assert synthetic_units(SMALL) == ["s00", "s01", "s02", "s03"]
    a = generate_unit(SMALL, "s01")
    b = generate_unit(SMALL, "s01")
    assert len(a) == SMALL.repetitions * (SMALL.n_gestures + 1)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.data, y.data)
        np.testing.assert_array_equal(x.labels, y.labels)
    # a unit does not depend on which other units exist or are generated
    bigger = SyntheticConfig(n_subjects=6, repetitions=2, n_gestures=3, trial_s=2.0)
    np.testing.assert_array_equal(generate_unit(bigger, "s01")[3].data, a[3].data)
    other = generate_unit(SyntheticConfig(n_subjects=4, repetitions=2, n_gestures=3, trial_s=2.0, seed=1),
                          "s01")
    assert not np.array_equal(other[3].data, a[3].data)
    assert sum(1 for _ in generate(SMALL)) == 4 * len(a)


def test_devices_rates_units_and_labels():
    expected = {"s00": ("myo", 200.0, 8, "int8"), "s01": ("3dc", 1000.0, 10, "adc"),
                "s02": ("ring:6", 1000.0, 6, "mV"), "s03": ("myo", 200.0, 8, "int8")}
    for unit, (dev, rate, ch, units) in expected.items():
        recs = generate_unit(SMALL, unit)
        for i, r in enumerate(recs):
            assert (r.device.name, r.rate, r.n_channels, r.units) == (dev, rate, ch, units)
            assert r.n_samples == int(SMALL.trial_s * rate) and r.data.dtype == np.float32
            assert r.label == i % (SMALL.n_gestures + 1) and r.classes == SMALL.classes
            assert r.subject == unit and r.dataset == "synthetic"
            assert r.meta["repetition"] == i // (SMALL.n_gestures + 1)
            if r.label == 0:
                assert (r.labels == 0).all()
            else:   # rest before and after the contraction: the contraction is one inner run
                on = np.flatnonzero(r.labels == r.label)
                assert on[0] >= SMALL.rest_s * rate and on[-1] < r.n_samples - SMALL.rest_s * rate
                assert np.all(np.diff(on) == 1) and set(np.unique(r.labels)) == {0, r.label}
        if units == "int8":
            d = np.concatenate([r.data for r in recs], axis=1)
            assert d.min() >= -128 and d.max() <= 127 and np.array_equal(d, np.round(d))
        if units == "adc":
            d = recs[1].data
            assert np.array_equal(d, np.round(d)) and np.abs(d).max() <= 2048


def channel_rms(rec):
    x = rec.data.astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    sel = rec.labels == rec.label
    return np.sqrt((x[:, sel] ** 2).mean(axis=1))


def test_classes_separable_by_channel_rms_on_one_subject():
    cfg = SyntheticConfig(n_subjects=2, repetitions=4, n_gestures=5)
    recs = generate_unit(cfg, "s01")   # 3DC, 10 channels
    feats = np.array([np.log(channel_rms(r)) for r in recs])
    y = np.array([r.label for r in recs])
    train, test = np.arange(len(y)) < 12, np.arange(len(y)) >= 12     # reps 0-1 vs reps 2-3
    centroids = np.stack([feats[train & (y == k)].mean(0) for k in range(6)])
    pred = np.argmin(((feats[test][:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (pred == y[test]).mean() >= 0.9
    # rest is quieter than every gesture
    rms = np.array([channel_rms(r).mean() for r in recs])
    assert rms[y == 0].max() < rms[y > 0].min()


def test_armband_rotation_is_visible():
    cfg = SyntheticConfig(n_subjects=6, devices=("ring:16",), repetitions=1, n_gestures=5, noise=0.0,
                          line_hz=0.0)
    rot = {u: subject_params(cfg, u)["rotation"] for u in ("s00", "s01")}
    pats = {u: np.stack([channel_rms(r) / subject_params(cfg, u)["gains"] for r in generate_unit(cfg, u)[1:]])
            for u in rot}
    # the electrode pattern of subject b is subject a's pattern shifted by the rotation difference
    step = TWO_PI / 16
    scores = [np.corrcoef(np.roll(pats["s00"], -s, axis=1).ravel(), pats["s01"].ravel())[0, 1]
              for s in range(16)]
    best = int(np.argmax(scores))
    expected = ((rot["s01"] - rot["s00"]) / step) % 16
    assert min(abs(best - expected), 16 - abs(best - expected)) <= 1.0
    assert abs(rot["s01"] - rot["s00"]) > 0.1


def test_fatigue_raises_amplitude_over_repetitions():
    cfg = SyntheticConfig(n_subjects=2, repetitions=4, n_gestures=2, fatigue=0.5, noise=0.0, line_hz=0.0)
    recs = [r for r in generate_unit(cfg, "s01") if r.label == 1]
    rms = [channel_rms(r).mean() for r in recs]
    assert rms[-1] > 1.2 * rms[0]


def test_bad_config_and_unit():
    with pytest.raises(ConfigError):
        SyntheticConfig(devices=("nosuchdevice",))
    with pytest.raises(ConfigError):
        SyntheticConfig(trial_s=1.0, rest_s=0.5)
    with pytest.raises(ConfigError):
        SyntheticConfig(n_subjects=0)
    with pytest.raises(DataError, match="s99"):
        generate_unit(SMALL, "s99")
