"""Spatial (electrode geometry) and temporal (onset, duration, order) embeddings.

Spatial embeddings are *computed* from each channel's position on the forearm (angle, z), never
looked up by channel index, so a device never seen in training but with a declared geometry gets
meaningful embeddings. Temporal embeddings are continuous: sinusoids of times in seconds over
log-spaced periods (10 ms .. 100 s) followed by a linear map.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def geometry_features(angles: torch.Tensor, z: torch.Tensor, n_freqs: int) -> torch.Tensor:
    """Fourier features of electrode positions.

    Parameters
    ----------
    angles : Tensor, shape (C,), radians
    z : Tensor, shape (C,), metres along the forearm
    n_freqs : int
        Harmonics of the angle (k = 1..n_freqs); z gets the same number of sinusoids over
        periods of 2 cm .. 0.5 m.

    Returns
    -------
    Tensor, shape (C, 4 * n_freqs), float32
    """
    k = torch.arange(1, n_freqs + 1, dtype=torch.float32, device=angles.device)
    a = angles.float()[:, None] * k  # (C, F)
    periods = torch.logspace(math.log10(0.02), math.log10(0.5), n_freqs, device=angles.device)
    zz = z.float()[:, None] * (2 * math.pi / periods)  # (C, F)
    return torch.cat([a.sin(), a.cos(), zz.sin(), zz.cos()], dim=-1)


class SpatialEmbedding(nn.Module):
    """Per-channel embedding from geometry: Fourier features -> 2-layer MLP.

    ``forward(angles (C,), z (C,)) -> (C, dim)``.
    """

    def __init__(self, dim: int, n_freqs: int):
        super().__init__()
        self.n_freqs = n_freqs
        self.mlp = nn.Sequential(nn.Linear(4 * n_freqs, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, angles: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.mlp(geometry_features(angles, z, self.n_freqs))


def sinusoid(x: torch.Tensor, n_freqs: int, min_period: float, max_period: float) -> torch.Tensor:
    """Sinusoidal features of a continuous quantity.

    Parameters
    ----------
    x : Tensor, shape (...), e.g. seconds
    n_freqs : int
    min_period, max_period : float
        Shortest and longest period, same units as ``x`` (log-spaced in between).

    Returns
    -------
    Tensor, shape (..., 2 * n_freqs), float32
    """
    periods = torch.logspace(math.log10(min_period), math.log10(max_period), n_freqs, device=x.device)
    ang = x.float()[..., None] * (2 * math.pi / periods)
    return torch.cat([ang.sin(), ang.cos()], dim=-1)


class TemporalEmbedding(nn.Module):
    """Embedding of when a token happens: onset within its event and within the trial, its
    duration (seconds, sinusoids over 10 ms .. 100 s), its order in the sentence and the index of
    its contraction event (sinusoids over 2 .. 1000 positions).

    ``forward(onset_in_event_s, onset_in_trial_s, duration_s, order, event_index)``, each (B, N)
    (the time fields of :data:`aemg.tokenizer.sentence.TIME_FIELDS`, then positions), returns
    (B, N, dim).
    """

    N_FREQS = 8

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(5 * 2 * self.N_FREQS, dim)

    def forward(self, onset_in_event_s, onset_in_trial_s, duration_s, order, event_index) -> torch.Tensor:
        f = self.N_FREQS
        feats = [sinusoid(onset_in_event_s, f, 0.01, 100.0), sinusoid(onset_in_trial_s, f, 0.01, 100.0),
                 sinusoid(duration_s, f, 0.01, 100.0), sinusoid(order.float(), f, 2.0, 1000.0),
                 sinusoid(event_index.float(), f, 2.0, 1000.0)]
        return self.proj(torch.cat(feats, dim=-1))
