"""Which per-trial feature views and which label-free adaptation generalise across users?

A research harness for issue 9 (docs/notes/generalisation.md, session 5). Two steps:

``dump``: one vector per trial and view, computed once from an archive and a pre-trained run::

    python scripts/feature_views.py dump ARCHIVE RUN OUT.npz [--sessions S]

views: ``emb`` (the run's frozen backbone, mean-pooled: ``aemg-probe``), ``tok`` (the pooled
classic features of the same NCT tokens: the ``-tok`` part), ``hud`` (mean and std over the trial's
200 ms windows of log Hudgins features: what ``lda-log`` sees, pooled per trial). Noise levels
follow ``aemg tokenize``'s policy from each (subject, session)'s rest-class trials, for every
subject (a screening approximation: a real fold calibrates the test user from its first rest
trial only; winners are confirmed with ``aemg evaluate``).

``study``: LOSO per trial accuracy (%) of variants on the dumped views (seconds)::

    python scripts/feature_views.py study OUT.npz [OUT2.npz ...] [--json RESULT.json]

Every variant standardises each subject with its own statistics (the ``unlabelled`` regime: the
test user's statistics from all its unlabelled trials, as ``lda-log-subjnorm``) and classifies
with a shared-covariance Gaussian (LDA's model), with or without EM on the test user's trials
(:class:`aemg.eval.adapt.SharedGaussian`). Trials without tokens count as errors.
"""
from __future__ import annotations

import argparse
import io
import json
import sys

import numpy as np

from aemg._io import atomic_write
from aemg.eval.adapt import SharedGaussian, adapted_scores
from aemg.eval.methods import subject_standardise, subject_stats


def dump(args) -> None:
    from aemg.eval.features import windowed_features
    from aemg.eval.methods import AemgProbe, prepare_calibration
    from aemg.eval.trials import load_trials

    trials = load_trials(args.archive, sessions=args.sessions.split(",") if args.sessions else None)
    probe = AemgProbe(run=args.run, features="embedding+tokens")
    prepare_calibration(trials, probe.tokenizer_config())
    feats, use = probe.trial_features(trials)
    d = probe._run().model_config.d_model
    n = len(trials)
    emb, tok = np.zeros((n, d)), np.zeros((n, feats.shape[1] - d))
    emb[use], tok[use] = feats[:, :d], feats[:, d:]
    hud = []
    for i in range(n):
        w, _ = windowed_features([trials.data[i]], trials.rate, log=True)
        hud.append(np.concatenate([w.mean(axis=0), w.std(axis=0)]))
    usable = np.zeros(n, dtype=bool)
    usable[use] = True
    buf = io.BytesIO()
    np.savez(buf, emb=emb, tok=tok, hud=np.stack(hud), labels=trials.labels, subjects=trials.subjects,
             sessions=trials.sessions, usable=usable, classes=np.array(trials.classes))
    atomic_write(args.out, buf.getvalue())
    print(f"{args.out}: {n} trials, {int(usable.sum())} with tokens, emb {emb.shape[1]}, tok {tok.shape[1]}")


def _lw_shrinkage(resid: np.ndarray) -> float:
    """Ledoit-Wolf shrinkage intensity (0..1) of the covariance of centred rows ``resid`` (n, d)
    towards ``trace / d * I`` (the oracle formula of Ledoit & Wolf 2004, as scikit-learn's)."""
    from sklearn.covariance import ledoit_wolf_shrinkage
    return float(ledoit_wolf_shrinkage(resid, assume_centered=True))


def fold_accuracy(views, labels, subjects, usable, test, train_mask, view_names, shrinkage, em,
                  em_prior=5.0, em_iters=10, norm="subject") -> float:
    """Per-trial accuracy (%) on subject ``test`` of one variant trained on ``train_mask``'s subjects."""
    x = np.concatenate([views[v] for v in view_names], axis=1)
    tr = train_mask & usable
    te = subjects == test
    if norm == "train":
        mu, sd = x[tr].mean(0), x[tr].std(0)
        sd = np.where(sd > 0, sd, 1.0)
        z = (x[tr] - mu) / sd
    else:
        z = subject_standardise(x[tr], subjects[tr], subject_stats(x[tr], subjects[tr]))
    y = labels[tr]
    k = int(labels.max()) + 1
    if shrinkage == "lw":
        means = np.stack([z[y == c].mean(0) if (y == c).any() else np.zeros(z.shape[1])
                          for c in range(k)])
        shrinkage = _lw_shrinkage(z - means[y])
    g = SharedGaussian(float(shrinkage), "train").fit(z, y, k)
    ok = te & usable
    if norm == "train":
        zt = (x[ok] - mu) / sd
    else:
        zt = subject_standardise(x[ok], subjects[ok], subject_stats(x[ok], subjects[ok]))
    s = adapted_scores(g, zt, subjects[ok], (zt, subjects[ok]), em_iters, em_prior) if em else g.scores(zt)
    return 100.0 * (s.argmax(1) == labels[ok]).sum() / te.sum()


def loso_selected(views, labels, subjects, usable, candidates: dict, inner_folds: int = 5):
    """LOSO where each outer fold picks, among ``candidates`` (name -> (views, shrinkage, em)), the
    one with the best inner leave-subjects-out accuracy on the training subjects only; returns
    (mean, std, how often each candidate was picked)."""
    accs, picks = [], {}
    for test in np.unique(subjects):
        train_subj = np.unique(subjects[subjects != test])
        groups = np.array_split(train_subj, min(inner_folds, len(train_subj)))
        best, best_acc = None, -1.0
        for name, (vn, shr, em, *norm) in candidates.items():
            inner = []
            for g in groups:
                held = np.isin(subjects, g)
                trm = (subjects != test) & ~held
                inner += [fold_accuracy(views, labels, subjects, usable, s, trm, vn, shr, em,
                                        norm=norm[0] if norm else "subject") for s in g]
            if np.mean(inner) > best_acc:
                best, best_acc = name, float(np.mean(inner))
        picks[best] = picks.get(best, 0) + 1
        vn, shr, em, *norm = candidates[best]
        accs.append(fold_accuracy(views, labels, subjects, usable, test, subjects != test, vn, shr, em,
                                  norm=norm[0] if norm else "subject"))
    return float(np.mean(accs)), float(np.std(accs)), picks


def fewshot(views, labels, subjects, usable, *, view_names, shrinkage=0.1, map_prior=None, seed=0,
            per_class=1) -> tuple[float, float]:
    """(mean, std) over users of few-shot accuracy (%): ``per_class`` labelled trials per class of
    the user (seeded draw) join training, standardised with the user's statistics from that share
    (``subject_norm="labelled"`` / the fewshot regime); the other trials of the user are tested.
    ``map_prior``: None = the shared-Gaussian classifier as fitted; a number p = each class mean
    of the user re-estimated from its labelled trials, shrunk to the pooled mean with p trials of
    weight (supervised MAP adaptation, the labelled twin of EM)."""
    x = np.concatenate([views[v] for v in view_names], axis=1)
    rng = np.random.default_rng(seed)
    k = int(labels.max()) + 1
    accs = []
    for test in np.unique(subjects):
        own = np.flatnonzero((subjects == test) & usable)
        shot = np.concatenate([rng.permutation(own[labels[own] == c])[:per_class] for c in range(k)
                               if (labels[own] == c).any()])
        rest = np.setdiff1d(np.flatnonzero(subjects == test), shot)
        tr = np.concatenate([np.flatnonzero((subjects != test) & usable), shot])
        st = subject_stats(x[tr], subjects[tr])
        z = subject_standardise(x[tr], subjects[tr], st)
        g = SharedGaussian(float(shrinkage), "train").fit(z, labels[tr], k)
        ok = rest[usable[rest]]
        zt = subject_standardise(x[ok], subjects[ok], st)
        means = None
        if map_prior is not None:
            means = g.map_means(subject_standardise(x[shot], subjects[shot], st), labels[shot], map_prior)
        s = g.scores(zt, means)
        accs.append(100.0 * (s.argmax(1) == labels[ok]).sum() / len(rest))
    return float(np.mean(accs)), float(np.std(accs))


def loso(views: dict, labels, subjects, usable, *, view_names, shrinkage, em: bool, em_prior=5.0,
         em_iters=10, norm: str = "subject") -> tuple[float, float]:
    """(mean, std) over test subjects of LOSO per-trial accuracy, %. ``norm``: "subject" (each
    subject by its own statistics: the unlabelled regime) or "train" (the training trials' pooled
    statistics for everyone: regimes none / rest); ``shrinkage`` "lw": Ledoit-Wolf per fold."""
    accs = [fold_accuracy(views, labels, subjects, usable, test, subjects != test, view_names, shrinkage,
                          em, em_prior, em_iters, norm) for test in np.unique(subjects)]
    return float(np.mean(accs)), float(np.std(accs))


VARIANTS = {
    # name: (views, shrinkage, em[, norm])
    "tok+emb em s0.1 (= aemg-probe-tok-em)": (("emb", "tok"), 0.1, True),
    "tok+emb s0.1 (= aemg-probe-tok-subjnorm)": (("emb", "tok"), 0.1, False),
    "tok+emb em lw": (("emb", "tok"), "lw", True),
    "tok+emb lw": (("emb", "tok"), "lw", False),
    "tok em s0.1 (= nct-em)": (("tok",), 0.1, True),
    "emb em s0.1": (("emb",), 0.1, True),
    "hud em s0.1": (("hud",), 0.1, True),
    "hud s0.1": (("hud",), 0.1, False),
    "hud+emb em s0.1": (("hud", "emb"), 0.1, True),
    "hud+tok+emb em s0.1": (("hud", "tok", "emb"), 0.1, True),
    "hud+tok+emb em lw": (("hud", "tok", "emb"), "lw", True),
    "hud+tok+emb s0.1": (("hud", "tok", "emb"), 0.1, False),
    "hud+tok+emb em s0.3": (("hud", "tok", "emb"), 0.3, True),
    "tok+emb em s0.3": (("emb", "tok"), 0.3, True),
    "hud+emb s0.1": (("hud", "emb"), 0.1, False),
    "hud+emb em lw": (("hud", "emb"), "lw", True),
    "hud+emb em s0.3": (("hud", "emb"), 0.3, True),
    "hudmean+emb em s0.1": (("hudmean", "emb"), 0.1, True),
    "hudmean em s0.1": (("hudmean",), 0.1, True),
    "toktd+emb em s0.1": (("toktd", "emb"), 0.1, True),
    "tokmw+emb em s0.1": (("tokmw", "emb"), 0.1, True),
    "tokmean+emb em s0.1": (("tokmean", "emb"), 0.1, True),
    "toktd em s0.1": (("toktd",), 0.1, True),
    "hudmean+toktd+emb em s0.1": (("hudmean", "toktd", "emb"), 0.1, True),
    "toktd+emb s0.1": (("toktd", "emb"), 0.1, False),
    "rest: toktd+emb s0.1": (("toktd", "emb"), 0.1, False, "train"),
    "rest: hudmean+emb s0.1": (("hudmean", "emb"), 0.1, False, "train"),
    "rest: tok+emb s0.1 (= aemg-probe-tok)": (("emb", "tok"), 0.1, False, "train"),
    "rest: hud s0.1 (~ lda-log)": (("hud",), 0.1, False, "train"),
    "rest: hud+emb s0.1": (("hud", "emb"), 0.1, False, "train"),
    "rest: hud+tok+emb s0.1": (("hud", "tok", "emb"), 0.1, False, "train"),
}


def study(args) -> None:
    out = {}
    for path in args.npz:
        f = np.load(path, allow_pickle=False)
        views = {k: f[k] for k in ("emb", "tok", "hud")}
        views["hudmean"] = views["hud"][:, :views["hud"].shape[1] // 2]
        c = views["tok"].shape[1] // 16                     # channels (8 features x mean/std)
        views["toktd"] = views["tok"][:, :4 * c]            # token means of logMAV, logWL, ZC, SSC
        views["tokmw"] = views["tok"][:, :2 * c]            # token means of logMAV, logWL
        views["tokmean"] = views["tok"][:, :8 * c]          # every token mean, no std
        labels, subjects, usable = f["labels"], f["subjects"], f["usable"]
        row = {}
        for name, (vn, shr, em, *norm) in VARIANTS.items():
            if args.only and not any(o in name for o in args.only.split(",")):
                continue
            m, s = loso(views, labels, subjects, usable, view_names=vn, shrinkage=shr, em=em,
                        norm=norm[0] if norm else "subject")
            row[name] = (round(m, 1), round(s, 1))
            print(f"{path}\t{name}\t{m:.1f} ± {s:.1f}", flush=True)
        if args.fewshot:
            for vn in (("emb", "tok"), ("emb", "toktd"), ("hud",)):
                for p in (None, 16.0, 8.0, 4.0, 2.0, 1.0):
                    m, sd = fewshot(views, labels, subjects, usable, view_names=vn, map_prior=p)
                    name = f"fewshot 1/class: {'+'.join(vn)} map_prior={p}"
                    row[name] = (round(m, 1), round(sd, 1))
                    print(f"{path}\t{name}\t{m:.1f} ± {sd:.1f}", flush=True)
        if args.select:
            cands = {n: VARIANTS[n] for n in args.select.split(";")}
            m, sd, picks = loso_selected(views, labels, subjects, usable, cands)
            row["selected"] = (round(m, 1), round(sd, 1), picks)
            print(f"{path}\tselected among {list(cands)}\t{m:.1f} ± {sd:.1f}\t{picks}", flush=True)
        out[path] = row
    if args.json:
        atomic_write(args.json, json.dumps(out, indent=1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("archive")
    d.add_argument("run")
    d.add_argument("out")
    d.add_argument("--sessions")
    s = sub.add_parser("study")
    s.add_argument("npz", nargs="+")
    s.add_argument("--json")
    s.add_argument("--only", help="comma-separated substrings of variant names")
    s.add_argument("--fewshot", action="store_true", help="also the few-shot MAP variants")
    s.add_argument("--select", help="';'-separated variant names: LOSO with inner-LOSO selection")
    args = ap.parse_args(argv)
    (dump if args.cmd == "dump" else study)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
