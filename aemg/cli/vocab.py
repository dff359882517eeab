"""``aemg vocab RUN --corpus C [C ...] --out vocab.png``: the learned contraction prototypes and how often
each is used per dataset/device."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ._common import NOT_RESUMABLE, positive_int, torch_device


def register(subparsers) -> None:
    p = subparsers.add_parser("vocab",
                              help="plot the stage-1 codebook: prototypes and usage per dataset/device",
                              description=" ".join(__doc__.split()))
    p.add_argument("run", help="run folder, checkpoint folder, or shipped weights by name (aemg-tiny)")
    p.add_argument("--corpus", nargs="+", required=True, help="token corpus folder(s) to count code usage on")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--top", type=positive_int, default=24,
                   help="prototypes shown (most used first; default 24)")
    p.add_argument("--device", help="cpu, cuda ... (default: cuda when available)")
    p.add_argument("--allow-partial", action="store_true",
                   help="also use an unfinished run's latest checkpoint")
    p.set_defaults(func=run, on_interrupt=NOT_RESUMABLE)


def code_usage(model, corpus, device="cpu", batch_size=64) -> tuple[np.ndarray, list[str]]:
    """Counts of each code per group (dataset/device), (G, K) int64, and the group names."""
    import torch

    from ..train.data import geometry, to_tensors

    angles, z = geometry(corpus, device)
    groups = sorted({f"{s['dataset']}/{s['device']}" for s in corpus.sentences})
    gid = {g: i for i, g in enumerate(groups)}
    counts = np.zeros((len(groups), model.cfg.codebook_size), np.int64)
    with torch.no_grad():
        for lo in range(0, corpus.n_sentences, batch_size):
            idx = list(range(lo, min(lo + batch_size, corpus.n_sentences)))
            b = to_tensors(corpus.batch(idx), device)
            codes = model.code_indices(b, angles, z).cpu().numpy()
            owner = np.repeat([gid[f"{corpus.sentences[i]['dataset']}/{corpus.sentences[i]['device']}"]
                               for i in idx],
                              b["mask"].sum(dim=1).cpu().numpy())
            np.add.at(counts, (owner, codes), 1)
    return counts, groups


def plot_vocab(model, corpus, out, *, top: int = 24, device="cpu") -> Path:
    """Write a PNG: the ``top`` most used prototypes (channels x 50 ms windows of log RMS) with their share
    per group, and a usage heat map of every code per dataset/device (atomically)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from .._io import save_figure
    from ..train.data import geometry

    counts, groups = code_usage(model, corpus, device)
    total = counts.sum(0)
    order = np.argsort(-total, kind="stable")[:top]
    angles, z = geometry(corpus, device)
    protos = model.prototypes(torch.as_tensor(order, device=angles.device), angles, z).cpu().numpy()
    cols = 6
    rows = int(np.ceil(len(order) / cols))
    fig = plt.figure(figsize=(2.2 * cols, 1.9 * rows + 2.6))
    gs = fig.add_gridspec(rows + 1, cols, height_ratios=[1.0] * rows + [1.3])
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    for j, k in enumerate(order):
        ax = fig.add_subplot(gs[j // cols, j % cols])
        ax.imshow(protos[j], aspect="auto", cmap="RdBu_r", vmin=-3, vmax=3)
        used_by = ", ".join(f"{g.split('/')[0][:8]} {100 * share[i, k]:.1f}%" for i, g in enumerate(groups))
        ax.set_title(f"#{k}: {total[k]} uses\n{used_by}" if len(groups) <= 3 else f"#{k}: {total[k]} uses",
                     fontsize=6)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = fig.add_subplot(gs[rows, :])
    im = ax.imshow(share, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(len(groups)), groups, fontsize=7)
    ax.set_xlabel("code index")
    ax.set_title(f"code usage share per dataset/device ({int((total > 0).sum())}/{len(total)} codes used)",
                 fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.02)
    fig.tight_layout()
    out = save_figure(fig, out)
    return out


def run(args: argparse.Namespace) -> int:
    from ..tokenizer.corpus import open_corpus
    from ..train.checkpoint import check_run_finished, load_model
    from ..train.data import mix_corpora

    if not args.allow_partial:
        check_run_finished(args.run)
    device = torch_device(args.device)
    model, ck = load_model(args.run, device)
    corpus = mix_corpora([open_corpus(c) for c in args.corpus])
    out = plot_vocab(model, corpus, args.out, top=args.top, device=device)
    print(f"wrote {out}")
    return 0
