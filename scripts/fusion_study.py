"""Late fusion of an AEMG probe and a window LDA under one regime (issue 9, session 7, experiments 19-20).

Screening harness: LOSO folds of ``aemg evaluate`` (same folds, same regime adaptation), and per
test trial the class log-posteriors of two fitted methods:

- ``P``: the probe (``--probe``, default ``aemg-probe-tok``): log-softmax of its class scores;
- ``L``: window LDA (``--lda``, default ``lda-log``): the mean over the trial's windows of the
  log-softmax of the window scores (a trial without windows or tokens gets uniform scores).

Fused: ``w P + (1 - w) L`` for w in ``--weights``; w = 1 is the probe alone, w = 0 the LDA's
mean-posterior rule (its majority vote is reported too, as ``aemg evaluate`` scores it). The
per-trial log-posteriors are saved (``--save OUT.npz``) so other rules can be scored without
refitting; ``LP`` (saved) is the log of the LDA's mean window posterior (experiment 28's pooling).
Per-trial accuracy (%) mean over test users::

    python scripts/fusion_study.py /tmp/res/arch/3dc --run /tmp/res/runs/for_3dc --regime rest
    python scripts/fusion_study.py /tmp/res/arch/3dc --run /tmp/res/runs/for_3dc --regime fewshot \
        --probe aemg-probe-tok-map --lda lda-log-subjnorm-map        # one labelled trial per class

``--regime online``: both on their running statistics (``online_scores``, ``online_window_scores``);
``pos`` (saved) is each trial's place among its group's test trials (recording order).
Few-shot folds: ``--share`` of the user's trials, at least one per class (``aemg evaluate --shares
0.01 --small-share one``). Two saved runs of the same folds (e.g. another ``--probe``) compared
per user at one weight (paired bootstrap and Wilcoxon, as ``aemg compare``)::

    python scripts/fusion_study.py compare A.npz B.npz --weight 0.5
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def compare(argv) -> int:
    """``compare A.npz B.npz [--weight W]``: the fused rule of two saved runs, paired over users."""
    from aemg.eval.stats import comparison_text, paired_comparison
    ap = argparse.ArgumentParser(prog="fusion_study.py compare")
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--weight", type=float, default=0.5)
    a = ap.parse_args(argv)
    accs = []
    for path in (a.a, a.b):
        f = np.load(path)
        correct = (a.weight * f["P"] + (1 - a.weight) * f["L"]).argmax(1) == f["y"]
        accs.append({str(u): float(correct[f["user"] == u].mean()) for u in np.unique(f["user"])})
    print(comparison_text(a.a, a.b, paired_comparison(*accs)))
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "compare":
        return compare(argv[1:])
    from aemg.eval.baselines import get_method
    from aemg.eval.methods import fusion_inputs
    from aemg.eval.protocols import Grouping, make_folds, rest_class_id, user_view
    from aemg.eval.runner import fold_adaptation
    from aemg.eval.trials import load_trials

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("archive")
    ap.add_argument("--run", required=True)
    ap.add_argument("--regime", default="rest")
    ap.add_argument("--probe", default="aemg-probe-tok")
    ap.add_argument("--probe-options", default="{}")
    ap.add_argument("--lda", default="lda-log")
    ap.add_argument("--sessions", default=None)
    ap.add_argument("--group-by", default="subject")
    ap.add_argument("--subjects", default=None)
    ap.add_argument("--weights", default="0,0.25,0.4,0.5,0.6,0.75,1")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--share", type=float, default=0.01,
                    help="fewshot: labelled share (at least one trial per class)")
    ap.add_argument("--save", default=None)
    a = ap.parse_args(argv)

    trials = load_trials(a.archive, sessions=a.sessions.split(",") if a.sessions else None)
    rest_id = rest_class_id(trials)
    subjects = a.subjects.split(",") if a.subjects else None
    folds = list(make_folds(trials, a.regime, (a.seed,), (a.share,), subjects, "one", rest_id,
                            Grouping(by=a.group_by)))
    k = trials.n_classes
    rows = {"P": [], "L": [], "V": [], "LP": [], "y": [], "user": [], "pos": []}
    for n, fold in enumerate(folds):
        adaptation = fold_adaptation(trials, fold, rest_id)
        view = user_view(trials, fold.group_by)
        train, test = view.subset(fold.train), view.subset(fold.test).without_labels()
        probe = get_method(a.probe, run=a.run, **json.loads(a.probe_options))
        probe.fit(train, seed=fold.seed, adaptation=adaptation)
        lda = get_method(a.lda)
        lda.fit(train, seed=fold.seed, adaptation=adaptation)
        if a.regime == "online":  # both on their running statistics of the user's earlier trials
            scores, use = probe.online_scores(test, adaptation)
            ws, owner = lda.online_window_scores(test)
            v = lda.predict_online(test, adaptation).trial
        else:
            scores, use = probe.scores(test, adaptation)
            ws, owner = lda.window_scores(test, adaptation)
            v = lda.predict(test, adaptation).trial     # its majority vote, as aemg evaluate scores it
        p, _, lmean, has_windows = fusion_inputs(len(test), k, scores, use, ws, owner)
        lmean[~has_windows] = -np.log(k)
        rows["LP"].append(mean_posterior_log(len(test), k, ws, owner))
        pos = np.empty(len(test), int)  # each trial's place among its group's trials (the order
        for s in np.unique(test.subjects):  # the online running statistics follow)
            mine = np.flatnonzero(test.subjects == s)
            pos[mine] = np.arange(len(mine))
        rows["pos"].append(pos)
        rows["P"].append(p)
        rows["L"].append(lmean)
        rows["V"].append(v)
        rows["y"].append(trials.labels[fold.test])
        rows["user"].append(np.full(len(test), fold.subject))
        y = rows["y"][-1]
        print(f"fold {n + 1}/{len(folds)} {fold.subject}: probe {100 * np.mean(p.argmax(1) == y):.1f}"
              f" lda-vote {100 * np.mean(v == y):.1f}", file=sys.stderr, flush=True)
    y = np.concatenate(rows["y"])
    user = np.concatenate(rows["user"])
    P, L, V, LP, pos = (np.concatenate(rows[x]) for x in ("P", "L", "V", "LP", "pos"))
    if a.save:
        np.savez(a.save, P=P, L=L, V=V, LP=LP, y=y, user=user, pos=pos)
    print(f"{a.archive} regime {a.regime}, {len(folds)} users, probe {a.probe}, lda {a.lda}")
    print(f"lda majority vote: {per_user(V == y, user):.1f}")
    for wt in [float(x) for x in a.weights.split(",")]:
        print(f"w={wt:.2f}: {per_user((wt * P + (1 - wt) * L).argmax(1) == y, user):.1f}")
    return 0


def mean_posterior_log(n: int, k: int, window_scores: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """(n, k): per trial, the log of the mean over its windows of the LDA's window posteriors
    (experiment 28's pooling; a trial without windows gets uniform -log k)."""
    from aemg.eval.methods import _log_posteriors
    post = np.zeros((n, k))
    np.add.at(post[:, :window_scores.shape[1]], owner, np.exp(_log_posteriors(window_scores)))
    count = np.bincount(owner, minlength=n)
    out = np.log(np.maximum(post / np.maximum(count, 1)[:, None], 1e-300))
    out[count == 0] = -np.log(k)
    return out


def per_user(correct: np.ndarray, user: np.ndarray) -> float:
    """Mean over users of the per-trial accuracy (%)."""
    return 100 * float(np.mean([correct[user == u].mean() for u in np.unique(user)]))


if __name__ == "__main__":
    sys.exit(main())
