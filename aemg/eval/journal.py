"""The fold journal of an evaluation: finished folds survive an interrupted ``aemg evaluate``.

A leave-one-subject-out run of the trained methods (fine-tuning, training from scratch) takes
hours on a CPU; without a journal a Ctrl-C, a lost session or a crash throws all of it away.
:class:`FoldJournal` appends one JSON line per finished fold to ``REPORT/journal.jsonl`` (flushed
and fsynced before the next fold starts) and a re-run of the same command reads them back instead
of recomputing them.

What makes a journalled fold reusable (:func:`fold_key`): the method name and its options, the
regime, protocol, share, seed, test group and repetition, and a digest of the fold's train, test and
rest trial indices (so a changed fold never reuses an old result). The journal's first line names
the trial set (dataset, classes, rate, a digest of labels, subjects and sessions) and the grouping:
a journal of other trials is refused with an error naming the file and the field, never mixed in.
The methods' *code* is not in the key: after changing a method, evaluate into a new report folder
or pass ``--restart``.

Line format: ``{"journal": 1, "trials": {...}}`` first, then one ``{"key": ..., "row": ...,
"pairs": [[true, predicted, count], ...]}`` per fold. A last line cut short by a crash is dropped
(and the file cut back to the last complete line) when the journal is opened.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError

#: format version of the journal's first line
JOURNAL_VERSION = 1
#: the journal's file name inside a report folder
JOURNAL_NAME = "journal.jsonl"


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes() if a.dtype != object else "\x1f".join(map(str, a.ravel())).encode())
    return h.hexdigest()[:24]


def trials_identity(trials, grouping: dict, rest_class) -> dict:
    """What a journal's results depend on besides the folds: the trial set and the grouping.
    JSON-ready (str, int, float, lists)."""
    return {"dataset": trials.name, "n_trials": int(len(trials)), "classes": list(map(str, trials.classes)),
            "rate": float(trials.rate),
            "labels_subjects_sessions": _digest(np.asarray(trials.labels),
                                                np.asarray(trials.subjects, dtype=str),
                                                np.asarray(trials.sessions, dtype=str)),
            "grouping": grouping, "rest_class": rest_class}


def fold_key(method: str, options: dict, fold) -> str:
    """The journal key (a short string) of ``method`` with ``options`` on ``fold``."""
    parts = {"method": method, "options": options, "protocol": fold.protocol, "regime": fold.regime,
             "share": fold.share, "seed": fold.seed, "subject": fold.subject, "repetition": fold.repetition,
             "indices": _digest(np.asarray(fold.train, np.int64), np.asarray(fold.test, np.int64),
                                np.asarray(fold.rest, np.int64))}
    return json.dumps(parts, sort_keys=True, default=str)


class FoldJournal:
    """Append-only record of finished folds (one JSON line each) in ``path``.

    Parameters
    ----------
    path : path
        The journal file (created with its folder when absent).
    identity : dict
        :func:`trials_identity` of the evaluation; an existing journal with another identity is
        refused (ConfigError naming the file and the first differing field).
    restart : bool
        Discard an existing journal and start empty.

    The file is created by the first :meth:`add`.
    """

    def __init__(self, path: str | os.PathLike, identity: dict, restart: bool = False):
        self.path = Path(path)
        self.identity = json.loads(json.dumps(identity, default=str))  # as it reads back
        self.entries: dict[str, tuple[dict, list]] = {}
        if self.path.exists() and not self.path.is_file():
            raise DataError(self.path, "fold journal exists and is not a file")
        if restart and self.path.exists():
            self.path.unlink()
        if self.path.exists():
            self._read()

    def _read(self) -> None:
        raw = self.path.read_bytes()
        complete = raw[:raw.rfind(b"\n") + 1]
        lines = complete.splitlines()
        try:
            head = json.loads(lines[0]) if lines else None
        except json.JSONDecodeError:
            head = None
        if not isinstance(head, dict) or head.get("journal") != JOURNAL_VERSION:
            raise DataError(self.path, "not an aemg fold journal (version "
                            f"{JOURNAL_VERSION}); remove it or pass --restart")
        old = head.get("trials", {})
        for field, want in self.identity.items():
            if old.get(field) != want:
                raise ConfigError(f"{self.path}: its finished folds were computed on other trials or "
                                  f"another grouping ({field}: {old.get(field)!r} in the journal, {want!r} "
                                  "now); evaluate into another report folder or pass --restart")
        for n, line in enumerate(lines[1:], start=2):
            try:
                entry = json.loads(line)
                self.entries[entry["key"]] = (entry["row"], entry["pairs"])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(self.path, f"line {n} is not a journal entry ({exc}); remove the file "
                                "or pass --restart") from None
        if len(complete) < len(raw):  # a line cut short by a crash: drop it
            with open(self.path, "r+b") as f:
                f.truncate(len(complete))
                f.flush()
                os.fsync(f.fileno())

    def _append(self, obj: dict) -> None:
        line = json.dumps(obj, sort_keys=True, default=_jsonable) + "\n"
        with open(self.path, "ab") as f:
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> tuple[dict, np.ndarray] | None:
        """``(row, pairs)`` of a journalled fold (pairs: (m, 3) int64 of true, predicted, count), or
        None."""
        hit = self.entries.get(key)
        if hit is None:
            return None
        row, pairs = hit
        return dict(row), np.asarray(pairs, dtype=np.int64).reshape(-1, 3)

    def add(self, key: str, row: dict, pairs: np.ndarray) -> None:
        """Record a finished fold (durable when this returns); the first one creates the file (and
        its folder): a run that fails before any fold finishes leaves nothing behind."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 3).tolist()
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._append({"journal": JOURNAL_VERSION, "trials": self.identity})
        self._append({"key": key, "row": row, "pairs": pairs})
        self.entries[key] = (json.loads(json.dumps(row, default=_jsonable)), pairs)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def confusion_pairs(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(m, 3) int64 rows ``(true class, predicted class, count)`` of the trials with a prediction
    (``pred >= 0``), sorted."""
    ok = np.asarray(pred) >= 0
    if not ok.any():
        return np.zeros((0, 3), dtype=np.int64)
    both = np.stack([np.asarray(true)[ok], np.asarray(pred)[ok]], axis=1).astype(np.int64)
    uniq, counts = np.unique(both, axis=0, return_counts=True)
    return np.concatenate([uniq, counts[:, None]], axis=1)
