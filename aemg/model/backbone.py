"""Pre-LayerNorm Transformer over token sentences, with CLS and learnable mask tokens."""
from __future__ import annotations

import os

import torch
from torch import nn

from ..ops import masked_attention
from ..tokenizer.sentence import TIME_FIELDS
from .config import ModelConfig
from .embeddings import SpatialEmbedding, TemporalEmbedding
from .encoder import TokenEncoder

#: Run the token encoder on the real tokens only (True) or on every padded position (False, the
#: behaviour before session 5, kept for before/after figures in benchmarks/test_bench_pretrain.py).
#: Padding never reaches a real position (attention masks padded keys; every loss and pooling
#: reads real positions only) and a masked token's vector is replaced by the mask token, so both
#: compute the same function; the results differ by float rounding only (the convolutions and
#: matrix products see other shapes). Packing skips the encoder's convolutions, most of a step's
#: time, for the padding (about 20 % of a 3DC batch's positions) and, in stage 2, for the masked
#: half of the real tokens. ``AEMG_PACK_TOKENS=0`` in the environment restores the padded path
#: (session 4 and before: what reproduces older checkpoints, e.g. the shipped aemg-tiny, bit for bit).
PACK_REAL_TOKENS = os.environ.get("AEMG_PACK_TOKENS", "1") != "0"


class Block(nn.Module):
    """Pre-LN Transformer block: x + Attn(LN(x)); x + MLP(LN(x))."""

    def __init__(self, d: int, heads: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        a = masked_attention(q, k, v, key_padding_mask)  # (B, H, L, Dh); aemg.ops dispatch
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(B, L, D)))
        return x + self.drop(self.mlp(self.ln2(x)))


class Transformer(nn.Module):
    """A stack of pre-LN blocks and a final LayerNorm."""

    def __init__(self, d: int, depth: int, heads: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.blocks = nn.ModuleList(Block(d, heads, mlp_dim, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(d)

    def forward(self, x, key_padding_mask):
        for blk in self.blocks:
            x = blk(x, key_padding_mask)
        return self.norm(x)


class Backbone(nn.Module):
    """Token encoder + spatial/temporal/order embeddings + CLS + mask token + Transformer.

    ``forward(batch, angles, z, masked=None)`` with ``batch`` the tensors of a corpus batch (keys
    :data:`aemg.tokenizer.sentence.BATCH_KEYS`: payload (B,N,C,L), energy (B,N,C), onset_in_event_s,
    onset_in_trial_s, duration_s (B,N) seconds, event_index, order, dominant_channel (B,N) int64,
    mask (B,N) bool True = real), electrode ``angles``
    and ``z`` (C,), and ``masked`` (B,N) bool marking tokens replaced by the mask token.
    Returns (B, 1+N, d_model): index 0 is the CLS token.
    """

    def __init__(self, cfg: ModelConfig, depth: int):
        super().__init__()
        d = cfg.d_model
        self.encoder = TokenEncoder(cfg)
        self.temporal = TemporalEmbedding(d)
        self.dominant = SpatialEmbedding(d, cfg.geometry_freqs)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.mask_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.transformer = Transformer(d, depth, cfg.heads, cfg.mlp_dim, cfg.dropout)

    def encode_tokens(self, batch: dict, angles: torch.Tensor, z: torch.Tensor,
                      skip: torch.Tensor | None = None) -> torch.Tensor:
        """Token encoder outputs (B, N, d). With :data:`PACK_REAL_TOKENS` the encoder sees only the
        real tokens not in ``skip`` (B, N) bool (the masked ones, whose vectors the mask token
        replaces) and the other positions are zeros; else it encodes every position."""
        keep = batch["mask"] if skip is None else batch["mask"] & ~skip
        if not PACK_REAL_TOKENS or bool(keep.all()):
            return self.encoder(batch["payload"], batch["energy"], angles, z)
        h = self.encoder(batch["payload"][keep][None], batch["energy"][keep][None], angles, z)[0]  # (n, d)
        return h.new_zeros(*keep.shape, h.shape[-1]).index_put((keep,), h)

    def forward(self, batch: dict, angles: torch.Tensor, z: torch.Tensor,
                masked: torch.Tensor | None = None) -> torch.Tensor:
        x = self.encode_tokens(batch, angles, z, masked)  # (B, N, d)
        if masked is not None:
            x = torch.where(masked[..., None], self.mask_token.to(x.dtype), x)
        dom = self.dominant(angles, z)[batch["dominant_channel"].clamp(0, angles.numel() - 1)]  # (B, N, d)
        if masked is not None:  # the dominant channel describes the token's content: hide it too
            dom = dom * (~masked)[..., None]
        x = x + self.temporal(*(batch[k] for k in TIME_FIELDS), batch["order"], batch["event_index"]) + dom
        B = x.shape[0]
        x = torch.cat([self.cls.expand(B, -1, -1).to(x.dtype), x], dim=1)
        kpm = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=x.device), batch["mask"]], dim=1)
        return self.transformer(x, kpm)
