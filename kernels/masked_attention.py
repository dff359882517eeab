"""Fused masked attention (Triton) for padded, variable-length sentences: forward and backward.

Flash-attention style: each program owns ``BLOCK_M`` queries of one (batch, head), streams the keys in
blocks of ``BLOCK_N`` with an online softmax (fp32 running max, sum and accumulator), and never
materialises the ``L x L`` score matrix. Padding is *skipped*, not just masked: with
``end[b]`` = 1 + index of the last real token of sentence ``b``, key blocks at or past ``end[b]`` are
never loaded, and query blocks at or past ``end[b]`` do no work (their output rows are zero); each
program finds ``end[b]`` itself with one vector load of the mask row, so no host-side preprocessing
or extra launches are needed. Inside
``[0, end)`` the key-padding mask is applied element-wise, so any mask works (right padding, which
sentences use, is the fast case: nothing is wasted beyond the last partial block).

Backward recomputes the probabilities from the saved log-sum-exp (a row-term kernel, then one
kernel per key block for dK/dV and one per query block for dQ; no atomics, deterministic).

Semantics are those of :func:`aemg.ops.masked_attention_reference`: softmax over real keys only,
output rows of padded queries are zero, and no gradient flows through padded positions.

Use through :func:`aemg.ops.masked_attention` (``backend="triton"``); this module imports Triton at
import time, so import it lazily.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from aemg.kernels.common import INTERPRET, check_device, dot_precision

__all__ = ["INTERPRET", "TritonMaskedAttention", "aot_compile", "attention_backward", "attention_forward",
           "dot_precision", "masked_attention_triton"]

_LOG2E = 1.4426950408889634
# finite "minus infinity" for running maxima: exp2(-inf - -inf) would be NaN
_NEG_BIG = tl.constexpr(-1.0e30)


@triton.jit
def _sentence_end(
    mask_ptr,  # (B, L) uint8 key-padding mask, 1 = real token
    b,  # sentence index
    smb,  # mask stride between sentences (elements)
    sml,  # mask stride between tokens (elements)
    L,  # sentence length (tokens)
    BLOCK_L: tl.constexpr,  # next power of two >= L
):
    """One past the last real token of sentence ``b`` (0 when it has none): one vector load."""
    offs = tl.arange(0, BLOCK_L)
    real = tl.load(mask_ptr + b * smb + offs * sml, mask=offs < L, other=0) != 0
    return tl.max(tl.where(real, offs + 1, 0), axis=0)


@triton.jit
def _attn_fwd_kernel(
    q_ptr,  # (B, H, L, Dh) queries, fp32/fp16/bf16, any strides
    k_ptr,  # (B, H, L, Dh) keys, dtype of q
    v_ptr,  # (B, H, L, Dh) values, dtype of q
    o_ptr,  # (B, H, L, Dh) out, dtype of q
    lse_ptr,  # (B*H, L) fp32 out: log2-sum-exp of each query row (for backward), contiguous
    mask_ptr,  # (B, L) uint8 key-padding mask, 1 = real token
    sqb,  # q stride between sentences (elements)
    sqh,  # q stride between heads (elements)
    sql,  # q stride between tokens (elements)
    sqd,  # q stride between features (elements)
    skb,  # k stride between sentences (elements)
    skh,  # k stride between heads (elements)
    skl,  # k stride between tokens (elements)
    skd,  # k stride between features (elements)
    svb,  # v stride between sentences (elements)
    svh,  # v stride between heads (elements)
    svl,  # v stride between tokens (elements)
    svd,  # v stride between features (elements)
    sob,  # out stride between sentences (elements)
    soh,  # out stride between heads (elements)
    sol,  # out stride between tokens (elements)
    sod,  # out stride between features (elements)
    smb,  # mask stride between sentences (elements)
    sml,  # mask stride between tokens (elements)
    H,  # heads
    L,  # tokens per sentence (padded length)
    Dh,  # head width
    qk_scale,  # log2(e) / sqrt(Dh): scores in log2 units
    BLOCK_M: tl.constexpr,  # queries per block
    BLOCK_N: tl.constexpr,  # keys per block
    BLOCK_D: tl.constexpr,  # head features (power of two >= Dh)
    BLOCK_L: tl.constexpr,  # power of two >= L (one vector load of a mask row)
    UPCAST: tl.constexpr,  # load as fp32 (the interpreter's tl.dot is wrong for bf16)
    PRECISION: tl.constexpr,  # tl.dot input_precision ("ieee" or "tf32"; see common.dot_precision)
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    end = _sentence_end(mask_ptr, b, smb, sml, L, BLOCK_L)
    n_end = tl.where(pid_m * BLOCK_M < end, end, 0)  # whole query block is padding: no work

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < Dh
    m_ok = offs_m < L
    qmask = tl.load(mask_ptr + b * smb + offs_m * sml, mask=m_ok, other=0) != 0
    q = tl.load(q_ptr + b * sqb + h * sqh + offs_m[:, None] * sql + offs_d[None, :] * sqd,
                mask=m_ok[:, None] & d_ok[None, :], other=0.0)
    if UPCAST:  # the interpreter's tl.dot is wrong for bf16
        q = q.to(tl.float32)

    m_i = tl.full([BLOCK_M], _NEG_BIG, dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    for n0 in range(0, n_end, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        n_ok = offs_n < n_end
        kmask = tl.load(mask_ptr + b * smb + offs_n * sml, mask=n_ok, other=0) != 0
        kt = tl.load(k_ptr + b * skb + h * skh + offs_n[None, :] * skl + offs_d[:, None] * skd,
                     mask=n_ok[None, :] & d_ok[:, None], other=0.0)
        v = tl.load(v_ptr + b * svb + h * svh + offs_n[:, None] * svl + offs_d[None, :] * svd,
                    mask=n_ok[:, None] & d_ok[None, :], other=0.0)
        if UPCAST:
            kt = kt.to(tl.float32)
            v = v.to(tl.float32)
        s = tl.dot(q, kt, input_precision=PRECISION) * qk_scale  # log2 units
        s = tl.where(kmask[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        p = tl.exp2(s - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m_i = m_new

    l_safe = tl.where(l_i > 0.0, l_i, 1.0)
    out = tl.where(qmask[:, None], acc / l_safe[:, None], 0.0)
    tl.store(o_ptr + b * sob + h * soh + offs_m[:, None] * sol + offs_d[None, :] * sod,
             out.to(o_ptr.dtype.element_ty), mask=m_ok[:, None] & d_ok[None, :])
    tl.store(lse_ptr + pid_bh * L + offs_m, m_i + tl.log2(l_safe), mask=m_ok)


@triton.jit
def _attn_bwd_dkdv_kernel(
    q_ptr,  # (B, H, L, Dh) queries, any strides
    k_ptr,  # (B, H, L, Dh) keys
    v_ptr,  # (B, H, L, Dh) values
    do_ptr,  # (B, H, L, Dh) gradient of the output
    lse_ptr,  # (B*H, L) fp32 log2-sum-exp saved by the forward, contiguous
    delta_ptr,  # (B*H, L) fp32 row terms sum_d O * dO, contiguous
    mask_ptr,  # (B, L) uint8 key-padding mask, 1 = real token
    dk_ptr,  # (B, H, L, Dh) out, contiguous, dtype of q
    dv_ptr,  # (B, H, L, Dh) out, contiguous, dtype of q
    sqb,  # q stride between sentences (elements)
    sqh,  # q stride between heads (elements)
    sql,  # q stride between tokens (elements)
    sqd,  # q stride between features (elements)
    skb,  # k stride between sentences (elements)
    skh,  # k stride between heads (elements)
    skl,  # k stride between tokens (elements)
    skd,  # k stride between features (elements)
    svb,  # v stride between sentences (elements)
    svh,  # v stride between heads (elements)
    svl,  # v stride between tokens (elements)
    svd,  # v stride between features (elements)
    sdob,  # dO stride between sentences (elements)
    sdoh,  # dO stride between heads (elements)
    sdol,  # dO stride between tokens (elements)
    sdod,  # dO stride between features (elements)
    smb,  # mask stride between sentences (elements)
    sml,  # mask stride between tokens (elements)
    H,  # heads
    L,  # tokens per sentence (padded length)
    Dh,  # head width
    qk_scale,  # log2(e) / sqrt(Dh): scores in log2 units
    sm_scale,  # 1 / sqrt(Dh)
    BLOCK_M: tl.constexpr,  # queries per block
    BLOCK_N: tl.constexpr,  # keys per block
    BLOCK_D: tl.constexpr,  # head features (power of two >= Dh)
    BLOCK_L: tl.constexpr,  # power of two >= L (one vector load of a mask row)
    UPCAST: tl.constexpr,  # load as fp32 (the interpreter's tl.dot is wrong for bf16)
    PRECISION: tl.constexpr,  # tl.dot input_precision ("ieee" or "tf32"; see common.dot_precision)
):
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    end = _sentence_end(mask_ptr, b, smb, sml, L, BLOCK_L)
    m_end = tl.where(pid_n * BLOCK_N < end, end, 0)  # padded key block: zero gradient, no work

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < Dh
    n_ok = offs_n < L
    kmask = tl.load(mask_ptr + b * smb + offs_n * sml, mask=n_ok, other=0) != 0
    k = tl.load(k_ptr + b * skb + h * skh + offs_n[:, None] * skl + offs_d[None, :] * skd,
                mask=n_ok[:, None] & d_ok[None, :], other=0.0)
    v = tl.load(v_ptr + b * svb + h * svh + offs_n[:, None] * svl + offs_d[None, :] * svd,
                mask=n_ok[:, None] & d_ok[None, :], other=0.0)
    if UPCAST:
        k = k.to(tl.float32)
        v = v.to(tl.float32)
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    for m0 in range(0, m_end, BLOCK_M):
        offs_m = m0 + tl.arange(0, BLOCK_M)
        m_ok = offs_m < m_end
        qmask = tl.load(mask_ptr + b * smb + offs_m * sml, mask=m_ok, other=0) != 0
        q = tl.load(q_ptr + b * sqb + h * sqh + offs_m[:, None] * sql + offs_d[None, :] * sqd,
                    mask=m_ok[:, None] & d_ok[None, :], other=0.0)
        do = tl.load(do_ptr + b * sdob + h * sdoh + offs_m[:, None] * sdol + offs_d[None, :] * sdod,
                     mask=qmask[:, None] & d_ok[None, :], other=0.0)  # padded queries: no gradient
        if UPCAST:
            q = q.to(tl.float32)
            do = do.to(tl.float32)
        lse = tl.load(lse_ptr + pid_bh * L + offs_m, mask=m_ok, other=0.0)
        delta = tl.load(delta_ptr + pid_bh * L + offs_m, mask=qmask, other=0.0)
        st = tl.dot(k, tl.trans(q), input_precision=PRECISION) * qk_scale  # (BLOCK_N, BLOCK_M)
        pt = tl.where(kmask[:, None] & qmask[None, :], tl.exp2(st - lse[None, :]), 0.0)
        dv += tl.dot(pt.to(do.dtype), do, input_precision=PRECISION)
        dpt = tl.dot(v, tl.trans(do), input_precision=PRECISION)
        dst = pt * (dpt - delta[None, :])
        dk += tl.dot(dst.to(q.dtype), q, input_precision=PRECISION)
    dk = dk * sm_scale
    tl.store(dk_ptr + pid_bh * L * Dh + offs_n[:, None] * Dh + offs_d[None, :],
             dk.to(dk_ptr.dtype.element_ty), mask=n_ok[:, None] & d_ok[None, :])
    tl.store(dv_ptr + pid_bh * L * Dh + offs_n[:, None] * Dh + offs_d[None, :],
             dv.to(dv_ptr.dtype.element_ty), mask=n_ok[:, None] & d_ok[None, :])


@triton.jit
def _attn_bwd_dq_kernel(
    q_ptr,  # (B, H, L, Dh) queries, any strides
    k_ptr,  # (B, H, L, Dh) keys
    v_ptr,  # (B, H, L, Dh) values
    do_ptr,  # (B, H, L, Dh) gradient of the output
    lse_ptr,  # (B*H, L) fp32 log2-sum-exp saved by the forward, contiguous
    delta_ptr,  # (B*H, L) fp32 row terms sum_d O * dO, contiguous
    mask_ptr,  # (B, L) uint8 key-padding mask, 1 = real token
    dq_ptr,  # (B, H, L, Dh) out, contiguous, dtype of q
    sqb,  # q stride between sentences (elements)
    sqh,  # q stride between heads (elements)
    sql,  # q stride between tokens (elements)
    sqd,  # q stride between features (elements)
    skb,  # k stride between sentences (elements)
    skh,  # k stride between heads (elements)
    skl,  # k stride between tokens (elements)
    skd,  # k stride between features (elements)
    svb,  # v stride between sentences (elements)
    svh,  # v stride between heads (elements)
    svl,  # v stride between tokens (elements)
    svd,  # v stride between features (elements)
    sdob,  # dO stride between sentences (elements)
    sdoh,  # dO stride between heads (elements)
    sdol,  # dO stride between tokens (elements)
    sdod,  # dO stride between features (elements)
    smb,  # mask stride between sentences (elements)
    sml,  # mask stride between tokens (elements)
    H,  # heads
    L,  # tokens per sentence (padded length)
    Dh,  # head width
    qk_scale,  # log2(e) / sqrt(Dh): scores in log2 units
    sm_scale,  # 1 / sqrt(Dh)
    BLOCK_M: tl.constexpr,  # queries per block
    BLOCK_N: tl.constexpr,  # keys per block
    BLOCK_D: tl.constexpr,  # head features (power of two >= Dh)
    BLOCK_L: tl.constexpr,  # power of two >= L (one vector load of a mask row)
    UPCAST: tl.constexpr,  # load as fp32 (the interpreter's tl.dot is wrong for bf16)
    PRECISION: tl.constexpr,  # tl.dot input_precision ("ieee" or "tf32"; see common.dot_precision)
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    end = _sentence_end(mask_ptr, b, smb, sml, L, BLOCK_L)
    n_end = tl.where(pid_m * BLOCK_M < end, end, 0)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < Dh
    m_ok = offs_m < L
    qmask = tl.load(mask_ptr + b * smb + offs_m * sml, mask=m_ok, other=0) != 0
    q = tl.load(q_ptr + b * sqb + h * sqh + offs_m[:, None] * sql + offs_d[None, :] * sqd,
                mask=m_ok[:, None] & d_ok[None, :], other=0.0)
    do = tl.load(do_ptr + b * sdob + h * sdoh + offs_m[:, None] * sdol + offs_d[None, :] * sdod,
                 mask=qmask[:, None] & d_ok[None, :], other=0.0)
    if UPCAST:
        q = q.to(tl.float32)
        do = do.to(tl.float32)
    lse = tl.load(lse_ptr + pid_bh * L + offs_m, mask=m_ok, other=0.0)
    delta = tl.load(delta_ptr + pid_bh * L + offs_m, mask=qmask, other=0.0)
    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    for n0 in range(0, n_end, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        n_ok = offs_n < n_end
        kmask = tl.load(mask_ptr + b * smb + offs_n * sml, mask=n_ok, other=0) != 0
        kt = tl.load(k_ptr + b * skb + h * skh + offs_n[None, :] * skl + offs_d[:, None] * skd,
                     mask=n_ok[None, :] & d_ok[:, None], other=0.0)
        vt = tl.load(v_ptr + b * svb + h * svh + offs_n[None, :] * svl + offs_d[:, None] * svd,
                     mask=n_ok[None, :] & d_ok[:, None], other=0.0)
        if UPCAST:
            kt = kt.to(tl.float32)
            vt = vt.to(tl.float32)
        s = tl.dot(q, kt, input_precision=PRECISION) * qk_scale
        p = tl.where(kmask[None, :] & qmask[:, None], tl.exp2(s - lse[:, None]), 0.0)
        dp = tl.dot(do, vt, input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(kt.dtype), tl.trans(kt), input_precision=PRECISION)
    dq = dq * sm_scale
    tl.store(dq_ptr + pid_bh * L * Dh + offs_m[:, None] * Dh + offs_d[None, :],
             dq.to(dq_ptr.dtype.element_ty), mask=m_ok[:, None] & d_ok[None, :])


@triton.jit
def _attn_bwd_delta_kernel(
    o_ptr,  # (B, H, L, Dh) forward output, any strides
    do_ptr,  # (B, H, L, Dh) gradient of the output, any strides
    delta_ptr,  # (B*H, L) fp32 out, contiguous
    sob,  # out stride between sentences (elements)
    soh,  # out stride between heads (elements)
    sol,  # out stride between tokens (elements)
    sod,  # out stride between features (elements)
    sdob,  # dO stride between sentences (elements)
    sdoh,  # dO stride between heads (elements)
    sdol,  # dO stride between tokens (elements)
    sdod,  # dO stride between features (elements)
    H,  # heads
    L,  # tokens per sentence
    Dh,  # head width
    BLOCK_M: tl.constexpr,  # rows per program
    BLOCK_D: tl.constexpr,  # power of two >= Dh
):
    """delta[b*H + h, l] = sum_d O * dO (fp32): the softmax-gradient row term."""
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    ok = (offs_m[:, None] < L) & (offs_d[None, :] < Dh)
    o = tl.load(o_ptr + b * sob + h * soh + offs_m[:, None] * sol + offs_d[None, :] * sod, mask=ok, other=0.0)
    do = tl.load(do_ptr + b * sdob + h * sdoh + offs_m[:, None] * sdol + offs_d[None, :] * sdod,
                 mask=ok, other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), axis=1)
    tl.store(delta_ptr + pid_bh * L + offs_m, delta, mask=offs_m < L)


def _config(length: int, head_dim: int, dtype: torch.dtype) -> dict:
    """Block sizes and launch options for sentences of ``length`` tokens and heads of ``head_dim``.

    GPU choices were checked with ``ptxas -v`` for sm_90 (docs/notes/kernels.md): 16-bit inputs use
    64x64 blocks (tensor cores); fp32 (IEEE FMA dots) spills at 64x64, so it uses 32x32.
    """
    block_d = max(16, triton.next_power_of_2(head_dim))
    block = max(16, min(64, triton.next_power_of_2(length)))
    meta = dict(BLOCK_M=block, BLOCK_N=block, BLOCK_D=block_d, BLOCK_L=triton.next_power_of_2(length),
                UPCAST=INTERPRET, num_warps=4, num_stages=2)
    if INTERPRET:  # small blocks: tests on tiny shapes still cross key/query block boundaries
        meta.update(BLOCK_M=min(block, 16), BLOCK_N=min(block, 16), num_warps=1, num_stages=1)
    elif dtype == torch.float32:
        meta.update(BLOCK_M=min(block, 32), BLOCK_N=min(block, 32))
    elif block_d > 64:
        meta.update(BLOCK_N=min(block, 32))
    return meta


def attention_forward(q, k, v, mask_u8):
    """Forward pass: (out (B, H, L, Dh) in q's dtype, lse (B*H, L) float32 in log2 units).

    ``mask_u8`` is the (B, L) key-padding mask viewed as uint8 (1 = real token).
    """
    check_device("masked_attention", q)
    bsz, heads, length, head_dim = q.shape
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    lse = torch.empty((bsz * heads, length), dtype=torch.float32, device=q.device)
    meta = _config(length, head_dim, q.dtype)
    grid = (triton.cdiv(length, meta["BLOCK_M"]), bsz * heads)
    _attn_fwd_kernel[grid](q, k, v, out, lse, mask_u8, *q.stride(), *k.stride(), *v.stride(), *out.stride(),
                           *mask_u8.stride(), heads, length, head_dim, _LOG2E / math.sqrt(head_dim),
                           PRECISION=dot_precision(q.dtype), **meta)
    return out, lse


def attention_backward(q, k, v, out, dout, lse, mask_u8):
    """Gradients (dq, dk, dv), each (B, H, L, Dh) contiguous in the dtype of q."""
    bsz, heads, length, head_dim = q.shape
    meta = _config(length, head_dim, q.dtype)
    delta = torch.empty((bsz * heads, length), dtype=torch.float32, device=q.device)
    _attn_bwd_delta_kernel[(triton.cdiv(length, meta["BLOCK_M"]), bsz * heads)](
        out, dout, delta, *out.stride(), *dout.stride(), heads, length, head_dim,
        BLOCK_M=meta["BLOCK_M"], BLOCK_D=meta["BLOCK_D"], num_warps=meta["num_warps"])
    dq = torch.empty((bsz, heads, length, head_dim), dtype=q.dtype, device=q.device)
    dk = torch.empty_like(dq)
    dv = torch.empty_like(dq)
    sm_scale = 1.0 / math.sqrt(head_dim)
    common = (*q.stride(), *k.stride(), *v.stride(), *dout.stride(), *mask_u8.stride(),
              heads, length, head_dim, sm_scale * _LOG2E, sm_scale)
    precision = dot_precision(q.dtype)
    _attn_bwd_dkdv_kernel[(triton.cdiv(length, meta["BLOCK_N"]), bsz * heads)](
        q, k, v, dout, lse, delta, mask_u8, dk, dv, *common, PRECISION=precision, **meta)
    _attn_bwd_dq_kernel[(triton.cdiv(length, meta["BLOCK_M"]), bsz * heads)](
        q, k, v, dout, lse, delta, mask_u8, dq, *common, PRECISION=precision, **meta)
    return dq, dk, dv


class TritonMaskedAttention(torch.autograd.Function):
    """Autograd wrapper: ``TritonMaskedAttention.apply(q, k, v, key_padding_mask)``."""

    @staticmethod
    def forward(ctx, q, k, v, key_padding_mask):
        if q.numel() == 0:
            ctx.empty = True
            return torch.zeros_like(q)
        ctx.empty = False
        mask_u8 = key_padding_mask.contiguous().view(torch.uint8)
        out, lse = attention_forward(q, k, v, mask_u8)
        ctx.save_for_backward(q, k, v, out, lse, mask_u8)
        return out

    @staticmethod
    def backward(ctx, dout):
        if ctx.empty:
            return torch.zeros_like(dout), torch.zeros_like(dout), torch.zeros_like(dout), None
        q, k, v, out, lse, mask_u8 = ctx.saved_tensors
        dq, dk, dv = attention_backward(q, k, v, out, dout, lse, mask_u8)
        return dq, dk, dv, None


def masked_attention_triton(q, k, v, key_padding_mask):
    """Masked attention through the Triton kernels (validated inputs; see :func:`aemg.ops.masked_attention`).

    Parameters
    ----------
    q, k, v : Tensor, shape (B, H, L, Dh), float32/float16/bfloat16, any strides
    key_padding_mask : Tensor, shape (B, L), bool, True = real token

    Returns
    -------
    Tensor, shape (B, H, L, Dh), dtype of ``q``; rows of padded queries are zero.
    """
    return TritonMaskedAttention.apply(q, k, v, key_padding_mask)


def aot_compile(arch: int = 90, dtypes=(torch.bfloat16, torch.float16, torch.float32), head_dims=(16, 32, 64),
                length: int = 257):
    """Compile every kernel for ``sm_<arch>`` at the launch configurations the wrapper uses (no GPU
    needed; see :mod:`aemg.kernels._aot`). Returns ``[(label, CompiledKernel), ...]``."""
    from aemg.kernels._aot import compile_kernel, triton_type

    def strides(p: str) -> dict:
        return {f"{p}{c}": "i32" for c in "bhld"}

    out = []
    for dtype in dtypes:
        t = triton_type(dtype)
        for head_dim in head_dims:
            meta = _config(length, head_dim, dtype)
            meta["PRECISION"] = dot_precision(dtype)
            sizes = dict(smb="i32", sml="i32", H="i32", L="i32", Dh="i32", qk_scale="fp32", sm_scale="fp32")
            tensors = dict(q_ptr=f"*{t}", k_ptr=f"*{t}", v_ptr=f"*{t}", o_ptr=f"*{t}", do_ptr=f"*{t}",
                           dq_ptr=f"*{t}", dk_ptr=f"*{t}", dv_ptr=f"*{t}", lse_ptr="*fp32", delta_ptr="*fp32",
                           mask_ptr="*u8")
            types = {**tensors, **sizes, **strides("sq"), **strides("sk"), **strides("sv"), **strides("so"),
                     **strides("sdo")}
            tag = f"{t} Dh={head_dim} {meta['BLOCK_M']}x{meta['BLOCK_N']} w{meta['num_warps']}"
            for kernel in (_attn_fwd_kernel, _attn_bwd_dkdv_kernel, _attn_bwd_dq_kernel):
                out.append((f"{kernel.fn.__name__} {tag}", compile_kernel(kernel, types, meta, arch=arch)))
            delta_meta = {k: meta[k] for k in ("BLOCK_M", "BLOCK_D", "num_warps")}
            out.append((f"_attn_bwd_delta_kernel {tag}",
                        compile_kernel(_attn_bwd_delta_kernel, types, delta_meta, arch=arch)))
    return out
