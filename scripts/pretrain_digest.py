"""Digests of short CPU pre-training runs, to show that a change of aemg.train moved nothing.

Usage: python scripts/pretrain_digest.py OUT.json   (about a minute on one core)

Runs the micro config of tests/test_pretrain.py (both stages), the same with VQ warm-up, k-means
over two batches and augmentation with the consistency term, and a run interrupted after stage 1
step 3 and resumed; writes the sha256 of every kept checkpoint's tensors and trainer state plus
log.csv without its timing columns, and of the in-memory history. Run it before and after a
change: the two JSON files must be identical (same torch build, CPU).
"""
from __future__ import annotations

import csv
import hashlib
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from safetensors.torch import load_file

from aemg.model import ModelConfig, PretrainConfig, TrainConfig
from aemg.train import pretrain, synthetic_corpus

MICRO = PretrainConfig(
    ModelConfig(name="micro", token_len=20, d_model=32, depth=1, heads=2, mlp_dim=64, conv_channels=4,
                channel_dim=16, pool_heads=2, codebook_size=16, code_dim=8, vq_depth=1, decoder_depth=1,
                max_tokens=16),
    TrainConfig(stage1_steps=6, stage2_steps=6, batch_size=4, warmup_steps=2, kmeans_iters=3, log_every=1,
                checkpoint_every=2, amp=False))
WARM = replace(MICRO, train=replace(MICRO.train, vq_warmup_steps=2, kmeans_batches=2, aug_noise=0.1,
                                    aug_rotation=0.5, aug_consistency=0.5, log_every=2))
TIMING = {"elapsed_s", "tokens_per_s"}  # wall-clock columns: differ run to run


def digest(run: Path) -> tuple[str, int]:
    """(sha256 of the checkpoints' tensors, trainer states and timing-free log rows, log rows)."""
    h = hashlib.sha256()
    for d in sorted((run / "checkpoints").iterdir()):
        for f in sorted(d.iterdir()):
            if f.suffix == ".safetensors":
                tensors = load_file(str(f))
                for k in sorted(tensors):
                    h.update(k.encode())
                    h.update(tensors[k].numpy().tobytes())
            elif f.name == "trainer.json":
                state = json.loads(f.read_text()).get("state")
                h.update(json.dumps(state, sort_keys=True, default=str).encode())
    with open(run / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        h.update(json.dumps({k: v for k, v in r.items() if k not in TIMING}, sort_keys=True).encode())
    return h.hexdigest(), len(rows)


def main(out: str) -> None:
    corpus = synthetic_corpus(10, n_channels=4, token_len=20, tokens=(2, 8), seed=1)
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg in (("micro", MICRO), ("warm_aug", WARM)):
            r = pretrain(corpus, Path(tmp) / name, cfg, progress=False, seed=3)
            hist = [{k: v for k, v in row.items() if k not in TIMING} for row in r.history]
            result[name] = {"digest": digest(r.run_dir),
                            "history": hashlib.sha256(json.dumps(hist, sort_keys=True).encode()).hexdigest(),
                            "final2": {k: v for k, v in r.final[2].items() if k not in TIMING}}

        def stop(row):
            if row["stage"] == 1 and row["step"] == 3:
                raise KeyboardInterrupt

        try:
            pretrain(corpus, Path(tmp) / "res", MICRO, progress=False, seed=3, on_step=stop)
        except KeyboardInterrupt:
            pass
        r = pretrain(corpus, Path(tmp) / "res", None, progress=False, resume=True, seed=None)
        result["resumed"] = {"digest_log_ck": digest(r.run_dir)}
    Path(out).write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps({k: v.get("digest", v) for k, v in result.items()}, default=str))


if __name__ == "__main__":
    main(sys.argv[1])
