"""Reading a token corpus: :class:`TokenCorpus` (a folder), :class:`ConcatCorpus` (several as one),
and :class:`Corpus`, the public base of every corpus (also the in-memory
:class:`~aemg.train.data.ArrayCorpus`): ``select``, ``sentence`` and the padded ``batch`` of the
model's input, whose keys are :data:`aemg.tokenizer.sentence.BATCH_KEYS`. See
:mod:`aemg.tokenizer.corpus.format` for the layout.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..._folder import select_rows
from ..._io import check_format, read_json
from ...errors import ConfigError, DataError
from ..sentence import BATCH_DTYPES, BATCH_KEYS, FIELD_NAMES, TABLE_FIELDS, Sentence, token_table_dtype
from ..tokens import TokenizerConfig
from .format import (
    CORPUS,
    FORMAT,
    INDEX,
    INDEX_FIELDS,
    PLAN,
    READ_VERSIONS,
    SHARDS,
    shard_name,
    verify_shards,
)


class Corpus:
    """The base of every corpus: sentences described by index rows, their tokens, padded batches.

    A subclass sets ``sentences`` (one dict per sentence with at least key, dataset, subject,
    session, trial, label, device, n_tokens, n_events), ``token_shape`` (C, L), ``rate`` (Hz) and
    ``channel_angles``, implements :meth:`tokens` and calls :meth:`init_ids` once ``sentences``
    is set.
    """

    sentences: list[dict[str, Any]]
    token_shape: tuple[int, int]
    rate: float

    def init_ids(self) -> None:
        """Set :attr:`subjects`, :attr:`datasets` and the ids :meth:`batch` gives them."""
        self.subjects = sorted({f"{s['dataset']}/{s['subject']}" for s in self.sentences})
        self.datasets = sorted({s["dataset"] for s in self.sentences})
        self._subject_id = {k: i for i, k in enumerate(self.subjects)}
        self._dataset_id = {k: i for i, k in enumerate(self.datasets)}

    @property
    def n_sentences(self) -> int:
        return len(self.sentences)

    @property
    def n_tokens(self) -> int:
        return int(sum(s["n_tokens"] for s in self.sentences))

    def __len__(self) -> int:
        return self.n_sentences

    def select(self, **filters: Any) -> list[int]:
        """Indices of the sentences whose fields match every filter (equality, strings also match
        numbers: ``subject=3`` matches ``"3"``; list/tuple/set = membership; callable = predicate)."""
        known = set(self.sentences[0]) if self.sentences else set(INDEX_FIELDS)
        return select_rows(self.sentences, filters, sorted(known))

    def tokens(self, i: int) -> dict[str, np.ndarray]:
        """The per-token arrays of sentence ``i`` by field name
        (:data:`~aemg.tokenizer.sentence.FIELD_NAMES`)."""
        raise NotImplementedError

    def sentence(self, i: int) -> Sentence:
        """Sentence ``i`` (token arrays are read-only views of the memory-mapped shards)."""
        s = self.sentences[i]
        arrays = self.tokens(i)
        return Sentence(**arrays, key=s["key"], dataset=s["dataset"], subject=s["subject"],
                        session=s["session"], trial=s["trial"], label=int(s["label"]),
                        device=s["device"], rate=self.rate, n_events=int(s["n_events"]))

    def batch(self, indices: Iterable[int], max_len: int | None = None) -> dict[str, np.ndarray]:
        """Padded arrays of the sentences ``indices``.

        Sentences are padded to the longest in the batch, or truncated/padded to ``max_len``.

        Returns
        -------
        dict
            payload (B, N, C, L) float32; energy (B, N, C) float32; onset_in_event_s, onset_in_trial_s,
            duration_s (B, N) float32; event_index, order, dominant_channel (B, N) int64; mask (B, N)
            bool (True = real token); label, subject_id (index into :attr:`subjects`), dataset_id
            (index into :attr:`datasets`) (B,) int64. The per-token keys are
            :data:`~aemg.tokenizer.sentence.BATCH_KEYS`.
        """
        idx = [int(i) for i in indices]
        lens = [self.sentences[i]["n_tokens"] for i in idx]
        n = max(lens, default=0) if max_len is None else int(max_len)
        if n < 0:
            raise ConfigError(f"max_len={max_len!r}: must be >= 0")
        b = len(idx)
        c, L = self.token_shape
        shapes = {"payload": (b, n, c, L), "energy": (b, n, c)}
        out = {k: np.zeros(shapes.get(k, (b, n)), BATCH_DTYPES[k]) for k in BATCH_KEYS}
        out.update({k: np.zeros(b, np.int64) for k in ("label", "subject_id", "dataset_id")})
        for row, i in enumerate(idx):
            s = self.sentences[i]
            k = min(s["n_tokens"], n)
            if k:
                arrays = self.tokens(i)
                for name in FIELD_NAMES:
                    out[name][row, :k] = arrays[name][:k]
                out["order"][row, :k] = np.arange(k)
                out["mask"][row, :k] = True
            out["label"][row] = int(s["label"])
            out["subject_id"][row] = self._subject_id[f"{s['dataset']}/{s['subject']}"]
            out["dataset_id"][row] = self._dataset_id[s["dataset"]]
        return out

    def labels(self) -> np.ndarray:
        """Trial labels of every sentence, (n_sentences,) int64 (-1 = unknown)."""
        return np.array([int(s["label"]) for s in self.sentences], np.int64)

    def subset(self, indices: Iterable[int]) -> "SubsetCorpus":
        """The sentences ``indices`` (e.g. from :meth:`select`) as a corpus of their own, in the
        given order, e.g. to pre-train on chosen users: ``c.subset(c.select(subject=["1", "2"]))``."""
        return SubsetCorpus(self, indices)


class SubsetCorpus(Corpus):
    """A view of some sentences of another corpus (:meth:`Corpus.subset`); same interface.

    ``parts`` are the base corpus's, so a pre-training run records the folders its tokens came from.
    """

    def __init__(self, base: Corpus, indices: Iterable[int]):
        self.base = base
        self.indices = [int(i) for i in indices]
        n = base.n_sentences
        bad = [i for i in self.indices if not 0 <= i < n]
        if bad:
            raise ConfigError(f"subset: sentence indices {bad[:5]} out of range for {n} sentences")
        if len(set(self.indices)) != len(self.indices):
            raise ConfigError("subset: repeated sentence indices")
        self.sentences = [base.sentences[i] for i in self.indices]
        self.token_shape, self.rate = base.token_shape, base.rate
        self.channel_angles = base.channel_angles
        self.config = getattr(base, "config", None)
        self.classes = dict(getattr(base, "classes", {}))
        self.parts = list(getattr(base, "parts", None) or [base])
        self.init_ids()

    def tokens(self, i: int) -> dict[str, np.ndarray]:
        return self.base.tokens(self.indices[i])

    def __repr__(self) -> str:
        return (f"SubsetCorpus({self.n_sentences} of {self.base.n_sentences} sentences, "
                f"tokens={self.n_tokens})")


class TokenCorpus(Corpus):
    """A token corpus folder written by :func:`tokenize_archive`, opened for reading.

    Attributes
    ----------
    n_sentences, n_tokens : int
    token_shape : tuple (C, L)
    rate : float
        Hz.
    channel_angles : np.ndarray, shape (C,)
        Radians of the standard electrodes around the forearm.
    sentences : list of dict
        Per sentence: key, dataset, subject, session, trial, label, device, n_tokens, n_events,
        n_samples, shard, offset.
    classes : dict
        Dataset -> class names.
    subjects, datasets : list of str
        Sorted unique ``"dataset/subject"`` and dataset names (``subject_id``/``dataset_id`` of
        :meth:`batch` index them; subjects are qualified by dataset because ids repeat across
        datasets).
    config : TokenizerConfig
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError(self.path, "token corpus folder not found")
        if not (self.path / CORPUS).is_file():
            raise DataError(self.path, f"not a complete token corpus (no {CORPUS}; "
                                       "re-run `aemg tokenize` to finish it)")
        meta = read_json(self.path / CORPUS)
        check_format(meta, self.path / CORPUS, FORMAT, READ_VERSIONS, "token corpus")
        self.meta = meta
        try:
            self.config = TokenizerConfig.from_dict(meta["config"])
            self.token_shape = tuple(int(v) for v in meta["token_shape"])
            self.rate = float(meta["rate"])
            self.channel_angles = np.asarray(meta["channel_angles"], np.float64)
            self.classes = {k: tuple(v) for k, v in meta["classes"].items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(self.path / CORPUS, f"corrupt corpus description ({exc})") from None
        try:
            text = (self.path / INDEX).read_text()
            self.sentences = [json.loads(line) for line in text.splitlines() if line.strip()]
        except FileNotFoundError:
            raise DataError(self.path / INDEX, "missing") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(self.path / INDEX, f"corrupt sentence index ({exc})") from None
        if not self.sentences:
            raise DataError(self.path, "the corpus holds no sentences")
        if sum(s["n_tokens"] for s in self.sentences) != meta["counts"]["tokens"]:
            raise DataError(self.path / INDEX, "token count differs from corpus.json (corrupt index)")
        self._shards: dict[str, dict[str, np.ndarray]] = {}
        self.init_ids()

    def shard(self, name: str) -> dict[str, np.ndarray]:
        """The memory-mapped arrays of shard ``name``."""
        arrays = self._shards.get(name)
        if arrays is None:
            folder = self.path / SHARDS / name
            files = FIELD_NAMES if self.meta["version"] == 1 else ("payload", "tokens")
            arrays = {}
            for k in files:
                p = folder / f"{k}.npy"
                try:
                    arrays[k] = np.load(p, mmap_mode="r")
                except FileNotFoundError:
                    raise DataError(p, "shard file missing") from None
                except ValueError as exc:
                    raise DataError(p, f"corrupt shard file ({exc})") from None
            if "tokens" in arrays:
                table = arrays.pop("tokens")
                if table.dtype != token_table_dtype(self.token_shape[0]) or table.ndim != 1:
                    raise DataError(folder / "tokens.npy", f"unexpected token table {table.dtype} "
                                                           f"of shape {table.shape}")
                arrays.update({k: table[k] for k in TABLE_FIELDS})
            n = arrays["payload"].shape[0]
            if arrays["payload"].shape[1:] != self.token_shape or \
                    any(a.shape[0] != n for a in arrays.values()):
                raise DataError(folder, "shard arrays have inconsistent shapes")
            self._shards[name] = arrays
        return arrays

    def tokens(self, i: int) -> dict[str, np.ndarray]:
        s = self.sentences[i]
        arrays = self.shard(s["shard"])
        lo, hi = s["offset"], s["offset"] + s["n_tokens"]
        if hi > arrays["payload"].shape[0]:
            raise DataError(self.path / SHARDS / s["shard"], f"sentence {s['key']!r} runs past the shard end")
        return {k: a[lo:hi] for k, a in arrays.items()}

    def __repr__(self) -> str:
        return (f"TokenCorpus({str(self.path)!r}, sentences={self.n_sentences}, tokens={self.n_tokens}, "
                f"token_shape={self.token_shape}, rate={self.rate:g} Hz)")


class ConcatCorpus(Corpus):
    """Several corpora read as one (e.g. for pre-training on every dataset); same interface as
    :class:`TokenCorpus`. Token shapes and rates must match."""

    def __init__(self, corpora: Sequence[TokenCorpus | str | os.PathLike]):
        self.parts = [c if isinstance(c, Corpus) else TokenCorpus(c) for c in corpora]
        if not self.parts:
            raise DataError("ConcatCorpus", "no corpora given")
        first = self.parts[0]
        for c in self.parts[1:]:
            if c.token_shape != first.token_shape or c.rate != first.rate:
                raise DataError(getattr(c, "path", "ConcatCorpus"),
                                f"token shape {c.token_shape} at {c.rate:g} Hz differs from "
                                f"{first.token_shape} at {first.rate:g} Hz")
        self.token_shape, self.rate = first.token_shape, first.rate
        self.channel_angles = first.channel_angles
        self.config = first.config
        self.classes: dict[str, tuple[str, ...]] = {}
        for c in self.parts:
            for k, v in c.classes.items():
                if self.classes.setdefault(k, v) != v:
                    raise DataError("ConcatCorpus",
                                    f"dataset {k!r} has two class lists: {self.classes[k]} and {v}")
        self._where = [(p, j) for p, c in enumerate(self.parts) for j in range(c.n_sentences)]
        self.sentences = [self.parts[p].sentences[j] for p, j in self._where]
        self.init_ids()

    def tokens(self, i: int) -> dict[str, np.ndarray]:
        p, j = self._where[i]
        return self.parts[p].tokens(j)

    def __repr__(self) -> str:
        return (f"ConcatCorpus({len(self.parts)} corpora, sentences={self.n_sentences}, "
                f"tokens={self.n_tokens})")


def open_corpus(path: str | os.PathLike) -> TokenCorpus:
    """Open a token corpus folder (see :class:`TokenCorpus`); DataError if missing, corrupt or empty."""
    return TokenCorpus(path)


def verify_corpus(path: str | os.PathLike) -> tuple[list[str], str]:
    """Check a token corpus folder completely: ``(problems, summary)``, one line per problem:
    completeness, every shard against its shard.json (group, sizes, checksums), and that every
    sentence of the index lies inside its shard. DataError when ``path`` is not a corpus."""
    path = Path(path)
    if not (path / PLAN).is_file():
        raise DataError(path, f"not a token corpus (no {PLAN})")
    plan = read_json(path / PLAN)
    groups = plan.get("groups") or []
    names = [shard_name(k) for k in range(len(groups))]
    problems = verify_shards(path, groups, names)
    missing = [n for n in names if not (path / SHARDS / n).is_dir()]
    if not (path / CORPUS).is_file():
        problems.insert(0, f"{path}: incomplete ({len(groups) - len(missing)} of {len(groups)} shards; "
                           "re-run "
                           "the same `aemg tokenize` command to finish it)")
    else:
        problems.extend(f"{path / SHARDS / n}: missing" for n in missing)
        if not problems:
            try:
                corpus = TokenCorpus(path)
                for i in range(corpus.n_sentences):
                    corpus.tokens(i)
            except DataError as exc:
                problems.append(str(exc))
    summary = f"{path}: token corpus of {len(groups)} group(s), {len(groups) - len(missing)} shard(s) checked"
    return problems, summary

