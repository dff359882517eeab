"""Filter and window designs of :mod:`aemg.data.rectify`, computed by SciPy once per machine.

Importing ``scipy.signal`` costs about 1-1.3 s of CPU per process here (it imports
``scipy.stats``, ``scipy.interpolate``, ``scipy.optimize`` ...): more than rectifying a small
dataset, and paid again by every ``aemg rectify`` / ``aemg prepare`` command and every Dask worker.
The pipeline needs from it only designs that depend on a few numbers (Butterworth band sections,
notch sections, ``sosfilt_zi`` states, the polyphase anti-alias FIR, the Hann window). Each design
is computed by SciPy the first time it is asked for and kept as a ``.npy`` file; a later process
loads the very same values (bit for bit) and never imports ``scipy.signal``.

Where: ``$AEMG_CACHE_DIR/designs-scipy<version>-v1``, else ``$XDG_CACHE_HOME/aemg/...``, else
``~/.cache/aemg/...``; ``AEMG_CACHE_DIR=""`` turns the disk cache off. The SciPy version (read
from its installed package, without importing it) is part of the folder name, so an upgrade
computes afresh. A folder that cannot be written only costs the import; a damaged or foreign file
(not a ``.npy`` of the expected dtype) is computed again and replaced. Files are written to a
temporary name and renamed, so concurrent processes never read half a file.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

logger = logging.getLogger(__name__)

#: bump when a cached design's meaning changes (the folder name carries it)
FORMAT = 1


def scipy_signal():
    """``scipy.signal``, imported on first use (about 1 s; see the module docstring)."""
    import scipy.signal
    return scipy.signal


@lru_cache(maxsize=1)
def _scipy_version() -> str:
    """The installed SciPy's version, from its ``version.py`` (no import of SciPy), else from its
    distribution metadata; ``"unknown"`` when neither says."""
    spec = importlib.util.find_spec("scipy")
    if spec is not None and spec.origin:
        try:
            text = (Path(spec.origin).parent / "version.py").read_text()
            m = re.search(r"^version\s*=\s*['\"]([^'\"]+)['\"]", text, re.M)
            if m:
                return m.group(1)
        except OSError:
            pass
    try:
        from importlib.metadata import version
        return version("scipy")
    except Exception:  # noqa: BLE001 - any failure: a version no other install shares
        return "unknown"


def cache_folder() -> Path | None:
    """The design cache folder (see the module docstring), or None when turned off."""
    base = os.environ.get("AEMG_CACHE_DIR")
    if base is None:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = os.path.join(xdg, "aemg") if xdg else os.path.join(os.path.expanduser("~"), ".cache", "aemg")
    if not base:
        return None
    return Path(base) / f"designs-scipy{_scipy_version()}-v{FORMAT}"


def cached_design(kind: str, key: tuple, dtype, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """The array ``compute()`` returns for ``(kind, key)`` (``key``: a tuple of numbers, strings or
    bytes that fixes the design), from the disk cache when it holds it, else computed and stored.
    Returns a read-only C-contiguous array of ``dtype``.
    """
    dtype = np.dtype(dtype)
    folder = cache_folder()
    path = None
    if folder is not None:
        digest = hashlib.sha256(repr((kind, key, dtype.str)).encode()).hexdigest()[:32]
        path = folder / f"{kind}-{digest}.npy"
        stored = _load(path, dtype)
        if stored is not None:
            return stored
    value = np.ascontiguousarray(compute(), dtype=dtype)
    value.setflags(write=False)
    if path is not None:
        _store(path, value)
    return value


def _load(path: Path, dtype: np.dtype) -> np.ndarray | None:
    """The cached array at ``path`` (read-only), or None when missing, unreadable or not a plain
    ``.npy`` of ``dtype``."""
    from .readers.generic import npy_array
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    arr = npy_array(raw)
    if arr is None or arr.dtype != dtype or not arr.flags.c_contiguous:
        logger.debug("design cache: %s is not a .npy of %s; computing it again", path, dtype)
        return None
    return arr


def _store(path: Path, value: np.ndarray) -> None:
    """Write ``value`` to ``path`` through a temporary file and a rename; a failure only logs."""
    buf = io.BytesIO()
    np.save(buf, value, allow_pickle=False)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)
    except OSError as exc:
        logger.debug("design cache: cannot write %s (%s)", path, exc)
        try:
            tmp.unlink()
        except OSError:
            pass
