"""Within-subject (intra) accuracy of each group of the classic NCT token features on one archive.

Usage: python scripts/token_feature_groups.py ARCHIVE   (default /tmp/res/arch/uci_myo)
Logistic regression (L2 1e-3) on the pooled token features of one group (mean + std over a trial's
tokens, 16 channels), leave one repetition out within each subject, first 60 folds; tokenizer
calibrated from the rest-labelled trials as `aemg tokenize` does. See docs/notes/generalisation.md.
"""
import sys

import numpy as np
import torch

from aemg.eval.classifiers import logistic_regression
from aemg.eval.features import pooled_token_features
from aemg.eval.methods import prepare_calibration, trial_sentences
from aemg.eval.protocols import intra_folds
from aemg.eval.trials import load_trials
from aemg.tokenizer import TokenizerConfig

torch.set_num_threads(1)
t = load_trials(sys.argv[1] if len(sys.argv) > 1 else "/tmp/res/arch/uci_myo")
cfg = TokenizerConfig()
prepare_calibration(t, cfg)
s = trial_sentences(t, cfg)
F = pooled_token_features(s, t.n_channels)
C = t.n_channels
groups = {"all": slice(None)}
names = ["logMAV","logWL","ZC","SSC","b1","b2","b3","b4"]
for gi, n in enumerate(names):
    idx = np.r_[gi*C:(gi+1)*C, 8*C+gi*C:8*C+(gi+1)*C]
    groups[n] = idx
folds = intra_folds(t)
print("n folds", len(folds), "example", folds[0].name, len(folds[0].train), len(folds[0].test))
print("sessions", sorted(set(t.sessions.tolist()))[:5], "reps?", [f.repetition for f in folds[:8]])
for n, g in groups.items():
    accs = []
    for f in folds[:60]:
        x = F[:, g]
        tr, te = f.train, f.test
        mu, sd = x[tr].mean(0), x[tr].std(0)
        sd[sd == 0] = 1
        w, b = logistic_regression((x[tr]-mu)/sd, t.labels[tr], t.n_classes, 1e-3, 200)
        accs.append(np.mean((((x[te]-mu)/sd) @ w.T + b).argmax(1) == t.labels[te]))
    print(n, round(100*np.mean(accs), 1))
