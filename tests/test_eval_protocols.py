"""Fold generators: LOSO, few-shot, intra-subject; Hudgins features on hand-computed examples."""
import numpy as np
import pytest

from aemg.errors import ConfigError, DataError
from aemg.eval.features import sliding_windows, td_features, window_params, windowed_features
from aemg.eval.protocols import fewshot_folds, intra_folds, loso_folds, make_folds, min_fewshot_share
from aemg.eval.trials import TrialSet


def make_trials(n_subjects=3, n_reps=4, n_classes=3, length=50, channels=2, seed=0) -> TrialSet:
    rng = np.random.default_rng(seed)
    data, labels, subjects, reps, keys = [], [], [], [], []
    for s in range(n_subjects):
        for r in range(n_reps):
            for c in range(n_classes):
                data.append(rng.normal(size=(channels, length)).astype(np.float32))
                labels.append(c)
                subjects.append(f"S{s}")
                reps.append(r)
                keys.append(f"d/S{s}/0/{r}_{c}")
    return TrialSet(data, 100.0, labels, subjects, ["0"] * len(data), reps, keys, ("a", "b", "c")[:n_classes],
                    "toy")


# ---------------------------------------------------------------------------------------- features
def test_td_features_hand_computed():
    x = np.array([[[1, -1, 2, 2, -3]]], dtype=np.float32)  # (W=1, C=1, L=5)
    mav, wl, zc, ssc = td_features(x)[0]
    assert mav == pytest.approx(9 / 5)
    assert wl == pytest.approx(2 + 3 + 0 + 5)
    assert zc == 3          # (1,-1), (-1,2), (2,-3); (2,2) is not a crossing
    assert ssc == 1         # only x1=-1 is a turn: (-2)(-3) = 6 > 0; the plateau gives products 0
    mav, wl, zc, ssc = td_features(x, threshold=3)[0]
    assert zc == 2          # |1 - (-1)| = 2 < 3 drops the first crossing
    assert ssc == 1         # the turn's product 6 exceeds 3
    assert td_features(x, threshold=6)[0, 3] == 0   # strict: 6 is not > 6

def test_td_features_threshold_strictness():
    x = np.array([[[0, 2, 0]]], dtype=np.float64)  # one turn, product (2)(2) = 4
    assert td_features(x, threshold=3.9)[0, 3] == 1
    assert td_features(x, threshold=4.0)[0, 3] == 0
    y = np.array([[[1, -1]]], dtype=np.float64)    # one crossing of height 2
    assert td_features(y, threshold=2.0)[0, 2] == 1
    assert td_features(y, threshold=2.01)[0, 2] == 0


def test_td_features_layout_log_dtypes_and_views():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(3, 40)) * 100).astype(np.int16)
    wins = sliding_windows(x, 10, 5)
    assert wins.shape == (7, 3, 10)
    np.testing.assert_array_equal(wins[2], x[:, 10:20])
    f = td_features(wins)
    assert f.shape == (7, 12)
    np.testing.assert_allclose(f[:, :3], np.abs(wins.astype(float)).mean(axis=2))
    flog = td_features(wins, log=True)
    np.testing.assert_allclose(flog[:, :6], np.log(1e-8 + f[:, :6]))
    np.testing.assert_array_equal(flog[:, 6:], f[:, 6:])
    # a non-contiguous input gives the same features as its contiguous copy
    xt = np.asfortranarray(x)[:, ::1]
    np.testing.assert_array_equal(td_features(sliding_windows(xt, 10, 5)), f)


def test_windowing_edges():
    assert window_params(200, 0.2, 0.05) == (40, 10)
    assert sliding_windows(np.zeros((2, 3)), 4, 1).shape == (0, 2, 4)
    feats, owner = windowed_features([np.ones((2, 50)), np.ones((2, 5))], rate=100, window_s=0.2,
                                     step_s=0.1)
    assert owner.tolist() == [0, 0, 0, 0, 1]     # the short trial still gives one window
    assert feats.shape == (5, 8)
    with pytest.raises(DataError):
        windowed_features([np.ones((2, 0))], 100)
    with pytest.raises(DataError):
        td_features(np.ones((2, 3)))
    with pytest.raises(DataError):
        window_params(100, 0, 0.1)


# ---------------------------------------------------------------------------------------- folds
def test_loso_folds():
    ts = make_trials()
    folds = loso_folds(ts)
    assert [f.subject for f in folds] == ["S0", "S1", "S2"]
    for f in folds:
        assert set(ts.subjects[f.test]) == {f.subject}
        assert f.subject not in set(ts.subjects[f.train])
        assert len(f.train) + len(f.test) == len(ts)
        assert not f.notes


def test_loso_needs_two_subjects():
    ts = make_trials(n_subjects=1)
    with pytest.raises(DataError, match="LOSO needs at least 2 subjects"):
        loso_folds(ts)
    with pytest.raises(DataError, match="not in"):
        loso_folds(make_trials(), subjects=["nobody"])


def test_missing_class_is_noted():
    ts = make_trials()
    keep = ~((ts.subjects != "S0") & (ts.labels == 2))  # class c only in S0
    ts = ts.subset(np.flatnonzero(keep))
    notes = {f.subject: f.notes for f in loso_folds(ts)}
    assert notes["S0"] and "c" in notes["S0"][0]
    assert not notes["S1"]


def test_fewshot_stratified_seeded():
    ts = make_trials(n_reps=8)
    folds = fewshot_folds(ts, 0.25, seeds=[0, 1])
    assert len(folds) == 3 * 2
    for f in folds:
        own = np.flatnonzero(ts.subjects == f.subject)
        adapt = np.intersect1d(f.train, own)
        assert np.bincount(ts.labels[adapt]).tolist() == [2, 2, 2]
        assert np.intersect1d(f.train, f.test).size == 0
        assert sorted(np.concatenate([adapt, f.test]).tolist()) == own.tolist()
        assert f.actual_share == pytest.approx(0.25)
    again = fewshot_folds(ts, 0.25, seeds=[0, 1])
    assert all(np.array_equal(a.train, b.train) for a, b in zip(folds, again))
    assert not np.array_equal(folds[0].train, folds[1].train)  # seeds 0 and 1 draw differently


def test_fewshot_too_small_share():
    ts = make_trials(n_reps=4)
    assert min_fewshot_share(ts, "S0") == pytest.approx(0.125)
    with pytest.raises(ConfigError, match="smallest usable share for this subject is 0.125"):
        fewshot_folds(ts, 0.05)
    folds = fewshot_folds(ts, 0.05, too_small="one")
    assert all(f.actual_share == pytest.approx(3 / 12) for f in folds)
    with pytest.raises(ConfigError):
        fewshot_folds(ts, 1.0)


def test_intra_folds_by_repetition():
    ts = make_trials(n_subjects=2, n_reps=3)
    folds = intra_folds(ts)
    assert len(folds) == 2 * 3
    for f in folds:
        assert set(ts.subjects[f.train]) == set(ts.subjects[f.test]) == {f.subject}
        assert set(ts.repetitions[f.test]) == {f.repetition}
        assert f.repetition not in set(ts.repetitions[f.train])
    with pytest.raises(DataError, match="at least 2 repetitions"):
        intra_folds(make_trials(n_reps=1))


def test_make_folds_unknown_protocol():
    with pytest.raises(ConfigError, match="unknown protocol"):
        list(make_folds(make_trials(), "kfold"))


def test_trialset_from_recordings_repetition_ordinal():
    from aemg.data.recording import Recording

    rng = np.random.default_rng(0)
    recs = [Recording(rng.normal(size=(8, 100)).astype(np.float32), 200.0, "myo", subject="A",
                      trial=str(i), dataset="x", label=i % 2) for i in range(6)]
    ts = TrialSet.from_recordings(recs)
    assert ts.repetitions.tolist() == [0, 0, 1, 1, 2, 2]
    assert ts.rate == 200.0 and ts.n_channels == 8
    half = TrialSet.from_recordings(recs, rate=100.0)
    assert half.data[0].shape == (8, 50)
    with pytest.raises(DataError):
        TrialSet.from_recordings([])
