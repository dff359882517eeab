"""Hudgins time-domain features over sliding windows (vectorised NumPy).

The four classic features of Hudgins et al. (IEEE TBME 40(1), 1993), computed per channel and window
``w`` of ``L`` samples ``x_0 .. x_{L-1}``:

- MAV (mean absolute value): ``mean_i |x_i|``
- WL (waveform length): ``sum_{i=1}^{L-1} |x_i - x_{i-1}|``
- ZC (zero crossings): ``#{i : x_i * x_{i+1} < 0 and |x_i - x_{i+1}| >= threshold}``
- SSC (slope sign changes): ``#{i in 1..L-2 : (x_i - x_{i-1}) * (x_i - x_{i+1}) > threshold}``

``threshold`` is the noise dead band, in the units of the samples (for ZC an amplitude, for SSC a
squared amplitude, as in Hudgins' paper); the default 0 counts every strict crossing / turn, so
flat runs (held values, zeros of int8 Myo data) are never counted. Feature vectors are laid out
feature-major: ``[MAV_c0..MAV_cC-1, WL_c0.., ZC_c0.., SSC_c0..]``.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataError

FEATURES = ("MAV", "WL", "ZC", "SSC")


def window_params(rate: float, window_s: float, step_s: float) -> tuple[int, int]:
    """Window and step lengths in samples (rounded, each at least 1).

    Parameters
    ----------
    rate : float
        Sampling rate, Hz.
    window_s, step_s : float
        Window length and step, seconds (> 0).
    """
    if not (window_s > 0 and step_s > 0):
        raise DataError("window", f"window and step must be > 0 s, got {window_s} and {step_s}")
    return max(1, int(round(window_s * rate))), max(1, int(round(step_s * rate)))


def sliding_windows(x: np.ndarray, length: int, step: int) -> np.ndarray:
    """Overlapping windows of a (C, T) signal, as a read-only view.

    Parameters
    ----------
    x : np.ndarray, shape (C, T)
    length, step : int
        Window length and step, samples.

    Returns
    -------
    np.ndarray, shape (W, C, length), W = 1 + (T - length) // step (0 when T < length)
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise DataError("x", f"expected a (channels, time) array, got shape {x.shape}")
    if length < 1 or step < 1:
        raise DataError("window", f"window length and step must be >= 1 sample, got {length}, {step}")
    c, t = x.shape
    if t < length:
        return np.empty((0, c, length), dtype=x.dtype)
    view = np.lib.stride_tricks.sliding_window_view(x, length, axis=1)  # (C, T-L+1, L)
    return view[:, ::step, :].transpose(1, 0, 2)


def td_features(windows: np.ndarray, threshold: float = 0.0, log: bool = False,
                eps: float = 1e-8) -> np.ndarray:
    """Hudgins features of a batch of windows.

    Parameters
    ----------
    windows : np.ndarray, shape (W, C, L)
        Windows of samples (any real dtype; computed in float64).
    threshold : float
        Noise dead band for ZC and SSC (see the module docstring), sample units.
    log : bool
        Replace MAV and WL by ``log(eps + MAV)`` and ``log(eps + WL)`` (ZC and SSC stay counts).
    eps : float
        Floor inside the logarithm (sample units).

    Returns
    -------
    np.ndarray, shape (W, 4 C), float64, feature-major ``[MAV, WL, ZC, SSC]`` x channels.
    """
    w = np.asarray(windows, dtype=np.float64)
    if w.ndim != 3:
        raise DataError("windows", f"expected (windows, channels, samples), got shape {w.shape}")
    n, c, length = w.shape
    if length < 1:
        raise DataError("windows", "windows have no samples")
    mav = np.abs(w).mean(axis=2)
    d = np.diff(w, axis=2)                                   # (W, C, L-1)
    wl = np.abs(d).sum(axis=2)
    zc = ((w[:, :, :-1] * w[:, :, 1:] < 0) & (np.abs(d) >= threshold)).sum(axis=2)
    ssc = ((-d[:, :, :-1] * d[:, :, 1:]) > threshold).sum(axis=2)  # (x_i-x_{i-1})(x_i-x_{i+1})
    if log:
        mav, wl = np.log(eps + mav), np.log(eps + wl)
    return np.concatenate([mav, wl, zc.astype(np.float64), ssc.astype(np.float64)], axis=1)


def feature_names(n_channels: int) -> list[str]:
    """Column names of :func:`td_features`: ``MAV_0 .. SSC_{C-1}``."""
    return [f"{f}_{c}" for f in FEATURES for c in range(n_channels)]


def windowed_features(trials, rate: float, window_s: float = 0.2, step_s: float = 0.05,
                      threshold: float = 0.0, log: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Hudgins features of every window of every trial.

    Parameters
    ----------
    trials : sequence of np.ndarray, each (C, T_i)
        Trials at one sampling rate, same channel count.
    rate : float
        Sampling rate, Hz.
    window_s, step_s : float
        Window length and step, seconds (defaults 200 ms / 50 ms).
    threshold, log
        See :func:`td_features`.

    Returns
    -------
    features : np.ndarray, shape (W_total, 4 C), float64
    trial_index : np.ndarray, shape (W_total,), int64
        The trial each window comes from. A trial shorter than one window gives one window made
        of the whole trial (so that every trial is scored).
    """
    length, step = window_params(rate, window_s, step_s)
    feats, owner = [], []
    for i, x in enumerate(trials):
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] == 0:
            raise DataError(f"trial {i}", f"expected a non-empty (channels, time) array, got {x.shape}")
        win = sliding_windows(x, length, step) if x.shape[1] >= length else x[None]
        feats.append(td_features(win, threshold, log))
        owner.append(np.full(len(win), i, dtype=np.int64))
    if not feats:
        return np.empty((0, 0)), np.empty(0, dtype=np.int64)
    return np.concatenate(feats), np.concatenate(owner)


#: Band edges (Hz) of the spectral shares in :func:`token_features`.
TOKEN_BANDS_HZ = ((20.0, 60.0), (60.0, 120.0), (120.0, 200.0), (200.0, 450.0))
#: Per-channel features of :func:`token_features`, in layout order (feature-major).
TOKEN_FEATURES = (("logMAV", "logWL", "ZC", "SSC")
                  + tuple(f"logband{lo:g}-{hi:g}" for lo, hi in TOKEN_BANDS_HZ))


def token_features(payload: np.ndarray, energy: np.ndarray, rate: float, eps: float = 1e-6) -> np.ndarray:
    """Classic features of NCT tokens: what LDA's windows carry, computed on the tokens.

    Per token and channel: log MAV and log WL of the token's samples in recording units
    (payload x energy), ZC and SSC counts (:func:`td_features`, no dead band) and the log share of
    the 20-450 Hz power in each band of :data:`TOKEN_BANDS_HZ` (periodogram of the token).

    Parameters
    ----------
    payload : np.ndarray, shape (N, C, L)
        Token samples z-scored per channel (:class:`~aemg.tokenizer.tokens.Sentence.payload`).
    energy : np.ndarray, shape (N, C)
        Per-channel RMS of each token before normalisation.
    rate : float
        Sampling rate of the tokens, Hz.

    Returns
    -------
    np.ndarray, shape (N, 8 C), float64, feature-major (:data:`TOKEN_FEATURES` x channels).
    """
    x = np.asarray(payload, dtype=np.float64)
    if x.ndim != 3:
        raise DataError("payload", f"expected (tokens, channels, samples), got shape {x.shape}")
    n, c, length = x.shape
    if np.shape(energy) != (n, c):
        raise DataError("energy", f"expected shape {(n, c)}, got {np.shape(energy)}")
    if n == 0:
        return np.zeros((0, len(TOKEN_FEATURES) * c))
    raw = x * np.asarray(energy, dtype=np.float64)[..., None]
    td = td_features(raw, 0.0, log=True, eps=eps)                     # (N, 4 C)
    spec = np.abs(np.fft.rfft(x, axis=2)) ** 2
    freqs = np.fft.rfftfreq(length, 1.0 / rate)
    inband = (freqs >= TOKEN_BANDS_HZ[0][0]) & (freqs < TOKEN_BANDS_HZ[-1][1])
    total = spec[..., inband].sum(axis=2) + eps
    bands = [np.log(spec[..., (freqs >= lo) & (freqs < hi)].sum(axis=2) / total + eps)
             for lo, hi in TOKEN_BANDS_HZ]
    return np.concatenate([td] + bands, axis=1)


#: column sets of :func:`pooled_token_features` (:func:`token_feature_columns`)
TOKEN_SETS = ("all", "td")


def token_feature_columns(n_channels: int, token_set: str = "all") -> np.ndarray:
    """Column indices (int64) into a :func:`pooled_token_features` row (16 C wide) of a set:
    ``"all"`` = every column; ``"td"`` = the token means of logMAV, logWL, ZC and SSC (the first
    4 C columns: the time-domain set LDA's windows carry, without the band shares and the spreads
    over tokens; docs/notes/generalisation.md, session 5)."""
    if token_set not in TOKEN_SETS:
        raise DataError("token_set", f"{token_set!r}: choose from {TOKEN_SETS}")
    width = 2 * len(TOKEN_FEATURES) * n_channels
    return np.arange(width if token_set == "all" else 4 * n_channels, dtype=np.int64)


def token_row_columns(n_channels: int, token_set: str = "all") -> np.ndarray:
    """Column indices (int64) into a :func:`token_features` row (8 C wide, one token) of a set:
    ``"all"`` = every column; ``"td"`` = logMAV, logWL, ZC and SSC (the first 4 C columns, the
    per-token twin of :func:`token_feature_columns`'s ``"td"``)."""
    if token_set not in TOKEN_SETS:
        raise DataError("token_set", f"{token_set!r}: choose from {TOKEN_SETS}")
    return np.arange(len(TOKEN_FEATURES) * n_channels if token_set == "all" else 4 * n_channels,
                     dtype=np.int64)


def pooled_token_features(sentences, n_channels: int) -> np.ndarray:
    """(n, 16 C): mean and std over each trial's tokens of :func:`token_features`; zeros for a
    sentence without tokens. ``sentences``: :class:`~aemg.tokenizer.tokens.Sentence` objects."""
    width = len(TOKEN_FEATURES) * n_channels
    out = np.zeros((len(sentences), 2 * width))
    for i, s in enumerate(sentences):
        if len(s.energy):
            f = token_features(s.payload, s.energy, s.rate)
            out[i] = np.concatenate([f.mean(axis=0), f.std(axis=0)])
    return out
