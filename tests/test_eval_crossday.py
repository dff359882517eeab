"""Cross-day evaluation on real data (``aemg evaluate --group-by session``): three of the twelve
staged days of multiday_4ch (one person, 4-channel MindMedia at 2,048 Hz, one trial per class per
day, no rest class), read straight from the shared files."""
import re

import numpy as np
import pytest

from aemg.errors import DataError
from aemg.eval import evaluate
from aemg.eval.protocols import Grouping, loso_folds, rest_class_id
from aemg.eval.trials import TrialSet

DAYS = (1, 11, 21)


@pytest.fixture(scope="module")
def three_days(data_root) -> TrialSet:
    from aemg.data.readers import get_reader

    reader = get_reader("multiday_4ch", data_root / "multiday_4ch")
    chosen = [s for s in reader.sources() if int(re.search(r"_D(\d+)_", s).group(1)) in DAYS]
    return TrialSet.from_recordings((r for s in chosen for r in reader.read(s)), name="multiday_4ch")


@pytest.mark.realdata
def test_multiday_cross_day_folds_and_regimes(three_days):
    ts = three_days
    assert len(ts) == 33 and set(ts.sessions) == {f"day{d}" for d in DAYS} and set(ts.subjects) == {"0"}
    assert ts.rate == 2048.0 and ts.n_channels == 4 and rest_class_id(ts) is None
    # one subject: LOSO is impossible and says what to do instead
    with pytest.raises(DataError, match="LOSO needs at least 2 subjects, found 1.*--group-by session"):
        loso_folds(ts)
    by_day = Grouping("session")
    res = evaluate(ts, ["lda-log", "lda-log-subjnorm"], [],
                   regimes=["none", "online", "unlabelled", "fewshot"], shares=[0.5], too_small="one",
                   grouping=by_day)
    groups = {f"0/day{d}" for d in DAYS}
    assert {r["subject"] for r in res.folds} == groups
    # the test user = one day: trained on the other two days, every trial of the day tested (no rest)
    assert all(r["n_train"] == 22 and r["n_test"] == 11 for r in res.folds)
    assert {(r["method"], r["regime"]) for r in res.folds} == {
        ("lda-log", "none"), ("lda-log-subjnorm", "online"), ("lda-log-subjnorm", "unlabelled")}
    # one trial per class per day: nothing to draw for few-shot, said so
    assert any("regime fewshot skipped" in n and "0/day1" in n for n in res.notes)
    summary = {(r["method"], r["regime"]): r for r in res.summary()}
    assert all(r["subjects"] == 3 for r in summary.values())
    # well above chance (1/11) across days; per-day standardisation does not lose to none here
    assert summary[("lda-log", "none")]["trial_mean"] > 0.3
    acc = {r["subject"]: r["trial_acc"] for r in res.per_subject()
           if (r["method"], r["regime"]) == ("lda-log-subjnorm", "unlabelled")}
    assert set(acc) == groups and np.isfinite(list(acc.values())).all()
    # no class marks rest (C0 is a contraction): the rest regime is refused with the fix
    with pytest.raises(DataError, match=r"multiday_4ch.*lda-log-restnorm under regime rest.*no class name "
                                        r"of multiday_4ch marks rest.*--rest-class NAME"):
        evaluate(ts, ["lda-log-restnorm"], [], regimes=["rest"], grouping=by_day)
