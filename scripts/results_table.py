"""Markdown tables (one per dataset) from ``aemg evaluate`` report folders.

Usage: python scripts/results_table.py REPORTS_DIR [> tables.md]

Report folders are named ``<dataset>_<tag>`` (as scripts/evaluate_real.sh writes them). Rows are
``method`` (plus ``[tag]`` for ablation / subset reports), columns the protocols; each cell is
``trial mean ± std / window mean ± std`` in % over the subjects of that report (n in the row).
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

PLAIN_TAGS = {"lda", "probe", "probe_norm"}        # full-set reports: rows named by the method alone
PROTOCOL_ORDER = ["loso", "fewshot", "intra"]
DATASETS = ["coteallard", "3dc", "uci_myo"]


def _pct(value: str, scale: float) -> float | None:
    return None if value in ("", "None") else float(value) * scale


def _cell(row: dict, scale: float) -> str:
    t, ts = _pct(row["trial_mean"], scale), _pct(row["trial_std"], scale)
    w, ws = _pct(row["window_mean"], scale), _pct(row["window_std"], scale)
    text = f"{t:.1f} ± {ts:.1f}"
    return text + (f" / {w:.1f} ± {ws:.1f}" if w is not None else " / –")


def tables(reports: Path) -> str:
    rows_by_dataset: dict[str, list[dict]] = {}
    for path in sorted(reports.glob("*/results.csv")):
        name = path.parent.name
        dataset = next((d for d in DATASETS if name.startswith(d + "_")), None)
        if dataset is None:
            continue
        tag = name[len(dataset) + 1:]
        for row in csv.DictReader(path.open()):
            row["tag"] = tag
            rows_by_dataset.setdefault(dataset, []).append(row)
    out = []
    for dataset in [d for d in DATASETS if d in rows_by_dataset]:
        rows = rows_by_dataset[dataset]
        values = [float(r[k]) for r in rows for k in ("trial_mean", "window_mean")
                  if r[k] not in ("", "None")]
        scale = 100.0 if values and max(values) <= 1.0 else 1.0
        protocols = [p for p in PROTOCOL_ORDER if any(r["protocol"] == p for r in rows)]
        head = []
        for p in protocols:
            shares = sorted({r["share"] for r in rows if r["protocol"] == p})
            head += [(p, s) for s in shares]
        table: dict[tuple, dict] = {}
        for r in rows:
            label = r["method"] if r["tag"] in PLAIN_TAGS else f"{r['method']} [{r['tag']}]"
            table.setdefault((label, r["subjects"]), {})[(r["protocol"], r["share"])] = r
        out.append(f"### {dataset}\n")
        names = [p if p != "fewshot" else f"few-shot {s}" for p, s in head]
        out.append("| method (subjects) | " + " | ".join(names) + " |")
        out.append("|---|" + "---|" * len(head))
        for (label, n), cells in table.items():
            out.append(f"| {label} ({n}) | " + " | ".join(_cell(cells[h], scale) if h in cells else ""
                                                       for h in head) + " |")
        out.append("")
        out.append(_seconds(reports, dataset))
    return "\n".join(out)


def _seconds(reports: Path, dataset: str) -> str:
    """Summed fold seconds (fit + predict, from folds.csv) per report, method and protocol."""
    parts = []
    for path in sorted(reports.glob(f"{dataset}_*/folds.csv")):
        totals: dict[tuple, list] = {}
        for r in csv.DictReader(path.open()):
            t = totals.setdefault((r["method"], r["protocol"]), [0.0, 0])
            t[0] += float(r["seconds"] or 0)
            t[1] += 1
        parts += [f"{m} {p} [{path.parent.name[len(dataset) + 1:]}]: {t:.0f} s / {n} folds"
                  for (m, p), (t, n) in totals.items()]
    return "Fold seconds (fit + predict, summed): " + "; ".join(parts) + ".\n"


if __name__ == "__main__":
    print(tables(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/res/reports")))
