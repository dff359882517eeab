"""The measurement behind the float32 default of ``aemg rectify`` (docs/notes/rectify.md, Session 6):
the float32 path against the exact float64 one on every recording of shared datasets.

Usage: python scripts/compare_precision.py DATASET [DATASET ...] [--tokens OUT]

Per dataset (a reader name, files under ``$AEMG_DATA_ROOT``): each recording rectified both ways
(default space, gain 1), the RMS and the largest absolute difference relative to the float64
output's RMS (median and max over recordings), and how many line decisions differ. With
``--tokens OUT``: the whole dataset rectified into two archives (one worker each) under
``OUT/DATASET``, both tokenized, and the NCT tokens compared per sentence on (onset in trial,
duration, onset in event, event index, dominant channel): tokens changed, missing or new. Prints one
JSON line per dataset.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from aemg.data.readers import get_reader
from aemg.data.rectify import rectify

#: the fields that place a token (its payload and energy are values, compared separately)
TOKEN_KEY = ("onset_in_trial_s", "duration_s", "onset_in_event_s", "event_index", "dominant_channel")


def recordings(name: str) -> dict:
    """Sample-level comparison of the two paths on every recording of reader ``name``."""
    rdr = get_reader(name)
    rel_rms, rel_max, lines, n = [], [], 0, 0
    for src in rdr.sources():
        for rec in rdr.read(src):
            a = rectify(rec, amplitude_scale=1.0, precision="float64")
            b = rectify(rec, amplitude_scale=1.0, precision="float32")
            n += 1
            if a.meta["rectify"]["line_hz"] != b.meta["rectify"]["line_hz"]:
                lines += 1
                continue
            x, y = a.data.astype(np.float64), b.data.astype(np.float64)
            rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
            if rms > 0:
                rel_rms.append(float(np.sqrt(np.mean((y - x) ** 2))) / rms)
                rel_max.append(float(np.abs(y - x).max()) / rms)
    return {"recordings": n, "line_decisions_differ": lines,
            "rms_diff_over_rms": [float(np.median(rel_rms)), float(np.max(rel_rms))] if rel_rms else None,
            "max_abs_diff_over_rms": [float(np.median(rel_max)), float(np.max(rel_max))] if rel_max else None}


def tokens(name: str, out: Path) -> dict:
    """Token-level comparison: ``aemg rectify`` in both precisions, ``aemg tokenize`` of each."""
    from aemg.data.pipeline import rectify_dataset
    from aemg.tokenizer.corpus import tokenize_archive
    from aemg.tokenizer.corpus.reader import open_corpus

    base = out / name
    shutil.rmtree(base, ignore_errors=True)
    for p in ("float64", "float32"):
        rectify_dataset(name, base / f"archive-{p}", workers=1, progress=False, precision=p)
        tokenize_archive(base / f"archive-{p}", base / f"corpus-{p}", workers=1, progress=False)
    a, b = open_corpus(base / "corpus-float64"), open_corpus(base / "corpus-float32")
    total = same = new = changed_sentences = 0
    for i in range(a.n_sentences):
        ta, tb = a.tokens(i), b.tokens(i)
        ka = set(zip(*[ta[k].tolist() for k in TOKEN_KEY]))
        kb = set(zip(*[tb[k].tolist() for k in TOKEN_KEY]))
        total, same, new = total + len(ka), same + len(ka & kb), new + len(kb - ka)
        changed_sentences += ka != kb
    return {"sentences": a.n_sentences, "tokens_float64": total, "tokens_changed_or_missing": total - same,
            "tokens_new": new, "sentences_with_a_change": changed_sentences}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datasets", nargs="+", help="reader names, e.g. 3dc coteallard uci_myo")
    ap.add_argument("--tokens", type=Path, help="folder for the archives and corpora of the token comparison")
    args = ap.parse_args(argv)
    for name in args.datasets:
        row = {"dataset": name, **recordings(name)}
        if args.tokens is not None:
            row.update(tokens(name, args.tokens))
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
