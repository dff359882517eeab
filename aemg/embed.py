"""Embeddings from a pre-trained AEMG checkpoint, for any recording with a declared geometry and rate.

``aemg.embed(run, data)``: raw recordings are rectified into the standard space
(:func:`aemg.data.rectify.rectify`), cut into trials and tokenized with the tokenizer settings the
model was pre-trained with, then encoded by the stage-2 backbone.
"""
from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._io import atomic_write
from .errors import DataError


@dataclass
class Embeddings:
    """Embeddings of S sentences (trials).

    Attributes
    ----------
    keys : list of str
        Sentence keys (dataset/subject/session/trial).
    labels : np.ndarray, shape (S,), int64
        Trial class ids (-1 = unknown).
    sentence : np.ndarray, shape (S, d), float32
        Mean of the sentence's token embeddings.
    cls : np.ndarray, shape (S, d), float32
        The CLS token's output.
    tokens : list of np.ndarray, each (n_i, d), float32
        Token embeddings of each sentence.
    """

    keys: list[str]
    labels: np.ndarray
    sentence: np.ndarray
    cls: np.ndarray
    tokens: list[np.ndarray]

    def __repr__(self) -> str:
        n = sum(len(t) for t in self.tokens)
        return (f"Embeddings({len(self.keys)} sentences, {n} tokens, d={self.sentence.shape[-1]}; "
                f"fields keys, labels, sentence {self.sentence.shape}, cls {self.cls.shape}, tokens)")

    def save(self, path: str | os.PathLike) -> Path:
        """Write an .npz (keys, labels, sentence, cls, tokens concatenated + token_offsets), atomically."""
        path = Path(path)
        offsets = np.cumsum([0] + [len(t) for t in self.tokens]).astype(np.int64)
        d = self.sentence.shape[1] if self.sentence.ndim == 2 else 0
        tokens = np.concatenate(self.tokens) if self.tokens else np.zeros((0, d), np.float32)
        buf = io.BytesIO()
        np.savez(buf, keys=np.array(self.keys), labels=self.labels, sentence=self.sentence, cls=self.cls,
                 tokens=tokens, token_offsets=offsets)
        atomic_write(path, buf.getvalue())
        return path


def _sentences_from_recordings(recordings, data_info: dict, rectified: bool) -> list:
    """Rectify (unless ``rectified``), cut into trials and tokenize with the checkpoint's settings.

    Noise levels follow ``aemg tokenize`` (:func:`aemg.tokenizer.calibration.noise_levels`): trials are
    grouped by (dataset, subject, session) and calibrated on the group's rest trials, so an archive
    gives the same sentences here as in its token corpus.
    """
    from .data.rectify import StandardSpace, rectify
    from .data.trials import split_trials
    from .tokenizer.calibration import is_rest_trial, noise_levels
    from .tokenizer.tokens import TokenizerConfig, tokenize_recording

    space = StandardSpace.from_dict(data_info["space"]) if data_info.get("space") else StandardSpace()
    tok = (TokenizerConfig.from_dict(data_info["tokenizer"]) if data_info.get("tokenizer")
           else TokenizerConfig())
    trials = [t for rec in recordings for t in split_trials(rec if rectified else rectify(rec, space))]
    noises = noise_levels([t.data for t in trials], [t.rate for t in trials],
                          [is_rest_trial(t) for t in trials],
                          tok, groups=[(t.dataset, t.subject, t.session) for t in trials])
    sentences = (tokenize_recording(t, tok, noise=noise) for t, (noise, _) in zip(trials, noises))
    return [s for s in sentences if s.n_tokens]


def embed(checkpoint: str | os.PathLike, data: Any, *, device: str | None = None,
          batch_size: int = 64, allow_partial: bool = False) -> Embeddings:
    """Sentence and token embeddings of ``data`` from a pre-trained checkpoint.

    Parameters
    ----------
    checkpoint : path
        A run folder (its latest checkpoint) or a checkpoint folder.
    data : Recording, list of Recording, archive folder, or token corpus
        Raw recordings (any device with a declared geometry and rate) are rectified and tokenized
        with the settings stored in the checkpoint; an archive (``aemg rectify``) is tokenized; a
        corpus (``aemg tokenize`` / :class:`~aemg.train.data.ArrayCorpus`) is used as is.
    device : str, optional
    batch_size : int
        Sentences per forward pass.
    allow_partial : bool
        Also embed an incomplete archive (else DataError: a rectify run is writing or was interrupted).

    Returns
    -------
    Embeddings
    """
    from .data.recording import Recording
    from .train.checkpoint import load_model
    from .train.data import check_corpus, geometry, to_tensors

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, ck = load_model(checkpoint, dev)
    info = ck.state.get("data", {})
    if isinstance(data, Recording):
        data = [data]
    if isinstance(data, (str, os.PathLike)):
        p = Path(data)
        if (p / "corpus.json").is_file():
            from .tokenizer.corpus import open_corpus
            corpus = open_corpus(p)
        else:
            from .data.archive import open_archive
            arch = open_archive(p, allow_partial=allow_partial)
            info = {**info, "space": arch.manifest.get("space", info.get("space"))}
            sents = _sentences_from_recordings(arch, info, rectified=True)
            corpus = _array_corpus(sents, p)
    elif isinstance(data, (list, tuple)) and all(isinstance(r, Recording) for r in data):
        corpus = _array_corpus(_sentences_from_recordings(data, info, rectified=False), "recordings")
    elif hasattr(data, "batch") and hasattr(data, "n_sentences"):
        corpus = data
    else:
        raise DataError("data", f"cannot embed a {type(data).__name__}: give Recording(s), "
                                f"an archive folder or a corpus")
    if corpus.n_sentences == 0:
        raise DataError(getattr(corpus, "path", "data"), "no tokens: no contraction found in any recording")
    check_corpus(corpus, ck.config.model.max_tokens, ck.config.model.token_len,
                 str(getattr(corpus, "path", "data")))
    angles, z = geometry(corpus, dev)
    sent, cls, toks = [], [], []
    for lo in range(0, corpus.n_sentences, batch_size):
        b = to_tensors(corpus.batch(range(lo, min(lo + batch_size, corpus.n_sentences))), dev)
        e = model.embed(b, angles, z)
        sent.append(e["sentence"].float().cpu().numpy())
        cls.append(e["cls"].float().cpu().numpy())
        n = b["mask"].sum(dim=1).tolist()
        toks.extend(e["tokens"][i, :k].float().cpu().numpy() for i, k in enumerate(n))
    return Embeddings([s["key"] for s in corpus.sentences],
                      np.array([int(s["label"]) for s in corpus.sentences]),
                      np.concatenate(sent), np.concatenate(cls), toks)


def _array_corpus(sentences, where):
    from .data.rectify import standard_device
    from .train.data import ArrayCorpus

    C = sentences[0].payload.shape[1] if sentences else 16
    dev = standard_device(C)
    return ArrayCorpus(sentences, dev.angles, dev.z, rate=sentences[0].rate if sentences else 0.0,
                       where=str(where))


class _CallableModule(type(sys.modules[__name__])):
    """``aemg.embed`` is both this module and the function: importing the submodule replaces the
    package attribute, so the module itself forwards calls to :func:`embed`."""

    def __call__(self, *args, **kwargs):
        return embed(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
