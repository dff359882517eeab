"""The token corpus format: file names, the plan, shard records, the sentence index and checks.

Layout (format ``aemg-token-corpus``, version 2)::

    OUT/
      plan.json          written first: tokenizer config, archive identity and the work groups; a
                         re-run with the same arguments resumes, other arguments are refused
      shards/000000/     one shard per (dataset, subject, session) group of the archive, written to
                         shards/.000000.tmp/ and renamed when complete (a resumed run skips it
                         only when shard.json's group and checksums match, else redoes it):
                           payload.npy (N, C, L) float32,
                           tokens.npy  (N,) structured: energy (C,) float32, onset_in_event_s,
                                       onset_in_trial_s, duration_s float32, event_index int32,
                                       dominant_channel int16 (the fields of
                                       aemg.tokenizer.sentence.TOKEN_FIELDS; one file instead of
                                       six: creating a file costs ~0.3 ms here, as much as
                                       writing 1 MB)
                           sentences.json   [{key, dataset, subject, session, trial, label, device,
                                              offset, n_tokens, n_events, n_samples, events,
                                              noise, calibration}]
                           shard.json  {"group": [dataset, subject, session],
                                        "files": {name: {"bytes", "crc32"}}}
                         (version 1: one .npy per field, still read)
      sentences.jsonl    the index of every non-empty sentence, in archive order, with its ``shard``
      corpus.json        written last (its presence means complete): format, version, tokenizer
                         config, token_shape (C, L), rate, channel_angles, device, archive identity,
                         counts, classes per dataset

Work is split by (dataset, subject, session) because the noise floor is calibrated per user and
session from the rest-class trials (:mod:`aemg.tokenizer.calibration`); groups are independent, so
they run in a process pool and the bytes written do not depend on the number of workers.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any, Sequence

from ..._folder import LINE, field_differences
from ..._folder import dumps as _json_dumps
from ..._io import digest_problem, file_digest, read_json
from ...errors import DataError

FORMAT = "aemg-token-corpus"
VERSION = 2
#: corpus format versions this package reads (1: one .npy file per token field)
READ_VERSIONS = (1, 2)
CORPUS = "corpus.json"
PLAN = "plan.json"
INDEX = "sentences.jsonl"
SHARDS = "shards"
#: per shard folder: its group and the size and checksum of each of its files (version-2 shards)
SHARD_RECORD = "shard.json"
SHARD_FILES = ("payload.npy", "tokens.npy", "sentences.json")
#: the fields of a ``sentences.jsonl`` line
INDEX_FIELDS = ("key", "dataset", "subject", "session", "trial", "label", "device", "n_tokens",
                "n_events", "n_samples", "shard", "offset")
#: the counts of a shard summary and of ``corpus.json`` (``samples``: time samples of the trials)
COUNT_KEYS = ("sentences", "tokens", "events", "empty", "capped", "trials")

log = logging.getLogger("aemg.tokenize")


def dumps(obj: Any, **kw) -> str:
    """The corpus's JSON: keys sorted."""
    return _json_dumps(obj, sort_keys=True, **kw)


def shard_name(k: int) -> str:
    """The folder name of group ``k``'s shard (``000000``, ...)."""
    return f"{k:06d}"


def archive_identity(archive) -> dict[str, Any]:
    """What a corpus records of its archive: path, manifest and index digests, recordings (a
    changed archive makes a resumed run refuse)."""
    manifest = dumps(archive.manifest).encode()
    rows = dumps([[r["key"], r["n_samples"], r["shard"], r["position"]] for r in archive.index]).encode()
    return {"path": str(Path(archive.path).resolve()),
            "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
            "index_sha256": hashlib.sha256(rows).hexdigest(), "recordings": len(archive)}


def group_key(row: dict[str, Any]) -> tuple[str, str, str]:
    """The work group of an archive row: (dataset, subject, session) as strings."""
    return (row["dataset"], str(row["subject"]), str(row["session"]))


def group_rows(rows: Sequence[dict[str, Any]]) -> list[list[int]]:
    """Row indices grouped by (dataset, subject, session), groups in order of first appearance."""
    order: dict[tuple[str, str, str], list[int]] = {}
    for i, r in enumerate(rows):
        order.setdefault(group_key(r), []).append(i)
    return list(order.values())


def make_plan(config_dict: dict[str, Any], identity: dict[str, Any], rows: Sequence[dict[str, Any]],
              groups: Sequence[list[int]]) -> dict[str, Any]:
    """The content of ``plan.json``."""
    return {"format": FORMAT, "version": VERSION, "config": config_dict, "archive": identity,
            "groups": [[*group_key(rows[g[0]]), g] for g in groups]}


def plan_differences(stored: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    """One line per setting of ``plan`` (a corpus's plan.json) that differs from ``stored``: each
    tokenizer setting by name, the format version, and the archive (path, recordings or contents)."""
    diffs = []
    if stored.get("version") != plan["version"]:
        diffs.append(f"format version: the corpus has {stored.get('version')}, now {plan['version']}")
    old, new = stored.get("config") or {}, plan["config"]
    diffs += field_differences(old, new, sorted(set(old) | set(new)), "the corpus", by_json=True,
                               sort_keys=True)
    a, b = stored.get("archive") or {}, plan["archive"]
    if dumps(a) != dumps(b):
        what = "another archive folder" if a.get("path") != b.get("path") else "the archive changed since"
        diffs.append(f"archive: {what} ({a.get('path')}, {a.get('recordings')} recordings; now "
                     f"{b.get('path')}, {b.get('recordings')} recordings)")
    return diffs


# -- shards ------------------------------------------------------------------------------------------
def write_shard_record(folder: Path, group: list[str]) -> None:
    """Write ``folder/shard.json``: the group (dataset, subject, session) and every file's size and
    CRC-32, so that a resumed run (and ``aemg verify``) can tell a shard it may skip."""
    files = {}
    for name in SHARD_FILES:
        size, crc = file_digest(folder / name, "crc32")
        files[name] = {"bytes": size, "crc32": crc}
    (folder / SHARD_RECORD).write_text(dumps({"group": list(group), "files": files}) + "\n")


def shard_problem(folder: Path, group: Sequence[str]) -> str | None:
    """What is wrong with a finished shard folder of group ``group`` (None: it may be skipped).
    Without a shard.json (corpora made before it) only the files' presence is checked."""
    record = folder / SHARD_RECORD
    if not record.is_file():
        missing = [name for name in SHARD_FILES if not (folder / name).is_file()]
        return f"missing {', '.join(missing)}" if missing else None
    try:
        meta = read_json(record)
        files, stored = meta["files"], meta["group"]
    except (DataError, KeyError, TypeError) as exc:
        return f"unreadable {SHARD_RECORD} ({exc})"
    if list(stored) != list(group):
        return f"holds group {'/'.join(stored)}, the plan says {'/'.join(group)} (shard folders swapped?)"
    for name, want in files.items():
        problem = digest_problem(folder / name, want)
        if problem is not None:
            return f"{name}: {problem}"
    return None


def verify_shards(out: Path, groups: Sequence[Sequence], names: Sequence[str], *,
                  remove: bool = False) -> list[str]:
    """``"folder: problem"`` for each finished shard of ``out`` that fails :func:`shard_problem`;
    with ``remove`` the bad ones are deleted (and the corpus marked incomplete) so they are redone."""
    problems = []
    for k, name in enumerate(names):
        folder = out / SHARDS / name
        if folder.is_dir():
            problem = shard_problem(folder, [str(v) for v in groups[k][:3]])
            if problem is not None:
                problems.append(f"{folder}: {problem}")
                if remove:
                    log.warning("%s; tokenizing that group again", problems[-1])
                    (out / CORPUS).unlink(missing_ok=True)
                    shutil.rmtree(folder)
    return problems


def shard_summary(meta: list[dict[str, Any]], where) -> dict[str, Any]:
    """Per-dataset counts (trials, sentences, tokens, events, empty, capped, samples) and class
    lists of one shard's sentence metadata."""
    per_dataset: dict[str, dict[str, int]] = {}
    classes: dict[str, list[str]] = {}
    for m in meta:
        d = per_dataset.setdefault(m["dataset"], dict(trials=0, sentences=0, tokens=0, events=0, empty=0,
                                                      capped=0, samples=0))
        d["trials"] += 1
        d["samples"] += m["n_samples"]
        d["events"] += m["n_events"]
        d["capped"] += m["n_tokens_uncapped"] > m["n_tokens"]
        d["empty"] += m["n_tokens"] == 0
        d["sentences"] += m["n_tokens"] > 0
        d["tokens"] += m["n_tokens"]
        if m["classes"] and classes.setdefault(m["dataset"], m["classes"]) != m["classes"]:
            raise DataError(where, f"dataset {m['dataset']!r} has two class lists: "
                                   f"{classes[m['dataset']]} and {m['classes']}")
    return {"per_dataset": per_dataset, "classes": classes}


def index_lines(meta: list[dict[str, Any]], shard: str) -> list[str]:
    """The ``sentences.jsonl`` lines of one shard's non-empty sentences."""
    lines = []
    for m in meta:
        if m["n_tokens"]:
            row = {k: m[k] for k in INDEX_FIELDS if k in m}
            row["shard"] = shard
            lines.append(LINE.encode(row))
    return lines
