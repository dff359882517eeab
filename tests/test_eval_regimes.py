"""Adaptation regimes (aemg.eval.protocols / runner): no method reads more of the test user than its
regime allows, proved by poisoning what it must not see.

Poisoning = a copy of the trial set (fresh cache) whose chosen trials hold other samples (loud noise)
or other labels; the fold's indices are kept. A prediction that must not depend on a trial is then
unchanged. Run over the LDA family, the CNNs and the AEMG probe variants (tiny model pre-trained for
two steps on a synthetic archive).
"""
import dataclasses

import numpy as np
import pytest
from helpers import register_two_class_reader

from aemg.cli import main
from aemg.errors import ConfigError, DataError
from aemg.eval import evaluate, get_method
from aemg.eval.baselines import Method
from aemg.eval.protocols import (
    LOSO_REGIMES,
    Grouping,
    fewshot_folds,
    intra_folds,
    loso_folds,
    make_folds,
    rest_class_id,
    rest_recordings,
    user_view,
)
from aemg.eval.report import regime_table, results_markdown
from aemg.eval.runner import fold_adaptation, run_fold
from aemg.eval.trials import TrialSet

LDA_FAMILY = ("lda", "lda-log", "lda-log-subjnorm", "lda-log-restnorm", "lda-log-subjnorm-em",
              "lda-log-subjnorm-map")
CNNS = {"cnn": {"epochs": 1, "batch_size": 64, "max_windows": 128},
        "dann": {"epochs": 1, "batch_size": 64, "max_windows": 128}}
PROBES = ("aemg-probe", "aemg-probe-robust", "aemg-probe-subjnorm", "aemg-probe-calibnorm", "aemg-probe-em",
          "aemg-probe-tok", "aemg-probe-tok-subjnorm", "aemg-probe-tok-em", "nct-logreg",
          "nct-logreg-subjnorm", "nct-logreg-em", "nct-lda", "nct-lda-subjnorm", "aemg-probe-auto",
          "aemg-probe-tok-map", "aemg-probe-tok-rows", "aemg-probe-fuse",
          "aemg-probe-fuse-subjnorm", "aemg-probe-fuse-map", "aemg-probe-fuse-auto")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def session_trials(n_subjects=3, n_sessions=2, n_reps=3, classes=("rest", "open", "fist"), length=160,
                   seed=0) -> TrialSet:
    """Class c = power on channel c (rest: none), a per-subject gain, two sessions; trials in
    recording order (per session: repetition-major)."""
    rng = np.random.default_rng(seed)
    data, labels, subjects, sessions, reps, keys = [], [], [], [], [], []
    for s in range(n_subjects):
        gain = 1 + s
        for ss in range(n_sessions):
            for r in range(n_reps):
                for c in range(len(classes)):
                    x = rng.normal(size=(4, length)) * (0.2 if c == 0 else 1.0)
                    if c:
                        x[c] *= 4
                    data.append((gain * x).astype(np.float32))
                    labels.append(c)
                    subjects.append(f"S{s}")
                    sessions.append(str(ss))
                    reps.append(r)
                    keys.append(f"toy/S{s}/{ss}/{r}_{c}")
    return TrialSet(data, 200.0, labels, subjects, sessions, reps, keys, classes, "toy")


def poisoned(trials: TrialSet, data=(), labels=(), seed=1) -> TrialSet:
    """A copy (own cache) with the samples of trials ``data`` replaced by loud noise and the labels
    of trials ``labels`` changed to another class."""
    rng = np.random.default_rng(seed)
    new = list(trials.data)
    for i in data:
        new[i] = (50 * rng.normal(size=new[i].shape) + 7).astype(np.float32)
    lab = trials.labels.copy()
    for i in labels:
        lab[i] = (lab[i] + 1 + rng.integers(trials.n_classes - 1)) % trials.n_classes
    return dataclasses.replace(trials, data=new, labels=lab, cache={})


def fresh(trials: TrialSet) -> TrialSet:
    return dataclasses.replace(trials, cache={})


def predict(trials: TrialSet, name: str, fold, options: dict) -> np.ndarray:
    method = get_method(name, **options)
    return run_fold(trials, method, fold, rest_class_id(trials)).trial


def folds_of(trials: TrialSet, regime: str, grouping: Grouping = Grouping()):
    return list(make_folds(trials, regime, seeds=[0], shares=[0.4], too_small="one", grouping=grouping))


def check_regime(trials: TrialSet, name: str, options: dict, regime: str, rest_used: bool = False,
                 grouping: Grouping = Grouping()):
    """Every poisoning check that applies to ``regime``, on the first fold (test user S0 / s00;
    grouped by session: its first test session)."""
    fold = folds_of(trials, regime, grouping)[0]
    test, rest = fold.test, fold.rest
    base = predict(fresh(trials), name, fold, options)
    assert base.shape == (len(test),)
    # test labels (and the rest recording's) are never visible
    same = predict(poisoned(trials, labels=np.concatenate([test, rest])), name, fold, options)
    np.testing.assert_array_equal(same, base, err_msg=f"{name}/{regime}: test labels were read")
    if regime in ("none", "rest", "fewshot", "intra"):
        # the trial alone (+ the rest recording): the other test trials change nothing
        for half in (0, 1):
            other = test[np.arange(len(test)) % 2 != half]
            bad = np.concatenate([other, rest]) if regime == "none" else other
            got = predict(poisoned(trials, data=bad), name, fold, options)
            keep = np.arange(len(test)) % 2 == half
            np.testing.assert_array_equal(got[keep], base[keep],
                                          err_msg=f"{name}/{regime}: read another test trial")
    if regime == "online":
        # causal: later trials change nothing for earlier ones
        k = len(test) // 2
        got = predict(poisoned(trials, data=test[k:]), name, fold, options)
        np.testing.assert_array_equal(got[:k], base[:k], err_msg=f"{name}/online: read a later trial")
        got = predict(poisoned(trials, data=test[1:]), name, fold, options)
        assert got[0] == base[0]
    if rest_used and regime == "rest":  # positive control: the rest recording is really read
        got = predict(poisoned(trials, data=rest), name, fold, options)
        assert (got != base).any(), f"{name}/{regime}: the rest recording seems unused"
    return base


# ------------------------------------------------------------------------------------- folds
def test_rest_recording_is_the_first_rest_trial_and_never_tested():
    ts = session_trials()
    rest = rest_recordings(ts, rest_class_id(ts))
    assert rest.tolist() == [i for i in range(len(ts)) if ts.labels[i] == 0 and ts.repetitions[i] == 0]
    assert len(rest) == 3 * 2  # one per (subject, session)
    for regime in LOSO_REGIMES + ("fewshot", "intra"):
        folds = folds_of(ts, regime)
        assert folds
        for f in folds:
            assert f.regime == regime
            assert not np.intersect1d(f.test, rest).size
            # the user's rest recording is no training trial (intra: the user's own labelled trials)
            assert (regime == "intra") or not np.intersect1d(f.train, f.rest).size
            assert set(ts.subjects[f.rest]) == {f.subject} and len(f.rest) == 2
            assert not np.intersect1d(f.train, f.test).size
            mine = ts.subjects == f.subject
            np.testing.assert_array_equal(f.train_rest, np.intersect1d(f.train, rest))
            if regime != "intra":
                assert set(np.flatnonzero(~mine)) <= set(f.train)  # training subjects fully visible
    # every LOSO regime has the same test set
    tests = {r: [f.test.tolist() for f in folds_of(ts, r)] for r in LOSO_REGIMES}
    assert all(t == tests["none"] for t in tests.values())
    # what each regime hands over
    f = loso_folds(ts, regime="none")[0]
    for regime, gives_rest, gives_all in (("none", False, False), ("rest", True, False),
                                          ("online", True, False), ("unlabelled", True, True)):
        a = fold_adaptation(ts, dataclasses.replace(f, regime=regime), 0)
        assert (a.rest is not None) == gives_rest and (a.unlabelled is not None) == gives_all
        if gives_rest:
            assert (a.rest.labels == -1).all() and a.rest.keys.tolist() == ts.keys[f.rest].tolist()
        if gives_all:
            assert (a.unlabelled.labels == -1).all()
            assert a.unlabelled.keys.tolist() == ts.keys[f.test].tolist()


def test_fewshot_draws_around_the_rest_recording():
    ts = session_trials(n_reps=4)
    f = fewshot_folds(ts, 0.5, seeds=[0])[0]
    own = np.setdiff1d(np.flatnonzero(ts.subjects == "S0"), f.rest)
    adapt = np.intersect1d(f.train, own)
    assert sorted(np.concatenate([adapt, f.test]).tolist()) == own.tolist()
    assert f.actual_share == pytest.approx(len(adapt) / len(own))
    assert len(intra_folds(ts)) == 3 * 4


def test_loso_equals_regime_none_without_a_rest_class():
    """On data without a rest class the none regime is the old LOSO: every trial tested."""
    ts = session_trials(classes=("a", "b", "c"))
    assert rest_class_id(ts) is None
    old = evaluate(ts, ["lda", "lda-log-subjnorm"], ["loso"])
    new = evaluate(ts, ["lda", "lda-log-subjnorm"], [], regimes=["none", "unlabelled"])
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in old.folds]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in new.folds]
    assert sum(r["n_test"] for r in old.folds if r["method"] == "lda") == len(ts)
    assert {(r["method"], r["regime"]) for r in old.folds} == {("lda", "none"),
                                                               ("lda-log-subjnorm", "unlabelled")}


# ------------------------------------------------------------------------------------- poisoning
@pytest.mark.parametrize("name", LDA_FAMILY + tuple(CNNS))
def test_baselines_read_only_what_their_regime_allows(name):
    ts = session_trials()
    options = CNNS.get(name, {})
    method = get_method(name, **options)
    assert method.regimes
    for regime in method.regimes + ("intra",):
        check_regime(ts, name, options, regime, rest_used=method.needs_rest and regime != "intra")


def test_declared_regimes():
    want = {"lda": ("none", "fewshot"), "lda-log": ("none", "fewshot"),
            "lda-log-subjnorm": ("online", "unlabelled", "fewshot"), "lda-log-restnorm": ("rest", "fewshot"),
            "cnn": ("none", "fewshot"), "dann": ("unlabelled",), "lda-log-subjnorm-em": ("unlabelled",),
            "lda-log-subjnorm-map": ("fewshot",)}
    for name, regimes in want.items():
        m = get_method(name)
        assert m.regimes == regimes, name
        assert m.needs_rest == (name == "lda-log-restnorm")


def test_online_running_statistics_equal_the_per_trial_default():
    ts = session_trials()
    fold = loso_folds(ts, regime="online")[0]
    method = get_method("lda-log-subjnorm")
    adaptation = fold_adaptation(ts, fold, 0)
    method.fit(ts.subset(fold.train), adaptation=adaptation)
    test = ts.subset(fold.test).without_labels()
    fast = method.predict_online(test, adaptation)
    slow = Method.predict_online(method, test, adaptation)  # trial by trial, unlabelled = earlier trials
    np.testing.assert_array_equal(fast.trial, slow.trial)
    np.testing.assert_array_equal(fast.window, slow.window)
    np.testing.assert_array_equal(fast.window_trial, slow.window_trial)
    # the first trial has no earlier one: the training subjects' pooled statistics
    first = method.predict(test.subset([0]), adaptation)
    assert first.trial[0] == fast.trial[0]


def test_restnorm_centres_by_the_rest_recording():
    ts = session_trials()
    fold = loso_folds(ts, regime="rest")[0]
    m = get_method("lda-log-restnorm")
    m.fit(ts.subset(fold.train), adaptation=fold_adaptation(ts, fold, 0))
    feats, owner = m._features(ts.subset([int(fold.train_rest[0])]))
    key = (ts.subjects[fold.train_rest[0]], ts.sessions[fold.train_rest[0]])
    np.testing.assert_allclose(m.centres_[key], feats.mean(axis=0))
    assert set(m.centres_) == {(s, ss) for s in ("S0", "S1", "S2") for ss in ("0", "1")}
    feats, _ = m._features(ts.subset([int(fold.rest[1])]))  # the user: its session-1 rest recording
    np.testing.assert_allclose(m.centres_[("S0", "1")], feats.mean(axis=0))


# ------------------------------------------------------------------------------------- bad input
def test_no_rest_class_is_refused_with_the_fix():
    ts = session_trials(classes=("idle", "open", "fist"))
    for regime in ("rest", "fewshot"):
        with pytest.raises(DataError, match=r"toy.*lda-log-restnorm under regime .* no class name of toy "
                                            r"marks rest.*--rest-class NAME.*regime none"):
            evaluate(ts, ["lda-log-restnorm"], [], regimes=[regime], shares=[0.4], too_small="one")
    # methods that do not need it run; naming the rest class makes the rest regime work
    assert evaluate(ts, ["lda", "lda-log-subjnorm"], [], regimes=["none", "unlabelled"]).folds
    res = evaluate(ts, ["lda-log-restnorm"], [], regimes=["rest"], rest_class="idle")
    assert res.config["rest_class"] == "idle" and {r["regime"] for r in res.folds} == {"rest"}
    assert all(r["n_test"] == 16 for r in res.folds)  # 18 trials minus one rest recording per session
    with pytest.raises(DataError, match="'nap' is not a class of toy"):
        evaluate(ts, ["lda"], ["loso"], rest_class="nap")
    with pytest.raises(ConfigError, match="unknown protocol or regime 'offline'"):
        evaluate(ts, ["lda"], [], regimes=["offline"])


def test_regime_table_marks_repeated_numbers():
    ts = session_trials()
    res = evaluate(ts, ["lda", "lda-log-subjnorm", "lda-log-restnorm"], [],
                   regimes=["none", "rest", "online", "unlabelled"])
    # every method ran only under regimes it supports, each once
    ran = {(r["method"], r["regime"]) for r in res.folds}
    assert ran == {("lda", "none"), ("lda-log-subjnorm", "online"), ("lda-log-subjnorm", "unlabelled"),
                   ("lda-log-restnorm", "rest")}
    table = regime_table(res).splitlines()
    assert table[0] == "| method | none | rest | online | unlabelled |"
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in table[2:]}
    lda = rows["lda"]
    assert "(" not in lda[0] and all(c.startswith("(") and c[1:].startswith(lda[0].split(" ")[0])
                                     for c in lda[1:])
    assert rows["lda-log-subjnorm"][:2] == ["-", "-"] and "(" not in rows["lda-log-subjnorm"][2]
    assert rows["lda-log-restnorm"][0] == "-" and rows["lda-log-restnorm"][2].startswith("(")
    assert any("lda uses nothing of regimes rest, online, unlabelled beyond none" in n for n in res.notes)


def test_cli_regimes_and_rest_class(tmp_path, capsys, monkeypatch):
    import aemg.cli

    monkeypatch.setattr(aemg.cli, "COMMANDS", ["evaluate"])
    register_two_class_reader("toy-idle", ("idle", "b"), ["0", "1", "2"], 6)

    argv = ["evaluate", "toy-idle", "--methods", "lda,lda-log-restnorm,lda-log-subjnorm", "--regimes",
            "none,rest,online,unlabelled", "--no-plots"]
    assert main(argv + ["--out", str(tmp_path / "a")]) == 2
    assert "--rest-class NAME" in capsys.readouterr().err
    assert main(argv + ["--out", str(tmp_path / "b"), "--rest-class", "idle"]) == 0
    text = (tmp_path / "b" / "results.md").read_text()
    assert "| method | none | rest | online | unlabelled |" in text and "rest class: idle" in text
    assert main(["evaluate", "toy-idle", "--out", str(tmp_path / "c"), "--regimes", "none,sideways"]) == 2
    assert "--regimes: unknown sideways" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- AEMG probe
@pytest.fixture(scope="module")
def archive_and_run(tmp_path_factory, one_torch_thread):
    """A synthetic archive (3 subjects, rest + 2 gestures x 2 repetitions) and a tiny model
    pre-trained for 2 steps on it (as tests/test_eval_aemg.py)."""
    import torch

    from aemg.data.pipeline import rectify_dataset
    from aemg.eval import load_trials
    from aemg.tokenizer.corpus import open_corpus, tokenize_archive
    from aemg.train import pretrain

    root = tmp_path_factory.mktemp("regimes")
    rectify_dataset("synthetic", root / "archive",
                    reader_options={"n_subjects": 3, "n_gestures": 2, "repetitions": 2}, workers=1,
                    progress=False)
    tokenize_archive(root / "archive", root / "corpus", workers=1, progress=False)
    torch.manual_seed(0)
    pretrain(open_corpus(root / "corpus"), root / "run", "tiny", steps=2, batch_size=8, progress=False,
             device="cpu")
    return load_trials(root / "archive"), str(root / "run")


@pytest.mark.parametrize("variant", PROBES)
def test_probe_reads_only_what_its_regime_allows(archive_and_run, variant):
    trials, run = archive_and_run
    name = variant
    options = {"run": run}
    method = get_method(name, **options)
    subj = ("online", "unlabelled", "fewshot")
    want = {"aemg-probe": ("rest", "fewshot"), "aemg-probe-robust": ("none", "fewshot"),
            "aemg-probe-subjnorm": subj, "aemg-probe-calibnorm": ("rest", "fewshot"),
            "aemg-probe-em": ("unlabelled",), "aemg-probe-tok": ("rest", "fewshot"),
            "aemg-probe-tok-subjnorm": subj, "aemg-probe-tok-em": ("unlabelled",),
            "nct-logreg": ("rest", "fewshot"), "nct-logreg-subjnorm": subj, "nct-logreg-em": ("unlabelled",),
            "nct-lda": ("rest", "fewshot"), "nct-lda-subjnorm": subj, "aemg-probe-auto": ("unlabelled",),
            "aemg-probe-tok-map": ("fewshot",), "aemg-probe-tok-rows": ("rest", "fewshot"),
            "aemg-probe-fuse": ("rest", "fewshot"), "aemg-probe-fuse-map": ("fewshot",),
            "aemg-probe-fuse-subjnorm": subj, "aemg-probe-fuse-auto": ("unlabelled",)}
    assert method.regimes == want[variant]
    assert method.needs_rest == (variant != "aemg-probe-robust")
    for regime in method.regimes:
        check_regime(trials, name, options, regime,
                     rest_used=variant == "aemg-probe" and regime == "rest")


def test_probe_calibration_training_subjects_as_corpus_user_by_rest_recording(archive_and_run):
    from aemg.eval.methods import calibrate, regime_noise_levels
    from aemg.tokenizer.calibration import rest_level
    trials, run = archive_and_run
    fold = loso_folds(trials, regime="rest")[0]
    adaptation = fold_adaptation(trials, fold, rest_class_id(trials))
    cfg = get_method("aemg-probe", run=run).tokenizer_config()
    train = trials.subset(fold.train)
    assert regime_noise_levels(train, cfg, adaptation) == calibrate(train, cfg)  # aemg tokenize's policy
    test = trials.subset(fold.test).without_labels()
    own = rest_level(trials.data[fold.rest[0]], trials.rate, cfg)
    assert regime_noise_levels(test, cfg, adaptation) == [own] * len(test)
    with pytest.raises(DataError, match="needs its rest recording"):
        regime_noise_levels(test, cfg, dataclasses.replace(adaptation, rest=None))


def test_without_a_rest_class_the_probe_calibrates_robustly_outside_the_rest_regime(archive_and_run):
    """A dataset that marks no rest class (a user's archive, multiday_4ch): the AEMG methods run
    under online / unlabelled / fewshot from every trial's own robust statistics (the training
    users have no rest trials either), equal to ``calibration="robust"``; LOSO runs the rest-regime
    methods under none; the rest regime itself is still refused with the fix."""
    from aemg.eval.methods import regime_noise_levels
    trials, run = archive_and_run
    norest = dataclasses.replace(trials, classes=tuple(f"C{i}" for i in range(trials.n_classes)),
                                 cache={})
    assert rest_class_id(norest) is None
    fold = loso_folds(norest, regime="online")[0]
    adaptation = fold_adaptation(norest, fold, None)
    cfg = get_method("aemg-probe-tok-subjnorm", run=run).tokenizer_config()
    assert regime_noise_levels(norest, cfg, adaptation) == [None] * len(norest)
    for regime in ("online", "unlabelled"):
        res = evaluate(norest, ["aemg-probe-fuse-subjnorm"], [], regimes=[regime], subjects=["s00"],
                       method_options={"aemg-probe-fuse-subjnorm": {"run": run}})
        robust = evaluate(norest, ["aemg-probe-fuse-subjnorm"], [], regimes=[regime], subjects=["s00"],
                          method_options={"aemg-probe-fuse-subjnorm": {
                              "run": run, "probe_options": {"calibration": "robust"}}})
        assert res.folds
        assert [r["correct_trials"] for r in res.folds] == [r["correct_trials"] for r in robust.folds]
        assert any("no class of" in n and "robust statistics" in n for n in res.notes)
    # the default LOSO protocol maps the rest-regime method to none there (it reads nothing of the
    # user), with a note; asking for regime rest itself is refused
    res = evaluate(norest, ["aemg-probe-fuse"], ["loso"], subjects=["s00"],
                   method_options={"aemg-probe-fuse": {"run": run}})
    assert res.folds and {r["regime"] for r in res.folds} == {"none"}
    assert any("LOSO runs it under regime none" in n for n in res.notes)
    robust = evaluate(norest, ["aemg-probe-fuse"], [], regimes=["none"], subjects=["s00"],
                      method_options={"aemg-probe-fuse": {
                          "run": run, "probe_options": {"calibration": "robust"}}})
    assert [r["correct_trials"] for r in res.folds] == [r["correct_trials"] for r in robust.folds]
    with pytest.raises(DataError, match=r"aemg-probe-fuse under regime rest.*marks rest.*--rest-class NAME"):
        evaluate(norest, ["aemg-probe-fuse"], [], regimes=["rest"],
                 method_options={"aemg-probe-fuse": {"run": run}})


def test_probe_online_running_statistics_equal_the_per_trial_default(archive_and_run):
    trials, run = archive_and_run
    fold = loso_folds(trials, regime="online")[0]
    method = get_method("aemg-probe-subjnorm", run=run, online_prior=0.0)   # no pooled prior: exact twin
    adaptation = fold_adaptation(trials, fold, rest_class_id(trials))
    method.fit(trials.subset(fold.train), adaptation=adaptation)
    test = trials.subset(fold.test).without_labels()
    np.testing.assert_array_equal(method.predict_online(test, adaptation).trial,
                                  Method.predict_online(method, test, adaptation).trial)
    from aemg.eval.methods import ONLINE_PRIOR
    assert get_method("aemg-probe-tok-subjnorm", run=run).online_prior == ONLINE_PRIOR == 2.0



SUPERVISED = ("aemg-finetune", "aemg-scratch", "window-transformer")


@pytest.mark.parametrize("name", SUPERVISED)
def test_supervised_aemg_methods_read_only_what_their_regime_allows(archive_and_run, name):
    """The fold-trained AEMG methods (one epoch; every check refits)."""
    trials, run = archive_and_run
    options = {"run": run, "epochs": 1}
    method = get_method(name, **options)
    assert method.regimes == (("none", "fewshot") if name == "window-transformer" else ("rest", "fewshot"))
    for regime in method.regimes:
        check_regime(trials, name, options, regime)


def test_every_registered_method_is_checked():
    """A method registered by the package (not by a test or a script) must be in a list above, so
    that a new method gets its regimes checked by poisoning."""
    from aemg.eval.baselines import _METHODS
    known = set(LDA_FAMILY) | set(CNNS) | set(PROBES) | set(SUPERVISED)
    for name, factory in _METHODS.items():
        module = getattr(getattr(factory, "func", factory), "__module__", "")
        if module.startswith("aemg."):
            assert name in known, f"{name} ({module}) is not covered by the regime poisoning tests"


def test_online_prior_blends_the_pooled_statistics():
    from aemg.eval.baselines import running_stats
    rng = np.random.default_rng(0)
    x = rng.normal(3, 2, size=(12, 2))
    owner = np.repeat(np.arange(4), 3)
    pooled = (np.zeros(2), np.ones(2))
    mean, std = running_stats(x, owner, 4, pooled)
    np.testing.assert_allclose(mean[2], x[:6].mean(0))
    np.testing.assert_allclose(std[2], x[:6].std(0))
    np.testing.assert_array_equal(mean[0], pooled[0])
    mean, std = running_stats(x, owner, 4, pooled, prior=6)  # 6 pseudo-rows of mean 0, variance 1
    both = np.concatenate([x[:6], np.zeros((6, 2))])
    np.testing.assert_allclose(mean[2], both.mean(0))
    np.testing.assert_allclose(std[2] ** 2, (np.sum(x[:6] ** 2, 0) + 6) / 12 - both.mean(0) ** 2)
    np.testing.assert_allclose(std[0], 1.0)
    # a huge prior: the pooled statistics throughout, as before the user's first trial
    ts = session_trials()
    fold = loso_folds(ts, regime="online")[0]
    adaptation = fold_adaptation(ts, fold, 0)
    test = ts.subset(fold.test).without_labels()
    m = get_method("lda-log-subjnorm", online_prior=1e9).fit(ts.subset(fold.train), adaptation=adaptation)
    np.testing.assert_array_equal(m.predict_online(test, adaptation).window,
                                  m.predict(test, adaptation).window)
    with pytest.raises(ConfigError, match="online_prior"):
        get_method("lda-log-subjnorm", online_prior=-1)


# ------------------------------------------------------------------------------------- grouping by session
BY_SESSION = Grouping("session")
WITHIN = Grouping("session", within_subject=True)
SHIFT = Grouping("session", within_subject=True, train_sessions=("0",))


def test_session_folds_hold_out_one_donning():
    """--group-by session: the test user is one (subject, session); its rest recording and regime
    material come from that group only; training per the grouping."""
    ts = session_trials()
    rest = rest_recordings(ts, rest_class_id(ts))
    groups = [f"S{s}/{ss}" for s in range(3) for ss in ("0", "1")]
    for grouping in (BY_SESSION, WITHIN, SHIFT):
        for regime in LOSO_REGIMES + ("fewshot",):
            folds = list(make_folds(ts, regime, seeds=[0], shares=[0.4], too_small="one", grouping=grouping))
            want = [g for g in groups if grouping.train_sessions is None or g.endswith("/1")]
            assert [f.subject for f in folds] == want
            for f in folds:
                subj, sess = f.subject.split("/")
                mine = (ts.subjects == subj) & (ts.sessions == sess)
                assert f.group_by == "session" and f.regime == regime
                assert f.rest.tolist() == np.intersect1d(np.flatnonzero(mine), rest).tolist()
                assert len(f.rest) == 1
                own = np.setdiff1d(np.flatnonzero(mine), f.rest)
                assert set(f.test) <= set(own) and not np.intersect1d(f.train, f.rest).size
                if regime != "fewshot":
                    assert f.test.tolist() == own.tolist()
                else:
                    drawn = np.intersect1d(f.train, own)
                    assert sorted(np.concatenate([f.test, drawn]).tolist()) == own.tolist()
                other = np.setdiff1d(f.train, own)  # training proper (fewshot: without the share)
                usable = ~mine
                if grouping.within_subject:
                    usable &= ts.subjects == subj
                if grouping.train_sessions:
                    usable &= ts.sessions == "0"
                assert other.tolist() == np.flatnonzero(usable).tolist()
                np.testing.assert_array_equal(f.train_rest, np.intersect1d(f.train, rest))
                a = fold_adaptation(ts, f, 0)
                assert a.subject == f.subject
                if regime != "none":
                    assert a.rest.subjects.tolist() == [f.subject]
                if regime == "unlabelled":
                    assert a.unlabelled.keys.tolist() == ts.keys[f.test].tolist()
                    assert set(a.unlabelled.subjects) == {f.subject}
    # the user view: every (subject, session) its own user; samples, labels and cache shared
    view = user_view(ts, "session")
    assert view.subjects.tolist() == [f"{s}/{ss}" for s, ss in zip(ts.subjects, ts.sessions)]
    assert view.data[0] is ts.data[0] and view.cache is ts.cache and (view.labels == ts.labels).all()
    assert user_view(ts, "subject") is ts


def test_session_grouping_bad_input():
    ts = session_trials()
    with pytest.raises(ConfigError, match="need grouping by session"):
        Grouping("subject", within_subject=True)
    with pytest.raises(ConfigError, match="group by 'day'"):
        Grouping("day")
    with pytest.raises(DataError, match="--train-sessions.*not a session of toy: 7"):
        loso_folds(ts, grouping=Grouping("session", train_sessions=("7",)))
    with pytest.raises(DataError, match="every session is a training session"):
        loso_folds(ts, grouping=Grouping("session", train_sessions=("0", "1")))
    with pytest.raises(DataError, match=r"test groups \(subject/session\) not in toy.*S0/0"):
        loso_folds(ts, subjects=["S0/0"], grouping=SHIFT)  # a training session is no test group
    # test groups by shell-style pattern; a pattern matching nothing is an unknown group
    assert [f.subject for f in loso_folds(ts, subjects=["S[01]/*"], grouping=BY_SESSION)] == \
        ["S0/0", "S0/1", "S1/0", "S1/1"]
    assert [f.subject for f in loso_folds(ts, subjects=["S2/*", "S*/1"], grouping=SHIFT)] == \
        ["S2/1", "S0/1", "S1/1"]
    with pytest.raises(DataError, match="not in toy.*S9/"):
        loso_folds(ts, subjects=["S9/*"], grouping=BY_SESSION)
    one = ts.subset(np.flatnonzero(ts.subjects == "S0"))
    with pytest.raises(DataError, match=r"LOSO needs at least 2 subjects.*--group-by session"):
        loso_folds(one)
    assert [f.subject for f in loso_folds(one, grouping=BY_SESSION)] == ["S0/0", "S0/1"]
    # within-subject training needs another session of the subject
    lone = ts.subset(np.flatnonzero((ts.subjects != "S0") | (ts.sessions == "0")))
    with pytest.raises(DataError, match="test group S0/0: no training trial"):
        loso_folds(lone, grouping=WITHIN)
    # one trial per class per group (as one day of multiday_4ch): few-shot has nothing to draw
    single = ts.subset(np.flatnonzero(ts.repetitions == 0))
    with pytest.raises(DataError, match="no class of test group S0/0 has two trials"):
        fewshot_folds(single, 0.4, too_small="one", grouping=BY_SESSION)
    res = evaluate(single, ["lda"], [], regimes=["none", "fewshot"], shares=[0.4], too_small="one",
                   grouping=BY_SESSION)
    assert {r["regime"] for r in res.folds} == {"none"}
    assert any("regime fewshot skipped" in n for n in res.notes)


SESSION_METHODS = ("lda-log", "lda-log-subjnorm", "lda-log-restnorm", "lda-log-subjnorm-em", "cnn")


@pytest.mark.parametrize("grouping", [BY_SESSION, SHIFT], ids=["every-other-group", "shift"])
@pytest.mark.parametrize("name", SESSION_METHODS)
def test_session_grouping_reads_only_what_the_regime_allows(name, grouping):
    """The poisoning checks with the test group = one (subject, session)."""
    ts = session_trials()
    options = CNNS.get(name, {})
    method = get_method(name, **options)
    for regime in method.regimes:
        check_regime(ts, name, options, regime, rest_used=method.needs_rest, grouping=grouping)


@pytest.mark.parametrize("regime", ["unlabelled", "fewshot"])
def test_session_grouping_keeps_each_session_its_own_user(regime):
    """Per-user statistics never mix a subject's sessions: a power-of-two gain on one channel of the
    test subject's other (training) session changes nothing for per-user standardised features
    (that session is standardised by its own statistics, the test group by what its regime shows);
    the few-shot user's statistics are those of its labelled share alone (without the user view,
    i.e. the fold run as if grouped by subject, they would pool both sessions). (``online`` starts from the
    pooled training statistics, which may depend on any training trial.)"""
    ts = session_trials(n_reps=4)
    fold = next(iter(make_folds(ts, regime, seeds=[0], shares=[0.4], grouping=WITHIN)))
    other = set(np.flatnonzero((ts.subjects == "S0") & (ts.sessions == "1")).tolist())
    assert fold.subject == "S0/0" and other <= set(fold.train.tolist())
    gain = np.array([1, 8, 1, 1], dtype=np.float32)[:, None]
    gained = dataclasses.replace(ts, data=[x * gain if i in other else x for i, x in enumerate(ts.data)],
                                 cache={})
    base = predict(fresh(ts), "lda-log-subjnorm", fold, {})
    np.testing.assert_array_equal(predict(gained, "lda-log-subjnorm", fold, {}), base)
    if regime == "fewshot":  # the test user's statistics: its labelled share only
        share = np.intersect1d(fold.train, np.flatnonzero((ts.subjects == "S0") & (ts.sessions == "0")))
        assert len(share)
        as_subject = dataclasses.replace(fold, group_by="subject", subject="S0")
        for run_as, key in ((fold, "S0/0"), (as_subject, "S0")):
            m = get_method("lda-log-subjnorm")
            view = user_view(ts, run_as.group_by)
            m.fit(view.subset(run_as.train), adaptation=fold_adaptation(ts, run_as, 0))
            own = m._features(view.subset(share))[0]
            same = np.allclose(m.stats_[key][0], own.mean(axis=0))
            assert same == (key == "S0/0"), "the test user's statistics must be those of its share alone"


def test_session_grouping_in_evaluate_and_report(tmp_path):
    ts = session_trials()
    res = evaluate(ts, ["lda-log", "lda-log-subjnorm"], [], regimes=["none", "unlabelled"], grouping=SHIFT)
    assert {r["subject"] for r in res.folds} == {"S0/1", "S1/1", "S2/1"}
    assert res.config["grouping"] == {"by": "session", "within_subject": True, "train_sessions": ["0"]}
    assert all(r["n_train"] == 9 and r["n_test"] == 8 for r in res.folds)
    text = results_markdown(res)
    assert "folds: leave one (subject, session) out; training: sessions 0 of the test subject" in text
    assert "mean +- std over groups (subject/session)" in text
    # the default grouping is the old LOSO
    old = evaluate(ts, ["lda-log"], ["loso"])
    assert {r["subject"] for r in old.folds} == {"S0", "S1", "S2"}
    assert "folds: leave one subject out" in results_markdown(old)


@pytest.mark.parametrize("variant", ["aemg-probe", "aemg-probe-tok-subjnorm", "aemg-probe-tok-em"])
def test_probe_session_grouping_reads_only_what_its_regime_allows(archive_and_run, variant):
    """The probe's poisoning checks with the test user = one (subject, session): the synthetic
    archive's repetitions split into two sessions per subject, each with its own rest recording."""
    trials, run = archive_and_run
    two = dataclasses.replace(trials, sessions=np.where(trials.repetitions % 2 == 0, "a", "b"), cache={})
    assert len(rest_recordings(two, rest_class_id(two))) == 2 * len(two.subject_ids())
    options = {"run": run}
    # fewshot: one trial per class per session here, nothing to draw (covered by the LDA family)
    for regime in [r for r in get_method(variant, **options).regimes if r != "fewshot"]:
        check_regime(two, variant, options, regime, rest_used=variant == "aemg-probe" and regime == "rest",
                     grouping=BY_SESSION)


def test_cli_group_by_session(tmp_path, capsys, monkeypatch):
    """`aemg evaluate --group-by session`: one person over three days (no rest class)."""
    import json

    import aemg.cli

    monkeypatch.setattr(aemg.cli, "COMMANDS", ["evaluate"])
    register_two_class_reader("toy-days", ("a", "b"), ["1", "2", "3"], 4, one_subject=True, quiet_level=1.0)

    base = ["evaluate", "toy-days", "--methods", "lda-log,lda-log-subjnorm", "--regimes", "none,unlabelled",
            "--no-plots"]
    assert main(base + ["--out", str(tmp_path / "a")]) == 2
    assert "--group-by session" in capsys.readouterr().err  # one subject: LOSO says what to do
    by_day = ["--group-by", "session"]
    assert main(base + ["--out", str(tmp_path / "b"), *by_day, "--subjects", "P/day[12]"]) == 0
    rows = json.loads((tmp_path / "b" / "results.json").read_text())
    text = (tmp_path / "b" / "results.md").read_text()
    assert "leave one (subject, session) out; training: every other group" in text
    per = (tmp_path / "b" / "per_subject.csv").read_text()
    assert "P/day1" in per and "P/day2" in per and "P/day3" not in per and rows
    assert main(base + ["--out", str(tmp_path / "c"), *by_day, "--train-sessions", "day1"]) == 0
    assert "P/day1" not in (tmp_path / "c" / "per_subject.csv").read_text()
    assert main(base + ["--out", str(tmp_path / "d"), "--within-subject"]) == 2
    assert "need grouping by session" in capsys.readouterr().err
