"""Batches for pre-training: an in-memory corpus, corpus mixing, validation and the
deterministic batch order (a function of seed, stage and step, so a resumed run sees the same
batches as an uninterrupted one).

A *corpus* is a :class:`aemg.tokenizer.corpus.TokenCorpus` (on disk), a ``ConcatCorpus`` or an
:class:`ArrayCorpus` (in memory); all share ``batch(indices) -> dict`` of padded arrays. Channel
z positions are read from ``channel_z`` when a corpus has it (else 0).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..errors import DataError
from ..tokenizer.corpus import ConcatCorpus, Corpus
from ..tokenizer.sentence import Sentence


class ArrayCorpus(Corpus):
    """A token corpus held in memory, built from sentences; the same interface (``batch``,
    ``select``, ``sentence`` ...) as :class:`aemg.tokenizer.corpus.TokenCorpus`.

    Parameters
    ----------
    sentences : sequence of aemg.tokenizer.tokens.Sentence
        Every sentence has payload (N, C, L) float32 with the same (C, L).
    channel_angles : array, shape (C,), radians
    channel_z : array, shape (C,), metres, optional (default zeros)
    rate : float
        Sampling rate of the tokens, Hz.
    config : TokenizerConfig, optional
        How the tokens were made (used by :func:`aemg.embed` on raw recordings).
    """

    def __init__(self, sentences: Sequence[Sentence], channel_angles, channel_z=None, rate: float = 0.0,
                 config=None, where: str = "ArrayCorpus"):
        self.path = where
        self._s = list(sentences)
        self.channel_angles = np.asarray(channel_angles, dtype=np.float64)
        C = self.channel_angles.size
        self.channel_z = np.zeros(C) if channel_z is None else np.asarray(channel_z, dtype=np.float64)
        shapes = {tuple(s.payload.shape[1:]) for s in self._s}
        if len(shapes) > 1:
            raise DataError(where, f"sentences have different token shapes {sorted(shapes)}")
        self.token_shape = tuple(int(v) for v in shapes.pop()) if shapes else (C, 0)
        if self.token_shape[0] != C:
            raise DataError(where, f"tokens have {self.token_shape[0]} channels but {C} channel angles")
        self.rate = float(rate)
        self.config = config
        self.classes: dict[str, tuple[str, ...]] = {}
        self.sentences = [{"key": s.key, "dataset": s.dataset, "subject": s.subject, "session": s.session,
                           "trial": s.trial, "label": int(s.label), "device": s.device,
                           "n_tokens": int(s.payload.shape[0]), "n_events": int(s.n_events)} for s in self._s]
        self.init_ids()

    def tokens(self, i: int) -> dict[str, np.ndarray]:
        return self._s[i].tokens()


def synthetic_corpus(n_sentences: int = 64, *, n_channels: int = 8, token_len: int = 50,
                     tokens: tuple[int, int] = (4, 24), n_prototypes: int = 6, seed: int = 0) -> ArrayCorpus:
    """A small corpus of synthetic contraction tokens for tests, demos and benchmarks.

    Each token is one of ``n_prototypes`` smooth burst shapes over a random subset of channels
    plus noise, z-scored per channel; energies follow the prototype's channel weights.
    """
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, token_len)
    protos = []
    for _ in range(n_prototypes):
        w = rng.gamma(1.0, 1.0, n_channels)
        f = rng.uniform(2, 8)
        protos.append((w, np.sin(2 * np.pi * f * t[None, :] + rng.uniform(0, 6, (n_channels, 1)))))
    out = []
    for i in range(n_sentences):
        n = int(rng.integers(tokens[0], tokens[1] + 1))
        kind = rng.integers(n_prototypes, size=n)
        x = np.stack([protos[k][1] for k in kind]) + 0.3 * rng.standard_normal((n, n_channels, token_len))
        x = (x - x.mean(-1, keepdims=True)) / x.std(-1, keepdims=True)
        energy = np.stack([protos[k][0] for k in kind]) * rng.uniform(0.5, 2.0, (n, 1))
        ev = np.sort(rng.integers(0, 3, n))
        out.append(Sentence(
            payload=x.astype(np.float32), energy=energy.astype(np.float32),
            onset_in_event_s=(0.05 * np.arange(n)).astype(np.float32),
            onset_in_trial_s=(0.05 * np.arange(n) + 0.5).astype(np.float32),
            duration_s=np.full(n, 0.05 * n, np.float32), event_index=ev.astype(np.int32),
            dominant_channel=energy.argmax(1).astype(np.int16), key=f"synthetic/{i}",
            dataset="synthetic", subject=str(i % 4), session="0", trial=str(i), label=int(kind[0]),
            device=f"ring:{n_channels}", rate=200.0))
    return ArrayCorpus(out, 2 * np.pi * np.arange(n_channels) / n_channels, rate=200.0)


def mix_corpora(corpora: Sequence[Any]):
    """One corpus over several (same token shape and channel geometry), else DataError."""
    corpora = list(corpora)
    if not corpora:
        raise DataError("corpus", "no corpus given")
    first = corpora[0]
    for c in corpora[1:]:
        if tuple(c.token_shape) != tuple(first.token_shape):
            raise DataError(getattr(c, "path", "corpus"),
                            f"token shape {tuple(c.token_shape)} differs from {tuple(first.token_shape)}")
        if not np.allclose(c.channel_angles, first.channel_angles):
            raise DataError(getattr(c, "path", "corpus"), "channel geometry differs from the first corpus")
    if len(corpora) == 1:
        return first
    return ConcatCorpus(corpora)


def check_corpus(corpus, max_tokens: int, token_len: int, where: str = "corpus") -> None:
    """Raise DataError for an empty corpus, a token length other than the model's, or a sentence
    longer than ``max_tokens`` (named)."""
    if corpus.n_sentences == 0 or corpus.n_tokens == 0:
        raise DataError(where,
                        "the corpus is empty (no sentences with tokens); tokenize some recordings first")
    if int(corpus.token_shape[1]) != token_len:
        raise DataError(where, f"tokens have {corpus.token_shape[1]} samples but the model expects "
                               f"token_len={token_len}; set model.token_len or re-tokenize")
    for s in corpus.sentences:
        if int(s["n_tokens"]) > max_tokens:
            raise DataError(f"{where}: sentence {s['key']!r}",
                            f"{int(s['n_tokens'])} tokens, longer than the model "
                            f"allows (max_tokens={max_tokens}); re-tokenize with a smaller "
                            f"max_sentence_len or raise model.max_tokens")


def batch_indices(n_sentences: int, batch_size: int, seed: int, stage: int, step: int) -> np.ndarray:
    """Sentence indices of global batch ``step`` of ``stage``: consecutive slices of per-epoch
    permutations drawn from (seed, stage, epoch), so the order depends only on these numbers."""
    pos = step * batch_size + np.arange(batch_size)
    epochs = pos // n_sentences
    out = np.empty(batch_size, np.int64)
    for e in np.unique(epochs):
        perm = np.random.default_rng([seed, stage, int(e)]).permutation(n_sentences)
        sel = epochs == e
        out[sel] = perm[pos[sel] % n_sentences]
    return out


def to_tensors(batch: dict, device: torch.device | str = "cpu") -> dict:
    """The arrays of a corpus batch as tensors on ``device``."""
    return {k: torch.as_tensor(np.asarray(v)).to(device) for k, v in batch.items()}


def geometry(corpus, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The corpus's channel angles and z as float32 tensors (C,) (z = 0 when not given)."""
    a = np.asarray(corpus.channel_angles, dtype=np.float32)
    z = getattr(corpus, "channel_z", None)
    z = np.zeros_like(a) if z is None else np.asarray(z, dtype=np.float32)
    return torch.as_tensor(a, device=device), torch.as_tensor(z, device=device)


def local_share(indices, info) -> np.ndarray:
    """This process's contiguous share of a global batch (all of it when not distributed)."""
    n = len(indices)
    return indices[info.rank * n // info.world:(info.rank + 1) * n // info.world]
