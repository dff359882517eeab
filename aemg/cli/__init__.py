"""The ``aemg`` command line: a thin layer over the public Python API.

Each subcommand lives in its own module ``aemg/cli/<name>.py`` that defines::

    def register(subparsers) -> None   # adds its parser with set_defaults(func=run)
    def run(args) -> int               # calls the public API; returns the exit code

and is listed in :data:`COMMANDS`. Errors derived from :class:`aemg.errors.AemgError` are printed
as one line (``aemg: error: <where>: <problem>``) with exit code 2; anything else is a bug and
shows its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .._version import __version__
from ..errors import AemgError

COMMANDS: list[str] = ["datasets", "rectify", "demo", "evaluate", "tokenize", "plot_events",
                       "pretrain", "vocab", "embed", "prepare"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aemg", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"aemg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except AemgError as exc:
        print(f"aemg: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aemg: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
