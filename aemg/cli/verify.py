"""``aemg verify PATH``: check an archive, a token corpus or a pre-training run completely."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import DataError
from ._common import NOT_RESUMABLE


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "verify", help="check an archive, a token corpus or a run and report every problem",
        description="Check an archive (aemg rectify), a token corpus (aemg tokenize) or a pre-training run "
                    "(aemg pretrain): completeness, every file's size and checksum against what was recorded "
                    "when it was committed, that each shard holds what the index "
                    "says, that everything reads. Prints one line per problem and a summary; exit code "
                    "0 when all is well, 1 when a problem was found.")
    p.add_argument("path", help="archive, corpus or run folder")
    p.set_defaults(func=run, on_interrupt=NOT_RESUMABLE)


def verify(path: str) -> tuple[list[str], str]:
    """``(problems, summary)`` of the archive, corpus or run at ``path`` (see each kind's verify)."""
    folder = Path(path)
    if not folder.exists():
        raise DataError(folder, "not found")
    if (folder / "manifest.json").is_file():
        from ..data.archive import verify_archive
        return verify_archive(folder)
    if (folder / "plan.json").is_file():
        from ..tokenizer.corpus import verify_corpus
        return verify_corpus(folder)
    if (folder / "latest.json").is_file() or (folder / "config.json").is_file():
        from ..train.checkpoint import verify_run
        return verify_run(folder)
    raise DataError(folder, "not an aemg archive, token corpus or run (no manifest.json, plan.json, "
                            "latest.json or config.json)")


def run(args: argparse.Namespace) -> int:
    problems, summary = verify(args.path)
    for line in problems:
        print(f"problem: {line}")
    print(f"{summary}: {len(problems)} problem(s)" if problems else f"{summary}: OK")
    return 1 if problems else 0
