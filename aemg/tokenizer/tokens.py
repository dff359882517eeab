"""Tokens and sentences of the Neuromuscular Contraction Tokenizer (NCT).

A *token* is a fixed-size window of ``L = round(token_s * rate)`` samples of every channel, cut
from inside one contraction event (see :mod:`aemg.tokenizer.segment`). Its payload ``(C, L)`` is
z-scored per channel, so the per-channel RMS energy before normalisation is kept beside it (the
amplitude is not lost). A *sentence* is the ordered tokens of one trial (one held movement).

Rules (also in docs/notes/tokens.md):

- **Tokens inside an event** ``[s, e)``: starts ``s, s + hop, ...`` while the token fits in the
  event; when the last one ends before ``e``, one more token ends exactly at ``e`` (so the whole
  event is covered). An event shorter than one token gets one token centred on it. Every token is
  shifted, if needed, to lie inside the recording. A recording shorter than one token has none.
- **Metadata** per token: onset within its event and within the trial (s; the onset within the
  event is negative for a token centred on a short event), the duration of its event (s), the event
  index within the trial, and the dominant channel = argmax of the *raw* per-channel energy.
- **Dead signal**: a trial whose every channel is a flat line (e.g. all zeros) has no token.
- **Flat channels** (standard deviation within the token <= 1e-5 of its RMS, e.g. all-zero or a
  constant flat line) get an all-zero payload row; their energy is kept. No division by zero.
- **No event** in a trial (``no_event="background"``, the default): the trial is cut into
  non-overlapping background tokens (fixed windows, see below), so a rest trial still has a
  sentence; ``no_event="empty"`` gives an empty sentence.
- **Windows mode** (the sliding-window ablation): tokens at ``0, hop, 2 hop, ...`` over the whole
  trial, no segmentation. Fixed-window tokens all have event index 0, onset in event = onset in
  trial, and duration = the window length.
- **Cap**: at most ``max_sentence_len`` tokens: ``cap="first"`` keeps the first ones (the onset of a
  movement carries most of its intent), ``cap="energy"`` keeps the most energetic ones in time order.
- **Streaming** (:class:`~aemg.tokenizer.stream.StreamingTokenizer`): fed chunk by chunk, it emits the same
  event tokens as :func:`tokenize_recording` on the whole signal, uncapped, without the no-event fallback.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .. import backends
from .._config import dataclass_from_dict
from ..errors import ConfigError, DataError
from .calibration import CALIBRATION, is_rest_class  # noqa: F401 - is_rest_class: its old home
from .segment import Events, SegmentParams, detect_events
from .sentence import Sentence

MODES = ("events", "windows")
CAPS = ("first", "energy")
NO_EVENT = ("background", "empty")
_FLAT_REL = 1e-5
_TINY = 1e-12


@dataclass(frozen=True)
class TokenizerConfig:
    """Settings of the tokenizer.

    Attributes
    ----------
    token_s : float
        Token length in seconds; ``L = round(token_s * rate)`` samples (>= 1).
    hop_s : float or None
        Distance between token starts inside an event (events mode) or between windows (windows
        mode), seconds; None = ``token_s`` (no overlap).
    segment : SegmentParams
        Event segmentation settings (events mode).
    max_sentence_len : int
        Most tokens per sentence (>= 1).
    mode : {"events", "windows"}
        Contraction events (NCT) or fixed sliding windows (the ablation).
    cap : {"first", "energy"}
        Which tokens a sentence longer than ``max_sentence_len`` keeps.
    no_event : {"background", "empty"}
        What a trial without any event gives (see module docstring).
    calibration : {"rest", "robust"}
        Noise floor used by :func:`aemg.tokenizer.corpus.tokenize_archive` (the policy:
        :mod:`aemg.tokenizer.calibration`): ``"rest"`` = from the rest-class trials of the same
        subject and session when there are any (else robust statistics of the trial),
        ``"robust"`` = robust statistics of each trial alone.
    """

    token_s: float = 0.25
    hop_s: float | None = None
    segment: SegmentParams = field(default_factory=SegmentParams)
    max_sentence_len: int = 256
    mode: str = "events"
    cap: str = "first"
    no_event: str = "background"
    calibration: str = "rest"

    def __post_init__(self):
        if not (isinstance(self.token_s, (int, float)) and math.isfinite(self.token_s) and self.token_s > 0):
            raise ConfigError(f"token_s={self.token_s!r}: must be a positive number of seconds")
        if self.hop_s is not None and not (math.isfinite(self.hop_s) and self.hop_s > 0):
            raise ConfigError(f"hop_s={self.hop_s!r}: must be a positive number of seconds or None")
        if int(self.max_sentence_len) != self.max_sentence_len or self.max_sentence_len < 1:
            raise ConfigError(f"max_sentence_len={self.max_sentence_len!r}: must be a positive integer")
        for name, allowed in (("mode", MODES), ("cap", CAPS), ("no_event", NO_EVENT),
                              ("calibration", CALIBRATION)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r}: choose one of {allowed}")
        if isinstance(self.segment, dict):
            object.__setattr__(self, "segment", SegmentParams(**self.segment))

    def token_len(self, rate: float) -> int:
        """Token length ``L`` in samples at ``rate`` Hz."""
        n = int(round(self.token_s * rate))
        if n < 1:
            raise ConfigError(f"token_s={self.token_s} s is shorter than one sample at {rate:g} Hz")
        return n

    def hop_len(self, rate: float) -> int:
        """Hop between token starts, samples (>= 1)."""
        return self.token_len(rate) if self.hop_s is None else max(1, int(round(self.hop_s * rate)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable (inverse: :meth:`from_dict`)."""
        d = asdict(self)
        d["segment"] = asdict(self.segment)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TokenizerConfig":
        return dataclass_from_dict(cls, d, "tokenizer config")  # ConfigError naming unknown keys, nested too


# -- token geometry ------------------------------------------------------------------------------
def event_token_starts(starts: np.ndarray, ends: np.ndarray, token_len: int, hop: int,
                       n_samples: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Token start samples of every event, in time order.

    Parameters
    ----------
    starts, ends : np.ndarray, shape (E,), int64
        Event ranges ``[start, end)`` in samples.
    token_len, hop : int
        Token length and hop, samples.
    n_samples : int, np.ndarray of shape (E,), or None
        Recording length (or the length of each event's recording, to plan several trials in one
        call); tokens are shifted to lie inside ``[0, n_samples)``. None = unknown yet (streaming):
        no shift to the right end.

    Returns
    -------
    token_starts : np.ndarray, shape (N,), int64
    token_event : np.ndarray, shape (N,), int64
        Index of the event each token belongs to.
    """
    starts = np.asarray(starts, np.int64)
    ends = np.asarray(ends, np.int64)
    length = ends - starts
    n_reg = np.where(length > token_len, (length - token_len) // hop + 1, 1)
    last_reg_end = starts + (n_reg - 1) * hop + token_len
    extra = (length > token_len) & (last_reg_end < ends)
    counts = n_reg + extra
    ev = np.repeat(np.arange(starts.size, dtype=np.int64), counts)
    first = (np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if starts.size
             else np.zeros(0, np.int64))
    k = np.arange(ev.size, dtype=np.int64) - first[ev]
    out = starts[ev] + k * hop
    short = length[ev] <= token_len
    out[short] = (starts[ev] - (token_len - length[ev]) // 2)[short]
    is_extra = extra[ev] & (k == n_reg[ev])
    out[is_extra] = (ends[ev] - token_len)[is_extra]
    if n_samples is not None:
        limit = np.asarray(n_samples, np.int64)
        out = np.minimum(out, (limit[ev] if limit.ndim else limit) - token_len)
    out = np.maximum(out, 0)
    return out, ev


def window_starts(n_samples: int, token_len: int, hop: int) -> np.ndarray:
    """Start samples of fixed windows ``0, hop, ...`` that fit in ``n_samples``, shape (N,), int64."""
    if n_samples < token_len:
        return np.zeros(0, np.int64)
    return np.arange(0, n_samples - token_len + 1, hop, dtype=np.int64)


def extract_tokens_reference(x: np.ndarray, rel_starts: np.ndarray, token_len: int, payload: np.ndarray,
                             energy: np.ndarray, dominant: np.ndarray) -> None:
    """NumPy reference of the ``"tokens"`` operation: fill preallocated token rows.

    Parameters
    ----------
    x : np.ndarray, shape (C, T), float32
    rel_starts : np.ndarray, shape (N,), int64
        Token starts in samples of ``x``; each ``[s, s + L)`` inside ``x``.
    token_len : int
        ``L``.
    payload : np.ndarray, shape (N, C, L), float32
        Out: tokens z-scored per channel (flat channels: zeros).
    energy : np.ndarray, shape (N, C), float32
        Out: per-channel RMS before normalisation.
    dominant : np.ndarray, shape (N,), int16
        Out: argmax of ``energy``.
    """
    if rel_starts.size == 0:
        return
    with np.errstate(invalid="ignore"):  # NaN / inf in a token give a NaN row (no warning)
        _extract_reference(x, rel_starts, token_len, payload, energy, dominant)


def _extract_reference(x, rel_starts, token_len, payload, energy, dominant) -> None:
    windows = np.lib.stride_tricks.sliding_window_view(x, token_len, axis=1)  # (C, T-L+1, L)
    tokens = windows.transpose(1, 0, 2)[rel_starts].astype(np.float64)  # (N, C, L), one gather
    rms = np.sqrt(np.einsum("ncl,ncl->nc", tokens, tokens) / token_len)
    mean = tokens.mean(axis=2, keepdims=True)
    tokens -= mean
    std = np.sqrt(np.einsum("ncl,ncl->nc", tokens, tokens) / token_len)
    flat = std <= np.maximum(_FLAT_REL * rms, _TINY)
    scale = np.where(flat, 0.0, 1.0 / np.where(flat, 1.0, std))
    energy[...] = rms
    payload[...] = (windows.transpose(1, 0, 2)[rel_starts] - mean.astype(np.float32)) * \
        scale[:, :, None].astype(np.float32)
    dominant[...] = np.argmax(energy, axis=1)


def token_kernel(extract_into):
    """Wrap a compiled ``extract_into`` (Numba or Cython; they take the flatness constants as
    arguments) into the ``tokens`` op contract (the ``wrap`` of those backends in
    :data:`aemg.backends.TABLE`)."""

    def extract(x, rel_starts, token_len, payload, energy, dominant):
        extract_into(x, rel_starts, token_len, _FLAT_REL, _TINY, payload, energy, dominant)
    return extract


def extract_tokens_into(x: np.ndarray, token_starts: np.ndarray, token_len: int, payload: np.ndarray,
                        energy: np.ndarray, dominant: np.ndarray, offset: int = 0, *,
                        backend: str | None = None) -> None:
    """Cut, measure and normalise tokens into preallocated rows (see :func:`extract_tokens`).

    ``payload`` (N, C, L) float32, ``energy`` (N, C) float32 and ``dominant`` (N,) int16 must be
    C-contiguous (e.g. row slices of a whole shard's arrays). ``backend``: ``"numpy"`` (reference),
    ``"numba"`` or ``"cython"`` (default: the fastest available; env ``AEMG_BACKEND_TOKENS``).
    """
    extract_tokens_with(backends.get("tokens", backend), x, token_starts, token_len, payload, energy,
                        dominant, offset)


def extract_tokens_with(kernel, x, token_starts, token_len, payload, energy, dominant, offset=0) -> None:
    """:func:`extract_tokens_into` with the kernel already chosen (``backends.get("tokens")``)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    rel = np.asarray(token_starts, np.int64) - offset
    n = rel.size
    c = x.shape[0]
    if payload.shape != (n, c, token_len) or energy.shape != (n, c) or dominant.shape != (n,):
        raise DataError("extract_tokens", f"output shapes {payload.shape}, {energy.shape}, {dominant.shape} "
                                          f"do not fit {n} tokens of ({c}, {token_len})")
    if n == 0:
        return
    if rel.min() < 0 or rel.max() + token_len > x.shape[1]:
        raise DataError("extract_tokens", f"token range {rel.min()}..{rel.max() + token_len} outside "
                                          f"the signal of {x.shape[1]} samples")
    kernel(x, rel, int(token_len), payload, energy, dominant)


def extract_tokens(x: np.ndarray, token_starts: np.ndarray, token_len: int, offset: int = 0, *,
                   backend: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut, measure and normalise tokens.

    Parameters
    ----------
    x : np.ndarray, shape (C, T), float32
        Signal (other real dtypes and strides are converted); sample ``j`` of ``x`` is sample
        ``offset + j`` of the recording.
    token_starts : np.ndarray, shape (N,), int
        Token starts in recording samples; each token must lie inside ``x``.
    token_len : int
        ``L``.
    backend : str, optional
        ``"numpy"`` or ``"numba"`` (default: the fastest available).

    Returns
    -------
    payload : (N, C, L) float32, z-scored per channel (flat channels zero)
    energy : (N, C) float32, RMS before normalisation
    dominant : (N,) int16, argmax of ``energy``
    """
    x = np.asarray(x)
    c = x.shape[0]
    n = int(np.asarray(token_starts).size)
    payload = np.empty((n, c, token_len), np.float32)
    energy = np.empty((n, c), np.float32)
    dominant = np.empty(n, np.int16)
    extract_tokens_into(x, token_starts, token_len, payload, energy, dominant, offset, backend=backend)
    return payload, energy, dominant


def cap_keep(energy: np.ndarray, max_len: int, cap: str) -> np.ndarray | slice:
    """Which of a sentence's tokens the cap keeps: ``slice`` (``"first"``) or sorted indices
    (``"energy"``: the ``max_len`` of largest total power ``sum_c energy**2``, in time order)."""
    if energy.shape[0] <= max_len or cap == "first":
        return slice(0, max_len)
    power = np.einsum("nc,nc->n", energy, energy, dtype=np.float64)
    return np.sort(np.argsort(-power, kind="stable")[:max_len])


def _meta(rec) -> dict[str, Any]:
    return dict(key=rec.key, dataset=rec.dataset, subject=rec.subject, session=rec.session,
                trial=rec.trial, label=-1 if rec.label is None else int(rec.label),
                device=rec.device.name)


def token_times(starts: np.ndarray, event_start: np.ndarray, event_len: np.ndarray,
                rate: float) -> dict[str, np.ndarray]:
    """Per-token time metadata, float32 seconds: ``onset_in_event_s``, ``onset_in_trial_s``,
    ``duration_s``, from token ``starts``, the start and length of each token's event (samples,
    all shape (N,))."""
    ts = starts.astype(np.float64)
    return {"onset_in_event_s": ((ts - event_start) / rate).astype(np.float32),
            "onset_in_trial_s": (ts / rate).astype(np.float32),
            "duration_s": (event_len / rate).astype(np.float32)}


def events_sentence(x: np.ndarray, rate: float, token_starts: np.ndarray, token_event: np.ndarray,
                    ev_starts: np.ndarray, ev_ends: np.ndarray, token_len: int, offset: int = 0,
                    **meta) -> Sentence:
    """The sentence of the tokens at ``token_starts`` (recording samples; ``x`` starts at sample
    ``offset``), token ``i`` belonging to event ``token_event[i]`` of ``[ev_starts, ev_ends)``."""
    payload, energy, dominant = extract_tokens(x, token_starts, token_len, offset)
    return Sentence(payload=payload, energy=energy,
                    **token_times(token_starts, ev_starts[token_event],
                                  (ev_ends - ev_starts)[token_event], rate),
                    event_index=token_event.astype(np.int32), dominant_channel=dominant,
                    rate=float(rate), **meta)


def windows_sentence(x: np.ndarray, rate: float, starts: np.ndarray, token_len: int, offset: int = 0,
                     **meta) -> Sentence:
    """The sentence of fixed windows at ``starts`` (windows mode, background tokens): the trial is
    event 0, so the onset in the event is the onset in the trial, and the duration is the window's
    own length."""
    return events_sentence(x, rate, starts, np.zeros(starts.size, np.int64), np.zeros(1, np.int64),
                           np.array([token_len], np.int64), token_len, offset, **meta)


@dataclass
class SentencePlan:
    """Where the tokens of a batch of trials are (before cutting them), trial after trial.

    Attributes
    ----------
    starts : np.ndarray, shape (N,), int64
        Token start sample within its trial.
    trial : np.ndarray, shape (N,), int64
        Index of the token's trial in the batch.
    event_index : np.ndarray, shape (N,), int32
        Index of the token's event within its trial (fixed windows: 0).
    event_start, event_len : np.ndarray, shape (N,), int64
        Start and length of the token's event, samples (fixed windows: 0 and L, so the onset in the
        event is the onset in the trial and the duration is the window length).
    offsets : np.ndarray, shape (S + 1,), int64
        Tokens of trial ``i`` are ``offsets[i]:offsets[i + 1]``.
    n_uncapped : np.ndarray, shape (S,), int64
        Tokens of each trial before the cap.
    events : list of np.ndarray, shape (E_i, 2), int64
        Detected ``[start, end)`` events of each trial (empty for fixed windows / background).
    """

    starts: np.ndarray
    trial: np.ndarray
    event_index: np.ndarray
    event_start: np.ndarray
    event_len: np.ndarray
    offsets: np.ndarray
    n_uncapped: np.ndarray
    events: list

    def tokens_of(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def n_tokens(self, i: int) -> int:
        return int(self.offsets[i + 1] - self.offsets[i])


_NO_EVENTS = np.zeros((0, 2), np.int64)


def _is_dead(x: np.ndarray) -> bool:
    """Every channel a flat line (a prefix is tested first: live signals differ at once)."""
    head = x[:, :64]
    return not (head != head[:, :1]).any() and not (x != x[:, :1]).any()


def plan_sentences(signals: list[np.ndarray], rate: float, config: TokenizerConfig = TokenizerConfig(), *,
                   noises: list[float | None] | None = None, calibration: np.ndarray | None = None,
                   backend: str | None = None, cap: bool = True) -> SentencePlan:
    """Token positions of a batch of finite trials (the rules of the module docstring).

    Per trial: dead or shorter than one token: no token; windows mode: fixed windows; events mode:
    tokens of the events of :func:`~aemg.tokenizer.segment.detect_events` (``noises[i]``,
    ``calibration`` and ``backend`` passed on), else background windows or nothing
    (``config.no_event``). The token geometry of every event of the batch is computed at once.

    Parameters
    ----------
    signals : list of np.ndarray, shape (C, T_i)
    rate : float
        Hz (the same for every trial).
    noises : list of (float or None), optional
        Noise level per trial; None = robust statistics of the trial (or of ``calibration``).
    cap : bool
        Keep at most ``config.max_sentence_len`` tokens per trial (``config.cap``).
    """
    L, hop = config.token_len(rate), config.hop_len(rate)
    n_trials = len(signals)
    ev_s, ev_e, ev_trial, ev_len_rec = [], [], [], []   # events of the event trials
    win_starts, win_trial = [], []                       # fixed windows
    events = [_NO_EVENTS] * n_trials
    for i, x in enumerate(signals):
        t = x.shape[1]
        if t < L or _is_dead(x):
            continue
        if config.mode == "windows":
            win_starts.append(window_starts(t, L, hop))
            win_trial.append(i)
            continue
        ev: Events = detect_events(x, rate, config.segment, calibration=calibration,
                                   noise=None if noises is None else noises[i], backend=backend)
        s = np.asarray(ev.starts, np.int64)
        if s.size:
            e = np.asarray(ev.ends, np.int64)
            ev_s.append(s)
            ev_e.append(e)
            ev_trial.append(i)
            ev_len_rec.append(t)
            events[i] = np.stack([s, e], axis=1)
        elif config.no_event == "background":
            win_starts.append(window_starts(t, L, L))
            win_trial.append(i)
    parts = []
    if ev_s:
        sizes = np.array([a.size for a in ev_s], np.int64)
        es, ee = np.concatenate(ev_s), np.concatenate(ev_e)
        owner = np.repeat(np.asarray(ev_trial, np.int64), sizes)
        in_trial = np.arange(es.size, dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        starts, ev = event_token_starts(es, ee, L, hop, np.repeat(np.asarray(ev_len_rec, np.int64), sizes))
        parts.append((starts, owner[ev], in_trial[ev], es[ev], (ee - es)[ev]))
    if win_starts:
        sizes = np.array([a.size for a in win_starts], np.int64)
        starts = np.concatenate(win_starts)
        parts.append((starts, np.repeat(np.asarray(win_trial, np.int64), sizes),
                      np.zeros(starts.size, np.int64),
                      np.zeros(starts.size, np.int64), np.full(starts.size, L, np.int64)))
    cols = [np.concatenate(c) if c else np.zeros(0, np.int64) for c in zip(*parts)] if parts else \
        [np.zeros(0, np.int64)] * 5
    if len(parts) > 1:
        order = np.argsort(cols[1], kind="stable")  # trial after trial, time order within a trial
        cols = [c[order] for c in cols]
    starts, trial, event_index, event_start, event_len = cols
    counts = np.bincount(trial, minlength=n_trials).astype(np.int64)
    n_uncapped = counts.copy()
    over = np.flatnonzero(counts > config.max_sentence_len) if cap else ()
    if len(over):
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        keep = np.ones(starts.size, bool)
        for i in over:
            lo, hi = first[i], first[i] + counts[i]
            energy = extract_tokens(signals[i], starts[lo:hi], L)[1] if config.cap == "energy" else \
                np.zeros((hi - lo, 1), np.float32)
            mask = np.zeros(hi - lo, bool)
            mask[cap_keep(energy, config.max_sentence_len, config.cap)] = True
            keep[lo:hi] = mask
        starts, trial, event_index, event_start, event_len = (
            c[keep] for c in (starts, trial, event_index, event_start, event_len))
        counts = np.bincount(trial, minlength=n_trials).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return SentencePlan(starts, trial, event_index.astype(np.int32), event_start, event_len, offsets,
                        n_uncapped, events)


def tokenize_signal(x: np.ndarray, rate: float, config: TokenizerConfig = TokenizerConfig(), *,
                    noise: float | None = None, calibration: np.ndarray | None = None,
                    backend: str | None = None, cap: bool = True, **meta) -> Sentence:
    """Tokenize one trial given as an array (see :func:`tokenize_recording`).

    Parameters
    ----------
    x : np.ndarray, shape (C, T), float32
        Finite samples.
    rate : float
        Hz.
    noise : float, optional
        Noise level for segmentation (e.g. from rest trials); default: robust statistics of ``x``
        (or of ``calibration``).
    calibration : np.ndarray, shape (C, T'), optional
        A rest recording to take the noise level from.
    cap : bool
        Apply ``config.max_sentence_len``.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise DataError("tokenize_signal: x", f"expected (channels, time), got shape {x.shape}")
    if x.size and not np.isfinite(x).all():
        raise DataError("tokenize_signal: x", "non-finite samples (NaN or inf); drop or repair them first")
    meta.pop("rate", None)
    plan = plan_sentences([x], rate, config, noises=[noise], calibration=calibration, backend=backend,
                          cap=cap)
    payload, energy, dominant = extract_tokens(x, plan.starts, config.token_len(rate))
    return Sentence(payload=payload, energy=energy,
                    **token_times(plan.starts, plan.event_start, plan.event_len, rate),
                    event_index=plan.event_index, dominant_channel=dominant, rate=float(rate),
                    n_events=len(plan.events[0]), events=plan.events[0], **meta)


def tokenize_recording(rec, config: TokenizerConfig = TokenizerConfig(), *, noise: float | None = None,
                       calibration: np.ndarray | None = None, backend: str | None = None,
                       cap: bool = True) -> Sentence:
    """The sentence of one trial.

    Parameters
    ----------
    rec : aemg.data.Recording
        One trial, (C, T) float32 (usually in the standard space).
    config : TokenizerConfig
    noise : float, optional
        Noise level for the event detector (see :func:`aemg.tokenizer.segment.detect_events`);
        default: robust statistics of the trial.
    calibration : np.ndarray, shape (C, T'), optional
        Rest signal of the same user to take the noise level from.

    Returns
    -------
    Sentence
        At most ``config.max_sentence_len`` tokens (unless ``cap=False``).
    """
    return tokenize_signal(rec.data, rec.rate, config, noise=noise, calibration=calibration,
                           backend=backend, cap=cap, **_meta(rec))
