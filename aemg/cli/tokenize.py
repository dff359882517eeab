"""``aemg tokenize ARCHIVE OUT``: rectified archive -> token corpus (see :func:`tokenize_archive`)."""
from __future__ import annotations

import argparse
import dataclasses
import json

from ._common import add_common_options, positive_float, positive_int


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "tokenize", help="tokenize an archive into a token corpus",
        description="Cut every trial of an archive into contraction-event tokens (or fixed windows) "
                    "and write a corpus of memory-mappable shards. Re-running the same command resumes.")
    p.add_argument("archive", help="archive folder written by `aemg rectify`")
    p.add_argument("out", help="corpus folder to create or resume")
    add_tokenizer_options(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_common_options(p, workers=True, progress=True, segment_backend=True, scheduler=True)
    p.set_defaults(func=run)


def add_tokenizer_options(p) -> None:
    """The tokenizer's options (``aemg tokenize`` and ``aemg prepare``)."""
    p.add_argument("--mode", choices=("events", "windows"), default="events",
                   help="contraction events (NCT, default) or fixed sliding windows (ablation)")
    p.add_argument("--token-s", type=positive_float, default=0.25, help="token length, seconds (default 0.25)")
    p.add_argument("--hop-s", type=positive_float, help="hop between token starts, seconds (default: token length)")
    p.add_argument("--max-len", type=positive_int, default=256, help="most tokens per sentence (default 256)")
    p.add_argument("--cap", choices=("first", "energy"), default="first",
                   help="which tokens a long sentence keeps (default: the first)")
    p.add_argument("--calibration", choices=("rest", "robust"), default="rest",
                   help="noise floor from the rest trials of each subject/session (default) or "
                        "robust statistics of each trial")
    p.add_argument("--no-event", choices=("background", "empty"), default="background",
                   help="a trial without events gives background tokens (default) or nothing")


def tokenizer_config(args: argparse.Namespace):
    """The TokenizerConfig of :func:`add_tokenizer_options`' arguments."""
    from ..tokenizer.tokens import TokenizerConfig

    return dataclasses.replace(TokenizerConfig(), token_s=args.token_s, hop_s=args.hop_s,
                               max_sentence_len=args.max_len, mode=args.mode, cap=args.cap,
                               calibration=args.calibration, no_event=args.no_event)


def run(args: argparse.Namespace) -> int:
    from ..tokenizer.corpus import tokenize_archive

    report = tokenize_archive(args.archive, args.out, tokenizer_config(args), workers=args.workers,
                              progress=not args.no_progress, backend=args.backend,
                              scheduler=args.scheduler)
    print(json.dumps(report.to_dict(), indent=1) if args.json else report.summary())
    return 0
