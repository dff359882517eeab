"""Public model kernels with PyTorch references and backend dispatch: VQ lookup, masked attention.

Operations and backends (declared in :data:`aemg.backends.TABLE`, chosen per call by
``backend=`` > ``backends.use()`` / ``AEMG_BACKEND_<OP>`` > ``AEMG_BACKEND`` > automatic):

==================  ==========================================  =====================================
op                  backends                                    automatic choice
==================  ==========================================  =====================================
``vq_lookup``       ``torch`` (reference), ``triton``           CUDA: triton; CPU: torch
``masked_attention`` ``torch`` (reference), ``sdpa``, ``triton``  CUDA: triton; CPU: sdpa
==================  ==========================================  =====================================

Triton loads when CUDA is available or ``TRITON_INTERPRET=1`` (CPU interpreter, for tests), but the
automatic choice only prefers it on a CUDA machine, and only for CUDA tensors: on CPU the interpreter
is orders of magnitude slower than PyTorch, so it runs only when asked for by name. On CPU the
automatic attention choice is ``sdpa`` because it measured faster than the reference there (see
docs/notes/kernels.md and benchmarks/test_bench_kernels.py).
"""
from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F

from . import backends
from .errors import DataError

_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
#: Bytes of fp32 distances the VQ reference materialises at once (it chunks over N beyond this);
#: 32 MiB measured faster on CPU than one big matrix (fewer page faults, better cache reuse).
VQ_REFERENCE_CHUNK_BYTES = 32 << 20


# ----------------------------------------------------------------------------- validation helpers


def _check_float(name: str, t: torch.Tensor, ndim: int, shape_doc: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise DataError(name, f"expected a torch.Tensor of shape {shape_doc}, got {type(t).__name__}")
    if t.ndim != ndim:
        raise DataError(name, f"expected shape {shape_doc}, got {tuple(t.shape)}")
    if t.dtype not in _FLOAT_DTYPES:
        raise DataError(name, f"dtype {t.dtype} is not supported; use float32, float16 or bfloat16")


def _check_vq(z: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    _check_float("vq_lookup: z", z, 2, "(N, D)")
    _check_float("vq_lookup: codebook", codebook, 2, "(K, D)")
    if codebook.shape[0] == 0:
        raise DataError("vq_lookup: codebook", "is empty (K = 0)")
    if z.shape[1] != codebook.shape[1]:
        raise DataError("vq_lookup: codebook", f"has D = {codebook.shape[1]} but z has D = {z.shape[1]}")
    if z.device != codebook.device:
        raise DataError("vq_lookup: codebook", f"is on {codebook.device} but z is on {z.device}")
    if z.dtype != codebook.dtype:
        common = torch.promote_types(z.dtype, codebook.dtype)
        z, codebook = z.to(common), codebook.to(common)
    return z, codebook


def _check_attention(q, k, v, key_padding_mask) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        _check_float(f"masked_attention: {name}", t, 4, "(B, H, L, Dh)")
    if k.shape != q.shape or v.shape != q.shape:
        raise DataError("masked_attention: k, v", f"shapes {tuple(k.shape)}, {tuple(v.shape)} differ from "
                        f"q {tuple(q.shape)}; all must be (B, H, L, Dh)")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise DataError("masked_attention: k, v", f"dtypes {k.dtype}, {v.dtype} differ from q {q.dtype}")
    if not isinstance(key_padding_mask, torch.Tensor) or key_padding_mask.dtype != torch.bool:
        raise DataError("masked_attention: key_padding_mask", "expected a bool tensor (True = real token)")
    bsz, _, length, _ = q.shape
    if tuple(key_padding_mask.shape) != (bsz, length):
        raise DataError("masked_attention: key_padding_mask",
                        f"expected shape (B, L) = {(bsz, length)}, got {tuple(key_padding_mask.shape)}")
    for name, t in (("k", k), ("v", v), ("key_padding_mask", key_padding_mask)):
        if t.device != q.device:
            raise DataError(f"masked_attention: {name}", f"is on {t.device} but q is on {q.device}")


# ----------------------------------------------------------------------------- VQ nearest codeword


def vq_lookup_reference(z: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest codeword by squared euclidean distance: the readable spec of :func:`vq_lookup`.

    Upcasts to float32, forms ``||z||^2 + ||c||^2 - 2 z.c`` for a chunk of rows at a time (at most
    :data:`VQ_REFERENCE_CHUNK_BYTES` of distances) and takes ``torch.argmin`` (lowest index on ties,
    NaN counts as the minimum).

    Parameters
    ----------
    z : Tensor, shape (N, D)
        Query vectors (l2-normalised by the caller for cosine VQ).
    codebook : Tensor, shape (K, D)
        Codewords.

    Returns
    -------
    indices : Tensor, shape (N,), int64
    distances : Tensor, shape (N,), float32
        Squared distance to the chosen codeword (NaN for rows of ``z`` holding NaN).
    """
    z, codebook = _check_vq(z, codebook)
    with torch.no_grad():
        zf, cf = z.float(), codebook.float()
        cnorm = cf.pow(2).sum(1)
        chunk = max(1, VQ_REFERENCE_CHUNK_BYTES // (4 * cf.shape[0]))
        indices, distances = [], []
        for start in range(0, zf.shape[0], chunk):
            zc = zf[start:start + chunk]
            dist = torch.addmm(cnorm, zc, cf.T, alpha=-2.0).add_(zc.pow(2).sum(1, keepdim=True))
            best = torch.argmin(dist, dim=1)
            indices.append(best)
            distances.append(dist.gather(1, best[:, None])[:, 0])
        if not indices:
            return (torch.empty(0, dtype=torch.int64, device=z.device),
                    torch.empty(0, dtype=torch.float32, device=z.device))
        return torch.cat(indices), torch.cat(distances)


def vq_lookup(z: torch.Tensor, codebook: torch.Tensor, *,
              backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of and squared euclidean distance to the nearest codeword of every row of ``z``.

    ``distance = ||z||^2 + ||c||^2 - 2 z.c`` computed with float32 accumulation for float32,
    float16 and bfloat16 inputs (mixed input dtypes are promoted). Ties go to the lowest index, like
    ``torch.argmin``; a row of ``z`` holding NaN gets index 0 and distance NaN. For cosine VQ pass
    l2-normalised ``z`` and ``codebook``. Outputs carry no gradient: compute losses from
    ``codebook[indices]``.

    Parameters
    ----------
    z : Tensor, shape (N, D), float32/float16/bfloat16, any strides
    codebook : Tensor, shape (K, D), K >= 1, same device as ``z``
    backend : {"torch", "triton"}, optional
        Force a backend (see :mod:`aemg.backends` for the automatic choice).

    Returns
    -------
    indices : Tensor, shape (N,), int64
    distances : Tensor, shape (N,), float32

    Raises
    ------
    DataError
        Wrong rank, dtype, device or mismatched D, or an empty codebook.
    """
    z, codebook = _check_vq(z, codebook)
    impl = backends.get("vq_lookup", choose("vq_lookup", z.device, backend))
    with torch.no_grad():
        return impl(z, codebook)


# ----------------------------------------------------------------------------- masked attention


def masked_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                               key_padding_mask: torch.Tensor) -> torch.Tensor:
    """Softmax attention over real keys only: the readable spec of :func:`masked_attention`.

    Computed in float32 (differentiable): ``softmax(q k^T / sqrt(Dh))`` with padded keys excluded,
    times ``v``; output rows of padded queries are zero, so no gradient reaches padded positions.

    Parameters
    ----------
    q, k, v : Tensor, shape (B, H, L, Dh)
    key_padding_mask : Tensor, shape (B, L), bool, True = real token

    Returns
    -------
    Tensor, shape (B, H, L, Dh), dtype of ``q``.
    """
    _check_attention(q, k, v, key_padding_mask)
    qf, kf, vf = q.float(), k.float(), v.float()
    scores = qf @ kf.transpose(-1, -2) / math.sqrt(q.shape[-1])
    # Finite fill: a sentence with no real token gives a uniform (then zeroed) row, never NaN.
    scores = scores.masked_fill(~key_padding_mask[:, None, None, :], torch.finfo(torch.float32).min)
    out = torch.softmax(scores, dim=-1) @ vf
    out = out * key_padding_mask[:, None, :, None]
    return out.to(q.dtype)


def masked_attention_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                          key_padding_mask: torch.Tensor) -> torch.Tensor:
    """:func:`masked_attention` through ``torch.nn.functional.scaled_dot_product_attention``.

    Same semantics as the reference: sentences without any real token attend to every position
    (avoiding NaN) and every padded query row is zeroed afterwards.
    """
    empty = ~key_padding_mask.any(dim=1)
    attn_mask = (key_padding_mask | empty[:, None])[:, None, None, :]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    return out * key_padding_mask[:, None, :, None].to(out.dtype)


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: torch.Tensor,
                     *, backend: str | None = None) -> torch.Tensor:
    """Scaled dot-product attention over the real tokens of padded, variable-length sentences.

    ``softmax(q k^T / sqrt(Dh))`` over keys where ``key_padding_mask`` is True, times ``v``, with
    float32 softmax statistics. Output rows of padded queries are zero (also for sentences with no
    real token), and padded positions get zero gradient. Differentiable in every backend.

    Parameters
    ----------
    q, k, v : Tensor, shape (B, H, L, Dh), float32/float16/bfloat16, same dtype and device, any strides
    key_padding_mask : Tensor, shape (B, L), bool, True = real token. Any mask is correct; right
        padding (a prefix of real tokens, what sentences use) is what the Triton kernel skips best.
    backend : {"torch", "sdpa", "triton"}, optional
        Force a backend (see :mod:`aemg.backends` for the automatic choice).

    Returns
    -------
    Tensor, shape (B, H, L, Dh), dtype of ``q``.

    Raises
    ------
    DataError
        Wrong shapes, dtypes, devices, or a non-bool mask.
    """
    _check_attention(q, k, v, key_padding_mask)
    impl = backends.get("masked_attention", choose("masked_attention", q.device, backend))
    return impl(q, k, v, key_padding_mask)


# ----------------------------------------------------------------------------- dispatch


def choose(op: str, device: torch.device | str, backend: str | None = None) -> str:
    """Name of the backend ``op`` (``"vq_lookup"`` or ``"masked_attention"``) uses for tensors on
    ``device``: ``backend``, :func:`aemg.backends.use` or the environment when given, else the
    automatic choice, except that triton is never chosen automatically for non-CUDA tensors."""
    if backend is not None or backends.requested(op):
        return backends.choose(op, backend)
    device = torch.device(device)
    name = backends.choose(op)
    if name == "triton" and device.type != "cuda" and os.environ.get("AEMG_BACKEND") != "triton":
        cpu_order = [n for n in backends.names(op) if n != "triton"]
        return next(n for n in cpu_order if n in backends.available(op))
    return name

