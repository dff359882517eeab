"""``aemg prepare READER SRC OUT``: raw dataset -> token corpus in one pass (see :func:`prepare_dataset`).

The options are those of ``aemg rectify`` (space, reader options, shards) and ``aemg tokenize``
(tokenizer); the result is the corpus those two commands make.
"""
from __future__ import annotations

import argparse
import sys

from ._common import add_common_options
from .rectify import add_rectify_options, rectify_arguments
from .tokenize import add_tokenizer_options, tokenizer_config


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
    add_rectify_options(p)  # rectify's options
    add_tokenizer_options(p)  # tokenize's options
    add_common_options(p, workers=True, progress=True, segment_backend=True, scheduler=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.prepare import prepare_dataset

    space, options = rectify_arguments(args)
    config = tokenizer_config(args)
    report = prepare_dataset(args.reader, args.out, space, config, archive=args.archive,
                             keep_archive=not args.no_archive, root=None if args.src == "-" else args.src,
                             reader_options=options, workers=args.workers,
                             on_error="stop" if args.stop_on_error else "skip",
                             progress=not args.no_progress, backend=args.backend,
                             shard_bytes=int(args.shard_mb * 2**20), scheduler=args.scheduler,
                             precision=args.precision)
    print(report.summary())
    if report.rectify.errors:
        print(f"{len(report.rectify.errors)} file(s) skipped; see the archive's errors.jsonl",
              file=sys.stderr)
    return 0
