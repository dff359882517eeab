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


#: option -> TokenizerConfig field (the option's default is the field's default)
TOKENIZER_FLAGS = {"mode": "mode", "token_s": "token_s", "hop_s": "hop_s", "max_len": "max_sentence_len",
                   "cap": "cap", "calibration": "calibration", "no_event": "no_event"}


def add_tokenizer_options(p) -> None:
    """The tokenizer's options (``aemg tokenize`` and ``aemg prepare``); their defaults are those of
    :class:`~aemg.tokenizer.tokens.TokenizerConfig` (or of the ``--config`` file)."""
    from ..tokenizer.tokens import CALIBRATION, CAPS, MODES, NO_EVENT, TokenizerConfig

    d = TokenizerConfig()
    p.add_argument("--config", metavar="FILE",
                   help="TOML or JSON file of tokenizer settings: TokenizerConfig fields (token_s, hop_s, "
                        "max_sentence_len, mode, cap, no_event, calibration) and a [segment] table of the "
                        "event detector (SegmentParams); the options below override it")
    p.add_argument("--mode", choices=MODES,
                   help=f"contraction events (NCT) or fixed sliding windows (ablation); default {d.mode}")
    p.add_argument("--token-s", type=positive_float, help=f"token length, seconds (default {d.token_s:g})")
    p.add_argument("--hop-s", type=positive_float,
                   help="hop between token starts, seconds (default: the token length)")
    p.add_argument("--max-len", type=positive_int,
                   help=f"most tokens per sentence (default {d.max_sentence_len})")
    p.add_argument("--cap", choices=CAPS,
                   help=f"which tokens a long sentence keeps (default {d.cap}: the first ones)")
    p.add_argument("--calibration", choices=CALIBRATION,
                   help=f"noise floor from the rest trials of each subject/session (rest) or robust "
                        f"statistics of each trial (robust); default {d.calibration}")
    p.add_argument("--no-event", choices=NO_EVENT,
                   help=f"a trial without events gives background tokens or nothing (empty); "
                        f"default {d.no_event}")


def tokenizer_config(args: argparse.Namespace):
    """The TokenizerConfig of :func:`add_tokenizer_options`' arguments: the ``--config`` file's
    settings (else the defaults) with the options given on top."""
    from .._config import dataclass_from_dict, read_table
    from ..tokenizer.tokens import TokenizerConfig

    base = TokenizerConfig()
    if args.config:
        base = dataclass_from_dict(TokenizerConfig, read_table(args.config), f"{args.config}:")
    given = {field: getattr(args, flag) for flag, field in TOKENIZER_FLAGS.items()
             if getattr(args, flag) is not None}
    return dataclasses.replace(base, **given)


def run(args: argparse.Namespace) -> int:
    from ..tokenizer.corpus import tokenize_archive

    report = tokenize_archive(args.archive, args.out, tokenizer_config(args), workers=args.workers,
                              progress=not args.no_progress, backend=args.backend,
                              scheduler=args.scheduler)
    print(json.dumps(report.to_dict(), indent=1) if args.json else report.summary())
    return 0
