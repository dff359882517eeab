"""Command-line options shared by several subcommands, spelled and explained once, and the
checks of their values (argparse types: a bad value is a one-line usage error naming the option)."""
from __future__ import annotations

import argparse
import math

from ..errors import ConfigError

#: what Ctrl-C prints for a command whose output is written only at its end (nothing to resume)
NOT_RESUMABLE = "nothing was written (the output is written at the end); run the command again"


def _number(text: str, kind: type, least: float, strict: bool):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not "
                                         f"{'an integer' if kind is int else 'a number'}") from None
    if not math.isfinite(value) or (value <= least if strict else value < least):
        raise argparse.ArgumentTypeError(f"{text!r}: must be {'>' if strict else '>='} {least:g}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _number(text, int, 1, strict=False)


def count(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _number(text, int, 0, strict=False)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    return _number(text, float, 0.0, strict=True)


def add_common_options(parser: argparse.ArgumentParser, *, workers: bool = False, progress: bool = False,
                       segment_backend: bool = False, allow_partial: bool = False,
                       scheduler: bool = False) -> None:
    """Add the shared options a command asks for.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    workers : bool
        ``--workers N`` (``args.workers``, None: all cores).
    progress : bool
        ``--no-progress`` (``args.no_progress``).
    segment_backend : bool
        ``--backend NAME``: the segmentation backend (``args.backend``, None: the fastest available).
    allow_partial : bool
        ``--allow-partial`` (``args.allow_partial``): read an incomplete archive.
    scheduler : bool
        ``--scheduler ADDRESS`` (``args.scheduler``): run on a Dask cluster (default:
        ``$AEMG_SCHEDULER``, else locally).
    """
    if workers:
        parser.add_argument("--workers", type=positive_int, help="worker processes (default: all cores)")
    if segment_backend:
        parser.add_argument("--backend", help="segmentation backend (numpy, numba, cython; default: fastest)")
    if progress:
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    if allow_partial:
        parser.add_argument("--allow-partial", action="store_true",
                            help="also read an incomplete archive (a rectify run "
                                 "still writing or interrupted)")
    if scheduler:
        parser.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                            help="run the work on this Dask scheduler's workers (default: $AEMG_SCHEDULER, "
                                 "else locally); workers must see the data and "
                                 "output folders at the same paths")


def torch_device(text: str | None) -> str:
    """The torch device of ``--device`` (None: cuda when available, else cpu); ConfigError naming
    the option when it is not a device or not available on this machine."""
    import torch

    if text is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {text!r}: not a device (cpu, cuda, cuda:1, ...)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise ConfigError(f"--device {text}: CUDA is not available ({why}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {text}: this machine has {torch.cuda.device_count()} GPU(s)")
    elif dev.type != "cpu":
        raise ConfigError(f"--device {text}: unsupported device type {dev.type!r} (use cpu or cuda)")
    return str(dev)
