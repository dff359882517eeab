"""A full pre-training step (forward, backward, AdamW; stage 1 and stage 2) in tokens/s.

CPU always (one thread, so ratios measured on a shared machine stay meaningful), CUDA when a GPU
is available (bfloat16 autocast, the trainer's setting). Each case asserts that the loss is
finite and decreases over the timed steps.
"""
import time

import harness
import pytest
import torch

from aemg.model import AEMG, preset
from aemg.train.data import geometry, synthetic_corpus, to_tensors

SUITE = "pretrain_step"


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _setup(name, device, quick):
    cfg = preset(name).model
    torch.manual_seed(0)
    corpus = synthetic_corpus(16 if quick else 32, n_channels=16, token_len=cfg.token_len, tokens=(10, 30))
    model = AEMG(cfg).to(device)
    batch = to_tensors(corpus.batch(range(corpus.n_sentences)), device)
    angles, z = geometry(corpus, device)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.init_target_stats([batch])
        model.quantizer.initialise(model.encode_codes(batch, angles, z)[batch["mask"]], 3, g)
    return model, batch, angles, z, g


def _step_fn(model, stage, batch, angles, z, g, amp):
    params = model.trainable(stage)
    opt = torch.optim.AdamW(params, lr=1e-4)
    masked = model.sample_mask(batch["mask"], range(batch["mask"].shape[0]))
    n = float(batch["mask"].sum())
    losses = []

    def step():
        with torch.autocast(batch["mask"].device.type, dtype=torch.bfloat16, enabled=amp):
            out = model(stage, batch, angles, z, g if stage == 1 else masked)
        loss = (out["rec_sum"] + model.cfg.commitment * out["commit_sum"]) / n if stage == 1 \
            else out["ce_sum"] / out["n_tokens"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return step, losses


@pytest.mark.parametrize("stage", [1, 2])
def test_pretrain_step_cpu(stage, quick, one_thread):
    model, batch, angles, z, g = _setup("tiny", "cpu", quick)
    step, losses = _step_fn(model, stage, batch, angles, z, g, amp=False)
    t = harness.best_time(step, repeat=3, min_time=0.2)
    tokens = int(batch["mask"].sum())
    harness.record(SUITE, device="cpu (1 thread)", preset="tiny", stage=stage, tokens=tokens,
                   ms_per_step=1e3 * t, tokens_per_s=tokens / t)
    assert all(map(lambda v: v == v, losses)) and losses[-1] < losses[0]  # finite and learning


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name,stage", [("tiny", 1), ("tiny", 2), ("base", 1), ("base", 2)])
def test_pretrain_step_cuda(name, stage, quick):
    model, batch, angles, z, g = _setup(name, "cuda", quick)
    step, losses = _step_fn(model, stage, batch, angles, z, g, amp=True)
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    n = 5 if quick else 20
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    torch.cuda.synchronize()
    t = (time.perf_counter() - t0) / n
    tokens = int(batch["mask"].sum())
    harness.record(SUITE, device=torch.cuda.get_device_name(), preset=name, stage=stage, tokens=tokens,
                   ms_per_step=1e3 * t, tokens_per_s=tokens / t)
    assert all(v == v for v in losses)


_RUN_CHILD = r"""
import json, os, sys, time, torch
torch.set_num_threads(1)
import aemg.model.backbone as backbone
from aemg.model import preset
from aemg.train import pretrain, synthetic_corpus
from dataclasses import replace
steps, out, backbone.PACK_REAL_TOKENS = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
cfg = preset("tiny")
corpus = synthetic_corpus(64, n_channels=16, token_len=cfg.model.token_len, tokens=(10, 30), seed=0)
cfg = replace(cfg, train=replace(cfg.train, stage1_steps=steps, stage2_steps=steps, vq_warmup_steps=2,
                                 kmeans_batches=2, checkpoint_every=10 ** 6, log_every=10 ** 6))
t0, w0 = os.times(), time.perf_counter()
r = pretrain(corpus, out, cfg, progress=False, device="cpu")
t1, w1 = os.times(), time.perf_counter()
print(json.dumps({"user": t1.user - t0.user, "sys": t1.system - t0.system, "wall": w1 - w0,
                  "tokens": r.history[-1]["tokens"],  # cumulative over both stages
                  "loss": [r.final[1]["loss"], r.final[2]["loss"]]}))
"""

#: name -> (AEMG_KEEP_FREED_MEMORY, aemg.model.backbone.PACK_REAL_TOKENS): the state before session 4's
#: allocator fix, after it, and after session 5's packed token encoder.
_RUN_CASES = {"before (default malloc, padded encoder)": ("0", "0"),
              "allocator (keep freed memory)": ("1", "0"),
              "after (allocator + packed encoder)": ("1", "1")}


def test_pretrain_cpu_whole_run(tmp_path, quick):
    """Whole tiny pre-training runs (both stages) in child processes, one thread, interleaved
    rounds: tokens/s (wall) and the share of CPU time spent in the kernel for each case of
    :data:`_RUN_CASES`. Quick mode: one round of 3 + 3 steps per case, no guard (cheap, checks that
    the cases run). Full mode: 2 rounds of 40 + 40 steps, best of each; guards that the kernel share
    of "after" is below that of "before" and under 20 %, and that "after" is at least 1.3x "before"
    in tokens/s (minutes on a shared 2-core box)."""
    import json
    import os
    import subprocess
    import sys

    steps, rounds = (3, 1) if quick else (40, 2)
    rows = {name: [] for name in _RUN_CASES}
    for r in range(rounds):
        for name, (malloc, pack) in _RUN_CASES.items():
            env = dict(os.environ, AEMG_KEEP_FREED_MEMORY=malloc, OMP_NUM_THREADS="1")
            run_dir = str(tmp_path / f"{pack}{malloc}{r}")
            out = subprocess.run([sys.executable, "-c", _RUN_CHILD, str(steps), run_dir, pack],
                                 env=env, capture_output=True, text=True, check=True)
            rows[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    summary = {}
    for name, runs in rows.items():
        best = min(runs, key=lambda x: x["wall"])
        share = best["sys"] / max(best["user"] + best["sys"], 1e-9)
        summary[name] = (best["tokens"] / best["wall"], share)
        harness.record(SUITE, device="cpu (1 thread)", preset="tiny", stage=f"both, {steps} + {steps} steps",
                       case=name, tokens=best["tokens"], tokens_per_s=summary[name][0], sys_share=share,
                       s_per_step=best["wall"] / (2 * steps), final_loss=best["loss"])
    for name, runs in rows.items():
        assert all(v == v for run in runs for v in run["loss"]), (name, runs)  # finite
    if quick:
        return
    (before, share_before), (after, share_after) = (summary[n] for n in (
        "before (default malloc, padded encoder)", "after (allocator + packed encoder)"))
    assert share_after < min(share_before, 0.2), summary
    assert after >= 1.3 * before, summary
