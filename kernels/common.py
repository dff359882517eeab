"""What every Triton kernel of aemg shares: the interpreter flag, ``tl.dot`` precision, device guards.

This module does not import Triton (``triton_priority`` and ``launchable`` are called by
:mod:`aemg.backends` on machines without it); the kernel modules do.
"""
from __future__ import annotations

import os

import torch

from aemg.errors import BackendUnavailable

#: True when kernels run in Triton's CPU interpreter. Read once, at import: ``triton.jit`` decides
#: interpreter or compiler when it decorates a kernel, so a later change of the variable has no
#: effect on kernels already defined.
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"


def dot_precision(dtype: torch.dtype) -> str:
    """``tl.dot`` input precision for inputs of ``dtype``: fp32 follows
    ``torch.backends.cuda.matmul.allow_tf32`` (off by default, so fp32 matches torch's fp32
    matmul: ``"ieee"``); fp16/bf16 always use tensor cores (``"tf32"`` is ignored for them)."""
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32"


def require_triton() -> None:
    """Raise ImportError unless Triton can launch kernels here (a CUDA GPU or the interpreter)."""
    if not (torch.cuda.is_available() or INTERPRET):
        raise ImportError("triton needs a CUDA GPU (or TRITON_INTERPRET=1 for the CPU interpreter)")
    import triton  # noqa: F401  (ImportError when not installed)


def launchable(fn):
    """Backend wrapper of the Triton entries in :data:`aemg.backends.TABLE`: ``fn`` itself when
    :func:`require_triton` passes (else its ImportError: the backend is unavailable here)."""
    require_triton()
    return fn


def triton_priority() -> int:
    """Automatic-choice priority of the Triton backends: first on a CUDA machine; on CPU below
    every PyTorch backend (the interpreter is orders of magnitude slower, so it runs by name only)."""
    return 100 if torch.cuda.is_available() else -100


def check_device(op: str, t: torch.Tensor) -> None:
    """Raise BackendUnavailable unless ``t`` is on a CUDA device or the interpreter is on."""
    if t.device.type != "cuda" and not INTERPRET:
        raise BackendUnavailable(f"triton {op} needs CUDA tensors or TRITON_INTERPRET=1 (got {t.device})")
