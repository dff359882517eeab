"""``aemg pretrain CORPUS [CORPUS ...] --out RUN``: two-stage AEMG pre-training."""
from __future__ import annotations

import argparse
import shlex

from ._common import positive_int, torch_device


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pretrain", help="pre-train AEMG (VQ vocabulary, then masked token modelling) on token corpora",
        description="Pre-train AEMG on one or several token corpora (mixed). Writes RUN/log.csv, "
                    "RUN/config.json and safetensors checkpoints; --resume continues an interrupted run "
                    "exactly. Multi-GPU / multi-machine: launch with torchrun.")
    p.add_argument("corpus", nargs="+", help="token corpus folder(s) written by `aemg tokenize`")
    p.add_argument("--out", required=True, help="run folder")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--preset", choices=("tiny", "base", "large"), default=None,
                   help="model preset (default tiny)")
    g.add_argument("--config", help="TOML or JSON config file (see aemg.model.config)")
    p.add_argument("--stage", choices=("1", "2", "both"),
                   help="stages to run (default both; with --resume the run's)")
    p.add_argument("--steps", type=positive_int, help="steps per stage (overrides the config)")
    p.add_argument("--batch-size", type=positive_int,
                   help="global batch, sentences per step (overrides the config)")
    p.add_argument("--seed", type=int, help="seed of batch order, initialisation and masks (default 0)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint; the other arguments must be "
                        "those of the run (any not given are taken from it)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run, on_interrupt=resume_hint)


def resume_hint(argv: list[str], exc: BaseException) -> str:
    """What to print after Ctrl-C: the checkpoint written and the exact command that resumes."""
    argv = list(argv)
    if "--resume" not in argv:
        argv.append("--resume")
    command = f"aemg {shlex.join(argv)}"
    if getattr(exc, "checkpoint", None) is not None:
        return (f"checkpoint {exc.checkpoint} written after stage {exc.stage} step {exc.step}; "
                f"resume with: {command}")
    return f"resume from the last checkpoint written (if any) with: {command}"


def run(args: argparse.Namespace) -> int:
    from ..model.config import load_config, preset
    from ..tokenizer.corpus import open_corpus
    from ..train.pretrain import pretrain

    # with --resume and no model choice, the run's own config is used
    config = load_config(args.config) if args.config else \
        preset(args.preset) if args.preset else None if args.resume else preset("tiny")
    corpora = [open_corpus(c) for c in args.corpus]
    r = pretrain(corpora, args.out, config, stage=args.stage, steps=args.steps, batch_size=args.batch_size,
                 seed=args.seed, resume=args.resume, device=torch_device(args.device),
                 progress=not args.no_progress, tensorboard=args.tensorboard)
    for s, row in sorted(r.final.items()):
        if s == 1:
            print(f"stage 1: {row['step']} steps, loss {row['loss']:.4f}, "
                  f"reconstruction {row['rec_loss']:.4f}, codebook usage {row['usage']:.1%}, "
                  f"perplexity {row['perplexity']:.1f}")
        else:
            print(f"stage 2: {row['step']} steps, loss {row['loss']:.4f}, masked-token "
                  f"accuracy {row['accuracy']:.1%}")
    print(f"checkpoint: {r.checkpoint}  ({r.wall_s:.0f} s)")
    return 0
