"""One lifecycle for resumable output folders: the archive, the token corpus and ``aemg prepare``.

Every long command writes a folder that a re-run with the same arguments resumes. They share:

1. **The marker** (:func:`stored_marker`): a JSON file written first (the archive's
   ``manifest.json``, the corpus's ``plan.json``) says what the folder holds; a folder without it
   must be missing or empty (:func:`refuse_foreign`), else the run refuses to write into it.
2. **The identity check on resume** (:func:`field_differences`, :func:`identity_error`): the
   settings stored in the marker must equal this run's, else a ConfigError naming each difference.
3. **Temp clean-up** (:func:`remove_leftovers`): what an interrupted run left half-written
   (``*.tmp`` files or folders) is deleted before work starts.
4. **JSON** (:func:`dumps`, :data:`LINE`): one encoder (NumPy scalars and arrays, paths).
5. **Row selection** (:func:`select_rows`): ``select(field=value, ...)`` over index rows, the same
   matching rules for an archive and a corpus.

The lock (one writer per folder) and the atomic writes are :mod:`aemg._io`'s.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ._io import folder_entries, read_json
from .errors import ConfigError


# -- JSON ----------------------------------------------------------------------------------------------
def json_default(obj: Any) -> Any:
    """JSON value of a NumPy scalar or array or a path (``json.dumps(default=...)``)."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, os.PathLike)):
        return os.fspath(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def dumps(obj: Any, *, sort_keys: bool = False, **kw) -> str:
    """``json.dumps`` with :func:`json_default`."""
    return json.dumps(obj, default=json_default, sort_keys=sort_keys, **kw)


#: one compact JSON line with sorted keys (an encoder built once: index files have many lines)
LINE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=json_default)


# -- marker and identity ---------------------------------------------------------------------------
def refuse_foreign(folder: Path, marker: str, what: str) -> None:
    """ConfigError unless ``folder`` is missing or an empty folder (its lock file aside): it holds
    something that is not ``what`` (no ``marker``)."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or folder_entries(folder)):
        raise ConfigError(f"{folder}: exists and is not {what} (no {marker}); refusing to write into it")


def stored_marker(folder: Path, marker: str, what: str,
                  read: Callable[[Path], Any] = read_json) -> Any | None:
    """The marker of an earlier run (``read(folder / marker)``), or None for a fresh folder;
    ConfigError (:func:`refuse_foreign`) for a folder holding something else."""
    path = Path(folder) / marker
    if path.is_file():
        return read(path)
    refuse_foreign(folder, marker, what)
    return None


def field_differences(stored: Mapping[str, Any], now: Mapping[str, Any], keys: Iterable[str], holder: str,
                      *, by_json: bool = False, sort_keys: bool = False) -> list[str]:
    """``"key: HOLDER has OLD, now NEW"`` for each of ``keys`` whose value differs (compared as
    values, or as their JSON text with ``by_json``; shown as JSON)."""
    out = []
    for key in keys:
        a, b = stored.get(key), now.get(key)
        ja, jb = dumps(a, sort_keys=sort_keys), dumps(b, sort_keys=sort_keys)
        if (ja != jb) if by_json else (a != b):
            out.append(f"{key}: {holder} has {ja}, now {jb}")
    return out


def identity_error(folder: Path, holds: str, differences: Sequence[str], instead: str) -> ConfigError:
    """The error for a re-run whose settings differ from the folder's (one clause per difference)."""
    return ConfigError(f"{folder}: already holds {holds} ({'; '.join(differences)}); re-run with the same "
                       f"arguments to resume, or choose another {instead}")


# -- temp clean-up ---------------------------------------------------------------------------------
def is_temp(path: Path) -> bool:
    """A temp entry of an atomic write (``NAME.tmp``)."""
    return path.name.endswith(".tmp")


def remove_leftovers(folder: Path, is_leftover: Callable[[Path], bool] = is_temp) -> list[Path]:
    """Delete the entries of ``folder`` (files or folders, in name order) that ``is_leftover``;
    return them. A missing folder has none."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in sorted(folder.iterdir()):
        if is_leftover(p):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
    return removed


# -- row selection ---------------------------------------------------------------------------------
def matcher(want: Any) -> Callable[[Any], bool]:
    """The test of one ``select`` filter: a callable is a predicate, a list/tuple/set means
    membership, anything else equality (strings also match numbers: ``3`` matches ``"3"``)."""
    if callable(want):
        return lambda v: bool(want(v))
    if isinstance(want, (list, tuple, set, frozenset)):
        tests = [matcher(w) for w in want]
        return lambda v: any(t(v) for t in tests)
    return lambda v: v == want or (isinstance(v, str) and not isinstance(want, str) and v == str(want))


def select_rows(rows: Sequence[Mapping[str, Any]], filters: Mapping[str, Any],
                fields: Sequence[str]) -> list[int]:
    """Indices of the ``rows`` whose fields match every filter (see :func:`matcher`); ConfigError
    naming ``fields`` (in the order given) for a filter on another field."""
    unknown = sorted(set(filters) - set(fields))
    if unknown:
        raise ConfigError(f"select: unknown field(s) {', '.join(unknown)}; fields: {', '.join(fields)}")
    tests = {name: matcher(value) for name, value in filters.items()}
    return [i for i, r in enumerate(rows) if all(t(r[name]) for name, t in tests.items())]
