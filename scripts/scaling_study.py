"""Scaling study (issue 9 item 5): probe accuracy against pre-training material and steps.

Each condition pre-trains the tiny preset on a subset of the given corpora, then scores the probe
methods on a held-out evaluation archive (leave-one-dataset-out: the evaluation dataset must not be
among the corpora) with ``aemg evaluate``. Conditions:

- ``share=P``: a seeded P share of every corpus's sentences (trials), stratified per dataset;
- ``users=P``: every sentence of a seeded P share of each dataset's users;
- ``steps=S``: all the material, S steps per stage (S = 1 is the random-initialisation reference:
  the k-means codebook and target statistics are set, the weights moved by one AdamW step).

Every condition uses the same seed (0 by default) for the subset, the initialisation and the batch
order. Runs and reports live under ``--work``; a condition whose report exists is not re-run
(interrupt and re-run to resume; a pre-training run resumes from its last checkpoint). The result
table (Markdown + JSON) and a plot are rewritten after every condition.

Example (what docs/notes/generalisation.md reports)::

    python scripts/scaling_study.py --work /tmp/res/scaling --eval /tmp/res/arch/3dc \
        --corpora /tmp/res/corpus/coteallard /tmp/res/corpus/uci_myo /tmp/res/corpus/libemg_myo \
        --conditions steps=1,share=0.25,share=0.5,users=0.25,steps=100,users=0.5 \
        --reuse steps=300:/tmp/res/runs/for_3dc
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from aemg._io import atomic_write
from aemg.tokenizer.corpus import ConcatCorpus, open_corpus


def subset_indices(corpus, kind: str, share: float, seed: int) -> list[int]:
    """Indices of a seeded ``share`` of ``corpus``'s sentences (``kind="share"``) or of the
    sentences of a seeded ``share`` of each dataset's users (``kind="users"``), per dataset."""
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for ds in corpus.datasets:
        idx = corpus.select(dataset=ds)
        if kind == "share":
            n = max(1, int(round(share * len(idx))))
            keep += sorted(rng.choice(idx, size=n, replace=False).tolist())
        else:
            users = sorted({str(corpus.sentences[i]["subject"]) for i in idx})
            n = max(1, int(round(share * len(users))))
            chosen = set(rng.choice(users, size=n, replace=False).tolist())
            keep += corpus.select(dataset=ds, subject=chosen)
    return keep


def parse_condition(text: str) -> tuple[str, float]:
    kind, _, value = text.partition("=")
    if kind not in ("share", "users", "steps") or not value:
        raise SystemExit(f"scaling_study: condition {text!r}: expected share=P, users=P or steps=S")
    v = float(value)
    if (kind == "steps" and (v < 1 or v != int(v))) or (kind != "steps" and not 0 < v <= 1):
        raise SystemExit(f"scaling_study: condition {text!r}: bad value")
    return kind, v


def pretrain_condition(kind: str, value: float, corpora, run: Path, seed: int) -> None:
    from aemg.train.checkpoint import has_checkpoint
    from aemg.train.pretrain import pretrain
    if (run / "done").exists():
        return
    if kind == "steps":
        data, steps = ConcatCorpus(corpora), int(value)
    else:
        full = ConcatCorpus(corpora)
        data, steps = full.subset(sorted(subset_indices(full, kind, value, seed))), None
    print(f"[{kind}={value:g}] pre-training on {data.n_sentences} sentences, {data.n_tokens} tokens, "
          f"{len(data.subjects)} users -> {run}", flush=True)
    pretrain(data, run, "tiny", steps=steps, seed=seed, resume=has_checkpoint(run), progress=False)
    (run / "done").write_text(json.dumps({"sentences": data.n_sentences, "tokens": data.n_tokens,
                                          "users": len(data.subjects)}))


def evaluate(run: Path, archive: str, report: Path, methods: str, regimes: str, seed: int,
             extra: list[str]) -> dict:
    if not (report / "results.json").exists():
        cmd = [sys.executable, "-m", "aemg", "evaluate", archive, "--out", str(report), "--methods", methods,
               "--checkpoint", str(run), "--regimes", regimes, "--seeds", str(seed), "--no-plots", *extra]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return json.loads((report / "results.json").read_text())


def material(run: Path) -> dict:
    done = run / "done"
    return json.loads(done.read_text()) if done.exists() else {}


def write_table(rows: list[dict], work: Path) -> None:
    cols = sorted({(r["method"], r["column"]) for r in rows})
    lines = ["| condition | steps/stage | sentences | users | "
             + " | ".join(f"{m} {c}" for m, c in cols) + " |",
             "|---" * (4 + len(cols)) + "|"]
    for cond in dict.fromkeys(r["condition"] for r in rows):
        rs = [r for r in rows if r["condition"] == cond]
        cell = {(r["method"], r["column"]): f"{100 * r['trial_mean']:.1f}" for r in rs}
        r0 = rs[0]
        lines.append(f"| {cond} | {r0['steps']} | {r0.get('sentences', '')} | {r0.get('users', '')} | "
                     + " | ".join(cell.get(c, "") for c in cols) + " |")
    atomic_write(work / "scaling.md", "\n".join(lines) + "\n")
    atomic_write(work / "scaling.json", json.dumps(rows, indent=1))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for m, c in cols:
        mine = [r for r in rows if r["method"] == m and r["column"] == c]
        full = [(1.0, 100 * r["trial_mean"]) for r in mine if r["kind"] == "full"]
        for kind, style in (("share", "o-"), ("users", "s--")):
            pts = sorted([(r["x_material"], 100 * r["trial_mean"]) for r in mine if r["kind"] == kind] + full)
            if len(pts) > len(full):
                axes[0].plot(*zip(*pts), style, label=f"{m} {c} ({'trials' if kind == 'share' else 'users'})")
        pts = sorted((r["steps"], 100 * r["trial_mean"]) for r in mine if r["kind"] in ("steps", "full"))
        if pts:
            axes[1].plot(*zip(*pts), "o-", label=f"{m} {c}")
    for ax, xlabel in zip(axes, ("share of the pre-training material", "steps per stage (all material)")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("LOSO trial accuracy, %")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[1].set_xscale("log")
    fig.tight_layout()
    tmp = work / "scaling.png.tmp"
    fig.savefig(tmp, format="png", dpi=120)
    os.replace(tmp, work / "scaling.png")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", required=True, help="folder for the runs, reports and the table")
    p.add_argument("--eval", required=True, help="evaluation archive (held out of the corpora)")
    p.add_argument("--corpora", nargs="+", required=True, help="pre-training corpus folders")
    p.add_argument("--conditions", default="steps=1,share=0.25,share=0.5,users=0.25,steps=100,users=0.5")
    p.add_argument("--reuse", action="append", default=[], metavar="COND:RUN",
                   help="an existing run for a condition, e.g. steps=300:/tmp/res/runs/for_3dc (the full "
                        "material at the preset's steps)")
    p.add_argument("--methods", default="aemg-probe,aemg-probe-tok,aemg-probe-em")
    p.add_argument("--regimes", default="rest,unlabelled")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-arg", action="append", default=[], help="extra argument for aemg evaluate")
    args = p.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    corpora = [open_corpus(c) for c in args.corpora]
    full_steps = 300  # the tiny preset's steps per stage
    reuse = {}
    for r in args.reuse:
        cond, _, run = r.partition(":")
        reuse[parse_condition(cond)] = Path(run)
    conds = list(reuse) + [parse_condition(c) for c in args.conditions.split(",") if c]
    rows: list[dict] = []
    for kind, value in dict.fromkeys(conds):
        name = f"{kind}_{value:g}"
        run = reuse.get((kind, value), work / "runs" / name)
        if (kind, value) not in reuse:
            pretrain_condition(kind, value, corpora, run, args.seed)
        res = evaluate(run, args.eval, work / "reports" / name, args.methods, args.regimes, args.seed,
                       args.eval_arg)
        mat = material(run) or {"sentences": sum(c.n_sentences for c in corpora),
                                "users": len({f"{s['dataset']}/{s['subject']}" for c in corpora
                                              for s in c.sentences})}
        steps = int(value) if kind == "steps" else full_steps
        full = kind == "steps" and steps == full_steps
        for r in res["regime_table"]:
            if r["regime"] not in args.regimes.split(",") or r["from_regime"] != r["regime"]:
                continue
            rows.append({"condition": f"{kind}={value:g}", "kind": "full" if full else kind, "steps": steps,
                         **mat, "method": r["method"], "column": r["column"], "trial_mean": r["trial_mean"],
                         "trial_std": r["trial_std"], "x_material": 1.0 if full else value})
        write_table(rows, work)
        print((work / "scaling.md").read_text(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
