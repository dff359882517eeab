"""Baselines: NumPy LDA against a Gaussian shared-covariance oracle, voting, windowed methods, runner."""
import numpy as np
import pytest

from aemg.errors import ConfigError, DataError
from aemg.eval.baselines import (
    LDA,
    Method,
    Prediction,
    get_method,
    list_methods,
    register_method,
    vote,
)
from aemg.eval.protocols import Adaptation
from aemg.eval.runner import evaluate
from aemg.eval.trials import TrialSet


def gain_trials(n_subjects=3, n_reps=3, n_classes=3, length=200, seed=0) -> TrialSet:
    """Class c = extra power on channel c; the last subject has channel 0 four times stronger in every
    trial (an electrode shift that makes its trials look like class 0 to a cross-subject model)."""
    rng = np.random.default_rng(seed)
    data, labels, subjects, reps, keys = [], [], [], [], []
    for s in range(n_subjects):
        for r in range(n_reps):
            for c in range(n_classes):
                x = rng.normal(size=(4, length))
                x[c] *= 4
                if s == n_subjects - 1:
                    x[0] *= 4
                data.append(x.astype(np.float32))
                labels.append(c)
                subjects.append(f"S{s}")
                reps.append(r)
                keys.append(f"g/S{s}/0/{r}_{c}")
    return TrialSet(data, 200.0, labels, subjects, ["0"] * len(data), reps, keys, (), "gain")


def test_lda_matches_gaussian_oracle():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3))
    cov = a @ a.T + np.eye(3)
    means = np.array([[0, 0, 0], [2, 0, 1], [0, 3, -1]], dtype=float)
    y = np.repeat([0, 1, 2], [50, 80, 70])
    x = means[y] + rng.multivariate_normal(np.zeros(3), cov, size=len(y))
    lda = LDA().fit(x, y)
    # oracle: argmax_k log N(x; mu_k, pooled cov) + log prior_k, from the same estimates
    mu = np.stack([x[y == k].mean(0) for k in range(3)])
    pooled = sum((x[y == k] - mu[k]).T @ (x[y == k] - mu[k]) for k in range(3)) / (len(x) - 3)
    prec = np.linalg.inv(pooled)
    test = rng.normal(size=(300, 3)) * 3
    d = test[:, None, :] - mu[None]
    logp = -0.5 * np.einsum("nkd,de,nke->nk", d, prec, d) + np.log(np.bincount(y) / len(y))
    np.testing.assert_array_equal(lda.predict(test), logp.argmax(1))
    # scores differ from the log-posteriors by a per-row constant only
    diff = lda.decision_function(test) - logp
    np.testing.assert_allclose(diff - diff[:, :1], 0, atol=1e-8)


def test_lda_constant_feature_and_bad_input():
    x = np.c_[np.r_[np.zeros(10), np.ones(10)], np.full(20, 7.0)]  # second feature constant
    y = np.r_[np.zeros(10, int), np.ones(10, int)]
    x[:, 0] += np.random.default_rng(0).normal(0, 0.1, 20)
    assert (LDA().fit(x, y).predict(x) == y).all()
    assert (LDA(shrinkage=0.5).fit(x, y).predict(x) == y).all()
    with pytest.raises(DataError):
        LDA().fit(np.array([[np.nan]]), np.array([0]))
    with pytest.raises(ConfigError):
        LDA(shrinkage=2)


def test_vote_majority_and_ties():
    pred = np.array([1, 1, 2, 0, 2])
    owner = np.array([0, 0, 0, 1, 1])
    assert vote(pred, owner, 3, 3).tolist() == [1, 0, -1]  # tie 0/2 -> lowest id without scores
    scores = np.log(np.array([[.1, .8, .1], [.1, .8, .1], [.1, .1, .8], [.6, .2, .2], [.1, .1, .8]]))
    assert vote(pred, owner, 3, 3, scores).tolist() == [1, 2, -1]  # tie broken by summed scores


def test_hudgins_lda_subject_normalisation_removes_gain():
    ts = gain_trials()
    train = ts.subset(np.flatnonzero(ts.subjects != "S2"))
    test = ts.subset(np.flatnonzero(ts.subjects == "S2"))
    plain = get_method("lda").fit(train)
    seen = Adaptation("unlabelled", "S2", unlabelled=test.without_labels())
    norm = get_method("lda-log-subjnorm").fit(train, adaptation=seen)
    assert norm.regimes == ("online", "unlabelled", "fewshot") and plain.regimes == ("none", "fewshot")
    assert norm.native_regime == "unlabelled" and plain.native_regime == "none"
    p = norm.predict(test.without_labels(), seen)
    assert p.trial.shape == (len(test),)
    assert (p.trial == test.labels).mean() == 1.0
    assert p.window.shape == p.window_trial.shape and p.window_trial.max() == len(test) - 1
    # without per-subject statistics the shifted channel of S2 breaks the amplitude features
    assert (plain.predict(test).trial == test.labels).mean() < 1.0


@pytest.mark.parametrize("name", ["cnn", "dann"])
def test_cnn_methods_run_and_are_seeded(name):
    ts = gain_trials(n_subjects=2, n_reps=2, length=120)
    train = ts.subset(np.flatnonzero(ts.subjects == "S0"))
    test = ts.subset(np.flatnonzero(ts.subjects == "S1"))
    seen = Adaptation("unlabelled", "S1", unlabelled=test.without_labels()) if name == "dann" else None
    preds = [get_method(name, epochs=2, batch_size=16).fit(train, seed=3, adaptation=seen).predict(test, seen)
             for _ in range(2)]
    assert preds[0].trial.shape == (len(test),)
    assert set(preds[0].trial.tolist()) <= {0, 1, 2}
    np.testing.assert_array_equal(preds[0].window, preds[1].window)


def test_runner_hides_labels_and_target_from_inductive_methods():
    seen = []

    class Spy(Method):
        def fit(self, train, seed=0, adaptation=None):
            seen.append(("fit", adaptation))
            self.label = int(np.bincount(train.labels).argmax())
            return self

        def predict(self, test, adaptation=None):
            seen.append(("predict", test.labels.copy()))
            return Prediction(np.full(len(test), self.label))

    register_method("spy", Spy)
    assert "spy" in list_methods()
    res = evaluate(gain_trials(), ["spy"], ["loso"])
    assert all(a.regime == "none" and a.rest is None and a.unlabelled is None
               for kind, a in seen if kind == "fit")
    assert all((lab == -1).all() for kind, lab in seen if kind == "predict")
    assert len(res.folds) == 3 and res.folds[0]["window_acc"] is None
    with pytest.raises(ConfigError, match="unknown method"):
        get_method("nope")


def test_runner_protocols_and_skipped_shares():
    ts = gain_trials(n_reps=4)
    res = evaluate(ts, ["lda-log-subjnorm"], ["loso", "fewshot", "intra"], seeds=[0, 1], shares=[0.05, 0.5])
    summary = {(r["regime"], r["share"]): r for r in res.summary()}
    # loso = the method's native LOSO regime
    assert set(summary) == {("unlabelled", None), ("fewshot", 0.5), ("intra", None)}
    assert summary[("unlabelled", None)]["protocol"] == "loso"
    assert any("0.05 skipped" in n for n in res.notes)
    assert summary[("unlabelled", None)]["subjects"] == 3
    assert summary[("unlabelled", None)]["trial_mean"] == 1.0
    assert res.confusion[("lda-log-subjnorm", "unlabelled", None)].sum() == 2 * len(ts)  # two seeds
    with pytest.raises(ConfigError):
        evaluate(ts, ["lda"], ["fewshot"], shares=[0.05], too_small="error")
