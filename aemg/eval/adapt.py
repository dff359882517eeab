"""Label-free adaptation of a classifier to a new user (the ``unlabelled`` regime).

Within one user, gestures form tight clusters (intra-subject accuracy 95-99 % on the shared sets);
across users the clusters keep their arrangement but move. After per-user standardisation,
:class:`SharedGaussian` (LDA's model: Gaussian classes with one shared covariance) re-estimates the
class means on the user's unlabelled features by EM, starting from and shrunk towards the training
means (a prior worth ``prior`` samples per class). The covariance and the class set stay those of
the training subjects. Used by the ``-em`` variants of the probe and of ``lda-log-subjnorm``.

Reference implementation, NumPy float64; (n, d) features, K classes.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataError

#: class-prior modes of :class:`SharedGaussian`
PRIORS = ("train", "equal")


class SharedGaussian:
    """Gaussian classes with a shared (shrunk) covariance; class means adaptable by EM.

    Parameters
    ----------
    shrinkage : float
        Covariance shrinkage towards ``trace / d * I`` (0..1).
    priors : str
        ``"train"``: class priors = the training class frequencies, and EM re-estimates them per
        user (mixture weights, shrunk towards the training ones), as LDA and a Gaussian mixture do;
        ``"equal"``: equal priors, never adapted (before session 4; on a rest-heavy set such as
        myo_readings, half of each user's trials rest, equal priors pulled the gesture means
        towards rest: LOSO 47 % against 69 % for plain per-user standardisation).
    """

    def __init__(self, shrinkage: float = 0.1, priors: str = "train"):
        if not 0.0 <= float(shrinkage) <= 1.0:
            raise DataError("shrinkage", f"must be in [0, 1], got {shrinkage!r}")
        if priors not in PRIORS:
            raise DataError("priors", f"{priors!r}: choose from {PRIORS}")
        self.shrinkage = float(shrinkage)
        self.priors = priors

    def fit(self, z: np.ndarray, y: np.ndarray, n_classes: int) -> "SharedGaussian":
        """Class means (K, d) and the pooled within-class precision from labelled ``z`` (n, d)."""
        z = np.asarray(z, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64)
        if z.ndim != 2 or len(z) != len(y) or len(z) == 0:
            raise DataError("features",
                            f"expected (n, d) features with n labels, got {z.shape} and {y.shape}")
        d = z.shape[1]
        self.present_ = np.array([(y == k).any() for k in range(n_classes)])
        self.means_ = np.stack([z[y == k].mean(axis=0) if self.present_[k] else np.zeros(d)
                                for k in range(n_classes)])
        resid = z - self.means_[y]
        cov = resid.T @ resid / max(len(z) - int(self.present_.sum()), 1)
        cov = (1 - self.shrinkage) * cov + self.shrinkage * (np.trace(cov) / d + 1e-12) * np.eye(d)
        self.precision_ = np.linalg.inv(cov)
        counts = np.array([(y == k).sum() for k in range(n_classes)], dtype=np.float64)
        weights = counts / counts.sum() if self.priors == "train" else self.present_ / self.present_.sum()
        with np.errstate(divide="ignore"):
            self.log_prior_ = np.log(weights)  # absent classes: -inf
        return self

    def scores(self, z: np.ndarray, means: np.ndarray | None = None,
               log_prior: np.ndarray | None = None) -> np.ndarray:
        """(n, K) class log-posteriors up to a per-row constant: :meth:`log_likelihoods` plus the
        log class priors (the training ones unless ``log_prior`` (K,) is given)."""
        return self.log_likelihoods(z, means) + (self.log_prior_ if log_prior is None else log_prior)

    def log_likelihoods(self, z: np.ndarray, means: np.ndarray | None = None) -> np.ndarray:
        """(n, K) class log-likelihoods up to a per-row constant (absent classes: -inf)."""
        means = self.means_ if means is None else means
        z = np.asarray(z, dtype=np.float64)
        proj = z @ self.precision_                                    # (n, d)
        quad_m = np.einsum("kd,de,ke->k", means, self.precision_, means)
        out = proj @ means.T - 0.5 * quad_m[None, :]                  # z'P m - m'P m / 2
        out[:, ~self.present_] = -np.inf
        return out

    def adapt(self, z_user: np.ndarray, iters: int = 10, prior: float = 5.0) -> np.ndarray:
        """Class means (K, d) re-estimated by EM on one user's unlabelled ``z_user`` (n, d)
        (the means of :meth:`adapt_em`)."""
        return self.adapt_em(z_user, iters, prior)[0]

    def adapt_em(self, z_user: np.ndarray, iters: int = 10,
                 prior: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
        """Class means (K, d) and log class priors (K,) re-estimated by EM on one user's
        unlabelled ``z_user`` (n, d).

        E step: posteriors ``p_ik`` under the current means and priors. M step:
        ``m_k = (sum_i p_ik z_i + prior * m0_k) / (sum_i p_ik + prior)`` with ``m0`` the training
        means; with ``priors="train"`` also ``w_k = (sum_i p_ik + prior * K * w0_k) / (n + prior * K)``
        (``w0`` the training frequencies, K the classes present). No sample: the training values.
        """
        z_user = np.asarray(z_user, dtype=np.float64)
        means, log_prior = self.means_.copy(), self.log_prior_.copy()
        if len(z_user) == 0:
            return means, log_prior
        w0, k_present = np.exp(self.log_prior_), int(self.present_.sum())
        for _ in range(int(iters)):
            ll = self.scores(z_user, means, log_prior)
            ll -= ll.max(axis=1, keepdims=True)
            p = np.exp(ll)
            p /= p.sum(axis=1, keepdims=True)
            mass = p.sum(axis=0)
            means = (p.T @ z_user + prior * self.means_) / (mass[:, None] + prior)
            means[~self.present_] = self.means_[~self.present_]
            if self.priors == "train":
                w = (mass + prior * k_present * w0) / (len(z_user) + prior * k_present)
                with np.errstate(divide="ignore"):
                    log_prior = np.where(self.present_, np.log(w), -np.inf)
        return means, log_prior

    def map_means(self, z_user: np.ndarray, y_user: np.ndarray, prior: float = 4.0) -> np.ndarray:
        """Class means (K, d) re-estimated from one user's *labelled* rows ``z_user`` (n, d) with
        labels ``y_user`` (n,): ``m_k = (sum_{i: y_i = k} z_i + prior * m0_k) / (n_k + prior)``
        (the MAP estimate under a prior worth ``prior`` rows at the training mean ``m0_k``; the
        labelled twin of :meth:`adapt_em`). A class without a labelled row keeps ``m0_k``."""
        z_user = np.asarray(z_user, dtype=np.float64)
        y_user = np.asarray(y_user, dtype=np.int64)
        if prior < 0:
            raise DataError("prior", f"must be >= 0, got {prior!r}")
        means = self.means_.copy()
        for k in np.unique(y_user):
            rows = y_user == k
            if 0 <= k < len(means):
                means[k] = (z_user[rows].sum(axis=0) + prior * self.means_[k]) / (rows.sum() + prior)
        return means


def adapted_scores(model: SharedGaussian, z: np.ndarray, subjects: np.ndarray,
                   visible: tuple[np.ndarray, np.ndarray] | None, iters: int, prior: float) -> np.ndarray:
    """(n, K) class scores (log-posteriors up to a row constant) of rows ``z`` (standardised,
    ``subjects`` (n,)), each subject's under class means and priors adapted by
    :meth:`SharedGaussian.adapt_em` to its rows of ``visible`` = (standardised features (m, d),
    subjects (m,)); a subject with no visible row keeps the training means and priors."""
    out = np.full((len(z), len(model.means_)), -np.inf)
    for subj in np.unique(subjects):
        rows = subjects == subj
        mine = visible[0][visible[1] == subj] if visible is not None else z[:0]
        out[rows] = model.scores(z[rows], *model.adapt_em(mine, iters, prior))
    return out


def mapped_scores(model: SharedGaussian, z: np.ndarray, subjects: np.ndarray,
                  user_means: dict) -> np.ndarray:
    """(n, K) class scores of rows ``z`` (standardised, ``subjects`` (n,)), each subject's under
    its class means in ``user_means`` (subject -> (K, d), from :meth:`SharedGaussian.map_means`);
    a subject without an entry keeps the training means."""
    out = np.empty((len(z), len(model.means_)))
    for subj in np.unique(subjects):
        rows = subjects == subj
        out[rows] = model.scores(z[rows], user_means.get(subj))
    return out
