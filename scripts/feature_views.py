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

Intra-subject study (session 6, H2): ``dump-tokens ARCHIVE RUN OUT.npz`` adds per-token rows (each
token's classic features and contextual backbone output), every 200 ms window's log-Hudgins
features, the repetitions and the share of each trial its tokens cover; ``intra OUT.npz ...``
scores leave-one-repetition-out variants on trial, token and window rows (and fused trial + token
scores); ``loso-rows OUT.npz ...`` the same row kinds under LOSO (``unlabelled``: per-user
standardisation, with or without EM).

Every ``study`` variant standardises each subject with its own statistics (the ``unlabelled`` regime: the
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


def waveform_features(payload: np.ndarray, rate: float, order: int = 4) -> np.ndarray:
    """(N, (3 + order) C) per-token waveform / frequency features of z-scored token samples
    ``payload`` (N, C, L), feature-major: log Hjorth mobility, log Hjorth complexity, log mean
    frequency (Hz, periodogram) and the ``order`` AR coefficients (Yule-Walker) per channel."""
    x = np.asarray(payload, dtype=np.float64)
    n, c, length = x.shape
    d1 = np.diff(x, axis=2)
    d2 = np.diff(d1, axis=2)
    v0, v1, v2 = x.var(2) + 1e-12, d1.var(2) + 1e-12, d2.var(2) + 1e-12
    mob = np.sqrt(v1 / v0)
    comp = np.sqrt(v2 / v1) / mob
    spec = np.abs(np.fft.rfft(x, axis=2)) ** 2
    freqs = np.fft.rfftfreq(length, 1.0 / rate)
    mnf = (spec * freqs).sum(2) / (spec.sum(2) + 1e-12)
    xc = x - x.mean(2, keepdims=True)
    r = np.stack([(xc[..., :length - k] * xc[..., k:]).sum(2) for k in range(order + 1)], axis=-1)
    r = r / np.maximum(r[..., :1], 1e-12)
    ar = np.zeros((n, c, order))
    idx = np.abs(np.arange(order)[:, None] - np.arange(order)[None, :])
    for i in range(n):
        for j in range(c):
            R = r[i, j, idx] + 1e-6 * np.eye(order)
            ar[i, j] = np.linalg.solve(R, r[i, j, 1:])
    return np.concatenate([np.log(mob), np.log(comp), np.log(mnf + 1e-6)]
                          + [ar[..., k] for k in range(order)], axis=1)


def dump_tokens(args) -> None:
    """Per-token rows for the intra-subject study: every token's classic features
    (:func:`aemg.eval.features.token_features`, 8 C) and contextual backbone output (d, before the
    mean pool), every 200 ms window's log-Hudgins features (4 C), per trial the pooled views of
    :func:`dump`, its repetition and what share of its samples its tokens cover."""
    import torch

    from aemg.eval.features import pooled_token_features, token_features, windowed_features
    from aemg.eval.methods import AemgProbe, prepare_calibration, trial_sentences
    from aemg.eval.trials import load_trials
    from aemg.model.network import pool

    trials = load_trials(args.archive, sessions=args.sessions.split(",") if args.sessions else None)
    probe = AemgProbe(run=args.run, features="embedding+tokens")
    cfg = probe.tokenizer_config()
    prepare_calibration(trials, cfg)
    sents = trial_sentences(trials, cfg)
    run = probe._run()
    angles, z = probe.geometry(trials)
    backbone = run.model.backbone.eval()
    n = len(trials)
    tokf, tokx, tokd, tokh, tok_owner, emb = [], [], [], [], [], np.zeros((n, run.model_config.d_model))
    cover, n_tok = np.zeros(n), np.zeros(n, dtype=np.int64)
    use = probe._usable(sents)
    with torch.no_grad():
        rows = iter(use)
        for b in probe._batches(sents, use, angles):
            h = backbone(b, angles, z)
            e = pool(h, b["mask"], "mean").float().numpy()
            for j in range(len(e)):
                i = next(rows)
                s = sents[i]
                m = b["mask"][j].numpy().astype(bool)
                emb[i] = e[j]
                tokh.append(h[j, 1:][m].float().numpy())
                tokf.append(token_features(s.payload, s.energy, s.rate))
                tokx.append(waveform_features(s.payload, s.rate))
                tokd.append(np.stack([s.duration_s, s.onset_in_event_s], axis=1))
                tok_owner.append(np.full(s.n_tokens, i))
                n_tok[i] = s.n_tokens
                covered = np.zeros(trials.data[i].shape[1], dtype=bool)
                length = s.payload.shape[2]
                for t0 in np.round(s.onset_in_trial_s * s.rate).astype(int):
                    covered[max(t0, 0):t0 + length] = True
                cover[i] = covered.mean()
    tok = pooled_token_features(sents, trials.n_channels)
    win, win_owner = windowed_features(list(trials.data), trials.rate, log=True)
    usable = np.zeros(n, dtype=bool)
    usable[use] = True
    buf = io.BytesIO()
    np.savez(buf, emb=emb, tok=tok, labels=trials.labels, subjects=trials.subjects,
             sessions=trials.sessions, repetitions=trials.repetitions, usable=usable,
             classes=np.array(trials.classes), cover=cover, n_tok=n_tok,
             tokf=np.concatenate(tokf), tokx=np.concatenate(tokx), tokd=np.concatenate(tokd),
             tokh=np.concatenate(tokh),
             tok_owner=np.concatenate(tok_owner),
             win=win, win_owner=win_owner, rate=trials.rate)
    atomic_write(args.out, buf.getvalue())
    print(f"{args.out}: {n} trials, {int(usable.sum())} with tokens, {len(win)} windows, "
          f"{sum(map(len, tokf))} tokens, cover {cover.mean():.2f}")


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


def _lda_scores(xtr, ytr, xte, k, shrinkage):
    """(n_test, k) LDA decision scores (-inf for classes absent from training)."""
    from aemg.eval.classifiers import LDA
    if shrinkage == "lw":  # Ledoit-Wolf intensity of the standardised, class-centred rows
        z = (xtr - xtr.mean(0)) / np.where(xtr.std(0) > 0, xtr.std(0), 1.0)
        means = {c: z[ytr == c].mean(0) for c in np.unique(ytr)}
        shrinkage = _lw_shrinkage(z - np.stack([means[c] for c in ytr]))
    lda = LDA(float(shrinkage)).fit(xtr, ytr)
    out = np.full((len(xte), k), -np.inf)
    out[:, lda.classes_] = lda.decision_function(xte)
    return out


def intra_views(f) -> dict:
    """name -> (rows (m, F), owner trial (m,)) of a :func:`dump_tokens` file: trial rows own
    themselves; token and window rows their trial."""
    n = len(f["labels"])
    c = f["tok"].shape[1] // 16
    trial = np.arange(n)
    hud_mean = np.stack([f["win"][f["win_owner"] == i].mean(0) for i in range(n)])
    tokf, to = f["tokf"], f["tok_owner"]
    return {
        "emb": (f["emb"], trial), "toktd": (f["tok"][:, :4 * c], trial), "tok": (f["tok"], trial),
        "hudmean": (hud_mean, trial),
        "win": (f["win"], f["win_owner"]),
        "t.td": (tokf[:, :4 * c], to), "t.all": (tokf, to), "t.h": (f["tokh"], to),
        **({"t.x": (f["tokx"], to), "t.hj": (f["tokx"][:, :3 * c], to), "t.ar": (f["tokx"][:, 3 * c:], to)}
           if "tokx" in f else {}),
        **({"t.dur": (np.log(f["tokd"][:, :1] + 1e-3), to),
            "t.cov": (np.log(f["cover"][to, None] + 1e-3), to)} if "tokd" in f else {}),
    }


def _log_softmax(sc: np.ndarray) -> np.ndarray:
    lp = np.where(np.isfinite(sc), sc, -1e9)
    lp = lp - lp.max(1, keepdims=True)
    return lp - np.log(np.exp(lp).sum(1, keepdims=True))


def intra_fused(f, views: dict, trial_names, token_names, shrinkage=0.1, weight=1.0,
                token_shrinkage=None) -> tuple[float, float]:
    """(mean, std) of intra accuracy (%) of a product of experts: the trial-row LDA's log-posterior
    plus ``weight`` x the mean over the trial's tokens of the token-row LDA's log-posteriors."""
    labels, subjects, reps, usable = f["labels"], f["subjects"], f["repetitions"], f["usable"]
    k = int(labels.max()) + 1
    xt = np.concatenate([views[v][0] for v in trial_names], axis=1)
    owner = views[token_names[0]][1]
    xk = np.concatenate([views[v][0] for v in token_names], axis=1)
    ts = shrinkage if token_shrinkage is None else token_shrinkage
    accs = []
    for s in np.unique(subjects):
        mine = subjects == s
        correct = total = 0
        for r in np.unique(reps[mine]):
            te_t, tr_t = mine & (reps == r), mine & (reps != r) & usable
            te_idx = np.flatnonzero(te_t)
            lt = _log_softmax(_lda_scores(xt[tr_t], labels[tr_t], xt[te_idx], k, shrinkage))
            tr, te = tr_t[owner], te_t[owner]
            lk = _log_softmax(_lda_scores(xk[tr], labels[owner][tr], xk[te], k, ts))
            remap = np.full(len(labels), -1)
            remap[te_idx] = np.arange(len(te_idx))
            o = remap[owner[te]]
            tot = np.zeros((len(te_idx), k))
            np.add.at(tot, o, lk)
            cnt = np.maximum(np.bincount(o, minlength=len(te_idx)), 1)[:, None]
            pred = (lt + weight * tot / cnt).argmax(1)
            correct += int((pred == labels[te_idx]).sum())
            total += len(te_idx)
        accs.append(100.0 * correct / total)
    return float(np.mean(accs)), float(np.std(accs))


FUSED_VARIANTS = {
    # name: (trial views, token views, shrinkage, weight)
    "fused emb+toktd | t.td w1": (("emb", "toktd"), ("t.td",), 0.1, 1.0),
    "fused emb+toktd | t.td w2": (("emb", "toktd"), ("t.td",), 0.1, 2.0),
    "fused emb+toktd | t.td w4": (("emb", "toktd"), ("t.td",), 0.1, 4.0),
    "fused emb | t.td w1": (("emb",), ("t.td",), 0.1, 1.0),
    "fused emb | t.td w2": (("emb",), ("t.td",), 0.1, 2.0),
    "fused emb+toktd | t.all w1": (("emb", "toktd"), ("t.all",), 0.1, 1.0),
}


def intra_accuracy(f, views: dict, names, shrinkage=0.1, combine="vote", norm=True) -> tuple[float, float]:
    """(mean, std) over subjects of intra per-trial accuracy (%): per subject, leave one repetition
    out. ``names``: views joined column-wise (all of one row kind: trial, token or window rows;
    token rows may add trial views, repeated per token). ``combine`` (token / window rows):
    "vote" = majority of the row predictions (ties by summed scores, as lda-log), "sum" = summed
    log-posteriors (softmax of the LDA scores)."""
    from aemg.eval.baselines import vote
    labels, subjects, reps, usable = f["labels"], f["subjects"], f["repetitions"], f["usable"]
    k = int(labels.max()) + 1
    rowkind = [v for v in names if len(views[v][0]) != len(labels)]
    if rowkind:
        owner = views[rowkind[0]][1]
        x = np.concatenate([views[v][0] if v in rowkind else views[v][0][owner] for v in names], axis=1)
    else:
        owner = np.arange(len(labels))
        x = np.concatenate([views[v][0] for v in names], axis=1)
    accs = []
    for s in np.unique(subjects):
        mine = subjects == s
        correct = total = 0
        for r in np.unique(reps[mine]):
            te_t = mine & (reps == r)
            tr_t = mine & (reps != r) & usable
            tr, te = tr_t[owner], te_t[owner] & usable[owner]
            sc = _lda_scores(x[tr], labels[owner][tr], x[te], k, shrinkage)
            if rowkind:
                te_idx = np.flatnonzero(te_t)
                remap = np.full(len(labels), -1)
                remap[te_idx] = np.arange(len(te_idx))
                o = remap[owner[te]]
                if combine == "vote":
                    pred = vote(sc.argmax(1), o, len(te_idx), k, np.where(np.isfinite(sc), sc, -1e9))
                else:
                    lp = sc - sc.max(1, keepdims=True)
                    lp = lp - np.log(np.exp(lp).sum(1, keepdims=True))
                    tot = np.zeros((len(te_idx), k))
                    np.add.at(tot, o, np.where(np.isfinite(lp), lp, -1e9))
                    pred = tot.argmax(1)
                    pred[np.bincount(o, minlength=len(te_idx)) == 0] = -1
                correct += int((pred == labels[te_idx]).sum())
                total += len(te_idx)
            else:
                pred = sc.argmax(1)
                correct += int((pred == labels[te_t & usable]).sum())
                total += int(te_t.sum())
        accs.append(100.0 * correct / total)
    return float(np.mean(accs)), float(np.std(accs))


INTRA_VARIANTS = {
    # name: (views, shrinkage, combine)
    "trial emb+toktd s0.1 (= aemg-probe-tok td)": (("emb", "toktd"), 0.1, None),
    "trial toktd s0.1": (("toktd",), 0.1, None),
    "trial emb s0.1": (("emb",), 0.1, None),
    "trial hudmean s0.1": (("hudmean",), 0.1, None),
    "trial emb+hudmean s0.1": (("emb", "hudmean"), 0.1, None),
    "trial emb+toktd s0.5": (("emb", "toktd"), 0.5, None),
    "trial toktd s0.5": (("toktd",), 0.5, None),
    "window win s0 vote (= lda-log)": (("win",), 0.0, "vote"),
    "window win s0.1 vote": (("win",), 0.1, "vote"),
    "token t.td s0 vote": (("t.td",), 0.0, "vote"),
    "token t.td s0.1 vote": (("t.td",), 0.1, "vote"),
    "token t.td s0.1 sum": (("t.td",), 0.1, "sum"),
    "token t.all s0.1 vote": (("t.all",), 0.1, "vote"),
    "token t.h s0.1 vote": (("t.h",), 0.1, "vote"),
    "token t.h+t.td s0.1 vote": (("t.h", "t.td"), 0.1, "vote"),
    "token t.td+emb s0.1 vote": (("t.td", "emb"), 0.1, "vote"),
    "token t.td+emb s0.5 vote": (("t.td", "emb"), 0.5, "vote"),
    "token t.td s0.01 vote": (("t.td",), 0.01, "vote"),
    "token t.td s0.3 vote": (("t.td",), 0.3, "vote"),
    "token t.all s0.01 vote": (("t.all",), 0.01, "vote"),
    "token t.all s0.3 vote": (("t.all",), 0.3, "vote"),
    "token t.td+toktd s0.1 vote": (("t.td", "toktd"), 0.1, "vote"),
    "token t.td+t.x s0.1 vote": (("t.td", "t.x"), 0.1, "vote"),
    "token t.td+t.hj s0.1 vote": (("t.td", "t.hj"), 0.1, "vote"),
    "token t.td+t.ar s0.1 vote": (("t.td", "t.ar"), 0.1, "vote"),
    "token t.all+t.x s0.1 vote": (("t.all", "t.x"), 0.1, "vote"),
    "token t.td lw vote": (("t.td",), "lw", "vote"),
    "token t.td+t.dur lw vote": (("t.td", "t.dur"), "lw", "vote"),
    "token t.td+t.cov lw vote": (("t.td", "t.cov"), "lw", "vote"),
    "token t.td+t.dur+t.cov lw vote": (("t.td", "t.dur", "t.cov"), "lw", "vote"),
    "token t.td+t.x lw vote": (("t.td", "t.x"), "lw", "vote"),
    "token t.td+t.hj lw vote": (("t.td", "t.hj"), "lw", "vote"),
    "token t.td+t.x s0.3 vote": (("t.td", "t.x"), 0.3, "vote"),
    "token t.td+t.hj s0.3 vote": (("t.td", "t.hj"), 0.3, "vote"),
}


def intra_study(args) -> None:
    out = {}
    for path in args.npz:
        f = dict(np.load(path, allow_pickle=False))
        views = intra_views(f)
        n_rep = [len(np.unique(f["repetitions"][f["subjects"] == s])) for s in np.unique(f["subjects"])]
        print(f"{path}: cover {f['cover'].mean():.2f} (min {f['cover'].min():.2f}), tokens/trial "
              f"{f['n_tok'].mean():.1f}, windows/trial {len(f['win']) / len(f['labels']):.1f}, "
              f"repetitions/subject {np.median(n_rep)}", flush=True)
        row = {}
        for name, (vn, shr, comb) in INTRA_VARIANTS.items():
            if args.only and not any(o in name for o in args.only.split(",")):
                continue
            m, sd = intra_accuracy(f, views, vn, shr, comb or "vote")
            row[name] = (round(m, 1), round(sd, 1))
            print(f"{path}\t{name}\t{m:.1f} ± {sd:.1f}", flush=True)
        for name, (tv, kv, shr, w) in FUSED_VARIANTS.items():
            if args.only and not any(o in name for o in args.only.split(",")):
                continue
            m, sd = intra_fused(f, views, tv, kv, shr, w)
            row[name] = (round(m, 1), round(sd, 1))
            print(f"{path}\t{name}\t{m:.1f} ± {sd:.1f}", flush=True)
        out[path] = row
    if args.json:
        atomic_write(args.json, json.dumps(out, indent=1))


def loso_rows(f, views: dict, names, shrinkage=0.1, em=False, em_prior=5.0, em_iters=10,
              norm="subject") -> tuple[float, float]:
    """(mean, std) LOSO per-trial accuracy (%) of a shared-Gaussian classifier on token or
    window rows (:func:`intra_views` names; trial views repeated per row), each subject standardised
    by its own rows (``unlabelled``; ``norm="train"``: pooled training statistics), EM (prior
    ``em_prior`` trials' rows) on the test user's rows, trial = majority vote of its rows."""
    from aemg.eval.baselines import vote
    labels, subjects, usable = f["labels"], f["subjects"], f["usable"]
    k = int(labels.max()) + 1
    rowkind = [v for v in names if len(views[v][0]) != len(labels)]
    owner = views[rowkind[0]][1]
    x = np.concatenate([views[v][0] if v in rowkind else views[v][0][owner] for v in names], axis=1)
    rs = subjects[owner]
    per_trial = len(owner) / max(int(usable.sum()), 1)
    accs = []
    for test in np.unique(subjects):
        tr, te = (rs != test) & usable[owner], rs == test
        if norm == "train":
            mu, sd = x[tr].mean(0), x[tr].std(0)
            sd = np.where(sd > 0, sd, 1.0)
            z, zt = (x[tr] - mu) / sd, (x[te] - mu) / sd
        else:
            z = subject_standardise(x[tr], rs[tr], subject_stats(x[tr], rs[tr]))
            zt = subject_standardise(x[te], rs[te], subject_stats(x[te], rs[te]))
        g = SharedGaussian(float(shrinkage), "train").fit(z, labels[owner][tr], k)
        sc = (adapted_scores(g, zt, rs[te], (zt, rs[te]), em_iters, em_prior * per_trial) if em
              else g.scores(zt))
        te_idx = np.flatnonzero(subjects == test)
        remap = np.full(len(labels), -1)
        remap[te_idx] = np.arange(len(te_idx))
        pred = vote(sc.argmax(1), remap[owner[te]], len(te_idx), k, np.where(np.isfinite(sc), sc, -1e9))
        accs.append(100.0 * (pred == labels[te_idx]).sum() / len(te_idx))
    return float(np.mean(accs)), float(np.std(accs))


LOSO_ROW_VARIANTS = {
    # name: (views, shrinkage, em, norm)
    "loso trial emb+toktd em (= tok-em td)": (("emb", "toktd"), 0.1, True, "subject"),
    "loso trial emb+toktd": (("emb", "toktd"), 0.1, False, "subject"),
    "loso token t.td em": (("t.td",), 0.1, True, "subject"),
    "loso token t.td": (("t.td",), 0.1, False, "subject"),
    "loso token t.td+emb em": (("t.td", "emb"), 0.1, True, "subject"),
    "loso token t.td+emb": (("t.td", "emb"), 0.1, False, "subject"),
    "loso token t.h+t.td em": (("t.h", "t.td"), 0.1, True, "subject"),
    "loso window win em (~ lda-log-subjnorm-em)": (("win",), 0.1, True, "subject"),
    "loso window win (~ lda-log-subjnorm)": (("win",), 0.1, False, "subject"),
}


def loso_rows_study(args) -> None:
    for path in args.npz:
        f = dict(np.load(path, allow_pickle=False))
        views = intra_views(f)
        views["toktd"] = (views["toktd"][0], views["toktd"][1])
        for name, (vn, shr, em, norm) in LOSO_ROW_VARIANTS.items():
            if args.only and not any(o in name for o in args.only.split(",")):
                continue
            if len(views[vn[0]][0]) == len(f["labels"]) and all(len(views[v][0]) == len(f["labels"])
                                                                  for v in vn):
                sv = {v: views[v][0] for v in vn}
                m, sd = loso(sv, f["labels"], f["subjects"], f["usable"], view_names=vn, shrinkage=shr,
                             em=em, norm=norm)
            else:
                m, sd = loso_rows(f, views, vn, shr, em, norm=norm)
            print(f"{path}\t{name}\t{m:.1f} ± {sd:.1f}", flush=True)


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
    t = sub.add_parser("dump-tokens")
    t.add_argument("archive")
    t.add_argument("run")
    t.add_argument("out")
    t.add_argument("--sessions")
    s = sub.add_parser("study")
    s.add_argument("npz", nargs="+")
    s.add_argument("--json")
    s.add_argument("--only", help="comma-separated substrings of variant names")
    s.add_argument("--fewshot", action="store_true", help="also the few-shot MAP variants")
    s.add_argument("--select", help="';'-separated variant names: LOSO with inner-LOSO selection")
    i = sub.add_parser("intra", help="intra-subject study of dump-tokens files")
    i.add_argument("npz", nargs="+")
    i.add_argument("--json")
    i.add_argument("--only", help="comma-separated substrings of variant names")
    lr = sub.add_parser("loso-rows", help="LOSO of token / window-row variants of dump-tokens files")
    lr.add_argument("npz", nargs="+")
    lr.add_argument("--only", help="comma-separated substrings of variant names")
    args = ap.parse_args(argv)
    {"dump": dump, "dump-tokens": dump_tokens, "study": study, "intra": intra_study,
     "loso-rows": loso_rows_study}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
