"""Fused nearest-codeword lookup (Triton): distances and argmin in one pass over codebook blocks.

Each program owns ``BLOCK_M`` rows of ``z`` and walks the codebook in blocks of ``BLOCK_N``
codewords, computing ``||z||^2 + ||c||^2 - 2 z.c`` with ``tl.dot`` (fp32 accumulation) and keeping a running
minimum and its index. Only the ``(N,)`` indices and distances are written: the ``N x K`` distance
matrix never exists, so extra memory is O(N) (plus the O(K) codeword norms).

Semantics match :func:`aemg.ops.vq_lookup_reference` (the spec): ties go to the lowest index, and a
NaN distance counts as smaller than any number (like ``torch.argmin``), so a row of ``z`` holding a
NaN gets index 0 and distance NaN. Exact ties are reproduced when the tied distances are bitwise
equal (e.g. duplicate codewords); distances that differ only by rounding may resolve either way,
because the dot products are accumulated in a different order than cuBLAS/MKL.

Use through :func:`aemg.ops.vq_lookup` (``backend="triton"``); this module imports Triton at import
time, so import it lazily.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from aemg.kernels.common import INTERPRET, check_device, dot_precision

__all__ = ["INTERPRET", "aot_compile", "dot_precision", "vq_lookup_triton"]


@triton.jit
def _vq_argmin_kernel(
    z_ptr,  # (N, D) queries, fp32/fp16/bf16, any strides
    c_ptr,  # (K, D) codebook, dtype of z
    cnorm_ptr,  # (K,) fp32 squared codeword norms, contiguous
    idx_ptr,  # (N,) int64 out: index of the nearest codeword
    dist_ptr,  # (N,) fp32 out: its squared distance
    N,  # rows of z
    K,  # codewords
    D,  # feature width
    stride_zn,  # elements between rows of z
    stride_zd,  # elements between columns of z
    stride_ck,  # elements between codewords
    stride_cd,  # elements between codebook columns
    BLOCK_M: tl.constexpr,  # rows of z per program
    BLOCK_N: tl.constexpr,  # codewords per inner block
    BLOCK_D: tl.constexpr,  # feature columns per dot
    UPCAST: tl.constexpr,  # load as fp32 (the interpreter's tl.dot is wrong for bf16)
    PRECISION: tl.constexpr,  # tl.dot input_precision ("ieee" or "tf32"; see common.dot_precision)
):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < N
    offs_d = tl.arange(0, BLOCK_D)

    # ||z||^2 of this block's rows, fp32.
    znorm = tl.zeros([BLOCK_M], dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        dd = d0 + offs_d
        zt = tl.load(z_ptr + rows[:, None] * stride_zn + dd[None, :] * stride_zd,
                     mask=row_ok[:, None] & (dd[None, :] < D), other=0.0).to(tl.float32)
        znorm += tl.sum(zt * zt, axis=1)

    best = tl.full([BLOCK_M], float("inf"), dtype=tl.float32)
    best_idx = tl.zeros([BLOCK_M], dtype=tl.int32)
    for n0 in range(0, K, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        col_ok = cols < K
        dot = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
        for d0 in range(0, D, BLOCK_D):
            dd = d0 + offs_d
            d_ok = dd < D
            zt = tl.load(z_ptr + rows[:, None] * stride_zn + dd[None, :] * stride_zd,
                         mask=row_ok[:, None] & d_ok[None, :], other=0.0)
            ct = tl.load(c_ptr + cols[None, :] * stride_ck + dd[:, None] * stride_cd,
                         mask=col_ok[None, :] & d_ok[:, None], other=0.0)
            if UPCAST:  # the interpreter's tl.dot is wrong for bf16
                zt = zt.to(tl.float32)
                ct = ct.to(tl.float32)
            dot = tl.dot(zt, ct, dot, input_precision=PRECISION)
        cn = tl.load(cnorm_ptr + cols, mask=col_ok, other=0.0)
        dist = znorm[:, None] + cn[None, :] - 2.0 * dot
        # Selection key: NaN sorts first (torch.argmin), columns past K never win.
        key = tl.where(dist != dist, float("-inf"), dist)
        key = tl.where(col_ok[None, :], key, float("inf"))
        m, first = tl.min(key, axis=1, return_indices=True, return_indices_tie_break_left=True)
        first = first + n0
        better = m < best  # strict: an earlier block keeps a tie
        best = tl.where(better, m, best)
        best_idx = tl.where(better, first, best_idx)

    best = tl.where(best == float("-inf"), float("nan"), best)
    tl.store(idx_ptr + rows, best_idx.to(tl.int64), mask=row_ok)
    tl.store(dist_ptr + rows, best, mask=row_ok)


def _blocks(n: int, k: int, d: int, dtype: torch.dtype) -> tuple[int, int, int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_D, num_warps, num_stages) for this problem.

    GPU choices were checked with ``ptxas -v`` for sm_90 (see docs/notes/kernels.md): no register
    spills for 16-bit inputs at 128x128x64 (tensor-core dots) nor for fp32 at 128x128x32.
    """
    if INTERPRET:  # small blocks: tests on tiny shapes still cross block boundaries in every loop
        return (max(16, min(32, triton.next_power_of_2(n))),
                max(16, min(32, triton.next_power_of_2(k))),
                max(16, min(32, triton.next_power_of_2(d))), 1, 1)
    if dtype == torch.float32:
        return 128, 128, max(16, min(32, triton.next_power_of_2(d))), 8, 2
    return 128, 128, max(16, min(64, triton.next_power_of_2(d))), 8, 3


def vq_lookup_triton(z: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest codeword of every row of ``z`` (validated inputs; see :func:`aemg.ops.vq_lookup`).

    Parameters
    ----------
    z : Tensor, shape (N, D), float32/float16/bfloat16
    codebook : Tensor, shape (K, D), same dtype and device as ``z``; K >= 1

    Returns
    -------
    indices : Tensor, shape (N,), int64
    distances : Tensor, shape (N,), float32, squared euclidean distance to the chosen codeword
    """
    check_device("vq_lookup", z)
    n, d = z.shape
    k = codebook.shape[0]
    indices = torch.empty(n, dtype=torch.int64, device=z.device)
    distances = torch.empty(n, dtype=torch.float32, device=z.device)
    if n == 0:
        return indices, distances
    # ||c||^2 in fp32 without an fp32 copy of the codebook (the upcast happens inside the reduction)
    cnorm = torch.linalg.vector_norm(codebook, dim=1, dtype=torch.float32).square_()
    bm, bn, bd, warps, stages = _blocks(n, k, d, z.dtype)
    grid = (triton.cdiv(n, bm),)
    _vq_argmin_kernel[grid](z, codebook, cnorm, indices, distances, n, k, d,
                            z.stride(0), z.stride(1), codebook.stride(0), codebook.stride(1),
                            BLOCK_M=bm, BLOCK_N=bn, BLOCK_D=bd,
                            UPCAST=INTERPRET, PRECISION=dot_precision(z.dtype),
                            num_warps=warps, num_stages=stages)
    return indices, distances


def aot_compile(arch: int = 90, dtypes=(torch.float16, torch.bfloat16, torch.float32), d: int = 256):
    """Compile the kernel for ``sm_<arch>`` at the launch configuration of each dtype (no GPU needed;
    see :mod:`aemg.kernels._aot`). Returns ``[(label, CompiledKernel), ...]``."""
    from aemg.kernels._aot import compile_kernel, triton_type

    out = []
    for dtype in dtypes:
        bm, bn, bd, warps, stages = _blocks(65536, 8192, d, dtype)
        t = triton_type(dtype)
        types = dict(z_ptr=f"*{t}", c_ptr=f"*{t}", cnorm_ptr="*fp32", idx_ptr="*i64",
                     dist_ptr="*fp32", N="i32", K="i32", D="i32", stride_zn="i32", stride_zd="i32",
                     stride_ck="i32", stride_cd="i32")
        meta = dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_D=bd, UPCAST=False,
                    PRECISION=dot_precision(dtype), num_warps=warps, num_stages=stages)
        out.append((f"vq_argmin {t} {bm}x{bn}x{bd} w{warps} s{stages}",
                    compile_kernel(_vq_argmin_kernel, types, meta, arch=arch)))
    return out
