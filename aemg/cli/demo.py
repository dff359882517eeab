"""``aemg demo``: the whole pipeline on generated data, on a CPU, in minutes.

Synthetic dataset -> rectify (``OUT/archive``) -> tokenize (``OUT/corpus``) -> pre-train the tiny
model with reduced steps (``OUT/run``) -> LOSO and few-shot evaluation of the AEMG methods against
the classic baselines -> report (``OUT/report``, printed at the end).

The demo is a list of :class:`Step` objects run in order; each step reads and extends a shared
:class:`DemoState` and returns a one-line summary. Re-running the demo with the same ``--out``
resumes: every step skips what is already done (archived recordings, a complete corpus, a finished
pre-training run, a written report). ``--fast`` runs a reduced configuration (3 subjects, a few
pre-training steps, one epoch per fold) in well under a minute, for tests and smoke checks.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ._common import add_common_options


@dataclass
class DemoState:
    """What the steps share: the output folder, options and each step's results by name."""

    out: Path
    workers: int | None = None
    progress: bool = True
    #: options of the synthetic reader (fields of aemg.data.synthetic.SyntheticConfig)
    synthetic: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    #: pre-training: steps of each stage and sentences per step (tiny preset otherwise)
    pretrain_steps: int = 150
    pretrain_batch: int = 16
    #: torch intra-op threads while the demo runs (1: on a shared 2-core machine 2 threads made
    #: pre-training and fine-tuning 4-5x slower than 1; see docs/notes/eval.md)
    torch_threads: int = 1
    #: evaluation: methods, protocols, few-shot shares, per-method options, seed
    methods: tuple[str, ...] = ("lda", "lda-log-subjnorm", "aemg-probe", "aemg-finetune", "aemg-scratch",
                                "window-transformer")
    protocols: tuple[str, ...] = ("loso", "fewshot")
    shares: tuple[float, ...] = (0.25, 0.5)
    method_options: dict[str, dict] = field(default_factory=lambda: {
        m: {"epochs": 6} for m in ("aemg-finetune", "aemg-scratch", "window-transformer")})
    seed: int = 0


#: the reduced configuration of ``aemg demo --fast`` (fields of :class:`DemoState`)
FAST: dict[str, Any] = {
    "synthetic": {"n_subjects": 3, "n_gestures": 2, "repetitions": 2},
    "pretrain_steps": 4, "pretrain_batch": 8, "shares": (0.5,),
    "method_options": {m: {"epochs": 1} for m in ("aemg-finetune", "aemg-scratch", "window-transformer")},
}


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[DemoState], str]


def step_data(state: DemoState) -> str:
    """The synthetic dataset (generated on demand by its reader from a seeded config; no files)."""
    from ..data.readers import get_reader
    reader = get_reader("synthetic", **state.synthetic)
    state.results["reader"] = reader
    cfg = reader.config
    return (f"synthetic dataset: {len(reader.sources())} sources, {cfg.n_subjects} subjects on "
            f"{', '.join(cfg.devices)}, rest + {cfg.n_gestures} gestures x {cfg.repetitions} repetitions "
            f"of {cfg.trial_s:g} s (seed {cfg.seed})")


def step_rectify(state: DemoState) -> str:
    """Rectify the synthetic dataset into ``OUT/archive``."""
    from ..data.archive import open_archive
    from ..data.pipeline import rectify_dataset
    report = rectify_dataset("synthetic", state.out / "archive", reader_options=state.synthetic,
                             workers=state.workers, progress=state.progress)
    archive = open_archive(report.out)
    state.results["archive"] = archive
    return (f"archive {report.out}: {len(archive)} recordings, {len(archive.subjects())} subjects, "
            f"{archive.n_samples:,} samples at {archive.space.rate:g} Hz x {archive.space.channels} channels "
            f"({report.processed} sources read now, {report.skipped} already "
            f"done, {len(report.errors)} errors)")


def step_tokenize(state: DemoState) -> str:
    """Tokenize the archive into ``OUT/corpus`` (skipped when the corpus is complete)."""
    from ..tokenizer.corpus import CORPUS, open_corpus, tokenize_archive
    out = state.out / "corpus"
    done = (out / CORPUS).is_file()
    if not done:
        tokenize_archive(state.out / "archive", out, workers=state.workers, progress=state.progress)
    corpus = open_corpus(out)
    state.results["corpus"] = corpus
    C, L = corpus.token_shape
    return (f"corpus {out}: {corpus.n_sentences} sentences, {corpus.n_tokens} tokens of {C} channels x {L} "
            f"samples" + (" (already done)" if done else ""))


def step_pretrain(state: DemoState) -> str:
    """Pre-train the tiny model for ``pretrain_steps`` per stage into ``OUT/run`` (resumed if
    interrupted, skipped when finished)."""
    from ..train import pretrain
    from ..train.checkpoint import has_checkpoint, load_checkpoint
    run = state.out / "run"
    steps = state.pretrain_steps
    if has_checkpoint(run):
        st = load_checkpoint(run).state
        if int(st.get("stage", 0)) == 2 and int(st.get("step", 0)) >= steps:
            state.results["run"] = run
            return f"run {run}: already pre-trained ({steps} + {steps} steps)"
    r = pretrain(state.results["corpus"], run, "tiny", steps=steps, batch_size=state.pretrain_batch,
                 seed=state.seed, resume=has_checkpoint(run), progress=state.progress)
    state.results["run"] = run
    parts = []
    for s, row in sorted(r.final.items()):
        extra = (f"accuracy {row['accuracy']:.1%}" if s == 2 and row.get("accuracy") not in (None, "")
                 else f"loss {row['loss']:.3f}")
        parts.append(f"stage {s} {row['step']} steps, {extra}")
    return f"run {run}: tiny preset, {'; '.join(parts) or 'resumed'}"


def step_evaluate(state: DemoState) -> str:
    """LOSO and few-shot evaluation of :attr:`DemoState.methods` on the archive's trials; writes
    the report to ``OUT/report`` (skipped when ``OUT/report/demo.json`` exists)."""
    import json

    from ..eval import evaluate, load_trials, write_report
    from ..eval.methods import AEMG_METHODS
    from ..train.checkpoint import write_json_atomic
    report = state.out / "report"
    marker = report / "demo.json"
    if marker.is_file():
        state.results["report"] = report
        summary = json.loads(marker.read_text())["summary"]
        done = " (already done)"
    else:
        trials = load_trials(state.out / "archive")
        options = {m: dict(v) for m, v in state.method_options.items()}
        for m in AEMG_METHODS:
            options.setdefault(m, {}).setdefault("run", str(state.results["run"]))
        res = evaluate(trials, state.methods, state.protocols, seeds=(state.seed,), shares=state.shares,
                       method_options=options)
        write_report(res, report)
        summary = res.summary()
        write_json_atomic(marker, {"summary": summary})
        state.results["report"] = report
        done = ""
    loso = ", ".join(f"{r['method']} {r['trial_mean']:.0%}" for r in summary if r["protocol"] == "loso")
    return f"LOSO trial accuracy: {loso}; report {report / 'results.md'}{done}"


STEPS: list[Step] = [Step("data", step_data), Step("rectify", step_rectify), Step("tokenize", step_tokenize),
                     Step("pretrain", step_pretrain), Step("evaluate", step_evaluate)]


def run_demo(out: str | Path, *, workers: int | None = None, progress: bool = True,
             synthetic: dict[str, Any] | None = None, echo: Callable[[str], None] = print,
             fast: bool = False, **options: Any) -> DemoState:
    """Run :data:`STEPS` in order with outputs under ``out``; ``echo`` gets one line per step.

    ``synthetic`` overrides fields of the synthetic dataset's config (e.g. ``{"n_subjects": 2}``);
    ``fast`` starts from :data:`FAST`; ``options`` set other :class:`DemoState` fields
    (``pretrain_steps``, ``methods``, ``protocols``, ``shares``, ``method_options``...).
    """
    settings = {**(FAST if fast else {}), **options}
    settings["synthetic"] = {**settings.get("synthetic", {}), **(synthetic or {})}
    state = DemoState(Path(out), workers=workers, progress=progress, **settings)
    state.out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(state.torch_threads)))
    try:
        for i, step in enumerate(STEPS, 1):
            t0 = time.perf_counter()
            line = step.run(state)
            echo(f"[{i}/{len(STEPS)}] {step.name}: {line} ({time.perf_counter() - t0:.1f} s)")
    finally:
        torch.set_num_threads(threads)
    echo(f"demo done in {time.perf_counter() - t_all:.1f} s; outputs in {state.out}")
    if "report" in state.results:
        echo(f"report: {state.results['report'] / 'results.md'}")
    return state


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="run the whole pipeline on generated data (CPU, minutes)",
                              description=__doc__.splitlines()[0])
    p.add_argument("--out", default="aemg-demo", help="output folder (default ./aemg-demo)")
    p.add_argument("--fast", action="store_true",
                   help="reduced configuration (3 subjects, a few pre-training steps; under a minute)")
    add_common_options(p, workers=True, progress=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_demo(args.out, workers=args.workers, progress=not args.no_progress, fast=args.fast)
    return 0
