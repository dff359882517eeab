"""The fused methods' gross-failure guard, on and off, under every regime (issue 9, session 10,
experiment 27).

For each requested regime, its recommended fused method (``aemg.eval.methods.RECOMMENDED_METHODS``)
is evaluated LOSO twice on the same folds -- ``guard=None`` (the fixed weight 0.5 of sessions 7-9)
and ``guard=FUSE_GUARD`` (0.05) -- beside its classic twin (the window LDA it fuses). One process, one trial
set: the embeddings are computed once and shared by both runs. Prints per regime the mean trial
accuracy (%) over test users of the three, the paired comparison guard on - off (as ``aemg
compare``), and the guard's decisions per fold::

    python scripts/guard_study.py /tmp/res/arch/myo_readings --run /tmp/res/runs/old4 --json out.json
    python scripts/guard_study.py ARCH --run aemg-tiny --regimes rest,fewshot --sessions training0
"""
from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> int:
    from aemg.errors import DataError
    from aemg.eval import load_trials
    from aemg.eval.methods import FUSE_GUARD, FUSED_VARIANTS, RECOMMENDED_METHODS
    from aemg.eval.protocols import Grouping
    from aemg.eval.runner import evaluate
    from aemg.eval.stats import comparison_text, paired_comparison
    ap = argparse.ArgumentParser(prog="guard_study.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("archive")
    ap.add_argument("--run", required=True, help="pre-trained run folder or shipped name")
    ap.add_argument("--regimes", default="rest,online,unlabelled,fewshot")
    ap.add_argument("--share", type=float, default=0.01, help="few-shot share (at least one per class)")
    ap.add_argument("--sessions", default=None, help="comma-separated sessions to keep")
    ap.add_argument("--group-by", default="subject", choices=("subject", "session"),
                    help="the test user of a fold (as aemg evaluate --group-by)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the figures here")
    a = ap.parse_args(argv)
    trials = load_trials(a.archive, sessions=a.sessions.split(",") if a.sessions else None)
    out = {"archive": a.archive, "run": a.run, "seed": a.seed, "regimes": {}}
    for regime in a.regimes.split(","):
        fused = RECOMMENDED_METHODS[regime]
        twin = FUSED_VARIANTS[fused][1]
        per_user, choices, seconds = {}, {}, {}
        for label, name, options in (("off", fused, {"run": a.run, "guard": None}),
                                     ("on", fused, {"run": a.run, "guard": FUSE_GUARD}),
                                     ("twin", twin, {})):
            try:
                res = evaluate(trials, [name], regimes=[regime], protocols=(), seeds=[a.seed],
                               shares=[a.share], too_small="one", method_options={name: options},
                               grouping=Grouping(a.group_by))
            except DataError as e:
                print(f"{trials.name} {regime}: skipped ({e})")
                break
            per_user[label] = {r["subject"]: r["trial_acc"] for r in res.folds}
            seconds[label] = sum(r["seconds"] for r in res.folds)
            if label == "on":
                choices = {r["subject"]: r["choice"] for r in res.folds}
        if len(per_user) < 3:
            continue
        means = {k: 100 * sum(v.values()) / len(v) for k, v in per_user.items()}
        decisions = {}
        for c in choices.values():
            d = (c or {}).get("decision", "none")
            decisions[d] = decisions.get(d, 0) + 1
        cmp = paired_comparison(per_user["on"], per_user["off"])
        print(f"{trials.name} {regime}: {fused} guard off {means['off']:.1f}, on {means['on']:.1f}; "
              f"{twin} {means['twin']:.1f}; decisions {decisions}; fold seconds "
              + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
        print(comparison_text(f"{fused} guard on", f"{fused} guard off", cmp))
        out["regimes"][regime] = {"method": fused, "twin": twin, "mean": means, "per_user": per_user,
                                  "choices": choices, "decisions": decisions,
                                  "seconds": seconds}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
