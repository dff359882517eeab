"""``aemg datasets``: the table of dataset readers."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("datasets", help="list the dataset readers",
                              description="List the dataset readers usable with `aemg rectify`.")
    p.set_defaults(func=run)


def format_table(rows: list[list[str]], header: list[str]) -> str:
    """Left-aligned plain-text table; the last column is not padded."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for r in [header, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(r, widths)] + [str(r[-1])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..data.readers import list_readers

    rows = []
    for info in list_readers():
        rows.append([info.name, info.device, info.channels or "any",
                     "any" if info.rate is None else f"{info.rate:g}",
                     "?" if info.subjects is None else info.subjects,
                     len(info.classes) or "?", info.description])
    print(format_table(rows, ["name", "device", "channels", "rate_hz", "subjects", "classes", "description"]))
    return 0
