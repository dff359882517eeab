"""Benchmarks of the model kernels: VQ nearest-codeword lookup and masked attention.

CPU (always): the VQ reference against the cdist-based variants a user would write, and masked
attention ``torch`` (reference) against ``sdpa`` at the tiny/base presets' shapes with
variable-length sentences; these justify the automatic CPU choice of :mod:`aemg.ops`.

CUDA (only when ``torch.cuda.is_available()``; run with
``AEMG_TEST_CUDA=1 PYTHONPATH=. python -m pytest benchmarks/test_bench_kernels.py``): the Triton
kernels against the references and ``F.scaled_dot_product_attention`` at N=65536, K=8192, D=256
and sentences up to 256 tokens, reporting TFLOP/s, the GPU name and the issue's targets.

Every benchmark checks its results agree before timing; speed is asserted only as ratios measured in
this run. ``--quick`` runs small CPU sizes and only the ratio guard of the automatic choice.
"""
from __future__ import annotations

import math
import os

import harness
import pytest
import torch
import torch.nn.functional as F

from aemg import backends, ops

CUDA = torch.cuda.is_available()
cuda_only = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (run with AEMG_TEST_CUDA=1)")
SUITE = "kernels"


def _lengths(batch: int, max_len: int, seed: int = 0) -> torch.Tensor:
    """Sentence lengths uniform in [max_len // 8, max_len]: the variable lengths of real batches."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(max(1, max_len // 8), max_len + 1, (batch,), generator=g)


def _qkv(batch, heads, length, head_dim, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    # (B, L, H, Dh) -> (B, H, L, Dh) views, the layout a model's qkv projection produces
    return [torch.randn(batch, length, heads, head_dim, generator=g).to(dtype).to(device).transpose(1, 2)
            for _ in range(3)]


def _attention_flops(lengths: torch.Tensor, heads: int, head_dim: int, backward: bool) -> float:
    """Useful FLOPs of attention over the real tokens only: 4 L^2 Dh per head forward, 2.5x that for
    forward + backward (the convention of FlashAttention's benchmarks)."""
    fwd = float((4 * lengths.double() ** 2 * head_dim * heads).sum())
    return fwd * (3.5 if backward else 1.0)


@pytest.fixture
def one_thread():
    """CPU figures are single-threaded: on a shared machine intra-op thread barriers turn other
    processes' load into 10x swings; one thread keeps ratios measured in one run meaningful."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- CPU: VQ lookup


def _vq_cdist(z, codebook):
    d = torch.cdist(z.float(), codebook.float())
    best = d.argmin(1)
    return best, d.gather(1, best[:, None])[:, 0] ** 2


def _vq_cdist_chunked(z, codebook, rows=1024):
    parts = [_vq_cdist(z[i:i + rows], codebook) for i in range(0, z.shape[0], rows)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


@pytest.mark.parametrize("preset,k,d", [("tiny", 256, 32), ("base", 8192, 64)])
def test_vq_lookup_cpu(preset, k, d, quick, one_thread):
    n = 1024 if quick else 8192
    g = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(n, d, generator=g), dim=1)
    codebook = F.normalize(torch.randn(k, d, generator=g), dim=1)
    variants = {
        "reference (addmm, chunked)": lambda: ops.vq_lookup_reference(z, codebook),
        "auto dispatch": lambda: ops.vq_lookup(z, codebook),
        "cdist": lambda: _vq_cdist(z, codebook),
        "cdist chunked 1024 rows": lambda: _vq_cdist_chunked(z, codebook),
    }
    ref_idx, ref_dist = variants["reference (addmm, chunked)"]()
    for name, fn in variants.items():
        idx, dist = fn()
        agree = float((idx == ref_idx).double().mean())
        assert agree > 0.999, f"{name}: only {agree:.4f} of indices agree with the reference"
        assert torch.allclose(dist, ref_dist, atol=1e-4), name
    times = harness.interleaved_best(variants, repeat=5 if quick else 7)
    flops = 2.0 * n * k * d
    for name, t in times.items():
        harness.record(SUITE, op="vq_lookup", device="cpu", shape=f"{preset}: N={n} K={k} D={d}",
                       backend=name, ms=t * 1e3, gflop_s=flops / t / 1e9,
                       vs_reference=times["reference (addmm, chunked)"] / t)
    # The automatic choice on CPU must not lose to the reference (it *is* the reference here).
    assert times["auto dispatch"] <= 1.3 * times["reference (addmm, chunked)"], times


# ----------------------------------------------------------------------------- CPU: attention


@pytest.mark.parametrize("preset,heads,head_dim", [("tiny", 4, 16), ("base", 8, 32)])
def test_masked_attention_cpu(preset, heads, head_dim, quick, one_thread):
    batch, length = (8, 129) if quick else (16, 257)  # CLS + up to 256 tokens
    lengths = _lengths(batch, length)
    mask = torch.arange(length)[None, :] < lengths[:, None]
    q, k, v = _qkv(batch, heads, length, head_dim, torch.float32, "cpu")
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    grad_out = torch.randn(q.shape)
    names = [n for n in backends.available("masked_attention") if n != "triton"]  # interpreter: no
    auto = ops.choose("masked_attention", torch.device("cpu"))
    ref = ops.masked_attention_reference(q, k, v, mask)
    fns = {}
    for name in names:
        out = ops.masked_attention(q, k, v, mask, backend=name)
        assert torch.allclose(out, ref, atol=1e-5), name

        def fwd(name=name):
            with torch.no_grad():
                ops.masked_attention(q, k, v, mask, backend=name)

        def fwd_bwd(name=name):
            out = ops.masked_attention(*leaves, mask, backend=name)
            torch.autograd.grad(out, leaves, grad_out)

        fns[(name, "fwd")], fns[(name, "fwd+bwd")] = fwd, fwd_bwd
    best = harness.interleaved_best(fns, repeat=5 if quick else 7)
    times = {name: (best[(name, "fwd")], best[(name, "fwd+bwd")]) for name in names}
    real_tokens = int(lengths.sum())
    for name, (t_fwd, t_bwd) in times.items():
        for phase, t, ref_t in (("fwd", t_fwd, times["torch"][0]), ("fwd+bwd", t_bwd, times["torch"][1])):
            harness.record(SUITE, op="masked_attention", device="cpu",
                           shape=f"{preset}: B={batch} L<={length} H={heads} Dh={head_dim}",
                           backend=name + (" (auto)" if name == auto else ""), phase=phase, ms=t * 1e3,
                           tokens_s=real_tokens / t,
                           gflop_s=_attention_flops(lengths, heads, head_dim, phase != "fwd") / t / 1e9,
                           vs_reference=ref_t / t)
    # The automatic CPU choice must not be slower than the reference by more than noise.
    assert times[auto][1] <= 1.25 * times["torch"][1], times


# ----------------------------------------------------------------------------- CUDA


def _cuda_ms(fn, warmup: int = 3, reps: int = 10) -> float:
    """Median milliseconds of ``fn`` on the current CUDA stream (CUDA events)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
    return sorted(times)[len(times) // 2]


def _extra_cuda_bytes(fn) -> int:
    """Peak CUDA memory ``fn`` allocates beyond what was allocated before it (outputs included)."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    result = fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    del result
    return peak


@cuda_only
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
def test_vq_lookup_cuda(dtype, quick):
    n, k, d = (8192, 1024, 256) if quick else (65536, 8192, 256)
    g = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(n, d, generator=g), dim=1).to(dtype).cuda()
    codebook = F.normalize(torch.randn(k, d, generator=g), dim=1).to(dtype).cuda()
    ref_idx, ref_dist = ops.vq_lookup(z, codebook, backend="torch")
    idx, dist = ops.vq_lookup(z, codebook, backend="triton")
    assert torch.allclose(dist, ref_dist, atol=1e-3, rtol=1e-4)
    agree = float((idx == ref_idx).double().mean())
    assert agree > 0.999, f"only {agree:.5f} of indices agree (near-ties aside)"
    t_ref = _cuda_ms(lambda: ops.vq_lookup(z, codebook, backend="torch"))
    t_tri = _cuda_ms(lambda: ops.vq_lookup(z, codebook, backend="triton"))
    mem_ref = _extra_cuda_bytes(lambda: ops.vq_lookup(z, codebook, backend="torch"))
    mem_tri = _extra_cuda_bytes(lambda: ops.vq_lookup(z, codebook, backend="triton"))
    tflops = 2.0 * n * k * d / 1e12
    gpu = torch.cuda.get_device_name()
    for name, t, mem in (("torch", t_ref, mem_ref), ("triton", t_tri, mem_tri)):
        harness.record(SUITE, op="vq_lookup", device=gpu, shape=f"N={n} K={k} D={d} {dtype}",
                       backend=name, ms=t, tflop_s=tflops / (t / 1e3), extra_mib=mem / 2**20,
                       vs_reference=t_ref / t)
    # O(N) extra memory: indices + distances (12 B/row) + codeword norms + allocator rounding.
    assert mem_tri <= 12 * n + 4 * k + (4 << 20), f"triton vq_lookup allocated {mem_tri} B"
    if not quick and dtype != torch.float32:
        # Issue target (fp16/bf16 inputs; fp32 inputs use IEEE fp32 dots unless TF32 is enabled).
        assert t_ref / t_tri >= 1.5, f"{gpu}: fused lookup {t_ref / t_tri:.2f}x the reference, target 1.5x"


@cuda_only
@pytest.mark.cuda
@pytest.mark.parametrize("length", [64, 128, 256])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_masked_attention_cuda(length, dtype, quick):
    batch, heads, head_dim = (64, 8, 32) if not quick else (8, 8, 32)  # base preset heads
    lengths = _lengths(batch, length)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).cuda()
    q, k, v = _qkv(batch, heads, length, head_dim, dtype, "cuda")
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    grad_out = torch.randn(q.shape, device="cuda", dtype=dtype)
    ref = ops.masked_attention(q, k, v, mask, backend="torch")
    tol = 2e-2 if dtype == torch.bfloat16 else 2e-3
    for name in ("sdpa", "triton"):
        out = ops.masked_attention(q, k, v, mask, backend=name)
        assert torch.allclose(out.float(), ref.float(), atol=tol, rtol=tol), name
    gpu = torch.cuda.get_device_name()
    times = {}
    for name in ("torch", "sdpa", "triton"):
        def fwd(name=name):
            with torch.no_grad():
                return ops.masked_attention(q, k, v, mask, backend=name)

        def fwd_bwd(name=name):
            out = ops.masked_attention(*leaves, mask, backend=name)
            return torch.autograd.grad(out, leaves, grad_out)

        times[name] = (_cuda_ms(fwd), _cuda_ms(fwd_bwd))
    for name, (t_fwd, t_bwd) in times.items():
        for phase, t, sdpa_t in (("fwd", t_fwd, times["sdpa"][0]), ("fwd+bwd", t_bwd, times["sdpa"][1])):
            harness.record(SUITE, op="masked_attention", device=gpu,
                           shape=f"B={batch} L<={length} H={heads} Dh={head_dim} {dtype}",
                           backend=name, phase=phase, ms=t,
                           tflop_s=_attention_flops(lengths, heads, head_dim, phase != "fwd") / t / 1e9,
                           vs_sdpa=sdpa_t / t)
    if not quick:
        # Issue target: at least as fast as SDPA on variable-length sentences (padding skipped).
        for i, phase in enumerate(("fwd", "fwd+bwd")):
            ratio = times["sdpa"][i] / times["triton"][i]
            assert ratio >= 1.0, f"{gpu} L<={length} {phase}: triton {ratio:.2f}x SDPA, target >= 1x"


def test_cuda_flag_is_consistent():
    """A CUDA benchmark run (AEMG_TEST_CUDA=1) must not silently run the interpreter."""
    if os.environ.get("AEMG_TEST_CUDA") == "1":
        assert CUDA, "AEMG_TEST_CUDA=1 but torch.cuda.is_available() is False"
        assert os.environ.get("TRITON_INTERPRET", "0") != "1"
    assert math.isfinite(1.0)
