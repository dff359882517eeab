"""Fused masked attention (Triton) for padded, variable-length sentences: forward and backward.

Flash-attention style: each program owns ``BLOCK_M`` queries of one (batch, head), streams the keys in
blocks of ``BLOCK_N`` with an online softmax (fp32 running max, sum and accumulator), and never
materialises the ``L x L`` score matrix. Padding is *skipped*, not just masked: with
``end[b]`` = 1 + index of the last real token of sentence ``b``, key blocks at or past ``end[b]`` are
never loaded, and query blocks at or past ``end[b]`` do no work (their output rows are zero). Inside
``[0, end)`` the key-padding mask is applied element-wise, so any mask works (right padding, which
sentences use, is the fast case: nothing is wasted beyond the last partial block).

Backward recomputes the probabilities from the saved log-sum-exp (two kernels: one per key block
for dK/dV, one per query block for dQ; no atomics, deterministic).

Semantics are those of :func:`aemg.ops.masked_attention_reference`: softmax over real keys only,
output rows of padded queries are zero, and no gradient flows through padded positions.

Use through :func:`aemg.ops.masked_attention` (``backend="triton"``); this module imports Triton at
import time, so import it lazily.
"""
from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

from aemg.errors import BackendUnavailable

#: True when kernels run in Triton's CPU interpreter (decided when ``triton.jit`` decorates them).
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
_LOG2E = 1.4426950408889634
_NEG_BIG = -1.0e30  # finite "minus infinity" for running maxima (exp2(-inf - -inf) would be NaN)


@triton.jit
def _attn_fwd_kernel(q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr, mask_ptr, ends_ptr,
                     sqb, sqh, sql, sqd, skb, skh, skl, skd, svb, svh, svl, svd,
                     sob, soh, sol, sod, smb, sml, H, L, Dh, qk_scale,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                     UPCAST: tl.constexpr, PRECISION: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    end = tl.load(ends_ptr + b)
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
def _attn_bwd_dkdv_kernel(q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, mask_ptr, ends_ptr,
                          dk_ptr, dv_ptr,
                          sqb, sqh, sql, sqd, skb, skh, skl, skd, svb, svh, svl, svd,
                          sdob, sdoh, sdol, sdod, smb, sml, H, L, Dh, qk_scale, sm_scale,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                          UPCAST: tl.constexpr, PRECISION: tl.constexpr):
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    end = tl.load(ends_ptr + b)
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
def _attn_bwd_dq_kernel(q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, mask_ptr, ends_ptr, dq_ptr,
                        sqb, sqh, sql, sqd, skb, skh, skl, skd, svb, svh, svl, svd,
                        sdob, sdoh, sdol, sdod, smb, sml, H, L, Dh, qk_scale, sm_scale,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                        UPCAST: tl.constexpr, PRECISION: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    end = tl.load(ends_ptr + b)
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


def _config(length: int, head_dim: int) -> tuple[int, int, int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_D, num_warps, num_stages) for sequences of ``length``."""
    block_d = max(16, triton.next_power_of_2(head_dim))
    block = max(16, min(64, triton.next_power_of_2(length)))
    if INTERPRET:  # small blocks: tests on tiny shapes still cross key/query block boundaries
        return min(block, 16), min(block, 16), block_d, 1, 1
    if block_d > 64:
        return min(block, 64), min(block, 32), block_d, 4, 2
    return block, block, block_d, 4, 2


def dot_precision(dtype: torch.dtype) -> str:
    """``tl.dot`` input precision: fp32 follows ``torch.backends.cuda.matmul.allow_tf32``."""
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32"


def _ends(mask: torch.Tensor) -> torch.Tensor:
    """(B,) int32: one past the last real token of each row of ``mask`` (0 for all-padding rows)."""
    length = mask.shape[1]
    pos = torch.arange(1, length + 1, device=mask.device, dtype=torch.int32)
    return (mask.to(torch.int32) * pos).amax(dim=1).to(torch.int32).contiguous()


def _strides(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.stride())


def attention_forward(q, k, v, mask):
    """Forward pass; returns (out (B,H,L,Dh), lse (B*H, L) float32 log2 units, ends (B,), mask_u8)."""
    if q.device.type != "cuda" and not INTERPRET:
        raise BackendUnavailable(f"triton masked_attention needs CUDA tensors or TRITON_INTERPRET=1 "
                                 f"(got {q.device})")
    bsz, heads, length, head_dim = q.shape
    mask_u8 = mask.contiguous().view(torch.uint8)
    ends = _ends(mask)
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    lse = torch.empty((bsz * heads, length), dtype=torch.float32, device=q.device)
    sm_scale = 1.0 / math.sqrt(head_dim)
    bm, bn, bd, warps, stages = _config(length, head_dim)
    grid = (triton.cdiv(length, bm), bsz * heads)
    _attn_fwd_kernel[grid](q, k, v, out, lse, mask_u8, ends,
                           *_strides(q), *_strides(k), *_strides(v), *_strides(out),
                           *_strides(mask_u8), heads, length, head_dim, sm_scale * _LOG2E,
                           BLOCK_M=bm, BLOCK_N=bn, BLOCK_D=bd, UPCAST=INTERPRET,
                           PRECISION=dot_precision(q.dtype), num_warps=warps, num_stages=stages)
    return out, lse, ends, mask_u8


def attention_backward(q, k, v, out, dout, lse, ends, mask_u8):
    """Gradients (dq, dk, dv), each (B, H, L, Dh) contiguous in the dtype of q."""
    bsz, heads, length, head_dim = q.shape
    delta = (dout.float() * out.float()).sum(-1).reshape(bsz * heads, length).contiguous()
    dq = torch.empty((bsz, heads, length, head_dim), dtype=q.dtype, device=q.device)
    dk = torch.empty_like(dq)
    dv = torch.empty_like(dq)
    sm_scale = 1.0 / math.sqrt(head_dim)
    bm, bn, bd, warps, stages = _config(length, head_dim)
    common = (*_strides(q), *_strides(k), *_strides(v), *_strides(dout), *_strides(mask_u8),
              heads, length, head_dim, sm_scale * _LOG2E, sm_scale)
    meta = dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_D=bd, UPCAST=INTERPRET, PRECISION=dot_precision(q.dtype),
                num_warps=warps, num_stages=stages)
    _attn_bwd_dkdv_kernel[(triton.cdiv(length, bn), bsz * heads)](
        q, k, v, dout, lse, delta, mask_u8, ends, dk, dv, *common, **meta)
    _attn_bwd_dq_kernel[(triton.cdiv(length, bm), bsz * heads)](
        q, k, v, dout, lse, delta, mask_u8, ends, dq, *common, **meta)
    return dq, dk, dv


class TritonMaskedAttention(torch.autograd.Function):
    """Autograd wrapper: ``TritonMaskedAttention.apply(q, k, v, key_padding_mask)``."""

    @staticmethod
    def forward(ctx, q, k, v, key_padding_mask):
        if q.numel() == 0:
            ctx.empty = True
            return torch.zeros_like(q)
        ctx.empty = False
        out, lse, ends, mask_u8 = attention_forward(q, k, v, key_padding_mask)
        ctx.save_for_backward(q, k, v, out, lse, ends, mask_u8)
        return out

    @staticmethod
    def backward(ctx, dout):
        if ctx.empty:
            return torch.zeros_like(dout), torch.zeros_like(dout), torch.zeros_like(dout), None
        q, k, v, out, lse, ends, mask_u8 = ctx.saved_tensors
        dq, dk, dv = attention_backward(q, k, v, out, dout, lse, ends, mask_u8)
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
