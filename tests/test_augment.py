"""Nuisance augmentation for invariance (aemg.train.augment) and the CPU allocator setting."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from aemg.errors import ConfigError
from aemg.model import ModelConfig, PretrainConfig, TrainConfig
from aemg.train import pretrain, synthetic_corpus
from aemg.train.allocator import keep_freed_memory
from aemg.train.augment import AugmentConfig, augment_batch, ring_rotate, time_scale
from aemg.train.data import to_tensors


@pytest.fixture(scope="module")
def batch():
    corpus = synthetic_corpus(6, n_channels=8, token_len=20, tokens=(2, 5), seed=3)
    return to_tensors(corpus.batch(np.arange(6)))


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_inactive_config_returns_the_batch_and_draws_nothing(batch):
    g = _g()
    state = g.get_state().clone()
    assert augment_batch(batch, AugmentConfig(consistency=1.0), g) is batch
    assert torch.equal(g.get_state(), state)


def test_integer_rotation_is_a_roll_and_fractional_interpolates():
    x = torch.arange(2 * 1 * 8 * 3, dtype=torch.float32).view(2, 1, 8, 3)
    out = ring_rotate(x, torch.tensor([1.0, -2.0]))
    assert torch.equal(out[0], torch.roll(x[0], 1, dims=1))
    assert torch.equal(out[1], torch.roll(x[1], -2, dims=1))
    half = ring_rotate(x, torch.tensor([0.5, 0.5]))
    assert torch.allclose(half, 0.5 * (x + torch.roll(x, 1, dims=2)))


def test_time_scale_identity_and_edge_clamp():
    x = torch.randn(3, 2, 4, 10)
    assert torch.allclose(time_scale(x, torch.ones(3)), x)
    fast = time_scale(x, torch.full((3,), 2.0))
    assert torch.allclose(fast[..., :5], x[..., ::2]) and torch.allclose(fast[..., -1], x[..., -1])


def test_gain_changes_energy_not_the_normalised_waveform(batch):
    out = augment_batch(batch, AugmentConfig(channel_gain_db=6.0, global_gain_db=3.0), _g(1))
    real = batch["mask"]
    ratio = (out["energy"][real] / batch["energy"][real].clamp_min(1e-6))
    assert not torch.allclose(ratio, torch.ones_like(ratio))
    # one gain per sentence and channel: the same ratio on every token of a sentence
    for b in range(real.shape[0]):
        r = out["energy"][b][real[b]] / batch["energy"][b][real[b]]
        assert torch.allclose(r, r[:1].expand_as(r), rtol=1e-4)
    p0, p1 = batch["payload"][real], out["payload"][real]
    centred = p0 - p0.mean(dim=-1, keepdim=True)
    assert torch.allclose(p1, centred / centred.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-6),
                          atol=1e-4)


def test_augmentation_keeps_padding_zero_and_is_deterministic(batch):
    cfg = AugmentConfig(channel_gain_db=3, global_gain_db=3, rotation=1.5, noise=0.5, rate_jitter=0.1)
    a, b = augment_batch(batch, cfg, _g(7)), augment_batch(batch, cfg, _g(7))
    for k in ("payload", "energy", "dominant_channel"):
        assert torch.equal(a[k], b[k])
    pad = ~batch["mask"]
    assert (a["payload"][pad] == 0).all() and (a["energy"][pad] == 0).all()
    assert torch.isfinite(a["payload"]).all() and torch.isfinite(a["energy"]).all()
    assert torch.equal(a["dominant_channel"][batch["mask"]], a["energy"].argmax(-1)[batch["mask"]])
    assert a["order"] is batch["order"]


@pytest.mark.parametrize("field,value", [("aug_rotation", -1.0), ("aug_noise", float("nan")),
                                         ("aug_rate_jitter", 0.7)])
def test_bad_ranges_are_refused(field, value):
    with pytest.raises(ConfigError, match=field.removeprefix("aug_")):
        TrainConfig(**{field: value})


def test_pretrain_with_augmentation_logs_consistency_and_is_reproducible(tmp_path):
    corpus = synthetic_corpus(10, n_channels=4, token_len=20, tokens=(2, 8), seed=1)
    cfg = PretrainConfig(
        ModelConfig(name="micro", token_len=20, d_model=32, depth=1, heads=2, mlp_dim=64, conv_channels=4,
                    channel_dim=16, pool_heads=2, codebook_size=16, code_dim=8, vq_depth=1, decoder_depth=1,
                    max_tokens=16),
        TrainConfig(stage1_steps=3, stage2_steps=2, batch_size=4, warmup_steps=1, kmeans_iters=2, log_every=1,
                    checkpoint_every=5, amp=False))
    aug = replace(cfg, train=replace(cfg.train, aug_channel_gain_db=3.0, aug_rotation=1.0, aug_noise=0.2,
                                     aug_consistency=0.5))
    a = pretrain(corpus, tmp_path / "a", aug, progress=False)
    b = pretrain(corpus, tmp_path / "b", aug, progress=False)
    plain = pretrain(corpus, tmp_path / "plain", cfg, progress=False)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert all(np.isfinite(h["inv_loss"]) and h["inv_loss"] >= 0 for h in a.history if h["stage"] == 1)
    assert "inv_loss" not in plain.final[1]
    assert [h["loss"] for h in a.history] != [h["loss"] for h in plain.history]


def test_keep_freed_memory_is_idempotent_and_can_be_turned_off(monkeypatch):
    import aemg.train.allocator as alloc
    monkeypatch.setattr(alloc, "_done", False)
    monkeypatch.setenv("AEMG_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory() is False
    monkeypatch.delenv("AEMG_KEEP_FREED_MEMORY")
    first = keep_freed_memory()
    assert keep_freed_memory() is first
