"""Which trial features and which per-user adaptation close the cross-user gap? LOSO trial accuracy
under the adaptation regimes (issue 9), all on the SAME event tokens the AEMG methods see.

Usage: python scripts/regime_study.py ARCHIVE OUT.json [--run RUN] [--sessions S] [--seed 0]

Features (one vector per trial):
- ``embedding``: the run's frozen backbone, mean over the trial's tokens (= ``aemg-probe``);
- ``token-energy``: mean and std over the tokens of log per-channel RMS (no network);
- ``token-td``: :func:`aemg.eval.features.pooled_token_features` (per token and channel log MAV,
  log WL, ZC, SSC and log band-power shares; mean and std over the trial's tokens): what LDA's
  Hudgins features carry, computed on tokens;
- ``embedding+token-td``: both, concatenated.
Regimes (what of the test user a method sees besides the trial itself):
- ``none``: nothing (training subjects' pooled statistics);
- ``rest``: one rest trial per (subject, session) (the first rest-class trial in trial order),
  excluded from the test trials; features centred by that recording's features, every subject
  likewise;
- ``online``: per-subject standardisation with the statistics of the user's earlier trials (in
  trial order; the pooled training statistics blended in with a prior weight of 3 trials);
- ``unlabelled``: per-subject standardisation with all the user's (unlabelled) trials;
- ``unlabelled+em``: the same, then an EM refinement of class means on the user's unlabelled
  trials (Gaussian classes with the training subjects' pooled covariance, source means as a prior).
Every regime's test set is the same: each subject's trials except its calibration rest trials.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch

from aemg.eval.aemg_methods import AemgProbe, _logistic_regression
from aemg.eval.features import pooled_token_features
from aemg.eval.trials import load_trials
from aemg.tokenizer.tokens import is_rest_class

def rest_calibration(trials) -> np.ndarray:
    """Boolean (n,): the first rest-class trial of each (subject, session) in trial order."""
    names = trials.classes
    flag = np.zeros(len(trials), dtype=bool)
    seen = set()
    for i, (lab, s, ss) in enumerate(zip(trials.labels.tolist(), trials.subjects.tolist(),
                                         trials.sessions.tolist())):
        if 0 <= lab < len(names) and is_rest_class(names[lab]) and (s, ss) not in seen:
            seen.add((s, ss))
            flag[i] = True
    return flag


def _std(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=0)
    return np.where(sd > 0, sd, 1.0)


def normalise(x: np.ndarray, subjects: np.ndarray, sessions: np.ndarray, calib: np.ndarray,
              regime: str, prior_weight: float = 3.0) -> np.ndarray:
    """Features of every trial normalised per user under ``regime`` (see module docstring)."""
    out = x.copy()
    if regime == "none":
        return out
    for s in np.unique(subjects):
        rows = np.flatnonzero(subjects == s)
        if regime == "rest":
            for ss in np.unique(sessions[rows]):
                r = rows[sessions[rows] == ss]
                ref = r[calib[r]]
                if len(ref):
                    out[r] = x[r] - x[ref].mean(axis=0)
        elif regime.startswith("unlabelled"):
            use = rows[~calib[rows]]
            out[rows] = (x[rows] - x[use].mean(axis=0)) / _std(x[use])
        elif regime == "online":
            pass  # done per fold (needs the pooled prior)
        else:
            raise ValueError(regime)
    return out


def online_normalise(x_test: np.ndarray, mu0: np.ndarray, var0: np.ndarray, w0: float) -> np.ndarray:
    """Causal per-user standardisation: trial i uses trials < i (blended with a prior of weight w0)."""
    out = np.empty_like(x_test)
    s1 = np.zeros(x_test.shape[1])
    s2 = np.zeros(x_test.shape[1])
    for i, row in enumerate(x_test):
        n = i
        mean = (w0 * mu0 + s1) / (w0 + n)
        var = (w0 * (var0 + mu0 ** 2) + s2) / (w0 + n) - mean ** 2
        out[i] = (row - mean) / np.sqrt(np.maximum(var, 1e-12))
        s1 += row
        s2 += row ** 2
    return out


def em_refine(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, n_classes: int,
              iters: int = 10, prior: float = 5.0, shrink: float = 0.1) -> np.ndarray:
    """Posterior-argmax labels after EM on the test user's trials: Gaussian classes, shared
    covariance from training (shrunk), class means re-estimated from the test trials with the
    training means as a prior worth ``prior`` trials."""
    d = z_train.shape[1]
    means = np.stack([z_train[y_train == k].mean(axis=0) if (y_train == k).any() else np.zeros(d)
                      for k in range(n_classes)])
    resid = z_train - means[y_train]
    cov = resid.T @ resid / max(len(z_train) - n_classes, 1)
    cov = (1 - shrink) * cov + shrink * np.trace(cov) / d * np.eye(d)
    prec = np.linalg.inv(cov)
    present = np.array([(y_train == k).any() for k in range(n_classes)])
    src = means.copy()
    for _ in range(iters):
        diff = z_test[:, None, :] - means[None]                     # (n, K, d)
        logp = -0.5 * np.einsum("nkd,de,nke->nk", diff, prec, diff)
        logp[:, ~present] = -np.inf
        logp -= logp.max(axis=1, keepdims=True)
        p = np.exp(logp)
        p /= p.sum(axis=1, keepdims=True)
        means = (p.T @ z_test + prior * src) / (p.sum(axis=0)[:, None] + prior)
    diff = z_test[:, None, :] - means[None]
    logp = -0.5 * np.einsum("nkd,de,nke->nk", diff, prec, diff)
    logp[:, ~present] = -np.inf
    return logp.argmax(axis=1)


def loso(x: np.ndarray, trials, ok: np.ndarray, calib: np.ndarray, regime: str, seed: int,
         classifier: str = "logreg") -> tuple[float, float]:
    """(mean, std over subjects) of LOSO trial accuracy, %, on every non-calibration trial."""
    y, subjects, sessions = trials.labels, np.asarray(trials.subjects), np.asarray(trials.sessions)
    k = trials.n_classes
    base = "unlabelled" if regime.startswith("unlabelled") else regime
    xn = normalise(x, subjects, sessions, calib, base) if regime != "online" else x
    if regime == "online":  # training subjects: their own full statistics (they are fully seen)
        xn_train = normalise(x, subjects, sessions, calib, "unlabelled")
    accs = []
    for s in np.unique(subjects):
        test = (subjects == s) & ~calib
        train = (subjects != s) & ok
        xt = (xn_train if regime == "online" else xn)[train]
        mu, sd = xt.mean(axis=0), _std(xt)
        zt = (xt - mu) / sd
        if regime == "online":
            raw = x[subjects != s]
            zs = (online_normalise(x[test], raw.mean(axis=0), raw.var(axis=0), 3.0) - mu) / sd
        else:
            zs = (xn[test] - mu) / sd
        if regime == "unlabelled+em":
            pred = em_refine(zt, y[train], zs, k)
        elif classifier == "lda":
            from aemg.eval.baselines import LDA
            lda = LDA(0.1).fit(zt, y[train])
            pred = lda.predict(zs)
        else:
            w, b = _logistic_regression(zt, y[train], k, 1e-3, 200, seed)
            pred = (zs @ w.T + b).argmax(axis=1)
        accs.append(np.mean((pred == y[test]) & ok[test]))
    accs = 100 * np.asarray(accs)
    return float(accs.mean()), float(accs.std())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("archive")
    p.add_argument("out")
    p.add_argument("--run", default=None, help="pre-training run (embedding features)")
    p.add_argument("--sessions", default=None)
    p.add_argument("--features", default=None, help="comma-separated feature sets (default all)")
    p.add_argument("--regimes", default="none,rest,online,unlabelled,unlabelled+em")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    trials = load_trials(args.archive, sessions=args.sessions.split(",") if args.sessions else None)
    probe = AemgProbe(run=args.run) if args.run else None
    if probe is not None:
        probe.prepare(trials)
        sents = probe.sentences(trials)
    else:
        from aemg.eval.aemg_methods import prepare_calibration, trial_sentences
        from aemg.tokenizer import TokenizerConfig
        cfg = TokenizerConfig()
        prepare_calibration(trials, cfg)
        sents = trial_sentences(trials, cfg)
    ok = np.array([len(s.energy) > 0 for s in sents])
    feats = {}
    if probe is not None:
        emb, use = probe.embeddings(trials)
        full = np.zeros((len(trials), emb.shape[1]))
        full[use] = emb
        feats["embedding"] = full
    e = np.log(np.stack([s.energy.astype(np.float64).mean(axis=0) if len(s.energy) else
                         np.ones(trials.n_channels) for s in sents]) + 1e-6)
    feats["token-energy"] = e
    feats["token-td"] = pooled_token_features(sents, trials.n_channels)
    if "embedding" in feats:
        feats["embedding+token-td"] = np.concatenate([feats["embedding"], feats["token-td"]], axis=1)
    if args.features:
        feats = {k: v for k, v in feats.items() if k in args.features.split(",")}
    calib = rest_calibration(trials)
    result = {"archive": args.archive, "run": args.run, "trials": len(trials), "seed": args.seed,
              "calibration_trials": int(calib.sum()), "loso_trial_acc": {}}
    for name, x in feats.items():
        for regime in args.regimes.split(","):
            key = f"{name} | {regime}"
            result["loso_trial_acc"][key] = loso(x, trials, ok, calib, regime, args.seed)
            print(key, "%.1f +- %.1f" % tuple(result["loso_trial_acc"][key]), flush=True)
    result["seconds"] = time.perf_counter() - t0
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(args.out)) or ".")
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
