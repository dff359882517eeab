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
- ``rest``: one rest trial per (subject, session) (:func:`aemg.eval.protocols.rest_recordings`),
  excluded from the test trials; features centred by that recording's features, every subject
  likewise;
- ``online``: per-subject standardisation with the statistics of the user's earlier trials (in
  trial order; the pooled training statistics blended in with a prior weight of 3 trials);
- ``unlabelled``: per-subject standardisation with all the user's (unlabelled) trials;
- ``unlabelled+em``: the same, then EM on the class means with the user's unlabelled trials
  (:class:`aemg.eval.adapt.SharedGaussian`, shrinkage 0.1, 10 iterations, prior of 5 trials).
Every regime's test set is the same: each subject's trials except its calibration rest trials.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from aemg._io import atomic_write
from aemg.eval.adapt import SharedGaussian, adapted_scores
from aemg.eval.baselines import online_standardise
from aemg.eval.classifiers import logistic_regression
from aemg.eval.features import pooled_token_features
from aemg.eval.methods import AemgProbe
from aemg.eval.protocols import rest_class_id, rest_recordings
from aemg.eval.trials import load_trials


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
            raw, n = x[subjects != s], int(test.sum())
            zs = (online_standardise(x[test], np.arange(n), np.zeros(n),
                                     (raw.mean(axis=0), raw.std(axis=0)), 3.0)
                  - mu) / sd
        else:
            zs = (xn[test] - mu) / sd
        if regime == "unlabelled+em":  # the library's EM (aemg.eval.adapt), the user's trials as visible
            user = np.zeros(len(zs))
            pred = adapted_scores(SharedGaussian(0.1).fit(zt, y[train], k), zs, user, (zs, user), 10,
                                  5.0).argmax(1)
        elif classifier == "lda":
            from aemg.eval.classifiers import LDA
            lda = LDA(0.1).fit(zt, y[train])
            pred = lda.predict(zs)
        else:
            w, b = logistic_regression(zt, y[train], k, 1e-3, 200)
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
        from aemg.eval.methods import prepare_calibration, trial_sentences
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
    calib = np.zeros(len(trials), dtype=bool)
    calib[rest_recordings(trials, rest_class_id(trials))] = True
    result = {"archive": args.archive, "run": args.run, "trials": len(trials), "seed": args.seed,
              "calibration_trials": int(calib.sum()), "loso_trial_acc": {}}
    for name, x in feats.items():
        for regime in args.regimes.split(","):
            key = f"{name} | {regime}"
            result["loso_trial_acc"][key] = loso(x, trials, ok, calib, regime, args.seed)
            print(key, "%.1f +- %.1f" % tuple(result["loso_trial_acc"][key]), flush=True)
    result["seconds"] = time.perf_counter() - t0
    atomic_write(args.out, json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
