"""EM adaptation of class means to a user's unlabelled features (aemg.eval.adapt)."""
import numpy as np
import pytest

from aemg.errors import ConfigError, DataError
from aemg.eval.adapt import SharedGaussian
from aemg.eval.baselines import LDA, get_method


def _clusters(rng, means, n, shift=0.0, scale=0.3):
    y = np.repeat(np.arange(len(means)), n)
    return means[y] + shift + scale * rng.standard_normal((len(y), means.shape[1])), y


def test_likelihoods_match_lda_decisions_and_absent_classes_are_never_chosen():
    rng = np.random.default_rng(0)
    means = rng.standard_normal((4, 3)) * 3
    z, y = _clusters(rng, means, 30)
    keep = y != 2
    g = SharedGaussian(0.0).fit(z[keep], y[keep], 4)
    ll = g.log_likelihoods(z)
    assert np.isneginf(ll[:, 2]).all()
    lda = LDA(0.0).fit(z[keep], y[keep])
    np.testing.assert_array_equal(ll.argmax(1), lda.predict(z))


def test_em_follows_a_shifted_user_and_recovers_accuracy():
    rng = np.random.default_rng(1)
    means = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    z, y = _clusters(rng, means, 40)
    zu, yu = _clusters(rng, means, 20, shift=np.array([1.1, -0.9]))   # the user's clusters moved
    g = SharedGaussian(0.1).fit(z, y, 4)
    before = (g.log_likelihoods(zu).argmax(1) == yu).mean()
    adapted = g.adapt(zu, iters=20, prior=2.0)
    after = (g.log_likelihoods(zu, adapted).argmax(1) == yu).mean()
    assert before < 0.8 and after > 0.95
    np.testing.assert_allclose(adapted, means + [1.1, -0.9], atol=0.2)


def test_no_user_data_keeps_the_training_means_and_a_huge_prior_barely_moves_them():
    rng = np.random.default_rng(2)
    means = rng.standard_normal((3, 2)) * 4
    z, y = _clusters(rng, means, 10)
    g = SharedGaussian().fit(z, y, 3)
    np.testing.assert_array_equal(g.adapt(z[:0]), g.means_)
    moved = g.adapt(z + 5.0, iters=5, prior=1e9)
    np.testing.assert_allclose(moved, g.means_, atol=1e-5)


def test_bad_input_is_refused():
    with pytest.raises(DataError, match="shrinkage"):
        SharedGaussian(1.5)
    with pytest.raises(DataError, match="features"):
        SharedGaussian().fit(np.zeros((3, 2)), np.zeros(2, int), 2)
    with pytest.raises(ConfigError, match="adapt"):
        get_method("lda-log", adapt="em")
    with pytest.raises(ConfigError, match="subject_norm"):
        get_method("nct-logreg", adapt="em")


def test_em_with_class_priors_follows_a_rest_heavy_user():
    """Half of each user's trials are rest (myo_readings): with equal priors EM hands rest trials
    to the gestures and drags their means; with the training priors, re-estimated per user, the
    means follow the user and the rest share is recovered."""
    rng = np.random.default_rng(3)
    means = np.array([[0.0, 0.0], [1.2, 0.0], [0.0, 1.2], [1.2, 1.2]])
    counts = [120, 40, 40, 40]
    y = np.repeat(np.arange(4), counts)
    z = means[y] + 0.4 * rng.standard_normal((len(y), 2))
    yu = np.repeat(np.arange(4), [60, 20, 20, 20])
    zu = means[yu] + [0.5, -0.4] + 0.4 * rng.standard_normal((len(yu), 2))
    acc = {}
    for priors in ("train", "equal"):
        g = SharedGaussian(0.1, priors=priors).fit(z, y, 4)
        m, lp = g.adapt_em(zu, iters=20, prior=2.0)
        acc[priors] = (g.scores(zu, m, lp).argmax(1) == yu).mean()
        if priors == "train":
            np.testing.assert_allclose(np.exp(lp), [0.5, 1 / 6, 1 / 6, 1 / 6], atol=0.08)
            np.testing.assert_allclose(np.exp(g.log_prior_), np.array(counts) / sum(counts))
        else:
            np.testing.assert_allclose(lp, np.log(0.25))
    assert acc["train"] > acc["equal"] + 0.03
    with pytest.raises(DataError, match="priors"):
        SharedGaussian(priors="uniform")


def test_map_means_from_one_labelled_row_per_class_follow_a_moved_user():
    rng = np.random.default_rng(3)
    means = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    z, y = _clusters(rng, means, 40)
    g = SharedGaussian(0.1).fit(z, y, 4)
    # the user's classes are permuted in space: one labelled row per class shows where
    user_means = means[[1, 0, 3, 2]]
    zs, ys = _clusters(rng, user_means, 1, scale=0.05)
    zu, yu = _clusters(rng, user_means, 20)
    m = g.map_means(zs, ys, prior=0.5)
    np.testing.assert_allclose(m, (zs + 0.5 * g.means_) / 1.5)          # the formula, one row per class
    assert (g.log_likelihoods(zu).argmax(1) == yu).mean() < 0.1
    assert (g.log_likelihoods(zu, m).argmax(1) == yu).mean() > 0.9
    only_one = g.map_means(zs[:1], ys[:1], prior=4.0)                   # classes without a row keep m0
    np.testing.assert_array_equal(only_one[1:], g.means_[1:])
    np.testing.assert_allclose(only_one[0], (zs[0] + 4.0 * g.means_[0]) / 5.0)
    with pytest.raises(DataError, match="prior"):
        g.map_means(zs, ys, prior=-1.0)


def test_lda_map_uses_the_users_labelled_windows():
    """lda-log-subjnorm-map: the user's class means from its few-shot share; a huge prior gives the
    unadapted shared-Gaussian back."""
    from aemg.eval.protocols import fewshot_folds, rest_class_id
    from aemg.eval.runner import fold_adaptation
    from aemg.eval.trials import TrialSet
    rng = np.random.default_rng(0)
    classes = ["rest", "a", "b"]
    data, labels, subjects, reps = [], [], [], []
    for s in range(3):
        gain = 1.0 + s
        for rep in range(3):
            for k in range(3):
                amp = gain * (1 + 2 * k) * (1.0 + 0.5 * np.arange(4)[:, None] * (k == 1))
                data.append((amp * rng.standard_normal((4, 400))).astype(np.float32))
                labels.append(k)
                subjects.append(f"s{s}")
                reps.append(rep)
    n = len(labels)
    ts = TrialSet(data, 500.0, np.array(labels), np.array(subjects), np.array(["x"] * n), np.array(reps),
                  np.array([f"t{i}" for i in range(n)]), tuple(classes))
    fold = fewshot_folds(ts, 0.01, too_small="one")[0]
    adaptation = fold_adaptation(ts, fold, rest_class_id(ts))
    m = get_method("lda-log-subjnorm-map").fit(ts.subset(fold.train), adaptation=adaptation)
    assert m.regimes == ("fewshot",) and list(m.user_means_) == [fold.subject]
    frozen = get_method("lda-log-subjnorm-map", map_prior=1e12)
    frozen.fit(ts.subset(fold.train), adaptation=adaptation)
    np.testing.assert_allclose(frozen.user_means_[fold.subject], frozen.gauss_.means_, atol=1e-6)
    pred = m.predict(ts.subset(fold.test).without_labels(), adaptation)
    assert pred.trial.shape == (len(fold.test),)
    with pytest.raises(ConfigError, match="map"):
        get_method("lda-log", adapt="map")
