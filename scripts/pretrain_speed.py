"""CPU pre-training speed of a preset on a real corpus, one thread: a few steps of each stage.

Usage: ``OMP_NUM_THREADS=1 python scripts/pretrain_speed.py PRESET STEPS PACK CORPUS``
(PACK 1 = the packed token encoder, 0 = the padded one: ``aemg.model.backbone.PACK_REAL_TOKENS``).
The preset runs with ``vq_warmup_steps = 0`` and ``kmeans_batches = 2`` so the codebook is set up at
step 1, which is left out of stage 1's figures. Prints one JSON line: tokens/s and s/step per stage
(from the log rows), user / system CPU seconds, wall seconds, peak RSS (MB), minor page faults, and
the final losses. Used for docs/notes/generalisation.md, Session 5 (H5).
"""
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import replace

import torch

import aemg.model.backbone as bb
from aemg.model import preset
from aemg.tokenizer.corpus import open_corpus
from aemg.train import pretrain


def _stats(rows, prev_tokens):
    tokens, seconds, last = 0.0, 0.0, prev_tokens
    for r in rows:
        n, last = r["tokens"] - last, r["tokens"]
        tokens, seconds = tokens + n, seconds + n / r["tokens_per_s"]
    return {"tokens_per_s": tokens / seconds, "s_per_step": seconds / len(rows)}


def main(name: str, steps: int, pack: bool, corpus_path: str) -> dict:
    if steps < 2:
        raise SystemExit("STEPS: at least 2 (stage 1's first step is left out)")
    torch.set_num_threads(1)
    bb.PACK_REAL_TOKENS = pack
    cfg = preset(name)
    cfg = replace(cfg, train=replace(cfg.train, stage1_steps=steps, stage2_steps=steps, vq_warmup_steps=0,
                                     kmeans_batches=2, checkpoint_every=10 ** 6, log_every=1))
    rows = []
    t0, w0 = os.times(), time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        r = pretrain(open_corpus(corpus_path), os.path.join(tmp, "run"), cfg, progress=False, device="cpu",
                     on_step=rows.append)
    t1, w1 = os.times(), time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    s1, s2 = [x for x in rows if x["stage"] == 1], [x for x in rows if x["stage"] == 2]
    return {"preset": name, "pack": pack, "steps": steps, "stage1": _stats(s1[1:], s1[0]["tokens"]),
            "stage2": _stats(s2, s1[-1]["tokens"]), "user": t1.user - t0.user, "sys": t1.system - t0.system,
            "wall": w1 - w0, "max_rss_mb": usage.ru_maxrss / 1024, "minflt": usage.ru_minflt,
            "loss": [r.final[1]["loss"], r.final[2]["loss"]]}


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4])))
