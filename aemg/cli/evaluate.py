"""``aemg evaluate SOURCE --out REPORT``: evaluation under adaptation regimes (none, rest, online,
unlabelled, fewshot) and the intra-subject reference, and its report."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError, DataError
from ._common import add_common_options

#: what Ctrl-C prints: the finished folds are in the report folder's journal
RESUME_HINT = ("the finished folds are kept in the report folder's journal.jsonl; run the same command "
               "again to resume (--restart discards them)")


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise ConfigError(f"expected comma-separated numbers, got {text!r}") from exc


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise ConfigError(f"expected comma-separated integers, got {text!r}") from exc


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


class _ListMethods(argparse.Action):
    """``--list-methods``: print every registered method name and exit (like ``--version``)."""

    def __init__(self, option_strings, dest, **kw):
        super().__init__(option_strings, dest, nargs=0, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        from ..eval import methods  # noqa: F401 - registers the AEMG methods
        from ..eval.baselines import list_methods
        print("\n".join(list_methods()))
        parser.exit(0)


def _default_methods(checkpoint) -> list[str]:
    """``--methods`` left out: the classic defaults, or with a checkpoint the recommended set."""
    from ..eval.baselines import DEFAULT_METHODS
    if not checkpoint:
        return list(DEFAULT_METHODS)
    from ..eval.methods import RECOMMENDED_BASELINES, RECOMMENDED_METHODS
    return list(dict.fromkeys([*RECOMMENDED_BASELINES, *RECOMMENDED_METHODS.values()]))


def register(subparsers) -> None:
    from ..eval.baselines import DEFAULT_METHODS
    from ..eval.protocols import DEFAULT_SHARES, GROUPINGS, REGIMES

    p = subparsers.add_parser(
        "evaluate", help="evaluate methods under adaptation regimes (none / rest / online / unlabelled / "
                         "fewshot) and the intra-subject reference",
        description="Evaluate downstream methods on the trials of an archive (a folder written by "
                    "`aemg rectify`) or of a dataset reader (e.g. `coteallard`, `uci_myo`, "
                    "`3dc:/path/to/3dc_armband`), and write a report folder. Regimes say what a method "
                    "sees of the test user besides the trial it classifies: none (nothing), rest (one "
                    "rest recording per session: the first rest-class trial, never tested), online (its "
                    "earlier trials, unlabelled), unlabelled (all its trials, unlabelled), fewshot (a "
                    "labelled share); each method runs under the requested regimes it supports.")
    p.add_argument("source", help="archive folder, reader name, or reader:folder")
    p.add_argument("--list-methods", action=_ListMethods, help="print the method names and exit")
    p.add_argument("--out", required=True, help="report folder (created)")
    p.add_argument("--methods", default=None,
                   help=f"comma-separated methods (see --list-methods); default {','.join(DEFAULT_METHODS)}, "
                        "or with --checkpoint the recommended AEMG method per regime and the classic "
                        "baselines with the same information")
    p.add_argument("--regimes", default=None,
                   help=f"comma-separated adaptation regimes: {','.join(REGIMES)}")
    p.add_argument("--protocols", default=None,
                   help="comma-separated: loso (each method's native LOSO regime), fewshot (= regime "
                        "fewshot), intra (within-subject reference); default loso when --regimes is "
                        "not given")
    p.add_argument("--rest-class", default=None, metavar="NAME",
                   help="the class whose first trial per subject and session is the rest recording "
                        "(default: the class whose name marks rest, e.g. rest / neutral / noGesture)")
    p.add_argument("--shares", default=",".join(f"{s:g}" for s in DEFAULT_SHARES),
                   help="few-shot shares (default %(default)s)")
    p.add_argument("--small-share", choices=("skip", "error", "one"), default="skip",
                   help="a share giving some class no training trial: skip it (noted in the report), "
                        "fail, or take one trial per class (default %(default)s)")
    p.add_argument("--group-by", choices=GROUPINGS, default="subject",
                   help="what a fold holds out as the test user: subject (leave one subject out) or "
                        "session (leave one subject's one session out, e.g. one day: cross-day / "
                        "cross-session evaluation; the regimes then see that session only); default "
                        "%(default)s")
    p.add_argument("--within-subject", action="store_true",
                   help="with --group-by session: train only on the test subject's other sessions")
    p.add_argument("--train-sessions", default=None, metavar="LIST",
                   help="with --group-by session: train only on these sessions and test the others, "
                        "e.g. training (before an electrode shift)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--subjects", default=None,
                   help="comma-separated test subjects (default all); with --group-by session test "
                        "groups SUBJECT/SESSION, e.g. 0/day11; shell-style patterns allowed, e.g. "
                        "'shift-*'")
    p.add_argument("--sessions", default=None,
                   help="comma-separated sessions to keep, e.g. training0 (default all)")
    p.add_argument("--rate", type=float, default=None,
                   help="resample trials to this rate, Hz (needed for irregular timestamps)")
    p.add_argument("--data-root", default=None, help="dataset folder for a reader name")
    p.add_argument("--reader-option", action="append", default=[], metavar="KEY=VALUE",
                   help="reader option, e.g. split=evaluation (repeatable)")
    p.add_argument("--method-options", default=None,
                   help='JSON {"method": {"option": value}}, e.g. {"cnn": {"epochs": 5}}')
    p.add_argument("--checkpoint", default=None, metavar="RUN",
                   help="pre-training run or checkpoint folder, or shipped weights (aemg-tiny), for the "
                        "AEMG methods (aemg-probe, aemg-finetune; architecture and tokenizer settings of "
                        "aemg-scratch and window-transformer); same as the method option run")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    p.add_argument("--restart", action="store_true",
                   help="discard the folds a previous run journalled in --out (journal.jsonl) instead "
                        "of resuming from them")
    add_common_options(p, progress=True)
    p.add_argument("--allow-partial", action="store_true",
                   help="also evaluate an incomplete archive (a rectify run still writing or interrupted)")
    p.set_defaults(func=run, on_interrupt=RESUME_HINT)


def run(args) -> int:
    from ..eval.baselines import get_method
    from ..eval.journal import JOURNAL_NAME, FoldJournal, trials_identity
    from ..eval.protocols import PROTOCOLS, REGIMES, Grouping
    from ..eval.report import results_markdown, write_report
    from ..eval.runner import evaluate
    from ..eval.trials import load_trials

    methods = _names(args.methods) if args.methods is not None else _default_methods(args.checkpoint)
    regimes = _names(args.regimes) if args.regimes is not None else []
    protocols = _names(args.protocols) if args.protocols is not None else ([] if regimes else ["loso"])
    bad = [p for p in protocols if p not in PROTOCOLS]
    if bad or (args.protocols is not None and not protocols):
        raise ConfigError(f"--protocols: unknown {', '.join(bad) or '(none given)'}; choose from "
                          f"{', '.join(PROTOCOLS)}")
    bad = [r for r in regimes if r not in REGIMES]
    if bad or (args.regimes is not None and not regimes):
        raise ConfigError(f"--regimes: unknown {', '.join(bad) or '(none given)'}; choose from "
                          f"{', '.join(REGIMES)}")
    options = {}
    for item in args.reader_option:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--reader-option {item!r}: expected KEY=VALUE")
        options[key] = value
    try:
        method_options = json.loads(args.method_options) if args.method_options else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--method-options: not valid JSON ({exc})") from exc
    if not isinstance(method_options, dict):
        raise ConfigError("--method-options: expected a JSON object {\"method\": {\"option\": value}}")
    if args.checkpoint:
        from ..eval.methods import CHECKPOINT_METHODS
        for m in CHECKPOINT_METHODS:
            method_options.setdefault(m, {}).setdefault("run", args.checkpoint)
    for m in methods:
        get_method(m, **method_options.get(m, {}))  # fail early on an unknown name or bad options
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise DataError(args.out, "report output exists and is not a folder")
    grouping = Grouping(args.group_by, args.within_subject,
                        _names(args.train_sessions) if args.train_sessions is not None else None)
    subjects = _names(args.subjects) if args.subjects else None
    trials = load_trials(args.source, rate=args.rate, data_root=args.data_root,
                         sessions=_names(args.sessions) if args.sessions else None,
                         reader_options=options, allow_partial=args.allow_partial)
    journal = FoldJournal(Path(args.out) / JOURNAL_NAME,
                          trials_identity(trials, grouping.to_dict(), args.rest_class), restart=args.restart)
    res = evaluate(trials, methods, protocols, _ints(args.seeds), _floats(args.shares), subjects,
                   args.small_share, method_options, regimes=regimes, rest_class=args.rest_class,
                   grouping=grouping, journal=journal, progress=not args.no_progress)
    out = write_report(res, args.out, plots=not args.no_plots)
    print(results_markdown(res), end="")
    print(f"report written to {out}")
    return 0
