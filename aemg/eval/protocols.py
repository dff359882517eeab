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

``none``, ``rest``, ``online`` and ``unlabelled`` are leave-one-group-out (protocol ``loso``);
each gives strictly more than the previous one (:data:`POORER`).

**Groups** (:class:`Grouping`) say who "the test user" of a fold is. ``by="subject"`` (default):
leave one subject out, the classic LOSO. ``by="session"``: leave one (subject, session) out -- one
donning of one user, e.g. one day of a multi-day set (group id ``"subject/session"``); training is
every other group, or only the test subject's other sessions (``within_subject``), or only the
sessions named in ``train_sessions`` (then only the other sessions are tested: train before an
electrode shift, test after it). Every regime keeps its meaning with the group as the test user:
the rest recording, the online / unlabelled trials and the few-shot share come from the test group
only, and the methods see each group as its own user (:func:`user_view`: per-user statistics of a
training group come from that group, those of the test group from what its regime shows).

``intra`` stays as the within-subject reference protocol (leave one repetition out; the user's
rest recording is given and kept out of the test sets), whatever the grouping.

Folds carry indices into a :class:`~aemg.eval.trials.TrialSet` only. The runner turns a fold into
the training trials, the test trials (labels hidden) and one :class:`Adaptation` holding exactly
what the regime allows; a method never sees the whole trial set.
"""
from __future__ import annotations

import fnmatch
import math
import zlib
from dataclasses import dataclass, field, replace
from typing import Iterator, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from .trials import TrialSet

PROTOCOLS = ("loso", "fewshot", "intra")
#: what a fold holds out (:class:`Grouping`)
GROUPINGS = ("subject", "session")
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
class Grouping:
    """What a fold holds out as "the test user" (see the module docstring).

    Attributes
    ----------
    by : {"subject", "session"}
        ``"subject"``: one subject (all its sessions); ``"session"``: one (subject, session), id
        ``"subject/session"``.
    within_subject : bool
        ``by="session"`` only: train on the test subject's other sessions only (else on every other
        group, other subjects included).
    train_sessions : tuple of str or None
        ``by="session"`` only: train on the groups of these sessions only, and test only the groups
        of the other sessions (e.g. ``("training",)``: before an electrode shift).
    """

    by: str = "subject"
    within_subject: bool = False
    train_sessions: tuple | None = None

    def __post_init__(self):
        if self.by not in GROUPINGS:
            raise ConfigError(f"group by {self.by!r}: choose from {', '.join(GROUPINGS)}")
        if self.by == "subject" and (self.within_subject or self.train_sessions):
            raise ConfigError("within-subject training and training sessions need grouping by session "
                              "(`aemg evaluate --group-by session`)")
        if self.train_sessions is not None:
            object.__setattr__(self, "train_sessions", tuple(str(s) for s in self.train_sessions))
            if not self.train_sessions:
                raise ConfigError("training sessions: none given")

    def ids(self, trials: TrialSet) -> np.ndarray:
        """(n,) str: the group of every trial (its subject, or ``"subject/session"``)."""
        if self.by == "subject":
            return trials.subjects
        return np.char.add(np.char.add(trials.subjects.astype(str), "/"), trials.sessions.astype(str))

    def describe(self) -> str:
        """A phrase for reports, e.g. ``leave one subject out``."""
        if self.by == "subject":
            return "leave one subject out"
        where = "the test subject's other sessions" if self.within_subject else "every other group"
        if self.train_sessions:
            where = (f"sessions {', '.join(self.train_sessions)}"
                     + (" of the test subject" if self.within_subject else ""))
        return f"leave one (subject, session) out; training: {where}"

    def to_dict(self) -> dict:
        return {"by": self.by, "within_subject": self.within_subject,
                "train_sessions": list(self.train_sessions) if self.train_sessions else None}


#: the default grouping: leave one subject out
BY_SUBJECT = Grouping()


def user_view(trials: TrialSet, by: str = "subject") -> TrialSet:
    """``trials`` as the methods see them under grouping ``by``: ``"subject"`` as they are;
    ``"session"``: every (subject, session) its own user (``subjects`` = ``"subject/session"``;
    same samples, labels and cache), so per-user statistics never mix a user's sessions."""
    if by == "subject":
        return trials
    out = trials.subset(np.arange(len(trials)))
    out.subjects = Grouping(by).ids(trials)
    return out


@dataclass(frozen=True)
class Adaptation:
    """What a method may see of the test user under a regime, besides the trials it classifies.

    Attributes
    ----------
    regime : str
        One of :data:`REGIMES` or ``"intra"``.
    subject : str or None
        The test user (None: no fold context, e.g. a direct call; every subject then counts as a
        training subject): the test group's id, as in the methods' trials (:func:`user_view`).
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
        The test subject, or under ``group_by="session"`` the test group (``"subject/session"``).
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
    group_by : str
        What the fold holds out (:attr:`Grouping.by`); the methods see the trials through
        :func:`user_view` of it.
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
    group_by: str = "subject"

    def __post_init__(self):
        self.regime = self.regime or {"loso": "none"}.get(self.protocol, self.protocol)

    @property
    def name(self) -> str:
        extra = (f"share={self.share:g}" if self.share is not None else
                 f"rep={self.repetition}" if self.repetition is not None else "")
        return f"{self.regime}[{self.subject}{', ' + extra if extra else ''}, seed={self.seed}]"


def test_groups(trials: TrialSet, grouping: Grouping = BY_SUBJECT,
                groups: Sequence[str] | None = None) -> list[str]:
    """The test groups of ``grouping`` in first-seen order (``groups``: only these, checked; a name
    with ``*``, ``?`` or ``[`` is a shell-style pattern standing for the groups it matches, e.g.
    ``shift-*``).

    Every group when ``grouping.train_sessions`` is None (leave one group out), else the groups of
    the other sessions.

    Raises
    ------
    DataError
        Fewer than 2 groups, an unknown group or training session, or no test group.
    """
    ids = grouping.ids(trials)
    everything = list(dict.fromkeys(ids.tolist()))
    if len(everything) < 2:
        hint = (" (one subject: group by session, `aemg evaluate --group-by session`)"
                if grouping.by == "subject" and len(set(trials.sessions.tolist())) > 1 else "")
        need = "LOSO needs at least 2 subjects" if grouping.by == "subject" else \
            "leaving one (subject, session) out needs at least 2 such groups"
        raise DataError(trials.name or "trials", f"{need}, found {len(everything)} "
                        f"({', '.join(everything) or 'none'}){hint}")
    candidates = everything
    if grouping.train_sessions:
        have = set(trials.sessions.tolist())
        unknown = [s for s in grouping.train_sessions if s not in have]
        if unknown:
            raise DataError("--train-sessions", f"not a session of {trials.name or 'the trials'}: "
                            f"{', '.join(unknown)} (sessions: {', '.join(sorted(have))})")
        session_of = dict(zip(ids.tolist(), trials.sessions.tolist()))
        candidates = [g for g in everything if session_of[g] not in grouping.train_sessions]
        if not candidates:
            raise DataError(trials.name or "trials", "every session is a training session "
                            f"({', '.join(grouping.train_sessions)}): nothing left to test")
    if groups is None:
        return candidates
    chosen = []
    for g in map(str, groups):  # a pattern (shell-style: shift-*) stands for the groups it matches
        hits = fnmatch.filter(candidates, g) if any(ch in g for ch in "*?[") else [g]
        chosen += [h for h in (hits or [g]) if h not in chosen]
    groups = chosen
    unknown = [g for g in groups if g not in candidates]
    if unknown:
        kind = "test subjects" if grouping.by == "subject" else "test groups (subject/session)"
        raise DataError("subjects", f"{kind} not in {trials.name or 'the trials'}"
                        f"{' (or training sessions)' if grouping.train_sessions else ''}: "
                        f"{', '.join(unknown)} (choose from {', '.join(candidates)})")
    return groups


def group_split(trials: TrialSet, group: str, grouping: Grouping = BY_SUBJECT,
                ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mine, usable) boolean masks (n,): the trials of test ``group``, and the trials training
    may use (the other groups, narrowed by ``within_subject`` / ``train_sessions``).

    Raises
    ------
    DataError
        Nothing to train on for ``group``.
    """
    ids = grouping.ids(trials) if ids is None else ids
    mine = ids == group
    usable = ~mine
    if grouping.within_subject:
        usable &= trials.subjects == trials.subjects[np.flatnonzero(mine)[0]]
    if grouping.train_sessions:
        usable &= np.isin(trials.sessions, list(grouping.train_sessions))
    if not usable.any():
        raise DataError(trials.name or "trials", f"test group {group}: no training trial under "
                        f"{grouping.describe()}")
    return mine, usable


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
               regime: str = "none", rest_class: str | int | None = None,
               grouping: Grouping = BY_SUBJECT) -> list[Fold]:
    """Leave-one-group-out folds under one LOSO regime (the splits are the same for all of them).

    Parameters
    ----------
    trials : TrialSet
    subjects : sequence of str or None
        Test groups (default: every group :func:`test_groups` gives): subjects, or under
        ``grouping.by="session"`` group ids ``"subject/session"``.
    seed : int
        Seed stored in the folds (for the methods).
    regime : str
        One of :data:`LOSO_REGIMES`, stored in the folds.
    rest_class : str, int or None
        The rest class (see :func:`rest_class_id`); the test user's rest recordings are kept out of
        its test set.
    grouping : Grouping
        What a fold holds out and what it trains on (default: leave one subject out, train on all
        other subjects).

    Raises
    ------
    DataError
        Fewer than 2 groups, an unknown test group, or a group with nothing to train on.
    """
    if regime not in LOSO_REGIMES:
        raise ConfigError(f"unknown LOSO regime {regime!r}; choose from {', '.join(LOSO_REGIMES)}")
    rest = _designated(trials, rest_class)
    ids = grouping.ids(trials)
    out = []
    for g in test_groups(trials, grouping, subjects):
        own, usable = group_split(trials, g, grouping, ids)
        test = np.setdiff1d(np.flatnonzero(own), rest)
        train = np.flatnonzero(usable)
        fold = Fold("loso", g, train, test, seed, regime=regime, rest=rest[own[rest]],
                    train_rest=rest[usable[rest]], group_by=grouping.by)
        out.append(_class_notes(trials, fold))
    return out


def min_fewshot_share(trials: TrialSet, subject: str, rest_class: str | int | None = None,
                      grouping: Grouping = BY_SUBJECT) -> float:
    """The smallest share that gives every class of ``subject`` (a test group of ``grouping``) at
    least one training trial and leaves at least one test trial of that class: ``0.5 / min_c n_c``
    rounded up (per-class counts of the group's trials other than its rest recordings, rounded to
    nearest); inf when no class has two such trials (nothing can be drawn)."""
    own = np.setdiff1d(np.flatnonzero(grouping.ids(trials) == subject), _designated(trials, rest_class))
    counts = np.bincount(trials.labels[own])
    counts = counts[counts > 1]  # a class with one trial is only tested (see fewshot_folds)
    return 0.5 / counts.min() if counts.size else math.inf


def fewshot_folds(trials: TrialSet, share: float, seeds: Sequence[int] = (0,),
                  subjects: Sequence[str] | None = None, too_small: str = "error",
                  rest_class: str | int | None = None, grouping: Grouping = BY_SUBJECT) -> list[Fold]:
    """Leave one group out plus a stratified share of the test group's labelled trials in training.

    For each test group (subject, or (subject, session) under ``grouping``), class ``c`` with
    ``n_c`` trials (rest recordings excluded) contributes ``k_c = round(share * n_c)`` randomly
    drawn trials (seeded by ``seed`` and the group id) to training, and the rest to the test set;
    ``k_c`` is capped at ``n_c - 1`` so that every class stays tested; a class with a single such
    trial is only tested.

    Parameters
    ----------
    trials : TrialSet
    share : float
        Share of the target group's trials, in (0, 1).
    seeds : sequence of int
        One fold per group and seed.
    subjects : sequence of str or None
        Test groups (default all; see :func:`loso_folds`).
    too_small : {"error", "one"}
        What to do when ``share`` gives some class no trial: raise a ConfigError naming the
        smallest usable share, or take one trial of that class (``actual_share`` records it).
    rest_class : str, int or None
        The rest class (see :func:`rest_class_id`).
    grouping : Grouping
        What a fold holds out and trains on (default: leave one subject out).

    Raises
    ------
    ConfigError
        ``share`` outside (0, 1), or too small for a class (with ``too_small="error"``).
    DataError
        Fewer than 2 groups, or a test group where no class has two trials (nothing to draw: e.g.
        one trial per class per day).
    """
    if not (0 < share < 1):
        raise ConfigError(f"few-shot share must be in (0, 1), got {share!r}")
    if too_small not in ("error", "one"):
        raise ConfigError(f"too_small must be 'error' or 'one', got {too_small!r}")
    rest = _designated(trials, rest_class)
    ids = grouping.ids(trials)
    out = []
    for s in test_groups(trials, grouping, subjects):
        mine, usable = group_split(trials, s, grouping, ids)
        own = np.setdiff1d(np.flatnonzero(mine), rest)
        others = np.flatnonzero(usable)
        labels = trials.labels[own]
        classes, counts = np.unique(labels, return_counts=True)
        if not (counts > 1).any():
            what = "subject" if grouping.by == "subject" else "group"
            raise DataError(trials.name or "trials", f"few-shot: no class of test {what} {s} has two "
                            "trials (rest recording excluded), so no labelled trial can be drawn and "
                            "tested beside it; use the regimes none / online / unlabelled")
        k = np.minimum(np.floor(share * counts + 0.5 + 1e-9).astype(int), counts - 1)
        k[counts == 1] = 0  # a single trial (e.g. rest beside the rest recording): tested, never drawn
        if (k[counts > 1] < 1).any():
            if too_small == "error":
                worst = int(np.argmin(np.where(counts > 1, k, np.iinfo(int).max)))
                raise ConfigError(
                    f"few-shot share {share:g} gives {'subject' if grouping.by == 'subject' else 'group'} "
                    f"{s} fewer than one training trial of "
                    f"class {int(classes[worst])} ({counts[worst]} trials); the "
                    f"smallest usable share for this {'subject' if grouping.by == 'subject' else 'group'} "
                    f"is {min_fewshot_share(trials, s, rest_class, grouping):.3g} (or allow one trial "
                    "per class)")
            k = np.where(counts > 1, np.maximum(k, 1), 0)
        for seed in seeds:
            adapt = _draw_per_class(own, labels, classes, k, seed, s)
            test = np.setdiff1d(own, adapt)
            fold = Fold("fewshot", s, np.concatenate([others, adapt]), test, int(seed), float(share),
                        len(adapt) / len(own), regime="fewshot", rest=rest[mine[rest]],
                        train_rest=rest[usable[rest]], group_by=grouping.by)
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
               rest_class: str | int | None = None, grouping: Grouping = BY_SUBJECT) -> Iterator[Fold]:
    """All folds of one protocol or regime (LOSO regimes and intra once per seed; few-shot per share
    and seed); ``"loso"`` = regime ``none``. ``grouping`` applies to the LOSO regimes and few-shot;
    ``intra`` is always within one subject (leave one repetition out), whatever the grouping."""
    if protocol in LOSO_REGIMES or protocol == "loso":
        for seed in seeds:
            yield from loso_folds(trials, subjects, seed, {"loso": "none"}.get(protocol, protocol),
                                  rest_class, grouping)
    elif protocol == "intra":
        for seed in seeds:
            yield from intra_folds(trials, subjects, seed, rest_class)
    elif protocol == "fewshot":
        for share in shares:
            yield from fewshot_folds(trials, share, seeds, subjects, too_small, rest_class, grouping)
    else:
        raise ConfigError(f"unknown protocol or regime {protocol!r}; choose from "
                          f"{', '.join(dict.fromkeys(PROTOCOLS + REGIMES))}")


def inner_folds(train: TrialSet, adaptation: Adaptation | None, n_users: int = 5,
                seed: int = 0) -> list[Fold]:
    """Folds *inside* one fold's training trials that replay its regime on training users: each of
    up to ``n_users`` training users (evenly spaced over the sorted ids; never the test user, whose
    few-shot share sits in ``train``) is held out in turn and trained against all other training
    trials, with what ``adaptation.regime`` shows of a test user -- its rest recordings (the
    designated ones, ``adaptation.train_rest``), its unlabelled or earlier trials, and under
    ``fewshot`` a labelled share of as many trials per class as the test user gave (at least one,
    at most all but one; seeded by ``seed`` and the user id). Indices are into ``train`` (already
    the methods' :func:`user_view`); fewer than 2 such users, or no regime (``adaptation`` None or
    ``intra``): no folds. Used by validation that may read the training users only (the fused
    methods' guard)."""
    if adaptation is None or adaptation.regime not in REGIMES:
        return []
    rest = np.asarray(adaptation.train_rest, dtype=np.int64)
    users = np.unique(train.subjects[train.subjects != adaptation.subject]) if len(train) else []
    if len(users) < 2:
        return []
    users = users[np.unique(np.linspace(0, len(users) - 1, min(n_users, len(users))).round().astype(int))]
    per_class = None
    if adaptation.regime == "fewshot":  # the test user's labelled trials per class
        mine = np.setdiff1d(np.flatnonzero(train.subjects == adaptation.subject), rest)
        counts = np.bincount(train.labels[mine], minlength=train.n_classes)
        per_class = np.where(counts > 0, counts, max(int(np.median(counts[counts > 0])), 1)
                             if (counts > 0).any() else 1)
    out = []
    for u in users.tolist():
        held = train.subjects == u
        own = np.setdiff1d(np.flatnonzero(held), rest)
        tr = np.flatnonzero(~held)
        if per_class is not None:
            labels = train.labels[own]
            classes, counts = np.unique(labels, return_counts=True)
            k = np.where(counts > 1, np.minimum(per_class[classes], counts - 1), 0)
            share = _draw_per_class(own, labels, classes, k, seed, u)
            own, tr = np.setdiff1d(own, share), np.concatenate([tr, share])
        if not len(own) or not len(tr):
            continue
        out.append(Fold("fewshot" if per_class is not None else "loso", u, tr, own, int(seed),
                        regime=adaptation.regime, rest=rest[held[rest]], train_rest=rest[~held[rest]]))
    return out if len(out) >= 2 else []


def _draw_per_class(own: np.ndarray, labels: np.ndarray, classes: np.ndarray, k: np.ndarray,
                    seed: int, group: str) -> np.ndarray:
    """A labelled share of one group's trials ``own`` (labels ``labels``): ``k[i]`` of class
    ``classes[i]`` drawn without replacement (none where ``k[i] < 1``), seeded by ``seed`` and the
    group id; sorted trial indices (int64)."""
    rng = np.random.default_rng([int(seed), _subject_hash(group)])
    picked = [rng.choice(own[labels == c], size=int(kc), replace=False)
              for c, kc in zip(classes, k) if kc >= 1]
    return np.sort(np.concatenate(picked)) if picked else np.empty(0, dtype=np.int64)


def _subject_hash(subject: str) -> int:
    """A stable (process-independent) integer for a subject (or group) id, to seed its draws."""
    return zlib.crc32(subject.encode())
