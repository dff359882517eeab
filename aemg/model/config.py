"""Model and pre-training configuration: frozen dataclasses, presets, TOML/JSON loading.

A run is described by :class:`PretrainConfig` = :class:`ModelConfig` (architecture, shapes) +
:class:`TrainConfig` (optimisation, schedule). Presets: ``tiny`` (CPU demo, minutes on 2 cores),
``base`` (d=256, depth 6, 8 heads) and ``large`` (d=512, depth 12, 16 heads).

A config file holds one table per part and may start from a preset::

    preset = "tiny"
    [model]
    codebook_size = 256
    [train]
    stage1_steps = 300
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field

from .._config import dataclass_from_dict, read_table
from ..errors import ConfigError
from .targets import check_band_edges


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the AEMG model (both stages).

    Attributes
    ----------
    token_len : int
        Samples per token (L); payloads are (C, L) per token, any C. A new pre-training run takes
        it from its corpus (default 125 = 0.25 s at the standard 500 Hz).
    d_model, depth, heads, mlp_dim : int
        Transformer width, number of blocks, attention heads, MLP hidden size.
    conv_channels, conv_kernel : int
        Per-channel temporal convolution of the token encoder: feature maps and kernel size.
    channel_dim : int
        Width of each channel's feature vector before geometry-weighted channel pooling.
    pool_heads : int
        Attention-pooling heads that combine channels into one token vector (any channel count).
    geometry_freqs : int
        Fourier harmonics of the electrode angle fed to the spatial embedding.
    max_tokens : int
        Longest sentence the model accepts (tokens, without CLS).
    codebook_size, code_dim : int
        Stage 1 vocabulary size K and codeword dimension D (l2-normalised, cosine distance).
    commitment : float
        Weight of the commitment loss ||z - sg(q)||^2 on unit vectors.
    ema_decay : float
        Decay of the EMA codebook updates.
    usage_window : int
        Steps of the code-usage window: a code not chosen in the last ``usage_window`` steps is
        restarted from an encoding of the current batch; "codes used" and the logged perplexity
        are counted over the same window.
    token_rate : float
        Sampling rate of the tokens, Hz (a new run takes it from its corpus; 500 = standard).
    envelope_windows : int
        Sub-windows W of the stage-1 envelope target (see aemg.model.targets).
    band_edges_hz : tuple of float
        Band edges (Hz) of the stage-1 spectrum target, B + 1 values.
    vq_depth, decoder_depth : int
        Transformer blocks of the stage-1 encoder and of the reconstruction decoder.
    mask_ratio : float
        Share of real tokens masked in stage 2.
    dropout : float
        Dropout in the Transformer blocks.
    """

    name: str = "custom"
    token_len: int = 125
    d_model: int = 64
    depth: int = 2
    heads: int = 4
    mlp_dim: int = 128
    conv_channels: int = 8
    conv_kernel: int = 7
    channel_dim: int = 32
    pool_heads: int = 4
    geometry_freqs: int = 4
    max_tokens: int = 256
    codebook_size: int = 256
    code_dim: int = 32
    commitment: float = 0.25
    ema_decay: float = 0.99
    usage_window: int = 50
    token_rate: float = 500.0
    envelope_windows: int = 5
    band_edges_hz: tuple = (10.0, 30.0, 60.0, 100.0, 150.0, 250.0)
    vq_depth: int = 2
    decoder_depth: int = 2
    mask_ratio: float = 0.5
    dropout: float = 0.0

    def __post_init__(self):
        for f in ("token_len", "d_model", "depth", "heads", "mlp_dim", "conv_channels", "conv_kernel",
                  "channel_dim", "pool_heads", "max_tokens", "codebook_size", "code_dim", "vq_depth",
                  "decoder_depth", "usage_window", "envelope_windows"):
            if int(getattr(self, f)) < 1:
                raise ConfigError(f"model.{f}={getattr(self, f)!r}: must be a positive integer")
        if self.d_model % self.heads:
            raise ConfigError(f"model.d_model={self.d_model}: not divisible by heads={self.heads}")
        if self.channel_dim % self.pool_heads:
            raise ConfigError(f"model.channel_dim={self.channel_dim}: not divisible "
                              f"by pool_heads={self.pool_heads}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(f"model.mask_ratio={self.mask_ratio}: must be in (0, 1)")
        if not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"model.ema_decay={self.ema_decay}: must be in (0, 1)")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout={self.dropout}: must be in [0, 1)")
        if not (math.isfinite(self.token_rate) and self.token_rate > 0):
            raise ConfigError(f"model.token_rate={self.token_rate!r}: must be a positive rate in Hz")
        try:
            object.__setattr__(self, "band_edges_hz", check_band_edges(self.band_edges_hz))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"model.band_edges_hz={self.band_edges_hz!r}: {exc}") from None


@dataclass(frozen=True)
class AugmentConfig:
    """Nuisance augmentation of pre-training (:mod:`aemg.train.augment`); ranges, 0 = off.

    Attributes
    ----------
    channel_gain_db : float
        Std of an independent per-channel gain, dB (20 log10).
    global_gain_db : float
        Std of one gain for all channels, dB.
    rotation : float
        Largest armband rotation, in positions of the standard ring (fractional: uniform in
        [-rotation, rotation], linear interpolation between neighbouring channels around the ring).
    noise : float
        RMS of additive white noise, standard units (rest sits near 1).
    rate_jitter : float
        Largest relative change of the time scale (uniform in [1 - j, 1 + j]; linear resampling).
    consistency : float
        Weight of the consistency term (1 - cosine between the augmented and clean code vectors).
    """

    channel_gain_db: float = 0.0
    global_gain_db: float = 0.0
    rotation: float = 0.0
    noise: float = 0.0
    rate_jitter: float = 0.0
    consistency: float = 0.0

    def __post_init__(self):
        for f in ("channel_gain_db", "global_gain_db", "rotation", "noise", "rate_jitter", "consistency"):
            v = getattr(self, f)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ConfigError(f"augment.{f}={v!r}: must be a finite number >= 0")
        if self.rate_jitter >= 0.5:
            raise ConfigError(f"augment.rate_jitter={self.rate_jitter!r}: must be < 0.5")

    @property
    def active(self) -> bool:
        return any((self.channel_gain_db, self.global_gain_db, self.rotation, self.noise, self.rate_jitter))

    @classmethod
    def from_train(cls, train) -> "AugmentConfig":
        """The augmentation fields of a :class:`~aemg.model.config.TrainConfig` (``aug_*``)."""
        return cls(channel_gain_db=train.aug_channel_gain_db, global_gain_db=train.aug_global_gain_db,
                   rotation=train.aug_rotation, noise=train.aug_noise, rate_jitter=train.aug_rate_jitter,
                   consistency=train.aug_consistency)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and schedule of :func:`aemg.train.pretrain`.

    Attributes
    ----------
    stage1_steps, stage2_steps : int
        Optimiser steps of the VQ stage and of the masked-token stage.
    batch_size : int
        Global batch, sentences per step (split across DDP processes).
    lr, weight_decay, warmup_steps, grad_clip : float/int
        AdamW learning rate (cosine decay to 10 % after linear warm-up), weight decay, warm-up
        steps, gradient-norm clip (0 = off).
    kmeans_iters : int
        Spherical k-means iterations that initialise the codebook.
    vq_warmup_steps : int
        Stage-1 steps trained without quantisation (the decoder reads the unit encodings), so the
        k-means initialisation sees trained, not random, encoder outputs.
    kmeans_batches : int
        Batches whose encodings initialise the codebook (the last ones before quantisation starts,
        re-encoded with the current weights) and whose targets set the standardisation statistics
        (the first ones).
    log_every, checkpoint_every : int
        Steps between CSV log rows and between checkpoints.
    amp : bool
        bfloat16 autocast on CUDA (ignored on CPU).
    aug_channel_gain_db, aug_global_gain_db, aug_rotation, aug_noise, aug_rate_jitter, aug_consistency : float
        Nuisance augmentation of the encoder's input and the weight of the two-view consistency
        term (:class:`aemg.train.augment.AugmentConfig`; all 0 = off, the default).
    """

    stage1_steps: int = 300
    stage2_steps: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 20
    grad_clip: float = 1.0
    kmeans_iters: int = 10
    vq_warmup_steps: int = 0
    kmeans_batches: int = 1
    log_every: int = 10
    checkpoint_every: int = 100
    amp: bool = True
    aug_channel_gain_db: float = 0.0
    aug_global_gain_db: float = 0.0
    aug_rotation: float = 0.0
    aug_noise: float = 0.0
    aug_rate_jitter: float = 0.0
    aug_consistency: float = 0.0

    def __post_init__(self):
        AugmentConfig.from_train(self)  # validates the aug_* ranges
        for f in ("stage1_steps", "stage2_steps", "warmup_steps", "kmeans_iters", "vq_warmup_steps"):
            if int(getattr(self, f)) < 0:
                raise ConfigError(f"train.{f}={getattr(self, f)!r}: must be >= 0")
        for f in ("batch_size", "log_every", "checkpoint_every", "kmeans_batches"):
            if int(getattr(self, f)) < 1:
                raise ConfigError(f"train.{f}={getattr(self, f)!r}: must be >= 1")
        if not self.lr > 0:
            raise ConfigError(f"train.lr={self.lr!r}: must be > 0")


@dataclass(frozen=True)
class PretrainConfig:
    """A whole pre-training run: ``model`` + ``train``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, *, where: str = "config") -> PretrainConfig:
        """Build from a mapping ``{"preset"?, "model": {...}, "train": {...}}`` on top of the preset
        (default: the dataclass defaults); unknown keys at any depth raise ConfigError naming their
        key path (:func:`aemg._config.dataclass_from_dict`)."""
        d = dict(d)
        base = preset(d.pop("preset")) if "preset" in d else cls()
        return dataclass_from_dict(base, d, where)


PRESETS: dict[str, PretrainConfig] = {
    # Trains both stages on ~50k tokens in minutes on 2 CPU cores.
    "tiny": PretrainConfig(
        ModelConfig(name="tiny", d_model=64, depth=2, heads=4, mlp_dim=128, conv_channels=8,
                    channel_dim=32, pool_heads=4, codebook_size=256, code_dim=32, vq_depth=2,
                    decoder_depth=1),
        TrainConfig(stage1_steps=300, stage2_steps=300, batch_size=32, lr=1e-3, warmup_steps=20,
                    checkpoint_every=100, vq_warmup_steps=30, kmeans_batches=8)),
    "base": PretrainConfig(
        ModelConfig(name="base", d_model=256, depth=6, heads=8, mlp_dim=1024, conv_channels=16,
                    channel_dim=64, pool_heads=4, codebook_size=8192, code_dim=64, vq_depth=4,
                    decoder_depth=2, dropout=0.1, usage_window=200),
        TrainConfig(stage1_steps=20000, stage2_steps=50000, batch_size=64, lr=5e-4, warmup_steps=1000,
                    checkpoint_every=1000, log_every=50, vq_warmup_steps=500, kmeans_batches=16)),
    "large": PretrainConfig(
        ModelConfig(name="large", d_model=512, depth=12, heads=16, mlp_dim=2048, conv_channels=32,
                    channel_dim=128, pool_heads=8, codebook_size=8192, code_dim=64, vq_depth=6,
                    decoder_depth=2, dropout=0.1, usage_window=200),
        TrainConfig(stage1_steps=30000, stage2_steps=100000, batch_size=128, lr=3e-4, warmup_steps=2000,
                    checkpoint_every=1000, log_every=50, vq_warmup_steps=1000, kmeans_batches=16)),
}


def preset(name: str) -> PretrainConfig:
    """The preset ``name`` (``tiny``, ``base`` or ``large``)."""
    if name not in PRESETS:
        raise ConfigError(f"preset {name!r}: unknown; choose from {sorted(PRESETS)}")
    return PRESETS[name]


def load_config(path: str | os.PathLike) -> PretrainConfig:
    """Read a :class:`PretrainConfig` from a ``.toml`` or ``.json`` file (see module docstring)."""
    return PretrainConfig.from_dict(read_table(path), where=f"{path}:")
