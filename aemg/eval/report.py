"""Write an evaluation report folder.

Files (every one written to a temporary name, then renamed, so none is ever half-written):

- ``results.md``, ``results.csv``, ``results.json``: mean and std over subjects of the per-trial (and
  per-window) accuracy for every method x protocol (x few-shot share); the JSON also holds the run's
  configuration and notes.
- ``per_subject.csv``: accuracy per method, protocol, share and subject (averaged over seeds).
- ``folds.csv``: one row per method and fold.
- ``confusion_<method>_<protocol>[_<share>].csv`` and ``.png``: trial confusion matrices summed over
  folds (rows: true class, columns: predicted).
- ``per_subject_<protocol>.png``: per-subject bar chart of every method.
- ``fewshot_curve.png``: accuracy against the few-shot share (when few-shot ran).
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from .._io import atomic_write, figure_png
from ..errors import DataError
from .runner import Results


def _csv_bytes(rows: list[dict], columns: list[str]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return buf.getvalue().encode()


def _fig_bytes(fig) -> bytes:
    return figure_png(fig, bbox_inches="tight")


def _pct(x) -> str:
    return "" if x is None else f"{100 * x:.1f}"


def _tag(method: str, protocol: str, share) -> str:
    return f"{method}_{protocol}" + ("" if share is None else f"_{share:g}")


def results_markdown(res: Results) -> str:
    """The summary table as Markdown (accuracy in %, mean +- std over subjects)."""
    lines = [f"# Evaluation: {res.dataset}", "",
             f"{res.config.get('n_trials', '?')} trials at {res.config.get('rate', '?')} Hz; "
             f"seeds {res.config.get('seeds')}; accuracy in %, mean +- std over subjects.", "",
             "| method | protocol | share | subjects | per trial | per window |",
             "|---|---|---|---|---|---|"]
    for r in sorted(res.summary(), key=lambda r: (r["protocol"], r["share"] or 0, r["method"])):
        win = ("" if r["window_mean"] is None else
               f"{_pct(r['window_mean'])} +- {_pct(r['window_std'])}")
        share = "" if r["share"] is None else f"{r['share']:g}"
        lines.append(f"| {r['method']} | {r['protocol']} | {share} "
                     f"| {r['subjects']} | {_pct(r['trial_mean'])} +- {_pct(r['trial_std'])} | {win} |")
    if res.notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in res.notes]
    return "\n".join(lines) + "\n"


def write_report(res: Results, out: str | os.PathLike, plots: bool = True) -> Path:
    """Write the report folder ``out`` (created if needed) and return its path."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(out, "report output exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    summary = res.summary()
    per_subject = res.per_subject()
    atomic_write(out / "results.md", results_markdown(res).encode())
    atomic_write(out / "results.csv", _csv_bytes(summary, ["method", "protocol", "share", "subjects",
                                                          "trial_mean", "trial_std", "window_mean",
                                                          "window_std"]))
    atomic_write(out / "results.json", json.dumps(
        {"dataset": res.dataset, "classes": list(res.classes), "config": res.config,
         "notes": res.notes, "summary": summary}, indent=2).encode())
    atomic_write(out / "per_subject.csv", _csv_bytes(per_subject, ["method", "protocol", "share", "subject",
                                                                  "trial_acc", "window_acc", "seeds"]))
    atomic_write(out / "folds.csv", _csv_bytes(res.folds, list(res.folds[0]) if res.folds else ["method"]))
    names = list(res.classes) or [str(i) for i in range(max((c.shape[0] for c in res.confusion.values()),
                                                             default=0))]
    for (method, protocol, share), conf in res.confusion.items():
        tag = _tag(method, protocol, share)
        labels = names + [str(i) for i in range(len(names), conf.shape[0])]
        rows = [{"true": labels[i], **{labels[j]: int(conf[i, j]) for j in range(conf.shape[1])}}
                for i in range(conf.shape[0])]
        atomic_write(out / f"confusion_{tag}.csv", _csv_bytes(rows, ["true"] + labels[:conf.shape[1]]))
        if plots:
            atomic_write(out / f"confusion_{tag}.png", _confusion_png(conf, labels, tag))
    if plots:
        for protocol in dict.fromkeys(r["protocol"] for r in per_subject):
            rows = [r for r in per_subject if r["protocol"] == protocol]
            share = max((r["share"] for r in rows if r["share"] is not None), default=None)
            rows = [r for r in rows if r["share"] == share]
            atomic_write(out / f"per_subject_{protocol}.png", _bars_png(rows, protocol, share))
        few = [r for r in summary if r["protocol"] == "fewshot"]
        if few:
            atomic_write(out / "fewshot_curve.png", _curve_png(few, summary, drawn_shares(res.folds)))
    return out


def _confusion_png(conf: np.ndarray, labels: list[str], title: str) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = conf.shape[0]
    rate = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * k, 1 + 0.5 * k))
    ax.imshow(rate, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(conf[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if rate[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), labels[:k], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k), labels[:k], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    return _fig_bytes(fig)


def _bars_png(rows: list[dict], protocol: str, share) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    subjects = list(dict.fromkeys(r["subject"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    acc = {(r["method"], r["subject"]): r["trial_acc"] for r in rows}
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(subjects) * max(1, len(methods) / 2)), 3.5))
    x = np.arange(len(subjects))
    for i, m in enumerate(methods):
        ax.bar(x + i * width - 0.4 + width / 2, [100 * acc.get((m, s), np.nan) for s in subjects],
               width, label=m)
    ax.set_xticks(x, subjects, rotation=70, fontsize=7)
    ax.set_ylabel("per-trial accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(protocol + ("" if share is None else f" (share {share:g})"))
    ax.legend(fontsize=7)
    return _fig_bytes(fig)


def drawn_shares(folds: list[dict]) -> dict:
    """Mean share of the target's trials actually drawn into training per (method, requested
    share) of the few-shot folds: it differs from the requested share when that was rounded to
    whole trials per class (e.g. ``--small-share one``). The few-shot curve's x values."""
    drawn: dict = {}
    for f in folds:
        if f["protocol"] == "fewshot" and f.get("actual_share") is not None:
            drawn.setdefault((f["method"], f["share"]), []).append(float(f["actual_share"]))
    return {k: float(np.mean(v)) for k, v in drawn.items()}


def _curve_png(few: list[dict], summary: list[dict], actual: dict | None = None) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for m in dict.fromkeys(r["method"] for r in few):
        rows = sorted((r for r in few if r["method"] == m), key=lambda r: r["share"])
        x = [100 * (actual or {}).get((m, r["share"]), r["share"]) for r in rows]
        line = ax.errorbar(x, [100 * r["trial_mean"] for r in rows],
                           yerr=[100 * r["trial_std"] for r in rows], marker="o", capsize=3, label=m)
        loso = [r for r in summary if r["method"] == m and r["protocol"] == "loso"]
        if loso:
            ax.axhline(100 * loso[0]["trial_mean"], ls=":", color=line[0].get_color())
    ax.set_xlabel("share of the target subject's trials in training (%, as drawn)")
    ax.set_ylabel("per-trial accuracy (%)")
    ax.set_ylim(top=100.5)
    ax.set_title("few-shot (dotted: LOSO)")
    ax.legend(fontsize=7)
    return _fig_bytes(fig)
