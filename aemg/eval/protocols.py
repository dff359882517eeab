"""Evaluation protocols and adaptation regimes: folds over trials (one trial = one label), seeded.

**Adaptation regimes** say what a method may see of the test user besides the trial it classifies
(training subjects are fully visible in every regime: their trials, labels and rest recordings):

- ``none``: the trial alone.
- ``rest``: one short rest recording taken at donning. Per (subject, session) of the test user ONE
  designated rest trial -- the first trial of the rest class in recording (trial-set) order, see
  :func:`rest_recordings` -- is the calibration recording. It is removed from the user's test set in
  every regime, so all LOSO regimes share one test set.
- ``online``: causal: the user's earlier test trials, unlabelled, in recording order, plus the rest
  recording. Trial i is predicted with the trials before it only (:meth:`Method.predict_online`).
- ``unlabelled``: all of the user's test trials, unlabelled, plus the rest recording (per-subject
  standardisation, unsupervised domain adaptation).
- ``fewshot``: a labelled share of the user's trials in training (per class ``round(share * n_c)``
  trials, drawn with the fold's seed from the trials other than the rest recording), plus the rest
  recording; tested on the user's other trials.

``none``, ``rest``, ``online`` and ``unlabelled`` are leave-one-subject-out (protocol ``loso``);
each gives strictly more than the previous one (:data:`POORER`). ``intra`` stays as the
within-subject reference protocol (leave one repetition out; the user's rest recording is given
and kept out of the test sets).

Folds carry indices into a :class:`~aemg.eval.trials.TrialSet` only. The runner turns a fold into
the training trials, the test trials (labels hidden) and one :class:`Adaptation` holding exactly
what the regime allows; a method never sees the whole trial set.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field, replace
from typing import Iterator, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from .trials import TrialSet

PROTOCOLS = ("loso", "fewshot", "intra")
#: LOSO adaptation regimes, poorest first
LOSO_REGIMES = ("none", "rest", "online", "unlabelled")
#: every adaptation regime (``aemg evaluate --regimes``)
REGIMES = LOSO_REGIMES + ("fewshot",)
#: regime -> the regimes that give a subset of what it gives (richest first): a method that supports
#: only a poorer regime gives the same numbers under the richer one
POORER = {"none": (), "rest": ("none",), "online": ("rest", "none"),
          "unlabelled": ("online", "rest", "none"), "fewshot": ("rest", "none"), "intra": ()}
#: regimes (and the intra protocol) that give the test user's rest recording
GIVES_REST = ("rest", "online", "unlabelled", "fewshot", "intra")
DEFAULT_SHARES = (0.01, 0.05, 0.2, 0.4, 0.8)


@dataclass(frozen=True)
class Adaptation:
    """What a method may see of the test user under a regime, besides the trials it classifies.

    Attributes
    ----------
    regime : str
        One of :data:`REGIMES` or ``"intra"``.
    subject : str or None
        The test user (None: no fold context, e.g. a direct call; every subject then counts as a
        training subject).
    rest : TrialSet or None
        The user's rest recording(s), one per session that has one, labels hidden (-1); None under
        ``none``.
    unlabelled : TrialSet or None
        The user's test trials the regime shows, labels hidden: all of them (``unlabelled``), the
        ones before the predicted trial (``online``, set per trial by ``predict_online``), else None.
    train_rest : np.ndarray of int64
        Positions in the training TrialSet of the training subjects' rest recordings (fully visible).
    rest_class : int or None
        Class id of rest (None: the dataset marks no rest class).
    """

    regime: str = "none"
    subject: str | None = None
    rest: TrialSet | None = None
    unlabelled: TrialSet | None = None
    train_rest: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    rest_class: int | None = None

    def with_unlabelled(self, unlabelled: TrialSet | None) -> "Adaptation":
        return replace(self, unlabelled=unlabelled)


def rest_class_id(trials: TrialSet, rest_class: str | int | None = None) -> int | None:
    """The class id of rest: ``rest_class`` (a class name, or an id) when given, else the first
    class whose name marks rest (:func:`aemg.tokenizer.tokens.is_rest_class`), else None.

    Raises
    ------
    DataError
        ``rest_class`` is not a class of the trials.
    """
    names = list(trials.classes)
    if rest_class is not None:
        key = str(rest_class)
        if key in names:
            return names.index(key)
        if key.isdigit() and int(key) < trials.n_classes:
            return int(key)
        raise DataError("--rest-class", f"{key!r} is not a class of {trials.name or 'the trials'} "
                        f"(classes: {', '.join(names) or 'unnamed ids 0..' + str(trials.n_classes - 1)})")
    from ..tokenizer.tokens import is_rest_class
    return next((i for i, n in enumerate(names) if is_rest_class(n)), None)


def rest_recordings(trials: TrialSet, rest_id: int | None) -> np.ndarray:
    """Indices (int64, ascending) of the designated rest recordings: per (subject, session), the
    first trial of class ``rest_id`` in trial-set (recording) order; empty when ``rest_id`` is None."""
    if rest_id is None:
        return np.empty(0, dtype=np.int64)
    seen, out = set(), []
    for i in np.flatnonzero(trials.labels == rest_id).tolist():
        k = (trials.subjects[i], trials.sessions[i])
        if k not in seen:
            seen.add(k)
            out.append(i)
    return np.asarray(out, dtype=np.int64)


def no_rest_error(trials: TrialSet, regime: str, method: str) -> DataError:
    """The error for a method that needs the rest recording on a dataset that marks no rest class."""
    names = ", ".join(trials.classes) or "unnamed"
    return DataError(trials.name or "trials",
                     f"{method} under regime {regime} needs the test user's rest recording, but no class "
                     f"name of {trials.name or 'the trials'} marks rest (classes: {names}); name the rest "
                     "class with `aemg evaluate --rest-class NAME` (evaluate(..., rest_class=NAME)) or use "
                     "regime none")


@dataclass
class Fold:
    """One train/test split.

    Attributes
    ----------
    protocol : str
        ``"loso"``, ``"fewshot"`` or ``"intra"``.
    subject : str
        The test subject.
    train, test : np.ndarray of int64
        Trial indices into the TrialSet (disjoint; the test user's rest recordings are in neither).
    seed : int
        Seed for the fold's random draws and for the method trained on it.
    share : float or None
        Few-shot: the requested share of the test subject's trials used for training.
    actual_share : float or None
        Few-shot: the share actually drawn (rounding per class), of the user's trials other than
        its rest recordings.
    repetition : int or None
        Intra-subject: the held-out repetition.
    notes : list of str
        Problems found (e.g. classes of the test set absent from training).
    regime : str
        The adaptation regime (:data:`REGIMES`; ``"intra"`` for the intra protocol).
    rest : np.ndarray of int64
        The test user's designated rest recordings (given by the regimes in :data:`GIVES_REST`).
    train_rest : np.ndarray of int64
        The designated rest recordings among ``train`` (training subjects'; intra: the user's).
    """

    protocol: str
    subject: str
    train: np.ndarray
    test: np.ndarray
    seed: int = 0
    share: float | None = None
    actual_share: float | None = None
    repetition: int | None = None
    notes: list = field(default_factory=list)
    regime: str = ""
    rest: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    train_rest: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def __post_init__(self):
        self.regime = self.regime or {"loso": "none"}.get(self.protocol, self.protocol)

    @property
    def name(self) -> str:
        extra = (f"share={self.share:g}" if self.share is not None else
                 f"rep={self.repetition}" if self.repetition is not None else "")
        return f"{self.regime}[{self.subject}{', ' + extra if extra else ''}, seed={self.seed}]"


def _check_subjects(trials: TrialSet, subjects: Sequence[str] | None) -> list[str]:
    all_subjects = trials.subject_ids()
    if len(all_subjects) < 2:
        raise DataError(trials.name or "trials", f"LOSO needs at least 2 subjects, found "
                        f"{len(all_subjects)} ({', '.join(all_subjects) or 'none'})")
    if subjects is None:
        return all_subjects
    subjects = [str(s) for s in subjects]
    unknown = [s for s in subjects if s not in all_subjects]
    if unknown:
        raise DataError("subjects", f"not in {trials.name or 'the trials'}: {', '.join(unknown)}")
    return subjects


def _class_notes(trials: TrialSet, fold: Fold) -> Fold:
    """Record classes that the test set has but training lacks (they cannot be predicted)."""
    train_classes = set(trials.labels[fold.train].tolist())
    missing = sorted(set(trials.labels[fold.test].tolist()) - train_classes)
    if missing:
        names = [trials.classes[c] if c < len(trials.classes) else str(c) for c in missing]
        fold.notes.append(f"classes {', '.join(names)} of the test trials are absent from training "
                          "(counted as errors)")
    return fold


def _designated(trials: TrialSet, rest_class) -> np.ndarray:
    return rest_recordings(trials, rest_class_id(trials, rest_class))


def loso_folds(trials: TrialSet, subjects: Sequence[str] | None = None, seed: int = 0,
               regime: str = "none", rest_class: str | int | None = None) -> list[Fold]:
    """Leave-one-subject-out folds under one LOSO regime (the splits are the same for all of them).

    Parameters
    ----------
    trials : TrialSet
    subjects : sequence of str or None
        Test subjects (default: every subject). Training always uses all other subjects.
    seed : int
        Seed stored in the folds (for the methods).
    regime : str
        One of :data:`LOSO_REGIMES`, stored in the folds.
    rest_class : str, int or None
        The rest class (see :func:`rest_class_id`); the test user's rest recordings are kept out of
        its test set.

    Raises
    ------
    DataError
        Fewer than 2 subjects, or an unknown test subject.
    """
    if regime not in LOSO_REGIMES:
        raise ConfigError(f"unknown LOSO regime {regime!r}; choose from {', '.join(LOSO_REGIMES)}")
    rest = _designated(trials, rest_class)
    out = []
    for s in _check_subjects(trials, subjects):
        own = trials.subjects == s
        test = np.setdiff1d(np.flatnonzero(own), rest)
        train = np.flatnonzero(~own)
        fold = Fold("loso", s, train, test, seed, regime=regime, rest=rest[own[rest]],
                    train_rest=rest[~own[rest]])
        out.append(_class_notes(trials, fold))
    return out


def min_fewshot_share(trials: TrialSet, subject: str, rest_class: str | int | None = None) -> float:
    """The smallest share that gives every class of ``subject`` at least one training trial and
    leaves at least one test trial of that class: ``0.5 / min_c n_c`` rounded up (per-class counts
    of the subject's trials other than its rest recordings, rounded to nearest)."""
    own = np.setdiff1d(np.flatnonzero(trials.subjects == subject), _designated(trials, rest_class))
    counts = np.bincount(trials.labels[own])
    counts = counts[counts > 1]  # a class with one trial is only tested (see fewshot_folds)
    return 0.5 / counts.min() if counts.size else math.inf


def fewshot_folds(trials: TrialSet, share: float, seeds: Sequence[int] = (0,),
                  subjects: Sequence[str] | None = None, too_small: str = "error",
                  rest_class: str | int | None = None) -> list[Fold]:
    """LOSO plus a stratified share of the test subject's labelled trials in training.

    For each test subject, class ``c`` with ``n_c`` trials (rest recordings excluded) contributes
    ``k_c = round(share * n_c)`` randomly drawn trials (seeded by ``seed`` and the subject) to
    training, and the rest to the test set; ``k_c`` is capped at ``n_c - 1`` so that every class
    stays tested; a class with a single such trial is only tested.

    Parameters
    ----------
    trials : TrialSet
    share : float
        Share of the target subject's trials, in (0, 1).
    seeds : sequence of int
        One fold per subject and seed.
    subjects : sequence of str or None
        Test subjects (default all).
    too_small : {"error", "one"}
        What to do when ``share`` gives some class no trial: raise a ConfigError naming the
        smallest usable share, or take one trial of that class (``actual_share`` records it).
    rest_class : str, int or None
        The rest class (see :func:`rest_class_id`).

    Raises
    ------
    ConfigError
        ``share`` outside (0, 1), or too small for a class (with ``too_small="error"``).
    DataError
        Fewer than 2 subjects.
    """
    if not (0 < share < 1):
        raise ConfigError(f"few-shot share must be in (0, 1), got {share!r}")
    if too_small not in ("error", "one"):
        raise ConfigError(f"too_small must be 'error' or 'one', got {too_small!r}")
    rest = _designated(trials, rest_class)
    out = []
    subject_list = _check_subjects(trials, subjects)
    for s in subject_list:
        mine = trials.subjects == s
        own = np.setdiff1d(np.flatnonzero(mine), rest)
        others = np.flatnonzero(~mine)
        labels = trials.labels[own]
        classes, counts = np.unique(labels, return_counts=True)
        k = np.minimum(np.floor(share * counts + 0.5 + 1e-9).astype(int), counts - 1)
        k[counts == 1] = 0  # a single trial (e.g. rest beside the rest recording): tested, never drawn
        if (k[counts > 1] < 1).any():
            if too_small == "error":
                worst = int(np.argmin(np.where(counts > 1, k, np.iinfo(int).max)))
                raise ConfigError(
                    f"few-shot share {share:g} gives subject {s} fewer than one training trial of "
                    f"class {int(classes[worst])} ({counts[worst]} trials); the "
                    f"smallest usable share for this subject is "
                    f"{min_fewshot_share(trials, s, rest_class):.3g} (or allow one trial per class)")
            k = np.where(counts > 1, np.maximum(k, 1), 0)
        for seed in seeds:
            rng = np.random.default_rng([int(seed), _subject_hash(s)])
            picked = []
            for c, kc in zip(classes, k):
                members = own[labels == c]
                if kc < 1:
                    continue
                picked.append(rng.choice(members, size=int(kc), replace=False))
            adapt = np.sort(np.concatenate(picked)) if picked else np.empty(0, dtype=np.int64)
            test = np.setdiff1d(own, adapt)
            fold = Fold("fewshot", s, np.concatenate([others, adapt]), test, int(seed), float(share),
                        len(adapt) / len(own), regime="fewshot", rest=rest[mine[rest]],
                        train_rest=rest[~mine[rest]])
            out.append(_class_notes(trials, fold))
    return out


def intra_folds(trials: TrialSet, subjects: Sequence[str] | None = None, seed: int = 0,
                rest_class: str | int | None = None) -> list[Fold]:
    """Intra-subject reference: per subject, leave one repetition out (train on the subject's other
    repetitions only; its rest recordings are given as in the ``rest`` regime and never tested).

    Raises
    ------
    DataError
        A subject with a single repetition (nothing to train on).
    """
    all_subjects = trials.subject_ids()
    subjects = all_subjects if subjects is None else [str(s) for s in subjects]
    rest = _designated(trials, rest_class)
    out = []
    for s in subjects:
        mine = trials.subjects == s
        own = np.flatnonzero(mine)
        if own.size == 0:
            raise DataError("subjects", f"subject {s} has no trials")
        reps = np.unique(trials.repetitions[own])
        if reps.size < 2:
            raise DataError(trials.name or "trials", f"intra-subject folds need at least 2 repetitions; "
                            f"subject {s} has {reps.size}")
        mine_rest = rest[mine[rest]]
        for r in reps:
            test = np.setdiff1d(own[trials.repetitions[own] == r], mine_rest)
            train = own[trials.repetitions[own] != r]
            if not len(test):
                continue
            fold = Fold("intra", s, train, test, seed, repetition=int(r), regime="intra", rest=mine_rest,
                        train_rest=np.intersect1d(train, mine_rest))
            out.append(_class_notes(trials, fold))
    return out


def make_folds(trials: TrialSet, protocol: str, seeds: Sequence[int] = (0,), shares=DEFAULT_SHARES,
               subjects: Sequence[str] | None = None, too_small: str = "error",
               rest_class: str | int | None = None) -> Iterator[Fold]:
    """All folds of one protocol or regime (LOSO regimes and intra once per seed; few-shot per share
    and seed); ``"loso"`` = regime ``none``."""
    if protocol in LOSO_REGIMES or protocol == "loso":
        for seed in seeds:
            yield from loso_folds(trials, subjects, seed, {"loso": "none"}.get(protocol, protocol),
                                  rest_class)
    elif protocol == "intra":
        for seed in seeds:
            yield from intra_folds(trials, subjects, seed, rest_class)
    elif protocol == "fewshot":
        for share in shares:
            yield from fewshot_folds(trials, share, seeds, subjects, too_small, rest_class)
    else:
        raise ConfigError(f"unknown protocol or regime {protocol!r}; choose from "
                          f"{', '.join(dict.fromkeys(PROTOCOLS + REGIMES))}")


def _subject_hash(subject: str) -> int:
    """A stable (process-independent) integer for a subject id, to seed its draws."""
    return zlib.crc32(subject.encode())
