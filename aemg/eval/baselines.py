"""Downstream methods: the :class:`Method` interface, its registry, and the classic baselines.

A method is fitted on the training trials of a fold and predicts the test trials, each time with
the fold's :class:`~aemg.eval.protocols.Adaptation` (what its regime shows of the test user)::

    method = get_method("lda-log")
    method.fit(trials.subset(fold.train), seed=fold.seed, adaptation=adaptation)
    pred = method.predict(trials.subset(fold.test).without_labels(), adaptation)

Every method declares the regimes it supports (``regimes``, see :mod:`aemg.eval.protocols`) and
whether it uses the test user's rest recording when a regime gives it (``needs_rest``). Under
``online`` the runner calls :meth:`Method.predict_online`: trial i is predicted with
``adaptation.unlabelled`` = the trials before it. AEMG methods (linear probe, fine-tuning, no
pre-training) plug in with :func:`register_method`.

Baselines here (regimes in brackets):

- ``lda``: LDA on Hudgins features (MAV, WL, ZC, SSC), 200 ms windows, 50 ms step [none, fewshot].
- ``lda-log``: the same with log MAV and log WL [none, fewshot].
- ``lda-log-subjnorm``: log features standardised per subject with that subject's own statistics:
  training subjects all their windows; the test user the windows of its unlabelled trials
  (``unlabelled``), of its earlier trials (``online``; before the first one, the training windows'
  pooled statistics) or of its labelled share (``fewshot``) [online, unlabelled, fewshot].
- ``lda-log-restnorm``: log features centred per subject and session by the mean features of that
  user's rest recording (training subjects: their own designated rest recording) [rest, fewshot].
- ``cnn``: a small 1-D CNN over the same windows (cross-subject training, no adaptation)
  [none, fewshot].
- ``dann``: the same CNN with a domain-adversarial head (DANN, Ganin et al. 2016; the adversarial
  part of VADA) aligning the training subjects with the unlabelled test user [unlabelled].

Per-trial predictions of windowed methods are majority votes over the trial's windows (ties broken
by the summed class scores).
"""
from __future__ import annotations

import abc
import logging
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import ConfigError, DataError
from .adapt import PRIORS, SharedGaussian, adapted_scores, mapped_scores
from .classifiers import LDA
from .features import sliding_windows, window_params, windowed_features
from .protocols import LOSO_REGIMES, Adaptation, rest_class_id, rest_recordings
from .trials import TrialSet

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    """Predictions for a set of test trials.

    Attributes
    ----------
    trial : np.ndarray, shape (n,), int64
        Predicted class per trial.
    window : np.ndarray, shape (W,), int64, or None
        Predicted class per window (windowed methods).
    window_trial : np.ndarray, shape (W,), int64, or None
        Index (0..n-1) of the trial each window belongs to.
    """

    trial: np.ndarray
    window: np.ndarray | None = None
    window_trial: np.ndarray | None = None


def vote(window_pred: np.ndarray, window_trial: np.ndarray, n_trials: int, n_classes: int,
         scores: np.ndarray | None = None) -> np.ndarray:
    """Majority vote of window predictions per trial.

    Parameters
    ----------
    window_pred : (W,) int
    window_trial : (W,) int, trial index of each window (0..n_trials-1)
    n_trials, n_classes : int
    scores : (W, n_classes) float or None
        Class scores (e.g. log-posteriors) used only to break ties (summed per trial).

    Returns
    -------
    (n_trials,) int64; -1 for a trial without windows.
    """
    counts = np.zeros((n_trials, n_classes))
    np.add.at(counts, (window_trial, window_pred), 1.0)
    if scores is not None and len(scores):
        tie = np.zeros((n_trials, n_classes))
        np.add.at(tie, window_trial, scores - scores.max(axis=1, keepdims=True))
        # squash the summed scores into (0, 1) so they only order classes with equal counts
        counts = counts + 0.5 * (1 + np.tanh(tie / (1 + np.abs(tie).max(axis=1, keepdims=True))))
    out = counts.argmax(axis=1).astype(np.int64)
    out[np.bincount(window_trial, minlength=n_trials) == 0] = -1
    return out


class Method(abc.ABC):
    """A downstream classifier evaluated on folds.

    Subclasses set ``name``, ``regimes`` (the regimes whose data the method uses; under a richer
    regime it would give the same numbers, so the runner does not run it there) and ``needs_rest``
    (it reads ``adaptation.rest`` whenever the regime gives it: a dataset without a rest class is
    then refused). ``rest_optional``: on a dataset that marks no rest class at all, such a method
    still runs under every regime but ``rest``, from the trials' own robust statistics (the AEMG
    methods' noise calibration, which is then robust for the training users too).
    """

    name: str = "method"
    regimes: tuple = ("none", "fewshot")
    needs_rest: bool = False
    rest_optional: bool = False
    windowed: bool = False

    @property
    def native_regime(self) -> str | None:
        """The richest LOSO regime the method supports (what ``--protocols loso`` runs), or None."""
        return next((r for r in reversed(LOSO_REGIMES) if r in self.regimes), None)

    @abc.abstractmethod
    def fit(self, train: TrialSet, seed: int = 0, adaptation: Adaptation | None = None) -> "Method":
        """Fit on labelled trials (training subjects; few-shot: plus the user's labelled share).
        ``adaptation``: what the regime shows of the test user (None: nothing, no fold context)."""

    @abc.abstractmethod
    def predict(self, test: TrialSet, adaptation: Adaptation | None = None) -> Prediction:
        """Predict every trial of ``test`` (its labels are hidden) given ``adaptation``."""

    def fit_choice(self) -> dict | None:
        """What the last :meth:`fit` chose by an inner validation on its training trials, JSON-able,
        with a short ``"decision"`` string (recorded per fold; the report counts the decisions);
        None: nothing chosen (this default)."""
        return None

    def predict_online(self, test: TrialSet, adaptation: Adaptation) -> Prediction:
        """Causal prediction: trial i of ``test`` (recording order) with ``adaptation.unlabelled`` =
        trials 0..i-1. This default calls :meth:`predict` once per trial; methods whose adaptation
        is per-user statistics override it with running statistics."""
        preds = [self.predict(test.subset([i]), adaptation.with_unlabelled(test.subset(np.arange(i))))
                 for i in range(len(test))]
        return concat_predictions(preds)

    def prepare(self, trials: TrialSet) -> None:
        """Optional checks of a method against a trial set (the runner does not call it; default:
        nothing)."""


def concat_predictions(preds: list[Prediction]) -> Prediction:
    """One Prediction for consecutive trial sets (window owners offset)."""
    if not preds:
        return Prediction(np.empty(0, dtype=np.int64))
    trial = np.concatenate([p.trial for p in preds]).astype(np.int64)
    if any(p.window is None for p in preds):
        return Prediction(trial)
    offsets = np.cumsum([0] + [len(p.trial) for p in preds[:-1]])
    return Prediction(trial, np.concatenate([p.window for p in preds]),
                      np.concatenate([p.window_trial + o for p, o in zip(preds, offsets)]))


def running_stats(feats: np.ndarray, owner: np.ndarray, n_trials: int,
                  fallback: tuple[np.ndarray, np.ndarray],
                  prior: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Causal statistics: for each trial i, mean and std (d,) of the rows of trials 0..i-1.

    Parameters
    ----------
    feats : (n, d) float, rows of trials in order; owner : (n,) int, trial of each row (ascending).
    fallback : (mean, std), each (d,): used while no earlier row exists.
    prior : float
        Weight of ``fallback`` in rows: the statistics of the earlier rows pooled with ``prior``
        pseudo-rows of mean / std ``fallback`` (0: the earlier rows alone once there is one).

    Returns
    -------
    mean, std : (n_trials, d) float64 (std 0 replaced by 1). Cumulative sums of the rows centred on
    ``fallback``'s mean (numerically stable), O(n d).
    """
    d = feats.shape[1] if feats.ndim == 2 else len(fallback[0])
    centre = np.asarray(fallback[0], dtype=np.float64)
    x = np.asarray(feats, dtype=np.float64) - centre
    s1 = np.zeros((n_trials + 1, d))
    s2 = np.zeros((n_trials + 1, d))
    cnt = np.zeros(n_trials + 1)
    np.add.at(s1, owner + 1, x)
    np.add.at(s2, owner + 1, x * x)
    np.add.at(cnt, owner + 1, 1.0)
    s1, s2, cnt = np.cumsum(s1, 0)[:-1], np.cumsum(s2, 0)[:-1], np.cumsum(cnt)[:-1]
    if prior < 0:
        raise ConfigError(f"online prior weight must be >= 0, got {prior}")
    s2 = s2 + prior * np.asarray(fallback[1], dtype=np.float64) ** 2  # pseudo-rows: centred, variance std^2
    cnt = cnt + prior
    have = cnt > 0
    n = np.where(have, cnt, 1.0)[:, None]
    mean = s1 / n
    std = np.sqrt(np.maximum(s2 / n - mean * mean, 0.0))
    # a constant feature leaves only rounding (relative 1e-8 of its RMS): treat it as std 0 -> 1
    std = np.where(std > 1e-6 * np.sqrt(s2 / n), std, 1.0)
    mean = mean + centre
    mean[~have], std[~have] = fallback[0], fallback[1]
    return mean, std


def subject_standardise(feats: np.ndarray, subjects: np.ndarray, stats: dict) -> np.ndarray:
    out = np.empty_like(feats)
    for s in np.unique(subjects):
        rows = subjects == s
        mean, std = stats[s]
        out[rows] = (feats[rows] - mean) / std
    return out


def _stats(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) over rows of (n, d); std 0 replaced by 1."""
    std = f.std(axis=0)
    return f.mean(axis=0), np.where(std > 0, std, 1.0)


def subject_stats(feats: np.ndarray, subjects: np.ndarray) -> dict:
    return {s: _stats(feats[subjects == s]) for s in np.unique(subjects)}


def user_standardise(feats: np.ndarray, subjects: np.ndarray, stats: dict, pooled: tuple,
                     visible: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Per-subject standardisation of test rows under a regime.

    Each subject's statistics: those of its rows in ``visible`` = (features (m, d), subjects (m,)),
    the unlabelled trials its regime shows; else ``stats[subject]`` (from fit: a training subject,
    or the few-shot user's labelled share); else ``pooled`` = (mean, std) of the training rows.
    """
    own = dict(stats)
    if visible is not None and len(visible[0]):
        own.update(subject_stats(*visible))
    for s in np.unique(subjects):
        own.setdefault(s, pooled)
    return subject_standardise(feats, subjects, own)


def online_standardise(feats: np.ndarray, owner: np.ndarray, subjects: np.ndarray, pooled: tuple,
                       prior: float = 0.0) -> np.ndarray:
    """Causal per-subject standardisation: the rows of trial i (``owner``, ascending) with the
    statistics of the same subject's rows of trials before i (:func:`running_stats`; before its
    first trial: ``pooled``; ``prior``: weight of ``pooled`` in rows). ``subjects``: per trial."""
    out = np.empty_like(np.asarray(feats, dtype=np.float64))
    for s in np.unique(subjects):
        idx = np.flatnonzero(subjects == s)
        rows = np.flatnonzero(np.isin(owner, idx))
        local = np.searchsorted(idx, owner[rows])
        mean, std = running_stats(feats[rows], local, len(idx), pooled, prior)
        out[rows] = (feats[rows] - mean[local]) / std[local]
    return out


#: HudginsLDA normalisations -> the regimes they use
LDA_NORMS = {"none": ("none", "fewshot"), "subject": ("online", "unlabelled", "fewshot"),
             "rest": ("rest", "fewshot")}


class HudginsLDA(Method):
    """LDA on Hudgins time-domain features over sliding windows.

    Parameters
    ----------
    log : bool
        Log of MAV and WL.
    norm : {"none", "subject", "rest"}
        Per-user normalisation of the window features: none; standardisation per subject with its
        own statistics (see :func:`user_standardise`; ``online``: :func:`online_standardise`);
        centring per (subject, session) by the mean features of its rest recording.
    per_subject : bool or None
        Old spelling of ``norm="subject"``.
    window_s, step_s : float
        Window and step, seconds.
    threshold : float
        ZC/SSC noise dead band (sample units), see :mod:`aemg.eval.features`.
    shrinkage : float
        LDA shrinkage.
    online_prior : float
        ``norm="subject"`` under ``online``: weight of the pooled training statistics, in trials
        (x the mean windows per training trial), pooled with the user's earlier windows; 0 = none.
    adapt : {"none", "em"}
        ``"em"`` (with ``norm="subject"``, regime ``unlabelled`` only): the class means re-estimated
        on the user's unlabelled windows (:class:`aemg.eval.adapt.SharedGaussian`, shrinkage at
        least 1e-3, training means as a prior of ``em_prior`` trials' windows; ``em_priors``:
        class priors, ``"train"`` = the training frequencies re-estimated per user, ``"equal"``).
        ``"map"`` (with ``norm="subject"``, regime ``fewshot`` only): the user's class means from
        the windows of its labelled share (:meth:`aemg.eval.adapt.SharedGaussian.map_means`, a
        prior of ``map_prior`` trials' windows at the training means): the twin of
        ``aemg-probe-tok-map``.
    """

    windowed = True

    def __init__(self, log: bool = False, norm: str = "none", window_s: float = 0.2,
                 step_s: float = 0.05, threshold: float = 0.0, shrinkage: float = 0.0,
                 per_subject: bool | None = None, online_prior: float = 0.0, adapt: str = "none",
                 em_iters: int = 10, em_prior: float = 5.0, em_priors: str = "train",
                 map_prior: float = 4.0):
        norm = "subject" if per_subject else norm
        if norm not in LDA_NORMS:
            raise ConfigError(f"lda: norm={norm!r}; choose from {', '.join(LDA_NORMS)}")
        if adapt not in ("none", "em", "map") or (adapt != "none" and norm != "subject"):
            raise ConfigError(f"lda: adapt={adapt!r}; choose none, or em / map with norm='subject'")
        if float(map_prior) < 0:
            raise ConfigError(f"lda: map_prior={map_prior!r} must be >= 0")
        self.map_prior = float(map_prior)
        if em_priors not in PRIORS:
            raise ConfigError(f"{self.name}: em_priors={em_priors!r}; choose from {PRIORS}")
        self.adapt, self.em_iters, self.em_prior = adapt, int(em_iters), float(em_prior)
        self.em_priors = em_priors
        self.log, self.norm = log, norm
        self.window_s, self.step_s, self.threshold = window_s, step_s, threshold
        self.shrinkage = shrinkage
        if float(online_prior) < 0:
            raise ConfigError(f"lda: online_prior={online_prior!r} must be >= 0")
        self.online_prior = float(online_prior)
        self.regimes = {"em": ("unlabelled",), "map": ("fewshot",)}.get(adapt, LDA_NORMS[norm])
        self.needs_rest = norm == "rest"
        self.name = ("lda" + ("-log" if log else "")
                     + {"none": "", "subject": "-subjnorm", "rest": "-restnorm"}[norm]
                     + {"none": "", "em": "-em", "map": "-map"}[adapt])

    def _features(self, trials: TrialSet):
        what = ("hudgins", trials.rate, self.window_s, self.step_s, self.threshold, self.log)
        per_trial = trials.cached(what, lambda x: windowed_features(
            [x], trials.rate, self.window_s, self.step_s, self.threshold, self.log)[0])
        if not per_trial:
            return np.empty((0, 0)), np.empty(0, dtype=np.int64)
        owner = np.repeat(np.arange(len(per_trial)), [len(f) for f in per_trial])
        return np.concatenate(per_trial), owner

    def _rest_centres(self, recordings: list[TrialSet]) -> dict:
        """(subject, session) -> mean window features of its rest recording(s)."""
        out: dict = {}
        for rec in recordings:
            if rec is None or not len(rec):
                continue
            feats, owner = self._features(rec)
            for i in range(len(rec)):
                out.setdefault((rec.subjects[i], rec.sessions[i]), []).append(feats[owner == i])
        return {k: np.concatenate(v).mean(axis=0) for k, v in out.items()}

    def _centre(self, trials: TrialSet, feats: np.ndarray, owner: np.ndarray, centres: dict) -> np.ndarray:
        """Window features minus the rest centre of their trial's (subject, session); a session
        without a rest recording takes the mean centre of the subject's other sessions."""
        by_subject: dict = {}
        for (s, _), c in centres.items():
            by_subject.setdefault(s, []).append(c)
        out = np.empty_like(feats)
        for i in range(len(trials)):
            s, ss = trials.subjects[i], trials.sessions[i]
            centre = centres.get((s, ss))
            if centre is None:
                if s not in by_subject:
                    raise DataError(trials.name or "trials",
                                    f"{self.name}: subject {s} has no rest recording "
                                    "(no trial of the rest class in any of its sessions)")
                centre = np.mean(by_subject[s], axis=0)
            rows = owner == i
            out[rows] = feats[rows] - centre
        return out

    def fit(self, train, seed=0, adaptation=None):
        feats, owner = self._features(train)
        if self.norm == "subject":
            subj = train.subjects[owner]
            self.stats_ = subject_stats(feats, subj)
            self.pooled_ = _stats(feats)
            self.windows_per_trial_ = len(feats) / max(len(train), 1)
            feats = subject_standardise(feats, subj, self.stats_)
        elif self.norm == "rest":
            if adaptation is None:  # no fold context: the designated rest recordings of ``train``
                adaptation = Adaptation(train_rest=rest_recordings(train, rest_class_id(train)))
            self.centres_ = self._rest_centres([train.subset(adaptation.train_rest), adaptation.rest])
            feats = self._centre(train, feats, owner, self.centres_)
        self.lda_ = LDA(self.shrinkage).fit(feats, train.labels[owner])
        self.n_classes_ = max(train.n_classes, int(self.lda_.classes_.max()) + 1)
        self.user_means_ = {}
        if self.adapt in ("em", "map"):
            self.gauss_ = SharedGaussian(max(self.shrinkage, 1e-3), self.em_priors).fit(
                feats, train.labels[owner], self.n_classes_)
        user = adaptation.subject if adaptation is not None else None
        if self.adapt == "map" and user is not None:
            mine = train.subjects[owner] == user
            if mine.any():
                self.user_means_[user] = self.gauss_.map_means(
                    feats[mine], train.labels[owner][mine], self.map_prior * self.windows_per_trial_)
        return self

    def _lda_scores(self, feats: np.ndarray) -> np.ndarray:
        """(W, K) LDA class scores of window features; -inf for classes without training windows."""
        full = np.full((len(feats), self.n_classes_), -np.inf)
        full[:, self.lda_.classes_] = self.lda_.decision_function(feats)
        return full

    def window_scores(self, test: TrialSet,
                      adaptation: Adaptation | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(class scores (W, K) of the test trials' windows, the trial index (W,) of each window)
        under the fold's normalisation and adaptation (what :meth:`predict` votes on). Scores are
        log-posteriors up to a row constant; -inf marks a class the training windows lack."""
        feats, owner = self._features(test)
        if self.norm == "subject":
            visible = None
            if adaptation is not None and adaptation.unlabelled is not None and len(adaptation.unlabelled):
                vf, vo = self._features(adaptation.unlabelled)
                visible = (vf, adaptation.unlabelled.subjects[vo])
            feats = user_standardise(feats, test.subjects[owner], self.stats_, self.pooled_, visible)
            if self.adapt == "em":  # class means adapted to each test user's visible windows
                if visible is not None:
                    visible = (user_standardise(*visible, self.stats_, self.pooled_, visible), visible[1])
                return adapted_scores(self.gauss_, feats, test.subjects[owner], visible, self.em_iters,
                                      self.em_prior * self.windows_per_trial_), owner
            if self.adapt == "map":  # the user's MAP class means (fit)
                return mapped_scores(self.gauss_, feats, test.subjects[owner], self.user_means_), owner
        elif self.norm == "rest":
            rest = adaptation.rest if adaptation is not None else None
            feats = self._centre(test, feats, owner, {**self.centres_, **self._rest_centres([rest])})
        return self._lda_scores(feats), owner

    def predict(self, test, adaptation=None):
        scores, owner = self.window_scores(test, adaptation)
        return self._vote_scores(scores, owner, len(test))

    def _vote_scores(self, scores: np.ndarray, owner: np.ndarray, n_trials: int) -> Prediction:
        """Per-window class scores (W, K) -> window predictions and the trials' votes."""
        win = scores.argmax(axis=1)
        return Prediction(vote(win, owner, n_trials, self.n_classes_,
                               np.where(np.isfinite(scores), scores, -1e9)), win, owner)

    def online_window_scores(self, test: TrialSet) -> tuple[np.ndarray, np.ndarray]:
        """``norm="subject"`` under ``online``: (class scores (W, K) of the test trials' windows, each
        standardised with the running statistics of the user's earlier trials' windows, blended with
        ``online_prior`` trials of the pooled ones; the trial index (W,) of each window)."""
        feats, owner = self._features(test)
        z = online_standardise(feats, owner, test.subjects, self.pooled_,
                               self.online_prior * self.windows_per_trial_)
        return self._lda_scores(z), owner

    def predict_online(self, test, adaptation):
        if self.norm != "subject" or self.adapt != "none":
            return super().predict_online(test, adaptation)
        scores, owner = self.online_window_scores(test)
        return self._vote_scores(scores, owner, len(test))


# ----------------------------------------------------------------------------------------------
# Windowed CNN and its domain-adversarial variant
class WindowCNN(Method):
    """A small 1-D CNN on raw sliding windows (C, L), trained cross-subject.

    Input scaling: per-channel RMS over the training windows (training data only). Architecture:
    3 x [Conv1d(k=5) -> BatchNorm -> ReLU] (32, 64, 64 filters, stride 1, 2, 2) -> global average
    pool -> Linear. Adam, cross-entropy, ``epochs`` passes over at most ``max_windows`` randomly
    drawn training windows per epoch.

    Parameters
    ----------
    window_s, step_s : float
        Window and step, seconds.
    epochs, batch_size, lr, max_windows : training settings.
    device : str
        Torch device.
    """

    windowed = True
    name = "cnn"

    def __init__(self, window_s: float = 0.2, step_s: float = 0.05, epochs: int = 10,
                 batch_size: int = 256, lr: float = 1e-3, max_windows: int = 20000,
                 device: str = "cpu"):
        self.window_s, self.step_s = window_s, step_s
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.max_windows, self.device = max_windows, device

    def _windows(self, trials: TrialSet) -> tuple[np.ndarray, np.ndarray]:
        length, step = window_params(trials.rate, self.window_s, self.step_s)
        wins, owner = [], []
        for i, x in enumerate(trials.data):
            if x.shape[1] < length:  # pad a too-short trial to one window
                x = np.pad(x, ((0, 0), (0, length - x.shape[1])))
            w = sliding_windows(x, length, step)
            wins.append(w)
            owner.append(np.full(len(w), i, dtype=np.int64))
        return np.concatenate(wins).astype(np.float32), np.concatenate(owner)

    def _build(self, n_channels: int, n_classes: int):
        import torch.nn as nn

        def block(i, o, s):
            return [nn.Conv1d(i, o, 5, stride=s, padding=2), nn.BatchNorm1d(o), nn.ReLU()]

        features = nn.Sequential(*block(n_channels, 32, 1), *block(32, 64, 2), *block(64, 64, 2),
                                 nn.AdaptiveAvgPool1d(1), nn.Flatten())
        return features, nn.Linear(64, n_classes)

    def fit(self, train, seed=0, adaptation=None):
        import torch

        target = adaptation.unlabelled if adaptation is not None else None
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        x, owner = self._windows(train)
        y = train.labels[owner]
        self.scale_ = np.sqrt((x.astype(np.float64) ** 2).mean(axis=(0, 2))).astype(np.float32)
        self.scale_[self.scale_ == 0] = 1.0
        x = x / self.scale_[None, :, None]
        self.n_classes_ = train.n_classes
        self.features_, self.head_ = self._build(x.shape[1], self.n_classes_)
        xt = None
        if target is not None and len(target):
            xt, _ = self._windows(target)
            xt = xt / self.scale_[None, :, None]
        self._train(x, y, xt, rng)
        return self

    def _modules(self):
        return [self.features_, self.head_]

    def _train(self, x, y, xt, rng):
        import torch
        import torch.nn.functional as F

        params = [p for m in self._modules() for p in m.parameters()]
        opt = torch.optim.Adam(params, lr=self.lr)
        for m in self._modules():
            m.to(self.device).train()
        for epoch in range(self.epochs):
            idx = rng.permutation(len(x))[: self.max_windows]
            for start in range(0, len(idx), self.batch_size):
                b = idx[start:start + self.batch_size]
                if len(b) < 2:
                    continue
                xb = torch.from_numpy(x[b]).to(self.device)
                yb = torch.from_numpy(y[b]).to(self.device)
                loss = F.cross_entropy(self.head_(self.features_(xb)), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()

    def _scores(self, x: np.ndarray) -> np.ndarray:
        import torch

        for m in self._modules():
            m.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(x), 4096):
                xb = torch.from_numpy(x[start:start + 4096]).to(self.device)
                out.append(torch.log_softmax(self.head_(self.features_(xb)), dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.empty((0, self.n_classes_))

    def predict(self, test, adaptation=None):
        x, owner = self._windows(test)
        scores = self._scores(x / self.scale_[None, :, None])
        win = scores.argmax(axis=1).astype(np.int64)
        return Prediction(vote(win, owner, len(test), self.n_classes_, scores), win, owner)


class DannCNN(WindowCNN):
    """:class:`WindowCNN` with domain-adversarial training (DANN; the adversarial term of VADA).

    A domain head (Linear-ReLU-Linear) behind a gradient-reversal layer learns to tell training
    windows from the test subject's unlabelled windows; the feature extractor learns to fool it.
    Loss = CE(labels) + BCE(domain); the reversal weight ramps as ``2 / (1 + exp(-10 p)) - 1`` over
    training progress ``p`` (Ganin et al., JMLR 2016). Target windows: ``adaptation.unlabelled``
    (regime ``unlabelled``); without them it is a plain CNN.
    """

    name = "dann"
    regimes = ("unlabelled",)

    def _modules(self):
        return [self.features_, self.head_, self.domain_]

    def _train(self, x, y, xt, rng):
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        self.domain_ = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
        if xt is None:
            return super()._train(x, y, xt, rng)

        class Reverse(torch.autograd.Function):
            @staticmethod
            def forward(ctx, inp, weight):
                ctx.weight = weight
                return inp.view_as(inp)

            @staticmethod
            def backward(ctx, grad):
                return -ctx.weight * grad, None

        params = [p for m in self._modules() for p in m.parameters()]
        opt = torch.optim.Adam(params, lr=self.lr)
        for m in self._modules():
            m.to(self.device).train()
        n_batches = max(1, math.ceil(min(len(x), self.max_windows) / self.batch_size))
        total, step = self.epochs * n_batches, 0
        half = max(1, self.batch_size // 2)
        for epoch in range(self.epochs):
            idx = rng.permutation(len(x))[: self.max_windows]
            for start in range(0, len(idx), self.batch_size):
                b = idx[start:start + self.batch_size]
                step += 1
                if len(b) < 2:
                    continue
                bt = rng.integers(0, len(xt), size=min(half, len(b)))
                xs = torch.from_numpy(x[b]).to(self.device)
                xtb = torch.from_numpy(xt[bt]).to(self.device)
                ys = torch.from_numpy(y[b]).to(self.device)
                feats = self.features_(torch.cat([xs, xtb]))
                cls_loss = F.cross_entropy(self.head_(feats[: len(b)]), ys)
                weight = 2.0 / (1.0 + math.exp(-10.0 * step / total)) - 1.0
                dom = self.domain_(Reverse.apply(feats, weight)).squeeze(1)
                dom_target = torch.cat([torch.zeros(len(b)), torch.ones(len(bt))]).to(self.device)
                loss = cls_loss + F.binary_cross_entropy_with_logits(dom, dom_target)
                opt.zero_grad()
                loss.backward()
                opt.step()


# ----------------------------------------------------------------------------------------------
# registry
_METHODS: dict[str, Callable[..., Method]] = {
    "lda": lambda **kw: HudginsLDA(log=False, **kw),
    "lda-log": lambda **kw: HudginsLDA(log=True, **kw),
    "lda-log-subjnorm": lambda **kw: HudginsLDA(log=True, norm="subject", **kw),
    "lda-log-subjnorm-em": lambda **kw: HudginsLDA(log=True, norm="subject", adapt="em", **kw),
    "lda-log-subjnorm-map": lambda **kw: HudginsLDA(log=True, norm="subject", adapt="map", **kw),
    "lda-log-restnorm": lambda **kw: HudginsLDA(log=True, norm="rest", **kw),
    "cnn": WindowCNN,
    "dann": DannCNN,
}
DEFAULT_METHODS = ("lda", "lda-log", "lda-log-subjnorm")


def register_method(name: str, factory: Callable[..., Method]) -> None:
    """Make ``factory(**options) -> Method`` available as ``name`` (e.g. AEMG linear probe)."""
    _METHODS[name] = factory


def list_methods() -> list[str]:
    return sorted(_METHODS)


def get_method(name: str, **options) -> Method:
    """A fresh instance of method ``name``; ConfigError listing the known names otherwise."""
    if name not in _METHODS:
        raise ConfigError(f"unknown method {name!r}; known methods: {', '.join(list_methods())}")
    method = _METHODS[name](**options)
    method.name = name
    return method
