"""The AEMG model: stage-1 VQ tokenizer (encoder, codebook, decoder) and stage-2 masked-token
backbone, in one module so one checkpoint holds both."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..tokenizer.sentence import BATCH_KEYS  # noqa: F401 - the keys of a corpus batch the model reads
from .backbone import Backbone, Transformer
from .config import ModelConfig
from .embeddings import SpatialEmbedding
from .targets import TARGET_PARTS, flatten_features, n_target_features, standardise, token_targets
from .vq import VectorQuantizer, is_distributed, vq_lookup


class Decoder(nn.Module):
    """Target decoder: codewords -> Transformer -> a per-channel head that maps the token vector
    plus the channel's spatial embedding to the channel's standardised targets (1 spatial value,
    W envelope values, B band powers), and a token head for the level (see aemg.model.targets).

    ``forward(codes (B, N, D), kpm (B, 1+N) bool, angles (C,), z (C,))`` -> dict ``spatial``
    (B, 1+N, C), ``level`` (B, 1+N, 1), ``envelope`` (B, 1+N, C, W), ``spectrum`` (B, 1+N, C, B).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.windows = cfg.envelope_windows
        self.inp = nn.Linear(cfg.code_dim, d)
        self.transformer = Transformer(d, cfg.decoder_depth, cfg.heads, cfg.mlp_dim, cfg.dropout)
        self.spatial = SpatialEmbedding(d, cfg.geometry_freqs)
        n_bands = len(cfg.band_edges_hz) - 1
        self.head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1 + self.windows + n_bands))
        self.level = nn.Linear(d, 1)

    def forward(self, codes, kpm, angles, z) -> dict:
        h = self.transformer(self.inp(codes), kpm)  # (B, N, d)
        out = self.head(h[:, :, None, :] + self.spatial(angles, z))  # (B, N, C, 1+W+B)
        W = self.windows
        return {"spatial": out[..., 0], "level": self.level(h), "envelope": out[..., 1:1 + W],
                "spectrum": out[..., 1 + W:]}


class AEMG(nn.Module):
    """AEMG: both pre-training stages.

    Stage 1 (``stage1_losses``): ``vq_encoder`` (Backbone) -> linear to ``code_dim`` ->
    l2-normalise -> ``quantizer`` (cosine lookup and loss; the codebook is the vocabulary) ->
    ``decoder`` predicts each token's standardised physiological targets
    (:func:`aemg.model.targets.token_targets`: spatial log-energy pattern, level, 5-window envelope,
    band powers), not its z-scored samples (unpredictable noise). Stage 2 (``stage2_losses``):
    ``backbone`` (Backbone) sees the sentence with a share of tokens replaced by the mask token, and
    ``mtm_head`` predicts the frozen stage-1 codebook index of each masked token. :meth:`embed`
    returns the backbone's embeddings.

    Buffers ``target_mean`` / ``target_std`` (2 + W + B,) standardise the targets per feature
    (order of :data:`aemg.model.targets.TARGET_PARTS`); set once by :meth:`init_target_stats` from
    the first batches and kept in checkpoints.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.vq_encoder = Backbone(cfg, cfg.vq_depth)
        self.to_code = nn.Linear(cfg.d_model, cfg.code_dim)
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.code_dim, decay=cfg.ema_decay,
                                         commitment=cfg.commitment, window=cfg.usage_window)
        self.decoder = Decoder(cfg)
        self.backbone = Backbone(cfg, cfg.depth)
        self.mtm_head = nn.Sequential(nn.LayerNorm(cfg.d_model), nn.Linear(cfg.d_model, cfg.codebook_size))
        nf = n_target_features(cfg.envelope_windows, len(cfg.band_edges_hz) - 1)
        self.register_buffer("target_mean", torch.zeros(nf))
        self.register_buffer("target_std", torch.ones(nf))
        self.register_buffer("targets_ready", torch.tensor(False))

    def forward(self, stage: int, batch: dict, angles, z, extra=None, quantize: bool = True) -> dict:
        """The losses of ``stage`` (1: :meth:`stage1_losses` with ``extra`` = generator and
        ``quantize``; 2: :meth:`stage2_losses` with ``extra`` = masked positions), so DDP can wrap
        the model."""
        if stage == 1:
            return self.stage1_losses(batch, angles, z, extra, quantize=quantize)
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

    def raw_targets(self, batch: dict) -> dict:
        """:func:`~aemg.model.targets.token_targets` of a batch's tokens (unstandardised),
        each (B, N, ...)."""
        return token_targets(batch["payload"], batch["energy"], rate=self.cfg.token_rate,
                             windows=self.cfg.envelope_windows, band_edges_hz=self.cfg.band_edges_hz)

    @torch.no_grad()
    def init_target_stats(self, batches) -> None:
        """Set ``target_mean``/``target_std`` from the real tokens of ``batches`` (a list of
        batch dicts; summed over processes under torch.distributed)."""
        nf = self.target_mean.numel()
        acc = torch.zeros(3, nf, dtype=torch.float64, device=self.target_mean.device)
        for b in batches:
            t = self.raw_targets(b)
            t = {k: v[b["mask"]] for k, v in t.items()}
            for j, v in enumerate(flatten_features(t)):
                v = v.double()
                acc[0, j] += v.numel()
                acc[1, j] += v.sum()
                acc[2, j] += (v * v).sum()
        if is_distributed():
            torch.distributed.all_reduce(acc)
        n = acc[0].clamp_min(1)
        mean = acc[1] / n
        var = (acc[2] / n - mean * mean).clamp_min(0)
        self.target_mean.copy_(mean.float())
        self.target_std.copy_(var.sqrt().clamp_min(1e-3).float())
        self.targets_ready.fill_(True)

    def stage1_losses(self, batch: dict, angles, z, generator: torch.Generator | None = None, *,
                      quantize: bool = True) -> dict:
        """Stage-1 losses, sums over real tokens (divide by the global token count).

        ``{part}_sum`` for each part of :data:`~aemg.model.targets.TARGET_PARTS`: squared error of
        the standardised target, mean over the part's values of the token (envelope and spectrum
        over valid channels only); ``{part}_base_sum``: the same for the trivial prediction "the
        batch mean" (logged, not trained); ``rec_sum`` = sum of the parts; ``commit_sum``;
        ``counts`` (K,) code assignments; ``n_tokens``. With ``quantize=False`` (the VQ warm-up)
        the decoder reads the unit encodings directly, the codebook is not touched, and
        ``commit_sum`` is 0.
        """
        real = batch["mask"]
        view = batch.get("view")  # nuisance-augmented input (aemg.train.augment); targets stay clean
        zc = self.encode_codes(view if view is not None else batch, angles, z)  # (B, N, D)
        codes = torch.zeros_like(zc)
        if quantize:
            vq = self.quantizer(zc[real], generator)
            codes[real] = vq["quantized"].to(codes.dtype)
            commit_sum, counts = vq["commit_sum"], vq["counts"]
        else:
            codes[real] = zc[real]
            commit_sum = zc.new_zeros(())
            counts = torch.zeros(self.cfg.codebook_size, device=zc.device)
        B = real.shape[0]
        kpm = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=real.device), real], dim=1)
        codes = torch.cat([codes.new_zeros(B, 1, codes.shape[-1]), codes], dim=1)
        pred = self.decoder(codes, kpm, angles, z)
        tgt = standardise(self.raw_targets(batch), self.target_mean, self.target_std)
        valid = tgt["valid"][real].float()  # (n, C)
        nvalid = valid.sum(dim=1).clamp_min(1)
        out = {}
        for part in TARGET_PARTS:
            p = pred[part][:, 1:][real].float()
            t = tgt[part][real]
            base = t.mean(dim=0, keepdim=True) if t.shape[0] else t
            for name, guess in ((part, p), (part + "_base", base.expand_as(t))):
                err = (guess - t) ** 2
                if part in ("envelope", "spectrum"):  # (n, C, F): valid channels only
                    per_tok = (err.mean(dim=-1) * valid).sum(dim=1) / nvalid
                else:
                    per_tok = err.mean(dim=-1)
                out[name + "_sum"] = per_tok.sum() if name == part else per_tok.sum().detach()
        out["rec_sum"] = sum(out[p + "_sum"] for p in TARGET_PARTS)
        if view is not None:  # consistency: the augmented token's code vector -> the clean one's
            clean = self.encode_codes(batch, angles, z).detach()
            out["inv_sum"] = (1 - (zc[real] * clean[real]).sum(dim=-1)).sum()
        out.update(commit_sum=commit_sum, counts=counts, n_tokens=real.sum())
        return out

    @torch.no_grad()
    def prototypes(self, indices: torch.Tensor, angles, z) -> torch.Tensor:
        """What the decoder makes of codewords ``indices`` (K',) each alone in a sentence: the
        learned contraction prototypes as a channels x time image, (K', C, W) = per-channel log RMS
        in each envelope sub-window relative to the token's mean log energy (spatial + envelope,
        de-standardised; natural-log units)."""
        codes = self.quantizer.codebook[indices][:, None, :]  # (K', 1, D)
        kpm = torch.ones(codes.shape[0], 2, dtype=torch.bool, device=codes.device)
        codes = torch.cat([torch.zeros_like(codes), codes], dim=1)
        pred = self.decoder(codes, kpm, angles, z)
        m, s, W = self.target_mean, self.target_std, self.cfg.envelope_windows
        spatial = pred["spatial"][:, 1] * s[0] + m[0]  # (K', C)
        env = pred["envelope"][:, 1] * s[2:2 + W] + m[2:2 + W]  # (K', C, W)
        return spatial[..., None] + env

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
        (cross-entropy against the frozen stage-1 indices), ``correct`` (argmax hits),
        ``n_tokens`` (masked tokens) and ``target_counts`` (K,) of the target indices (for the
        trivial "most frequent code" baseline)."""
        with torch.no_grad():
            was = self.vq_encoder.training
            self.vq_encoder.eval()
            zc = self.encode_codes(batch, angles, z)
            self.vq_encoder.train(was)
        target, _ = vq_lookup(zc[masked], self.quantizer.codebook)
        view = batch.get("view")  # augmented context, clean targets (aemg.train.augment)
        h = self.backbone(view if view is not None else batch, angles, z, masked=masked)[:, 1:]
        logits = self.mtm_head(h[masked]).float()
        ce_sum = F.cross_entropy(logits, target, reduction="sum")
        correct = (logits.argmax(dim=1) == target).sum()
        counts = torch.bincount(target, minlength=self.cfg.codebook_size)
        return {"ce_sum": ce_sum, "correct": correct, "n_tokens": masked.sum(), "target_counts": counts}

    # -- embeddings ---------------------------------------------------------------------------
    @torch.no_grad()
    def embed(self, batch: dict, angles, z) -> dict:
        """Embeddings of a batch: ``cls`` (B, d), ``sentence`` (B, d) mean of real tokens,
        ``tokens`` (B, N, d) (zeros at padding)."""
        h = self.backbone(batch, angles, z)
        tok = h[:, 1:] * batch["mask"][..., None]
        return {"cls": pool(h, batch["mask"], "cls"), "sentence": pool(h, batch["mask"], "mean"),
                "tokens": tok}


def pool(h, mask, pooling: str = "mean"):
    """Sentence embedding from a backbone output: (B, 1+N, d) with the CLS output first -> (B, d).

    ``"mean"``: mean of the real tokens (``mask`` (B, N) True = real; zero for an empty sentence);
    ``"cls"``: the CLS output. Differentiable (used for fine-tuning too).
    """
    if pooling == "cls":
        return h[:, 0]
    real = mask[..., None].to(h.dtype)
    return (h[:, 1:] * real).sum(dim=1) / real.sum(dim=1).clamp_min(1)
