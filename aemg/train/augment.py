"""Nuisance augmentations of token batches for invariance in pre-training (issue 9, item 3).

What differs between users and donnings of the same device is mostly nuisance: per-channel gain
(skin, electrode contact), global gain, the armband's rotation, a little noise, and (between
devices) the effective sampling rate. :func:`augment_batch` draws one nuisance per *sentence*
(a user's gain and placement do not change within a trial) and applies it to the raw token
signal, ``payload * energy`` (payload is z-scored per channel, energy the channel's RMS), then
re-derives payload and energy. Pre-training uses the augmented view as the encoder's input and
the clean batch for the targets (stage 1: reconstruction targets; stage 2: the codes of the clean
tokens), plus a consistency term pulling the augmented token's code vector to the clean one's:
two views of one contraction should be one token.

All draws come from the ``generator`` passed in, so a run stays deterministic and resumable.
With :meth:`AugmentConfig.active` False nothing is drawn and the batch is returned as is.

Reference implementation in plain PyTorch (small tensors: (B, N, C, L) with L = 125 at 500 Hz).
"""
from __future__ import annotations

import math

import torch

from ..model.config import AugmentConfig

__all__ = ["AugmentConfig", "augment_batch", "ring_rotate", "time_scale"]

#: batch keys the augmented view replaces (the other keys are shared with the clean batch)
VIEW_KEYS = ("payload", "energy", "dominant_channel")
#: last seed part of the augmentation generator of a step (sentence indices, the other last
#: parts used with the same (seed, stage, step), stay far below it)
AUGMENT_STREAM = 0x41554731


def ring_rotate(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate channels around a ring by a fractional number of positions per sentence.

    ``x`` (B, N, C, ...) with channel c at angle 2 pi c / C; ``shift`` (B,) positions. Output
    channel c = linear interpolation of input channels at c - shift (circular).
    """
    C = x.shape[2]
    lo = torch.floor(shift)
    frac = (shift - lo).to(x.dtype)
    idx = (torch.arange(C, device=x.device)[None, :] - lo.long()[:, None]) % C  # (B, C)
    view = [x.shape[0], 1, C] + [1] * (x.dim() - 3)
    expand = [-1, x.shape[1], -1] + list(x.shape[3:])
    a = torch.gather(x, 2, idx.view(view).expand(expand))
    b = torch.gather(x, 2, ((idx - 1) % C).view(view).expand(expand))
    f = frac.view([x.shape[0]] + [1] * (x.dim() - 1))
    return (1 - f) * a + f * b


def time_scale(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Resample the last axis by ``scale`` (B,) per sentence: out[t] = x[scale * t] (linear,
    edge-clamped), keeping the length: > 1 plays the signal faster (higher frequencies)."""
    L = x.shape[-1]
    t = torch.arange(L, device=x.device, dtype=torch.float32)[None, :] * scale[:, None].float()  # (B, L)
    t = t.clamp(0, L - 1)
    i0 = t.floor().long().clamp(0, L - 1)
    i1 = (i0 + 1).clamp(max=L - 1)
    w = (t - i0).to(x.dtype)
    shape = [x.shape[0]] + [1] * (x.dim() - 2) + [L]
    full = list(x.shape)
    a = torch.gather(x, -1, i0.view(shape).expand(full))
    b = torch.gather(x, -1, i1.view(shape).expand(full))
    return (1 - w.view(shape)) * a + w.view(shape) * b


def augment_batch(batch: dict, cfg: AugmentConfig, generator: torch.Generator) -> dict:
    """A nuisance-augmented copy of ``batch`` (payload (B,N,C,L) z-scored, energy (B,N,C) RMS).

    Padding tokens stay zero. Returns a new dict sharing every key but :data:`VIEW_KEYS`.
    """
    if not cfg.active:
        return batch
    payload, energy, real = batch["payload"], batch["energy"], batch["mask"]
    B, N, C, L = payload.shape
    dev = payload.device

    def draw(*shape):
        return torch.randn(*shape, generator=generator).to(dev)

    def uniform(*shape):
        return torch.rand(*shape, generator=generator).to(dev)

    raw = payload.float() * energy.float()[..., None]  # (B, N, C, L) in standard units
    if cfg.rate_jitter:
        raw = time_scale(raw, 1 + cfg.rate_jitter * (2 * uniform(B) - 1))
    if cfg.rotation:
        raw = ring_rotate(raw, cfg.rotation * (2 * uniform(B) - 1))
    log_gain = torch.zeros(B, 1, C, device=dev)
    if cfg.channel_gain_db:
        log_gain = log_gain + draw(B, 1, C) * (cfg.channel_gain_db * math.log(10) / 20)
    if cfg.global_gain_db:
        log_gain = log_gain + draw(B, 1, 1) * (cfg.global_gain_db * math.log(10) / 20)
    raw = raw * log_gain.exp()[..., None]
    if cfg.noise:
        raw = raw + cfg.noise * draw(B, N, C, L)
    mean = raw.mean(dim=-1, keepdim=True)
    rms = raw.pow(2).mean(dim=-1).sqrt()                      # (B, N, C): the new energy
    std = (raw - mean).pow(2).mean(dim=-1, keepdim=True).sqrt()
    new_payload = torch.where(std > 1e-6, (raw - mean) / std.clamp_min(1e-6), torch.zeros_like(raw))
    keep = real[..., None].to(raw.dtype)
    out = dict(batch)
    out["payload"] = (new_payload * keep[..., None]).to(payload.dtype)
    out["energy"] = (rms * keep).to(energy.dtype)
    out["dominant_channel"] = torch.where(real, out["energy"].argmax(dim=-1), batch["dominant_channel"])
    return out
