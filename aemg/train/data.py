"""Batches for pre-training: an in-memory corpus, corpus mixing, validation and the
deterministic batch order (a function of seed, stage and step, so a resumed run sees the same
batches as an uninterrupted one).

A *corpus* is anything with ``n_sentences``, ``token_shape`` (C, L), ``channel_angles`` (C,)
radians, optional ``channel_z`` (C,) metres, ``sentences`` (records with ``key`` and ``n_tokens``)
and ``batch(indices, max_len=None) -> dict`` of padded arrays (see
``aemg.tokenizer.corpus.TokenCorpus.batch``); :class:`ArrayCorpus` is the in-memory one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import DataError

_FIELDS = {  # batch key -> (Sentence attribute, dtype)
    "onset_event_s": ("onset_in_event_s", np.float32),
    "onset_trial_s": ("onset_in_trial_s", np.float32),
    "duration_s": ("duration_s", np.float32),
    "event_index": ("event_index", np.int64),
    "dominant": ("dominant_channel", np.int64),
}


@dataclass(frozen=True)
class SentenceInfo:
    """Provenance of one sentence of an :class:`ArrayCorpus`."""

    key: str
    dataset: str
    subject: str
    session: str
    trial: str
    label: int
    device: str
    n_tokens: int


class ArrayCorpus:
    """A token corpus held in memory, built from sentences (``aemg.tokenizer.tokens.Sentence``).

    Parameters
    ----------
    sentences : sequence of Sentence
        Objects with the fields of ``aemg.tokenizer.tokens.Sentence``; every sentence has payload (N, C, L) float32 with the same (C, L).
    channel_angles : array, shape (C,), radians
    channel_z : array, shape (C,), metres, optional (default zeros)
    rate : float
        Sampling rate of the tokens, Hz.
    """

    def __init__(self, sentences: Sequence[Any], channel_angles, channel_z=None, rate: float = 0.0,
                 where: str = "ArrayCorpus"):
        self._s = list(sentences)
        self.channel_angles = np.asarray(channel_angles, dtype=np.float64)
        C = self.channel_angles.size
        self.channel_z = np.zeros(C) if channel_z is None else np.asarray(channel_z, dtype=np.float64)
        shapes = {tuple(s.payload.shape[1:]) for s in self._s}
        if len(shapes) > 1:
            raise DataError(where, f"sentences have different token shapes {sorted(shapes)}")
        self.token_shape = shapes.pop() if shapes else (C, 0)
        if self.token_shape[0] != C:
            raise DataError(where, f"tokens have {self.token_shape[0]} channels but {C} channel angles")
        self.rate = float(rate)
        self.sentences = [SentenceInfo(s.key, s.dataset, s.subject, s.session, s.trial, int(s.label),
                                       s.device, int(s.payload.shape[0])) for s in self._s]
        self.classes: tuple[str, ...] = ()

    @property
    def n_sentences(self) -> int:
        return len(self._s)

    @property
    def n_tokens(self) -> int:
        return sum(si.n_tokens for si in self.sentences)

    def batch(self, indices, max_len: int | None = None) -> dict:
        """Padded arrays of sentences ``indices`` (see module docstring); ``max_len`` crops."""
        sel = [self._s[int(i)] for i in indices]
        C, L = self.token_shape
        n = max([s.payload.shape[0] for s in sel], default=0)
        if max_len is not None:
            n = min(n, max_len)
        B = len(sel)
        out = {"payload": np.zeros((B, n, C, L), np.float32), "energy": np.zeros((B, n, C), np.float32),
               "order": np.zeros((B, n), np.int64), "mask": np.zeros((B, n), bool),
               "label": np.array([s.label for s in sel], np.int64),
               "subject_id": np.zeros(B, np.int64), "dataset_id": np.zeros(B, np.int64)}
        for k, (_, dt) in _FIELDS.items():
            out[k] = np.zeros((B, n), dt)
        for b, s in enumerate(sel):
            m = min(s.payload.shape[0], n)
            out["payload"][b, :m] = s.payload[:m]
            out["energy"][b, :m] = s.energy[:m]
            out["order"][b, :m] = np.arange(m)
            out["mask"][b, :m] = True
            for k, (attr, _) in _FIELDS.items():
                out[k][b, :m] = getattr(s, attr)[:m]
        return out


def synthetic_corpus(n_sentences: int = 64, *, n_channels: int = 8, token_len: int = 50,
                     tokens: tuple[int, int] = (4, 24), n_prototypes: int = 6, seed: int = 0) -> ArrayCorpus:
    """A small corpus of synthetic contraction tokens for tests, demos and benchmarks.

    Each token is one of ``n_prototypes`` smooth burst shapes over a random subset of channels
    plus noise, z-scored per channel; energies follow the prototype's channel weights.
    """
    from types import SimpleNamespace as Sentence  # same fields as aemg.tokenizer.tokens.Sentence

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


class _Mixed:
    """Minimal concatenation of corpora with one token shape and geometry (used until
    aemg.tokenizer.corpus.ConcatCorpus is available)."""

    def __init__(self, corpora):
        self.corpora = list(corpora)
        self.token_shape = self.corpora[0].token_shape
        self.channel_angles = self.corpora[0].channel_angles
        self.channel_z = getattr(self.corpora[0], "channel_z", None)
        self.rate = getattr(self.corpora[0], "rate", 0.0)
        self.sentences = [s for c in self.corpora for s in c.sentences]
        self._offsets = np.cumsum([0] + [c.n_sentences for c in self.corpora])

    @property
    def n_sentences(self) -> int:
        return int(self._offsets[-1])

    @property
    def n_tokens(self) -> int:
        return sum(c.n_tokens for c in self.corpora)

    def batch(self, indices, max_len=None) -> dict:
        indices = np.asarray(indices, dtype=np.int64)
        which = np.searchsorted(self._offsets, indices, side="right") - 1
        parts = [self.corpora[w].batch([int(i - self._offsets[w])], max_len) for w, i in zip(which, indices)]
        n = max((p["mask"].shape[1] for p in parts), default=0)
        out = {}
        for k in parts[0]:
            arrs = []
            for p in parts:
                a = p[k]
                if a.ndim >= 2 and k not in ("label", "subject_id", "dataset_id"):
                    pad = [(0, 0), (0, n - a.shape[1])] + [(0, 0)] * (a.ndim - 2)
                    a = np.pad(a, pad)
                arrs.append(a)
            out[k] = np.concatenate(arrs)
        return out


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
    try:
        from ..tokenizer.corpus import ConcatCorpus
    except ImportError:
        return _Mixed(corpora)
    return ConcatCorpus(corpora)


def _n_tokens(s) -> int:
    return int(s["n_tokens"] if isinstance(s, dict) else s.n_tokens)


def _key(s) -> str:
    return str(s["key"] if isinstance(s, dict) else s.key)


def check_corpus(corpus, max_tokens: int, token_len: int, where: str = "corpus") -> None:
    """Raise DataError for an empty corpus, a token length other than the model's, or a sentence
    longer than ``max_tokens`` (named)."""
    if corpus.n_sentences == 0 or corpus.n_tokens == 0:
        raise DataError(where, "the corpus is empty (no sentences with tokens); tokenize some recordings first")
    if int(corpus.token_shape[1]) != token_len:
        raise DataError(where, f"tokens have {corpus.token_shape[1]} samples but the model expects "
                               f"token_len={token_len}; set model.token_len or re-tokenize")
    for s in corpus.sentences:
        if _n_tokens(s) > max_tokens:
            raise DataError(f"{where}: sentence {_key(s)!r}",
                            f"{_n_tokens(s)} tokens, longer than the model allows (max_tokens={max_tokens}); "
                            "re-tokenize with a smaller max_sentence_len or raise model.max_tokens")


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
