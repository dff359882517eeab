"""The scikit-learn classifiers of the baselines and the probe (aemg.eval.classifiers) solve the
problems the reports were made with: LDA with the n - K pooled covariance (shrunk), logistic
regression with ``mean CE + l2 ||W||^2``."""
import numpy as np
import pytest

from aemg.eval.classifiers import LDA, logistic_regression


def _data(k=3, n=240, d=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = rng.normal(size=(n, d)) + 1.5 * rng.normal(size=(k, d))[y]
    return x, y


@pytest.mark.parametrize("shrinkage", [0.0, 0.1, 0.5])
def test_lda_is_the_shrunk_pooled_gaussian_rule(shrinkage):
    x, y = _data()
    x[:, 1] *= 30.0  # scales differ: the standardisation is numerics only
    lda = LDA(shrinkage).fit(x, y)
    z = (x - x.mean(0)) / x.std(0)
    k = 3
    mu = np.stack([z[y == c].mean(0) for c in range(k)])
    cov = sum((z[y == c] - mu[c]).T @ (z[y == c] - mu[c]) for c in range(k)) / (len(z) - k)
    cov = (1 - shrinkage) * cov + shrinkage * np.mean(np.diag(cov)) * np.eye(len(cov))
    coef = mu @ np.linalg.inv(cov)
    oracle = z @ coef.T - 0.5 * np.einsum("kd,kd->k", coef, mu) + np.log(np.bincount(y) / len(y))
    np.testing.assert_allclose(lda.decision_function(x), oracle, atol=1e-9)


def test_lda_two_classes_and_one_class():
    x, y = _data(k=2)
    s = LDA().fit(x, y).decision_function(x)
    assert s.shape == (len(x), 2)
    np.testing.assert_allclose(s[:, 0], -s[:, 1])  # the log-odds split evenly: a per-row constant away
    one = LDA().fit(x, np.full(len(x), 4))
    assert (one.predict(x) == 4).all()


def _objective_gradient(x, y, w, b, l2, k):
    logits = x @ w.T + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p -= np.eye(k)[y]
    return p.T @ x / len(x) + 2 * l2 * w, p.mean(0)


@pytest.mark.parametrize("k", [2, 3])
def test_logistic_regression_minimises_mean_ce_plus_l2(k):
    x, y = _data(k=k)
    w, b = logistic_regression(x, y, k, 1e-2, max_iter=1000)
    assert w.shape == (k, x.shape[1]) and b.shape == (k,)
    gw, gb = _objective_gradient(x, y, w, b, 1e-2, k)  # the optimum of the softmax problem
    assert np.abs(gw).max() < 1e-5 and np.abs(gb).max() < 1e-5


def test_logistic_regression_absent_class_is_never_predicted():
    x, y = _data(k=3)
    y = np.where(y == 1, 0, y)  # class 1 absent
    w, b = logistic_regression(x, y, 4, 1e-3)
    scores = x @ w.T + b
    assert np.isneginf(b[[1, 3]]).all() and set(scores.argmax(1)) <= {0, 2}
    w1, b1 = logistic_regression(x, np.full(len(x), 2), 3, 1e-3)  # a single class
    assert ((x @ w1.T + b1).argmax(1) == 2).all()


def test_lda_with_no_more_samples_than_classes_uses_the_same_formulas():
    """scikit-learn refuses n <= K (one trial per class, or a tiny intra fold): LDA computes the
    lsqr solution itself; on data scikit-learn accepts the two agree exactly."""
    from aemg.eval.classifiers import _pooled_covariance_class, _SmallLDA

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    for y in (np.repeat(np.arange(4), 10), np.repeat(np.arange(2), 20)):
        lda = LDA(0.1).fit(x, y)
        z = (x - lda.mean_) / lda.scale_
        k = len(np.unique(y))
        small = _SmallLDA(z, y, lda.classes_, _pooled_covariance_class()(shrinkage=0.1, factor=40 / (40 - k)))
        np.testing.assert_allclose(small.decision_function(z), lda.model_.decision_function(z), atol=1e-10)
    few = LDA(0.1).fit(x[:3], np.array([0, 1, 2]))  # one sample per class: no within-class spread
    assert few.decision_function(x).shape == (40, 3) and set(few.predict(x)) <= {0, 1, 2}
    # ... is the nearest class mean in the standardised features (not a constant class)
    np.testing.assert_array_equal(few.predict(x[:3]), [0, 1, 2])
    z, m = (x - few.mean_) / few.scale_, (x[:3] - few.mean_) / few.scale_
    np.testing.assert_array_equal(few.predict(x), ((z[:, None] - m[None]) ** 2).sum(-1).argmin(1))
    two = LDA(0.5).fit(x[:3], np.array([0, 1, 1]))
    assert two.decision_function(x).shape == (40, 2)
