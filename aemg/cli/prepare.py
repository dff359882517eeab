"""``aemg prepare READER SRC OUT``: raw dataset -> token corpus in one pass (see :func:`prepare_dataset`).

The options are those of ``aemg rectify`` (space, reader options, shards) and ``aemg tokenize``
(tokenizer); the result is the corpus those two commands make.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

from ._common import add_common_options


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare", help="rectify and tokenize a dataset in one pass (raw files -> token corpus)",
        description="Read, rectify and tokenize every file of a dataset without reading an "
                    "intermediate archive back: the corpus `aemg rectify` then `aemg tokenize` make. "
                    "The archive is kept as the resume checkpoint (OUT.archive by default); re-running "
                    "the same command resumes an interrupted run.")
    p.add_argument("reader", help="reader name (see `aemg datasets`)")
    p.add_argument("src", help="dataset folder ('-' for the reader's default under the data root)")
    p.add_argument("out", help="corpus folder to create or resume")
    p.add_argument("--archive", help="archive folder (default: OUT.archive beside the corpus)")
    p.add_argument("--no-archive", action="store_true",
                   help="delete the archive once the corpus is complete")
    # rectify's options
    p.add_argument("--rate", type=float, help="standard sampling rate, Hz (default: StandardSpace's)")
    p.add_argument("--channels", type=int, help="standard number of channels (default: StandardSpace's)")
    p.add_argument("--stop-on-error", action="store_true",
                   help="stop (exit 2) at the first bad file instead of skipping it")
    p.add_argument("--pattern", help="reader option pattern (generic reader)")
    p.add_argument("--device", help="reader option device, e.g. ring:8 (generic reader)")
    p.add_argument("--source-rate", type=float, help="reader option rate: the files' rate, Hz (generic reader)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="any reader option (VALUE read as JSON when it parses); repeatable")
    p.add_argument("--shard-mb", type=float, default=64.0, help="archive samples per shard, MiB (default 64)")
    # tokenize's options
    p.add_argument("--mode", choices=("events", "windows"), default="events",
                   help="contraction events (default) or fixed sliding windows")
    p.add_argument("--token-s", type=float, default=0.25, help="token length, seconds (default 0.25)")
    p.add_argument("--hop-s", type=float, help="hop between token starts, seconds (default: token length)")
    p.add_argument("--max-len", type=int, default=256, help="most tokens per sentence (default 256)")
    p.add_argument("--cap", choices=("first", "energy"), default="first",
                   help="which tokens a long sentence keeps (default: the first)")
    p.add_argument("--calibration", choices=("rest", "robust"), default="rest",
                   help="noise floor from the rest trials of each subject/session (default) or robust")
    p.add_argument("--no-event", choices=("background", "empty"), default="background",
                   help="a trial without events gives background tokens (default) or nothing")
    add_common_options(p, workers=True, progress=True, segment_backend=True, scheduler=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.prepare import prepare_dataset
    from ..data.rectify import StandardSpace
    from ..errors import ConfigError
    from ..tokenizer.tokens import TokenizerConfig
    from .rectify import parse_options

    options = parse_options(args.option)
    for key, flag, value in (("pattern", "--pattern", args.pattern), ("device", "--device", args.device),
                             ("rate", "--source-rate", args.source_rate)):
        if value is not None:
            if key in options:
                raise ConfigError(f"{flag} and --option {key}=... both given; keep one")
            options[key] = value
    if args.shard_mb <= 0:
        raise ConfigError(f"--shard-mb {args.shard_mb}: must be positive")
    changes = {k: v for k, v in (("rate", args.rate), ("channels", args.channels)) if v is not None}
    space = dataclasses.replace(StandardSpace(), **changes)
    config = dataclasses.replace(TokenizerConfig(), token_s=args.token_s, hop_s=args.hop_s,
                                 max_sentence_len=args.max_len, mode=args.mode, cap=args.cap,
                                 calibration=args.calibration, no_event=args.no_event)
    report = prepare_dataset(args.reader, args.out, space, config, archive=args.archive,
                             keep_archive=not args.no_archive, root=None if args.src == "-" else args.src,
                             reader_options=options, workers=args.workers,
                             on_error="stop" if args.stop_on_error else "skip",
                             progress=not args.no_progress, backend=args.backend,
                             shard_bytes=int(args.shard_mb * 2**20), scheduler=args.scheduler)
    print(report.summary())
    if report.rectify.errors:
        print(f"{len(report.rectify.errors)} file(s) skipped; see the archive's errors.jsonl", file=sys.stderr)
    return 0
