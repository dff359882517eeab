"""Two-stage pre-training: determinism, exact resume after an interruption, bad input, NaN stop."""
import csv

import numpy as np
import pytest

from aemg.errors import ConfigError, DataError
from aemg.model import ModelConfig, PretrainConfig, TrainConfig
from aemg.train import NonFiniteLoss, load_checkpoint, load_model, pretrain, synthetic_corpus
from aemg.train.data import ArrayCorpus

MICRO = PretrainConfig(
    ModelConfig(name="micro", token_len=20, d_model=32, depth=1, heads=2, mlp_dim=64, conv_channels=4,
                channel_dim=16, pool_heads=2, codebook_size=16, code_dim=8, vq_depth=1, decoder_depth=1,
                max_tokens=16),
    TrainConfig(stage1_steps=6, stage2_steps=6, batch_size=4, warmup_steps=2, kmeans_iters=3, log_every=1,
                checkpoint_every=2, amp=False))


@pytest.fixture(scope="module")
def corpus():
    return synthetic_corpus(10, n_channels=4, token_len=20, tokens=(2, 8), seed=1)


@pytest.fixture(scope="module")
def full_run(corpus, tmp_path_factory):
    return pretrain(corpus, tmp_path_factory.mktemp("full") / "run", MICRO, progress=False)


def _losses(result):
    return [(h["stage"], h["step"], h["loss"]) for h in result.history]


def test_both_stages_log_and_checkpoint(tmp_path, corpus, full_run):
    r = full_run
    assert [h["stage"] for h in r.history] == [1] * 6 + [2] * 6
    assert all(np.isfinite(h["loss"]) for h in r.history)
    assert {"rec_loss", "perplexity", "usage"} <= set(r.final[1]) and "accuracy" in r.final[2]
    rows = list(csv.DictReader(open(r.run_dir / "log.csv")))
    assert [(int(x["stage"]), int(x["step"])) for x in rows] == [(s, k) for s in (1, 2) for k in range(1, 7)]
    model, ck = load_model(r.run_dir)
    assert ck.state["stage"] == 2 and ck.state["step"] == 6 and ck.state["stage1_done"]
    assert bool(model.quantizer.initialised)
    # stage 2 alone in a fresh folder needs stage 1; an existing run needs --resume
    with pytest.raises(ConfigError, match="stage 1"):
        pretrain(corpus, tmp_path / "other", MICRO, stage=2, progress=False)
    with pytest.raises(ConfigError, match="resume"):
        pretrain(corpus, r.run_dir, MICRO, progress=False)


def test_deterministic_with_seed(tmp_path, corpus):
    a = pretrain(corpus, tmp_path / "a", MICRO, stage=1, steps=3, seed=5, progress=False)
    b = pretrain(corpus, tmp_path / "b", MICRO, stage=1, steps=3, seed=5, progress=False)
    c = pretrain(corpus, tmp_path / "c", MICRO, stage=1, steps=3, seed=6, progress=False)
    assert _losses(a) == _losses(b)
    assert _losses(a) != _losses(c)


@pytest.mark.parametrize("stop_at", [(1, 3), (2, 2)])
def test_resume_after_interruption_is_exact(tmp_path, corpus, full_run, stop_at):
    full = full_run

    def interrupt(row):
        if (row["stage"], row["step"]) == stop_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(corpus, tmp_path / "cut", MICRO, progress=False, on_step=interrupt)
    rest = pretrain(corpus, tmp_path / "cut", MICRO, progress=False, resume=True)
    done = [x for x in _losses(full) if x[:2] <= stop_at]
    assert _losses(rest) == [x for x in _losses(full) if x[:2] > stop_at]
    rows = list(csv.DictReader(open(tmp_path / "cut" / "log.csv")))
    assert len(rows) == len(done) + len(rest.history)  # no duplicated rows after resuming
    assert float(rows[-1]["loss"]) == pytest.approx(full.history[-1]["loss"], rel=1e-12)


def test_stage2_continues_a_stage1_run(tmp_path, corpus):
    pretrain(corpus, tmp_path / "run", MICRO, stage=1, progress=False)
    r = pretrain(corpus, tmp_path / "run", MICRO, stage=2, progress=False)
    assert [h["stage"] for h in r.history] == [2] * 6


def test_bad_corpus(tmp_path, corpus):
    with pytest.raises(DataError, match="empty"):
        pretrain(ArrayCorpus([], np.zeros(4)), tmp_path / "e", MICRO, progress=False)
    long = synthetic_corpus(3, n_channels=4, token_len=20, tokens=(17, 20))
    with pytest.raises(DataError, match="synthetic/0.*longer than the model allows"):
        pretrain(long, tmp_path / "l", MICRO, progress=False)
    r = pretrain(synthetic_corpus(3, n_channels=4, token_len=30, tokens=(2, 5)), tmp_path / "t", MICRO,
                 stage=1, steps=1, progress=False)
    assert r.config.model.token_len == 30  # a new run takes the corpus's token length
    assert not (tmp_path / "e").exists() and not (tmp_path / "l").exists()


class _PoisonAfter:
    """A corpus whose batches turn to NaN after ``n`` calls."""

    def __init__(self, corpus, n):
        self.c, self.n, self.calls = corpus, n, 0

    def __getattr__(self, name):
        return getattr(self.c, name)

    def batch(self, indices, max_len=None):
        self.calls += 1
        b = self.c.batch(indices, max_len)
        if self.calls > self.n:
            b["payload"] = b["payload"] * np.nan
        return b


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, corpus):
    with pytest.raises(NonFiniteLoss, match="stage 1 step 5.*last good checkpoint"):
        # 1 batch read for the target statistics, then 4 good steps
        pretrain(_PoisonAfter(corpus, 5), tmp_path / "run", MICRO, progress=False)
    ck = load_checkpoint(tmp_path / "run")
    assert ck.state["stage"] == 1 and ck.state["step"] == 4
    assert all(np.isfinite(v.numpy()).all() for v in ck.weights.values() if v.is_floating_point())


def test_mixed_corpora(tmp_path, corpus):
    other = synthetic_corpus(6, n_channels=4, token_len=20, tokens=(2, 5), seed=9)
    r = pretrain([corpus, other], tmp_path / "run", MICRO, stage=1, steps=2, progress=False)
    assert len(r.history) == 2
    with pytest.raises(DataError, match="token shape"):
        pretrain([corpus, synthetic_corpus(3, n_channels=5, token_len=20)], tmp_path / "x", MICRO,
                 progress=False)


WARM = PretrainConfig(MICRO.model,
                      TrainConfig(**{**MICRO.train.__dict__, "vq_warmup_steps": 2, "kmeans_batches": 2}))


def test_vq_warmup_then_kmeans_and_exact_resume(tmp_path, corpus):
    full = pretrain(corpus, tmp_path / "full", WARM, stage=1, progress=False)
    assert [h["quantized"] for h in full.history] == [0, 0, 1, 1, 1, 1]
    assert all(h["codes_used"] == 0 and h["commit_loss"] == 0 for h in full.history[:2])
    assert all(1 <= h["codes_used"] <= 16 and h["perplexity"] >= 1 for h in full.history[2:])
    assert all(h["rec_base"] > 0 for h in full.history)

    def interrupt(row):
        if row["step"] == 2:  # stopped before the codebook is initialised
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(corpus, tmp_path / "cut", WARM, stage=1, progress=False, on_step=interrupt)
    rest = pretrain(corpus, tmp_path / "cut", WARM, stage=1, progress=False, resume=True)
    assert _losses(rest) == _losses(full)[2:]
