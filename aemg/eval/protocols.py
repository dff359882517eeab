"""Evaluation protocols: folds over trials (one trial = one label), all seeded and reproducible.

- **LOSO**: for each subject, train on every other subject and test on all of that subject's trials.
- **Few-shot**: LOSO plus a stratified share of the test subject's labelled trials in training
  (per class ``round(share * n_class)`` trials, drawn with the fold's seed); tested on the rest of
  that subject's trials.
- **Intra-subject** (upper reference): within one subject, leave one repetition out.

Folds carry indices into a :class:`~aemg.eval.trials.TrialSet` only; nothing of the test trials
(not even normalisation statistics) is used by a method unless it is declared transductive.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from .trials import TrialSet

PROTOCOLS = ("loso", "fewshot", "intra")
DEFAULT_SHARES = (0.01, 0.05, 0.2, 0.4, 0.8)


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
        Trial indices into the TrialSet (disjoint).
    seed : int
        Seed for the fold's random draws and for the method trained on it.
    share : float or None
        Few-shot: the requested share of the test subject's trials used for training.
    actual_share : float or None
        Few-shot: the share actually drawn (rounding per class).
    repetition : int or None
        Intra-subject: the held-out repetition.
    notes : list of str
        Problems found (e.g. classes of the test set absent from training).
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

    @property
    def name(self) -> str:
        extra = (f"share={self.share:g}" if self.share is not None else
                 f"rep={self.repetition}" if self.repetition is not None else "")
        return f"{self.protocol}[{self.subject}{', ' + extra if extra else ''}, seed={self.seed}]"


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


def loso_folds(trials: TrialSet, subjects: Sequence[str] | None = None, seed: int = 0) -> list[Fold]:
    """Leave-one-subject-out folds.

    Parameters
    ----------
    trials : TrialSet
    subjects : sequence of str or None
        Test subjects (default: every subject). Training always uses all other subjects.
    seed : int
        Seed stored in the folds (for the methods).

    Raises
    ------
    DataError
        Fewer than 2 subjects, or an unknown test subject.
    """
    out = []
    for s in _check_subjects(trials, subjects):
        test = np.flatnonzero(trials.subjects == s)
        train = np.flatnonzero(trials.subjects != s)
        out.append(_class_notes(trials, Fold("loso", s, train, test, seed)))
    return out


def min_fewshot_share(trials: TrialSet, subject: str) -> float:
    """The smallest share that gives every class of ``subject`` at least one training trial and
    leaves at least one test trial of that class: ``0.5 / min_c n_c`` rounded up (per-class counts
    are rounded to nearest)."""
    counts = np.bincount(trials.labels[trials.subjects == subject])
    counts = counts[counts > 0]
    return 0.5 / counts.min() if counts.size else math.inf


def fewshot_folds(trials: TrialSet, share: float, seeds: Sequence[int] = (0,),
                  subjects: Sequence[str] | None = None, too_small: str = "error") -> list[Fold]:
    """LOSO plus a stratified share of the test subject's labelled trials in training.

    For each test subject, class ``c`` with ``n_c`` trials contributes ``k_c = round(share * n_c)``
    randomly drawn trials (seeded by ``seed`` and the subject) to training, and the rest to the
    test set; ``k_c`` is capped at ``n_c - 1`` so that every class stays tested.

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
    out = []
    subject_list = _check_subjects(trials, subjects)
    for s in subject_list:
        own = np.flatnonzero(trials.subjects == s)
        others = np.flatnonzero(trials.subjects != s)
        labels = trials.labels[own]
        classes, counts = np.unique(labels, return_counts=True)
        k = np.minimum(np.floor(share * counts + 0.5 + 1e-9).astype(int), counts - 1)
        if (k < 1).any():
            if too_small == "error":
                bad = int(classes[np.argmin(k)])
                raise ConfigError(
                    f"few-shot share {share:g} gives subject {s} fewer than one training trial of "
                    f"class {bad} ({counts[np.argmin(k)]} trials); the smallest usable share for this "
                    f"subject is {min_fewshot_share(trials, s):.3g} (or allow one trial per class)")
            k = np.maximum(k, 1)
        for seed in seeds:
            rng = np.random.default_rng([int(seed), _subject_hash(s)])
            picked = []
            for c, kc in zip(classes, k):
                members = own[labels == c]
                if kc >= len(members):  # a class with a single trial: nothing left to test it
                    continue
                picked.append(rng.choice(members, size=int(kc), replace=False))
            adapt = np.sort(np.concatenate(picked)) if picked else np.empty(0, dtype=np.int64)
            test = np.setdiff1d(own, adapt)
            fold = Fold("fewshot", s, np.concatenate([others, adapt]), test, int(seed), float(share),
                        len(adapt) / len(own))
            out.append(_class_notes(trials, fold))
    return out


def intra_folds(trials: TrialSet, subjects: Sequence[str] | None = None, seed: int = 0) -> list[Fold]:
    """Intra-subject reference: per subject, leave one repetition out (train on the subject's other
    repetitions only).

    Raises
    ------
    DataError
        A subject with a single repetition (nothing to train on).
    """
    all_subjects = trials.subject_ids()
    subjects = all_subjects if subjects is None else [str(s) for s in subjects]
    out = []
    for s in subjects:
        own = np.flatnonzero(trials.subjects == s)
        if own.size == 0:
            raise DataError("subjects", f"subject {s} has no trials")
        reps = np.unique(trials.repetitions[own])
        if reps.size < 2:
            raise DataError(trials.name or "trials", f"intra-subject folds need at least 2 repetitions; "
                            f"subject {s} has {reps.size}")
        for r in reps:
            test = own[trials.repetitions[own] == r]
            train = own[trials.repetitions[own] != r]
            out.append(_class_notes(trials, Fold("intra", s, train, test, seed, repetition=int(r))))
    return out


def make_folds(trials: TrialSet, protocol: str, seeds: Sequence[int] = (0,), shares=DEFAULT_SHARES,
               subjects: Sequence[str] | None = None, too_small: str = "error") -> Iterator[Fold]:
    """All folds of one protocol (LOSO and intra once per seed; few-shot per share and seed)."""
    if protocol == "loso":
        for seed in seeds:
            yield from loso_folds(trials, subjects, seed)
    elif protocol == "intra":
        for seed in seeds:
            yield from intra_folds(trials, subjects, seed)
    elif protocol == "fewshot":
        for share in shares:
            yield from fewshot_folds(trials, share, seeds, subjects, too_small)
    else:
        raise ConfigError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")


def _subject_hash(subject: str) -> int:
    """A stable (process-independent) integer for a subject id, to seed its draws."""
    return zlib.crc32(subject.encode())
