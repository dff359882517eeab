"""One dispatch for every hot operation: a reference implementation plus optional backends.

Every operation and its backends are declared in one table, :data:`TABLE` below: op -> backend
name -> :class:`Backend` (``"module:attribute"`` of the implementation, priority, reference flag,
optional ``"module:function"`` wrapper). Nothing registers by being imported; an implementation's
module is imported the first time that backend is asked for, and an ``ImportError`` there (Numba
missing, the Cython extension not built or disabled by ``AEMG_NO_EXT=1``, no GPU for Triton) means
"unavailable here".

Each operation has one name, used by its reference, its backends' modules, its tests and its
benchmark:

==================  ===============================================================================
op                  modules
==================  ===============================================================================
``envelope``,       ``aemg.tokenizer.segment_reference`` (numpy, the spec),
``segment``         ``aemg.tokenizer.segment_numba``, ``aemg._ext.segment_cy`` (csrc/segment_cy.pyx)
``tokens``          ``aemg.tokenizer.tokens`` (numpy), ``aemg.tokenizer.tokens_numba``,
                    ``aemg._ext.tokens_cy`` (csrc/tokens_cy.pyx)
``sosfiltfilt``,    ``aemg.data.rectify`` (scipy), ``aemg._ext.filt_cy`` (csrc/filt_cy.pyx)
``resample_poly``
``sosfiltfilt32``,  the float32 path of the two above (SciPy's float32 computation), same modules
``resample_poly32``
``vq_lookup``       ``aemg.ops`` (torch), ``aemg.kernels.vq_lookup`` (triton)
``masked_attention`` ``aemg.ops`` (torch, sdpa), ``aemg.kernels.masked_attention`` (triton)
==================  ===============================================================================

Choice precedence, per call of :func:`get`:

1. the explicit ``backend=`` argument;
2. :func:`use` (a context manager, for tests and experiments), then the environment:
   ``AEMG_BACKEND_<OP>`` (e.g. ``AEMG_BACKEND_ENVELOPE=numba``), then ``AEMG_BACKEND`` (applies to
   every op that has a backend of that name);
3. automatic: backends by descending priority; the first that loads wins.

An explicitly requested backend (argument, :func:`use` or ``AEMG_BACKEND_<OP>``) that cannot load
raises :class:`~aemg.errors.BackendUnavailable`. An automatic fallback logs one warning per op and
backend. With ``AEMG_STRICT=1`` every fallback is an error, so a GPU or compiled run cannot
silently measure the slow path.

Public inspection and control: :func:`list_ops`, :func:`names`, :func:`available`,
:func:`reference`, :func:`choose`, :func:`requested`, :func:`use`, :func:`override` (swap in or
disable a backend for a block, restored on exit) and :func:`register` (add a backend at run time,
e.g. a plug-in).
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import BackendUnavailable, ConfigError

log = logging.getLogger("aemg.backends")


@dataclass
class Backend:
    """One backend of one operation.

    Attributes
    ----------
    target : str or callable
        ``"module:attribute"`` of the implementation (imported lazily), or the implementation itself
        (backends added with :func:`register` / :func:`override`).
    priority : int or str
        Higher is tried first by automatic choice; a ``"module:function"`` string is called once
        (no arguments) for the number, e.g. when it depends on whether CUDA is present.
    reference : bool
        The readable reference implementation (the oracle and the last fallback).
    wrap : str, optional
        ``"module:function"`` applied to the loaded attribute to give the op's calling convention
        (e.g. a resumable chunk kernel into the ``segment`` contract); it may raise ImportError
        to say the backend cannot run here (the Triton device guard).
    """

    target: str | Callable[..., Any]
    priority: int | str = 0
    reference: bool = False
    wrap: str | None = None
    impl: Callable[..., Any] | None = field(default=None, repr=False, compare=False)
    error: BaseException | None = field(default=None, repr=False, compare=False)
    _priority: int | None = field(default=None, repr=False, compare=False)


def _b(target, priority=0, *, reference=False, wrap=None) -> Backend:
    return Backend(target, priority, reference, wrap)


_SEGMENT_CHUNK = "aemg.tokenizer.segment:chunked_kernel"
_TOKENS_KERNEL = "aemg.tokenizer.tokens:token_kernel"
_TRITON = "aemg.kernels.common:launchable"
_TRITON_PRIORITY = "aemg.kernels.common:triton_priority"

#: Every operation and its backends (the one place they are declared).
#: Compiled signal kernels: Cython first (it loads in milliseconds; Numba's first call in a process
#: costs about 0.5 s of JIT-cache loading), both bit-identical to each other. Model kernels: Triton
#: first only on a CUDA machine (on CPU it stays listed, below every PyTorch backend, so the
#: interpreter can run it by name); sdpa beats the attention reference on CPU (measured, see
#: docs/notes/kernels.md).
TABLE: dict[str, dict[str, Backend]] = {
    "envelope": {
        "numpy": _b("aemg.tokenizer.segment_reference:envelope", 0, reference=True),
        "numba": _b("aemg.tokenizer.segment_numba:envelope", 10),
        "cython": _b("aemg._ext.segment_cy:envelope", 20),
    },
    "segment": {
        "numpy": _b("aemg.tokenizer.segment_reference:segment", 0, reference=True),
        "numba": _b("aemg.tokenizer.segment_numba:segment_chunk", 10, wrap=_SEGMENT_CHUNK),
        "cython": _b("aemg._ext.segment_cy:segment_chunk", 20, wrap=_SEGMENT_CHUNK),
    },
    "tokens": {
        "numpy": _b("aemg.tokenizer.tokens:extract_tokens_reference", 0, reference=True),
        "numba": _b("aemg.tokenizer.tokens_numba:extract_into", 10, wrap=_TOKENS_KERNEL),
        "cython": _b("aemg._ext.tokens_cy:extract_into", 20, wrap=_TOKENS_KERNEL),
    },
    "sosfiltfilt": {
        "scipy": _b("aemg.data.rectify:sosfiltfilt_reference", 0, reference=True),
        "cython": _b("aemg._ext.filt_cy:sosfiltfilt_into", 20, wrap="aemg.data.rectify:sosfiltfilt_entry"),
    },
    "resample_poly": {
        "scipy": _b("aemg.data.rectify:resample_poly_reference", 0, reference=True),
        "cython": _b("aemg._ext.filt_cy:upfirdn_into", 20, wrap="aemg.data.rectify:resample_poly_entry"),
    },
    "sosfiltfilt32": {
        "scipy": _b("aemg.data.rectify:sosfiltfilt32_reference", 0, reference=True),
        "cython": _b("aemg._ext.filt_cy:sosfiltfilt32_into", 20,
                     wrap="aemg.data.rectify:sosfiltfilt32_entry"),
    },
    "resample_poly32": {
        "scipy": _b("aemg.data.rectify:resample_poly32_reference", 0, reference=True),
        "cython": _b("aemg._ext.filt_cy:upfirdn32_into", 20, wrap="aemg.data.rectify:resample_poly32_entry"),
    },
    "vq_lookup": {
        "torch": _b("aemg.ops:vq_lookup_reference", 0, reference=True),
        "triton": _b("aemg.kernels.vq_lookup:vq_lookup_triton", _TRITON_PRIORITY, wrap=_TRITON),
    },
    "masked_attention": {
        "torch": _b("aemg.ops:masked_attention_reference", 0, reference=True),
        "sdpa": _b("aemg.ops:masked_attention_sdpa", 50),
        "triton": _b("aemg.kernels.masked_attention:masked_attention_triton", _TRITON_PRIORITY,
                     wrap=_TRITON),
    },
}

#: get()'s answers by (op, backend, use(), AEMG_BACKEND_<OP>, AEMG_BACKEND, strict); cleared on change
_CHOSEN: dict[tuple, Backend] = {}
_WARNED: set[tuple[str, str]] = set()
_USE: dict[str, str] = {}


def _resolve(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    if not attr:
        raise ConfigError(f"backend target {ref!r}: expected 'module:attribute'")
    if module.startswith("aemg._ext."):
        from . import _ext
        _ext.check_enabled(module)
    return getattr(importlib.import_module(module), attr)


def _load(b: Backend) -> Callable[..., Any] | None:
    if b.impl is None and b.error is None:
        try:
            impl = _resolve(b.target) if isinstance(b.target, str) else b.target
            b.impl = _resolve(b.wrap)(impl) if b.wrap else impl
        except Exception as exc:  # noqa: BLE001 - any failure means "not available here"
            b.error = exc
    return b.impl


def _priority(b: Backend) -> int:
    if b._priority is None:
        b._priority = int(_resolve(b.priority)()) if isinstance(b.priority, str) else int(b.priority)
    return b._priority


def _table(op: str) -> dict[str, Backend]:
    table = TABLE.get(op)
    if table is None:
        raise ConfigError(f"unknown operation {op!r}; known: {list_ops()}")
    return table


def _changed(op: str) -> None:
    _CHOSEN.clear()
    for key in [k for k in _WARNED if k[0] == op]:
        _WARNED.discard(key)


def list_ops() -> list[str]:
    """Names of every operation, sorted (those starting with ``_`` are test/demo ops)."""
    return sorted(TABLE)


def names(op: str) -> list[str]:
    """Backend names of ``op``, highest priority first."""
    table = _table(op)
    return [n for n, _ in sorted(table.items(), key=lambda item: -_priority(item[1]))]


def available(op: str) -> list[str]:
    """Backend names of ``op`` that load on this machine, highest priority first."""
    table = _table(op)
    return [n for n in names(op) if _load(table[n]) is not None]


def unavailable(op: str) -> dict[str, str]:
    """Backends of ``op`` that do not load here -> why (the loading error, as text)."""
    table = _table(op)
    return {n: f"{type(table[n].error).__name__}: {table[n].error}" for n in names(op)
            if _load(table[n]) is None}


def reference(op: str) -> str:
    """Name of the reference backend of ``op``."""
    refs = [n for n, b in _table(op).items() if b.reference]
    if not refs:
        raise ConfigError(f"operation {op!r} has no reference backend")
    return refs[0]


def strict() -> bool:
    """True when ``AEMG_STRICT`` is set to a true value: fallbacks become errors."""
    return os.environ.get("AEMG_STRICT", "").lower() in {"1", "true", "yes", "on"}


def requested(op: str) -> str | None:
    """The backend explicitly requested for ``op`` by :func:`use` or ``AEMG_BACKEND_<OP>``, if any."""
    return _USE.get(op) or os.environ.get(f"AEMG_BACKEND_{op.upper()}") or None


def choose(op: str, backend: str | None = None) -> str:
    """Name of the backend :func:`get` would use for ``op`` (see module docstring)."""
    table = _table(op)
    explicit = backend or requested(op)
    if explicit:
        source = "backend=" if backend else ("use(): " if op in _USE else f"AEMG_BACKEND_{op.upper()}=")
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
        if _load(table[n]) is not None:
            if n != first:
                _fallback(op, first, n)
            return n
    raise BackendUnavailable(f"no backend for {op!r} loads here: " +
                             "; ".join(f"{n}: {table[n].error}" for n in order))


def _fallback(op: str, wanted: str, got: str) -> None:
    err = TABLE[op][wanted].error
    msg = f"{op}: backend {wanted!r} unavailable ({err}); using {got!r}"
    if strict():
        raise BackendUnavailable(msg + " [AEMG_STRICT is set]")
    if (op, wanted) not in _WARNED:
        _WARNED.add((op, wanted))
        log.warning(msg)


def get(op: str, backend: str | None = None) -> Callable[..., Any]:
    """The implementation of ``op`` chosen by :func:`choose` (remembered per argument and
    environment: kernels are looked up once per trial in hot loops)."""
    key = (op, backend, _USE.get(op), os.environ.get(f"AEMG_BACKEND_{op.upper()}"),
           os.environ.get("AEMG_BACKEND"), strict())
    hit = _CHOSEN.get(key)
    if hit is not None:
        return hit.impl
    b = _table(op)[choose(op, backend)]
    assert b.impl is not None
    _CHOSEN[key] = b
    return b.impl


def register(op: str, name: str, impl: str | Callable[..., Any], *, priority: int = 0,
             reference: bool = False, wrap: str | None = None) -> None:
    """Add (or replace) backend ``name`` of ``op`` at run time (a plug-in; built-ins are in
    :data:`TABLE`).

    ``impl`` is the implementation or its ``"module:attribute"``; see :class:`Backend` for the rest.
    A new op needs a ``reference=True`` backend.
    """
    TABLE.setdefault(op, {})[name] = Backend(impl, priority, reference, wrap)
    _changed(op)


@contextlib.contextmanager
def use(op: str, name: str) -> Iterator[None]:
    """Within the block, ``op`` uses backend ``name`` (as ``AEMG_BACKEND_<OP>=name`` would; an
    explicit ``backend=`` argument still wins). Raises BackendUnavailable on entry when ``name``
    does not load here."""
    previous = _USE.get(op)
    _USE[op] = name
    _CHOSEN.clear()
    try:
        choose(op)
        yield
    finally:
        if previous is None:
            _USE.pop(op, None)
        else:
            _USE[op] = previous
        _CHOSEN.clear()


@contextlib.contextmanager
def override(op: str, name: str, impl: Callable[..., Any] | None = None, *,
             error: BaseException | None = None, priority: int | None = None,
             reference: bool = False) -> Iterator[None]:
    """Within the block, backend ``name`` of ``op`` is ``impl``, or fails to load with ``error``
    (to see what happens where it is missing); the table entry is restored on exit.

    ``priority`` defaults to the replaced entry's (0 for a new name). Warnings already given for
    ``op`` are forgotten on entry and exit, so a fallback inside the block warns again.
    """
    if (impl is None) == (error is None):
        raise ConfigError("backends.override: give exactly one of impl= or error=")
    table = TABLE.setdefault(op, {})
    old = table.get(name)
    prio = priority if priority is not None else (_priority(old) if old is not None else 0)
    new = Backend(impl if impl is not None else name, prio, reference or bool(old and old.reference))
    if error is not None:
        new.error = error
    else:
        new.impl = impl
    table[name] = new
    _changed(op)
    try:
        yield
    finally:
        if old is None:
            table.pop(name, None)
            if not table:
                TABLE.pop(op, None)
        else:
            table[name] = old
        _changed(op)
