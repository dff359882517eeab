"""One dispatch for every hot operation: a reference implementation plus optional backends.

Each operation (``"envelope"``, ``"segment"``, ``"vq_lookup"``, ``"masked_attention"`` ...) has a
readable reference backend (NumPy for signal kernels, PyTorch for model kernels) and optional
compiled backends (Numba, Cython, Triton). Backends register a *loader*: a function that imports
the implementation lazily and returns it, or raises ``ImportError`` when it cannot load here.

Choice precedence, per call of :func:`get`:

1. the explicit ``backend=`` argument;
2. the environment: ``AEMG_BACKEND_<OP>`` (e.g. ``AEMG_BACKEND_ENVELOPE=numba``), then
   ``AEMG_BACKEND`` (applies to every op that has a backend of that name);
3. automatic: registered backends by descending priority; the first that loads wins.

An explicitly requested backend (argument or ``AEMG_BACKEND_<OP>``) that cannot load raises
:class:`~aemg.errors.BackendUnavailable`. An automatic fallback logs one warning per op and
backend. With ``AEMG_STRICT=1`` every fallback is an error, so a GPU or compiled run cannot
silently measure the slow path.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

from .errors import BackendUnavailable, ConfigError

log = logging.getLogger("aemg.backends")


@dataclass
class _Backend:
    name: str
    loader: Callable[[], Callable[..., Any]]
    priority: int
    impl: Callable[..., Any] | None = None
    error: BaseException | None = None


_REGISTRY: dict[str, dict[str, _Backend]] = {}
#: get()'s answers by (op, backend, AEMG_BACKEND_<OP>, AEMG_BACKEND, strict); cleared by register()
_CHOSEN: dict[tuple, "_Backend"] = {}
_REFERENCE: dict[str, str] = {}
_WARNED: set[tuple[str, str]] = set()


def register(op: str, name: str, loader: Callable[[], Callable[..., Any]], *,
             priority: int = 0, reference: bool = False) -> None:
    """Register backend ``name`` of operation ``op``.

    Parameters
    ----------
    op : str
        Operation name, e.g. ``"envelope"``.
    name : str
        Backend name, e.g. ``"numpy"``, ``"numba"``, ``"cython"``, ``"torch"``, ``"triton"``.
    loader : callable
        Zero-argument function returning the implementation; raises ImportError (or any
        exception) when the backend cannot be used on this machine. Called at most once.
    priority : int
        Higher is tried first by automatic choice.
    reference : bool
        Marks the readable reference implementation (the oracle and the last fallback).
    """
    _REGISTRY.setdefault(op, {})[name] = _Backend(name, loader, priority)
    _CHOSEN.clear()
    if reference:
        _REFERENCE[op] = name


def _load(b: _Backend) -> Callable[..., Any] | None:
    if b.impl is None and b.error is None:
        try:
            b.impl = b.loader()
        except Exception as exc:  # noqa: BLE001 - any failure means "not available here"
            b.error = exc
    return b.impl


def names(op: str) -> list[str]:
    """Registered backend names of ``op``, highest priority first."""
    if op not in _REGISTRY:
        raise ConfigError(f"unknown operation {op!r}; known: {sorted(_REGISTRY)}")
    return [b.name for b in sorted(_REGISTRY[op].values(), key=lambda b: -b.priority)]


def available(op: str) -> list[str]:
    """Backend names of ``op`` that load on this machine, highest priority first."""
    return [n for n in names(op) if _load(_REGISTRY[op][n]) is not None]


def reference(op: str) -> str:
    """Name of the reference backend of ``op``."""
    return _REFERENCE[op]


def strict() -> bool:
    """True when ``AEMG_STRICT`` is set to a true value: fallbacks become errors."""
    return os.environ.get("AEMG_STRICT", "").lower() in {"1", "true", "yes", "on"}


def choose(op: str, backend: str | None = None) -> str:
    """Name of the backend :func:`get` would use for ``op`` (see module docstring)."""
    table = _REGISTRY.get(op)
    if table is None:
        raise ConfigError(f"unknown operation {op!r}; known: {sorted(_REGISTRY)}")
    explicit = backend or os.environ.get(f"AEMG_BACKEND_{op.upper()}")
    source = "backend=" if backend else f"AEMG_BACKEND_{op.upper()}"
    if explicit:
        if explicit not in table:
            raise ConfigError(f"{source}{explicit!r}: unknown backend for {op!r}; choose from {names(op)}")
        b = table[explicit]
        if _load(b) is None:
            raise BackendUnavailable(f"backend {explicit!r} for {op!r} is unavailable here: {b.error}")
        return explicit
    wanted = os.environ.get("AEMG_BACKEND")
    order = names(op)
    if wanted and wanted in table:
        order = [wanted] + [n for n in order if n != wanted]
    first = order[0]
    for n in order:
        b = table[n]
        if _load(b) is not None:
            if n != first:
                _fallback(op, first, n)
            return n
    raise BackendUnavailable(f"no backend for {op!r} loads here: " +
                             "; ".join(f"{n}: {table[n].error}" for n in order))


def _fallback(op: str, wanted: str, got: str) -> None:
    err = _REGISTRY[op][wanted].error
    msg = f"{op}: backend {wanted!r} unavailable ({err}); using {got!r}"
    if strict():
        raise BackendUnavailable(msg + " [AEMG_STRICT is set]")
    if (op, wanted) not in _WARNED:
        _WARNED.add((op, wanted))
        log.warning(msg)


def get(op: str, backend: str | None = None) -> Callable[..., Any]:
    """The implementation of ``op`` chosen by :func:`choose` (remembered per argument and
    environment: kernels are looked up once per trial in hot loops)."""
    key = (op, backend, os.environ.get(f"AEMG_BACKEND_{op.upper()}"), os.environ.get("AEMG_BACKEND"), strict())
    hit = _CHOSEN.get(key)
    if hit is not None and _REGISTRY[op].get(hit.name) is hit:  # still the registered entry
        return hit.impl
    b = _REGISTRY[op][choose(op, backend)]
    assert b.impl is not None
    _CHOSEN[key] = b
    return b.impl
