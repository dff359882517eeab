"""Checkpoints: round trip, atomic layout, truncated/corrupt files, another preset."""

import pytest
import torch

from aemg.errors import ConfigError, DataError
from aemg.model import AEMG, ModelConfig, PretrainConfig, TrainConfig, preset
from aemg.train import load_checkpoint, load_model, pretrain, save_checkpoint, synthetic_corpus
from aemg.train.checkpoint import load_weights

MICRO = PretrainConfig(
    ModelConfig(name="micro", token_len=20, d_model=32, depth=1, heads=2, mlp_dim=64, conv_channels=4,
                channel_dim=16, pool_heads=2, codebook_size=16, code_dim=8, vq_depth=1, decoder_depth=1),
    TrainConfig(stage1_steps=2, stage2_steps=2, batch_size=4, warmup_steps=1, kmeans_iters=2, amp=False))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    c = synthetic_corpus(6, n_channels=4, token_len=20, tokens=(2, 6))
    out = tmp_path_factory.mktemp("ck") / "run"
    pretrain(c, out, MICRO, progress=False)
    return out, c


def test_roundtrip_weights_optimizer_rng(tmp_path):
    torch.manual_seed(0)
    m = AEMG(MICRO.model)
    opt = torch.optim.AdamW(m.stage2_parameters(), lr=1e-3)
    m.stage2_parameters()[0].sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path, m, opt, {"stage": 2, "step": 7}, MICRO)
    ck = load_checkpoint(tmp_path)
    assert ck.path == path and ck.state["step"] == 7 and ck.config == MICRO
    for k, v in m.state_dict().items():
        assert torch.equal(ck.weights[k], v)
    opt2 = torch.optim.AdamW(m.stage2_parameters(), lr=1e-3)
    opt2.load_state_dict(ck.optimizer)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for pid in s1["state"]:
        for name, v in s1["state"][pid].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(s2["state"][pid][name]))
    assert torch.equal(ck.rng["rng.torch"], torch.get_rng_state())
    # only the last two checkpoints are kept; no temporary folders remain
    for step in (8, 9):
        save_checkpoint(tmp_path, m, opt, {"stage": 2, "step": step}, MICRO)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["s2-0000008", "s2-0000009"]


def test_load_model_from_run(run):
    out, c = run
    model, ck = load_model(out)
    assert not model.training and ck.state["stage"] == 2


def test_truncated_and_corrupt_files(run, tmp_path):
    import shutil
    out, _ = run
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    ck = load_checkpoint(bad).path
    f = ck / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(DataError, match="model.safetensors.*truncated"):
        load_checkpoint(bad)
    (ck / "trainer.json").write_text("{not json")
    with pytest.raises(DataError, match="trainer.json.*corrupt"):
        load_checkpoint(bad)
    with pytest.raises(DataError, match="no such run"):
        load_checkpoint(tmp_path / "missing")


def test_checkpoint_of_another_preset(run):
    out, c = run
    other = PretrainConfig(MICRO.model.__class__(**{**MICRO.model.__dict__, "d_model": 64}), MICRO.train)
    with pytest.raises(ConfigError, match="d_model"):
        pretrain(c, out, other, resume=True, progress=False)
    with pytest.raises(DataError, match="do not fit"):
        load_weights(AEMG(preset("tiny").model), load_checkpoint(out).weights, "ck")


def test_embed_corpus_and_vocab_plot(run, tmp_path):
    import numpy as np

    import aemg.embed as E
    from aemg.cli.vocab import code_usage, plot_vocab

    out, c = run
    e = E.embed(out, c, device="cpu", batch_size=4)
    assert e.sentence.shape == (c.n_sentences, 32) and len(e.tokens) == c.n_sentences
    assert [len(t) for t in e.tokens] == [s["n_tokens"] for s in c.sentences]
    assert np.allclose(e.sentence, np.stack([t.mean(0) for t in e.tokens]), atol=1e-5)
    one = E.embed(out, c, device="cpu", batch_size=1)  # padding does not change embeddings
    assert np.allclose(one.sentence, e.sentence, atol=1e-5)
    p = e.save(tmp_path / "emb.npz")
    z = np.load(p)
    assert z["tokens"].shape[0] == z["token_offsets"][-1] == c.n_tokens
    model, _ = load_model(out)
    counts, groups = code_usage(model, c)
    assert counts.sum() == c.n_tokens and groups == ["synthetic/ring:4"]
    png = plot_vocab(model, c, tmp_path / "vocab.png", top=4)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_embed_raw_recording(tmp_path):
    """A raw recording of a device never seen in pre-training (declared geometry and rate) is
    rectified, tokenized with the run's settings and embedded."""
    import numpy as np

    import aemg
    from aemg.data import Device, Recording

    c = synthetic_corpus(6, n_channels=16, token_len=125, tokens=(2, 6))
    pretrain(c, tmp_path / "run", MICRO, steps=1, progress=False)
    rng = np.random.default_rng(0)
    t = np.arange(3 * 1000) / 1000
    burst = ((t > 1.0) & (t < 2.0)).astype(np.float32)
    x = (rng.standard_normal((6, t.size)) * (0.05 + burst)).astype(np.float32)
    dev = Device.from_positions("my6", np.linspace(0, 5, 6), rate=1000.0, units="mV")
    rec = Recording(x, 1000.0, dev, units="mV", label=1, subject="u", trial="0", dataset="mine")
    e = aemg.embed(tmp_path / "run", rec, device="cpu")
    assert e.sentence.shape[0] == 1 and np.isfinite(e.sentence).all() and len(e.tokens[0]) >= 1
    with pytest.raises(DataError, match="cannot embed"):
        aemg.embed(tmp_path / "run", 3.5)
