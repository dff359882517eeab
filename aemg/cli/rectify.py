"""``aemg rectify READER SRC OUT``: raw dataset -> rectified archive (see :func:`rectify_dataset`)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from ..errors import ConfigError
from ._common import add_common_options, positive_float, positive_int

#: reader options that have their own flag (named in the errors about them)
OPTION_FLAGS = {"pattern": "--pattern", "device": "--device", "rate": "--source-rate"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "rectify", help="rectify a dataset into an archive of the standard space",
        description="Read every file of a dataset, rectify it into the standard space and write an "
                    "archive folder. Re-running the same command resumes an interrupted run.")
    p.add_argument("reader", help="reader name (see `aemg datasets`)")
    p.add_argument("src", help="dataset folder ('-' for the reader's default under the data root, "
                               "or for readers that need none, e.g. synthetic)")
    p.add_argument("out", help="archive folder to create or resume")
    add_rectify_options(p)
    add_common_options(p, workers=True, progress=True, scheduler=True)
    p.set_defaults(func=run)


def parse_options(pairs: list[str]) -> dict:
    """``["k=v", ...]`` -> ``{k: v}`` with JSON values where they parse (``"n=3"`` -> 3)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option {pair!r}: expected KEY=VALUE")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def add_rectify_options(p) -> None:
    """Standard space, reader, error and shard options (``aemg rectify`` and ``aemg prepare``)."""
    p.add_argument("--rate", type=positive_float,
                   help="standard sampling rate, Hz (default: StandardSpace's)")
    p.add_argument("--channels", type=positive_int,
                   help="standard number of channels (default: StandardSpace's)")
    p.add_argument("--stop-on-error", action="store_true",
                   help="stop (exit 2) at the first bad file instead of skipping it")
    p.add_argument("--pattern", help="reader option pattern: path template of the files with {fields}, e.g. "
                                     "'P{subject}/gesture{label}_rep{trial}.csv' (generic reader)")
    p.add_argument("--device", help="reader option device: device name or spec, e.g. ring:8 (generic reader)")
    p.add_argument("--source-rate", type=positive_float,
                   help="reader option rate: the files' sampling rate, Hz (generic reader)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="any reader option; VALUE is read as JSON when it parses (numbers, true, "
                        "lists), else as a string; repeatable")
    from ..data.archive import DEFAULT_SHARD_BYTES

    p.add_argument("--shard-mb", type=positive_float, default=DEFAULT_SHARD_BYTES / 2**20,
                   help="samples per shard, MiB (default %(default)g)")
    p.add_argument("--precision", choices=("float32", "float64"), default="float32",
                   help="arithmetic of the resampler, filters and topology product: float32 (default; "
                        "RMS difference from float64 a few 1e-6 of the signal RMS) or float64 (SciPy's "
                        "exact float64 path). Stored in the archive: a resumed run must use the same one")


def rectify_arguments(args: argparse.Namespace):
    """``(StandardSpace, reader options)`` of :func:`add_rectify_options`' arguments (reader options
    checked against ``args.reader``)."""
    from ..data.readers import reader_class
    from ..data.readers.base import check_options
    from ..data.rectify import StandardSpace

    options = parse_options(args.option)
    for key, value in (("pattern", args.pattern), ("device", args.device), ("rate", args.source_rate)):
        if value is not None:
            if key in options:
                raise ConfigError(f"{OPTION_FLAGS[key]} and --option {key}=... both given; keep one")
            options[key] = value
    check_options(reader_class(args.reader), options, flags=OPTION_FLAGS)
    changes = {k: v for k, v in (("rate", args.rate), ("channels", args.channels)) if v is not None}
    return dataclasses.replace(StandardSpace(), **changes), options


def run(args: argparse.Namespace) -> int:
    from ..data.pipeline import rectify_dataset

    space, options = rectify_arguments(args)
    report = rectify_dataset(args.reader, args.out, space, root=None if args.src == "-" else args.src,
                             reader_options=options, workers=args.workers,
                             on_error="stop" if args.stop_on_error else "skip",
                             progress=not args.no_progress, shard_bytes=int(args.shard_mb * 2**20),
                             scheduler=args.scheduler, precision=args.precision)
    print(report.summary())
    if report.errors:
        print(f"{len(report.errors)} file(s) skipped; see {report.out / 'errors.jsonl'}", file=sys.stderr)
    return 0
