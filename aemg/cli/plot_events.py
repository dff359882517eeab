"""``aemg plot-events ARCHIVE``: one recording with its envelope, thresholds, events and tokens (PNG)."""
from __future__ import annotations

import argparse

from ..errors import ConfigError
from ._common import NOT_RESUMABLE, add_common_options, count, positive_float


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "plot-events", help="plot a recording's envelope, thresholds, detected events and tokens",
        description="Draw one recording of an archive with its energy envelope, the detector's "
                    "noise level and on/off thresholds, the detected events and example tokens.")
    p.add_argument("archive", help="archive folder written by `aemg rectify`")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--index", type=count, default=0, help="recording index in the archive (default 0)")
    which.add_argument("--key", help="recording key dataset/subject/session/trial")
    p.add_argument("--trial", type=count, default=0,
                   help="for recordings with per-sample labels: which labelled run (default 0)")
    p.add_argument("--out", required=True, help="PNG file to write")
    from ..tokenizer.tokens import MODES, TokenizerConfig

    d = TokenizerConfig()
    p.add_argument("--mode", choices=MODES, help=f"contraction events or fixed windows (default {d.mode})")
    p.add_argument("--token-s", type=positive_float, help=f"token length, seconds (default {d.token_s:g})")
    p.add_argument("--tokens", type=count, default=6, help="example tokens to draw (default 6)")
    add_common_options(p, segment_backend=True, allow_partial=True)
    p.set_defaults(func=run, on_interrupt=NOT_RESUMABLE)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ..data.archive import open_archive
    from ..data.trials import split_trials
    from ..tokenizer.plot import plot_events
    from ..tokenizer.tokens import TokenizerConfig

    archive = open_archive(args.archive, allow_partial=args.allow_partial)
    if args.key is not None:
        try:
            rec = archive.get(args.key)
        except KeyError:
            raise ConfigError(f"--key {args.key!r}: no such recording in {args.archive}") from None
    else:
        if not 0 <= args.index < len(archive):
            raise ConfigError(f"--index {args.index}: the archive has {len(archive)} recordings")
        rec = archive[args.index]
    trials = split_trials(rec)
    if not 0 <= args.trial < len(trials):
        raise ConfigError(f"--trial {args.trial}: {rec.key} has {len(trials)} labelled trial(s)")
    given = {k: v for k, v in (("token_s", args.token_s), ("mode", args.mode)) if v is not None}
    config = dataclasses.replace(TokenizerConfig(), **given)
    out = plot_events(trials[args.trial], args.out, config, n_tokens=args.tokens, backend=args.backend)
    print(f"wrote {out}")
    return 0
