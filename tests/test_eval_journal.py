"""The fold journal (aemg.eval.journal): an interrupted evaluation resumes from its finished folds,
gives the same results as an uninterrupted one, and never mixes in folds of other trials."""
import json

import numpy as np
import pytest
from helpers import register_two_class_reader

import aemg.eval.baselines as baselines
from aemg.cli import main
from aemg.errors import ConfigError, DataError
from aemg.eval import evaluate
from aemg.eval.journal import JOURNAL_NAME, FoldJournal, confusion_pairs, trials_identity
from aemg.eval.protocols import BY_SUBJECT
from aemg.eval.trials import TrialSet

REGIMES = ("none", "unlabelled", "fewshot")


def toy(n_subjects=4, seed=0) -> TrialSet:
    rng = np.random.default_rng(seed)
    data, labels, subjects, sessions, reps, keys = [], [], [], [], [], []
    for s in range(n_subjects):
        for r in range(3):
            for c in range(3):
                x = rng.normal(size=(4, 120)) * (0.3 if c == 0 else 1.0)
                if c:
                    x[c] *= 3 + s
                data.append(x.astype(np.float32))
                labels.append(c)
                subjects.append(f"S{s}")
                sessions.append("0")
                reps.append(r)
                keys.append(f"toy/S{s}/{r}_{c}")
    return TrialSet(data, 200.0, labels, subjects, sessions, reps, keys, ("rest", "open", "fist"), "toy")


def journal_for(trials, path) -> FoldJournal:
    return FoldJournal(path, trials_identity(trials, BY_SUBJECT.to_dict(), None))


def run(trials, journal=None, methods=("lda-log", "lda-log-subjnorm")):
    return evaluate(trials, methods, protocols=(), regimes=REGIMES, shares=(0.4,), too_small="one",
                    journal=journal)


def comparable(res):
    rows = [{k: v for k, v in r.items() if k != "seconds"} for r in res.folds]
    return rows, {k: v.tolist() for k, v in res.confusion.items()}


@pytest.fixture
def counting(monkeypatch):
    """Every fit of a method counted (``calls["fit"]``); ``calls["stop_after"]`` fits, then Ctrl-C."""
    calls = {"fit": 0, "stop_after": None}
    make = baselines.get_method

    def get_method(name, **options):
        method = make(name, **options)
        fit = method.fit

        def counted_fit(*a, **kw):
            if calls["stop_after"] is not None and calls["fit"] >= calls["stop_after"]:
                raise KeyboardInterrupt
            calls["fit"] += 1
            return fit(*a, **kw)

        method.fit = counted_fit
        return method

    monkeypatch.setattr("aemg.eval.runner.get_method", get_method)
    return calls


def test_an_interrupted_run_resumes_to_the_same_results(tmp_path, counting):
    trials = toy()
    whole = run(trials)
    n_folds = len(whole.folds)
    counting["fit"], counting["stop_after"] = 0, 5
    path = tmp_path / JOURNAL_NAME
    with pytest.raises(KeyboardInterrupt):
        run(trials, journal_for(trials, path))
    assert len(path.read_text().splitlines()) == 1 + 5           # header + the finished folds
    counting["fit"], counting["stop_after"] = 0, None
    resumed = run(trials, journal_for(trials, path))
    assert counting["fit"] == n_folds - 5                       # only the unfinished folds ran
    assert comparable(resumed) == comparable(whole)
    assert any("5 of" in n and "fold journal" in n for n in resumed.notes)
    counting["fit"] = 0
    again = run(trials, journal_for(trials, path))               # complete: nothing recomputed
    assert counting["fit"] == 0 and comparable(again) == comparable(whole)


def test_a_new_method_reuses_the_journalled_ones(tmp_path, counting):
    trials = toy()
    path = tmp_path / JOURNAL_NAME
    first = run(trials, journal_for(trials, path), methods=("lda-log",))
    counting["fit"] = 0
    both = run(trials, journal_for(trials, path), methods=("lda-log", "lda"))
    assert counting["fit"] == len(first.folds)                  # lda only
    assert comparable(both)[0][:len(first.folds)] == comparable(first)[0]


def test_other_options_or_folds_are_recomputed(tmp_path, counting):
    trials = toy()
    path = tmp_path / JOURNAL_NAME
    evaluate(trials, ["lda-log"], regimes=("fewshot",), shares=(0.4,), too_small="one", seeds=(0,),
             journal=journal_for(trials, path))
    n, counting["fit"] = counting["fit"], 0
    evaluate(trials, ["lda-log"], regimes=("fewshot",), shares=(0.4,), too_small="one", seeds=(1,),
             journal=journal_for(trials, path))
    assert counting["fit"] == n > 0                             # another seed: other draws
    counting["fit"] = 0
    evaluate(trials, ["lda-log"], regimes=("fewshot",), shares=(0.4,), too_small="one", seeds=(0,),
             method_options={"lda-log": {"window_s": 0.3}}, journal=journal_for(trials, path))
    assert counting["fit"] == n                                 # other options


def test_a_journal_of_other_trials_is_refused(tmp_path):
    trials = toy()
    path = tmp_path / JOURNAL_NAME
    run(trials, journal_for(trials, path))
    other = toy(seed=1)
    other.labels[0] = 1
    with pytest.raises(ConfigError, match=f"{JOURNAL_NAME}.*labels_subjects_sessions.*--restart"):
        journal_for(other, path)
    fresh = FoldJournal(path, trials_identity(other, BY_SUBJECT.to_dict(), None), restart=True)
    assert len(fresh) == 0 and not path.exists()


def test_a_line_cut_short_is_dropped_and_garbage_refused(tmp_path):
    trials = toy()
    path = tmp_path / JOURNAL_NAME
    res = run(trials, journal_for(trials, path), methods=("lda-log",))
    good = path.read_bytes()
    path.write_bytes(good + b'{"key": "half')                    # a crash mid-line
    j = journal_for(trials, path)
    assert len(j) == len(res.folds) and path.read_bytes() == good
    path.write_bytes(good + b"not json\n")
    with pytest.raises(DataError, match="line .* is not a journal entry"):
        journal_for(trials, path)
    path.write_text("hello\n")
    with pytest.raises(DataError, match="not an aemg fold journal"):
        journal_for(trials, path)
    (tmp_path / "dir").mkdir()
    with pytest.raises(DataError, match="not a file"):
        journal_for(trials, tmp_path / "dir")


def test_a_run_failing_before_any_fold_leaves_no_file(tmp_path):
    trials = toy()
    path = tmp_path / "report" / JOURNAL_NAME
    with pytest.raises(ConfigError):
        evaluate(trials, ["lda-log"], regimes=("sideways",), journal=journal_for(trials, path))
    assert not (tmp_path / "report").exists()


def test_confusion_pairs_count_only_predicted_trials():
    pairs = confusion_pairs(np.array([0, 0, 1, 2, 2]), np.array([0, 0, 2, -1, 2]))
    assert pairs.tolist() == [[0, 0, 2], [1, 2, 1], [2, 2, 1]]
    assert confusion_pairs(np.array([], np.int64), np.array([], np.int64)).shape == (0, 3)


def test_cli_resumes_into_the_same_report(tmp_path, capsys, monkeypatch):
    import aemg.cli

    monkeypatch.setattr(aemg.cli, "COMMANDS", ["evaluate"])
    register_two_class_reader("toy-journal", ("rest", "b"), ["0", "1", "2"], 6)

    out = tmp_path / "rep"
    argv = ["evaluate", "toy-journal", "--methods", "lda-log,lda-log-subjnorm", "--regimes",
            "none,unlabelled", "--no-plots", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    first = json.loads((out / "results.json").read_text())["summary"]
    n_folds = len((out / "folds.csv").read_text().splitlines()) - 1
    assert n_folds == 6                                          # 3 subjects x 2 methods
    assert len((out / JOURNAL_NAME).read_text().splitlines()) == 1 + n_folds
    capsys.readouterr()
    assert main(argv) == 0
    assert "6 of 6 folds read back from the fold journal" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text())["summary"] == first
    assert main(argv + ["--restart"]) == 0
    assert "read back" not in capsys.readouterr().out
    (tmp_path / "file").write_text("x")
    assert main(argv[:-1] + [str(tmp_path / "file")]) == 2
    assert "report output exists and is not a folder" in capsys.readouterr().err


def test_ctrl_c_says_the_folds_are_kept(monkeypatch, capsys):
    import aemg.cli.evaluate as cli_evaluate

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli_evaluate, "run", interrupted)
    assert main(["evaluate", "x", "--out", "y"]) == 130
    err = capsys.readouterr().err
    assert "journal.jsonl" in err and "resume" in err
