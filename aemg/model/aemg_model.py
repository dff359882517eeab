"""The AEMG model: stage-1 VQ tokenizer (encoder, codebook, decoder) and stage-2 masked-token
backbone, in one module so one checkpoint holds both."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import Backbone, Transformer
from .config import ModelConfig
from .embeddings import SpatialEmbedding
from .vq import VectorQuantizer, vq_lookup

#: keys of a corpus batch the model reads (see aemg.tokenizer.corpus.TokenCorpus.batch)
BATCH_KEYS = ("payload", "energy", "onset_event_s", "onset_trial_s", "duration_s", "event_index",
              "order", "dominant", "mask")


class Decoder(nn.Module):
    """Reconstruction decoder: codewords -> Transformer -> per-channel head that maps the token
    vector plus the channel's spatial embedding to the channel's L samples and its log energy.

    ``forward(codes (B, N, D), kpm (B, 1+N) bool, angles (C,), z (C,))`` ->
    (payload (B, N, C, L), log_energy (B, N, C)).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.inp = nn.Linear(cfg.code_dim, d)
        self.transformer = Transformer(d, cfg.decoder_depth, cfg.heads, cfg.mlp_dim, cfg.dropout)
        self.spatial = SpatialEmbedding(d, cfg.geometry_freqs)
        self.head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, cfg.token_len + 1))

    def forward(self, codes, kpm, angles, z):
        h = self.transformer(self.inp(codes), kpm)  # (B, N, d)
        out = self.head(h[:, :, None, :] + self.spatial(angles, z))  # (B, N, C, L+1)
        return out[..., :-1], out[..., -1]


class AEMG(nn.Module):
    """AEMG: both pre-training stages.

    Stage 1 (``stage1_losses``): ``vq_encoder`` (Backbone) -> linear -> l2-normalise ->
    ``quantizer`` (codebook = vocabulary) -> ``decoder`` reconstructs each token's z-scored samples
    and log energy. Stage 2 (``stage2_losses``): ``backbone`` (Backbone) sees the sentence with a
    share of tokens replaced by the mask token, and ``mtm_head`` predicts the frozen stage-1
    codebook index of each masked token. :meth:`embed` returns the backbone's embeddings.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.vq_encoder = Backbone(cfg, cfg.vq_depth)
        self.to_code = nn.Linear(cfg.d_model, cfg.code_dim)
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.code_dim, decay=cfg.ema_decay,
                                         commitment=cfg.commitment, dead_threshold=cfg.dead_code_threshold)
        self.decoder = Decoder(cfg)
        self.backbone = Backbone(cfg, cfg.depth)
        self.mtm_head = nn.Sequential(nn.LayerNorm(cfg.d_model), nn.Linear(cfg.d_model, cfg.codebook_size))

    def forward(self, stage: int, batch: dict, angles, z, extra=None) -> dict:
        """The losses of ``stage`` (1: :meth:`stage1_losses` with ``extra`` = generator;
        2: :meth:`stage2_losses` with ``extra`` = masked positions), so DDP can wrap the model."""
        if stage == 1:
            return self.stage1_losses(batch, angles, z, extra)
        return self.stage2_losses(batch, angles, z, extra)

    def trainable(self, stage: int) -> list[nn.Parameter]:
        """Parameters trained in ``stage``; sets requires_grad on them and clears it elsewhere."""
        if stage == 1:
            params = self.stage1_parameters()
            skip = {id(self.vq_encoder.mask_token)}  # unused in stage 1
        else:
            params, skip = self.stage2_parameters(), set()
        params = [p for p in params if id(p) not in skip]
        keep = {id(p) for p in params}
        for p in self.parameters():
            p.requires_grad_(id(p) in keep)
        return params

    # -- stage 1 ------------------------------------------------------------------------------
    def stage1_parameters(self):
        return [p for m in (self.vq_encoder, self.to_code, self.decoder) for p in m.parameters()]

    def encode_codes(self, batch: dict, angles, z) -> torch.Tensor:
        """Unit-length code vectors of every position, (B, N, code_dim)."""
        h = self.vq_encoder(batch, angles, z)[:, 1:]
        return F.normalize(self.to_code(h).float(), dim=-1)

    @torch.no_grad()
    def code_indices(self, batch: dict, angles, z) -> torch.Tensor:
        """Codebook index of every real token, (n_real,) int64, in row-major (B, N) order."""
        return vq_lookup(self.encode_codes(batch, angles, z)[batch["mask"]], self.quantizer.codebook)[0]

    def stage1_losses(self, batch: dict, angles, z, generator: torch.Generator | None = None) -> dict:
        """Sums over real tokens (divide by the global token count): ``rec_sum`` (mean squared
        error per token over C x L samples), ``energy_sum`` (log-energy squared error, mean over C),
        ``commit_sum``; plus ``counts`` (K,) code assignments and ``n_tokens``."""
        real = batch["mask"]
        zc = self.encode_codes(batch, angles, z)  # (B, N, D)
        vq = self.quantizer(zc[real], generator)
        codes = torch.zeros_like(zc)
        codes[real] = vq["quantized"].to(codes.dtype)
        B = real.shape[0]
        kpm = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=real.device), real], dim=1)
        codes = torch.cat([codes.new_zeros(B, 1, codes.shape[-1]), codes], dim=1)
        rec, loge = self.decoder(codes, kpm, angles, z)
        rec, loge = rec[:, 1:].float(), loge[:, 1:].float()
        target_e = torch.log(batch["energy"].float().clamp_min(0) + 1e-6)
        rec_sum = ((rec - batch["payload"].float()) ** 2).mean(dim=(-1, -2))[real].sum()
        energy_sum = ((loge - target_e) ** 2).mean(dim=-1)[real].sum()
        return {"rec_sum": rec_sum, "energy_sum": energy_sum, "commit_sum": vq["commit_sum"],
                "counts": vq["counts"], "n_tokens": real.sum()}

    @torch.no_grad()
    def prototypes(self, indices: torch.Tensor, angles, z) -> torch.Tensor:
        """The decoder's reconstruction of codewords ``indices`` (K',) each alone in a sentence:
        the learned contraction prototypes, (K', C, L) z-scored samples."""
        codes = self.quantizer.codebook[indices][:, None, :]  # (K', 1, D)
        kpm = torch.ones(codes.shape[0], 2, dtype=torch.bool, device=codes.device)
        codes = torch.cat([torch.zeros_like(codes), codes], dim=1)
        rec, _ = self.decoder(codes, kpm, angles, z)
        return rec[:, 1]

    # -- stage 2 ------------------------------------------------------------------------------
    def stage2_parameters(self):
        return [p for m in (self.backbone, self.mtm_head) for p in m.parameters()]

    def sample_mask(self, real: torch.Tensor, seeds) -> torch.Tensor:
        """Mask round(mask_ratio * n) of each sentence's n real tokens (at least one).

        Parameters
        ----------
        real : Tensor, shape (B, N), bool
        seeds : sequence of int, length B
            One seed per sentence, so a sentence's mask does not depend on the batch it is in
            (single-process and multi-process runs mask alike).

        Returns
        -------
        Tensor, shape (B, N), bool
        """
        masked = torch.zeros_like(real)
        counts = real.sum(dim=1).tolist()
        for b, (n, seed) in enumerate(zip(counts, seeds)):
            if n == 0:
                continue
            k = min(n, max(1, int(round(n * self.cfg.mask_ratio))))
            g = torch.Generator().manual_seed(int(seed))
            pos = real[b].nonzero().squeeze(1)[torch.randperm(n, generator=g)[:k].to(real.device)]
            masked[b, pos] = True
        return masked

    def stage2_losses(self, batch: dict, angles, z, masked: torch.Tensor) -> dict:
        """Sums over the ``masked`` (B, N) tokens (see :meth:`sample_mask`): ``ce_sum``
        (cross-entropy against the frozen stage-1 indices), ``correct`` (argmax hits) and
        ``n_tokens`` (masked tokens)."""
        with torch.no_grad():
            was = self.vq_encoder.training
            self.vq_encoder.eval()
            zc = self.encode_codes(batch, angles, z)
            self.vq_encoder.train(was)
        target, _ = vq_lookup(zc[masked], self.quantizer.codebook)
        h = self.backbone(batch, angles, z, masked=masked)[:, 1:]
        logits = self.mtm_head(h[masked]).float()
        ce_sum = F.cross_entropy(logits, target, reduction="sum")
        correct = (logits.argmax(dim=1) == target).sum()
        return {"ce_sum": ce_sum, "correct": correct, "n_tokens": masked.sum()}

    # -- embeddings ---------------------------------------------------------------------------
    @torch.no_grad()
    def embed(self, batch: dict, angles, z) -> dict:
        """Embeddings of a batch: ``cls`` (B, d), ``sentence`` (B, d) mean of real tokens,
        ``tokens`` (B, N, d) (zeros at padding)."""
        h = self.backbone(batch, angles, z)
        real = batch["mask"]
        tok = h[:, 1:] * real[..., None]
        sent = tok.sum(dim=1) / real.sum(dim=1, keepdim=True).clamp_min(1)
        return {"cls": h[:, 0], "sentence": sent, "tokens": tok}
