"""Write an evaluation report folder.

Files (every one written to a temporary name, then renamed, so none is ever half-written):

- ``results.md``: the regime table (:func:`regime_table`: one row per method, one column per
  regime, per-trial accuracy) and the full table; ``results.csv``, ``results.json``: mean and std
  over subjects of the per-trial (and per-window) accuracy for every method x regime (x few-shot
  share); the JSON also holds the run's configuration, notes and the regime table's cells.
- ``per_subject.csv``: accuracy per method, regime, share and subject (averaged over seeds).
- ``folds.csv``: one row per method and fold.
- ``confusion_<method>_<regime>[_<share>].csv`` and ``.png``: trial confusion matrices summed over
  folds (rows: true class, columns: predicted).
- ``per_subject_<regime>.png``: per-subject bar chart of every method.
- ``regimes.png``: per-trial accuracy of every method under every regime (hatched: repeated from a
  poorer regime).
- ``fewshot_curve.png``: accuracy against the few-shot share (when few-shot ran).

**Regime table**: a method run under regime R fills R's column. A requested regime richer than
every regime the method uses (:data:`~aemg.eval.protocols.POORER`) repeats the numbers of the
richest poorer regime it ran under, in parentheses: the method may be used with that information
but does not use it, so the column compares every method a user with that information can choose.
A method that cannot run with a column's information shows "-".
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
from .protocols import POORER, REGIMES
from .runner import Results, regime_of

#: column order of the regime table
COLUMN_ORDER = REGIMES + ("intra",)


def _csv_bytes(rows: list[dict], columns: list[str]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(r.get(k)) for k in columns})
    return buf.getvalue().encode()


def _cell(value) -> object:
    """A CSV cell: empty for None, JSON for nested values (a fold's inner ``choice``)."""
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def _fig_bytes(fig) -> bytes:
    return figure_png(fig, bbox_inches="tight")


def _pct(x) -> str:
    return "" if x is None else f"{100 * x:.1f}"


def _tag(method: str, regime: str, share) -> str:
    return f"{method}_{regime}" + ("" if share is None else f"_{share:g}")


def regime_cells(res: Results) -> tuple[list, list, dict]:
    """The regime table as data: (columns [(regime, share)], methods, cells) with
    ``cells[(method, column)] = (summary row, regime it came from)`` or absent ("-")."""
    summary = res.summary()
    by = {(r["method"], r["regime"], r["share"]): r for r in summary}
    wanted = {(g, None) for g in res.config.get("regimes", []) if g != "fewshot"}
    present = {(r["regime"], r["share"]) for r in summary} | wanted
    columns = sorted(present,
                     key=lambda c: (COLUMN_ORDER.index(c[0]) if c[0] in COLUMN_ORDER else 99, c[1] or 0))
    methods = list(dict.fromkeys([m for m in res.config.get("methods", [])
                                  if any(r["method"] == m for r in summary)]
                                 + [r["method"] for r in summary]))
    cells = {}
    for m in methods:
        for col in columns:
            regime, share = col
            if (m, regime, share) in by:
                cells[(m, col)] = (by[(m, regime, share)], regime)
                continue
            poorer = next((p for p in POORER.get(regime, ()) if (m, p, None) in by), None)
            if poorer is not None:
                cells[(m, col)] = (by[(m, poorer, None)], poorer)
    return columns, methods, cells


def _column_name(col) -> str:
    regime, share = col
    return regime if share is None else f"{regime} {100 * share:g} %"


def regime_table(res: Results) -> str:
    """Markdown: one row per method, one column per regime (few-shot: per share), per-trial
    accuracy in % (mean +- std over subjects); "(x)": the method uses nothing of that regime beyond
    a poorer one and repeats its numbers; "-": the method cannot run with that information."""
    columns, methods, cells = regime_cells(res)
    lines = ["| method | " + " | ".join(_column_name(c) for c in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for m in methods:
        row = []
        for col in columns:
            if (m, col) not in cells:
                row.append("-")
                continue
            r, came = cells[(m, col)]
            text = f"{_pct(r['trial_mean'])} +- {_pct(r['trial_std'])}"
            row.append(text if came == col[0] else f"({text})")
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def leader_table(res: Results, seed: int = 0) -> str:
    """Markdown: per regime column, the best method against the runner-up, paired over the users
    both were tested on (:func:`aemg.eval.stats.paired_comparison`: the lead with its 95 %
    bootstrap interval, seed ``seed``, Wilcoxon p, wins/ties/losses). Empty when no column has
    two methods."""
    from .stats import paired_comparison

    columns, methods, cells = regime_cells(res)
    users: dict = {}
    for r in res.per_subject():
        users.setdefault((r["method"], r["regime"], r["share"]), {})[r["subject"]] = r["trial_acc"]

    def users_in(method, col):  # the per-user accuracies behind a cell (its own or a poorer regime)
        came = cells[(method, col)][1]
        return users.get((method, came, col[1] if came == col[0] else None), {})

    lines = []
    for col in columns:
        ranked = sorted(((cells[(m, col)][0]["trial_mean"], m) for m in methods if (m, col) in cells),
                        key=lambda t: -t[0])
        if len(ranked) < 2:
            continue
        (_, top), (_, second) = ranked[:2]
        a, b = users_in(top, col), users_in(second, col)
        if len(set(a) & set(b)) < 2:
            continue
        r = paired_comparison(a, b, seed=seed)
        lines.append(f"| {_column_name(col)} | {top} | {second} | {r['diff']:+.1f} | "
                     f"[{r['ci'][0]:+.1f}, {r['ci'][1]:+.1f}] | {r['p_wilcoxon']:.2g} | "
                     f"{r['wins']}/{r['ties']}/{r['losses']} |")
    if not lines:
        return ""
    return "\n".join(["| regime | best | runner-up | lead, points | 95 % interval | Wilcoxon p | "
                      "wins/ties/losses |", "|---|---|---|---|---|---|---|", *lines]) + "\n"


def _grouping_text(res: Results) -> str:
    from .protocols import Grouping
    g = res.config.get("grouping") or {}
    return Grouping(g.get("by", "subject"), bool(g.get("within_subject")), g.get("train_sessions")).describe()


def _unit(res: Results) -> str:
    """What the means run over: subjects, or (subject, session) groups."""
    return "subjects" if (res.config.get("grouping") or {}).get("by", "subject") == "subject" else \
        "groups (subject/session)"


def results_markdown(res: Results) -> str:
    """The regime table and the full summary table as Markdown (accuracy in %, mean +- std over
    subjects)."""
    rest = res.config.get("rest_class")
    lines = [f"# Evaluation: {res.dataset}", "",
             f"{res.config.get('n_trials', '?')} trials at {res.config.get('rate', '?')} Hz; "
             f"seeds {res.config.get('seeds')}; rest class: {rest if rest is not None else 'none'}; "
             f"folds: {_grouping_text(res)}; accuracy in %, mean +- std over {_unit(res)}.", "",
             "## Per-trial accuracy by adaptation regime", "",
             "Regimes (what a method sees of the test user besides the trial): none = nothing; rest = one "
             "rest recording per session; online = its earlier trials, unlabelled; unlabelled = all its "
             "trials, unlabelled; fewshot = a labelled share (+ rest). (x): the method uses nothing more "
             "than a poorer regime and repeats its numbers; -: not applicable.", "",
             regime_table(res).rstrip("\n"), ""]
    leaders = leader_table(res)
    if leaders:
        lines += ["## Is the best method's lead real?", "",
                  "Per regime, the best method against the runner-up, paired over the users both were "
                  f"tested on: mean lead over {_unit(res)}, 95 % bootstrap interval (seed 0), Wilcoxon "
                  "signed-rank p, users won / tied / lost (`aemg compare` for any other pair).", "",
                  leaders.rstrip("\n"), ""]
    lines += ["## All results", "",
             "| method | protocol | regime | share | subjects | per trial | per window |",
             "|---|---|---|---|---|---|---|"]
    order = {g: i for i, g in enumerate(COLUMN_ORDER)}
    for r in sorted(res.summary(), key=lambda r: (order.get(r["regime"], 99), r["share"] or 0, r["method"])):
        win = ("" if r["window_mean"] is None else
               f"{_pct(r['window_mean'])} +- {_pct(r['window_std'])}")
        share = "" if r["share"] is None else f"{r['share']:g}"
        lines.append(f"| {r['method']} | {r['protocol']} | {r['regime']} | {share} "
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
    atomic_write(out / "results.csv",
                 _csv_bytes(summary, ["method", "protocol", "regime", "share", "subjects", "trial_mean",
                                      "trial_std", "window_mean", "window_std"]))
    columns, methods, cells = regime_cells(res)
    table = [{"method": m, "column": _column_name(c), "regime": c[0], "share": c[1], "from_regime": came,
              "trial_mean": r["trial_mean"], "trial_std": r["trial_std"]}
             for (m, c), (r, came) in cells.items()]
    atomic_write(out / "results.json", json.dumps(
        {"dataset": res.dataset, "classes": list(res.classes), "config": res.config,
         "notes": res.notes, "summary": summary, "regime_table": table}, indent=2).encode())
    atomic_write(out / "per_subject.csv",
                 _csv_bytes(per_subject, ["method", "protocol", "regime", "share", "subject", "trial_acc",
                                          "window_acc", "seeds"]))
    atomic_write(out / "folds.csv", _csv_bytes(res.folds, list(res.folds[0]) if res.folds else ["method"]))
    names = list(res.classes) or [str(i) for i in range(max((c.shape[0] for c in res.confusion.values()),
                                                             default=0))]
    for (method, regime, share), conf in res.confusion.items():
        tag = _tag(method, regime, share)
        labels = names + [str(i) for i in range(len(names), conf.shape[0])]
        rows = [{"true": labels[i], **{labels[j]: int(conf[i, j]) for j in range(conf.shape[1])}}
                for i in range(conf.shape[0])]
        atomic_write(out / f"confusion_{tag}.csv", _csv_bytes(rows, ["true"] + labels[:conf.shape[1]]))
        if plots:
            atomic_write(out / f"confusion_{tag}.png", _confusion_png(conf, labels, tag))
    if plots:
        for regime in dict.fromkeys(r["regime"] for r in per_subject):
            rows = [r for r in per_subject if r["regime"] == regime]
            share = max((r["share"] for r in rows if r["share"] is not None), default=None)
            rows = [r for r in rows if r["share"] == share]
            atomic_write(out / f"per_subject_{regime}.png", _bars_png(rows, regime, share))
        if cells:
            atomic_write(out / "regimes.png", _regimes_png(columns, methods, cells))
        few = [r for r in summary if r["regime"] == "fewshot"]
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


def _regimes_png(columns: list, methods: list, cells: dict) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 0.8 / max(len(columns), 1)
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(methods) * max(1, len(columns) / 3)), 3.5))
    x = np.arange(len(methods))
    for i, col in enumerate(columns):
        bars = [cells.get((m, col)) for m in methods]
        values = [100 * b[0]["trial_mean"] if b else np.nan for b in bars]
        errs = [100 * b[0]["trial_std"] if b else 0 for b in bars]
        drawn = ax.bar(x + i * width - 0.4 + width / 2, values, width, yerr=errs, capsize=2,
                       label=_column_name(col), color=f"C{i}")
        for rect, b in zip(drawn, bars):
            if b and b[1] != col[0]:  # repeated from a poorer regime
                rect.set_hatch("//")
                rect.set_alpha(0.5)
    ax.set_xticks(x, methods, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("per-trial accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("accuracy by adaptation regime (hatched: repeated from a poorer regime)", fontsize=9)
    ax.legend(fontsize=7)
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
        if regime_of(f) == "fewshot" and f.get("actual_share") is not None:
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
        loso = [r for p in POORER["fewshot"] for r in summary if r["method"] == m and r["regime"] == p]
        if loso:  # the method without the labelled share (rest or none regime)
            ax.axhline(100 * loso[0]["trial_mean"], ls=":", color=line[0].get_color())
    ax.set_xlabel("share of the target subject's trials in training (%, as drawn)")
    ax.set_ylabel("per-trial accuracy (%)")
    ax.set_ylim(top=100.5)
    ax.set_title("few-shot (dotted: LOSO, rest or none regime)")
    ax.legend(fontsize=7)
    return _fig_bytes(fig)
