"""``aemg compare A B --report REPORT``: a paired comparison of two methods over the same users."""
from __future__ import annotations

import json

from ..errors import ConfigError
from ._common import NOT_RESUMABLE, count


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="paired comparison of two methods over the same test users (bootstrap interval, "
                        "Wilcoxon, wins/losses)",
        description="Compare two methods of one or more report folders (aemg evaluate --out) user by user: "
                    "the mean of A - B with a seeded 95 %% bootstrap interval over users, the Wilcoxon "
                    "signed-rank test and the wins, ties and losses. A claim 'A >= B + MARGIN' is shown "
                    "when the interval's low end clears the margin. Name a method as METHOD, "
                    "METHOD@REGIME or METHOD@fewshot:SHARE.")
    p.add_argument("a", metavar="A", help="method A, e.g. aemg-probe-auto@unlabelled")
    p.add_argument("b", metavar="B", help="method B, e.g. lda-log-subjnorm@unlabelled")
    p.add_argument("--report", action="append", default=[], metavar="FOLDER",
                   help="report folder of both methods (repeatable: runs on the same data are merged)")
    p.add_argument("--a-report", action="append", default=[], metavar="FOLDER",
                   help="report folder read for A only (e.g. a run with other method options)")
    p.add_argument("--b-report", action="append", default=[], metavar="FOLDER",
                   help="report folder read for B only")
    p.add_argument("--margin", type=float, default=0.0, help="points A must beat B by (default 0)")
    p.add_argument("--seed", type=count, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run, on_interrupt=NOT_RESUMABLE)


def run(args) -> int:
    from ..eval.stats import comparison_text, paired_comparison, pick, read_per_subject

    if not (args.report or args.a_report and args.b_report):
        raise ConfigError("--report FOLDER (or --a-report and --b-report) is required")
    ka, a = pick(read_per_subject(args.report + args.a_report), args.a)
    kb, b = pick(read_per_subject(args.report + args.b_report), args.b)
    r = paired_comparison(a, b, margin=args.margin, seed=args.seed)

    def name(k):
        return f"{k[0]}@{k[1]}" + (f":{k[2]:g}" if k[2] is not None else "")

    if args.json:
        print(json.dumps({"a": name(ka), "b": name(kb), **r}, indent=2))
    else:
        print(comparison_text(name(ka), name(kb), r), end="")
    return 0
