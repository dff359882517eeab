"""Stage-1 reconstruction targets: noise-free physiological descriptors of each token.

A z-scored 0.25 s EMG waveform is band-limited noise: its sample values cannot be predicted from a
code (the first tiny run ended with reconstruction MSE 1.000 = predicting zero and a collapsed
codebook). What a contraction "word" should encode is what gesture decoders use: the spatial energy
pattern over the electrodes, its short-time evolution, and the spectrum. For a token with z-scored
payload ``x`` (C, L), raw per-channel RMS ``e`` (C,) and sampling rate ``fs``:

- ``spatial`` (C,): ``log(e_c + eps_e) - level``, the energy pattern over channels (centred per token);
- ``level`` (1,): ``mean_c log(e_c + eps_e)``, the token's overall (log) contraction level;
- ``envelope`` (C, W): ``0.5 log(mean_{t in w} x_c(t)^2 + eps_w)`` over W contiguous sub-windows
  (boundaries ``round(linspace(0, L, W + 1))``; 5 x 50 ms at L = 125, 500 Hz): the coarse envelope
  relative to the token's RMS (``x`` has unit power, so this is shape, not level);
- ``spectrum`` (C, B): ``log(mean_{f_k in band} |rfft(x_c)_k|^2 / L + eps_s)`` over the bands
  ``[edge_j, edge_{j+1})`` in Hz (the last band includes its upper edge), ``f_k = k fs / L``.
  Bands above the token's Nyquist (or with no rFFT bin) are ``log eps_s``. Note: 200 Hz devices
  resampled to the 500 Hz standard have (almost) nothing above ~90 Hz, so their upper bands sit
  near ``log eps_s``: a device signature the codes may learn.

Flat channels (an all-zero payload row, see aemg.tokenizer.tokens) have no envelope or spectrum:
``valid`` marks the others, and the losses skip them there.
"""
from __future__ import annotations

import math

import torch

#: Order of the per-feature standardisation statistics: spatial, level, envelope (W), spectrum (B).
TARGET_PARTS = ("spatial", "level", "envelope", "spectrum")
EPS_ENERGY = 1e-6
EPS_ENVELOPE = 1e-3
EPS_SPECTRUM = 1e-4


def n_target_features(windows: int, n_bands: int) -> int:
    """Length of the standardisation vector: 1 (spatial) + 1 (level) + windows + n_bands."""
    return 2 + int(windows) + int(n_bands)


def token_targets(payload: torch.Tensor, energy: torch.Tensor, *, rate: float, windows: int,
                  band_edges_hz) -> dict[str, torch.Tensor]:
    """Physiological stage-1 targets of tokens (formulas in the module docstring).

    Parameters
    ----------
    payload : Tensor, shape (..., C, L)
        Per-channel z-scored samples.
    energy : Tensor, shape (..., C)
        Per-channel RMS of the raw token (standard units), >= 0.
    rate : float
        Sampling rate of the tokens, Hz.
    windows : int
        Sub-windows W of the envelope (>= 1).
    band_edges_hz : sequence of float, length B + 1
        Increasing band edges, Hz.

    Returns
    -------
    dict of float32 Tensors
        ``spatial`` (..., C), ``level`` (..., 1), ``envelope`` (..., C, W), ``spectrum`` (..., C, B),
        ``valid`` (..., C) bool (channel has a non-flat payload).
    """
    x = payload.float()
    L = x.shape[-1]
    loge = torch.log(energy.float().clamp_min(0) + EPS_ENERGY)
    level = loge.mean(dim=-1, keepdim=True)
    # envelope: segment sums of x^2 from a cumulative sum (any L, any W; empty segments -> eps)
    sq = x * x
    cs = torch.cat([torch.zeros_like(sq[..., :1]), sq.cumsum(dim=-1)], dim=-1)  # (..., C, L+1)
    bounds = torch.tensor([round(i * L / windows) for i in range(windows + 1)], device=x.device)
    seg = cs[..., bounds[1:]] - cs[..., bounds[:-1]]
    length = (bounds[1:] - bounds[:-1]).clamp_min(1).to(x.dtype)
    envelope = 0.5 * torch.log((seg / length).clamp_min(0) + EPS_ENVELOPE)
    # spectrum: mean rFFT power per band
    edges = [float(e) for e in band_edges_hz]
    power = torch.fft.rfft(x, dim=-1).abs().square() / max(L, 1)  # (..., C, L//2+1)
    freqs = torch.arange(power.shape[-1], device=x.device, dtype=torch.float64) * (rate / max(L, 1))
    bands = []
    for j, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        last = j == len(edges) - 2
        sel = (freqs >= lo) & ((freqs <= hi) if last else (freqs < hi))
        if bool(sel.any()):
            bands.append(power[..., sel].mean(dim=-1))
        else:
            bands.append(torch.zeros_like(power[..., 0]))
    spectrum = torch.log(torch.stack(bands, dim=-1) + EPS_SPECTRUM) if bands else power[..., :0]
    valid = (x != 0).any(dim=-1)
    return {"spatial": loge - level, "level": level, "envelope": envelope, "spectrum": spectrum,
            "valid": valid}


def flatten_features(t: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Per-feature value lists for standardisation statistics: a list of ``2 + W + B`` 1-D tensors
    (spatial over all channels, level, then each envelope window and each band over valid channels)."""
    valid = t["valid"]
    out = [t["spatial"].reshape(-1), t["level"].reshape(-1)]
    out += [t["envelope"][..., w][valid] for w in range(t["envelope"].shape[-1])]
    out += [t["spectrum"][..., b][valid] for b in range(t["spectrum"].shape[-1])]
    return out


def standardise(t: dict[str, torch.Tensor], mean: torch.Tensor, std: torch.Tensor) -> dict[str, torch.Tensor]:
    """``t`` (from :func:`token_targets`) with each feature standardised by ``mean``/``std``
    (shape (2 + W + B,), order of :data:`TARGET_PARTS`)."""
    W = t["envelope"].shape[-1]
    return {"spatial": (t["spatial"] - mean[0]) / std[0], "level": (t["level"] - mean[1]) / std[1],
            "envelope": (t["envelope"] - mean[2:2 + W]) / std[2:2 + W],
            "spectrum": (t["spectrum"] - mean[2 + W:]) / std[2 + W:], "valid": t["valid"]}


def check_band_edges(edges) -> tuple[float, ...]:
    e = tuple(float(v) for v in edges)
    if len(e) < 2 or any(not math.isfinite(v) or v < 0 for v in e) or any(b <= a for a, b in zip(e, e[1:])):
        raise ValueError(f"band edges {e}: need >= 2 increasing non-negative frequencies (Hz)")
    return e
