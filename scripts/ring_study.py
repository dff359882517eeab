"""Armband-rotation alignment of the standard space per user (issue 9, session 9, experiment 25).

Screening harness, rejected idea (docs/notes/generalisation.md, experiment 25). Each LOSO fold: the
test user's 16 virtual electrodes are rolled by the shift k (|k| <= MAXK, 22.5 degrees a step)
that best aligns it to the training users, and the shipped classic method runs on the rotated
trials beside the unrotated ones (paired per user):

- ``--select likelihood`` (default): window log-Hudgins features (200 / 50 ms), standardised per
  user with its own statistics; a shared-covariance Gaussian per class (shrinkage 0.1) on the
  training users, not rotated; k maximises, over the rolled features of what the regime gives,
  the summed mixture log-density of the user's unlabelled windows (``unlabelled``) or the class
  log-density of each window of its labelled share (``fewshot``);
- ``--select profile``: k aligns the user's mean log-MAV profile over its trials (centred over
  channels) to the training users' mean, these first aligned among themselves (2 passes).

Methods: ``lda-log-subjnorm`` (``unlabelled``) or ``lda-log-subjnorm-map`` (``fewshot``); with
``--run RUN`` also the fused rule of ``aemg-probe-auto`` / ``aemg-probe-tok-map`` with them (w 0.5,
as ``aemg-probe-fuse-auto`` / ``-map``)::

    python scripts/ring_study.py /tmp/res/arch/3dc 2 --regime unlabelled
    python scripts/ring_study.py /tmp/res/arch/myo_readings 2 --regime fewshot --run /tmp/res/runs/old4 \
        --save /tmp/ring/myo_fs.json

Few-shot folds: ``--share`` 0.05 with at least one trial per class (``aemg evaluate --shares 0.05
--small-share one``); seed 0.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

import numpy as np
from scipy.special import logsumexp

from aemg.eval.baselines import get_method
from aemg.eval.features import windowed_features
from aemg.eval.methods import fusion_inputs
from aemg.eval.protocols import Grouping, make_folds, rest_class_id, user_view
from aemg.eval.runner import fold_adaptation
from aemg.eval.stats import paired_comparison
from aemg.eval.trials import TrialSet, load_trials


def standardiser(feats: list, idx) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (F,) of the windows of the trials ``idx``."""
    f = np.concatenate([feats[i] for i in idx])
    return f.mean(0), f.std(0) + 1e-9


def roll_blocks(f: np.ndarray, k: int, n_channels: int) -> np.ndarray:
    """Window features (W, B * C), feature-major, with each block's channels rolled by k."""
    if not k:
        return f
    blocks = [np.roll(f[:, b * n_channels:(b + 1) * n_channels], -k, axis=1)
              for b in range(f.shape[1] // n_channels)]
    return np.concatenate(blocks, axis=1)


def likelihood_shift(feats, labels, subj, train, own, own_labels, maxk, n_channels) -> int:
    """k maximising the log-density of the windows of the trials ``own`` (their class's density when
    ``own_labels`` is given, else the mixture's) under a Gaussian per class fitted on ``train``."""
    x, y = [], []
    for u in dict.fromkeys(subj[train].tolist()):
        idx = train[subj[train] == u]
        m, s = standardiser(feats, idx)
        x += [(feats[i] - m) / s for i in idx]
        y += [np.full(len(feats[i]), labels[i]) for i in idx]
    x, y = np.concatenate(x), np.concatenate(y)
    classes = np.unique(y)
    mu = np.stack([x[y == c].mean(0) for c in classes])
    r = x - mu[np.searchsorted(classes, y)]
    cov = r.T @ r / len(r)
    prec = np.linalg.inv(0.9 * cov + 0.1 * np.trace(cov) / len(cov) * np.eye(len(cov)))
    m, s = standardiser(feats, own)
    z = (np.concatenate([feats[i] for i in own]) - m) / s
    if own_labels is not None:  # each window's class column
        lab = np.concatenate([np.full(len(feats[i]), own_labels[j]) for j, i in enumerate(own)])
        column = np.searchsorted(classes, lab)
    ll = {}
    for k in range(-maxk, maxk + 1):
        d = roll_blocks(z, k, n_channels)[:, None, :] - mu[None]
        q = np.einsum("wkf,fg,wkg->wk", d, prec, d)
        if own_labels is None:
            ll[k] = float(logsumexp(-0.5 * q, axis=1).sum())
        else:
            ll[k] = float(-0.5 * q[np.arange(len(q)), column].sum())
    return max(ll, key=ll.get)


def log_mav_profiles(trials: TrialSet) -> np.ndarray:
    """Each trial's log-MAV per channel, centred over channels (n, C): a global gain cancels."""
    prof = np.stack([np.log(1e-6 + np.abs(x).mean(axis=1)) for x in trials.data])
    return prof - prof.mean(axis=1, keepdims=True)


def profile_shifts(prof, subj, train, test, maxk) -> tuple[int, dict]:
    """(k of the test user, {training user: (its trials, its k)}): the users' mean profiles
    (:func:`log_mav_profiles`) aligned to the training users' mean, these first aligned among
    themselves."""
    shifts = np.arange(-maxk, maxk + 1)

    def best(p, ref):
        return int(shifts[int(np.argmax([np.dot(np.roll(p, -q), ref) for q in shifts]))])
    users = {u: train[subj[train] == u] for u in dict.fromkeys(subj[train].tolist())}
    ks = {u: 0 for u in users}
    for _ in range(2):
        ref = np.mean([np.roll(prof[i].mean(0), -ks[u]) for u, i in users.items()], axis=0)
        ks = {u: best(prof[i].mean(0), ref) for u, i in users.items()}
    ref = np.mean([np.roll(prof[i].mean(0), -ks[u]) for u, i in users.items()], axis=0)
    return best(prof[test].mean(0), ref), {u: (users[u], ks[u]) for u in users}


def rolled_set(trials: TrialSet, kk: np.ndarray) -> TrialSet:
    """The trials with trial i's electrodes rolled by kk[i] (new keys: no cached feature is reused)."""
    return replace(trials, data=[np.roll(x, -k, axis=0) if k else x for x, k in zip(trials.data, kk)],
                   keys=np.char.add(trials.keys, np.char.add("#ring", kk.astype(str))),
                   meta=dict(trials.meta))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("archive")
    ap.add_argument("maxk", type=int)
    ap.add_argument("--regime", choices=("unlabelled", "fewshot"), default="unlabelled")
    ap.add_argument("--select", choices=("likelihood", "profile"), default="likelihood")
    ap.add_argument("--run", default=None, help="also the fused rule, with this run's probe")
    ap.add_argument("--save", default=None, help="per-user accuracies (JSON)")
    a = ap.parse_args(argv)
    fewshot = a.regime == "fewshot"
    lda_name = "lda-log-subjnorm-map" if fewshot else "lda-log-subjnorm"
    probe_name = "aemg-probe-tok-map" if fewshot else "aemg-probe-auto"
    trials = load_trials(a.archive)
    n_ch, subj = trials.n_channels, trials.subjects
    feats = [windowed_features([x], trials.rate, 0.2, 0.05, 0.0, True)[0] for x in trials.data]
    prof = log_mav_profiles(trials) if a.select == "profile" else None
    rest_id = rest_class_id(trials)
    folds = [f for f in make_folds(trials, a.regime, (0,), (0.05,), None, "one", rest_id,
                                   Grouping(by="subject"))
             if f.protocol == ("fewshot" if fewshot else "loso")]
    acc = {name: {"plain": {}, "rot": {}} for name in (["lda", "fused"] if a.run else ["lda"])}
    shifts = {}
    for n, fold in enumerate(folds):
        train, test = np.asarray(fold.train), np.asarray(fold.test)
        share = train[subj[train] == fold.subject] if fewshot else None
        others = train[subj[train] != fold.subject]
        kk = np.zeros(len(trials), int)
        if a.select == "likelihood":
            own = share if fewshot else test
            k = likelihood_shift(feats, trials.labels, subj, others, own,
                                 trials.labels[own] if fewshot else None, a.maxk, n_ch)
        else:
            k, aligned = profile_shifts(prof, subj, others, test, a.maxk)
            for idx, q in aligned.values():
                kk[idx] = q
        kk[test] = k
        if fewshot:
            kk[share] = k
        shifts[str(fold.subject)] = k
        y = trials.labels[test]
        line = []
        for tag, ts in (("plain", trials), ("rot", rolled_set(trials, kk))):
            ad = fold_adaptation(ts, fold, rest_id)
            view = user_view(ts, fold.group_by)
            tr, te = view.subset(fold.train), view.subset(fold.test).without_labels()
            lda = get_method(lda_name)
            lda.fit(tr, seed=0, adaptation=ad)
            acc["lda"][tag][str(fold.subject)] = float(np.mean(lda.predict(te, ad).trial == y))
            if a.run:
                probe = get_method(probe_name, run=a.run)
                probe.fit(tr, seed=0, adaptation=ad)
                p, _, lm, has = fusion_inputs(len(te), trials.n_classes, *probe.scores(te, ad),
                                              *lda.window_scores(te, ad))
                lm[~has] = -np.log(trials.n_classes)
                fused = (0.5 * p + 0.5 * lm).argmax(1)
                acc["fused"][tag][str(fold.subject)] = float(np.mean(fused == y))
            line.append(" ".join(f"{name}/{tag} {100 * v[tag][str(fold.subject)]:.1f}"
                                 for name, v in acc.items()))
        print(f"fold {n + 1}/{len(folds)} {fold.subject} k {k}: {'; '.join(line)}", file=sys.stderr,
              flush=True)
    print(f"{a.archive} regime {a.regime} select {a.select} maxk {a.maxk}")
    for name, v in acc.items():
        c = paired_comparison(v["rot"], v["plain"])
        print(f"{name}: plain {c['mean_b']:.1f} rotated {c['mean_a']:.1f} diff {c['diff']:+.1f} "
              f"[{c['ci'][0]:+.1f}, {c['ci'][1]:+.1f}] wins {c['wins']} ties {c['ties']} "
              f"losses {c['losses']}")
    print("shifts:", shifts)
    if a.save:
        with open(a.save, "w") as f:
            json.dump({"accuracy": acc, "shifts": shifts}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
