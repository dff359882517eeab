"""Why does the AEMG probe lose? LOSO trial accuracy of a logistic-regression probe on several
trial features, all computed from the SAME event tokens the AEMG methods see.

Usage: python scripts/probe_diagnostics.py ARCHIVE RUN OUT.json [--sessions S] [--subjects A,B] [--seed 0]

Features (one vector per trial; trials without tokens count as errors):
- ``embedding``: the run's frozen backbone, mean over real tokens (= ``aemg-probe``);
- ``embedding-random``: the same architecture untrained (``torch.manual_seed(seed)``);
- ``token-energy``: no network: mean and std over the trial's tokens of log per-channel RMS
  (2 C values), i.e. what a classic energy-map classifier gets from the tokens.
Each is standardised either with the training subjects' statistics (inductive, as
``aemg-probe``) or per subject with that subject's own statistics (transductive, as
``lda-log-subjnorm``; for the test subject from its unlabelled trials).
Rotation sensitivity (``--rotations 1,2``): the test subject's tokens are rolled by k channels of the
16-channel standard ring (k x 22.5 degrees; 2 = one Myo electrode) while training is unrotated, as
if the armband had been donned rotated; inductive standardisation.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from aemg._io import atomic_write
from aemg.eval.classifiers import logistic_regression
from aemg.eval.methods import AemgProbe, load_run
from aemg.eval.trials import load_trials
from aemg.model import AEMG


def subject_standardise(x: np.ndarray, subjects: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    for s in np.unique(subjects):
        m = subjects == s
        sd = x[m].std(axis=0)
        out[m] = (x[m] - x[m].mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    return out


def embed(probe, sentences: list) -> np.ndarray:
    """(n, d) mean-pooled backbone outputs of the run's backbone (zeros for empty sentences)."""
    from aemg.model.network import pool
    run = probe._run()
    use = probe._usable(sentences)
    out = np.zeros((len(sentences), run.model_config.d_model))
    angles, z = probe.geometry(None)
    rows = []
    with torch.no_grad():
        for b in probe._batches(sentences, use, angles):
            rows.append(pool(run.model.backbone(b, angles, z), b["mask"], "mean").double().numpy())
    if len(use):
        out[use] = np.concatenate(rows)
    return out


def energy_features(sentences: list, n_channels: int) -> np.ndarray:
    """(n, 2 C): mean and std over a trial's tokens of log per-channel RMS (zeros if no token)."""
    out = np.zeros((len(sentences), 2 * n_channels))
    for i, s in enumerate(sentences):
        if len(s.energy):
            le = np.log(s.energy.astype(np.float64) + 1e-6)
            out[i] = np.concatenate([le.mean(axis=0), le.std(axis=0)])
    return out


def loso(x: np.ndarray, y: np.ndarray, subjects: np.ndarray, ok: np.ndarray, n_classes: int,
         per_subject: bool, seed: int, x_test: np.ndarray | None = None) -> tuple[float, float]:
    """(mean, std over subjects) of LOSO trial accuracy, %, logistic regression (L2 1e-3);
    ``x_test`` (default ``x``): the features the test subject is scored on."""
    x_test = x if x_test is None else x_test
    if per_subject:
        x = subject_standardise(x, subjects)
        x_test = subject_standardise(x_test, subjects)
    accs = []
    for s in np.unique(subjects):
        test, train = subjects == s, (subjects != s) & ok
        xt = x[train]
        mu, sd = xt.mean(axis=0), xt.std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        w, b = logistic_regression((xt - mu) / sd, y[train], n_classes, 1e-3, 200)
        pred = (((x_test[test] - mu) / sd) @ w.T + b).argmax(axis=1)
        accs.append(np.mean((pred == y[test]) & ok[test]))
    accs = 100 * np.asarray(accs)
    return float(accs.mean()), float(accs.std())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("archive")
    p.add_argument("run")
    p.add_argument("out")
    p.add_argument("--sessions", default=None)
    p.add_argument("--subjects", default=None, help="comma-separated subjects to keep (default all)")
    p.add_argument("--rotations", default="1,2", help="ring positions to roll the test tokens by")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    trials = load_trials(args.archive, sessions=args.sessions.split(",") if args.sessions else None,
                         subjects=args.subjects.split(",") if args.subjects else None)
    probe = AemgProbe(run=args.run)
    probe.prepare(trials)
    sents = probe.sentences(trials)
    ok = np.zeros(len(trials), dtype=bool)
    feats = {}
    emb, use = probe.embeddings(trials)
    ok[use] = True
    full = np.zeros((len(trials), emb.shape[1]))
    full[use] = emb
    feats["embedding"] = full
    run = load_run(args.run)
    torch.manual_seed(args.seed)
    random_model = AEMG(run.model_config).eval()
    saved = run.model.backbone
    try:  # same pipeline, untrained weights (the run object is frozen: swap the module in place)
        object.__setattr__(run, "backbone_sha256", run.backbone_sha256 + "-random")
        run.model.backbone = random_model.backbone
        emb_r, use_r = probe.embeddings(trials)
    finally:
        run.model.backbone = saved
        object.__setattr__(run, "backbone_sha256", run.backbone_sha256[:-len("-random")])
    full = np.zeros_like(feats["embedding"])
    full[use_r] = emb_r
    feats["embedding-random"] = full
    feats["token-energy"] = energy_features(sents, trials.n_channels)
    y, subjects = trials.labels, np.asarray(trials.subjects)
    n_tokens = np.array([len(s.energy) for s in sents])
    result = {"archive": args.archive, "run": args.run, "trials": len(trials),
              "subjects": int(len(np.unique(subjects))),
              "tokens_per_trial": {"median": float(np.median(n_tokens)), "mean": float(n_tokens.mean()),
                                   "without_tokens": int((n_tokens == 0).sum())},
              "loso_trial_acc": {}}
    for name, x in feats.items():
        for per_subject in (False, True):
            key = f"{name} ({'per-subject standardised' if per_subject else 'train-standardised'})"
            result["loso_trial_acc"][key] = loso(x, y, subjects, ok, trials.n_classes, per_subject, args.seed)
            print(key, "%.1f +- %.1f" % result["loso_trial_acc"][key], flush=True)
    for k in [int(v) for v in args.rotations.split(",") if v.strip()]:
        rolled = [s.rolled(k) for s in sents]
        for name, x, xr in (("embedding", feats["embedding"], embed(probe, rolled)),
                            ("token-energy", feats["token-energy"],
                             energy_features(rolled, trials.n_channels))):
            key = f"{name} (train-standardised), test rotated by {k} x {360 / trials.n_channels:g} deg"
            result["loso_trial_acc"][key] = loso(x, y, subjects, ok, trials.n_classes, False, args.seed, xr)
            print(key, "%.1f +- %.1f" % result["loso_trial_acc"][key], flush=True)
    result["seconds"] = time.perf_counter() - t0
    atomic_write(args.out, json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
