"""A seeded synthetic sEMG gesture dataset, for the demo and fast tests.

Model (physiologically plausible, not a simulation of motor units):

- ``n_sources`` muscle sources sit around the forearm circumference (angles fixed by the seed).
  Each gesture activates them with its own smooth pattern over angle (two von Mises bumps), shared
  by all subjects, so gestures map across devices through the electrode geometry.
- Each source emits Gaussian noise shaped to an EMG-like spectrum (band-pass 20 Hz to
  min(200 Hz, 0.45 x rate), 2nd order), amplitude-modulated by the trial's activation envelope:
  rest, raised-cosine onset, hold with slow fluctuation, offset, rest (so each contraction is a real
  event with rest before and after it; per-sample labels are 0 = rest outside it).
- Electrode ``c`` at angle ``theta_c`` sees source ``m`` with weight
  ``exp(kappa (cos(theta_c + rotation - mu_m) - 1))`` (volume conduction / cross-talk).
- Subjects differ by a random armband rotation, per-channel gains (log-normal, 20 %), overall
  amplitude, and fatigue over repetitions (amplitude up, spectrum compressed).
- Additive electrode noise, power-line interference at ``line_hz`` (plus 3rd harmonic), a DC offset
  for ADC devices, and quantisation to the device units: int8 counts (Myo), 12-bit signed ADC counts
  (3DC), or float millivolts (devices with unspecified units).

Deterministic per ``(config.seed, unit)``: a unit's trials do not depend on which other units are
generated. Subjects cycle over ``config.devices``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
from scipy import signal

from ..errors import ConfigError, DataError
from .devices import TWO_PI, Device, get_device
from .recording import Recording

#: Rate used for devices without a nominal rate (e.g. ``"ring:6"``), Hz.
DEFAULT_RATE = 1000.0
_UNIT_SCALE = {"int8": 25.0, "adc": 150.0, "mV": 0.5, "uV": 500.0, "V": 5e-4, "a.u.": 1.0}


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the synthetic dataset.

    Attributes
    ----------
    n_subjects : int
        Number of subjects (units ``s00``, ``s01``, ...).
    devices : tuple of str
        Device names or specs; subject ``i`` wears ``devices[i % len(devices)]``.
    n_gestures : int
        Active gestures (classes 1..n_gestures); class 0 = rest (its own trials too).
    repetitions : int
        Trials per class and subject.
    trial_s : float
        Trial length, seconds.
    rest_s : float
        Minimum rest before and after each contraction, seconds.
    seed : int
    line_hz : float
        Power-line frequency, Hz (0 = none).
    line_amplitude : float
        Power-line amplitude relative to a full contraction.
    noise : float
        Electrode noise standard deviation relative to a full contraction.
    fatigue : float
        Relative amplitude increase (and half of it as spectral compression) by the last repetition.
    n_sources : int
        Muscle sources around the forearm.
    """

    n_subjects: int = 6
    devices: tuple[str, ...] = ("myo", "3dc", "ring:6")
    n_gestures: int = 5
    repetitions: int = 4
    trial_s: float = 3.0
    rest_s: float = 0.5
    seed: int = 0
    line_hz: float = 50.0
    line_amplitude: float = 0.05
    noise: float = 0.03
    fatigue: float = 0.15
    n_sources: int = 12

    def __post_init__(self):
        object.__setattr__(self, "devices", tuple(self.devices))
        if self.n_subjects < 1 or self.n_gestures < 1 or self.repetitions < 1 or self.n_sources < 1:
            raise ConfigError("synthetic: n_subjects, n_gestures, repetitions and n_sources must be >= 1")
        if not self.devices:
            raise ConfigError("synthetic: devices must name at least one device")
        if self.trial_s <= 2 * self.rest_s + 0.4:
            raise ConfigError(f"synthetic: trial_s={self.trial_s} leaves no room for a contraction "
                              f"between two rests of {self.rest_s} s")
        for d in self.devices:
            get_device(d)

    @property
    def classes(self) -> tuple[str, ...]:
        return ("rest",) + tuple(f"gesture{g}" for g in range(1, self.n_gestures + 1))


def synthetic_units(config: SyntheticConfig) -> list[str]:
    """One unit per subject: ``["s00", "s01", ...]``."""
    return [f"s{i:02d}" for i in range(config.n_subjects)]


def _unit_index(config: SyntheticConfig, unit: str) -> int:
    units = synthetic_units(config)
    if unit not in units:
        raise DataError("unit", f"{unit!r} is not a synthetic unit (expected one of {units[0]}..{units[-1]})")
    return units.index(unit)


def _gesture_patterns(config: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """Source angles (M,) and activation of each source per class (K+1, M); row 0 = rest."""
    rng = np.random.default_rng([config.seed, 7919])
    m = config.n_sources
    mu = (TWO_PI * np.arange(m) / m + rng.uniform(-0.1, 0.1, m)) % TWO_PI
    act = np.zeros((config.n_gestures + 1, m))
    # gesture centres spread around the arm so that classes differ in where they activate
    centres = (TWO_PI * (np.arange(config.n_gestures) + rng.uniform(0, 1, config.n_gestures))
               / config.n_gestures)
    for g in range(config.n_gestures):
        second = centres[g] + rng.uniform(0.6, 2.5) * rng.choice([-1, 1])
        w2 = rng.uniform(0.2, 0.8)
        act[g + 1] = (np.exp(3.0 * (np.cos(mu - centres[g]) - 1))
                      + w2 * np.exp(3.0 * (np.cos(mu - second) - 1)))
        act[g + 1] /= act[g + 1].max()
    return mu, act


def subject_params(config: SyntheticConfig, unit: str) -> dict:
    """The subject's device, rate, units, armband rotation (rad), channel gains and amplitude."""
    i = _unit_index(config, unit)
    device = get_device(config.devices[i % len(config.devices)])
    rng = np.random.default_rng([config.seed, i, 1])
    units = device.units if device.units != "a.u." else "mV"
    return {"device": device, "rate": float(device.rate or DEFAULT_RATE), "units": units,
            "rotation": float(rng.uniform(0, TWO_PI)),
            "gains": np.exp(rng.normal(0, 0.2, device.n_channels)),
            "amplitude": float(np.exp(rng.normal(0, 0.25))),
            "line_phase": rng.uniform(0, TWO_PI, device.n_channels),
            "line_gain": rng.uniform(0.3, 1.0, device.n_channels),
            "offset": rng.normal(0, 60, device.n_channels) if units == "adc" else np.zeros(device.n_channels)}


def _envelope(rng: np.random.Generator, n: int, rate: float, config: SyntheticConfig,
              active: bool) -> tuple[np.ndarray, np.ndarray]:
    """Activation envelope (T,) in [0, ~1.2] and a boolean contraction mask (T,)."""
    env = np.zeros(n)
    mask = np.zeros(n, dtype=bool)
    if not active:
        return env, mask
    ramp = rng.uniform(0.1, 0.25)
    free = config.trial_s - 2 * config.rest_s - 2 * ramp
    hold = rng.uniform(0.6, 0.9) * free
    start = config.rest_s + rng.uniform(0, free - hold)
    t = np.arange(n) / rate
    on = np.clip((t - start) / ramp, 0, 1)
    off = np.clip((start + 2 * ramp + hold - t) / ramp, 0, 1)
    env = np.minimum(0.5 - 0.5 * np.cos(np.pi * on), 0.5 - 0.5 * np.cos(np.pi * off))
    # slow force fluctuation: smoothed noise, +-10 %
    k = max(1, int(0.2 * rate))
    wobble = np.convolve(rng.normal(0, 1, n + k), np.ones(k) / np.sqrt(k), "valid")[:n]
    env = env * (1 + 0.1 * wobble)
    mask = (t >= start) & (t < start + 2 * ramp + hold)
    return np.clip(env, 0, None), mask


def _trial(config: SyntheticConfig, unit: str, params: dict, mu: np.ndarray, act: np.ndarray,
           rep: int, g: int) -> Recording:
    i = _unit_index(config, unit)
    rng = np.random.default_rng([config.seed, i, 2, rep, g])
    device: Device = params["device"]
    rate = params["rate"]
    n = int(round(config.trial_s * rate))
    frac = rep / max(1, config.repetitions - 1)
    hi = min(200.0, 0.45 * rate) * (1 - 0.5 * config.fatigue * frac)
    sos = signal.butter(2, [min(20.0, 0.5 * hi), hi], "bandpass", fs=rate, output="sos")
    sources = signal.sosfilt(sos, rng.normal(0, 1, (config.n_sources, n + 200)), axis=-1)[:, 200:]
    sources /= sources.std(axis=1, keepdims=True)
    env, mask = _envelope(rng, n, rate, config, g > 0)
    level = act[g] * rng.uniform(0.85, 1.15, config.n_sources)  # (M,)
    tone = 0.02  # resting muscle tone
    drive = (tone + env[None, :] * level[:, None]) * sources  # (M, T)
    theta = device.angles + params["rotation"]
    mix = np.exp(4.0 * (np.cos(theta[:, None] - mu[None, :]) - 1))  # (C, M)
    emg = (mix @ drive) * params["gains"][:, None] * params["amplitude"] * (1 + config.fatigue * frac)
    t = np.arange(n) / rate
    x = emg + config.noise * rng.normal(0, 1, emg.shape)
    if config.line_hz > 0:
        ph = params["line_phase"][:, None]
        line = np.sin(TWO_PI * config.line_hz * t[None, :] + ph)
        if 3 * config.line_hz < rate / 2:
            line = line + 0.3 * np.sin(TWO_PI * 3 * config.line_hz * t[None, :] + 3 * ph)
        x = x + config.line_amplitude * params["line_gain"][:, None] * line
    units = params["units"]
    x = x * _UNIT_SCALE[units] + params["offset"][:, None]
    if units == "int8":
        x = np.clip(np.round(x), -128, 127)
    elif units == "adc":
        x = np.clip(np.round(x), -2048, 2047)
    labels = np.where(mask, g, 0).astype(np.int32)
    return Recording(data=x.astype(np.float32), rate=rate, device=device, units=units, subject=unit,
                     session="0", trial=f"r{rep}_g{g}", dataset="synthetic", label=g, labels=labels,
                     classes=config.classes, source=f"synthetic:{unit}/r{rep}_g{g}",
                     meta={"repetition": rep, "rotation_rad": params["rotation"], "seed": config.seed})


def generate_unit(config: SyntheticConfig, unit: str) -> list[Recording]:
    """All trials of one subject: ``repetitions x (n_gestures + 1)`` recordings, repetition-major.

    Each trial holds one class (``label``; class 0 = rest) with per-sample ``labels`` that are 0
    during the rest before and after the contraction.
    """
    params = subject_params(config, unit)
    mu, act = _gesture_patterns(config)
    return [_trial(config, unit, params, mu, act, rep, g)
            for rep in range(config.repetitions) for g in range(config.n_gestures + 1)]


def generate(config: SyntheticConfig = SyntheticConfig()) -> Iterator[Recording]:
    """Every trial of every subject, subject by subject."""
    for unit in synthetic_units(config):
        yield from generate_unit(config, unit)
