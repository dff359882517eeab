"""The sentence of one trial and the table of per-token fields: one vocabulary for every layer.

Each per-token field has one name, used alike as a :class:`Sentence` attribute, as a column of a
corpus shard's ``tokens.npy`` (the payload has its own ``payload.npy``), as a key of a padded
training batch (:meth:`aemg.tokenizer.corpus.Corpus.batch`) and by the model
(:class:`aemg.model.backbone.Backbone`). A new token field is one row of :data:`TOKEN_FIELDS`
plus the code that computes it (:mod:`aemg.tokenizer.tokens`) and the code that uses it (the model).

Decision (issue 11): the names are the ones on disk and in :class:`Sentence` since corpus
format 1 (``onset_in_event_s``, ``onset_in_trial_s``, ``dominant_channel``); the batches used to
call three of them ``onset_event_s``, ``onset_trial_s`` and ``dominant``. Renaming the batch keys
keeps every corpus ever written readable and byte-identical (the names are part of the bytes of
``tokens.npy``'s structured dtype and of version-1 shards' file names) and changes no public
attribute of :class:`Sentence`; batches are never stored.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Iterable

import numpy as np

from ..errors import DataError


@dataclass(frozen=True)
class TokenField:
    """One per-token field.

    Attributes
    ----------
    name : str
        Sentence attribute, ``tokens.npy`` column and batch key.
    dtype : np.dtype
        As stored in a sentence and on disk.
    batch_dtype : np.dtype
        In a padded batch (integers widen to int64 for embedding look-ups).
    shape : str
        Per token: ``"C L"`` (the payload), ``"C"`` (one value per channel) or ``""`` (a scalar).
    doc : str
        Meaning and unit.
    """

    name: str
    dtype: np.dtype
    batch_dtype: np.dtype
    shape: str
    doc: str


#: every per-token field, in the order of :class:`Sentence`'s attributes and of ``tokens.npy``
TOKEN_FIELDS = (
    TokenField("payload", np.dtype(np.float32), np.dtype(np.float32), "C L",
               "token samples z-scored per channel (flat channels: zeros)"),
    TokenField("energy", np.dtype(np.float32), np.dtype(np.float32), "C",
               "per-channel RMS before normalisation, the recording's units"),
    TokenField("onset_in_event_s", np.dtype(np.float32), np.dtype(np.float32), "",
               "token start relative to its event's start, s (negative: a token centred on a short event)"),
    TokenField("onset_in_trial_s", np.dtype(np.float32), np.dtype(np.float32), "",
               "token start relative to the trial's start, s"),
    TokenField("duration_s", np.dtype(np.float32), np.dtype(np.float32), "",
               "length of the token's event, s"),
    TokenField("event_index", np.dtype(np.int32), np.dtype(np.int64), "",
               "index of the token's event within the trial"),
    TokenField("dominant_channel", np.dtype(np.int16), np.dtype(np.int64), "",
               "channel of largest raw energy"),
)
#: the field names, in order
FIELD_NAMES = tuple(f.name for f in TOKEN_FIELDS)
#: field name -> dtype in a sentence and on disk
DTYPES = {f.name: f.dtype for f in TOKEN_FIELDS}
#: the fields stored in a shard's ``tokens.npy`` table (every one but the payload)
TABLE_FIELDS = FIELD_NAMES[1:]
#: the time fields the temporal embedding reads (seconds)
TIME_FIELDS = ("onset_in_event_s", "onset_in_trial_s", "duration_s")
#: the per-token keys of a padded batch, in the order the batch holds them: the token fields, the
#: position in the sentence (``order``) and ``mask`` (True = real token)
BATCH_KEYS = ("payload", "energy", "onset_in_event_s", "onset_in_trial_s", "duration_s", "event_index",
              "order", "dominant_channel", "mask")
#: the dtype of each of :data:`BATCH_KEYS` in a padded batch
BATCH_DTYPES = {**{f.name: f.batch_dtype for f in TOKEN_FIELDS}, "order": np.dtype(np.int64),
                "mask": np.dtype(bool)}


def token_table_dtype(n_channels: int) -> np.dtype:
    """The structured dtype of a shard's ``tokens.npy``: every per-token field but the payload."""
    return np.dtype([(f.name, f.dtype, (n_channels,)) if f.shape == "C" else (f.name, f.dtype)
                     for f in TOKEN_FIELDS[1:]])


@dataclass(eq=False)
class Sentence:
    """The ordered tokens of one trial.

    Attributes
    ----------
    payload : np.ndarray, shape (N, C, L), float32
        Token samples z-scored per channel (flat channels: zeros).
    energy : np.ndarray, shape (N, C), float32
        Per-channel RMS of the token before normalisation, in the recording's units.
    onset_in_event_s, onset_in_trial_s, duration_s : np.ndarray, shape (N,), float32
        Token start relative to its event's start and to the trial's start; its event's length.
    event_index : np.ndarray, shape (N,), int32
        Index of the token's event within the trial (0, 1, ...).
    dominant_channel : np.ndarray, shape (N,), int16
        Channel of largest raw energy.
    key, dataset, subject, session, trial, device : str
        Provenance of the trial (``device`` is the device name).
    label : int
        Trial class id, -1 when unknown.
    rate : float
        Sampling rate, Hz.
    n_events : int
        Events detected in the trial (before the cap; 0 when the tokens are background tokens).
    events : np.ndarray, shape (E, 2), int64
        Event ``[start, end)`` sample ranges (empty in windows mode).
    """

    payload: np.ndarray
    energy: np.ndarray
    onset_in_event_s: np.ndarray
    onset_in_trial_s: np.ndarray
    duration_s: np.ndarray
    event_index: np.ndarray
    dominant_channel: np.ndarray
    key: str = ""
    dataset: str = ""
    subject: str = ""
    session: str = ""
    trial: str = ""
    label: int = -1
    device: str = ""
    rate: float = 0.0
    n_events: int = 0
    events: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))

    @property
    def n_tokens(self) -> int:
        return int(self.payload.shape[0])

    def __len__(self) -> int:
        return self.n_tokens

    @property
    def token_shape(self) -> tuple[int, int]:
        return (int(self.payload.shape[1]), int(self.payload.shape[2]))

    def tokens(self) -> dict[str, np.ndarray]:
        """The per-token arrays by name (:data:`FIELD_NAMES`)."""
        return {k: getattr(self, k) for k in FIELD_NAMES}

    def take(self, index) -> "Sentence":
        """A sentence with only the tokens ``index`` (slice or integer array), same provenance."""
        return replace(self, **{k: np.ascontiguousarray(getattr(self, k)[index]) for k in FIELD_NAMES})

    def rolled(self, k: int) -> "Sentence":
        """The sentence with every token's channels rolled by ``k`` positions of a channel ring
        (payload, energy and dominant channel; as if a ring armband had been donned rotated by
        ``k`` x 360/C degrees). ``k = 0`` returns ``self``."""
        c = self.payload.shape[1]
        if k % max(c, 1) == 0 or not self.n_tokens:
            return self
        return replace(self, payload=np.roll(self.payload, k, axis=1), energy=np.roll(self.energy, k, axis=1),
                       dominant_channel=((self.dominant_channel.astype(np.int64) + k) % c)
                       .astype(self.dominant_channel.dtype))

    @classmethod
    def empty(cls, n_channels: int, token_len: int, **meta) -> "Sentence":
        arrays = {k: np.zeros((0,), DTYPES[k]) for k in FIELD_NAMES}
        arrays["payload"] = np.zeros((0, n_channels, token_len), np.float32)
        arrays["energy"] = np.zeros((0, n_channels), np.float32)
        return cls(**arrays, **meta)

    @classmethod
    def concat(cls, parts: Iterable["Sentence"], **meta) -> "Sentence":
        """Tokens of ``parts`` one after the other (provenance from ``meta``, else the first part)."""
        parts = list(parts)
        if not parts:
            raise DataError("Sentence.concat", "nothing to concatenate")
        base = {f.name: getattr(parts[0], f.name) for f in fields(cls) if f.name not in FIELD_NAMES}
        base.update(meta)
        arrays = {k: np.concatenate([getattr(p, k) for p in parts]) for k in FIELD_NAMES}
        return cls(**arrays, **base)

    def __repr__(self) -> str:
        return (f"Sentence({self.key!r}, tokens={self.n_tokens}, events={self.n_events}, "
                f"token_shape={self.token_shape}, label={self.label})")
