"""Linear probe on an UNTRAINED backbone with the architecture of a pre-training run (ablation).

Usage: python scripts/probe_random_init.py ARCHIVE RUN OUT [--sessions S1,S2] [--seed 0]

Same tokens, calibration, pooling and classifier as ``aemg-probe`` with ``--checkpoint RUN``; only
the weights differ: the model is built from the run's config after ``torch.manual_seed(seed)``.
Writes an ``aemg evaluate`` report folder (LOSO). The difference to ``aemg-probe`` measures what
pre-training adds to the frozen features.
"""
from __future__ import annotations

import argparse
import dataclasses

import torch

from aemg.eval.baselines import register_method
from aemg.eval.methods import AemgProbe, load_run, state_sha256
from aemg.eval.report import write_report
from aemg.eval.runner import evaluate
from aemg.eval.trials import load_trials
from aemg.model import AEMG


class RandomInitProbe(AemgProbe):
    """``aemg-probe`` whose backbone is freshly initialised (seeded) instead of pre-trained."""

    init_seed = 0
    _cache: dict = {}

    def _run(self):
        run = load_run(self.run)
        key = (str(run.path), self.init_seed)
        if key not in self._cache:
            torch.manual_seed(self.init_seed)
            model = AEMG(run.model_config).eval()
            self._cache[key] = dataclasses.replace(run, model=model,
                                                   backbone_sha256=state_sha256(model.backbone))
        return self._cache[key]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("archive")
    p.add_argument("run")
    p.add_argument("out")
    p.add_argument("--sessions", default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    RandomInitProbe.init_seed = args.seed
    register_method("aemg-probe-random", RandomInitProbe)
    trials = load_trials(args.archive, sessions=args.sessions.split(",") if args.sessions else None)
    res = evaluate(trials, ["aemg-probe-random"], ["loso"], seeds=[args.seed],
                   method_options={"aemg-probe-random": {"run": args.run}})
    print(write_report(res, args.out, plots=False))


if __name__ == "__main__":
    main()
