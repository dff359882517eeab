"""CPU allocator settings for training.

glibc's malloc serves blocks above its mmap threshold (128 KiB, adapting up to 32 MiB) with fresh
``mmap`` pages and returns them with ``munmap`` on free, and trims the heap top above 128 KiB. A
training step allocates and frees many activation and gradient tensors of 0.1-10 MB, so every step
page-faults fresh zeroed pages in and unmaps them again: on one core the tiny preset spent as much
time in the kernel as in PyTorch (measured: 35.6 s sys vs 41.2 s user for 80 steps). Keeping freed
memory in the process (no mmap for large blocks, a fixed mmap threshold at its maximum, no trimming)
removes that churn; the arithmetic, and therefore every result, is unchanged. Blocks above the
threshold's 32 MiB cap (the base preset's encoder activations are 0.1-0.6 GB) would still be
mapped and unmapped every step, so mmap is turned off altogether (``M_MMAP_MAX = 0``; glibc still
falls back to mmap when the heap cannot grow): measured on the base preset with the packed token
encoder, 3 + 3 steps on 3DC, minor page faults 1.84 M -> 0.69 M, system time 6.2 s -> 2.3 s, peak
memory 2.1 -> 2.9 GB (docs/notes/generalisation.md, Session 5 (H5)).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger("aemg.train")

# mallopt parameter numbers (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4

#: Largest mmap threshold glibc accepts on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX): 32 MiB.
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
#: Keep up to this much free memory at the heap top instead of returning it (bytes).
TRIM_THRESHOLD_BYTES = 1 << 30
TOP_PAD_BYTES = 1 << 30

_done = False


def keep_freed_memory() -> bool:
    """Tune glibc malloc so that freed tensor memory is reused instead of unmapped (idempotent).

    Returns True when the settings were applied (glibc on Linux), False elsewhere (no-op) or when
    the environment variable ``AEMG_KEEP_FREED_MEMORY=0`` turns it off (for before/after figures).
    """
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("AEMG_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = all(mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
        (_M_TOP_PAD, TOP_PAD_BYTES), (_M_MMAP_MAX, 0)))
    if not ok:
        log.debug("mallopt refused a setting; allocator left as it is")
    _done = ok
    return ok
