"""Paired comparisons of two methods over the same test users (``aemg compare``).

Accuracies of leave-one-subject-out runs are per user, and users differ far more than methods do
(the std over users is 7-20 points where methods differ by 1-9). The honest comparison is
therefore paired: per user, the accuracy of A minus that of B. For the mean difference,
:func:`paired_comparison` gives a seeded percentile-bootstrap 95 % interval over users, the
Wilcoxon signed-rank test, and the wins, ties and losses. A claim such as "A >= B + 3 points" is
*shown* when the interval's lower end clears the margin. It is *consistent* when only the mean does.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError

#: bootstrap resamples of :func:`paired_comparison`
RESAMPLES = 10_000


def read_per_subject(folders) -> dict:
    """``{(method, regime, share): {subject: trial_acc}}`` from the ``per_subject.csv`` of report
    folders (``aemg evaluate --out``). ``share`` is a float, or None outside few-shot. The same
    key in two folders with other values is an error (two runs would be mixed)."""
    out: dict = {}
    for folder in ([folders] if isinstance(folders, (str, os.PathLike)) else folders):
        path = Path(folder) / "per_subject.csv"
        if not path.is_file():
            raise DataError(folder, "not a report folder (no per_subject.csv; write one with aemg "
                                    "evaluate --out)")
        with open(path, newline="") as f:
            for n, row in enumerate(csv.DictReader(f), start=2):
                try:
                    key = (row["method"], row["regime"], float(row["share"]) if row["share"] else None)
                    acc = float(row["trial_acc"])
                    subject = row["subject"]
                except (KeyError, ValueError) as exc:
                    raise DataError(path, f"line {n}: not a per-subject row ({exc})") from None
                have = out.setdefault(key, {})
                if subject in have and have[subject] != acc:
                    raise DataError(path, f"line {n}: {key[0]} under {key[1]} for subject {subject} "
                                    "is also in another report folder with another value")
                have[subject] = acc
    return out


def parse_arm(text: str) -> tuple[str, str | None, float | None]:
    """``"METHOD"``, ``"METHOD@REGIME"`` or ``"METHOD@fewshot:SHARE"`` -> (method, regime, share)."""
    method, _, rest = text.partition("@")
    regime, _, share = rest.partition(":")
    if not method:
        raise ConfigError(f"{text!r}: expected METHOD, METHOD@REGIME or METHOD@fewshot:SHARE")
    try:
        return method, regime or None, float(share) if share else None
    except ValueError:
        raise ConfigError(f"{text!r}: the share after ':' must be a number") from None


def pick(results: dict, arm: str) -> tuple[tuple, dict]:
    """The one ``(key, {subject: acc})`` of ``results`` (:func:`read_per_subject`) that ``arm``
    (:func:`parse_arm`) names; ConfigError listing the candidates when none or several match."""
    method, regime, share = parse_arm(arm)
    hits = [k for k in results if k[0] == method and (regime is None or k[1] == regime)
            and (share is None or (k[2] is not None and abs(k[2] - share) < 1e-9))]
    if len(hits) != 1:
        have = sorted(f"{m}@{r}" + (f":{s:g}" if s is not None else "") for m, r, s in results
                      if m == method) or sorted({k[0] for k in results})
        what = "matches nothing" if not hits else "is ambiguous"
        raise ConfigError(f"{arm!r} {what}; name one of: {', '.join(have)}")
    return hits[0], results[hits[0]]


def paired_comparison(a: dict, b: dict, margin: float = 0.0, seed: int = 0,
                      resamples: int = RESAMPLES) -> dict:
    """Per-user paired comparison of accuracies ``a`` and ``b`` (``{subject: accuracy in 0..1}``)
    over the users both have.

    Returns a dict: ``users`` (count), ``only_a`` / ``only_b`` (users left out), ``mean_a``,
    ``mean_b``, ``diff`` (mean of a - b), ``ci`` ((low, high) 95 % percentile bootstrap over users
    of that mean, ``seed``), ``p_wilcoxon`` (two-sided signed-rank, ties split; 1.0 when every
    difference is 0), ``wins`` / ``ties`` / ``losses`` (users where a >, =, < b), ``margin``,
    ``shown`` (the interval's low end > margin), ``consistent`` (the mean > margin). All
    accuracies and differences in percentage points.
    """
    users = sorted(set(a) & set(b))
    if not users:
        raise ConfigError("the two methods have no test user in common")
    x = 100.0 * np.array([a[u] for u in users])
    y = 100.0 * np.array([b[u] for u in users])
    d = x - y
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(int(resamples), len(d)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    if np.all(d == 0):
        p = 1.0
    else:
        from scipy.stats import wilcoxon
        p = float(wilcoxon(d, zero_method="zsplit").pvalue)
    return {"users": len(users), "only_a": sorted(set(a) - set(b)), "only_b": sorted(set(b) - set(a)),
            "mean_a": float(x.mean()), "mean_b": float(y.mean()), "diff": float(d.mean()),
            "ci": (float(low), float(high)), "p_wilcoxon": p, "wins": int((d > 0).sum()),
            "ties": int((d == 0).sum()), "losses": int((d < 0).sum()), "margin": float(margin),
            "shown": bool(low > margin), "consistent": bool(d.mean() > margin), "seed": int(seed)}


def comparison_text(name_a: str, name_b: str, r: dict) -> str:
    """One readable paragraph of :func:`paired_comparison`'s result."""
    left = ""
    if r["only_a"] or r["only_b"]:
        left = (f" ({len(r['only_a'])} user(s) only in A and {len(r['only_b'])} only in B left out)")
    verdict = ("shown" if r["shown"] else "consistent with the data, not shown" if r["consistent"]
               else "not met")
    return (f"A = {name_a}: {r['mean_a']:.1f} %, B = {name_b}: {r['mean_b']:.1f} %, over {r['users']} "
            f"paired users{left}\n"
            f"A - B = {r['diff']:+.1f} points, 95 % bootstrap interval "
            f"[{r['ci'][0]:+.1f}, {r['ci'][1]:+.1f}] "
            f"(seed {r['seed']}), Wilcoxon p = {r['p_wilcoxon']:.3g}; A wins {r['wins']}, ties {r['ties']}, "
            f"loses {r['losses']}\n"
            f"A >= B + {r['margin']:g}: {verdict}\n")
