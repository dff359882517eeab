"""The linear classifiers of the baselines and of the probe, on scikit-learn as LibEMG users know
them: :class:`LDA` (``LinearDiscriminantAnalysis``) and :func:`logistic_regression`
(``LogisticRegression``, L-BFGS).

Both keep the formulation the evaluation reports were made with:

- LDA: features standardised with the training mean / std first (numerics only); the pooled
  within-class covariance with divisor n - K, shrunk as ``(1 - a) Sigma + a mean(diag(Sigma)) I``;
  a singular covariance (constant or collinear features, e.g. ZC of a silent channel) is harmless
  (least-squares solution of minimum norm, as a pseudo-inverse). scikit-learn settings:
  ``solver="lsqr"`` with ``covariance_estimator`` = :class:`PooledCovariance`, a
  ``ShrunkCovariance`` scaled by n / (n - K). LDA averages the estimator's per-class covariances
  with the class priors; shrinkage is linear, so the average of the shrunk ones is the shrunk
  average, and the factor turns the divisor n of those maximum-likelihood covariances into n - K.
  Why not the defaults: ``solver="svd"`` divides by n - K in scikit-learn 1.6.1 and by n in 1.9.1
  (the log-priors then weigh K / n more; a 0.05 % change on UCI Myo that moved no window), and
  ``shrinkage=a`` shrinks towards another target (in some versions after standardising each class).
- Logistic regression: ``mean CE + l2 * ||W||^2`` over the softmax weights (bias free), i.e.
  scikit-learn's ``C = 1 / (2 n l2)`` for K > 2 classes (multinomial) and ``C = 1 / (n l2)`` for two
  (scikit-learn fits one weight vector w; the softmax pair at its optimum is (-w/2, w/2), whose
  penalty is ||w||^2 / 2).
"""
from __future__ import annotations

import warnings

import numpy as np

from ..errors import ConfigError, DataError


def _check_xy(x: np.ndarray, y: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise DataError(where, f"expected x (n, d) and y (n,), got {x.shape} and {y.shape}")
    if not np.all(np.isfinite(x)):
        raise DataError(where, "features contain NaN or inf")
    return x, y


def _pooled_covariance_class():
    from sklearn.covariance import ShrunkCovariance

    class PooledCovariance(ShrunkCovariance):
        """``ShrunkCovariance`` of one class times ``factor`` (n / (n - K)): as LDA's
        ``covariance_estimator`` it gives the shrunk pooled covariance with divisor n - K."""

        def __init__(self, shrinkage: float = 0.0, factor: float = 1.0):
            super().__init__(shrinkage=shrinkage)
            self.factor = factor

        def fit(self, X, y=None):
            super().fit(X)
            self.covariance_ = self.covariance_ * self.factor
            return self

    return PooledCovariance


class LDA:
    """Linear discriminant analysis with a pooled covariance and optional shrinkage
    (scikit-learn's ``LinearDiscriminantAnalysis``; see the module docstring for its settings).

    Parameters
    ----------
    shrinkage : float
        ``Sigma <- (1 - a) Sigma + a * mean(diag(Sigma)) I``, ``a`` in [0, 1].

    Attributes (after :meth:`fit`): ``classes_`` (K,) the class ids seen, ``mean_`` and ``scale_``
    (d,) the standardisation, ``model_`` the fitted ``LinearDiscriminantAnalysis`` (None for one
    class).
    """

    def __init__(self, shrinkage: float = 0.0):
        if not 0.0 <= shrinkage <= 1.0:
            raise ConfigError(f"LDA shrinkage must be in [0, 1], got {shrinkage}")
        self.shrinkage = shrinkage

    def fit(self, x: np.ndarray, y: np.ndarray) -> LDA:
        """x: (n, d) float; y: (n,) int class ids."""
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        x, y = _check_xy(x, y, "LDA.fit")
        self.mean_ = x.mean(axis=0)
        self.scale_ = x.std(axis=0)
        self.scale_[self.scale_ == 0] = 1.0
        self.classes_ = np.unique(y)
        self.model_ = None
        k = len(self.classes_)
        if k > 1:  # one class: nothing to discriminate, always that class
            pooled = _pooled_covariance_class()(shrinkage=float(self.shrinkage),
                                                factor=len(x) / max(len(x) - k, 1))
            z = (x - self.mean_) / self.scale_
            if len(x) > k:
                self.model_ = LinearDiscriminantAnalysis(solver="lsqr", covariance_estimator=pooled).fit(z, y)
            else:  # scikit-learn refuses n <= K (one trial per class): the same lsqr formulas here
                self.model_ = _SmallLDA(z, y, self.classes_, pooled)
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """(n, d) -> (n, K) linear scores of :attr:`classes_` (log-posteriors up to a per-row
        constant)."""
        z = (np.asarray(x, dtype=np.float64) - self.mean_) / self.scale_
        if self.model_ is None:
            return np.zeros((len(z), 1))
        s = self.model_.decision_function(z)
        return np.stack([-0.5 * s, 0.5 * s], axis=1) if s.ndim == 1 else s  # two classes: log-odds

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes_[self.decision_function(x).argmax(axis=1)]


class _SmallLDA:
    """LDA's ``solver="lsqr"`` solution for n <= K samples, which scikit-learn refuses: class
    means, the estimator's covariance averaged with the class priors, coefficients by least squares
    (minimum norm), intercepts ``-m' w / 2 + log prior``; same ``decision_function`` shapes. With
    one sample per class the covariance is zero (shrinkage of zero is zero) and least squares gave
    w = 0, i.e. always the first class; then the identity is used (the fully shrunk limit, the
    nearest class mean in the standardised features)."""

    def __init__(self, z: np.ndarray, y: np.ndarray, classes: np.ndarray, estimator):
        priors = np.array([(y == c).mean() for c in classes])
        means = np.stack([z[y == c].mean(axis=0) for c in classes])
        with warnings.catch_warnings():  # "only one sample available": the covariance is 0, as meant
            warnings.simplefilter("ignore", UserWarning)
            cov = sum(p * estimator.fit(z[y == c]).covariance_ for p, c in zip(priors, classes))
        if not np.trace(cov) > 0:  # no within-class spread at all (one sample per class): every
            cov = np.eye(len(cov))  # direction equal, i.e. full shrinkage: nearest class mean in z
        self.coef_ = np.linalg.lstsq(cov, means.T, rcond=None)[0].T
        self.intercept_ = -0.5 * np.einsum("kd,kd->k", means, self.coef_) + np.log(priors)
        if len(classes) == 2:  # scikit-learn's binary form: one score, class 1 against class 0
            self.coef_ = self.coef_[1:] - self.coef_[:1]
            self.intercept_ = self.intercept_[1:] - self.intercept_[:1]

    def decision_function(self, z: np.ndarray) -> np.ndarray:
        s = z @ self.coef_.T + self.intercept_
        return s[:, 0] if s.shape[1] == 1 else s


def logistic_regression(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float, max_iter: int = 200,
                        tol: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression, full-batch L-BFGS (scikit-learn ``LogisticRegression``,
    deterministic).

    Minimises ``mean CE + l2 * ||W||^2`` (bias not penalised; see the module docstring for the
    matching ``C``). ``y`` holds ids in ``0..n_classes-1``; classes absent from ``y`` get zero
    weights and bias -inf (never predicted).

    Returns
    -------
    W : (n_classes, d) float64, b : (n_classes,) float64
        Class scores ``x @ W.T + b`` (softmax logits up to a per-row constant).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    x, y = _check_xy(x, y, "logistic_regression")
    if not l2 > 0:
        raise ConfigError(f"logistic regression: l2={l2!r} must be > 0")
    present = np.unique(y)
    w = np.zeros((n_classes, x.shape[1]))
    b = np.full(n_classes, -np.inf)
    if len(present) == 1:
        b[present[0]] = 0.0
        return w, b
    n = len(x)
    c = 1.0 / ((1.0 if len(present) == 2 else 2.0) * n * l2)
    with warnings.catch_warnings():  # max_iter caps the work, as it did the torch L-BFGS this replaced
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(C=c, solver="lbfgs", max_iter=int(max_iter), tol=tol).fit(x, y)
    coef, intercept = model.coef_, model.intercept_
    if len(present) == 2:  # one weight vector for class present[1] against present[0]
        coef = np.concatenate([-0.5 * coef, 0.5 * coef])
        intercept = np.concatenate([-0.5 * intercept, 0.5 * intercept])
    w[present], b[present] = coef, intercept
    return w, b
