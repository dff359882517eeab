"""``aemg demo``: the whole pipeline on generated data, on a CPU, in a few seconds.

The demo is a list of :class:`Step` objects run in order; each step reads and extends a shared
:class:`DemoState` and returns a one-line summary. Later stages (tokenize, pretrain, evaluate) add
themselves by appending to :data:`STEPS`. Re-running the demo with the same ``--out`` resumes: the
rectify step skips what is already archived.
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
            f"({report.processed} sources read now, {report.skipped} already done, {len(report.errors)} errors)")


STEPS: list[Step] = [Step("data", step_data), Step("rectify", step_rectify)]


def run_demo(out: str | Path, *, workers: int | None = None, progress: bool = True,
             synthetic: dict[str, Any] | None = None, echo: Callable[[str], None] = print) -> DemoState:
    """Run :data:`STEPS` in order with outputs under ``out``; ``echo`` gets one line per step.

    ``synthetic`` overrides fields of the synthetic dataset's config (e.g. ``{"n_subjects": 2}``).
    """
    state = DemoState(Path(out), workers=workers, progress=progress, synthetic=dict(synthetic or {}))
    state.out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    for i, step in enumerate(STEPS, 1):
        t0 = time.perf_counter()
        line = step.run(state)
        echo(f"[{i}/{len(STEPS)}] {step.name}: {line} ({time.perf_counter() - t0:.1f} s)")
    echo(f"demo done in {time.perf_counter() - t_all:.1f} s; outputs in {state.out}")
    return state


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="run the pipeline on generated data (CPU, seconds)",
                              description=__doc__.splitlines()[0])
    p.add_argument("--out", default="aemg-demo", help="output folder (default ./aemg-demo)")
    add_common_options(p, workers=True, progress=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_demo(args.out, workers=args.workers, progress=not args.no_progress)
    return 0
