"""Zero-shot (LOSO) probe variants that use nothing of the test user but the trial itself, plus
one that centres each user on its rest trials; logistic regression as ``aemg-probe``.

Usage: python scripts/probe_zero_shot.py ARCHIVE RUN [--sessions S]

Prints LOSO trial accuracy (%) with inductive standardisation (training users' statistics) and,
for comparison, per-user standardisation (transductive), for:
- ``embedding``: the run's frozen backbone, mean over real tokens (= ``aemg-probe``);
- ``embedding, trial-level-normalised input``: each trial's token energies divided by their
  geometric mean before embedding (removes a per-trial gain, keeps the spatial pattern);
- ``embedding + token-energy``: with the mean/std of log per-channel token RMS appended;
- ``embedding z-scored per trial``: each embedding standardised across its dimensions;
- ``rest-centred``: each user's embeddings minus the mean embedding of its rest-class trials
  (uses the test user's rest recordings, as the tokenizer's noise calibration does).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_diagnostics import embed, energy_features, loso  # noqa: E402

from aemg.eval.methods import AemgProbe  # noqa: E402
from aemg.eval.trials import load_trials  # noqa: E402
from aemg.tokenizer.calibration import is_rest_class  # noqa: E402


def level_normalised(sentence):
    """The sentence with its token energies divided by their geometric mean."""
    if not sentence.n_tokens:
        return sentence
    g = np.exp(np.mean(np.log(sentence.energy.astype(np.float64) + 1e-9)))
    return dataclasses.replace(sentence, energy=(sentence.energy / g).astype(sentence.energy.dtype))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("archive")
    p.add_argument("run")
    p.add_argument("--sessions", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    trials = load_trials(args.archive, sessions=args.sessions.split(",") if args.sessions else None)
    probe = AemgProbe(run=args.run)
    probe.prepare(trials)
    sents = probe.sentences(trials)
    y, subjects = trials.labels, np.asarray(trials.subjects)
    emb = embed(probe, sents)
    ok = np.array([s.n_tokens > 0 for s in sents])
    energy = energy_features(sents, trials.n_channels)

    def report(name, x):
        a = loso(x, y, subjects, ok, trials.n_classes, False, 0)[0]
        b = loso(x, y, subjects, ok, trials.n_classes, True, 0)[0]
        print(f"{name:45s} inductive {a:5.1f}   per-user (transductive) {b:5.1f}", flush=True)

    report("embedding", emb)
    report("embedding, trial-level-normalised input", embed(probe, [level_normalised(s) for s in sents]))
    report("embedding + token-energy", np.concatenate([emb, energy], 1))
    report("embedding z-scored per trial",
           (emb - emb.mean(1, keepdims=True)) / (emb.std(1, keepdims=True) + 1e-9))
    rest = [i for i, c in enumerate(trials.classes) if is_rest_class(c)]
    centred = emb.copy()
    for s in np.unique(subjects):
        m = subjects == s
        centred[m] -= emb[m & np.isin(y, rest) & ok].mean(0)
    acc = loso(centred, y, subjects, ok, trials.n_classes, False, 0)[0]
    print(f"{'rest-centred embedding':45s} inductive {acc:5.1f}")


if __name__ == "__main__":
    main()
