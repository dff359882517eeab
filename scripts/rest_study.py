"""Can the ``rest`` regime's one rest recording stand in for the user's statistics? (issue 9)

A screening harness on the per-trial views of ``scripts/feature_views.py dump`` (session 6,
``docs/notes/generalisation.md`` experiment 16). LOSO per trial accuracy (%), shared-covariance
Gaussian (LDA's model, shrinkage 0.1), each user's first rest trial per session is its rest
recording and is never tested. Normalisations of the test user's features:

- ``train``: the training trials' pooled statistics (what the ``rest`` regime methods do today);
- ``pred``: the user's feature means predicted from its rest recording, per feature
  ``mu = a + b * rest`` with ``a, b`` fitted across the training users (cross-fitted: each
  training user is normalised by its prediction from the others, as the test user is);
- ``oracle``: the user's own statistics from all its trials (the ``unlabelled`` regime's
  ``lda-log-subjnorm``: the ceiling the rest target asks for);
- ``mix``: no normalisation chosen: the class density is a mixture over the training users'
  statistics (a latent "user style"), optionally weighted by how alike the rest recordings are.

Feature sets: the views, and ``-spatial`` = per-trial removal of the channel mean of each
log-amplitude block (a global gain cancels; ``+lev`` keeps the block means as features)::

    python scripts/rest_study.py /tmp/res/views/3dc.npz [/tmp/res/views/cote.npz ...]
"""
from __future__ import annotations

import sys

import numpy as np
from scipy.special import logsumexp

from aemg.eval.adapt import SharedGaussian
from aemg.tokenizer.tokens import is_rest_class

SHRINKAGE = 0.1


def load(path: str):
    """Views (dict name -> (n, d) float64), labels, subjects, sessions, usable, classes, channels."""
    f = np.load(path, allow_pickle=False)
    v = {k: f[k].astype(np.float64) for k in ("emb", "tok", "hud")}
    c = v["tok"].shape[1] // 16                       # channels (8 token features x mean/std)
    v["hudmean"] = v["hud"][:, :v["hud"].shape[1] // 2]
    v["toktd"] = v["tok"][:, :4 * c]                  # token means of logMAV, logWL, ZC, SSC
    return v, f["labels"], f["subjects"], f["sessions"], f["usable"], [str(n) for n in f["classes"]], c


def rest_recordings(labels, subjects, sessions, rest_id) -> dict:
    """subject -> trial indices of its designated rest recordings (first rest trial per session)."""
    out, seen = {}, set()
    for i in np.flatnonzero(labels == rest_id):
        if (subjects[i], sessions[i]) not in seen:
            seen.add((subjects[i], sessions[i]))
            out.setdefault(subjects[i], []).append(int(i))
    return out


def spatial(x: np.ndarray, c: int, blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per trial, the first ``blocks`` feature blocks of ``c`` channels minus their channel mean,
    and those means (n, blocks)."""
    x = x.copy()
    lev = np.stack([x[:, b * c:(b + 1) * c].mean(1) for b in range(blocks)], axis=1)
    for b in range(blocks):
        x[:, b * c:(b + 1) * c] -= lev[:, b:b + 1]
    return x, lev


def _user_stats(x, subjects, usable):
    subj = np.unique(subjects)
    return ({s: x[(subjects == s) & usable].mean(0) for s in subj},
            {s: x[(subjects == s) & usable].std(0) + 1e-6 for s in subj})


def _tested(subjects, test, rests, usable):
    te = subjects == test
    te[rests.get(test, [])[:1]] = False
    return te, np.flatnonzero(te & usable)


def fold_normalised(x, labels, subjects, usable, test, rests, mode: str) -> float:
    """Accuracy (%) on ``test`` with the test user normalised by ``mode`` (train / pred / oracle)."""
    k = int(labels.max()) + 1
    subj = np.unique(subjects)
    mu, sd = _user_stats(x, subjects, usable)
    train_users = [s for s in subj if s != test and s in rests]
    tr = (subjects != test) & usable
    if mode == "train":
        m0, s0 = x[tr].mean(0), x[tr].std(0) + 1e-6
        mu_hat, sd_hat = {s: m0 for s in subj}, {s: s0 for s in subj}
    elif mode == "pred":
        rest = {s: x[rests[s][0]] for s in rests}
        pooled_sd = np.mean([sd[s] for s in train_users], axis=0)
        mu_hat, sd_hat = {}, {s: pooled_sd for s in subj}
        for s in subj:
            users = [u for u in train_users if u != s]
            m, r = np.stack([mu[u] for u in users]), np.stack([rest[u] for u in users])
            mc, rc = m - m.mean(0), r - r.mean(0)
            b = np.clip((mc * rc).sum(0) / ((rc ** 2).sum(0) + 1e-12), 0.0, 1.5)
            mu_hat[s] = m.mean(0) + b * (rest[s] - r.mean(0)) if s in rest else m.mean(0)
    elif mode == "oracle":
        mu_hat, sd_hat = mu, sd
    else:
        raise ValueError(mode)
    z = np.empty_like(x)
    for s in subj:
        z[subjects == s] = (x[subjects == s] - mu_hat[s]) / sd_hat[s]
    g = SharedGaussian(SHRINKAGE, "train").fit(z[tr], labels[tr], k)
    te, ok = _tested(subjects, test, rests, usable)
    return 100.0 * (g.scores(z[ok]).argmax(1) == labels[ok]).sum() / te.sum()


def fold_mixture(x, labels, subjects, usable, test, rests, temperature=1.0, rest_weight=0.0) -> float:
    """Accuracy (%) on ``test``: p(x | class) = mean over training users u of the Gaussian of the
    class in u's units (log-likelihoods / ``temperature``), users weighted by rest-recording
    similarity when ``rest_weight`` > 0."""
    k = int(labels.max()) + 1
    mu, sd = _user_stats(x, subjects, usable)
    train_users = [s for s in np.unique(subjects) if s != test]
    tr = (subjects != test) & usable
    z = np.empty_like(x)
    for s in train_users:
        z[subjects == s] = (x[subjects == s] - mu[s]) / sd[s]
    g = SharedGaussian(SHRINKAGE, "train").fit(z[tr], labels[tr], k)
    te, ok = _tested(subjects, test, rests, usable)
    ll = []
    for s in train_users:
        zu = (x[ok] - mu[s]) / sd[s]
        quad = np.einsum("nd,de,ne->n", zu, g.precision_, zu)
        ll.append(g.log_likelihoods(zu) - 0.5 * quad[:, None] - np.log(sd[s]).sum())
    ll = np.stack(ll)                                            # (users, n, K)
    if rest_weight and test in rests:
        r = x[rests[test][0]]
        w = np.array([-0.5 * (((r - x[rests[s][0]]) / sd[s]) ** 2).mean() if s in rests else -np.inf
                      for s in train_users])
        ll = ll + rest_weight * w[:, None, None]
    scores = logsumexp(ll / temperature, axis=0) + g.log_prior_
    return 100.0 * (scores.argmax(1) == labels[ok]).sum() / te.sum()


def main(paths) -> None:
    for path in paths:
        v, labels, subjects, sessions, usable, classes, c = load(path)
        rest_id = next(i for i, n in enumerate(classes) if is_rest_class(n))
        rests = rest_recordings(labels, subjects, sessions, rest_id)
        hs, hl = spatial(v["hudmean"], c, 2)
        ts, tl = spatial(v["toktd"], c, 2)
        sets = {"hudmean": v["hudmean"], "hud": v["hud"], "toktd+emb": np.hstack([v["toktd"], v["emb"]]),
                "hudmean-spatial": hs, "hudmean-spatial+lev": np.hstack([hs, hl]),
                "toktd-spatial+lev+emb": np.hstack([ts, tl, v["emb"]])}
        tests = np.unique(subjects)
        for name, x in sets.items():
            for mode in ("train", "pred", "oracle"):
                a = [fold_normalised(x, labels, subjects, usable, t, rests, mode) for t in tests]
                print(f"{path}\t{name}\t{mode}\t{np.mean(a):.1f} ± {np.std(a):.1f}", flush=True)
            for temp, rw in ((1.0, 0.0), (30.0, 0.0), (1.0, 1.0)):
                a = [fold_mixture(x, labels, subjects, usable, t, rests, temp, rw) for t in tests]
                label = f"mix T={temp:g} rest-weight={rw:g}"
                print(f"{path}\t{name}\t{label}\t{np.mean(a):.1f} ± {np.std(a):.1f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
