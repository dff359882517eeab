"""Energy envelope and contraction-event segmentation (NCT tokenizer, stage 1).

Pipeline, for a signal ``x`` of shape (C, T) at ``rate`` Hz:

1. **Envelope**: mean square over all channels in a trailing (causal) window of
   ``W = round(window_s * rate)`` samples, float64, in squared input units (see
   :mod:`aemg.tokenizer.segment_reference` for the exact arithmetic every backend reproduces).
2. **Noise level** (envelope units): the median envelope of a calibration (rest) segment when one
   is given, otherwise the ``noise_percentile``-th percentile of the recording's own envelope
   (robust: the quietest windows are taken as rest). Only full windows without non-finite samples
   count.
3. **Hysteresis**: ``on_level = noise * on_factor``, ``off_level = noise * off_factor``
   (``off <= on``). An event starts at the first sample whose envelope is ``> on_level`` and ends
   (exclusive) at the first later sample whose envelope is ``<= off_level``. Because the window
   trails, event ends lag the end of the activity by up to ``window_s``.
4. **Post-processing** on the raw events, in this order: events separated by a gap shorter than
   ``merge_gap_s`` are merged; events shorter than ``min_event_s`` are dropped; events longer
   than ``max_event_s`` are cut into consecutive pieces of exactly ``max_event_s`` from their
   start, and a last piece shorter than ``min_event_s`` is dropped. Every rule is causal with a
   bounded delay (``merge_gap_s``), so :class:`~aemg.tokenizer.stream.StreamingSegmenter` emits
   exactly the same events.

Backends (ops ``"envelope"`` and ``"segment"``, declared in :data:`aemg.backends.TABLE`):
``numpy`` (:mod:`aemg.tokenizer.segment_reference`), ``numba``
(:mod:`aemg.tokenizer.segment_numba`), ``cython`` (``aemg._ext.segment_cy`` from
csrc/segment_cy.pyx); all give bit-identical envelopes and event boundaries.

Bad input (documented behaviour):

- non-finite samples (NaN, inf): with ``nan_policy="raise"`` (default) a :class:`DataError` names
  the first one; with ``"zero"`` they count as zero energy and ``Events.n_nonfinite`` says how
  many there were (events may then contain them; check before making tokens).
- empty signal (T = 0): no events; levels 0 unless a noise level or calibration is given.
- all-zero / flat signal: noise level 0 gives threshold 0: any non-zero energy is an event, an
  all-zero signal has none. A constant (DC) signal has no events (its envelope equals its noise).
- no activity: no events. Clipping is not detected here (clipped samples still carry energy).
- integer input (int8/int16/...): squared in float64, no overflow.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import backends
from ..errors import ConfigError, DataError
from .segment_reference import KernelState

__all__ = ["SegmentParams", "Events", "noise_level", "energy_envelope", "detect_events",
           "postprocess_events", "seconds_to_samples"]

#: dtypes the kernels read directly; anything else is converted to float64 (exactly, for ints < 2**53)
KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int16), np.dtype(np.int8))
NAN_POLICIES = ("raise", "zero")


def seconds_to_samples(seconds: float, rate: float) -> int:
    """``round(seconds * rate)`` (halves round up), as an int."""
    return int(math.floor(seconds * rate + 0.5))


@dataclass(frozen=True)
class SegmentParams:
    """Segmentation parameters; all durations in seconds so they mean the same at every rate.

    Attributes
    ----------
    window_s : float
        Envelope window (trailing moving mean of squares over all channels), > 0. At least one
        sample is used.
    on_factor, off_factor : float
        Thresholds as multiples of the noise level, in envelope (power) units:
        ``on = noise * on_factor``, ``off = noise * off_factor``; ``0 <= off_factor <= on_factor``.
        The defaults (4 and 2) are 2x and 1.41x the rest RMS amplitude.
    min_event_s : float
        Shorter events (after merging) are dropped.
    merge_gap_s : float
        Events separated by a gap shorter than this are merged (0 disables merging).
    max_event_s : float or None
        Longer events are cut into pieces of exactly this length (None disables splitting);
        must be ``>= min_event_s``.
    noise_percentile : float
        Percentile (0-100) of the envelope taken as the noise level when there is no calibration.
    nan_policy : {"raise", "zero"}
        What non-finite samples do: raise :class:`~aemg.errors.DataError`, or count as zero energy.
    """

    window_s: float = 0.05
    on_factor: float = 4.0
    off_factor: float = 2.0
    min_event_s: float = 0.1
    merge_gap_s: float = 0.1
    max_event_s: float | None = 2.0
    noise_percentile: float = 10.0
    nan_policy: str = "raise"

    def __post_init__(self):
        def finite(name, v, lo=0.0, strict=False):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) \
                    or v < lo or (strict and v == lo):
                raise ConfigError(f"SegmentParams.{name}={v!r}: must be a finite number "
                                  f"{'>' if strict else '>='} {lo}")
        finite("window_s", self.window_s, strict=True)
        finite("on_factor", self.on_factor)
        finite("off_factor", self.off_factor)
        finite("min_event_s", self.min_event_s)
        finite("merge_gap_s", self.merge_gap_s)
        if self.max_event_s is not None:
            finite("max_event_s", self.max_event_s, strict=True)
            if self.max_event_s < self.min_event_s:
                raise ConfigError(f"SegmentParams.max_event_s={self.max_event_s}: must be >= "
                                  f"min_event_s={self.min_event_s}")
        if self.off_factor > self.on_factor:
            raise ConfigError(f"SegmentParams.off_factor={self.off_factor}: must be <= "
                              f"on_factor={self.on_factor} (hysteresis)")
        finite("noise_percentile", self.noise_percentile)
        if self.noise_percentile > 100:
            raise ConfigError(f"SegmentParams.noise_percentile={self.noise_percentile}: must be <= 100")
        if self.nan_policy not in NAN_POLICIES:
            raise ConfigError(f"SegmentParams.nan_policy={self.nan_policy!r}: choose from {NAN_POLICIES}")

    def samples(self, rate: float) -> tuple[int, int, int, int | None]:
        """``(window, min_event, merge_gap, max_event)`` in samples at ``rate`` Hz.

        ``window >= 1`` and ``max_event >= max(min_event, 1)``; ``max_event`` None when splitting is off.
        """
        window = max(1, seconds_to_samples(self.window_s, rate))
        min_len = seconds_to_samples(self.min_event_s, rate)
        gap = seconds_to_samples(self.merge_gap_s, rate)
        max_len = None if self.max_event_s is None else \
            max(1, min_len, seconds_to_samples(self.max_event_s, rate))
        return window, min_len, gap, max_len


@dataclass
class Events:
    """Contraction events of one signal.

    Attributes
    ----------
    starts : np.ndarray, shape (E,), int64
        First sample of each event (inclusive).
    ends : np.ndarray, shape (E,), int64
        One past the last sample (exclusive): event ``i`` is ``x[:, starts[i]:ends[i]]``.
    on_level, off_level, noise_level : float
        Thresholds and noise level in envelope units (mean square per channel-sample).
    rate : float
        Sampling rate, Hz.
    n_samples : int
        Length ``T`` of the segmented signal.
    n_nonfinite : int
        Non-finite samples that were counted as zero energy (``nan_policy="zero"``).
    """

    starts: np.ndarray
    ends: np.ndarray
    on_level: float
    off_level: float
    noise_level: float
    rate: float = 0.0
    n_samples: int = 0
    n_nonfinite: int = 0
    window: int = field(default=1)

    def __len__(self) -> int:
        return int(self.starts.size)

    def pairs(self) -> list[tuple[int, int]]:
        """Events as ``[(start, end), ...]`` sample indices (half-open)."""
        return list(zip(self.starts.tolist(), self.ends.tolist()))

    def durations_s(self) -> np.ndarray:
        """Event durations in seconds, shape (E,)."""
        return (self.ends - self.starts) / float(self.rate)


# ---------------------------------------------------------------------------------------------
# backends

def chunked_kernel(chunk_kernel):
    """Wrap a compiled resumable kernel ``segment_chunk`` (Numba or Cython) into the ``segment`` op
    contract (the ``wrap`` of those backends in :data:`aemg.backends.TABLE`)."""

    def segment(x: np.ndarray, state: KernelState, on_sum: float, off_sum: float):
        x = np.ascontiguousarray(x)
        bad0 = int(state.istate[3])
        parts, start, T = [], 0, x.shape[1]
        capacity = 1 << 16
        while True:
            cross = np.empty(capacity, dtype=np.int64)
            start, k = chunk_kernel(x, start, state.ring, state.fstate, state.istate,
                                    float(on_sum), float(off_sum), cross)
            parts.append(cross[:k])
            if start >= T:
                break
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return out, int(state.istate[3]) - bad0

    return segment


# ---------------------------------------------------------------------------------------------
# input checks

def as_signal(x, where: str) -> np.ndarray:
    """Validate a (C, T) real signal and return it in a dtype the kernels read."""
    try:
        arr = np.asarray(x)
    except Exception as exc:  # noqa: BLE001 - ragged lists and the like
        raise DataError(where, f"not an array: {exc}") from None
    if arr.ndim != 2:
        raise DataError(where, f"must be 2-D (channels, time), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(where, "has no channels")
    if arr.dtype.kind not in "fiu":
        raise DataError(where, f"must be real numbers (float or int), got dtype {arr.dtype}")
    if arr.dtype not in KERNEL_DTYPES:
        arr = arr.astype(np.float64)
    return arr


def check_rate(rate) -> float:
    try:
        r = float(rate)
    except (TypeError, ValueError):
        raise DataError("rate", f"must be a number of Hz, got {rate!r}") from None
    if not math.isfinite(r) or r <= 0:
        raise DataError("rate", f"must be a positive finite number of Hz, got {rate!r}")
    return r


def nonfinite_error(x: np.ndarray, where: str, n_bad: int) -> DataError:
    with np.errstate(over="ignore"):
        bad = ~(np.asarray(x, dtype=np.float64) ** 2 < np.inf)
    c, t = np.argwhere(bad)[0]
    return DataError(where, f"non-finite sample (NaN/inf, or too large to square) at channel {c + 1}, "
                            f"sample {t + 1} (1-based; {n_bad} in total); clean the signal or use "
                            f"SegmentParams(nan_policy='zero') to count them as zero energy")


def _valid_windows(x: np.ndarray, window: int) -> np.ndarray:
    """Mask (T,) of full windows (t >= W-1) holding only finite samples."""
    T = x.shape[1]
    with np.errstate(over="ignore"):
        bad = (~(np.asarray(x, dtype=np.float64) ** 2 < np.inf)).any(axis=0)
    nbad = np.concatenate(([0], np.cumsum(bad)))
    valid = np.zeros(T, dtype=bool)
    if T >= window:
        valid[window - 1:] = (nbad[window:] - nbad[:T - window + 1]) == 0
    return valid


# ---------------------------------------------------------------------------------------------
# public API

def energy_envelope(x, rate: float, window_s: float, *, per_channel: bool = False,
                    nan_policy: str = "raise", backend: str | None = None) -> np.ndarray:
    """Energy envelope: trailing moving mean of squares.

    Parameters
    ----------
    x : array_like, shape (C, T)
        Signal, channels x time; float32/float64/int16/int8 are read directly, other real dtypes
        are converted to float64. Any strides.
    rate : float
        Sampling rate, Hz.
    window_s : float
        Window length, seconds (``W = max(1, round(window_s * rate))`` samples). Before the first
        sample the signal counts as zero (the first ``W - 1`` values ramp up).
    per_channel : bool
        False: mean over channels and window, shape (T,). True: per channel, shape (C, T).
    nan_policy : {"raise", "zero"}
        Non-finite samples raise :class:`DataError`, or count as zero energy.
    backend : str, optional
        ``"numpy"``, ``"numba"`` or ``"cython"``; default: the fastest available.

    Returns
    -------
    np.ndarray, float64, shape (T,) or (C, T)
        Mean square in squared input units.
    """
    x = as_signal(x, "x")
    rate = check_rate(rate)
    if not (isinstance(window_s, (int, float)) and math.isfinite(window_s) and window_s > 0):
        raise ConfigError(f"window_s={window_s!r}: must be a positive number of seconds")
    if nan_policy not in NAN_POLICIES:
        raise ConfigError(f"nan_policy={nan_policy!r}: choose from {NAN_POLICIES}")
    window = max(1, seconds_to_samples(window_s, rate))
    env, n_bad = backends.get("envelope", backend)(x, window, bool(per_channel))
    if n_bad and nan_policy == "raise":
        raise nonfinite_error(x, "x", n_bad)
    return env


def noise_level(x, rate: float, params: SegmentParams = SegmentParams(), *, calibration=None,
                backend: str | None = None) -> float:
    """Noise level in envelope units (mean square per channel-sample).

    Parameters
    ----------
    x : array_like, shape (C, T)
        The signal (used when there is no calibration; otherwise only its channel count).
    rate : float
        Sampling rate, Hz.
    params : SegmentParams
        ``window_s``, ``noise_percentile`` and ``nan_policy`` are used.
    calibration : array_like, shape (C, Tc), optional
        A rest segment of the same channels; its median envelope is the noise level.

    Returns
    -------
    float
        ``>= 0``. Only full windows with finite samples count; when there is none (a signal
        shorter than the window) the mean square of the finite samples is used.

    Raises
    ------
    DataError
        No finite sample to estimate from; non-finite samples under ``nan_policy="raise"``.
    """
    x = as_signal(x, "x")
    rate = check_rate(rate)
    where, q, src = "x", params.noise_percentile, x
    if calibration is not None:
        src = as_signal(calibration, "calibration")
        where, q = "calibration", 50.0
        if src.shape[0] != x.shape[0]:
            raise DataError("calibration", f"has {src.shape[0]} channels but the signal has {x.shape[0]}")
    window = params.samples(rate)[0]
    env, n_bad = backends.get("envelope", backend)(src, window, False)
    if n_bad and params.nan_policy == "raise":
        raise nonfinite_error(src, where, n_bad)
    if n_bad:
        valid = _valid_windows(src, window)
    else:
        valid = np.zeros(env.size, dtype=bool)
        valid[window - 1:] = True
    if valid.any():
        return float(np.percentile(env[valid], q))
    from .segment_reference import squares
    sq, n_bad = squares(src)
    n_ok = sq.size - n_bad
    if n_ok == 0:
        raise DataError(where, f"no finite samples to estimate the noise level from (shape {src.shape})")
    return float(sq.sum() / n_ok)


def postprocess_events(starts: np.ndarray, ends: np.ndarray, merge_gap: int, min_len: int,
                       max_len: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Merge short gaps, drop short events, split long ones (all in samples; vectorised).

    Parameters
    ----------
    starts, ends : np.ndarray, shape (E,), int64
        Raw events, sorted and disjoint, half-open.
    merge_gap : int
        Events whose gap ``next start - end`` is ``< merge_gap`` are merged.
    min_len : int
        Events shorter than this (after merging) are dropped.
    max_len : int or None
        Events longer than this become pieces ``[s + k*max_len, min(s + (k+1)*max_len, end))``;
        a last piece shorter than ``min_len`` is dropped.

    Returns
    -------
    starts, ends : np.ndarray, int64
    """
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if starts.size > 1 and merge_gap > 0:
        first = np.flatnonzero(np.concatenate(([True], starts[1:] - ends[:-1] >= merge_gap)))
        last = np.concatenate((first[1:] - 1, [starts.size - 1]))
        starts, ends = starts[first], ends[last]
    keep = ends - starts >= min_len
    starts, ends = starts[keep], ends[keep]
    if max_len is not None and starts.size and (ends - starts).max() > max_len:
        pieces = -(-(ends - starts) // max_len)
        group_start = np.repeat(np.cumsum(pieces) - pieces, pieces)
        k = np.arange(group_start.size, dtype=np.int64) - group_start
        ps = np.repeat(starts, pieces) + k * max_len
        pe = np.minimum(ps + max_len, np.repeat(ends, pieces))
        keep = pe - ps >= min_len
        starts, ends = ps[keep], pe[keep]
    return starts, ends


def thresholds(noise: float, params: SegmentParams) -> tuple[float, float]:
    """``(on_level, off_level)`` in envelope units for a validated noise level."""
    return noise * params.on_factor, noise * params.off_factor


def check_noise(noise) -> float:
    """Validate a given noise level (finite, >= 0)."""
    try:
        v = float(noise)
    except (TypeError, ValueError):
        raise ConfigError(f"noise={noise!r}: must be a number (envelope units)") from None
    if not math.isfinite(v) or v < 0:
        raise ConfigError(f"noise={noise!r}: must be a finite number >= 0 (envelope units)")
    return v


def detect_events(x, rate: float, params: SegmentParams = SegmentParams(), *, calibration=None,
                  noise: float | None = None, backend: str | None = None) -> Events:
    """Contraction events: fused envelope + hysteresis, then merge / min duration / split.

    Parameters
    ----------
    x : array_like, shape (C, T)
        Signal, channels x time (any real dtype, any strides).
    rate : float
        Sampling rate, Hz.
    params : SegmentParams
    calibration : array_like, shape (C, Tc), optional
        Rest segment for the noise level (see :func:`noise_level`); ignored when ``noise`` is given.
    noise : float, optional
        Noise level in envelope units (e.g. from an earlier calibration); overrides the estimate.
    backend : str, optional
        ``"numpy"``, ``"numba"`` or ``"cython"`` (default: the fastest available).

    Returns
    -------
    Events
    """
    x = as_signal(x, "x")
    rate = check_rate(rate)
    C, T = x.shape
    window, min_len, gap, max_len = params.samples(rate)
    if noise is not None:
        noise = check_noise(noise)
    elif calibration is not None or T > 0:
        noise = noise_level(x, rate, params, calibration=calibration, backend=backend)
    else:
        noise = 0.0  # empty signal, nothing to estimate from: no events anyway
    on_level, off_level = thresholds(noise, params)
    state = KernelState(window)
    flips, n_bad = backends.get("segment", backend)(x, state, on_level * (C * window),
                                                    off_level * (C * window))
    if n_bad and params.nan_policy == "raise":
        raise nonfinite_error(x, "x", n_bad)
    starts, ends = flips[0::2], flips[1::2]
    if ends.size < starts.size:  # still active at the end: the event closes with the signal
        ends = np.concatenate((ends, [T])).astype(np.int64)
    starts, ends = postprocess_events(starts, ends, gap, min_len, max_len)
    return Events(starts, ends, on_level, off_level, noise, rate=rate, n_samples=T,
                  n_nonfinite=n_bad, window=window)
