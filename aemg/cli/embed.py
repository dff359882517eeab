"""``aemg embed RUN DATA --out emb.npz``: sentence and token embeddings from a checkpoint."""
from __future__ import annotations

import argparse

from ._common import NOT_RESUMABLE, positive_int, torch_device


def register(subparsers) -> None:
    p = subparsers.add_parser("embed", help="sentence and token embeddings of an archive or corpus",
                              description="Embed every trial of an archive (`aemg rectify`) or token corpus "
                                          "(`aemg tokenize`) with a pre-trained "
                                          "checkpoint; writes an .npz with keys, labels, sentence, "
                                          "cls, tokens and token_offsets.")
    p.add_argument("run", help="run folder, checkpoint folder, or shipped weights by name (aemg-tiny)")
    p.add_argument("data", help="archive or token corpus folder")
    p.add_argument("--out", required=True, help=".npz file to write")
    p.add_argument("--batch-size", type=positive_int, default=64,
                   help="sentences per forward pass (default 64)")
    p.add_argument("--device", help="cpu, cuda ... (default: cuda when available)")
    p.add_argument("--allow-partial", action="store_true",
                   help="also use an unfinished run's latest checkpoint, or an incomplete archive")
    p.set_defaults(func=run, on_interrupt=NOT_RESUMABLE)


def run(args: argparse.Namespace) -> int:
    from ..embed import embed
    from ..train.checkpoint import check_run_finished

    if not args.allow_partial:
        check_run_finished(args.run)

    e = embed(args.run, args.data, device=torch_device(args.device), batch_size=args.batch_size,
              allow_partial=args.allow_partial)
    e.save(args.out)
    print(f"wrote {args.out}: {len(e.keys)} sentences, {sum(len(t) for t in e.tokens)} tokens, "
          f"dimension {e.sentence.shape[1]}")
    return 0
