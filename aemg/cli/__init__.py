"""The ``aemg`` command line: a thin layer over the public Python API.

Each subcommand lives in its own module ``aemg/cli/<name>.py`` that defines::

    def register(subparsers) -> None   # adds its parser with set_defaults(func=run)
    def run(args) -> int               # calls the public API; returns the exit code

and is listed in :data:`COMMANDS`. One error path: a bad command line (argparse), an
:class:`aemg.errors.AemgError` and an ``OSError`` (permissions, a full disk, a missing folder) are
printed as one line naming the option or path (``aemg: error: <where>: <problem>``) with exit
code 2; anything else is a bug and shows its traceback. Ctrl-C exits with 130 and says how to
resume (``set_defaults(on_interrupt=...)`` of a command: the text, or a function of the argv and
the KeyboardInterrupt).
"""
from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys

from .._version import __version__
from ..errors import AemgError

COMMANDS: list[str] = ["datasets", "rectify", "demo", "evaluate", "tokenize", "plot_events",
                       "pretrain", "vocab", "embed", "prepare", "verify", "compare"]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (and exit code 2) like every other error."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def format_help(self) -> str:
        """The help text without the RST markup of the docstrings it is taken from."""
        return super().format_help().replace("``", "").replace("`", "'")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aemg", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"aemg {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def os_error_message(exc: OSError) -> str:
    """One line for an OSError: the path (when known) and what the system said, with what to do
    for a full disk or a permission problem."""
    what = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        what = "no space left on device (free some space; long commands resume when re-run)"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        what += " (check the permissions of the path, or choose another output)"
    where = exc.filename if exc.filename is not None else None
    return f"{where}: {what}" if where is not None else what


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a one-line usage error
        return int(exc.code or 0)
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
    except OSError as exc:
        print(f"aemg: error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        hint = getattr(args, "on_interrupt", "re-run the same command to resume")
        print(f"aemg: interrupted; {hint(argv, exc) if callable(hint) else hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
