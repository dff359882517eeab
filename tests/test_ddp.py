"""Multi-process pre-training (torch.distributed, gloo on CPU, 2 processes) follows the same loss
trajectory as one process with the same global batch."""
import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from aemg.model import ModelConfig, PretrainConfig, TrainConfig
from aemg.train import pretrain, synthetic_corpus

CFG = PretrainConfig(
    ModelConfig(name="micro", token_len=20, d_model=32, depth=1, heads=2, mlp_dim=64, conv_channels=4,
                channel_dim=16, pool_heads=2, codebook_size=16, code_dim=8, vq_depth=1, decoder_depth=1,
                usage_window=2),
    TrainConfig(stage1_steps=5, stage2_steps=4, batch_size=6, warmup_steps=1, kmeans_iters=3, log_every=1,
                checkpoint_every=100, amp=False))


def _corpus():
    return synthetic_corpus(14, n_channels=4, token_len=20, tokens=(2, 9), seed=3)


def _worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    try:
        r = pretrain(_corpus(), os.path.join(out, "run"), CFG, device="cpu", progress=False)
        with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
            json.dump([(h["stage"], h["step"], h["loss"]) for h in r.history], f)
    finally:
        import torch.distributed as dist
        if dist.is_initialized():
            dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    single = pretrain(_corpus(), tmp_path / "single", CFG, device="cpu", progress=False)
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ref = [(h["stage"], h["step"], h["loss"]) for h in single.history]
    for rank in (0, 1):
        got = json.load(open(tmp_path / f"rank{rank}.json"))
        assert [tuple(g[:2]) for g in got] == [r[:2] for r in ref]
        for (s, k, a), (_, _, b) in zip(ref, got):
            assert b == pytest.approx(a, rel=2e-3, abs=2e-4), f"stage {s} step {k}"
    assert (tmp_path / "run" / "latest.json").is_file()  # written by rank 0 only
