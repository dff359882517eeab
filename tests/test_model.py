"""AEMG model: shapes, embeddings from geometry, VQ invariants, masking, configs."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aemg.errors import ConfigError
from aemg.model import AEMG, ModelConfig, PretrainConfig, load_config, preset
from aemg.model.config import PRESETS
from aemg.model.embeddings import SpatialEmbedding
from aemg.model.encoder import TemporalConv
from aemg.model.vq import VectorQuantizer, perplexity, spherical_kmeans, vq_lookup
from aemg.train.data import geometry, synthetic_corpus, to_tensors

MICRO = ModelConfig(name="micro", token_len=20, d_model=32, depth=1, heads=2, mlp_dim=64, conv_channels=4,
                    channel_dim=16, pool_heads=2, codebook_size=16, code_dim=8, vq_depth=1, decoder_depth=1)


def _batch(n=6, channels=4, seed=0):
    c = synthetic_corpus(n, n_channels=channels, token_len=20, tokens=(2, 7), seed=seed)
    return c, to_tensors(c.batch(range(n))), *geometry(c)


def test_presets_shapes():
    assert (PRESETS["base"].model.d_model, PRESETS["base"].model.depth,
            PRESETS["base"].model.heads) == (256, 6, 8)
    assert (PRESETS["large"].model.d_model, PRESETS["large"].model.depth,
            PRESETS["large"].model.heads) == (512, 12, 16)
    assert preset("tiny").model.mask_ratio == 0.5
    with pytest.raises(ConfigError, match="unknown"):
        preset("huge")


def test_config_file_roundtrip(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text('preset = "tiny"\n[model]\ncodebook_size = 64\n[train]\nstage1_steps = 7\namp = false\n')
    cfg = load_config(p)
    assert cfg.model.codebook_size == 64 and cfg.model.d_model == 64 and cfg.train.stage1_steps == 7
    assert PretrainConfig.from_dict(cfg.to_dict()) == cfg
    (tmp_path / "bad.toml").write_text("[model]\nwidth = 3\n")
    with pytest.raises(ConfigError, match="width"):
        load_config(tmp_path / "bad.toml")
    (tmp_path / "bad2.toml").write_text("[model]\nd_model = 30\nheads = 4\n")
    with pytest.raises(ConfigError, match="divisible"):
        load_config(tmp_path / "bad2.toml")


def test_temporal_conv_shape_and_locality():
    torch.manual_seed(0)
    tc = TemporalConv(3, 5)
    x = torch.randn(4, 11)
    assert tc(x).shape == (4, 3 * 6)
    y = x.clone()
    y[:, -1] += 10.0  # a change at the end does not reach the first output steps (kernel 5)
    assert torch.allclose(tc(x).view(4, 3, 6)[..., :2], tc(y).view(4, 3, 6)[..., :2])


def test_forward_shapes_and_padding_invariance():
    torch.manual_seed(0)
    m = AEMG(MICRO).eval()
    c, b, a, z = _batch()
    e = m.embed(b, a, z)
    B, N = b["mask"].shape
    assert e["tokens"].shape == (B, N, 32) and e["sentence"].shape == (B, 32) and e["cls"].shape == (B, 32)
    # a sentence embedded alone (no padding) equals its row in the padded batch
    one = to_tensors(c.batch([0]))
    e1 = m.embed(one, a, z)
    n0 = int(one["mask"].sum())
    assert torch.allclose(e1["tokens"][0, :n0], e["tokens"][0, :n0], atol=1e-5)
    assert torch.allclose(e1["sentence"][0], e["sentence"][0], atol=1e-5)


def test_spatial_embedding_from_geometry_generalises():
    """Rotating the electrodes changes the embedding smoothly; an unseen count works."""
    torch.manual_seed(0)
    se = SpatialEmbedding(16, 4)
    a = torch.linspace(0, 2 * math.pi, 9)[:-1]
    e = se(a, torch.zeros(8))
    assert e.shape == (8, 16)
    near = se(a + 1e-3, torch.zeros(8))
    assert (near - e).abs().max() < 1e-2
    assert se(torch.linspace(0, 6, 13), torch.zeros(13)).shape == (13, 16)
    m = AEMG(MICRO).eval()
    c, b, a4, z4 = _batch(channels=6)  # a 6-channel device with a declared geometry
    assert torch.isfinite(m.embed(b, a4, z4)["sentence"]).all()


def test_vq_lookup_reference_and_invariants():
    g = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(37, 8, generator=g), dim=1)
    cb = F.normalize(torch.randn(5, 8, generator=g), dim=1)
    idx, d = vq_lookup(z, cb)
    brute = ((z[:, None] - cb[None]) ** 2).sum(-1)
    assert torch.equal(idx, brute.argmin(1))
    assert torch.allclose(d, brute.min(1).values, atol=1e-5)
    idx0, d0 = vq_lookup(z[:0], cb)
    assert idx0.shape == (0,) and d0.shape == (0,)
    vq = VectorQuantizer(5, 8).eval()
    vq.codebook.copy_(cb)
    out = vq(z)
    assert torch.allclose(out["quantized"], cb[out["indices"]], atol=1e-6)
    assert torch.allclose(out["commit_sum"], d.sum(), atol=1e-4)  # same cosine distance in loss


def test_vq_ema_kmeans_and_dead_codes():
    g = torch.Generator().manual_seed(0)
    centers = F.normalize(torch.randn(3, 8, generator=g), dim=1)
    z = F.normalize(centers.repeat(40, 1) + 0.05 * torch.randn(120, 8, generator=g), dim=1)
    c = spherical_kmeans(z, 3, 10, g)
    assert (c @ centers.t()).max(dim=0).values.min() > 0.99
    vq = VectorQuantizer(6, 8, decay=0.5, window=2)
    vq.initialise(z, 10, g)
    assert bool(vq.initialised) and torch.allclose(vq.codebook.norm(dim=1), torch.ones(6), atol=1e-5)
    vq.train()
    for _ in range(5):
        out = vq(z, g)
    assert torch.allclose(vq.codebook.norm(dim=1), torch.ones(6), atol=1e-5)
    # every dead code was restarted near a data point, so all codes are close to some input
    assert ((vq.codebook @ z.t()).max(dim=1).values > 0.9).all()
    assert 1.0 <= perplexity(out["counts"]) <= 6.0
    assert perplexity(torch.tensor([5.0, 0, 0])) == pytest.approx(1.0)
    assert perplexity(torch.tensor([2.0, 2.0])) == pytest.approx(2.0)


def test_mask_sampling_ratio_and_determinism():
    m = AEMG(MICRO)
    real = torch.zeros(3, 10, dtype=torch.bool)
    real[0, :10] = True
    real[1, :3] = True
    real[2, :1] = True
    mk = m.sample_mask(real, [1, 2, 3])
    assert mk.sum(1).tolist() == [5, 2, 1]  # round(0.5 n), at least one
    assert not (mk & ~real).any()
    assert torch.equal(mk, m.sample_mask(real, [1, 2, 3]))
    assert torch.equal(mk[1:2], m.sample_mask(real[1:2], [2]))  # independent of the batch


def test_masked_tokens_hide_content():
    """A masked token's content cannot reach the backbone's output."""
    torch.manual_seed(0)
    m = AEMG(MICRO).eval()
    c, b, a, z = _batch()
    masked = torch.zeros_like(b["mask"])
    masked[0, 1] = True
    h1 = m.backbone(b, a, z, masked)
    b2 = dict(b)
    b2["payload"] = b["payload"].clone()
    b2["payload"][0, 1] += 5.0
    b2["energy"] = b["energy"].clone()
    b2["energy"][0, 1] *= 9.0
    b2["dominant_channel"] = b["dominant_channel"].clone()
    b2["dominant_channel"][0, 1] = (b["dominant_channel"][0, 1] + 1) % 4
    assert torch.allclose(h1, m.backbone(b2, a, z, masked), atol=1e-6)
    assert not torch.allclose(h1, m.backbone(b2, a, z, None), atol=1e-3)


@pytest.mark.parametrize("with_mask", [False, True])
def test_packed_token_encoder_matches_padded(monkeypatch, with_mask):
    """The encoder run on the real (unmasked) tokens only gives the padded computation's outputs
    at real positions (float rounding apart) and its gradients; the padding's content (NaN here)
    and a masked token's content never reach them, and a batch with nothing to encode works."""
    import aemg.model.backbone as bb
    torch.manual_seed(0)
    m = AEMG(MICRO).eval()
    c, b, a, z = _batch()
    real = b["mask"]
    assert not bool(real.all())  # the batch has padding
    masked = m.sample_mask(real, range(real.shape[0])) if with_mask else None
    out = {}
    for pack in (False, True):
        monkeypatch.setattr(bb, "PACK_REAL_TOKENS", pack)
        m.zero_grad()
        h = m.backbone(b, a, z, masked)
        h[:, 1:][real].square().sum().backward()
        grad = m.backbone.encoder.conv.conv1.weight.grad.clone()
        out[pack] = (h[:, 1:][real].detach(), h[:, 0].detach(), grad)
    for x, y in zip(out[False], out[True]):
        assert torch.allclose(x, y, atol=1e-5, rtol=1e-5)
    poisoned = dict(b, payload=b["payload"].masked_fill(~real[..., None, None], float("nan")),
                    energy=b["energy"].masked_fill(~real[..., None], float("nan")))
    with torch.no_grad():
        h2 = m.backbone(poisoned, a, z, masked)
    assert torch.equal(h2[:, 1:][real], out[True][0])
    with torch.no_grad():  # every real token masked: the encoder has no row to see
        h3 = m.backbone(b, a, z, real.clone())
    assert torch.isfinite(h3[:, 1:][real]).all()


def test_stage_losses_finite_and_backprop():
    torch.manual_seed(0)
    m = AEMG(MICRO)
    c, b, a, z = _batch()
    g = torch.Generator().manual_seed(0)
    m.quantizer.initialise(m.encode_codes(b, a, z)[b["mask"]].detach(), 3, g)
    params = m.trainable(1)
    m.init_target_stats([b])
    out = m(1, b, a, z, g)
    (out["rec_sum"] + out["commit_sum"]).backward()
    assert all(p.grad is not None for p in params)
    assert all(p.grad is None for p in m.backbone.parameters())
    m.zero_grad(set_to_none=True)
    params = m.trainable(2)
    out = m(2, b, a, z, m.sample_mask(b["mask"], range(6)))
    out["ce_sum"].backward()
    assert all(p.grad is not None for p in params) and int(out["n_tokens"]) > 0
    assert all(p.grad is None for p in m.vq_encoder.encoder.parameters())


# -- stage-1 targets ---------------------------------------------------------------------------
from aemg.model.targets import standardise, token_targets  # noqa: E402

EDGES = (10.0, 30.0, 60.0, 100.0, 150.0, 250.0)


def _reference_targets(x, e, rate, windows, edges):
    """Loop oracle of token_targets for one token x (C, L) float64, e (C,)."""
    C, L = x.shape
    loge = np.log(e + 1e-6)
    b = [round(i * L / windows) for i in range(windows + 1)]
    env = np.array([[0.5 * np.log((x[c, b[w]:b[w + 1]] ** 2).sum() / max(b[w + 1] - b[w], 1) + 1e-3)
                     for w in range(windows)] for c in range(C)])
    p = np.abs(np.fft.rfft(x, axis=-1)) ** 2 / L
    f = np.arange(p.shape[-1]) * rate / L
    spec = np.zeros((C, len(edges) - 1))
    for j in range(len(edges) - 1):
        sel = (f >= edges[j]) & ((f <= edges[j + 1]) if j == len(edges) - 2 else (f < edges[j + 1]))
        spec[:, j] = np.log((p[:, sel].mean(-1) if sel.any() else 0.0) + 1e-4)
    return loge - loge.mean(), loge.mean(), env, spec


@pytest.mark.parametrize("L,windows", [(125, 5), (37, 4), (3, 5), (1, 1)])
def test_token_targets_match_loop_reference(L, windows):
    rng = np.random.default_rng(L)
    x = rng.standard_normal((2, 3, 4, L)).astype(np.float32)
    x[1, 2, 3] = 0.0  # a flat channel
    e = rng.gamma(1.0, 2.0, (2, 3, 4)).astype(np.float32)
    e[0, 0, 0] = 0.0
    t = token_targets(torch.from_numpy(x), torch.from_numpy(e), rate=500.0, windows=windows,
                      band_edges_hz=EDGES)
    assert t["spatial"].shape == (2, 3, 4) and t["level"].shape == (2, 3, 1)
    assert t["envelope"].shape == (2, 3, 4, windows) and t["spectrum"].shape == (2, 3, 4, 5)
    assert t["valid"].sum() == 2 * 3 * 4 - 1 and not t["valid"][1, 2, 3]
    for i in range(2):
        for j in range(3):
            sp, lv, env, spec = _reference_targets(x[i, j].astype(np.float64), e[i, j].astype(np.float64),
                                                   500.0, windows, EDGES)
            np.testing.assert_allclose(t["spatial"][i, j].numpy(), sp, rtol=1e-5, atol=1e-4)
            assert float(t["level"][i, j, 0]) == pytest.approx(lv, rel=1e-5, abs=1e-4)
            np.testing.assert_allclose(t["envelope"][i, j].numpy(), env, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(t["spectrum"][i, j].numpy(), spec, rtol=1e-4, atol=1e-4)
    assert all(torch.isfinite(v).all() for v in t.values() if v.is_floating_point())


def test_token_targets_physiology():
    """A burst in the second 50 ms shows in the envelope, a 45 Hz tone in the 30-60 Hz band, the
    loud channel in the spatial pattern; the payload is a non-contiguous view."""
    L, rate = 125, 500.0
    t = np.arange(L) / rate
    x = np.random.default_rng(0).standard_normal((3, L)) * 0.05
    x[0, 25:50] += 3.0 * np.sign(np.sin(2 * np.pi * 120 * t[25:50]))
    x[1] += np.sin(2 * np.pi * 45 * t)
    x = (x - x.mean(-1, keepdims=True)) / x.std(-1, keepdims=True)
    e = np.array([5.0, 1.0, 0.3])
    big = np.zeros((3, 2 * L), np.float32)
    big[:, ::2] = x  # non-contiguous view
    out = token_targets(torch.from_numpy(big)[:, ::2], torch.tensor(e), rate=rate, windows=5,
                        band_edges_hz=EDGES)
    assert int(out["envelope"][0].argmax()) == 1
    assert int(out["spectrum"][1].argmax()) == 1
    assert int(out["spatial"].argmax()) == 0 and float(out["spatial"].sum()) == pytest.approx(0.0, abs=1e-5)
    assert float(out["level"][0]) == pytest.approx(np.log(e + 1e-6).mean(), rel=1e-5)


def test_target_stats_standardise_and_config_edges():
    m = AEMG(MICRO)
    c, b, a, z = _batch()
    m.init_target_stats([b])
    tgt = standardise(m.raw_targets(b), m.target_mean, m.target_std)
    real = b["mask"]
    assert abs(float(tgt["level"][real].mean())) < 1e-4 and float(tgt["level"][real].std(unbiased=False)) == \
        pytest.approx(1.0, rel=1e-3)
    env = tgt["envelope"][real][tgt["valid"][real]]  # (n valid channels, W)
    assert env.mean(0).abs().max() < 1e-4 and torch.allclose(env.std(0, unbiased=False), torch.ones(5),
                                                             atol=1e-3)
    with pytest.raises(ConfigError, match="band_edges_hz"):
        ModelConfig(band_edges_hz=(10.0, 5.0))
    assert ModelConfig(band_edges_hz=[1, 2, 3]).band_edges_hz == (1.0, 2.0, 3.0)


def test_stage1_baseline_is_the_batch_variance():
    torch.manual_seed(0)
    m = AEMG(MICRO)
    c, b, a, z = _batch()
    m.init_target_stats([b])
    out = m.stage1_losses(b, a, z, quantize=False)
    lv = standardise(m.raw_targets(b), m.target_mean, m.target_std)["level"][b["mask"]]
    assert float(out["level_base_sum"]) == pytest.approx(float(((lv - lv.mean()) ** 2).sum()), rel=1e-4)
    assert float(out["commit_sum"]) == 0.0 and float(out["counts"].sum()) == 0.0
    assert not bool(m.quantizer.initialised)


def test_vq_usage_window_counts_real_assignments_only():
    vq = VectorQuantizer(4, 4, decay=0.9, window=3).train()
    vq.codebook.copy_(torch.eye(4))
    vq.initialised.fill_(True)
    g = torch.Generator().manual_seed(0)
    zq = F.normalize(torch.tensor([[1.0, 0.05, 0.0, 0.0], [1.0, -0.05, 0.02, 0.0]]), dim=1)
    before = vq.codebook.clone()
    for _ in range(3):  # codes 1..3 unused for 3 steps: not yet dead
        vq(zq, g)
    assert torch.allclose(vq.codebook[1:], before[1:])
    assert vq.window_stats()[0] == 1 and vq.usage() == pytest.approx(0.25)
    vq(zq, g)  # 4th step: unused for a whole window -> restarted at the batch encodings
    assert ((vq.codebook[1:] @ zq.t()).max(dim=1).values > 0.99).all()
    used, ppl = vq.window_stats()
    assert used == 1 and ppl == pytest.approx(1.0)  # restarts are not counted as use


def test_pack_tokens_environment_switch():
    """AEMG_PACK_TOKENS=0 restores the padded encoder path (bit-for-bit retraining of older runs)."""
    import os
    import subprocess
    import sys
    code = "from aemg.model import backbone; print(backbone.PACK_REAL_TOKENS)"
    env = {**os.environ, "AEMG_PACK_TOKENS": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    env["AEMG_PACK_TOKENS"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
