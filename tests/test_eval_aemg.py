"""AEMG downstream methods (aemg.eval.methods): probe, fine-tune, scratch, window Transformer.

One tiny synthetic archive (3 subjects, rest + 2 gestures x 2 repetitions) is rectified, tokenized
and pre-trained for a few steps once per module; every test reuses it.
"""
import dataclasses
import json

import numpy as np
import pytest
import torch

from aemg.cli import main
from aemg.data.pipeline import rectify_dataset
from aemg.embed import _sentences_from_recordings
from aemg.errors import ConfigError, DataError
from aemg.eval import evaluate, get_method, load_trials, loso_folds
from aemg.eval.methods import (
    AEMG_METHODS,
    FUSE_GUARD,
    calibrate,
    load_run,
    prepare_calibration,
    state_sha256,
    trial_sentences,
)
from aemg.tokenizer.corpus import open_corpus, tokenize_archive
from aemg.tokenizer.tokens import TokenizerConfig
from aemg.train import load_checkpoint, pretrain

SYNTHETIC = {"n_subjects": 3, "n_gestures": 2, "repetitions": 2}
FAST = {"aemg-finetune": {"epochs": 1}, "aemg-scratch": {"epochs": 1}, "window-transformer": {"epochs": 1}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, one_torch_thread):
    root = tmp_path_factory.mktemp("aemg_eval")
    rectify_dataset("synthetic", root / "archive", reader_options=SYNTHETIC, workers=1, progress=False)
    tokenize_archive(root / "archive", root / "corpus", workers=1, progress=False)
    torch.manual_seed(0)
    pretrain(open_corpus(root / "corpus"), root / "run", "tiny", steps=2, batch_size=8, progress=False,
             device="cpu")
    return root


@pytest.fixture(scope="module")
def trials(setup):
    """Shared by the tests (so is its cache of sentences and embeddings); tests only take subsets."""
    return load_trials(setup / "archive")


def options(run, **extra):
    out = {m: {"run": str(run), **FAST.get(m, {})} for m in AEMG_METHODS}
    for m, kw in extra.items():
        out[m].update(kw)
    return out


def test_every_method_runs_loso_and_fewshot(setup, trials):
    res = evaluate(trials, list(AEMG_METHODS), ["loso", "fewshot"], shares=[0.5], subjects=["s00", "s02"],
                   method_options=options(setup / "run"))
    rows = {(r["method"], r["protocol"], r["subject"]) for r in res.folds}
    assert rows == {(m, p, s) for m in AEMG_METHODS for p in ("loso", "fewshot") for s in ("s00", "s02")}
    # loso = the native regime: rest calibration for the event-token methods, none for fixed windows
    assert {(r["method"], r["regime"]) for r in res.folds if r["protocol"] == "loso"} == {
        (m, "none" if m == "window-transformer" else "rest") for m in AEMG_METHODS}
    for r in res.folds:  # 6 trials per subject, one of them the rest recording (never tested)
        assert r["n_test"] == (5 if r["protocol"] == "loso" else 3)
    for (name, regime, share), conf in res.confusion.items():  # every test trial has tokens here,
        assert conf.shape == (3, 3)                               # so every one got a class
        assert conf.sum() == sum(r["n_test"] for r in res.folds
                                 if (r["method"], r["regime"]) == (name, regime))
    assert {r["method"] for r in res.summary()} == set(AEMG_METHODS)


def test_probe_options_and_training_only_statistics(setup, trials):
    fold = loso_folds(trials)[0]
    train, test = trials.subset(fold.train), trials.subset(fold.test)
    for kw in ({"pooling": "cls"}, {"classifier": "lda"}, {}):
        probe = get_method("aemg-probe", run=str(setup / "run"), **kw)
        probe.prepare(trials)
        probe.fit(train)
        feats, _ = probe.embeddings(train)
        np.testing.assert_allclose(probe.mean_, feats.mean(axis=0))  # training subjects only
        pred = probe.predict(test.without_labels()).trial
        assert pred.shape == (len(test),) and set(pred.tolist()) <= {0, 1, 2}
    mean_tokens, cls_tokens = (get_method("aemg-probe", run=str(setup / "run"),
                                          pooling=p).embeddings(train)[0]
                               for p in ("mean", "cls"))
    assert not np.allclose(mean_tokens, cls_tokens)


def test_probe_subject_normalisation_uses_only_what_its_mode_allows(setup, trials):
    from aemg.eval import fewshot_folds
    from aemg.eval.runner import fold_adaptation
    fold = loso_folds(trials, regime="unlabelled")[0]
    train, test = trials.subset(fold.train), trials.subset(fold.test)
    run = str(setup / "run")
    with pytest.raises(ConfigError, match="subject_norm"):
        get_method("aemg-probe", run=run, subject_norm="everything")
    assert get_method("aemg-probe-subjnorm", run=run).regimes == ("online", "unlabelled", "fewshot")
    assert get_method("aemg-probe-calibnorm", run=run).regimes == ("rest", "fewshot")
    assert get_method("aemg-probe", run=run, calibration="robust").regimes == ("none", "fewshot")
    seen = fold_adaptation(trials, fold)
    # LOSO, labelled: the test subject has no training trial, so it gets the pooled statistics
    calib = get_method("aemg-probe-calibnorm", run=run)
    calib.fit(train, adaptation=seen)
    feats, use = calib.embeddings(train, adaptation=seen)
    for s in np.unique(train.subjects):  # each training subject standardised with its own trials
        rows = train.subjects[use] == s
        np.testing.assert_allclose(calib.stats_[s][0], feats[rows].mean(axis=0))
    assert set(calib.stats_) == set(np.unique(train.subjects))
    hidden = test.without_labels()
    scores, _ = calib.scores(hidden, seen)
    tf, _ = calib.embeddings(hidden, adaptation=seen)
    np.testing.assert_allclose(scores, ((tf - calib.mean_) / calib.std_) @ calib.weight_.T + calib.bias_)
    # unlabelled: the user's unlabelled trials (from the adaptation) give its statistics
    sub = get_method("aemg-probe-subjnorm", run=run)
    sub.fit(train, adaptation=seen)
    scores, _ = sub.scores(hidden, seen)
    np.testing.assert_allclose(scores, ((tf - tf.mean(0)) / tf.std(0)) @ sub.weight_.T + sub.bias_)
    assert sub.predict(hidden, seen).trial.shape == (len(test),)
    # few-shot, labelled: the target's calibration trials (in the training set) give its statistics
    few = fewshot_folds(trials, 0.5, seeds=[0])[0]
    ftrain = trials.subset(few.train)
    fseen = fold_adaptation(trials, few)
    calib.fit(ftrain, adaptation=fseen)
    target = np.unique(trials.subjects[few.test])[0]
    fe, fuse = calib.embeddings(ftrain, adaptation=fseen)
    rows = ftrain.subjects[fuse] == target
    assert 0 < rows.sum() < len(fuse)
    np.testing.assert_allclose(calib.stats_[target][0], fe[rows].mean(axis=0))


def test_probe_rotation_augmentation(setup, trials):
    fold = loso_folds(trials)[0]
    train = trials.subset(fold.train)
    run = str(setup / "run")
    with pytest.raises(ConfigError, match="rotations"):
        get_method("aemg-probe", run=run, rotations=-1)
    probe = get_method("aemg-probe", run=run, rotations=1, subject_norm="labelled")
    probe.prepare(trials)
    probe.fit(train)
    plain, use = probe.embeddings(train)
    rolled = [probe.embeddings(train, k)[0] for k in (1, -1)]
    assert not np.allclose(rolled[0], plain)  # the backbone sees where the energy is
    stacked = np.concatenate([plain] + rolled)
    np.testing.assert_allclose(probe.mean_, stacked.mean(axis=0))  # fitted on 3 x the trials
    s = probe.sentences(train)[int(use[0])]
    back = s.rolled(5).rolled(-5)
    np.testing.assert_array_equal(back.payload, s.payload)
    np.testing.assert_array_equal(s.rolled(3).dominant_channel, np.argmax(s.rolled(3).energy, axis=1))
    assert s.rolled(16) is s and s.rolled(0) is s


@pytest.mark.parametrize("name", ["aemg-finetune", "aemg-scratch", "window-transformer"])
def test_supervised_methods_are_seeded(setup, trials, name):
    fold = loso_folds(trials)[1]
    train, test = trials.subset(fold.train), trials.subset(fold.test).without_labels()
    opts = options(setup / "run")[name]
    if name != "aemg-finetune":
        opts.pop("run")  # no run: tiny preset, default tokenizer settings
    a, b, c = (get_method(name, **opts).fit(train, seed=s) for s in (3, 3, 4))
    assert state_sha256(a.backbone_) == state_sha256(b.backbone_)
    np.testing.assert_array_equal(a.head_.weight.detach().numpy(), b.head_.weight.detach().numpy())
    np.testing.assert_array_equal(a.predict(test).trial, b.predict(test).trial)
    assert state_sha256(a.head_) != state_sha256(c.head_)
    if name == "aemg-finetune":  # every seed starts from the same pre-trained weights
        assert a.initial_sha256_ == c.initial_sha256_
    else:
        assert a.initial_sha256_ != c.initial_sha256_


def test_folds_start_from_the_same_pretrained_weights(setup, trials):
    run = load_run(setup / "run")
    before = state_sha256(run.model.backbone)
    assert before == run.backbone_sha256
    starts, ends = [], []
    for fold in loso_folds(trials):
        m = get_method("aemg-finetune", run=str(setup / "run"), epochs=1).fit(trials.subset(fold.train))
        starts.append(m.initial_sha256_)
        ends.append(state_sha256(m.backbone_))
    assert starts == [before] * 3  # a fresh copy each fold...
    assert len(set(ends)) == 3 and before not in ends  # ...trained apart,
    assert state_sha256(run.model.backbone) == before  # and the loaded run is never touched
    saved = load_checkpoint(setup / "run").weights
    assert all(torch.equal(saved[f"backbone.{k}"], v) for k, v in run.model.backbone.state_dict().items())


def test_eval_tokens_equal_the_pretraining_corpus_and_embed(setup, trials):
    """Rest calibration prepared on the whole set gives the corpus's sentences exactly (also for the
    test subject whose labels are hidden in a fold); aemg.embed on the archive agrees too."""
    corpus = open_corpus(setup / "corpus")
    want = {s["key"]: corpus.sentence(i) for i, s in enumerate(corpus.sentences)}
    config = TokenizerConfig()
    prepare_calibration(trials, config)
    test = trials.subset(loso_folds(trials)[0].test).without_labels()
    info = load_checkpoint(setup / "run").state["data"]
    from aemg.data.archive import open_archive
    embedded = {s.key: s
                for s in _sentences_from_recordings(open_archive(setup / "archive"), info, rectified=True)}
    for got in (trial_sentences(trials, config), trial_sentences(test, config), list(embedded.values())):
        assert got
        for s in got:
            ref = want[s.key]
            np.testing.assert_array_equal(s.onset_in_trial_s, ref.onset_in_trial_s)
            np.testing.assert_allclose(s.payload, ref.payload, atol=1e-6)
    assert sum(s.n_tokens for s in embedded.values()) == corpus.n_tokens
    # the strict option uses no label: robust levels, and other events than the corpus's here
    robust = dataclasses.replace(config, calibration="robust")
    assert calibrate(trials, robust) == [None] * len(trials)
    assert all(isinstance(v, float) for v in calibrate(trials, config))
    strict = trial_sentences(trials, robust)
    assert any(not np.array_equal(s.onset_in_trial_s, want[s.key].onset_in_trial_s) for s in strict)
    hidden = calibrate(trials.without_labels(), config)  # without labels nothing selects rest trials
    assert hidden == [None] * len(trials)


def test_window_transformer_uses_fixed_windows(setup, trials):
    m = get_method("window-transformer", epochs=1)
    sents = m.sentences(trials)
    L = 125
    for x, s in zip(trials.data, sents):
        assert s.n_tokens == x.shape[1] // L and not s.events.size
        np.testing.assert_allclose(s.onset_in_trial_s, np.arange(s.n_tokens) * L / trials.rate)


# -- bad input ---------------------------------------------------------------------------------
def test_one_subject_loso_is_refused(setup, trials):
    one = trials.subset(np.flatnonzero(trials.subjects == "s00"))
    with pytest.raises(DataError, match="LOSO needs at least 2 subjects, found 1"):
        evaluate(one, ["aemg-probe"], ["loso"], method_options=options(setup / "run"))


def test_class_missing_from_training_is_noted_and_counted_as_error(setup, trials):
    # only s00 keeps class 2: its LOSO fold has test trials of a class no training subject shows
    keep = np.flatnonzero((trials.labels != 2) | (trials.subjects == "s00"))
    sub = trials.subset(keep)
    res = evaluate(sub, ["aemg-probe", "aemg-scratch"], ["loso"], subjects=["s00"],
                   method_options=options(setup / "run"))
    assert any("gesture2" in n and "absent from training" in n for n in res.notes)
    for name in ("aemg-probe", "aemg-scratch"):
        row = next(r for r in res.folds if r["method"] == name)
        assert "absent from training" in row["notes"] and row["n_test"] == 5
        conf = res.confusion[(name, "rest", None)]
        assert conf[2, 2] == 0 and conf[2].sum() == 2  # never predicted, counted as errors


def test_fewshot_share_below_one_trial_per_class(setup, trials):
    opts = options(setup / "run")
    with pytest.raises(ConfigError, match="smallest usable share for this subject is 0.25"):
        evaluate(trials, ["aemg-probe"], ["fewshot"], shares=[0.1], too_small="error", method_options=opts)
    skipped = evaluate(trials, ["aemg-probe"], ["fewshot"], shares=[0.1, 0.5], method_options=opts)
    assert any("0.1 skipped" in n for n in skipped.notes) and {r["share"] for r in skipped.folds} == {0.5}
    one = evaluate(trials, ["aemg-probe"], ["fewshot"], shares=[0.1], too_small="one", method_options=opts)
    # one trial of each gesture out of the 5 non-calibration trials (rest has one left: tested only)
    assert {r["actual_share"] for r in one.folds} == {0.4} and len(one.folds) == 3


def test_checkpoint_token_settings_differ_from_the_data(setup, trials):
    run = str(setup / "run")
    slow = load_trials(setup / "archive", rate=250)
    for name in ("aemg-probe", "aemg-finetune"):
        with pytest.raises(ConfigError, match=r"16 channels x 125 samples \(0.25 s at 500 Hz\).*16 channels "
                                              r"at 250 Hz \(tokens of 62 samples\)"):
            evaluate(slow, [name], ["loso"], method_options=options(setup / "run"))
    half = dataclasses.replace(trials, data=[x[:8] for x in trials.data], cache={})
    with pytest.raises(ConfigError, match="16 channels x 125 samples.*have 8 channels at 500 Hz"):
        get_method("aemg-probe", run=run).prepare(half)
    with pytest.raises(ConfigError, match="aemg-probe needs a pre-trained run"):
        get_method("aemg-probe")
    with pytest.raises(DataError, match="no such run"):
        get_method("aemg-probe", run=str(setup / "nowhere")).prepare(trials)
    # without pre-training the architecture follows the data: no mismatch
    assert get_method("aemg-scratch", epochs=1).fit(slow.subset(np.arange(12))).backbone_ is not None


def test_evaluate_cli_with_checkpoint(setup, tmp_path, capsys):
    code = main(["evaluate", str(setup / "archive"), "--out", str(tmp_path / "rep"), "--methods",
                 "lda,aemg-probe,aemg-finetune", "--checkpoint", str(setup / "run"), "--method-options",
                 '{"aemg-finetune": {"epochs": 1}}', "--subjects", "s01", "--no-plots"])
    out = capsys.readouterr().out
    assert code == 0 and "aemg-probe" in out and "aemg-finetune" in out
    assert (tmp_path / "rep" / "confusion_aemg-probe_rest.csv").is_file()
    assert (tmp_path / "rep" / "confusion_lda_none.csv").is_file()
    assert main(["evaluate", str(setup / "archive"), "--out", str(tmp_path / "r2"),
                 "--methods", "aemg-probe"]) == 2
    assert "needs a pre-trained run" in capsys.readouterr().err
    # no --methods with a checkpoint: the recommended AEMG method per regime and the baselines
    assert main(["evaluate", str(setup / "archive"), "--out", str(tmp_path / "r3"), "--checkpoint",
                 str(setup / "run"), "--regimes", "rest,unlabelled", "--subjects", "s01", "--no-plots",
                 "--no-progress"]) == 0
    ran = json.loads((tmp_path / "r3" / "results.json").read_text())["config"]["methods"]
    assert ran == ["lda-log", "lda-log-subjnorm", "lda-log-subjnorm-map", "aemg-probe-fuse",
                   "aemg-probe-fuse-subjnorm", "aemg-probe-fuse-auto", "aemg-probe-fuse-map"]
    assert "| aemg-probe-fuse-auto |" in capsys.readouterr().out


def _unlabelled_fold(trials):
    from aemg.eval.protocols import rest_class_id
    from aemg.eval.runner import fold_adaptation
    fold = loso_folds(trials, regime="unlabelled")[0]
    return fold, fold_adaptation(trials, fold, rest_class_id(trials))


def test_token_set_td_is_the_time_domain_token_means(setup, trials):
    from aemg.eval.features import TOKEN_FEATURES, token_feature_columns
    c = trials.n_channels
    assert list(token_feature_columns(c, "all")) == list(range(2 * len(TOKEN_FEATURES) * c))
    assert list(token_feature_columns(c, "td")) == list(range(4 * c))   # logMAV, logWL, ZC, SSC means
    with pytest.raises(DataError, match="token_set"):
        token_feature_columns(c, "bands")
    full, use = get_method("nct-lda", run=str(setup / "run")).trial_features(trials)
    td, use_td = get_method("nct-lda", run=str(setup / "run"), token_set="td").trial_features(trials)
    np.testing.assert_array_equal(use, use_td)
    np.testing.assert_array_equal(td, full[:, :4 * c])
    with pytest.raises(ConfigError, match="token_set"):
        get_method("aemg-probe-tok", run=str(setup / "run"), token_set="bands")


def test_probe_auto_fits_the_candidate_with_the_best_inner_accuracy(setup, trials):
    """The choice is made on the training subjects only, and the fitted candidate is exactly the
    registered probe with the chosen options."""
    run = str(setup / "run")
    fold, adaptation = _unlabelled_fold(trials)
    train, test = trials.subset(fold.train), trials.subset(fold.test).without_labels()
    auto = get_method("aemg-probe-auto", run=run).fit(train, adaptation=adaptation)
    assert auto.regimes == ("unlabelled",)
    acc = [row["inner_accuracy"] for row in auto.selection_]
    assert len(acc) == 4 and all(0.0 <= a <= 1.0 for a in acc)
    best = auto.candidates[int(np.argmax(acc))]
    assert {k: getattr(auto.chosen_, k) for k in best} == best
    twin = get_method("aemg-probe-tok-em" if best["adapt"] == "em" else "aemg-probe-tok-subjnorm",
                      run=run, token_set=best["token_set"]).fit(train, adaptation=adaptation)
    np.testing.assert_array_equal(auto.predict(test, adaptation).trial, twin.predict(test, adaptation).trial)
    # the test user plays no part in the choice: other test trials, the same selection
    other = get_method("aemg-probe-auto", run=run).fit(train, adaptation=adaptation.with_unlabelled(None))
    assert other.selection_ == auto.selection_
    assert auto.fit_choice() == {"decision": f"token_set={best['token_set']}, adapt={best['adapt']}",
                                 "selection": auto.selection_}
    # one training user: no inner split, the first candidate, and the choice says so
    alone = train.subset(np.flatnonzero(train.subjects == train.subjects[0]))
    single = get_method("aemg-probe-auto", run=run).fit(alone, adaptation=adaptation)
    assert single.fit_choice() == {"decision": "token_set=td, adapt=em (no inner split: the first)",
                                   "selection": []}
    # one candidate: no choice to make
    one = get_method("aemg-probe-auto", run=run, candidates=[{"token_set": "all", "adapt": "em"}])
    one.fit(train, adaptation=adaptation)
    np.testing.assert_array_equal(one.predict(test, adaptation).trial,
                                  get_method("aemg-probe-tok-em", run=run).fit(train, adaptation=adaptation)
                                  .predict(test, adaptation).trial)


def test_probe_auto_bad_options(setup):
    run = str(setup / "run")
    with pytest.raises(ConfigError, match="inner_folds"):
        get_method("aemg-probe-auto", run=run, inner_folds=1)
    with pytest.raises(ConfigError, match="features is set by the candidates"):
        get_method("aemg-probe-auto", run=run, features="tokens")
    with pytest.raises(ConfigError, match="pooling.*not selectable"):
        get_method("aemg-probe-auto", run=run, candidates=[{"pooling": "cls"}])
    with pytest.raises(ConfigError, match="token_set"):
        get_method("aemg-probe-auto", run=run, candidates=[{"token_set": "bands"}])
    with pytest.raises(ConfigError, match="candidates is empty"):
        get_method("aemg-probe-auto", run=run, candidates=[])


def test_probe_map_adapts_the_users_class_means_from_its_labelled_share(setup, trials):
    from aemg.eval.protocols import fewshot_folds, rest_class_id
    from aemg.eval.runner import fold_adaptation
    run = str(setup / "run")
    fold = fewshot_folds(trials, 0.01, too_small="one")[0]
    adaptation = fold_adaptation(trials, fold, rest_class_id(trials))
    train, test = trials.subset(fold.train), trials.subset(fold.test).without_labels()
    m = get_method("aemg-probe-tok-map", run=run).fit(train, adaptation=adaptation)
    assert m.regimes == ("fewshot",) and list(m.user_means_) == [fold.subject]
    # an infinite-like prior gives the unadapted model back
    frozen = get_method("aemg-probe-tok-map", run=run, map_prior=1e12).fit(train, adaptation=adaptation)
    scores, _ = frozen.scores(test, adaptation)
    np.testing.assert_allclose(frozen.user_means_[fold.subject], frozen.gauss_.means_, atol=1e-9)
    assert np.isfinite(scores[:, np.unique(train.labels)]).all()
    with pytest.raises(ConfigError, match="subject_norm='labelled'"):
        get_method("aemg-probe", run=run, adapt="map")
    with pytest.raises(ConfigError, match="map_prior"):
        get_method("aemg-probe-tok-map", run=run, map_prior=-1)


def test_probe_token_rows_vote_the_tokens_of_a_trial(setup, trials):
    """rows="tokens": one LDA row per token (its time-domain classic features), the trial = the
    majority vote of its tokens; rows="trial": exactly aemg-probe-tok."""
    from aemg.eval.baselines import vote
    from aemg.eval.classifiers import LDA
    from aemg.eval.features import token_features
    run = str(setup / "run")
    fold = loso_folds(trials)[0]
    train, test = trials.subset(fold.train), trials.subset(fold.test).without_labels()
    tok = get_method("aemg-probe-tok-rows", run=run, rows="tokens", token_shrinkage=0.1).fit(train)
    assert tok.rows_ == "tokens" and tok.regimes == ("rest", "fewshot") and tok.token_set == "all"
    x, owner = tok.token_rows(train)
    sents = trial_sentences(train, tok.tokenizer_config())
    c = train.n_channels
    assert x.shape == (sum(s.n_tokens for s in sents), 4 * c)
    i = int(owner[0])
    np.testing.assert_allclose(x[owner == i], token_features(sents[i].payload, sents[i].energy,
                                                             sents[i].rate)[:, :4 * c])
    mean, std = x.mean(0), np.where(x.std(0) > 0, x.std(0), 1.0)
    lda = LDA(0.1).fit((x - mean) / std, train.labels[owner])
    xt, ot = tok.token_rows(test)
    s = np.full((len(xt), train.n_classes), -1e9)
    s[:, lda.classes_] = lda.decision_function((xt - mean) / std)
    want = vote(s.argmax(1), ot, len(test), train.n_classes, s)
    np.testing.assert_array_equal(tok.predict(test).trial, want)
    counts, use = tok.scores(test)       # the votes per class of each trial with tokens
    np.testing.assert_array_equal(use, np.unique(ot))
    np.testing.assert_array_equal(counts.sum(1), np.bincount(ot)[use])
    unique = (counts == counts.max(1, keepdims=True)).sum(1) == 1   # no tie: the vote is the argmax
    np.testing.assert_array_equal(counts.argmax(1)[unique], want[use][unique])
    assert 0.0 <= tok.token_shrinkage_ <= 1.0
    trial = get_method("aemg-probe-tok-rows", run=run, rows="trial").fit(train)
    twin = get_method("aemg-probe-tok", run=run).fit(train)
    assert trial.rows_ == "trial"
    np.testing.assert_array_equal(trial.predict(test).trial, twin.predict(test).trial)


def test_probe_rows_auto_chooses_on_the_training_trials(setup, trials):
    run = str(setup / "run")
    fold = loso_folds(trials)[0]
    train, test = trials.subset(fold.train), trials.subset(fold.test).without_labels()
    auto = get_method("aemg-probe-tok-rows", run=run).fit(train)
    acc = {r["rows"]: r["inner_accuracy"] for r in auto.selection_}
    assert set(acc) == {"trial", "tokens"} and all(0.0 <= a <= 1.0 for a in acc.values())
    assert auto.rows_ == ("trial" if acc["trial"] > acc["tokens"] else "tokens")   # ties: tokens
    twin = get_method("aemg-probe-tok-rows", run=run, rows=auto.rows_).fit(train)
    np.testing.assert_array_equal(auto.predict(test).trial, twin.predict(test).trial)
    # within one subject the inner folds are its repetitions; one repetition: no split, token rows
    s0 = np.flatnonzero(trials.subjects == "s00")
    both = get_method("aemg-probe-tok-rows", run=run).fit(trials.subset(s0))
    assert len(both.selection_) == 2
    one = get_method("aemg-probe-tok-rows", run=run).fit(
        trials.subset(s0[trials.repetitions[s0] == trials.repetitions[s0].min()]))
    assert one.rows_ == "tokens" and one.selection_ == []


def test_probe_rows_bad_options(setup):
    run = str(setup / "run")
    with pytest.raises(ConfigError, match="rows='windows'"):
        get_method("aemg-probe-tok-rows", run=run, rows="windows")
    with pytest.raises(ConfigError, match="adapt='none', subject_norm='none'"):
        get_method("aemg-probe-tok-rows", run=run, subject_norm="all", adapt="em")
    with pytest.raises(ConfigError, match="adapt='none', subject_norm='none'"):
        get_method("aemg-probe-tok-rows", run=run, rows="tokens", rotations=1)
    with pytest.raises(ConfigError, match="inner_folds"):
        get_method("aemg-probe-tok-rows", run=run, inner_folds=1)
    with pytest.raises(ConfigError, match="row_set"):
        get_method("aemg-probe-tok-rows", run=run, row_set="bands")
    with pytest.raises(ConfigError, match="token_shrinkage"):
        get_method("aemg-probe-tok-rows", run=run, token_shrinkage=1.5)
    get_method("aemg-probe-tok-rows", run=run, rows="trial", subject_norm="all", adapt="em")


def test_probe_token_rows_ledoit_wolf_shrinkage(setup, trials):
    """token_shrinkage="lw": the LDA of token rows with the Ledoit-Wolf intensity of the
    standardised, class-centred rows (the same predictions as that number given by hand)."""
    from sklearn.covariance import ledoit_wolf_shrinkage
    run = str(setup / "run")
    fold = loso_folds(trials)[0]
    train, test = trials.subset(fold.train), trials.subset(fold.test).without_labels()
    lw = get_method("aemg-probe-tok-rows", run=run, rows="tokens").fit(train)
    x, owner = lw.token_rows(train)
    y = train.labels[owner]
    z = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
    for c in np.unique(y):
        z[y == c] -= z[y == c].mean(0)
    want = float(ledoit_wolf_shrinkage(z, assume_centered=True))
    assert 0.0 <= want <= 1.0 and lw.token_shrinkage_ == pytest.approx(want)
    fixed = get_method("aemg-probe-tok-rows", run=run, rows="tokens", token_shrinkage=want).fit(train)
    np.testing.assert_array_equal(lw.predict(test).trial, fixed.predict(test).trial)


def _fused_reference(probe_scores, use, window_scores, owner, n, w):
    """The fusion rule written out: w * log-softmax(probe) + (1 - w) * mean window log-softmax(lda)."""
    from scipy.special import log_softmax
    ws = log_softmax(np.where(np.isfinite(window_scores), window_scores, -1e9), axis=1)
    mean = np.stack([ws[owner == i].mean(0) for i in range(n)])
    p = np.zeros_like(mean)
    p[use] = log_softmax(np.where(np.isfinite(probe_scores), probe_scores, -1e9), axis=1)
    weight = np.where(np.isin(np.arange(n), use), w, 0.0)[:, None]   # no tokens: the LDA alone
    return (weight * p + (1 - weight) * mean).argmax(1)


def test_probe_fuse_weights_the_probe_and_the_window_lda_posteriors(setup, trials):
    """weight w: argmax of w * log-softmax(probe scores) + (1 - w) * the mean over the trial's windows
    of log-softmax(lda-log's window scores); w = 1 is aemg-probe-tok."""
    from aemg.eval.baselines import vote
    run = str(setup / "run")
    fold = loso_folds(trials)[0]
    train, test = trials.subset(fold.train), trials.subset(fold.test).without_labels()
    probe = get_method("aemg-probe-tok", run=run).fit(train)
    scores, use = probe.scores(test)
    lda = get_method("lda-log").fit(train)
    ws, owner = lda.window_scores(test)
    np.testing.assert_array_equal(vote(ws.argmax(1), owner, len(test), lda.n_classes_,
                                       np.where(np.isfinite(ws), ws, -1e9)), lda.predict(test).trial)
    fused = get_method("aemg-probe-fuse", run=run)
    assert fused.weight == 0.5 and fused.regimes == ("rest", "fewshot") and fused.needs_rest
    for w in (0.0, 0.3, 0.5, 1.0):
        fused = get_method("aemg-probe-fuse", run=run, weight=w, guard=None).fit(train)
        np.testing.assert_array_equal(fused.predict(test).trial,
                                      _fused_reference(scores, use, ws, owner, len(test), w))
    alone = get_method("aemg-probe-fuse", run=run, weight=1, guard=None).fit(train)
    np.testing.assert_array_equal(alone.predict(test).trial, probe.predict(test).trial)


def test_probe_fuse_map_fuses_the_fewshot_twins(setup, trials):
    """aemg-probe-fuse-map: aemg-probe-tok-map and lda-log-subjnorm-map, both adapted to the user's
    labelled share of the fold."""
    from aemg.eval.protocols import fewshot_folds
    from aemg.eval.runner import fold_adaptation
    run = str(setup / "run")
    fold = fewshot_folds(trials, 0.01, too_small="one")[0]
    adaptation = fold_adaptation(trials, fold)
    train, test = trials.subset(fold.train), trials.subset(fold.test).without_labels()
    probe = get_method("aemg-probe-tok-map", run=run).fit(train, adaptation=adaptation)
    scores, use = probe.scores(test, adaptation)
    lda = get_method("lda-log-subjnorm-map").fit(train, adaptation=adaptation)
    ws, owner = lda.window_scores(test, adaptation)
    fused = get_method("aemg-probe-fuse-map", run=run, guard=None).fit(train, adaptation=adaptation)
    assert fused.regimes == ("fewshot",)
    np.testing.assert_array_equal(fused.predict(test, adaptation).trial,
                                  _fused_reference(scores, use, ws, owner, len(test), 0.5))


def test_probe_fuse_subjnorm_online_fuses_the_running_statistics(setup, trials):
    """aemg-probe-fuse-subjnorm under online: the rule on both components' causal scores (their
    running statistics with their own online priors)."""
    from aemg.eval.runner import fold_adaptation
    run = str(setup / "run")
    fold = loso_folds(trials, regime="online")[0]
    adaptation = fold_adaptation(trials, fold)
    train, test = trials.subset(fold.train), trials.subset(fold.test).without_labels()
    fused = get_method("aemg-probe-fuse-subjnorm", run=run, guard=None).fit(train, adaptation=adaptation)
    assert fused.regimes == ("online", "unlabelled", "fewshot") and fused.probe.online_prior == 2.0
    probe = get_method("aemg-probe-tok-subjnorm", run=run).fit(train, adaptation=adaptation)
    lda = get_method("lda-log-subjnorm").fit(train, adaptation=adaptation)
    scores, use = probe.online_scores(test, adaptation)
    ws, owner = lda.online_window_scores(test)
    np.testing.assert_array_equal(probe.predict_online(test, adaptation).trial[use], scores.argmax(1))
    np.testing.assert_array_equal(lda.predict_online(test, adaptation).window, ws.argmax(1))
    np.testing.assert_array_equal(fused.predict_online(test, adaptation).trial,
                                  _fused_reference(scores, use, ws, owner, len(test), 0.5))


def test_probe_fuse_auto_fuses_the_selected_probe_with_the_standardised_lda(setup, trials):
    """aemg-probe-fuse-auto (unlabelled): aemg-probe-auto, its settings chosen by the training
    users, and lda-log-subjnorm, both on the user's own statistics, fused by the same rule."""
    from aemg.eval.runner import fold_adaptation
    run = str(setup / "run")
    fold = loso_folds(trials, regime="unlabelled")[0]
    adaptation = fold_adaptation(trials, fold)
    train, test = trials.subset(fold.train), trials.subset(fold.test).without_labels()
    fused = get_method("aemg-probe-fuse-auto", run=run, guard=None).fit(train, adaptation=adaptation)
    assert fused.regimes == ("unlabelled",) and fused.weight == 0.5
    probe = get_method("aemg-probe-auto", run=run).fit(train, adaptation=adaptation)
    lda = get_method("lda-log-subjnorm").fit(train, adaptation=adaptation)
    assert fused.probe.selection_ == probe.selection_  # the same choice, by the training users
    scores, use = probe.scores(test, adaptation)
    ws, owner = lda.window_scores(test, adaptation)
    np.testing.assert_array_equal(fused.predict(test, adaptation).trial,
                                  _fused_reference(scores, use, ws, owner, len(test), 0.5))


def test_inner_folds_replay_the_regime_on_training_users_only(trials):
    """The guard's folds: each holds out one training user (never the test user), keeps that
    user's designated rest recording out of its test trials and in ``rest``, and under fewshot
    moves as many labelled trials per class into training as the test user gave."""
    from aemg.eval.protocols import fewshot_folds, inner_folds
    from aemg.eval.runner import fold_adaptation
    fold = fewshot_folds(trials, 0.01, too_small="one")[0]
    adaptation = fold_adaptation(trials, fold)
    train = trials.subset(fold.train)
    inner = inner_folds(train, adaptation, n_users=5, seed=0)
    others = sorted(set(train.subjects.tolist()) - {adaptation.subject})
    assert [f.subject for f in inner] == others and all(f.regime == "fewshot" for f in inner)
    given = np.bincount(train.labels[train.subjects == adaptation.subject], minlength=train.n_classes)
    for f in inner:
        assert not np.intersect1d(f.train, f.test).size
        assert set(train.subjects[f.test].tolist()) == {f.subject}
        assert not np.isin(f.test, adaptation.train_rest).any()
        rest = adaptation.train_rest
        assert np.array_equal(f.rest, rest[train.subjects[rest] == f.subject])
        share = f.train[train.subjects[f.train] == f.subject]
        drawn = np.bincount(train.labels[share], minlength=train.n_classes)
        own = np.bincount(train.labels[np.setdiff1d(np.flatnonzero(train.subjects == f.subject), f.rest)],
                          minlength=train.n_classes)
        np.testing.assert_array_equal(drawn, np.where(own > 1, np.minimum(given, own - 1), 0))
    assert inner_folds(train, None) == [] and inner_folds(train.subset(np.flatnonzero(
        train.subjects == others[0])), adaptation) == []    # no regime / one user: no folds


@pytest.mark.parametrize("regime", ["rest", "online"])
def test_probe_fuse_guard_follows_the_inner_accuracies(setup, trials, regime):
    """The guard: the fused rule, the LDA alone and the probe alone scored on the inner folds'
    held-out training users (written out here); a component decides alone only when it beats the
    fused rule by more than ``guard``; guard=1 never fires, guard=None keeps the weight."""
    from aemg.eval.protocols import inner_folds
    from aemg.eval.runner import fold_adaptation
    run = str(setup / "run")
    name, probe_name, lda_name = (("aemg-probe-fuse", "aemg-probe-tok", "lda-log") if regime == "rest" else
                                  ("aemg-probe-fuse-subjnorm", "aemg-probe-tok-subjnorm", "lda-log-subjnorm"))
    fold = loso_folds(trials, regime=regime)[0]
    adaptation = fold_adaptation(trials, fold)
    train, test = trials.subset(fold.train), trials.subset(fold.test).without_labels()
    correct, n = np.zeros(3), 0
    for f in inner_folds(train, adaptation, 5, fold.seed):
        inner = fold_adaptation(train, f)
        probe = get_method(probe_name, run=run).fit(train.subset(f.train), adaptation=inner)
        lda = get_method(lda_name).fit(train.subset(f.train), adaptation=inner)
        held = train.subset(f.test)
        hidden = held.without_labels()
        if regime == "online":
            got = (*probe.online_scores(hidden, inner), *lda.online_window_scores(hidden))
        else:
            got = (*probe.scores(hidden, inner), *lda.window_scores(hidden, inner))
        vote = lda.predict_online(hidden, inner) if regime == "online" else lda.predict(hidden, inner)
        for i, pred in enumerate((_fused_reference(*got, len(held), 0.5), vote.trial,
                                  _fused_reference(*got, len(held), 1.0))):
            correct[i] += (pred == held.labels).sum()
        n += len(held)
    acc = correct / n
    predict = "predict_online" if regime == "online" else "predict"
    lda = get_method(lda_name).fit(train, adaptation=adaptation)
    for guard in (0.0, 0.05, 1.0):
        fused = get_method(name, run=run, guard=guard).fit(train, adaptation=adaptation)
        assert fused.inner_["n_trials"] == n
        np.testing.assert_allclose([fused.inner_[k] for k in ("fused", "lda", "probe")], acc)
        best = 1 + int(np.argmax(acc[1:]))
        assert fused.alone_ == (("lda", "probe")[best - 1] if acc[best] > acc[0] + guard else None)
        assert fused.fit_choice()["decision"] == (f"{fused.alone_} alone" if fused.alone_ else "fused")
        # alone: exactly that component's prediction (the LDA's vote; the probe = weight 1)
        same = (lda if fused.alone_ == "lda" else get_method(
            name, run=run, guard=None, weight=1.0 if fused.alone_ else 0.5).fit(train, adaptation=adaptation))
        np.testing.assert_array_equal(getattr(fused, predict)(test, adaptation).trial,
                                      getattr(same, predict)(test, adaptation).trial)
    unguarded = get_method(name, run=run).fit(train, adaptation=adaptation)   # the default: off
    assert unguarded.inner_ is None and unguarded.alone_ is None and unguarded.fit_choice() is None


def test_probe_fuse_guard_lets_the_much_better_component_decide_alone(setup, trials):
    """An LDA whose own prediction is always right (an oracle by trial key, standing in for a
    probe that fails on a device) beats the fused rule on the inner users: the guard lets it decide
    alone, and the fused method then predicts exactly what it predicts."""
    from aemg.eval.baselines import Prediction
    from aemg.eval.runner import fold_adaptation
    truth = dict(zip(trials.keys.tolist(), trials.labels.tolist()))
    fold = loso_folds(trials, regime="rest")[0]
    adaptation = fold_adaptation(trials, fold)
    train, test = trials.subset(fold.train), trials.subset(fold.test).without_labels()
    fused = get_method("aemg-probe-fuse", run=str(setup / "run"), guard=FUSE_GUARD)
    fused.lda.predict = lambda t, a=None: Prediction(np.array([truth[k] for k in t.keys.tolist()]))
    fused.fit(train, adaptation=adaptation)
    assert fused.inner_["lda"] == 1.0 and fused.inner_["fused"] < 1.0 - fused.guard
    assert fused.alone_ == "lda" and fused.fit_choice()["decision"] == "lda alone"
    np.testing.assert_array_equal(fused.predict(test, adaptation).trial, trials.labels[fold.test])


def test_fold_rows_record_the_inner_choice_and_the_report_counts_it(setup, trials, tmp_path):
    """evaluate(): each fold row holds the method's fit_choice() (the guard's inner accuracies and
    decision; None for a method that chooses nothing); the notes count the decisions per regime;
    folds.csv holds the choice as JSON."""
    import csv

    from aemg.eval.report import write_report
    res = evaluate(trials, ["aemg-probe-fuse", "lda-log"], regimes=["rest"], protocols=(),
                   method_options={"aemg-probe-fuse": {"run": str(setup / "run"), "guard": FUSE_GUARD}})
    fused = [r for r in res.folds if r["method"] == "aemg-probe-fuse"]
    assert len(fused) == 3 and all(r["choice"] is None for r in res.folds if r["method"] == "lda-log")
    decisions = [r["choice"]["decision"] for r in fused]
    assert set(decisions) <= {"fused", "lda alone", "probe alone"}
    assert all(0 <= r["choice"][k] <= 1 for r in fused for k in ("fused", "lda", "probe"))
    note = next(n for n in res.notes if n.startswith("aemg-probe-fuse under rest: inner choice"))
    for d in set(decisions):
        k = decisions.count(d)
        assert f"{d} in {k} fold{'s' * (k > 1)}" in note
    write_report(res, tmp_path / "rep", plots=False)
    with open(tmp_path / "rep" / "folds.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["method"] == "aemg-probe-fuse"]
    assert [json.loads(r["choice"])["decision"] for r in rows] == decisions


def test_probe_fuse_bad_options(setup):
    run = str(setup / "run")
    for bad in (-0.1, 1.5, "half"):
        with pytest.raises(ConfigError, match=r"weight must be a number in \[0, 1\]"):
            get_method("aemg-probe-fuse", run=run, weight=bad)
        with pytest.raises(ConfigError, match=r"guard must be a number in \[0, 1\] or None"):
            get_method("aemg-probe-fuse", run=run, guard=bad)
    with pytest.raises(ConfigError, match="guard_users=1 must be an integer >= 2"):
        get_method("aemg-probe-fuse", run=run, guard_users=1)
    with pytest.raises(ConfigError, match="is not a probe variant"):
        get_method("aemg-probe-fuse", run=run, probe="aemg-probe-tok-rows")
    with pytest.raises(ConfigError, match="is not a window LDA"):
        get_method("aemg-probe-fuse", run=run, lda="cnn")
    with pytest.raises(ConfigError, match="lda-log-subjnorm-map cannot run under rest"):
        get_method("aemg-probe-fuse", run=run, lda="lda-log-subjnorm-map")
    with pytest.raises(ConfigError, match="needs a pre-trained run"):
        get_method("aemg-probe-fuse")


def test_fusion_study_script_reproduces_the_fused_methods(setup, tmp_path, capsys):
    """scripts/fusion_study.py (the screening harness of experiments 19-24): at w = 0.5 its saved
    posteriors give aemg evaluate's fused method per trial, under rest and online alike."""
    import importlib.util
    from pathlib import Path

    from aemg.eval.runner import fold_adaptation
    path = Path(__file__).resolve().parents[1] / "scripts" / "fusion_study.py"
    spec = importlib.util.spec_from_file_location("fusion_study", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    trials = load_trials(setup / "archive")
    for regime, probe, lda, fused in (("rest", "aemg-probe-tok", "lda-log", "aemg-probe-fuse"),
                                      ("online", "aemg-probe-tok-subjnorm", "lda-log-subjnorm",
                                       "aemg-probe-fuse-subjnorm")):
        out = tmp_path / f"{regime}.npz"
        assert script.main([str(setup / "archive"), "--run", str(setup / "run"), "--regime", regime,
                            "--probe", probe, "--lda", lda, "--weights", "0.5", "--save", str(out)]) == 0
        f = np.load(out)
        got = (0.5 * f["P"] + 0.5 * f["L"]).argmax(1)
        want = []
        for fold in loso_folds(trials, regime=regime):
            adaptation = fold_adaptation(trials, fold)
            train, test = trials.subset(fold.train), trials.subset(fold.test).without_labels()
            method = get_method(fused, run=str(setup / "run"), guard=None).fit(train, adaptation=adaptation)
            pred = (method.predict_online(test, adaptation) if regime == "online"
                    else method.predict(test, adaptation)).trial
            want.append(pred)
            assert (f["pos"][f["user"] == fold.subject] == np.arange(len(test))).all()
        np.testing.assert_array_equal(got, np.concatenate(want))
    assert "w=0.50" in capsys.readouterr().out
