"""Report folder and the `aemg evaluate` command."""
import csv
import json

import numpy as np
import pytest

from aemg.cli import main
from aemg.data.readers import register_reader
from aemg.data.readers.base import DatasetInfo, Reader
from aemg.data.recording import Recording
from aemg.eval.report import results_markdown, write_report
from aemg.eval.runner import Results


def test_report_files_and_statistics(tmp_path):
    res = Results(classes=("rest", "fist"), dataset="toy", config={"seeds": [0, 1]})
    # subject A: seed 0 -> 3/4, seed 1 -> 1/4 (mean 0.5); subject B: 4/4 both seeds
    for seed, a in ((0, 3), (1, 1)):
        for subj, correct in (("A", a), ("B", 4)):
            res.folds.append({"method": "m", "protocol": "loso", "regime": "none",
                              "share": None, "seed": seed,
                              "subject": subj, "n_test": 4, "correct_trials": correct,
                              "trial_acc": correct / 4, "correct_windows": 2 * correct, "n_windows": 8})
    res.confusion[("m", "none", None)] = np.array([[6, 2], [2, 6]])
    res.folds.append({"method": "m", "protocol": "fewshot", "regime": "fewshot", "share": 0.5,
                      "seed": 0, "subject": "A", "n_test": 2, "correct_trials": 1, "trial_acc": 0.5,
                      "correct_windows": 0, "n_windows": 0})
    res.confusion[("m", "fewshot", 0.5)] = np.array([[1, 0], [1, 0]])
    out = write_report(res, tmp_path / "rep")
    names = {p.name for p in out.iterdir()}
    assert {"results.md", "results.csv", "results.json", "per_subject.csv", "folds.csv",
            "confusion_m_none.csv", "confusion_m_none.png", "confusion_m_fewshot_0.5.png",
            "per_subject_none.png", "regimes.png", "fewshot_curve.png"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    summary = json.loads((out / "results.json").read_text())["summary"]
    loso = next(r for r in summary if r["regime"] == "none")
    assert loso["trial_mean"] == pytest.approx(0.75)        # mean of A = 0.5 and B = 1.0
    assert loso["trial_std"] == pytest.approx(0.25)
    assert loso["window_mean"] == pytest.approx(0.75)
    few = next(r for r in summary if r["regime"] == "fewshot")
    assert few["window_mean"] is None                      # no windows: not reported as 0
    rows = list(csv.DictReader(open(out / "per_subject.csv")))
    assert {(r["subject"], r["regime"], r["trial_acc"]) for r in rows} >= {("A", "none", "0.5"),
                                                                           ("B", "none", "1.0")}
    conf = list(csv.DictReader(open(out / "confusion_m_none.csv")))
    assert conf[0] == {"true": "rest", "rest": "6", "fist": "2"}
    text = (out / "results.md").read_text()
    assert "| m | loso | none |  | 2 | 75.0 +- 25.0 | 75.0 +- 25.0 |" in text
    # the regime table: one row per method, a column per regime (few-shot per share)
    assert "| method | none | fewshot 50 % |\n|---|---|---|\n| m | 75.0 +- 25.0 | 50.0 +- 0.0 |" in text


@register_reader
class _ToyReader(Reader):
    """Three subjects, two classes, six trials each (class = power on channel 0 or 1)."""

    info = DatasetInfo(name="toy-eval", device="myo", channels=8, rate=200.0, subjects=3,
                       classes=("a", "b"), units="a.u.", description="test data")
    needs_root = False

    def __init__(self, root=None, count: str = "3"):
        super().__init__(None)
        self.n = int(count)

    def sources(self):
        return [str(s) for s in range(self.n)]

    def read(self, source):
        rng = np.random.default_rng(int(source))
        out = []
        for i in range(6):
            x = rng.normal(size=(8, 120)).astype(np.float32)
            x[i % 2] *= 5
            out.append(Recording(x, 200.0, "myo", subject=f"P{source}", trial=str(i), dataset="toy-eval",
                                 label=i % 2, classes=("a", "b"), meta={"repetition": i // 2}))
        return out


@pytest.fixture(autouse=True)
def only_evaluate_command(monkeypatch):
    """Build the CLI with the evaluate command only (other commands are not under test here)."""
    import aemg.cli

    monkeypatch.setattr(aemg.cli, "COMMANDS", ["evaluate"])

def test_fewshot_curve_uses_the_shares_actually_drawn():
    from aemg.eval.report import drawn_shares
    folds = [{"method": "m", "protocol": "fewshot", "share": 0.05, "actual_share": a} for a in (0.25, 0.35)]
    folds += [{"method": "m", "protocol": "loso", "share": None, "actual_share": None},
              {"method": "m", "protocol": "fewshot", "share": 0.4, "actual_share": None}]
    assert drawn_shares(folds) == {("m", 0.05): pytest.approx(0.30)}  # requested 5 %, drawn 30 %


def test_cli_evaluate_end_to_end(tmp_path, capsys):
    code = main(["evaluate", "toy-eval", "--out", str(tmp_path / "r"), "--methods", "lda,lda-log-subjnorm",
                 "--protocols", "loso,fewshot,intra", "--shares", "0.1,0.5", "--seeds", "0,1", "--no-plots"])
    assert code == 0
    text = (tmp_path / "r" / "results.md").read_text()
    assert "| lda-log-subjnorm | loso | unlabelled |" in text and "| lda | intra | intra |" in text
    assert "few-shot share 0.1 skipped" in text
    assert not list((tmp_path / "r").glob("*.png"))


@pytest.mark.parametrize("argv, message", [
    (["--reader-option", "count=1"], "LOSO needs at least 2 subjects"),
    (["--methods", "magic"], "unknown method 'magic'"),
    (["--protocols", "loso,kfold"], "--protocols: unknown kfold"),
    (["--protocols", "fewshot", "--shares", "0.1", "--small-share", "error"], "smallest usable share"),
])
def test_cli_errors(tmp_path, capsys, argv, message):
    code = main(["evaluate", "toy-eval", "--out", str(tmp_path / "r"), *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def test_leader_table_pairs_the_best_two_methods_per_regime():
    from aemg.eval.report import leader_table
    res = Results(classes=("rest", "fist"), dataset="toy",
                  config={"methods": ["low", "mid", "top"], "regimes": ["none", "rest"]})
    for i in range(10):                                            # top = mid + 10 points on every user
        for method, regime, acc in (("low", "none", 0.2), ("mid", "none", 0.5), ("top", "rest", 0.6)):
            acc = acc + 0.02 * i
            res.folds.append({"method": method, "protocol": "loso", "regime": regime, "share": None,
                              "seed": 0, "subject": f"S{i}", "n_test": 50, "correct_trials": round(50 * acc),
                              "trial_acc": acc, "correct_windows": 0, "n_windows": 0})
    table = leader_table(res)
    # none: mid leads low by 30; rest: top (its own regime) leads mid (repeated from none) by 10
    assert "| none | mid | low | +30.0 | [+30.0, +30.0] |" in table
    assert "| rest | top | mid | +10.0 | [+10.0, +10.0] |" in table and "| 10/0/0 |" in table
    assert "Is the best method's lead real?" in results_markdown(res)
    one = Results(classes=("a", "b"), dataset="toy", config={"methods": ["m"]}, folds=res.folds[:1])
    assert leader_table(one) == "" and "lead real" not in results_markdown(one)
