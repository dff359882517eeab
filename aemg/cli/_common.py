"""Command-line options shared by several subcommands, spelled and explained once."""
from __future__ import annotations

import argparse


def add_common_options(parser: argparse.ArgumentParser, *, workers: bool = False, progress: bool = False,
                       segment_backend: bool = False) -> None:
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
    """
    if workers:
        parser.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    if segment_backend:
        parser.add_argument("--backend", help="segmentation backend (numpy, numba, cython; default: fastest)")
    if progress:
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
