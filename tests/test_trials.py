"""split_trials: one Recording per contiguous labelled run."""
import numpy as np
import pytest

from aemg.data.recording import UNLABELLED, Recording
from aemg.data.trials import split_trials
from aemg.errors import ConfigError


def _rec(labels, rate=100.0, times=None, **kw):
    labels = np.asarray(labels, dtype=np.int32)
    data = np.vstack([np.arange(labels.size), -np.arange(labels.size)]).astype(np.float32)
    return Recording(data=data, rate=rate, device="ring:2", labels=labels, times=times, trial="7",
                     classes=("a", "b", "c"), **kw)


def test_runs_become_trials_and_gaps_are_dropped():
    labels = [-1] * 5 + [0] * 60 + [-1] * 3 + [2] * 70 + [0] * 55 + [-1] * 2
    rec = _rec(labels, meta={"series": 1})
    trials = split_trials(rec)
    assert [(t.label, t.n_samples, t.trial) for t in trials] == [(0, 60, "7.0"), (2, 70, "7.1"),
                                                                 (0, 55, "7.2")]
    assert [t.meta["repetition"] for t in trials] == [0, 0, 1]
    assert trials[1].meta == {"series": 1, "parent_trial": "7", "start_s": 0.68, "repetition": 0}
    np.testing.assert_array_equal(trials[1].data, rec.data[:, 68:138])
    assert np.all(trials[1].labels == 2)
    assert rec.meta == {"series": 1}  # the input is not modified


def test_short_runs_are_dropped():
    trials = split_trials(_rec([1] * 49 + [-1] + [1] * 50), min_s=0.5)
    assert [(t.label, t.n_samples, t.trial) for t in trials] == [(1, 50, "7.0")]
    assert len(split_trials(_rec([1] * 49 + [-1] + [1] * 50), min_s=0.0)) == 2
    with pytest.raises(ConfigError, match="min_s"):
        split_trials(_rec([1]), min_s=-1)


def test_irregular_times_measure_duration_in_seconds():
    # 10 rows logged over 1 s: long enough although 10 samples at 100 Hz would be 0.1 s
    times = np.r_[np.linspace(0, 1, 10), np.linspace(1.1, 1.2, 10)]
    trials = split_trials(_rec([0] * 10 + [1] * 10, times=times), min_s=0.5)
    assert [t.label for t in trials] == [0]
    np.testing.assert_array_equal(trials[0].times, times[:10])


def test_trial_level_and_unlabelled_recordings_pass_through():
    rec = Recording(data=np.zeros((2, 10)), rate=10.0, device="ring:2", label=1, classes=("a", "b"),
                    labels=np.ones(10, dtype=np.int32))
    assert split_trials(rec) == [rec]
    plain = Recording(data=np.zeros((2, 10)), rate=10.0, device="ring:2")
    assert split_trials(plain) == [plain]
    assert split_trials(_rec([UNLABELLED] * 10)) == []
    assert split_trials(_rec(np.zeros(0))) == []


def test_repetitions_from_meta():
    labels = [0] * 50 + [1] * 50 + [0] * 50
    rec = _rec(labels, meta={"repetitions": [[50, 100, 3], [100, 150, 4]]})
    trials = split_trials(rec)
    assert [t.meta["repetition"] for t in trials] == [0, 3, 4]
    assert all("repetitions" not in t.meta for t in trials)
