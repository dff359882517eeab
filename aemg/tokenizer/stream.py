"""Streaming segmentation: feed chunks as they arrive (e.g. from a live armband).

:class:`StreamingSegmenter` carries the kernel state (prefix sum, window ring, hysteresis state)
across chunks and applies the post-processing of :func:`~aemg.tokenizer.segment.detect_events`
causally. Given the same noise level it emits exactly the events of ``detect_events`` on the
concatenated signal, whatever the chunk sizes. Delays: an event is emitted ``merge_gap_s`` after
its end (it may still merge with a following one); the pieces of an event longer than
``max_event_s`` are emitted as soon as each is complete.
"""
from __future__ import annotations

import numpy as np

from .. import backends
from ..errors import DataError
from .segment_reference import KernelState
from .segment import (SegmentParams, _as_signal, _check_rate, _nonfinite_error, check_noise,
                      noise_level, thresholds)

__all__ = ["StreamingSegmenter", "EventAssembler"]


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
        self.rate = _check_rate(rate)
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
        cal = _as_signal(calibration, "calibration")
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
        x = _as_signal(chunk, "chunk")
        if x.shape[0] != self.n_channels:
            raise DataError("chunk", f"has {x.shape[0]} channels, expected {self.n_channels}")
        if self.params.nan_policy == "raise" and x.dtype.kind == "f":
            with np.errstate(over="ignore"):
                n_bad = int(np.count_nonzero(~(x.astype(np.float64) ** 2 < np.inf)))
            if n_bad:  # checked first so that the state is untouched
                err = _nonfinite_error(x, "chunk", n_bad)
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
