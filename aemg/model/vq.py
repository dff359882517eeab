"""Stage-1 vector quantiser: l2-normalised codebook, cosine distance, k-means init, EMA updates,
dead-code restart over a usage window.

Every vector is unit length, so the squared distance ||z - c||^2 = 2 - 2 cos(z, c) is used both to
pick the nearest codeword and in the commitment loss (the published code mixed normalised and
unnormalised codewords). Under torch.distributed, assignment statistics are summed over processes
so every process keeps the same codebook.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..ops import vq_lookup  # noqa: F401 - (indices, squared distances) of unit vectors


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _gather_rows(x: torch.Tensor) -> torch.Tensor:
    """All processes' rows of ``x`` (N_r, D) concatenated in rank order."""
    if not is_distributed():
        return x
    n = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, n)
    m = int(max(s.item() for s in sizes))
    pad = torch.zeros(m, x.shape[1], dtype=x.dtype, device=x.device)
    pad[: x.shape[0]] = x
    out = [torch.zeros_like(pad) for _ in sizes]
    dist.all_gather(out, pad)
    return torch.cat([o[: int(s.item())] for o, s in zip(out, sizes)])


def spherical_kmeans(x: torch.Tensor, k: int, iters: int, generator: torch.Generator) -> torch.Tensor:
    """K unit-length centroids of unit vectors ``x`` (N, D) by spherical k-means (cosine).

    Starts from ``k`` rows drawn without replacement (with replacement plus small noise when
    N < k); empty clusters keep their previous centroid.
    """
    n, d = x.shape
    if n >= k:
        c = x[torch.randperm(n, generator=generator)[:k].to(x.device)].clone()
    else:
        c = (x[torch.randint(n, (k,), generator=generator).to(x.device)]
             + 0.01 * torch.randn(k, d, generator=generator).to(x.device))
        c = F.normalize(c, dim=1)
    for _ in range(iters):
        idx = (x @ c.t()).argmax(dim=1)
        sums = torch.zeros_like(c).index_add_(0, idx, x)
        counts = torch.bincount(idx, minlength=k)
        c = torch.where(counts[:, None] > 0, F.normalize(sums, dim=1), c)
    return c


class VectorQuantizer(nn.Module):
    """EMA vector quantiser over unit vectors, with a usage window and dead-code restarts.

    Buffers: ``codebook`` (K, D) unit rows; ``ema_count`` (K,) and ``ema_sum`` (K, D) EMA
    assignment counts and sums (codeword = normalised ``ema_sum``: on the unit sphere the
    Laplace-smoothed mean ``ema_sum / smoothed count`` has the same direction, so smoothing the
    counts would change nothing; codes with no mass keep their codeword); ``window_counts``
    (window, K) assignments in each of the last ``window`` training steps (a ring); ``last_used``
    (K,) the step (since initialisation) a code was last chosen or restarted; ``steps`` (scalar)
    training steps since initialisation; ``initialised`` (scalar bool).

    A code not chosen for ``window`` steps is restarted from an encoding of the current batch,
    drawn with probability proportional to its distance to its own codeword (the worst-quantised
    encodings, which splits crowded regions). "Codes used" and the window perplexity count real
    assignments only, so restarts do not inflate them.
    """

    def __init__(self, k: int, dim: int, *, decay: float = 0.99, commitment: float = 0.25, window: int = 50):
        super().__init__()
        self.k, self.dim, self.decay, self.commitment, self.window = k, dim, decay, commitment, int(window)
        self.register_buffer("codebook", F.normalize(torch.randn(k, dim), dim=1))
        self.register_buffer("ema_count", torch.zeros(k))
        self.register_buffer("ema_sum", torch.zeros(k, dim))
        self.register_buffer("window_counts", torch.zeros(self.window, k))
        self.register_buffer("last_used", torch.zeros(k, dtype=torch.long))
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long))
        self.register_buffer("initialised", torch.tensor(False))

    @torch.no_grad()
    def initialise(self, z: torch.Tensor, iters: int, generator: torch.Generator) -> None:
        """k-means initialisation from unit vectors ``z`` (N, D) (gathered over processes)."""
        z = _gather_rows(z.float())
        c = spherical_kmeans(z, self.k, iters, generator)
        self.codebook.copy_(c)
        counts = torch.bincount((z @ c.t()).argmax(dim=1), minlength=self.k).float()
        self.ema_count.copy_(counts)
        self.ema_sum.copy_(c * counts[:, None].clamp_min(1.0))
        self.window_counts.zero_()
        self.last_used.zero_()
        self.steps.zero_()
        self.initialised.fill_(True)

    def forward(self, z: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """Quantise unit vectors ``z`` (N, D) (real tokens only).

        Returns a dict: ``quantized`` (N, D) with straight-through gradient, ``indices`` (N,),
        ``commit_sum`` (sum over rows of ||z - sg(q)||^2 = 2 - 2 cos, the same distance as the
        lookup; divide by the global token count), ``counts`` (K,) assignments in this batch
        (summed over processes in training). In training mode the codebook is updated by EMA, the
        usage window advances and dead codes are restarted (needs ``generator``).
        """
        z32 = z.float()
        idx, dist2 = vq_lookup(z32.detach(), self.codebook)
        q = self.codebook[idx]
        commit_sum = ((z32 - q.detach()) ** 2).sum()
        counts = torch.bincount(idx, minlength=self.k).float()
        if self.training:
            with torch.no_grad():
                sums = torch.zeros_like(self.ema_sum).index_add_(0, idx, z32.detach())
                if is_distributed():
                    dist.all_reduce(counts)
                    dist.all_reduce(sums)
                self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
                self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
                self.codebook.copy_(torch.where(self.ema_count[:, None] > 1e-8,
                                                F.normalize(self.ema_sum, dim=1), self.codebook))
                step = int(self.steps)
                self.window_counts[step % self.window] = counts
                self.last_used[counts > 0] = step
                self.steps.add_(1)
                self._restart_dead(z32.detach(), dist2, generator)
        quantized = z + (q.to(z.dtype) - z).detach()
        return {"quantized": quantized, "indices": idx, "commit_sum": commit_sum, "counts": counts}

    @torch.no_grad()
    def _restart_dead(self, z: torch.Tensor, dist2: torch.Tensor, generator: torch.Generator | None) -> None:
        step = int(self.steps) - 1
        dead = (step - self.last_used) >= self.window
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        pool = _gather_rows(z)
        if pool.shape[0] == 0:
            return
        if generator is None:
            raise RuntimeError("VectorQuantizer: a generator is needed to restart dead codes")
        weight = _gather_rows(dist2.float()[:, None])[:, 0].clamp_min(0).cpu().double() + 1e-6
        pick = torch.multinomial(weight, n_dead, replacement=n_dead > pool.shape[0], generator=generator)
        noise = torch.randn(n_dead, self.dim, generator=generator).to(pool.device)
        new = F.normalize(pool[pick.to(pool.device)] + 0.01 * noise, dim=1)
        self.codebook[dead] = new
        self.ema_sum[dead] = new
        self.ema_count[dead] = 1.0
        self.last_used[dead] = step

    def window_stats(self) -> tuple[int, float]:
        """(codes chosen at least once in the last ``window`` steps, perplexity of the code
        distribution over those steps)."""
        total = self.window_counts.sum(dim=0)
        return int((total > 0).sum()), perplexity(total)

    def usage(self) -> float:
        """Share of the K codes chosen at least once in the last ``window`` training steps."""
        return self.window_stats()[0] / self.k


def perplexity(counts: torch.Tensor) -> float:
    """exp(entropy) of the code distribution given by ``counts`` (K,); 1 = one code, K = uniform."""
    total = float(counts.sum())
    if total <= 0:
        return 0.0
    p = counts[counts > 0].double() / total
    return float(math.exp(-(p * p.log()).sum()))
