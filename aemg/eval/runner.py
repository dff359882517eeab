"""Run methods over protocol folds and collect per-fold, per-subject and summary results."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .baselines import get_method
from .protocols import DEFAULT_SHARES, Fold, make_folds, min_fewshot_share
from .trials import TrialSet

log = logging.getLogger(__name__)


@dataclass
class Results:
    """Everything an evaluation produced.

    Attributes
    ----------
    folds : list of dict
        One row per (method, fold): method, protocol, share, seed, subject, repetition, n_train,
        n_test, correct_trials, trial_acc, correct_windows, n_windows, window_acc, seconds, notes.
    confusion : dict
        ``(method, protocol, share) -> (K, K) int64`` counts (rows true, columns predicted) summed
        over folds and seeds.
    classes : tuple of str
    dataset : str
    notes : list of str
        Run-level notes (e.g. skipped few-shot shares).
    """

    folds: list = field(default_factory=list)
    confusion: dict = field(default_factory=dict)
    classes: tuple = ()
    dataset: str = ""
    notes: list = field(default_factory=list)
    config: dict = field(default_factory=dict)

    def per_subject(self) -> list[dict]:
        """Accuracy per (method, protocol, share, subject): trials pooled over the subject's folds
        of one seed, then averaged over seeds."""
        pooled: dict = {}
        for r in self.folds:
            k = (r["method"], r["protocol"], r["share"], r["subject"], r["seed"])
            acc = pooled.setdefault(k, [0, 0, 0, 0])
            acc[0] += r["correct_trials"]
            acc[1] += r["n_test"]
            acc[2] += r["correct_windows"]
            acc[3] += r["n_windows"]
        grouped: dict = {}
        for (m, p, s, subj, seed), (ct, nt, cw, nw) in pooled.items():
            g = grouped.setdefault((m, p, s, subj), ([], []))
            g[0].append(ct / nt if nt else np.nan)
            g[1].append(cw / nw if nw else np.nan)
        return [{"method": m, "protocol": p, "share": s, "subject": subj,
                 "trial_acc": float(np.mean(t)), "window_acc": float(np.mean(w)) if not
                 np.all(np.isnan(w)) else None, "seeds": len(t)}
                for (m, p, s, subj), (t, w) in grouped.items()]

    def summary(self) -> list[dict]:
        """Mean and std over subjects per (method, protocol, share)."""
        grouped: dict = {}
        for r in self.per_subject():
            grouped.setdefault((r["method"], r["protocol"], r["share"]), []).append(r)
        out = []
        for (m, p, s), rows in grouped.items():
            t = np.array([r["trial_acc"] for r in rows])
            w = np.array([r["window_acc"] for r in rows if r["window_acc"] is not None])
            out.append({"method": m, "protocol": p, "share": s, "subjects": len(rows),
                        "trial_mean": float(t.mean()), "trial_std": float(t.std()),
                        "window_mean": float(w.mean()) if w.size else None,
                        "window_std": float(w.std()) if w.size else None})
        return out


def evaluate(trials: TrialSet, methods: Sequence[str], protocols: Sequence[str] = ("loso",),
             seeds: Sequence[int] = (0,), shares: Sequence[float] = DEFAULT_SHARES,
             subjects: Sequence[str] | None = None, too_small: str = "skip",
             method_options: dict | None = None) -> Results:
    """Evaluate every method on every fold of every protocol.

    Parameters
    ----------
    trials : TrialSet
    methods : sequence of str
        Registered method names (:func:`aemg.eval.baselines.list_methods`).
    protocols : sequence of {"loso", "fewshot", "intra"}
    seeds : sequence of int
        Seeds (few-shot draws and method initialisation).
    shares : sequence of float
        Few-shot shares of the test subject's trials.
    subjects : sequence of str or None
        Test subjects (default all).
    too_small : {"skip", "error", "one"}
        A few-shot share that gives some class no training trial: skip it (noted in the results),
        raise a ConfigError, or take one trial per class.
    method_options : dict or None
        ``{method: {option: value}}`` passed to the method factories.
    """
    method_options = method_options or {}
    res = Results(classes=tuple(trials.classes), dataset=trials.name,
                  config={"methods": list(methods), "protocols": list(protocols), "seeds": list(seeds),
                          "shares": list(shares), "subjects": list(subjects) if subjects else None,
                          "too_small": too_small, "rate": trials.rate, "n_trials": len(trials)})
    k = trials.n_classes
    for name in methods:
        get_method(name, **method_options.get(name, {})).prepare(trials)
    for protocol in protocols:
        usable = list(shares)
        if protocol == "fewshot" and too_small == "skip":
            test_subjects = subjects or trials.subject_ids()
            need = max(min_fewshot_share(trials, s) for s in test_subjects)
            usable = [s for s in shares if s >= need - 1e-9]
            for s in sorted(set(shares) - set(usable)):
                res.notes.append(f"few-shot share {s:g} skipped: fewer than one trial per class for some "
                                 f"subject (smallest usable share: {need:.3g})")
        folds: list[Fold] = list(make_folds(trials, protocol, seeds, usable, subjects,
                                            "error" if too_small == "skip" else too_small))
        for note in sorted({n for f in folds for n in f.notes}):
            res.notes.append(f"{protocol}: {note}")
        for name in methods:
            for fold in folds:
                res.folds.append(_run_fold(trials, name, fold, k, res, method_options.get(name, {})))
                r = res.folds[-1]
                log.info("%s %s: trial acc %.3f (%d test trials, %.1f s)", name, fold.name,
                         r["trial_acc"], r["n_test"], r["seconds"])
    return res


def _run_fold(trials: TrialSet, name: str, fold: Fold, n_classes: int, res: Results, options: dict) -> dict:
    start = time.perf_counter()
    train, test = trials.subset(fold.train), trials.subset(fold.test)
    method = get_method(name, **options)
    method.fit(train, seed=fold.seed, target=test.without_labels() if method.transductive else None)
    pred = method.predict(test.without_labels())
    true = test.labels
    key = (name, fold.protocol, fold.share)
    conf = res.confusion.setdefault(key, np.zeros((n_classes, n_classes), dtype=np.int64))
    ok = pred.trial >= 0
    np.add.at(conf, (true[ok], pred.trial[ok]), 1)
    row = {"method": name, "protocol": fold.protocol, "share": fold.share,
           "actual_share": fold.actual_share, "seed": fold.seed, "subject": fold.subject,
           "repetition": fold.repetition, "n_train": int(len(fold.train)), "n_test": int(len(fold.test)),
           "correct_trials": int((pred.trial == true).sum()),
           "trial_acc": float((pred.trial == true).mean()) if len(true) else float("nan"),
           "correct_windows": 0, "n_windows": 0, "window_acc": None,
           "seconds": time.perf_counter() - start, "notes": "; ".join(fold.notes)}
    if pred.window is not None:
        wtrue = true[pred.window_trial]
        row.update(correct_windows=int((pred.window == wtrue).sum()), n_windows=int(len(wtrue)),
                   window_acc=float((pred.window == wtrue).mean()) if len(wtrue) else None)
    return row
