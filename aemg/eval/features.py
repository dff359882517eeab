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
