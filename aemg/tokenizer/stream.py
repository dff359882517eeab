"""Streaming segmentation and tokenization: feed chunks as they arrive (e.g. from a live armband).

:class:`StreamingSegmenter` carries the kernel state (prefix sum, window ring, hysteresis state)
across chunks and applies the post-processing of :func:`~aemg.tokenizer.segment.detect_events`
causally. Given the same noise level it emits exactly the events of ``detect_events`` on the
concatenated signal, whatever the chunk sizes. Delays: an event is emitted ``merge_gap_s`` after
its end (it may still merge with a following one); the pieces of an event longer than
``max_event_s`` are emitted as soon as each is complete. :class:`StreamingTokenizer` cuts the tokens
of those events (or fixed windows) with a bounded buffer: the same tokens as
:func:`~aemg.tokenizer.tokens.tokenize_signal` on the whole signal, uncapped, without the no-event
fallback.
"""
from __future__ import annotations

import numpy as np

from .. import backends
from ..errors import ConfigError, DataError
from .segment import (
    SegmentParams,
    as_signal,
    check_noise,
    check_rate,
    noise_level,
    nonfinite_error,
    thresholds,
)
from .segment_reference import KernelState
from .sentence import Sentence
from .tokens import TokenizerConfig, event_token_starts, events_sentence, windows_sentence

__all__ = ["StreamingSegmenter", "EventAssembler", "StreamingTokenizer"]


class EventAssembler:
    """Causal post-processing of raw on/off crossings (merge, min duration, split).

    Equivalent to :func:`~aemg.tokenizer.segment.postprocess_events` on the complete list of raw
    events, but fed crossing by crossing; events are appended to the ``out`` lists as soon as
    they are final.

    Parameters
    ----------
    merge_gap, min_len : int
        Samples (see ``postprocess_events``).
    max_len : int or None
        Samples; None disables splitting. Must be ``>= min_len``.
    """

    def __init__(self, merge_gap: int, min_len: int, max_len: int | None):
        self.merge_gap, self.min_len, self.max_len = merge_gap, min_len, max_len
        self.start: int | None = None  # pending event (None: none)
        self.end: int | None = None    # its end so far (None: still active)
        self.next_piece = 0            # start of its first piece not yet emitted

    def on(self, t: int, out: list) -> None:
        """Raw event starts at sample ``t``."""
        if self.start is not None:
            if t - self.end < self.merge_gap:  # short gap: same event
                self.end = None
                return
            self._finish(out)
        self.start, self.end, self.next_piece = t, None, t

    def off(self, t: int) -> None:
        """Raw event ends at sample ``t`` (exclusive)."""
        self.end = t

    def advance(self, now: int, out: list) -> None:
        """All samples before ``now`` are processed: emit what is final."""
        if self.start is None:
            return
        if self.end is not None and now - self.end >= self.merge_gap:
            self._finish(out)
            return
        known_end = now if self.end is None else self.end  # the event ends at or after this
        if self.max_len is not None and known_end - self.start > self.max_len:
            while self.next_piece + self.max_len <= known_end:
                out.append((self.next_piece, self.next_piece + self.max_len))
                self.next_piece += self.max_len

    def close(self, now: int, out: list) -> None:
        """The signal ends at ``now``: an active event ends there; emit everything."""
        if self.start is not None:
            if self.end is None:
                self.end = now
            self._finish(out)

    def _finish(self, out: list) -> None:
        start, end = self.start, self.end
        self.start = self.end = None
        if end - start < self.min_len:
            return
        if self.max_len is None or end - start <= self.max_len:
            out.append((start, end))
            return
        s = self.next_piece
        while s < end:
            e = min(s + self.max_len, end)
            if e - s >= self.min_len:
                out.append((s, e))
            s = e


class StreamingSegmenter:
    """Chunk-by-chunk event detection with the same events as the offline run.

    Parameters
    ----------
    rate : float
        Sampling rate, Hz.
    n_channels : int
        Channels ``C`` of every chunk.
    params : SegmentParams
    noise : float
        Noise level in envelope units, known before data arrives (e.g. from
        :func:`~aemg.tokenizer.segment.noise_level` on a calibration segment, or
        :meth:`from_calibration`).
    backend : str, optional
        ``"numpy"``, ``"numba"`` or ``"cython"`` (default: the fastest available).

    Examples
    --------
    >>> seg = StreamingSegmenter(200.0, 8, noise=4.0)            # doctest: +SKIP
    >>> for chunk in armband: events += seg.push(chunk)          # doctest: +SKIP
    >>> events += seg.flush()                                    # doctest: +SKIP
    """

    def __init__(self, rate: float, n_channels: int, params: SegmentParams = SegmentParams(), *,
                 noise: float, backend: str | None = None):
        self.rate = check_rate(rate)
        if int(n_channels) != n_channels or n_channels < 1:
            raise DataError("n_channels", f"must be a positive integer, got {n_channels!r}")
        self.n_channels = int(n_channels)
        self.params = params
        self.noise = check_noise(noise)
        self.on_level, self.off_level = thresholds(self.noise, params)
        window, min_len, gap, max_len = params.samples(self.rate)
        self.window = window
        scale = self.n_channels * window
        self._on_sum, self._off_sum = self.on_level * scale, self.off_level * scale
        self._kernel = backends.get("segment", backend)
        self._state = KernelState(window)
        self._assembler = EventAssembler(gap, min_len, max_len)
        self._closed = False

    @classmethod
    def from_calibration(cls, rate: float, calibration, params: SegmentParams = SegmentParams(), *,
                         backend: str | None = None) -> "StreamingSegmenter":
        """A segmenter whose noise level is the median envelope of ``calibration`` (C, Tc)."""
        cal = as_signal(calibration, "calibration")
        noise = noise_level(cal, rate, params, calibration=cal, backend=backend)
        return cls(rate, cal.shape[0], params, noise=noise, backend=backend)

    @property
    def position(self) -> int:
        """Samples pushed so far."""
        return self._state.position

    @property
    def pending_start(self) -> int:
        """Earliest sample index at which an event not yet returned can start: the first unemitted
        piece of the open event, or :attr:`position` when no event is open."""
        a = self._assembler
        return self.position if a.start is None else int(a.next_piece)

    @property
    def n_nonfinite(self) -> int:
        """Non-finite samples counted as zero energy so far (``nan_policy="zero"``)."""
        return int(self._state.istate[3])

    def push(self, chunk) -> list[tuple[int, int]]:
        """Process the next samples.

        Parameters
        ----------
        chunk : array_like, shape (C, t)
            The next ``t >= 0`` samples.

        Returns
        -------
        list of (start, end)
            Events completed so far and not yet returned, absolute sample indices, half-open.
        """
        if self._closed:
            raise DataError("push", "the stream was flushed; create a new StreamingSegmenter")
        x = as_signal(chunk, "chunk")
        if x.shape[0] != self.n_channels:
            raise DataError("chunk", f"has {x.shape[0]} channels, expected {self.n_channels}")
        if self.params.nan_policy == "raise" and x.dtype.kind == "f":
            with np.errstate(over="ignore"):
                n_bad = int(np.count_nonzero(~(x.astype(np.float64) ** 2 < np.inf)))
            if n_bad:  # checked first so that the state is untouched
                err = nonfinite_error(x, "chunk", n_bad)
                raise DataError(err.where, f"(stream position {self.position}) {err.problem}")
        was_active = self._state.active
        flips, _ = self._kernel(x, self._state, self._on_sum, self._off_sum)
        out: list[tuple[int, int]] = []
        a = self._assembler
        for i, t in enumerate(flips.tolist()):
            if (i % 2 == 0) != was_active:
                a.on(t, out)
            else:
                a.off(t)
        a.advance(self.position, out)
        return out

    def flush(self) -> list[tuple[int, int]]:
        """End of the stream: close an active event at the last sample and return what is left."""
        out: list[tuple[int, int]] = []
        if not self._closed:
            self._assembler.close(self.position, out)
            self._closed = True
        return out


class StreamingTokenizer:
    """Tokenize a live signal chunk by chunk with a bounded buffer.

    Emits the same event tokens as :func:`~aemg.tokenizer.tokens.tokenize_signal` on the whole
    signal (events mode, or windows mode), with no cap and no no-event fallback.

    Parameters
    ----------
    rate : float
        Hz.
    n_channels : int
    config : TokenizerConfig
    noise : float
        Noise level (events mode), e.g. measured on a rest recording when the armband is put on.
    """

    def __init__(self, rate: float, n_channels: int, config: TokenizerConfig = TokenizerConfig(), *,
                 noise: float | None = None):
        self.rate, self.n_channels, self.config = float(rate), int(n_channels), config
        self.L, self.hop = config.token_len(rate), config.hop_len(rate)
        if config.mode == "events":
            if noise is None:
                raise ConfigError("StreamingTokenizer: events mode needs noise= (e.g. from a rest recording)")
            self._seg = StreamingSegmenter(rate, n_channels, config.segment, noise=noise)
        self._buf = np.zeros((n_channels, 0), np.float32)
        self._buf_start = 0      # recording sample of self._buf[:, 0]
        self._n = 0              # samples received
        self._pending: list[tuple[int, int, int]] = []  # (event_index, start, end)
        self._n_events = 0
        self._next_window = 0
        self._done = False

    @property
    def samples_seen(self) -> int:
        return self._n

    @property
    def buffered(self) -> int:
        """Samples held in the buffer now."""
        return int(self._buf.shape[1])

    def push(self, chunk: np.ndarray) -> Sentence:
        """Add ``chunk`` (C, t) and return the tokens completed so far (possibly none)."""
        if self._done:
            raise DataError("StreamingTokenizer.push", "the stream was flushed; start a new tokenizer")
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.ndim != 2 or chunk.shape[0] != self.n_channels:
            raise DataError("StreamingTokenizer.push",
                            f"chunk must be ({self.n_channels}, t), got {chunk.shape}")
        if chunk.size and not np.isfinite(chunk).all():
            raise DataError("StreamingTokenizer.push", "non-finite samples (NaN or inf) in the chunk")
        self._buf = np.concatenate([self._buf, chunk], axis=1)
        self._n += chunk.shape[1]
        if self.config.mode == "events":
            for s, e in self._seg.push(chunk):
                self._pending.append((self._n_events, int(s), int(e)))
                self._n_events += 1
        return self._emit(final=False)

    def flush(self) -> Sentence:
        """End of the signal: return the remaining tokens."""
        if self._done:
            return self._empty()
        if self.config.mode == "events":
            for s, e in self._seg.flush():
                self._pending.append((self._n_events, int(s), int(e)))
                self._n_events += 1
        out = self._emit(final=True)
        self._done = True
        return out

    def _open_event_start(self) -> int:
        """Earliest sample an event not yet emitted by the segmenter can start at."""
        return self._seg.pending_start

    def _empty(self) -> Sentence:
        return Sentence.empty(self.n_channels, self.L, rate=self.rate)

    def _emit(self, final: bool) -> Sentence:
        L, n = self.L, self._n
        parts = []
        if self.config.mode == "windows":
            starts = np.arange(self._next_window, n - L + 1, self.hop, dtype=np.int64)
            if starts.size:
                self._next_window = int(starts[-1]) + self.hop
                parts.append(windows_sentence(self._buf, self.rate, starts, L, self._buf_start))
            keep_from = self._next_window
        else:
            keep_from = n
            while self._pending:
                idx, s, e = self._pending[0]
                starts, _ = event_token_starts(np.array([s]), np.array([e]), L, self.hop,
                                               n if final else None)
                if not final and starts.size and starts.max() + L > n:
                    break  # a token centred on a short event needs samples not seen yet
                self._pending.pop(0)
                if starts.size and n >= L:
                    parts.append(events_sentence(self._buf, self.rate, starts,
                                                 np.zeros(starts.size, np.int64),
                                                 np.array([s]), np.array([e]),
                                                 L, self._buf_start))
                    parts[-1].event_index[:] = idx
            if self._pending:
                keep_from = min(keep_from, self._pending[0][1])
            keep_from = max(0, min(keep_from, self._open_event_start()) - L)
        drop = keep_from - self._buf_start
        if drop > 0:
            self._buf = self._buf[:, drop:]
            self._buf_start = keep_from
        if not parts:
            return self._empty()
        return Sentence.concat(parts, rate=self.rate)
