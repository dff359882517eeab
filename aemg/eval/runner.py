"""Run methods over the folds of adaptation regimes and protocols; collect per-fold, per-subject
and summary results.

Each method is scored under every requested regime it supports (``Method.regimes``). A requested
regime richer than everything the method uses (see :data:`~aemg.eval.protocols.POORER`) would
give the same numbers as the richest poorer regime it supports: the method is run (once) under that
one instead, and the report shows those numbers in the richer regime's column, marked. The
protocol ``loso`` runs each method under its native regime (:attr:`Method.native_regime`).

A fold reaches a method only as the training trials, the test trials with labels hidden and one
:class:`~aemg.eval.protocols.Adaptation` (:func:`fold_adaptation`): never the whole trial set.
Under a grouping by session (:class:`~aemg.eval.protocols.Grouping`) the methods see the trials
through :func:`~aemg.eval.protocols.user_view`: each (subject, session) is its own user, the test
group is "the test user".
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import ConfigError, DataError
from .baselines import Method, Prediction, get_method
from .journal import confusion_pairs, fold_key
from .protocols import (
    BY_SUBJECT,
    DEFAULT_SHARES,
    GIVES_REST,
    POORER,
    PROTOCOLS,
    REGIMES,
    Adaptation,
    Fold,
    Grouping,
    make_folds,
    min_fewshot_share,
    no_rest_error,
    rest_class_id,
    test_groups,
    user_view,
)
from .trials import TrialSet

log = logging.getLogger(__name__)


def regime_of(row: dict) -> str:
    """The regime of a result row (rows written before regimes existed: from the protocol)."""
    return row.get("regime") or {"loso": "none"}.get(row["protocol"], row["protocol"])


@dataclass
class Results:
    """Everything an evaluation produced.

    Attributes
    ----------
    folds : list of dict
        One row per (method, fold): method, protocol, regime, share, seed, subject, repetition,
        n_train, n_test, correct_trials, trial_acc, correct_windows, n_windows, window_acc, seconds,
        notes.
    confusion : dict
        ``(method, regime, share) -> (K, K) int64`` counts (rows true, columns predicted) summed
        over folds and seeds.
    classes : tuple of str
    dataset : str
    notes : list of str
        Run-level notes (e.g. skipped few-shot shares, regimes a method does not support).
    config : dict
        The run's settings; ``config["method_regimes"]``: method -> the regimes it supports.
    """

    folds: list = field(default_factory=list)
    confusion: dict = field(default_factory=dict)
    classes: tuple = ()
    dataset: str = ""
    notes: list = field(default_factory=list)
    config: dict = field(default_factory=dict)

    def per_subject(self) -> list[dict]:
        """Accuracy per (method, regime, share, subject): trials pooled over the subject's folds
        of one seed, then averaged over seeds."""
        pooled: dict = {}
        protocol = {}
        for r in self.folds:
            k = (r["method"], regime_of(r), r["share"], r["subject"], r["seed"])
            protocol[k[:2]] = r["protocol"]
            acc = pooled.setdefault(k, [0, 0, 0, 0])
            acc[0] += r["correct_trials"]
            acc[1] += r["n_test"]
            acc[2] += r["correct_windows"]
            acc[3] += r["n_windows"]
        grouped: dict = {}
        for (m, g, s, subj, seed), (ct, nt, cw, nw) in pooled.items():
            acc = grouped.setdefault((m, g, s, subj), ([], []))
            acc[0].append(ct / nt if nt else np.nan)
            acc[1].append(cw / nw if nw else np.nan)
        return [{"method": m, "protocol": protocol[(m, g)], "regime": g, "share": s, "subject": subj,
                 "trial_acc": float(np.mean(t)), "window_acc": float(np.mean(w)) if not
                 np.all(np.isnan(w)) else None, "seeds": len(t)}
                for (m, g, s, subj), (t, w) in grouped.items()]

    def summary(self) -> list[dict]:
        """Mean and std over subjects per (method, regime, share)."""
        grouped: dict = {}
        for r in self.per_subject():
            grouped.setdefault((r["method"], r["regime"], r["share"]), []).append(r)
        out = []
        for (m, g, s), rows in grouped.items():
            t = np.array([r["trial_acc"] for r in rows])
            w = np.array([r["window_acc"] for r in rows if r["window_acc"] is not None])
            out.append({"method": m, "protocol": rows[0]["protocol"], "regime": g, "share": s,
                        "subjects": len(rows), "trial_mean": float(t.mean()), "trial_std": float(t.std()),
                        "window_mean": float(w.mean()) if w.size else None,
                        "window_std": float(w.std()) if w.size else None})
        return out


def fold_adaptation(trials: TrialSet, fold: Fold, rest_id: int | None = None) -> Adaptation:
    """What ``fold.regime`` shows of the test user (see :mod:`aemg.eval.protocols`): its rest
    recordings (labels hidden) under the regimes in :data:`GIVES_REST`, all its test trials (labels
    hidden) under ``unlabelled``; ``online`` adds the earlier trials per trial (predict_online).
    The trial sets are those of :func:`user_view` of ``fold.group_by``."""
    trials = user_view(trials, fold.group_by)
    rest = (trials.subset(fold.rest).without_labels() if fold.regime in GIVES_REST and len(fold.rest)
            else None)
    unlabelled = trials.subset(fold.test).without_labels() if fold.regime == "unlabelled" else None
    return Adaptation(fold.regime, fold.subject, rest, unlabelled,
                      np.flatnonzero(np.isin(fold.train, fold.train_rest)), rest_id)


def run_fold(trials: TrialSet, method: Method, fold: Fold, rest_id: int | None = None) -> Prediction:
    """Fit ``method`` on the fold's training trials and predict its test trials (labels hidden) with
    the regime's :class:`Adaptation` only; ``online``: :meth:`Method.predict_online`, test trials in
    recording order. The method sees the trials through :func:`user_view` of ``fold.group_by``."""
    adaptation = fold_adaptation(trials, fold, rest_id)
    trials = user_view(trials, fold.group_by)
    method.fit(trials.subset(fold.train), seed=fold.seed, adaptation=adaptation)
    test = trials.subset(fold.test).without_labels()
    if fold.regime == "online":
        return method.predict_online(test, adaptation)
    return method.predict(test, adaptation)


def plan_regimes(method: Method, name: str, requested: Sequence[str], notes: list) -> list[str]:
    """The regimes to run ``method`` under for the requested regimes / protocols (see the module
    docstring); what is not run is noted."""
    out, unsupported, repeated = [], [], {}
    for want in requested:
        if want == "loso":
            got = method.native_regime
            if got is None:
                notes.append(f"{name} has no LOSO regime (supports {', '.join(method.regimes)})")
                continue
        elif want == "intra" or want in method.regimes:
            got = want
        else:
            poorer = [p for p in POORER[want] if p in method.regimes]
            if not poorer:
                unsupported.append(want)
                continue
            got = poorer[0]
            repeated.setdefault(got, []).append(want)
        if got not in out:
            out.append(got)
    for got, richer in repeated.items():
        notes.append(f"{name} uses nothing of regime{'s' * (len(richer) > 1)} "
                     f"{', '.join(richer)} beyond {got}: those columns repeat its "
                     f"{got} numbers (in parentheses)")
    if unsupported:
        notes.append(f"{name} cannot run under regime{'s' * (len(unsupported) > 1)} {', '.join(unsupported)} "
                     f"(supports {', '.join(method.regimes)})")
    return out


def evaluate(trials: TrialSet, methods: Sequence[str], protocols: Sequence[str] = ("loso",),
             seeds: Sequence[int] = (0,), shares: Sequence[float] = DEFAULT_SHARES,
             subjects: Sequence[str] | None = None, too_small: str = "skip",
             method_options: dict | None = None, regimes: Sequence[str] = (),
             rest_class: str | int | None = None, grouping: Grouping = BY_SUBJECT,
             journal=None, progress: bool = False) -> Results:
    """Evaluate every method under every requested regime it supports.

    Parameters
    ----------
    trials : TrialSet
    methods : sequence of str
        Registered method names (:func:`aemg.eval.baselines.list_methods`).
    protocols : sequence of {"loso", "fewshot", "intra"}
        ``loso``: each method's native LOSO regime; ``fewshot`` = regime fewshot; ``intra``: the
        within-subject reference.
    seeds : sequence of int
        Seeds (few-shot draws and method initialisation).
    shares : sequence of float
        Few-shot shares of the test subject's trials.
    subjects : sequence of str or None
        Test subjects (default all); under a grouping by session, test groups ``"subject/session"``.
    too_small : {"skip", "error", "one"}
        A few-shot share that gives some class no training trial: skip it (noted in the results),
        raise a ConfigError, or take one trial per class.
    method_options : dict or None
        ``{method: {option: value}}`` passed to the method factories.
    regimes : sequence of str
        Adaptation regimes (:data:`~aemg.eval.protocols.REGIMES`), in addition to ``protocols``.
    rest_class : str, int or None
        The rest class (name or id); default: the first class whose name marks rest.
    grouping : Grouping
        What a fold holds out as the test user (default: leave one subject out); the ``subject``
        column of the results then holds the test groups. ``intra`` ignores it.
    journal : FoldJournal or None
        Finished folds are read from it instead of being recomputed, and every newly finished fold
        is recorded in it (:mod:`aemg.eval.journal`: an interrupted evaluation resumes).
    progress : bool
        A progress bar over the folds (stderr).

    Raises
    ------
    DataError
        A method that needs the rest recording under a regime that gives it, on a dataset without a
        rest class (or a test user without any rest trial).
    """
    method_options = method_options or {}
    bad = [p for p in protocols if p not in PROTOCOLS] + [r for r in regimes if r not in REGIMES]
    if bad:
        raise ConfigError(f"unknown protocol or regime {', '.join(map(repr, bad))}; protocols: "
                          f"{', '.join(PROTOCOLS)}; regimes: {', '.join(REGIMES)}")
    requested = list(dict.fromkeys(list(protocols) + list(regimes)))
    rest_id = rest_class_id(trials, rest_class)
    res = Results(classes=tuple(trials.classes), dataset=trials.name,
                  config={"methods": list(methods), "protocols": list(protocols), "regimes": list(regimes),
                          "seeds": list(seeds), "shares": list(shares),
                          "subjects": list(subjects) if subjects else None, "too_small": too_small,
                          "rate": trials.rate, "n_trials": len(trials),
                          "rest_class": None if rest_id is None else
                          (trials.classes[rest_id] if rest_id < len(trials.classes) else rest_id),
                          "grouping": grouping.to_dict(), "method_regimes": {}})
    k = trials.n_classes
    plans = {}
    for name in methods:
        method = get_method(name, **method_options.get(name, {}))
        res.config["method_regimes"][name] = list(method.regimes)
        plans[name] = plan_regimes(method, name, requested, res.notes)
        if (rest_id is None and method.needs_rest and method.rest_optional and "loso" in requested
                and "rest" not in regimes and "rest" in plans[name]):
            # LOSO's regime for it is rest, which this dataset cannot give; without a rest class
            # its calibration is every trial's own (robust): it reads nothing of the user, i.e. none
            plans[name] = list(dict.fromkeys("none" if r == "rest" else r for r in plans[name]))
            res.notes.append(f"{name}: LOSO runs it under regime none, because no class of "
                             f"{trials.name or 'the trials'} marks rest (regime rest needs one: "
                             "`--rest-class NAME`)")
        for regime in plans[name]:
            if method.needs_rest and regime in GIVES_REST and rest_id is None:
                if not _robust_without_rest(method, regime, rest_id):
                    raise no_rest_error(trials, regime, name)
                res.notes.append(f"{name} under regime {regime}: no class of {trials.name or 'the trials'} "
                                 "marks rest, so every trial's noise level comes from its own robust "
                                 "statistics (training users too); `--rest-class NAME` names one")
    folds_of: dict[str, list[Fold]] = {}
    for regime in dict.fromkeys(r for p in plans.values() for r in p):
        usable = list(shares)
        if regime == "fewshot" and too_small != "error":
            need = {g: min_fewshot_share(trials, g, rest_id, grouping)
                    for g in test_groups(trials, grouping, subjects)}
            blocked = [g for g, v in need.items() if v == float("inf")]
            if blocked:  # one trial per class (e.g. per day): nothing to draw under any share
                res.notes.append(f"regime fewshot skipped: no class of test group{'s' * (len(blocked) > 1)} "
                                 f"{', '.join(blocked[:5])}{' ...' if len(blocked) > 5 else ''} has two "
                                 "trials (rest recording excluded), so none can be drawn and tested")
                folds_of[regime] = []
                continue
        if regime == "fewshot" and too_small == "skip":
            worst = max(need.values())
            usable = [s for s in shares if s >= worst - 1e-9]
            for s in sorted(set(shares) - set(usable)):
                res.notes.append(f"few-shot share {s:g} skipped: fewer than one trial per class for some "
                                 f"{'subject' if grouping.by == 'subject' else 'group'} (smallest usable "
                                 f"share: {worst:.3g})")
        folds_of[regime] = list(make_folds(trials, regime, seeds, usable, subjects,
                                           "error" if too_small == "skip" else too_small, rest_id, grouping))
        for note in sorted({n for f in folds_of[regime] for n in f.notes}):
            res.notes.append(f"{regime}: {note}")
    work = [(name, fold) for name in methods for regime in plans[name] for fold in folds_of[regime]]
    from .._progress import logging_redirect, progress_bar
    bar = progress_bar(progress and bool(work), total=len(work), desc="evaluate", unit="fold")
    reused = 0
    with logging_redirect(bar):
        for name, fold in work:
            options = method_options.get(name, {})
            key = fold_key(name, options, fold) if journal is not None else None
            hit = journal.get(key) if journal is not None else None
            if hit is None:
                row, pairs = _run_fold(trials, name, fold, options, rest_id)
                if journal is not None:
                    journal.add(key, row, pairs)
                log.info("%s %s: trial acc %.3f (%d test trials, %.1f s)", name, fold.name,
                         row["trial_acc"], row["n_test"], row["seconds"])
            else:
                (row, pairs), reused = hit, reused + 1
            conf = res.confusion.setdefault((name, fold.regime, fold.share),
                                            np.zeros((k, k), dtype=np.int64))
            np.add.at(conf, (pairs[:, 0], pairs[:, 1]), pairs[:, 2])
            res.folds.append(row)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    res.notes.extend(choice_notes(res.folds))
    if reused:
        res.notes.append(f"{reused} of {len(work)} folds read back from the fold journal "
                         f"({journal.path})")
    return res


def choice_notes(rows: Sequence[dict]) -> list[str]:
    """One note per (method, regime) whose folds recorded an inner choice (:meth:`Method.fit_choice`):
    how many folds took each decision, most frequent first."""
    counts: dict = {}
    for r in rows:
        decision = (r.get("choice") or {}).get("decision")
        if decision is not None:
            per = counts.setdefault((r["method"], r["regime"]), {})
            per[decision] = per.get(decision, 0) + 1
    return [f"{m} under {regime}: inner choice per fold by the training users: " + ", ".join(
                f"{d} in {k} fold{'s' * (k > 1)}" for d, k in sorted(per.items(), key=lambda kv: -kv[1]))
            for (m, regime), per in counts.items()]


def _robust_without_rest(method: Method, regime: str, rest_id: int | None) -> bool:
    """Whether ``method`` runs under ``regime`` from every trial's robust statistics because the
    dataset marks no rest class (``method.rest_optional``; never under regime ``rest``)."""
    return rest_id is None and method.rest_optional and regime != "rest"


def _run_fold(trials: TrialSet, name: str, fold: Fold, options: dict,
              rest_id: int | None) -> tuple[dict, np.ndarray]:
    """The result row of ``name`` on ``fold`` and its confusion pairs ((m, 3) true, predicted,
    count)."""
    start = time.perf_counter()
    method = get_method(name, **options)
    if (method.needs_rest and fold.regime in GIVES_REST and not len(fold.rest)
            and not _robust_without_rest(method, fold.regime, rest_id)):
        raise DataError(trials.name or "trials", f"{name} under regime {fold.regime} needs the rest "
                        f"recording of {'subject' if fold.group_by == 'subject' else 'group'} "
                        f"{fold.subject}, which has no trial of the rest class")
    pred = run_fold(trials, method, fold, rest_id)
    true = trials.labels[fold.test]
    row = {"method": name, "protocol": fold.protocol, "regime": fold.regime, "share": fold.share,
           "actual_share": fold.actual_share, "seed": fold.seed, "subject": fold.subject,
           "repetition": fold.repetition, "n_train": int(len(fold.train)), "n_test": int(len(fold.test)),
           "correct_trials": int((pred.trial == true).sum()),
           "trial_acc": float((pred.trial == true).mean()) if len(true) else float("nan"),
           "correct_windows": 0, "n_windows": 0, "window_acc": None,
           "seconds": time.perf_counter() - start, "notes": "; ".join(fold.notes),
           "choice": method.fit_choice()}
    if pred.window is not None:
        wtrue = true[pred.window_trial]
        row.update(correct_windows=int((pred.window == wtrue).sum()), n_windows=int(len(wtrue)),
                   window_acc=float((pred.window == wtrue).mean()) if len(wtrue) else None)
    return row, confusion_pairs(true, pred.trial)
