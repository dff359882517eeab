"""Rectification: any recording -> the standard input space.

Steps (each a public function, tested on its own), all linear so their order is chosen for speed:

1. :func:`resample_irregular` for irregularly logged data (``Recording.times`` set), else
   :func:`resample` (polyphase, rational approximation of the rate ratio) to ``space.rate``;
   downsampling happens *before* filtering and upsampling *after* it, so the filters always run at
   the lower of the two rates.
2. :func:`bandpass` (zero-phase Butterworth) and :func:`notch` (zero-phase power-line notches at
   the fundamental and its harmonics) -- fused into one second-order-section cascade and one
   ``sosfiltfilt`` pass in :func:`rectify`. The band's upper edge is clipped to 0.9 x the Nyquist
   frequency of the lower of (device rate, standard rate).
3. :func:`aemg.data.topology.map_topology` onto ``space.channels`` virtual electrodes (done first
   when it reduces the channel count, last otherwise).
4. Amplitude: a single gain per recording (:func:`amplitude_gain`), by default ``1 / noise floor``
   of the *dataset* (:func:`estimate_amplitude_scale`), so amplitudes are in multiples of the
   device's resting noise level: int8 counts, ADC counts and volts become comparable while the
   rest-vs-contraction difference of each trial is kept (see docs/notes/rectify.md).

``python scripts/measure_rate.py`` re-runs the measurement that chose the standard rate
(:func:`power_above` on 3DC).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np

from .. import backends
from .._config import dataclass_from_dict
from ..errors import ConfigError, DataError
from .designs import cached_design, scipy_signal
from .devices import Device, known_devices
from .recording import Recording
from .topology import topology_matrix

AMPLITUDE_MODES = ("noise_floor", "recording", "none")
NOTCH_MODES = ("detect", "all", "off")
_NYQUIST_MARGIN = 0.9  # band upper edge at most this fraction of the Nyquist frequency
#: seconds at the start of a recording that ``notch_mode="detect"`` looks at
LINE_EXCERPT_S = 10.0
#: arithmetic of the resampler, the filter cascade and the topology product (see :func:`rectify`)
PRECISIONS = ("float32", "float64")
DEFAULT_PRECISION = "float32"


@dataclass(frozen=True)
class StandardSpace:
    """The standard input space every recording is rectified into (stored in archives).

    Attributes
    ----------
    rate : float
        Sampling rate, Hz. At 500 Hz the 1 kHz 3DC recordings lose a median 5.6 % of their 20-500 Hz
        power (200 Hz would lose 33 %; figures in docs/notes/rectify.md).
    channels : int
        Number of virtual electrodes on the standard ring.
    band : (float, float)
        Zero-phase Butterworth band-pass edges, Hz; the upper edge is clipped to 0.9 x the Nyquist
        frequency of the lower of (device rate, ``rate``).
    filter_order : int
        Butterworth order per edge (the zero-phase response is its square).
    notch : tuple of float
        Candidate power-line fundamentals, Hz. Harmonics below 0.9 x Nyquist are notched too.
    notch_mode : str
        ``"detect"``: notch the candidate whose spectral line stands out most (peak / neighbourhood
        power ratio >= ``notch_min_ratio``), nothing if none does; ``"all"``: notch every
        candidate; ``"off"``: no notch.
    notch_q : float
        Quality factor of each notch (bandwidth = f / Q).
    notch_min_ratio : float
        Detection threshold for ``"detect"``.
    amplitude : str
        ``"noise_floor"``: divide by the dataset noise floor passed as ``amplitude_scale`` (from
        :func:`estimate_amplitude_scale`), or by the recording's own noise floor when none is
        passed; ``"recording"``: always the recording's own noise floor; ``"none"``: gain 1.
    floor_window_s : float
        Moving-RMS window of the noise-floor estimate, seconds.
    floor_percentile : float
        Percentile of the moving RMS taken as the noise floor.
    """

    rate: float = 500.0
    channels: int = 16
    band: tuple[float, float] = (20.0, 450.0)
    filter_order: int = 4
    notch: tuple[float, ...] = (50.0, 60.0)
    notch_mode: str = "detect"
    notch_q: float = 30.0
    notch_min_ratio: float = 4.0
    amplitude: str = "noise_floor"
    floor_window_s: float = 0.1
    floor_percentile: float = 5.0

    def __post_init__(self):
        object.__setattr__(self, "band", tuple(float(b) for b in self.band))
        object.__setattr__(self, "notch", tuple(float(f) for f in self.notch))
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ConfigError(f"standard space: rate must be > 0 Hz, got {self.rate!r}")
        if int(self.channels) < 1:
            raise ConfigError(f"standard space: channels must be >= 1, got {self.channels!r}")
        if len(self.band) != 2 or not (0 <= self.band[0] < self.band[1]):
            raise ConfigError(f"standard space: band must be (lo, hi) with 0 <= lo < hi, got {self.band}")
        if any(f <= 0 for f in self.notch):
            raise ConfigError(f"standard space: notch frequencies must be > 0, got {self.notch}")
        if self.notch_mode not in NOTCH_MODES:
            raise ConfigError(f"standard space: notch_mode {self.notch_mode!r} not in {NOTCH_MODES}")
        if self.amplitude not in AMPLITUDE_MODES:
            raise ConfigError(f"standard space: amplitude {self.amplitude!r} not in {AMPLITUDE_MODES}")
        if self.filter_order < 1 or self.notch_q <= 0 or self.floor_window_s <= 0:
            raise ConfigError("standard space: filter_order, notch_q and floor_window_s must be positive")
        if not 0 <= self.floor_percentile <= 100:
            raise ConfigError(f"standard space: floor_percentile must be in [0, "
                              f"100], got {self.floor_percentile}")

    def to_dict(self) -> dict:
        """JSON-serialisable form (inverse: :meth:`from_dict`); a new dict each call."""
        d = dict(_space_fields(self))
        d["band"], d["notch"] = list(self.band), list(self.notch)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "StandardSpace":
        return dataclass_from_dict(cls, d, "standard space")  # ConfigError naming unknown keys

    @property
    def device(self) -> Device:
        return standard_device(self.channels)


@lru_cache(maxsize=64)
def _topology(device: Device, n_virtual: int) -> np.ndarray:
    """:func:`~aemg.data.topology.topology_matrix`, cached per device (read-only)."""
    W = topology_matrix(device, n_virtual)
    W.setflags(write=False)
    return W


@lru_cache(maxsize=64)
def _topology32(device: Device, n_virtual: int) -> np.ndarray:
    """:func:`_topology` as float32 (the float32 path's topology product), cached (read-only)."""
    W = _topology(device, n_virtual).astype(np.float32)
    W.setflags(write=False)
    return W


#: the filter ops' implementations chosen once for a run (:func:`pin_backends`); empty: each call
#: asks :func:`aemg.backends.get` (~7 us a call: it reads the environment for its cache key)
_PINNED: dict[str, object] = {}
_FILTER_OPS = ("sosfiltfilt", "resample_poly", "sosfiltfilt32", "resample_poly32")


def pin_backends() -> None:
    """Choose the filter ops' backends now (:func:`aemg.backends.get`, so ``AEMG_BACKEND*`` and
    :func:`aemg.backends.use` as they are at this moment) and use them for every later call that
    passes no ``backend=``, until :func:`unpin_backends`. Called where a run sets up its workers
    (:mod:`aemg.data.pipeline`): a run uses one set of kernels, looked up once, not per recording.
    An op whose lookup fails (a requested backend that does not load, ``AEMG_STRICT`` without the
    extension) stays unpinned: its calls raise as before, and only if the run uses that op."""
    _PINNED.clear()
    for op in _FILTER_OPS:
        try:
            _PINNED[op] = backends.get(op)
        except Exception:  # noqa: BLE001 - raised again by the op's own lookup where it is used
            pass


def unpin_backends() -> None:
    """Undo :func:`pin_backends`: each call chooses its backend again."""
    _PINNED.clear()


def _kernel(op: str, backend: str | None = None):
    """The implementation of filter op ``op``: ``backend``'s when one is named, else the pinned
    one, else :func:`aemg.backends.get`'s."""
    impl = _PINNED.get(op) if backend is None else None
    return impl if impl is not None else backends.get(op, backend)


def check_precision(precision: str, where: str = "precision") -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else ConfigError naming ``where``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"{where}: {precision!r} is not one of {', '.join(PRECISIONS)}")
    return precision


@lru_cache(maxsize=32)
def _space_fields(space: StandardSpace) -> dict:
    return asdict(space)  # only scalars and tuples: the caller's shallow copy is safe


def standard_device(n: int = 16) -> Device:
    """The standard ring of ``n`` virtual electrodes (registered ``"standard16"`` for 16)."""
    name = f"standard{n}"
    reg = known_devices()
    return reg[name] if name in reg else Device.ring(n, name=name)


# -- array helpers --------------------------------------------------------------------------------

def _as_float64(x, where: str = "x") -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise DataError(where, f"expected a 2-D array (channels, time), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(where, f"expected real numbers, got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.size and not np.isfinite(x).all():
        c, t = np.argwhere(~np.isfinite(x))[0]
        raise DataError(where, f"non-finite value (NaN or inf) at channel {c + 1}, sample {t + 1} (1-based)")
    return x


def _check_rate(rate, where: str = "rate") -> float:
    rate = float(rate)
    if not (math.isfinite(rate) and rate > 0):
        raise DataError(where, f"sampling rate must be a positive number of Hz, got {rate!r}")
    return rate


def sosfiltfilt_reference(sos: np.ndarray, x: np.ndarray, padlen: int, zi: np.ndarray | None = None,
                          dtype=np.float64) -> np.ndarray:
    """Readable reference of the ``"sosfiltfilt"`` op: SciPy's float64 ``sosfiltfilt`` along time.

    Parameters
    ----------
    sos : array, shape (S, 6)
        Second-order sections (a0 = 1).
    x : array, shape (C, T)
        Samples, any real dtype and layout (converted to float64).
    padlen : int
        Odd-extension length at both ends, in [0, T - 1].
    zi : ignored
        The compiled backends take ``sosfilt_zi(sos).ravel()`` precomputed; SciPy computes its own.
    dtype : np.float64 or np.float32
        Output dtype (the computation is float64 either way).

    Returns
    -------
    np.ndarray, shape (C, T), ``dtype``
    """
    y = scipy_signal().sosfiltfilt(np.array(sos, dtype=np.float64), np.asarray(x, dtype=np.float64),
                                   axis=-1, padlen=padlen)
    return y.astype(dtype, copy=False)


def sosfiltfilt_entry(sosfiltfilt_into):
    """The ``sosfiltfilt`` op around the compiled ``aemg._ext.filt_cy.sosfiltfilt_into`` (the
    ``wrap`` of that backend in :data:`aemg.backends.TABLE`)."""

    def sosfiltfilt_cython(sos, x, padlen, zi=None, dtype=np.float64):
        sos = np.ascontiguousarray(sos, dtype=np.float64)
        zi = _sos_zi(sos) if zi is None else np.ascontiguousarray(zi, dtype=np.float64)
        if x.dtype not in (np.int16, np.float32, np.float64):
            x = x.astype(np.float64)
        out = np.empty(x.shape, dtype=dtype)
        sosfiltfilt_into(x, sos, zi, int(padlen), out)
        return out

    return sosfiltfilt_cython


def _sos_zi(sos: np.ndarray) -> np.ndarray:
    """``sosfilt_zi(sos).ravel()`` (the step-response initial state of each section), cached."""
    return _sos_design(sos)[0]


def _sos_design(sos: np.ndarray) -> tuple[np.ndarray, int]:
    """(``sosfilt_zi(sos).ravel()``, SciPy's tap count for the default padding), cached by value."""
    return _sos_design_cached(np.ascontiguousarray(sos, dtype=np.float64).tobytes())


@lru_cache(maxsize=256)
def _sos_design_cached(key: bytes) -> tuple[np.ndarray, int]:
    sos = np.frombuffer(key, dtype=np.float64).reshape(-1, 6)
    zi = cached_design("sosfilt_zi", (key,), np.float64, lambda: scipy_signal().sosfilt_zi(sos).ravel())
    ntaps = 2 * sos.shape[0] + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    return zi, ntaps


def sosfiltfilt32_reference(sos: np.ndarray, x: np.ndarray, padlen: int, zi: np.ndarray | None = None
                            ) -> np.ndarray:
    """Readable reference of the ``"sosfiltfilt32"`` op (the float32 path): SciPy's ``sosfiltfilt``
    of the samples as float32 with the sections rounded to float32, i.e. SciPy's own float32
    computation (``sosfilt_zi`` of the float32 sections, odd extension and both passes in float32).

    ``sos`` (S, 6), ``x`` (C, T) any real dtype and layout, ``padlen`` in [0, T - 1]; ``zi`` ignored
    (SciPy computes its own). Returns (C, T) float32.
    """
    y = scipy_signal().sosfiltfilt(np.asarray(sos, dtype=np.float32), np.asarray(x, dtype=np.float32),
                                   axis=-1, padlen=padlen)
    assert y.dtype == np.float32
    return y


def sosfiltfilt32_entry(sosfiltfilt32_into):
    """The ``sosfiltfilt32`` op around the compiled ``aemg._ext.filt_cy.sosfiltfilt32_into``."""

    def sosfiltfilt32_cython(sos, x, padlen, zi=None):
        sos32, zi32, _ = _sos_design32(sos)
        if x.dtype not in (np.int16, np.float32, np.float64):
            x = x.astype(np.float32)
        out = np.empty(x.shape, dtype=np.float32)
        sosfiltfilt32_into(x, sos32, zi32 if zi is None else np.ascontiguousarray(zi, np.float32),
                           int(padlen), out)
        return out

    return sosfiltfilt32_cython


def _sos_design32(sos: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(float32 sections, their ``sosfilt_zi`` ravelled as SciPy computes it for float32 sections,
    tap count), cached by value."""
    return _sos_design32_cached(np.ascontiguousarray(sos, dtype=np.float64).tobytes())


@lru_cache(maxsize=256)
def _sos_design32_cached(key: bytes) -> tuple[np.ndarray, np.ndarray, int]:
    sos = np.frombuffer(key, dtype=np.float64).reshape(-1, 6).astype(np.float32)
    zi = cached_design("sosfilt_zi32", (key,), np.float32, lambda: scipy_signal().sosfilt_zi(sos).ravel())
    sos.setflags(write=False)
    return sos, zi, _sos_design_cached(key)[1]


def zero_phase32(sos: np.ndarray, x, *, backend: str | None = None) -> np.ndarray:
    """:func:`zero_phase` on the float32 path: (C, T) any real dtype -> (C, T) float32, SciPy's
    float32 ``sosfiltfilt`` (op ``"sosfiltfilt32"``; the compiled backend is bit-identical to it)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise DataError("x", f"expected a 2-D array (channels, time), got shape {x.shape}")
    if x.shape[1] == 0 or sos.shape[0] == 0:
        return x.astype(np.float32)
    impl = _kernel("sosfiltfilt32", backend)
    ntaps = _sos_design(sos)[1]
    return impl(sos, x, max(0, min(3 * ntaps, x.shape[1] - 1)))


def zero_phase(sos: np.ndarray, x, *, dtype=np.float64, backend: str | None = None) -> np.ndarray:
    """Zero-phase filtering of ``x`` (C, T) along time by the cascade ``sos`` (S, 6), as SciPy's
    ``sosfiltfilt`` with its default padding; recordings shorter than that padding get a shorter pad
    (``T - 1`` samples), with the edge transients that implies, instead of an error.

    The ``"sosfiltfilt"`` op of :mod:`aemg.backends`: ``"scipy"`` (reference) or ``"cython"``
    (bit-identical in float64; reads int16/float32/float64 of any layout without a copy).
    ``dtype=np.float32`` rounds the float64 result once (within 0.5 float32 ulp of the reference).

    Returns (C, T) ``dtype``; NaN/inf propagate as in SciPy (callers reject them first).
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise DataError("x", f"expected a 2-D array (channels, time), got shape {x.shape}")
    if x.shape[1] == 0 or sos.shape[0] == 0:
        return x.astype(dtype)
    impl = _kernel("sosfiltfilt", backend)
    zi, ntaps = _sos_design(sos)
    return impl(sos, x, max(0, min(3 * ntaps, x.shape[1] - 1)), zi, dtype)


def _filtfilt(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """:func:`zero_phase` in float64 (the pipeline's internal precision)."""
    return zero_phase(sos, x)


@lru_cache(maxsize=128)
def _band_sos(rate: float, lo: float | None, hi: float | None, order: int) -> np.ndarray:
    nyq = rate / 2
    lo = lo if lo and lo > 0 else None
    hi = hi if hi is not None and hi < nyq else None
    if lo is not None and lo >= nyq:
        raise DataError("bandpass", f"low edge {lo} Hz is not below the Nyquist frequency {nyq:g} Hz")
    if lo is not None and hi is not None and lo >= hi:
        raise DataError("bandpass", f"low edge {lo} Hz is not below the high edge {hi} Hz")
    if lo is None and hi is None:
        return _no_sections()
    if lo is None:
        btype, edges = "lowpass", hi
    elif hi is None:
        btype, edges = "highpass", lo
    else:
        btype, edges = "bandpass", [lo, hi]
    # read-only, from the disk cache after the first time (no scipy.signal import)
    return cached_design("butter", (float(rate), btype, repr(edges), int(order)), np.float64,
                         lambda: scipy_signal().butter(order, edges, btype, fs=rate, output="sos"))


@lru_cache(maxsize=128)
def _cascade(rate: float, lo: float, hi: float, order: int, notches: tuple[float, ...],
             q: float) -> np.ndarray:
    """Band-pass then notch sections stacked (S, 6), cached (read-only)."""
    sos = np.vstack([_band_sos(rate, lo, hi, order), _notch_sos(rate, notches, q)])
    sos.setflags(write=False)
    return sos


def _notch_sos(rate: float, freqs: Iterable[float], q: float) -> np.ndarray:
    return _notch_sos_cached(float(rate), tuple(float(f) for f in freqs), float(q))


@lru_cache(maxsize=128)
def _notch_sos_cached(rate: float, freqs: tuple[float, ...], q: float) -> np.ndarray:
    freqs = tuple(f for f in freqs if 0 < f < rate / 2)
    if not freqs:
        return _no_sections()

    def design():
        sig = scipy_signal()
        return np.vstack([sig.tf2sos(*sig.iirnotch(f, q, fs=rate)) for f in freqs])
    return cached_design("notch", (rate, freqs, q), np.float64, design)


def _no_sections() -> np.ndarray:
    """An empty (0, 6) cascade, read-only (cached results are shared between calls)."""
    sos = np.zeros((0, 6))
    sos.setflags(write=False)
    return sos


@lru_cache(maxsize=64)
def _polyphase_fir(up: int, down: int) -> np.ndarray:
    """The anti-aliasing FIR ``resample_poly`` designs by default (Kaiser, beta 5), cached."""
    max_rate = max(up, down)
    # read-only (resample_poly copies it), from the disk cache after the first time
    return cached_design("firwin_kaiser5", (up, down), np.float64, lambda: scipy_signal().firwin(
        2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0)))


# -- public steps -------------------------------------------------------------------------------

def bandpass(x, rate: float, lo: float | None, hi: float | None, *, order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth band-pass (``sosfiltfilt``).

    Parameters
    ----------
    x : array, shape (C, T)
        Samples, any real dtype and layout.
    rate : float
        Sampling rate, Hz.
    lo, hi : float or None
        Edges, Hz. ``lo`` None/0 gives a low-pass, ``hi`` None or >= Nyquist a high-pass.
    order : int
        Butterworth order (the zero-phase magnitude response is its square).

    Returns
    -------
    np.ndarray, shape (C, T), float32
        Recordings shorter than the filter's padding are padded less (edge transients), never refused.
    """
    rate = _check_rate(rate)
    x = _as_float64(x)
    return _filtfilt(_band_sos(rate, lo, hi, order), x).astype(np.float32)


def notch(x, rate: float, freqs: Sequence[float], *, q: float = 30.0) -> np.ndarray:
    """Zero-phase IIR notches (``iirnotch``, quality ``q``) at each of ``freqs`` Hz.

    Frequencies at or above the Nyquist frequency are skipped. Returns (C, T) float32.
    """
    rate = _check_rate(rate)
    x = _as_float64(x)
    return _filtfilt(_notch_sos(rate, freqs, q), x).astype(np.float32)


def line_harmonics(fundamental: float, limit: float) -> list[float]:
    """The fundamental and its harmonics strictly below ``limit`` Hz."""
    if fundamental <= 0:
        return []
    return [fundamental * k for k in range(1, int(limit / fundamental) + 1) if fundamental * k < limit]


@lru_cache(maxsize=32)
def _hann(n: int, dtype: str = "float64") -> np.ndarray:
    return cached_design("hann", (n,), dtype, lambda: scipy_signal().get_window("hann", n))


def welch_channel_sum(x: np.ndarray, rate: float, nper: int,
                      bins: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
    """Welch PSD summed over channels: ``signal.welch(x, rate, nperseg=nper)`` (periodic Hann,
    half-overlapping segments, per-segment mean removed, density scaling, one-sided) then
    ``.sum(axis=0)``, without SciPy's per-call set-up (equal to it within float64 rounding).

    A float32 ``x`` (the float32 path) is windowed and transformed in float32 (``scipy.fft``,
    about 2.5x faster than NumPy's float64 FFT here); float64 is computed as before.

    Parameters
    ----------
    x : np.ndarray, shape (C, T), float64 or float32, T >= nper
    rate : float
        Hz.
    nper : int
        Segment length, samples.
    bins : slice
        Frequency bins wanted (each is computed exactly as with all of them).

    Returns
    -------
    f : np.ndarray, shape (nper // 2 + 1,)[bins], Hz
    p : np.ndarray, same shape, power density summed over channels
    """
    f32 = x.dtype == np.float32
    win = _hann(nper, "float32" if f32 else "float64")
    step = nper - nper // 2
    n_seg = (x.shape[1] - nper) // step + 1
    # the periodic Hann window's spectrum is zero beyond bin 1, so removing each segment's mean
    # changes no wanted bin from bin 2 on (beyond float64 rounding): one pass less
    keep_mean = (bins.start or 0) >= 2
    if keep_mean and nper % 2 == 0:
        # segments overlap by half: the windowed segments are the signal's halves times the
        # window's halves (two products, the same values as segment * window)
        halves = x[:, : (n_seg + 1) * step].reshape(x.shape[0], n_seg + 1, step)
        seg = np.empty((x.shape[0], n_seg, nper), win.dtype)
        np.multiply(halves[:, :-1], win[:step], out=seg[..., :step])
        np.multiply(halves[:, 1:], win[step:], out=seg[..., step:])
    else:
        # the half-overlapping segments as a strided view (sliding_window_view's set-up costs
        # more than the FFT of a short recording); the same values and operations as signal.welch's
        seg = np.lib.stride_tricks.as_strided(x, shape=(x.shape[0], n_seg, nper),
                                              strides=(x.strides[0], step * x.strides[1], x.strides[1]),
                                              writeable=False)
        if keep_mean:
            seg = seg * win
        else:
            seg = seg - np.add.reduce(seg, axis=-1, keepdims=True) / nper
            seg *= win
    spec = (_scipy_fft().rfft(seg, axis=-1) if f32 else np.fft.rfft(seg, axis=-1))[..., bins]
    power = spec.real ** 2 + spec.imag ** 2
    p = (np.add.reduce(power, axis=1) / n_seg).sum(axis=0, dtype=np.float64) / (rate * float(win @ win))
    f = _rfftfreq(nper, float(rate))
    return f[bins], p * _one_sided(nper)[bins]


@lru_cache(maxsize=32)
def _one_sided(nper: int) -> np.ndarray:
    """The one-sided density factors of an ``nper``-point real FFT: 2 for every bin but DC (and
    Nyquist for even ``nper``)."""
    w = np.ones(nper // 2 + 1)
    w[1: (nper + 1) // 2] = 2.0
    w.setflags(write=False)
    return w


@lru_cache(maxsize=1)
def _scipy_fft():
    import scipy.fft
    return scipy.fft


def _median(v: np.ndarray) -> float:
    """``np.median`` of a small 1-D array (same value: the middle one, or the mean of the two
    middle ones computed as ``(a + b) / 2``), without its per-call overhead."""
    s = np.sort(v)
    n = s.size
    return float(s[n // 2]) if n % 2 else float((s[n // 2 - 1] + s[n // 2]) / 2.0)


@lru_cache(maxsize=32)
def _rfftfreq(nper: int, rate: float) -> np.ndarray:
    f = np.fft.rfftfreq(nper, 1.0 / rate)
    f.setflags(write=False)
    return f


def detect_line_frequency(x, rate: float, candidates: Sequence[float] = (50.0, 60.0), *,
                          min_ratio: float = 4.0, max_seconds: float = LINE_EXCERPT_S) -> float | None:
    """Which power-line fundamental shows in ``x``, if any.

    For each candidate below Nyquist: Welch PSD (0.5 Hz bins, at most ``max_seconds`` of signal),
    summed over channels; ratio of the peak power within +-1 Hz of the line to the median power
    3-8 Hz away on both sides. Returns the candidate with the largest ratio if it is at least
    ``min_ratio``, else None.
    """
    rate = _check_rate(rate)
    x = _as_float64(x[:, : int(max_seconds * rate)] if np.ndim(x) == 2 else x)
    return _detect_line(x, rate, candidates, min_ratio)


def _detect_line(x: np.ndarray, rate: float, candidates: Sequence[float], min_ratio: float) -> float | None:
    """:func:`detect_line_frequency` of a checked excerpt: (C, T) float64 (or float32: the float32
    path's spectrum), finite, any layout."""
    nper = min(x.shape[1], int(2 * rate))
    if nper < 16:
        return None
    bins, tests = _line_plan(nper, float(rate), tuple(float(f0) for f0 in candidates))
    if not tests:
        return None
    _, p = welch_channel_sum(x, rate, nper, bins)
    best, best_ratio = None, min_ratio
    for f0, peak, side in tests:
        ratio = p[peak].max() / max(_median(p[side]), 1e-300)
        if ratio >= best_ratio:
            best, best_ratio = f0, ratio
    return best


@lru_cache(maxsize=64)
def _line_plan(nper: int, rate: float, candidates: tuple[float, ...]) -> tuple[slice, tuple]:
    """The Welch bins :func:`_detect_line` needs (only those within 8 Hz of a candidate are
    computed) and, per candidate below Nyquist, ``(f0, peak bins (+-1 Hz), side bins (3-8 Hz
    away))`` as indices into them; cached per (segment length, rate, candidates)."""
    df = rate / nper
    lo_f = min(candidates, default=0.0) - 8.0
    hi_f = max(candidates, default=0.0) + 8.0
    bins = slice(max(0, int(math.floor(lo_f / df)) - 1), int(math.ceil(hi_f / df)) + 2)
    f = _rfftfreq(nper, rate)[bins]
    tests = []
    for f0 in candidates:
        if f0 + 8 >= rate / 2:
            continue
        peak = np.flatnonzero(np.abs(f - f0) <= 1.0)
        side = np.flatnonzero((np.abs(f - f0) >= 3.0) & (np.abs(f - f0) <= 8.0))
        if peak.size and side.size:
            tests.append((f0, peak, side))
    return bins, tuple(tests)


@lru_cache(maxsize=256)
def rate_ratio(rate_in: float, rate_out: float, max_denominator: int = 1000) -> tuple[int, int]:
    """``(up, down)``: the rational approximation of ``rate_out / rate_in`` used by :func:`resample`."""
    fr = Fraction(float(rate_out) / float(rate_in)).limit_denominator(max_denominator)
    if fr.numerator == 0:
        raise DataError("resample", f"cannot resample {rate_in} Hz to {rate_out} Hz")
    return fr.numerator, fr.denominator


def resample(x, rate_in: float, rate_out: float, *, max_denominator: int = 1000) -> np.ndarray:
    """Polyphase resampling (``scipy.signal.resample_poly``, Kaiser-windowed anti-alias filter).

    The ratio ``rate_out / rate_in`` is approximated by a fraction with denominator at most
    ``max_denominator`` (exact for the usual 200, 1000, 1024, 2048 -> 500 Hz).

    Parameters
    ----------
    x : array, shape (C, T)
    rate_in, rate_out : float
        Hz.

    Returns
    -------
    np.ndarray, shape (C, ceil(T * up / down)), float32
    """
    rate_in, rate_out = _check_rate(rate_in, "rate_in"), _check_rate(rate_out, "rate_out")
    x = _as_float64(x)
    return _resample64(x, rate_in, rate_out, max_denominator).astype(np.float32)


def _resample64(x: np.ndarray, rate_in: float, rate_out: float, max_denominator: int = 1000) -> np.ndarray:
    up, down = rate_ratio(rate_in, rate_out, max_denominator)
    if up == down:
        return x
    if x.shape[1] == 0:
        return np.zeros((x.shape[0], 0))
    return _kernel("resample_poly")(x, up, down)


def _resample32(x: np.ndarray, rate_in: float, rate_out: float, max_denominator: int = 1000) -> np.ndarray:
    """:func:`_resample64` on the float32 path (op ``"resample_poly32"``): (C, T) -> float32."""
    up, down = rate_ratio(rate_in, rate_out, max_denominator)
    if up == down:
        return x
    if x.shape[1] == 0:
        return np.zeros((x.shape[0], 0), np.float32)
    return _kernel("resample_poly32")(x, up, down)


def resample_poly32_reference(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """Readable reference of the ``"resample_poly32"`` op: ``scipy.signal.resample_poly`` of the
    samples as float32 with the default anti-alias FIR rounded to float32, i.e. SciPy's float32
    computation; (C, T) -> (C, ceil(T up / down)) float32."""
    y = scipy_signal().resample_poly(np.asarray(x, dtype=np.float32), up, down, axis=-1,
                             window=_polyphase_fir(up, down).astype(np.float32))
    assert y.dtype == np.float32
    return y


def resample_poly_reference(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """Readable reference of the ``"resample_poly"`` op: ``scipy.signal.resample_poly`` along time
    with the cached default anti-alias FIR (:func:`_polyphase_fir`); (C, T) -> (C, ceil(T up /
    down)) float64."""
    return scipy_signal().resample_poly(x, up, down, axis=-1, window=_polyphase_fir(up, down))


def _polyphase_plan(up: int, down: int, n_in: int, dtype=np.float64) -> tuple[np.ndarray, int]:
    """What ``resample_poly`` derives from the FIR before calling ``upfirdn`` for ``n_in`` samples:
    the transposed, flipped, zero-padded filter (``dtype``: float64, or float32 as SciPy computes
    it for float32 samples: the FIR rounded, then scaled by ``up`` in float32) and n_pre_remove.
    The post padding is SciPy's for that length (zero taps multiply samples too, so a NaN or inf
    reaches exactly the outputs it reaches in SciPy); cached per (up, down, post padding, dtype)."""
    half_len = 10 * max(up, down)
    n_pre_pad = down - half_len % down
    n_pre_remove = (half_len + n_pre_pad) // down
    n_out = -(-n_in * up // down)
    len_h, n_post_pad = 2 * half_len + 1 + n_pre_pad, 0
    while ((n_in - 1) * up + len_h + n_post_pad - 1) // down + 1 < n_out + n_pre_remove:  # as SciPy
        n_post_pad += 1
    return _polyphase_taps(up, down, n_post_pad, np.dtype(dtype).str), n_pre_remove


@lru_cache(maxsize=256)
def _polyphase_taps(up: int, down: int, n_post_pad: int, dtype: str) -> np.ndarray:
    def design():
        from scipy.signal._upfirdn import _pad_h

        h = _polyphase_fir(up, down).astype(dtype)
        h *= up  # in the filter's dtype, as resample_poly
        n_pre_pad = down - ((h.size - 1) // 2) % down
        h = np.concatenate([np.zeros(n_pre_pad, dtype), h, np.zeros(n_post_pad, dtype)])
        return _pad_h(h, up)
    # read-only, from the disk cache after the first time (no scipy.signal import)
    return cached_design("polyphase_taps", (up, down, n_post_pad), dtype, design)


def resample_poly32_entry(upfirdn32_into):
    """The ``resample_poly32`` op around the compiled ``aemg._ext.filt_cy.upfirdn32_into``."""

    def resample_poly32_cython(x: np.ndarray, up: int, down: int) -> np.ndarray:
        h_tf, n_pre_remove = _polyphase_plan(up, down, x.shape[1], np.float32)
        n_out = -(-x.shape[1] * up // down)
        if x.dtype not in (np.int16, np.float32, np.float64):
            x = x.astype(np.float32)
        out = np.empty((x.shape[0], n_out), np.float32)
        upfirdn32_into(x, h_tf, up, down, n_pre_remove, out)
        return out

    return resample_poly32_cython


def resample_poly_entry(upfirdn_into):
    """The ``resample_poly`` op around the compiled ``aemg._ext.filt_cy.upfirdn_into`` (the
    ``wrap`` of that backend in :data:`aemg.backends.TABLE`)."""

    def resample_poly_cython(x: np.ndarray, up: int, down: int) -> np.ndarray:
        h_tf, n_pre_remove = _polyphase_plan(up, down, x.shape[1])
        n_out = -(-x.shape[1] * up // down)
        if x.dtype not in (np.int16, np.float32, np.float64):
            x = x.astype(np.float64)
        out = np.empty((x.shape[0], n_out))
        upfirdn_into(x, h_tf, up, down, n_pre_remove, out)
        return out

    return resample_poly_cython


def collapse_held(times, x) -> tuple[np.ndarray, np.ndarray]:
    """Drop rows that repeat the previous row's values on every channel (held values).

    Returns the kept times (T',) float64 and samples (C, T') float64; the first row of each run is
    kept, with its time. A genuine repeat of the same vector on every channel is dropped too (rare
    for several channels; documented as a limitation).
    """
    x = _as_float64(x)
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if times.shape[0] != x.shape[1]:
        raise DataError("times", f"{times.shape[0]} times for {x.shape[1]} samples")
    if x.shape[1] == 0:
        return times, x
    keep = np.ones(x.shape[1], dtype=bool)
    keep[1:] = np.any(x[:, 1:] != x[:, :-1], axis=0)
    return times[keep], x[:, keep]


def resample_irregular(times, x, rate: float, *, dejitter_s: float = 0.25,
                       collapse: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Resample irregularly logged samples onto a uniform grid at ``rate`` Hz.

    Method (for the UCI Myo files: rows logged at ~1 kHz, each device sample held over several
    rows and delivered in Bluetooth bursts):

    1. :func:`collapse_held` keeps one row per distinct sample (with ``collapse``).
    2. De-jitter: each distinct sample's arrival time is replaced by a uniform clock at the mean
       native rate plus the centred moving average, over ``dejitter_s`` seconds' worth of samples,
       of the arrival time's offset from that clock. This removes burst jitter but follows slow
       drifts of the true rate (a single straight-line fit drifted by up to 1 s on these files),
       and is unbiased at the ends of the recording.
    3. Linear interpolation onto a uniform grid at ``k * rate`` with ``k = ceil(native / rate)``
       (native = distinct samples per second), then polyphase decimation by ``k`` when ``k > 1``
       (anti-aliasing when the native rate exceeds ``rate``).

    Parameters
    ----------
    times : array, shape (T,)
        Sample times, seconds, non-decreasing.
    x : array, shape (C, T)
    rate : float
        Output rate, Hz.

    Returns
    -------
    y : np.ndarray, shape (C, T'), float32
    t_out : np.ndarray, shape (T',), float64
        Times of the output samples on the original clock, seconds (for label alignment).
    """
    rate = _check_rate(rate)
    x = _as_float64(x)
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if times.shape[0] != x.shape[1]:
        raise DataError("times", f"{times.shape[0]} times for {x.shape[1]} samples")
    if times.size and (not np.isfinite(times).all() or np.any(np.diff(times) < 0)):
        raise DataError("times", "timestamps must be finite and non-decreasing")
    t, v = collapse_held(times, x) if collapse else (times, x)
    if t.size < 2 or t[-1] <= t[0]:
        n = t.size
        return v.astype(np.float32)[:, :n], t[:n].copy()
    native = (t.size - 1) / (t[-1] - t[0])
    w = max(1, int(round(dejitter_s * native)))
    if w > 1 and t.size > w:
        # smooth the offset from a uniform clock (not the times themselves): unbiased at the edges
        step = np.arange(t.size) / native
        c = np.cumsum(np.concatenate([[0.0], t - step]))
        half = w // 2
        lo = np.clip(np.arange(t.size) - half, 0, t.size)
        hi = np.clip(np.arange(t.size) - half + w, 0, t.size)
        t = step + (c[hi] - c[lo]) / (hi - lo)
    k = max(1, math.ceil(native / rate))
    grid_rate = k * rate
    n_out = int(math.floor((t[-1] - t[0]) * grid_rate)) + 1
    grid = t[0] + np.arange(n_out) / grid_rate
    y = np.empty((v.shape[0], n_out))
    for c_i in range(v.shape[0]):
        y[c_i] = np.interp(grid, t, v[c_i])
    if k > 1:
        y = scipy_signal().resample_poly(y, 1, k, axis=-1)
        grid = grid[::k][: y.shape[1]]
    return y.astype(np.float32), grid


def effective_rate(times, x) -> float:
    """Distinct samples per second of irregularly logged data (after :func:`collapse_held`)."""
    t, _ = collapse_held(times, x)
    if t.size < 2 or t[-1] <= t[0]:
        raise DataError("times", "fewer than two distinct timed samples")
    return (t.size - 1) / (t[-1] - t[0])


def moving_rms(x, rate: float, window_s: float = 0.1) -> np.ndarray:
    """RMS over all channels in windows of ``window_s`` seconds, hop ``window_s / 2``.

    Returns (W,) float64: ``sqrt(mean over channels and window samples of x**2)``; empty when the
    recording is shorter than one window (then one value over the whole recording, if any).
    """
    x = _as_float64(x)
    if x.size == 0:
        return np.zeros(0)
    p = np.mean(x * x, axis=0)
    win = max(1, int(round(window_s * rate)))
    if p.size <= win:
        return np.sqrt([p.mean()])
    c = np.concatenate([[0.0], np.cumsum(p)])
    hop = max(1, win // 2)
    starts = np.arange(0, p.size - win + 1, hop)
    return np.sqrt(np.maximum((c[starts + win] - c[starts]) / win, 0.0))


def noise_floor(x, rate: float, *, window_s: float = 0.1, percentile: float = 5.0) -> float:
    """Robust resting-noise level of one (filtered) recording: a low percentile of the 100 ms
    moving RMS (:func:`moving_rms`). Same units as ``x``; 0 for an empty or all-zero recording."""
    r = moving_rms(x, rate, window_s)
    return float(np.percentile(r, percentile)) if r.size else 0.0


def amplitude_gain(space: StandardSpace, *, scale: float | None = None,
                   own_floor: float | None = None) -> tuple[float, str]:
    """The gain applied to a rectified recording, and where it came from.

    Parameters
    ----------
    space : StandardSpace
    scale : float or None
        Dataset noise floor from :func:`estimate_amplitude_scale` (same units as the filtered,
        topology-mapped signal), or None.
    own_floor : float or None
        The recording's own noise floor (:func:`noise_floor`), used by ``"recording"`` mode and
        when ``"noise_floor"`` mode gets no ``scale``.

    Returns
    -------
    (gain, source) : (float, str)
        ``source`` is ``"dataset"``, ``"recording"`` or ``"none"``; a zero floor gives gain 1.
    """
    if space.amplitude == "none":
        return 1.0, "none"
    if space.amplitude == "noise_floor" and scale is not None:
        if not (math.isfinite(scale) and scale > 0):
            raise DataError("amplitude_scale", f"must be a positive finite number, got {scale!r}")
        return 1.0 / float(scale), "dataset"
    if own_floor is None:
        raise DataError("amplitude_gain", "needs the recording's own noise floor (own_floor)")
    return (1.0 / own_floor if own_floor > 0 else 1.0), "recording"


# -- the pipeline -------------------------------------------------------------------------------

def _unscaled(rec: Recording, space: StandardSpace, native_rate: float | None = None,
              precision: str = DEFAULT_PRECISION) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Rectified samples (channels, T') before the amplitude gain (float32 or float64 by
    ``precision``), labels, provenance. ``native_rate``: for irregular logs, the rate whose Nyquist
    bounds the band (the dataset's, see :func:`dataset_native_rate`); None: the recording's own
    effective rate."""
    where = rec.source or rec.key
    rate_in = rec.rate
    f32 = check_precision(precision) == "float32"
    W = (_topology32 if f32 else _topology)(rec.device, space.channels)
    map_first = W.shape[0] < W.shape[1]
    resample_ = _resample32 if f32 else _resample64
    # the compiled resampler and filter read float32 as it is (widening is exact); the float64
    # path's topology product and the irregular path need float64 first
    x = rec.data if f32 or (rec.times is None and not map_first) else rec.data.astype(np.float64)
    if map_first:
        x = W @ x
    labels = rec.labels
    if rec.times is not None:
        if native_rate is not None:
            native = float(native_rate)
        else:
            native = effective_rate(rec.times, x) if x.shape[1] >= 2 else space.rate
        y, t_out = resample_irregular(rec.times, x, space.rate)
        x = y if f32 else y.astype(np.float64)
        if labels is not None:
            idx = np.clip(np.searchsorted(rec.times, t_out), 0, rec.times.size - 1)
            prev = np.clip(idx - 1, 0, rec.times.size - 1)
            nearer_prev = np.abs(t_out - rec.times[prev]) <= np.abs(rec.times[idx] - t_out)
            labels = labels[np.where(nearer_prev, prev, idx)]
        filter_rate, source_rate = space.rate, native
        down_first = True
    else:
        source_rate = rate_in
        down_first = space.rate <= rate_in
        filter_rate = min(rate_in, space.rate)
    lo, hi = space.band
    hi_eff = min(hi, _NYQUIST_MARGIN * min(source_rate, space.rate) / 2)
    if lo >= hi_eff:
        raise DataError(where, f"rate {source_rate:g} Hz is too low for the band {space.band} Hz "
                               f"(upper edge clipped to {hi_eff:g} Hz)")
    if rec.times is None and down_first:
        x = resample_(x, rate_in, space.rate)
    # from here x is what the filters see, at filter_rate: the line is detected on it too (on a
    # downsampled recording that is half the work or less, with the same 0.5 Hz bins and bound)
    line = None
    if space.notch_mode == "all":
        lines = list(space.notch)
    elif space.notch_mode == "detect" and space.notch:
        # float32 path: the Welch spectrum in float32 too (same decisions on every recording of
        # three datasets, docs/notes/rectify.md, Session 6)
        excerpt = np.asarray(x[:, : int(LINE_EXCERPT_S * filter_rate)],
                             dtype=np.float32 if f32 else np.float64)
        line = _detect_line(excerpt, filter_rate, space.notch, space.notch_min_ratio)
        lines = [] if line is None else [line]
    else:
        lines = []
    notch_freqs = [f for f0 in lines for f in line_harmonics(f0, min(hi_eff, filter_rate / 2))]
    sos = _cascade(filter_rate, lo, hi_eff, space.filter_order, tuple(notch_freqs), space.notch_q)
    x = zero_phase32(sos, x) if f32 else _filtfilt(sos, x)
    if rec.times is None and not down_first:
        x = resample_(x, rate_in, space.rate)
    if rec.times is None and labels is not None:
        idx = np.minimum(np.round(np.arange(x.shape[1]) * (rate_in / space.rate)).astype(np.int64),
                         max(labels.size - 1, 0))
        labels = labels[idx] if labels.size else labels[:0]
    if not map_first:
        x = W @ x
    prov = {"source_rate": rate_in, "source_device": rec.device.name, "source_units": rec.units,
            "band": [float(lo), float(hi_eff)], "notch": [float(f) for f in notch_freqs],
            "line_hz": line if space.notch_mode == "detect"
            else (lines[0] if lines else None), "space": space.to_dict(), "precision": precision}
    if rec.times is not None:
        prov["native_rate"] = float(source_rate)
    return x, labels, prov


def rectify(rec: Recording, space: StandardSpace = StandardSpace(), *,
            amplitude_scale: float | None = None, native_rate: float | None = None,
            precision: str = DEFAULT_PRECISION) -> Recording:
    """Rectify one recording into the standard space.

    Parameters
    ----------
    rec : Recording
        Any device, rate, units; uniformly sampled or with ``times``.
    space : StandardSpace
    amplitude_scale : float or None
        The dataset's noise floor (:func:`estimate_amplitude_scale`), used in ``"noise_floor"`` mode.
    native_rate : float or None
        Irregular logs only (``rec.times`` set): the dataset's native rate (:func:`dataset_native_rate`),
        Hz; the band's upper edge is then the same for every recording of the dataset. None: each
        recording's own effective rate bounds its band (per-recording bands: features that depend
        on the band, such as zero crossings, then differ between a user's recordings).
    precision : {"float32", "float64"}
        Arithmetic of the resampler, the filter cascade and the topology product. ``"float32"``
        (default): SciPy's float32 computation (compiled on 8 float lanes, bit-identical to it);
        its RMS difference from the float64 path was at most 3.2e-6 of the signal's RMS on every
        recording of three real datasets (docs/notes/rectify.md, Session 6). ``"float64"``:
        SciPy's float64 computation, rounded to float32 once at the end. Recorded in
        ``meta["rectify"]["precision"]``.

    Returns
    -------
    Recording
        ``data`` (space.channels, T') float32 at ``space.rate``, ``units="standard"``, device
        :func:`standard_device`, labels resampled by nearest sample, ``times`` None, and
        ``meta["rectify"]`` = provenance (source rate, device and units, band, notches, gain).
    """
    return finish_rectified(rec, *_unscaled(rec, space, native_rate, precision), space, amplitude_scale)


def finish_rectified(rec: Recording, x: np.ndarray, labels: np.ndarray | None, prov: dict,
                     space: StandardSpace, amplitude_scale: float | None) -> Recording:
    """The last step of :func:`rectify`: the amplitude gain applied to the unscaled samples ``x``
    (channels, T') of ``rec`` (``_unscaled``'s result, which the amplitude-scale pass of
    :func:`aemg.data.pipeline.rectify_dataset` keeps for its sampled sources) and the output
    Recording. ``x`` float32 is scaled in place (it must not be used afterwards)."""
    own = (noise_floor(x, space.rate, window_s=space.floor_window_s, percentile=space.floor_percentile)
           if space.amplitude == "recording" or (space.amplitude == "noise_floor" and amplitude_scale is None)
           else None)
    gain, source = amplitude_gain(space, scale=amplitude_scale, own_floor=own)
    prov.update(gain=float(gain), amplitude_source=source)
    meta = dict(rec.meta)
    meta["rectify"] = prov
    if x.dtype == np.float32 and x is not rec.data and x.flags.owndata and x.flags.c_contiguous:
        data = x  # the float32 path's own product: scaled in place (computed in float32)
    else:
        data = np.empty(x.shape, np.float32)
    np.multiply(x, gain, out=data, casting="same_kind")  # = (x * gain).astype(float32), no temporary
    fields = dict(data=data, rate=float(space.rate), device=space.device, units="standard",
                  subject=rec.subject, session=rec.session, trial=rec.trial, dataset=rec.dataset,
                  label=rec.label, labels=labels, classes=rec.classes, source=rec.source, meta=meta,
                  times=None)
    with np.errstate(over="ignore", invalid="ignore"):
        finite = not data.size or np.isfinite(data.sum())
    if not finite or (labels is not None and labels.dtype != np.int32):
        return Recording(**fields)  # validated: names the non-finite sample (an overflowing gain)
    # every other field comes from the validated ``rec`` or was made here (float32 in C order, the
    # standard device's channel count, int32 labels resampled from rec's): not validated again
    return Recording.trusted(**fields)


def dataset_native_rate(recordings: Iterable[Recording], percentile: float = 10.0) -> float | None:
    """One native rate for a dataset's irregularly logged recordings (``times`` set), Hz: the
    ``percentile`` of their effective rates (:func:`effective_rate`), or None when none is irregular.

    A logger that holds values (UCI's Myo log: 92-111 distinct samples/s per recording) gives each
    recording its own effective rate; bounding every recording's band by that one rate keeps the
    band, and the waveform features measured in it, the same across the dataset. A low percentile
    rather than the minimum, so one recording with long gaps does not narrow the band of all."""
    rates = []
    for r in recordings:
        if r.times is not None and r.n_samples >= 2:
            try:
                rates.append(effective_rate(r.times, r.data))
            except DataError:  # fewer than two distinct timed samples: rectify reports it
                continue
    return float(np.percentile(rates, percentile)) if rates else None


def estimate_amplitude_scale(recordings: Iterable[Recording], space: StandardSpace = StandardSpace(), *,
                             limit: int | None = None, native_rate: float | None = None,
                             precision: str = DEFAULT_PRECISION) -> float:
    """A dataset's noise floor in the standard space (before gain): the ``space.floor_percentile``
    percentile of the moving RMS pooled over (at most ``limit`` of) ``recordings``, each rectified
    with ``amplitude="none"``.

    Pooling windows (rather than a median of per-recording floors) finds the resting level as long
    as at least ``floor_percentile`` % of all windows are rest, even when most trials are held
    contractions without rest. Run by the archive writer on a bounded sample; stored in its
    manifest and passed to :func:`rectify` as ``amplitude_scale``. ``precision``: as
    :func:`rectify`'s (the two give scales within ~4e-7 of each other on real data).
    """
    raw = StandardSpace(**{**space.to_dict(), "amplitude": "none"})
    pooled = []
    for i, rec in enumerate(recordings):
        if limit is not None and i >= limit:
            break
        x, _, _ = _unscaled(rec, raw, native_rate, precision)
        pooled.append(moving_rms(x, raw.rate, raw.floor_window_s))
    values = np.concatenate(pooled) if pooled else np.zeros(0)
    if values.size == 0:
        raise DataError("estimate_amplitude_scale", "no samples in the given recordings")
    scale = float(np.percentile(values, space.floor_percentile))
    if not scale > 0:
        raise DataError("estimate_amplitude_scale", "the recordings are silent (noise floor 0)")
    return scale


# -- the standard-rate measurement (scripts/measure_rate.py) ------------------------------------

def power_above(recordings: Iterable[tuple[np.ndarray, float]], freqs: Sequence[float], *,
                lo: float = 20.0, reduce: str = "median") -> dict[float, float]:
    """Fraction of signal power above each frequency (what a Nyquist frequency there would lose).

    Parameters
    ----------
    recordings : iterable of (x (C, T), rate)
        Raw samples and their rate (Recordings' ``(data, rate)``).
    freqs : sequence of float
        Frequencies, Hz.
    lo : float
        Power below ``lo`` Hz (DC, motion artefacts) is left out of the total.
    reduce : str
        ``"median"``: the median over recordings of each recording's fraction (robust: a few
        artefact-laden recordings with huge low-frequency power cannot dominate); ``"pooled"``:
        power summed over recordings, weighted by length.

    Returns
    -------
    dict
        ``{f: fraction of the power in [lo, Nyquist] that lies above f}`` from the Welch PSD
        (0.25 s segments, mean removed) summed over channels.
    """
    if reduce not in ("median", "pooled"):
        raise ConfigError(f"power_above: reduce must be 'median' or 'pooled', got {reduce!r}")
    fl = [float(f) for f in freqs]
    per, totals = [], []
    for x, rate in recordings:
        x = _as_float64(x)
        nper = min(x.shape[1], int(0.25 * rate))
        if nper < 8:
            continue
        f, p = scipy_signal().welch(x, fs=rate, nperseg=nper, detrend="constant", axis=-1)
        p = p.sum(axis=0)
        keep = f >= lo
        tot = p[keep].sum()
        if tot <= 0:
            continue
        per.append([p[keep & (f > fr)].sum() / tot for fr in fl])
        totals.append(tot * x.shape[1])
    if not per:
        raise DataError("power_above", "no signal power in the given recordings")
    per_a, w = np.array(per), np.array(totals)
    vals = np.median(per_a, axis=0) if reduce == "median" else (per_a * w[:, None]).sum(0) / w.sum()
    return dict(zip(fl, vals.tolist()))
