"""The token corpus on disk: memory-mappable shards of tokens plus a sentence index.

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
                                       dominant_channel int16 (one file instead of six: creating a
                                       file costs ~0.3 ms here, as much as writing 1 MB)
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
session from the rest-class trials (see :class:`~aemg.tokenizer.tokens.TokenizerConfig`); groups
are independent, so they run in a process pool and the bytes written do not depend on the number
of workers.
"""
from __future__ import annotations

import gc
import hashlib
import io
import json
import os
import resource
import shutil
import time
from concurrent.futures import as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .. import backends
from .._pool import WorkerPool
from .._version import __version__
from .._io import atomic_write, check_format, digest_problem, file_digest, folder_entries, locks_folder, read_json
from ..errors import ConfigError, DataError
from .tokens import (_DTYPES, _TOKEN_FIELDS, Sentence, TokenizerConfig, _extract_into, extract_tokens,
                     is_rest_class, plan_sentences, token_times)

FORMAT = "aemg-token-corpus"
VERSION = 2
#: corpus format versions this module reads (1: one .npy file per token field)
READ_VERSIONS = (1, 2)
CORPUS = "corpus.json"
PLAN = "plan.json"
INDEX = "sentences.jsonl"
SHARDS = "shards"
#: default least channel-samples per worker process (see :func:`tokenize_archive`)
MIN_SAMPLES_PER_WORKER = 16_000_000
_INDEX_FIELDS = ("key", "dataset", "subject", "session", "trial", "label", "device", "n_tokens",
                 "n_events", "n_samples", "shard", "offset")


def _dumps(obj: Any, **kw) -> str:
    return json.dumps(obj, sort_keys=True, **kw)


#: one compact JSON line (``_dumps(obj, separators=(",", ":"))`` without building an encoder per call)
_LINE = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


# -- writing -----------------------------------------------------------------------------------------
@dataclass
class TokenizeReport:
    """What :func:`tokenize_archive` did.

    ``samples`` counts channel-samples (C x T) read in this run; ``samples_per_s`` is over the wall
    time of this run (all workers together); ``cpu_seconds`` is the CPU time of this process and
    its workers during the run (``samples_per_cpu_s``: throughput per busy core, which does not
    depend on how loaded a shared machine is); ``parent_cpu_seconds`` the part spent in this
    process (the serial part when ``workers > 1``).
    """

    out: str
    workers: int
    groups: int
    groups_done_before: int
    recordings: int
    sentences: int
    tokens: int
    events: int
    empty_sentences: int
    capped_sentences: int
    samples: int
    seconds: float
    token_shape: tuple[int, int] = (0, 0)
    rate: float = 0.0
    per_dataset: dict[str, dict[str, float]] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    parent_cpu_seconds: float = 0.0

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("nan")

    @property
    def samples_per_cpu_s(self) -> float:
        return self.samples / self.cpu_seconds if self.cpu_seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["samples_per_s"] = self.samples_per_s
        d["samples_per_cpu_s"] = self.samples_per_cpu_s
        return d

    def summary(self) -> str:
        return (f"{self.sentences} sentences, {self.tokens} tokens of shape {self.token_shape}, "
                f"{self.events} events from {self.recordings} recordings "
                f"({self.empty_sentences} empty, {self.capped_sentences} capped); "
                f"{self.samples / 1e6:.1f} M samples in {self.seconds:.2f} s = "
                f"{self.samples_per_s / 1e6:.1f} M samples/s with {self.workers} worker(s) "
                f"({self.samples_per_cpu_s / 1e6:.1f} M samples per CPU second)")


def _cpu_times() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its finished (reaped) children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _archive_identity(archive) -> dict[str, Any]:
    manifest = _dumps(archive.manifest).encode()
    rows = _dumps([[r["key"], r["n_samples"], r["shard"], r["group"]] for r in archive.index]).encode()
    return {"path": str(Path(archive.path).resolve()), "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
            "index_sha256": hashlib.sha256(rows).hexdigest(), "recordings": len(archive)}


def _groups(rows: Sequence[dict[str, Any]]) -> list[list[int]]:
    """Row indices grouped by (dataset, subject, session), groups in order of first appearance."""
    order: dict[tuple[str, str, str], list[int]] = {}
    for i, r in enumerate(rows):
        order.setdefault((r["dataset"], str(r["subject"]), str(r["session"])), []).append(i)
    return list(order.values())


#: archives opened by :func:`tokenize_archive` (set before the pool forks, so workers inherit the
#: parsed index; :class:`~aemg.data.archive.Archive` reopens its HDF5 files after a fork)
_ARCHIVES: dict[str, Any] = {}
#: each process reads its groups' samples into one warm buffer (see aemg.data.archive.ReadBuffer):
#: a group's recordings are dropped before the next group is read
_READ_BUFFER = None


def _read_buffer():
    global _READ_BUFFER
    if _READ_BUFFER is None:
        from ..data.archive import ReadBuffer
        _READ_BUFFER = ReadBuffer()
    return _READ_BUFFER


def _open(path: str):
    from ..data.archive import open_archive
    if path not in _ARCHIVES:
        _ARCHIVES[path] = open_archive(path)
    return _ARCHIVES[path]


def _trials(rec) -> list:
    from ..data.trials import split_trials
    return split_trials(rec)


def noise_levels(signals: Sequence[np.ndarray], rates: Sequence[float], rest: Sequence[bool],
                 config: TokenizerConfig, groups: Sequence[Any] | None = None) -> list[tuple[float | None, str]]:
    """The noise level of each trial under ``aemg tokenize``'s calibration policy, and its origin.

    Within a group (one user and session: ``(dataset, subject, session)``), each rest trial's level
    is its median envelope; every non-rest trial uses the median of the group's rest levels, and a
    rest trial the median of the *other* rest trials (alone: robust statistics). Groups without rest
    trials, windows mode and ``config.calibration == "robust"`` give ``(None, "robust")``: robust
    statistics of each trial alone.

    Parameters
    ----------
    signals : sequence of np.ndarray, each (C, T_i) float32
    rates : sequence of float
        Hz, per trial.
    rest : sequence of bool
        Whether each trial is a rest-class trial (see :func:`~aemg.tokenizer.tokens.is_rest_class`).
    config : TokenizerConfig
    groups : sequence of hashable, optional
        Group of each trial (default: all trials form one group).

    Returns
    -------
    list of (float or None, str)
        Per trial: the noise level (None = robust statistics of the trial) and ``"rest"``/``"robust"``.
    """
    n = len(signals)
    if not _calibrates(config):
        return [(None, "robust")] * n
    members: dict[Any, list[int]] = {}
    for i, g in enumerate(groups if groups is not None else [0] * n):
        members.setdefault(g, []).append(i)
    out: list[tuple[float | None, str]] = [(None, "robust")] * n
    for idx in members.values():
        rest_i = {i: j for j, i in enumerate(i for i in idx if rest[i])}  # trial -> its level's index
        levels = [_rest_level(signals[i], rates[i], config) for i in rest_i]
        for i in idx:
            out[i] = group_noise(levels, rest_i.get(i))
    return out


def _calibrates(config: TokenizerConfig) -> bool:
    """Whether ``config`` takes noise levels from rest trials (events mode, ``calibration="rest"``)."""
    return config.mode == "events" and config.calibration == "rest"


def _rest_level(x: np.ndarray, rate: float, config: TokenizerConfig) -> float:
    """A rest trial's own level: its median envelope (noise_level with itself as calibration)."""
    from .segment import noise_level
    return float(noise_level(x, rate, config.segment, calibration=x))


def group_noise(rest_levels: Sequence[float], own: int | None = None) -> tuple[float | None, str]:
    """The noise level of one trial from the rest-trial levels of its group, and its origin.

    A non-rest trial (``own`` None) uses the median of all levels; a rest trial (``own``: the index
    of its level) the median of the *other* ones, so it never calibrates itself; no level left:
    ``(None, "robust")`` (robust statistics of the trial alone).
    """
    others = list(rest_levels) if own is None else [v for j, v in enumerate(rest_levels) if j != own]
    return (float(np.median(others)), "rest") if others else (None, "robust")


def is_rest_trial(trial) -> bool:
    """Whether a labelled trial Recording belongs to a rest class (by its class name)."""
    return (trial.label is not None and bool(trial.classes) and 0 <= trial.label < len(trial.classes)
            and is_rest_class(trial.classes[trial.label]))


#: bytes of samples read and tokenized at a time within a group, so that a batch and its tokens
#: are still in the CPU caches from the read to the payload write; measured: 512 KiB batches are
#: slower (per-batch Python work), 2-8 MiB the same (docs/notes/tokens.md)
BATCH_BYTES = 1 << 21


def _batches(archive, rows: Sequence[int], limit: int = BATCH_BYTES) -> list[list[int]]:
    """Consecutive runs of ``rows`` holding at most ``limit`` bytes of samples (at least one row)."""
    out: list[list[int]] = []
    size = 0
    for r in rows:
        row = archive.index[r]
        nbytes = 4 * int(row["n_channels"]) * int(row["n_samples"])
        if not out or size + nbytes > limit:
            out.append([])
            size = 0
        out[-1].append(r)
        size += nbytes
    return out


def _may_hold_rest(row: dict[str, Any]) -> bool:
    """Whether an archive row can contain rest trials (a per-sample-labelled or unlabelled
    recording: only its samples tell)."""
    label, classes = row.get("label"), row.get("classes") or ()
    return label is None or (0 <= int(label) < len(classes) and is_rest_class(classes[int(label)]))


def _read_trials(archive, batch: Sequence[int]) -> list[list]:
    """The trials of each recording of ``batch`` (views of this process's read buffer)."""
    return [_trials(rec) for rec in archive.read_many(batch, buffer=_read_buffer())]


def _group_rest_levels(archive, rows: Sequence[int], config: TokenizerConfig) -> dict[tuple[int, int], float]:
    """Level of every rest trial of a group, keyed by (row, trial number within the row)."""
    levels: dict[tuple[int, int], float] = {}
    if not _calibrates(config):
        return levels
    for batch in _batches(archive, [r for r in rows if _may_hold_rest(archive.index[r])]):
        for r, trials in zip(batch, _read_trials(archive, batch)):
            for j, t in enumerate(trials):
                if is_rest_trial(t):
                    levels[(r, j)] = _rest_level(t.data, t.rate, config)
    return levels


class _NpyStream:
    """``payload.npy`` written batch by batch, its shape (N, C, L) filled in when N is known;
    byte-identical to ``np.save`` of the whole array."""

    def __init__(self, path: Path, c: int, length: int):
        self.fh, self.c, self.length, self.n = open(path, "wb"), c, length, 0
        self.header_len = len(self._header(0))
        self.fh.write(self._header(0))

    def _header(self, n: int) -> bytes:
        b = io.BytesIO()
        np.lib.format.write_array_header_1_0(b, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                                                 "fortran_order": False, "shape": (n, self.c, self.length)})
        return b.getvalue()

    def write(self, rows: np.ndarray) -> None:
        if rows.shape[0]:
            self.fh.write(memoryview(rows).cast("B"))
            self.n += rows.shape[0]

    def close(self) -> None:
        header = self._header(self.n)
        if len(header) != self.header_len:  # never with numpy's growth padding; kept correct anyway
            self.fh.close()
            path = Path(self.fh.name)
            body = np.fromfile(path, np.float32, offset=self.header_len)
            np.save(path, body.reshape(self.n, self.c, self.length))
            return
        self.fh.seek(0)
        self.fh.write(header)
        self.fh.close()


def _warm_up(config: TokenizerConfig, rate: float, n_channels: int, backend: str | None) -> None:
    """Run the per-group code path once on a small noise signal: loads the kernels and what NumPy
    imports lazily on first use (``np.percentile``: ~20 ms), so forked workers start warm."""
    x = np.random.default_rng(0).standard_normal((n_channels, 4 * config.token_len(rate) + 64)).astype(np.float32)
    x[:, x.shape[1] // 3:] *= 20  # an event, so every step runs
    noise = _rest_level(x[:, : x.shape[1] // 3], rate, config) if _calibrates(config) else None
    plan = plan_sentences([x], rate, config, noises=[noise], backend=backend)
    extract_tokens(x, plan.starts, config.token_len(rate))


#: most channel-samples in one pool task (~0.5 s of work here), so that progress keeps moving
MAX_TASK_SAMPLES = 64_000_000


def work_chunks(todo: Sequence[int], sizes: Sequence[int], workers: int,
                max_task: int = MAX_TASK_SAMPLES) -> list[list[int]]:
    """Groups ``todo`` (with ``sizes`` in channel-samples) cut into pool tasks, in archive order.

    Guided scheduling: each task takes about 1/(2 ``workers``) of the work still unassigned (at
    most ``max_task``, at least one group), so the first tasks are large and the last ones single
    groups (workers finish together). Large tasks of neighbouring groups mean fewer tasks for the
    parent to hand out and collect, and each worker opens, and parses the headers of, mostly its own
    HDF5 shards instead of every shard. One worker: one group per task (no pool). The output does
    not depend on the chunking.
    """
    order = sorted(range(len(todo)), key=lambda j: todo[j])
    if workers <= 1:
        return [[todo[j]] for j in order]
    left = float(sum(sizes))
    chunks: list[list[int]] = []
    chunk, filled, want = [], 0.0, 0.0
    for j in order:
        if not chunk:
            want = min(left / (2 * workers), max_task)
        chunk.append(todo[j])
        filled += sizes[j]
        if filled >= want:
            chunks.append(chunk)
            left -= filled
            chunk, filled = [], 0.0
    if chunk:
        chunks.append(chunk)
    return chunks


def _tokenize_groups(archive_path: str, task: list[tuple[int, list[int], str]], config_dict: dict,
                     backend: str | None) -> list[tuple[int, dict[str, Any]]]:
    """:func:`_tokenize_group` for each ``(group number, rows, shard folder)`` of ``task``."""
    return [(k, _tokenize_group(archive_path, rows, config_dict, shard, backend)) for k, rows, shard in task]


def _tokenize_group(archive_path: str, rows: list[int], config_dict: dict, shard_dir: str,
                    backend: str | None) -> dict[str, Any]:
    """Tokenize one group of archive rows into the shard ``shard_dir`` (atomically).

    Two passes over small batches of recordings (:data:`BATCH_BYTES`, read into one warm buffer):
    the first measures the rest trials that calibrate the group's noise level (only rows that can
    hold rest trials are read), the second plans, cuts and writes the tokens of each batch while
    it is still in the CPU cache.
    """
    config = TokenizerConfig.from_dict(config_dict)
    archive = _open(archive_path)
    kernel = backends.get("tokens")
    rest_levels = _group_rest_levels(archive, rows, config)
    levels = list(rest_levels.values())
    # (noise, origin) of each rest trial (the median of the others' levels); other trials: shared
    own = {key: group_noise(levels, j) for j, key in enumerate(rest_levels)}
    shared = group_noise(levels) if _calibrates(config) else (None, "robust")
    first = archive.index[rows[0]]
    c, rate = int(first["n_channels"]), float(first["rate"])
    L = config.token_len(rate)
    final = Path(shard_dir)
    tmp = final.with_name("." + final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    buf = np.empty((0, c, L), np.float32)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in _TOKEN_FIELDS[1:]}
    meta, samples = [], 0
    payload = _NpyStream(tmp / "payload.npy", c, L)
    try:
        for batch in _batches(archive, rows):
            trials, noises = [], []
            for r, row_trials in zip(batch, _read_trials(archive, batch)):
                for j, t in enumerate(row_trials):
                    trials.append(t)
                    noises.append(own.get((r, j), shared))
            samples += sum(int(archive.index[r]["n_channels"]) * int(archive.index[r]["n_samples"]) for r in batch)
            plan = plan_sentences([t.data for t in trials], rate, config, noises=[n for n, _ in noises],
                                  backend=backend)
            n = plan.starts.size
            if buf.shape[0] < n:
                buf = np.empty((max(n, buf.shape[0] * 3 // 2), c, L), np.float32)
            energy, dominant = np.empty((n, c), np.float32), np.empty(n, np.int16)
            base = payload.n
            for i, (trial, (noise, origin)) in enumerate(zip(trials, noises)):
                rows_i = plan.tokens_of(i)
                _extract_into(kernel, trial.data, plan.starts[rows_i], L, buf[rows_i], energy[rows_i],
                              dominant[rows_i])
                meta.append({"key": trial.key, "dataset": trial.dataset, "subject": trial.subject,
                             "session": trial.session, "trial": trial.trial,
                             "label": -1 if trial.label is None else int(trial.label),
                             "device": trial.device.name, "offset": base + rows_i.start,
                             "n_tokens": plan.n_tokens(i), "n_tokens_uncapped": int(plan.n_uncapped[i]),
                             "n_events": len(plan.events[i]), "n_samples": int(trial.n_samples),
                             "events": plan.events[i].tolist(), "noise": noise, "calibration": origin,
                             "classes": list(trial.classes)})
            payload.write(buf[:n])
            for k, v in {"energy": energy, "dominant_channel": dominant, "event_index": plan.event_index,
                         **token_times(plan.starts, plan.event_start, plan.event_len, rate)}.items():
                parts[k].append(v)
    finally:
        payload.close()
    n = payload.n
    table = np.empty(n, _token_table_dtype(c))
    for name in _TOKEN_FIELDS[1:]:
        table[name] = np.concatenate(parts[name])  # one part per batch, at least one batch
    np.save(tmp / "tokens.npy", table)
    (tmp / "sentences.json").write_text(_dumps(meta, separators=(",", ":")))
    write_shard_record(tmp, [first["dataset"], str(first["subject"]), str(first["session"])])
    os.replace(tmp, final)
    # the parent gets the index lines and counts, not the metadata (less to pickle in its thread)
    return {"samples": samples, "n_recordings": len(rows), "lines": _index_lines(meta, final.name),
            "summary": _shard_summary(meta, final)}


#: per shard folder: its group and the size and checksum of each of its files (version-2 shards)
SHARD_RECORD = "shard.json"
_SHARD_FILES = ("payload.npy", "tokens.npy", "sentences.json")


def write_shard_record(folder: Path, group: list[str]) -> None:
    """Write ``folder/shard.json``: the group (dataset, subject, session) and every file's size and
    CRC-32, so that a resumed run (and ``aemg verify``) can tell a shard it may skip."""
    files = {}
    for name in _SHARD_FILES:
        size, crc = file_digest(folder / name, "crc32")
        files[name] = {"bytes": size, "crc32": crc}
    (folder / SHARD_RECORD).write_text(_dumps({"group": list(group), "files": files}) + "\n")


def shard_problem(folder: Path, group: Sequence[str]) -> str | None:
    """What is wrong with a finished shard folder of group ``group`` (None: it may be skipped).
    Without a shard.json (corpora made before it) only the files' presence is checked."""
    record = folder / SHARD_RECORD
    if not record.is_file():
        missing = [name for name in _SHARD_FILES if not (folder / name).is_file()]
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


def verify_shards(out: Path, groups: Sequence[Sequence], names: Sequence[str], *, remove: bool = False) -> list[str]:
    """``"folder: problem"`` for each finished shard of ``out`` that fails :func:`shard_problem`;
    with ``remove`` the bad ones are deleted (and the corpus marked incomplete) so they are redone."""
    import logging
    problems = []
    for k, name in enumerate(names):
        folder = out / SHARDS / name
        if folder.is_dir():
            problem = shard_problem(folder, [str(v) for v in groups[k][:3]])
            if problem is not None:
                problems.append(f"{folder}: {problem}")
                if remove:
                    logging.getLogger("aemg.tokenize").warning("%s; tokenizing that group again", problems[-1])
                    (out / CORPUS).unlink(missing_ok=True)
                    shutil.rmtree(folder)
    return problems


def _shard_summary(meta: list[dict[str, Any]], where) -> dict[str, Any]:
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


def _token_table_dtype(n_channels: int) -> np.dtype:
    """The structured dtype of ``tokens.npy``: every per-token field but the payload."""
    return np.dtype([(k, _DTYPES[k], (n_channels,)) if k == "energy" else (k, _DTYPES[k])
                     for k in _TOKEN_FIELDS[1:]])


def _index_lines(meta: list[dict[str, Any]], shard: str) -> list[str]:
    """The ``sentences.jsonl`` lines of one shard's non-empty sentences."""
    lines = []
    for m in meta:
        if m["n_tokens"]:
            row = {k: m[k] for k in _INDEX_FIELDS if k in m}
            row["shard"] = shard
            lines.append(_LINE.encode(row))
    return lines


def plan_differences(stored: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    """One line per setting of ``plan`` (a corpus's plan.json) that differs from ``stored``: each
    tokenizer setting by name, the format version, and the archive (path, recordings or contents)."""
    diffs = []
    if stored.get("version") != plan["version"]:
        diffs.append(f"format version: the corpus has {stored.get('version')}, now {plan['version']}")
    old, new = stored.get("config") or {}, plan["config"]
    for key in sorted(set(old) | set(new)):
        if _dumps(old.get(key)) != _dumps(new.get(key)):
            diffs.append(f"{key}: the corpus has {_dumps(old.get(key))}, now {_dumps(new.get(key))}")
    a, b = stored.get("archive") or {}, plan["archive"]
    if _dumps(a) != _dumps(b):
        what = "another archive folder" if a.get("path") != b.get("path") else "the archive changed since"
        diffs.append(f"archive: {what} ({a.get('path')}, {a.get('recordings')} recordings; now "
                     f"{b.get('path')}, {b.get('recordings')} recordings)")
    return diffs


def check_token_length(rows: Sequence[dict[str, Any]], token_len: int, config: TokenizerConfig, rate: float,
                       where) -> None:
    """ConfigError when a token is longer than every recording (nothing would be tokenized); a
    warning counting the recordings shorter than one token (they give no tokens)."""
    import logging
    longest = max(int(r["n_samples"]) for r in rows)
    if token_len > longest:
        raise ConfigError(f"token_s={config.token_s:g} (--token-s {config.token_s:g}): a token of {token_len} "
                          f"samples is longer than every recording of {where} (the longest has {longest} "
                          f"samples, {longest / rate:.3g} s at {rate:g} Hz); choose a shorter token")
    short = sum(int(r["n_samples"]) < token_len for r in rows)
    if short:
        logging.getLogger("aemg.tokenize").warning(
            "%s: %d of %d recordings are shorter than one token (%g s) and give no tokens", where, short,
            len(rows), config.token_s)


@locks_folder("out", "token corpus")
def tokenize_archive(archive_path: str | os.PathLike, out: str | os.PathLike,
                     config: TokenizerConfig = TokenizerConfig(), *, workers: int | None = None,
                     progress: bool = True, backend: str | None = None,
                     min_samples_per_worker: int = MIN_SAMPLES_PER_WORKER,
                     staged: str | os.PathLike | None = None, scheduler: str | None = None) -> TokenizeReport:
    """Tokenize every recording of an archive into a token corpus at ``out``.

    Per-sample-labelled recordings are split into trials first (:func:`aemg.data.trials.split_trials`).
    Resumable: shards already on disk are kept when the same command is re-run; deterministic: the
    files written do not depend on ``workers``.

    Parameters
    ----------
    archive_path : path
        An archive written by ``aemg rectify`` (complete).
    out : path
        The corpus folder (created; an existing folder must be a corpus made with the same settings
        from the same archive, or empty).
    config : TokenizerConfig
    workers : int, optional
        Most processes; default: the CPU cores available. 1 = in this process.
    min_samples_per_worker : int
        Use fewer workers when the job is small: each gets at least this many channel-samples
        (a forked worker costs ~15-20 ms to start and warm up, ~2 M samples of work; the default
        keeps that under ~10 %). 0 = always ``workers`` (up to one per group).
    progress : bool
        Show a tqdm bar (channel-samples/s).
    staged : path, optional
        A folder of complete shards named like this corpus's (``000000``...), written from memory by
        :func:`aemg.data.prepare.prepare_dataset`; they are moved into place and not redone.
    scheduler : str, optional
        Dask scheduler address (else ``$AEMG_SCHEDULER``; neither: local processes): groups are
        tokenized on the cluster's workers, which must see the archive and ``out`` at the same
        paths (checked first; :mod:`aemg.data.distributed`).

    Returns
    -------
    TokenizeReport
    """
    from ..data.archive import open_archive
    archive = open_archive(archive_path)  # refuses an incomplete archive
    _ARCHIVES[str(archive.path)] = archive  # this run's workers read through it
    rows = archive.index
    if not rows:
        raise DataError(archive.path, "archive holds no recordings")
    shapes = {(r["n_channels"], float(r["rate"])) for r in rows}
    if len(shapes) != 1:
        raise DataError(archive.path, f"recordings differ in (channels, rate): {sorted(shapes)}; a corpus "
                                      "needs one token shape (rectify into one standard space)")
    (n_channels, rate), = shapes
    token_len = config.token_len(rate)
    check_token_length(rows, token_len, config, float(rate), archive.path)
    groups = _groups(rows)
    identity = _archive_identity(archive)
    out = Path(out)
    plan = {"format": FORMAT, "version": VERSION, "config": config.to_dict(), "archive": identity,
            "groups": [[rows[g[0]]["dataset"], str(rows[g[0]]["subject"]), str(rows[g[0]]["session"]), g]
                       for g in groups]}
    plan_text = _dumps(plan, indent=1) + "\n"
    if (out / PLAN).is_file():
        stored = read_json(out / PLAN)
        diffs = plan_differences(stored, plan)
        if diffs:
            raise ConfigError(f"{out}: already holds a corpus made with other settings or from another "
                              f"archive ({'; '.join(diffs)}); re-run with the same arguments to resume, or "
                              "choose another folder")
    else:
        if out.exists() and (not out.is_dir() or folder_entries(out)):
            raise ConfigError(f"{out}: exists and is not a token corpus (no {PLAN}); refusing to write into it")
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / PLAN, plan_text)
    shard_dir = out / SHARDS
    shard_dir.mkdir(exist_ok=True)
    for p in shard_dir.iterdir():
        if p.name.startswith(".") and p.name.endswith(".tmp"):
            shutil.rmtree(p)
    names = [f"{k:06d}" for k in range(len(groups))]
    for name in names if staged is not None else ():
        if (Path(staged) / name).is_dir() and not (shard_dir / name).exists():
            os.replace(Path(staged) / name, shard_dir / name)
    verify_shards(out, plan["groups"], names, remove=True)  # a damaged shard is done again
    todo = [k for k in range(len(groups)) if not (shard_dir / names[k]).is_dir()]
    total = sum(rows[i]["n_samples"] * rows[i]["n_channels"] for k in todo for i in groups[k])
    from ..data.distributed import checked_pool, tokenize_groups_task
    remote = checked_pool(scheduler, archive.path, out) if todo else None
    if remote is not None:
        workers = remote.workers
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if int(workers) < 1:
        raise ConfigError(f"workers={workers!r}: must be >= 1")
    if int(min_samples_per_worker) < 0:
        raise ConfigError(f"min_samples_per_worker={min_samples_per_worker!r}: must be >= 0")
    by_work = total // int(min_samples_per_worker) if min_samples_per_worker else len(todo)
    workers = int(max(1, min(workers, len(todo), by_work)))
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, unit="sample", unit_scale=True, desc="tokenize", smoothing=0.1)
    samples = 0
    t0, cpu0 = time.perf_counter(), _cpu_times()
    _warm_up(config, float(rate), int(n_channels), backend)  # forked workers inherit what it loads
    config_dict = config.to_dict()
    todo_sizes = [sum(rows[i]["n_samples"] * rows[i]["n_channels"] for i in groups[k]) for k in todo]
    tasks = [[(k, groups[k], str(shard_dir / names[k])) for k in chunk]
             for chunk in work_chunks(todo, todo_sizes, workers)]
    results: dict[int, dict[str, Any]] = {}
    try:
        if workers == 1 and remote is None:
            for task in tasks:
                for k, r in _tokenize_groups(str(archive.path), task, config_dict, backend):
                    results[k] = r
                    samples += r["samples"]
                    if bar is not None:
                        bar.update(r["samples"])
        else:
            archive.close()
            gc.freeze()  # forked workers then never copy the parent's objects to collect them
            try:
                run_id = identity["manifest_sha256"] + identity["index_sha256"]  # cluster workers outlive runs
                fn, extra = (_tokenize_groups, ()) if remote is None else (tokenize_groups_task, (run_id,))
                with WorkerPool(workers, what="tokenize") if remote is None else remote as pool:
                    futures = [pool.submit(fn, str(archive.path), task, config_dict, backend, *extra)
                               for task in tasks]
                    for fut in as_completed(futures):
                        for k, r in fut.result():
                            results[k] = r
                            samples += r["samples"]
                            if bar is not None:
                                bar.update(r["samples"])
            finally:
                gc.unfreeze()
    finally:
        if bar is not None:
            bar.close()
    # the index and corpus.json, from every shard (also those of earlier runs)
    lines: list[str] = []
    per_dataset: dict[str, dict[str, int]] = {}
    classes: dict[str, list[str]] = {}
    for k, name in enumerate(names):
        if k in results:  # written by this run: its worker sent the index lines and a summary
            shard_lines, summary = results[k]["lines"], results[k]["summary"]
        else:
            meta = read_json(shard_dir / name / "sentences.json")
            shard_lines, summary = _index_lines(meta, name), _shard_summary(meta, shard_dir / name)
        lines.extend(shard_lines)
        for ds, names_ in summary["classes"].items():
            if classes.setdefault(ds, names_) != names_:
                raise DataError(archive.path, f"dataset {ds!r} has two class lists: {classes[ds]} and {names_}")
        for ds, d in summary["per_dataset"].items():
            total = per_dataset.setdefault(ds, dict.fromkeys(d, 0))
            for key, v in d.items():
                total[key] += v
    counts = {key: sum(d[key] for d in per_dataset.values())
              for key in ("sentences", "tokens", "events", "empty", "capped", "trials")}
    from ..data.devices import get_device
    device_name = rows[0]["device"]
    try:
        device = get_device(device_name).to_dict()
    except ConfigError:
        device = None
    corpus = {"format": FORMAT, "version": VERSION, "aemg_version": __version__,
              "config": config_dict, "token_shape": [int(n_channels), int(token_len)],
              "rate": rate, "device": device,
              "channel_angles": device["angles"] if device and len(device["angles"]) == n_channels else
              (2 * np.pi * np.arange(n_channels) / n_channels).tolist(),
              "space": archive.manifest.get("space"), "archive": identity, "counts": counts,
              "per_dataset": per_dataset, "classes": classes, "shards": names,
              "dtypes": {k: np.dtype(v).str for k, v in _DTYPES.items()}}
    atomic_write(out / INDEX, "".join(line + "\n" for line in lines))
    atomic_write(out / CORPUS, _dumps(corpus, indent=1) + "\n")
    seconds = time.perf_counter() - t0
    parent_cpu, children_cpu = (b - a for a, b in zip(cpu0, _cpu_times()))
    return TokenizeReport(out=str(out), workers=workers, groups=len(groups),
                          groups_done_before=len(groups) - len(todo), recordings=len(rows),
                          sentences=counts["sentences"], tokens=counts["tokens"], events=counts["events"],
                          empty_sentences=counts["empty"], capped_sentences=counts["capped"],
                          samples=samples, seconds=seconds, token_shape=(int(n_channels), int(token_len)),
                          rate=rate, per_dataset=per_dataset, cpu_seconds=parent_cpu + children_cpu,
                          parent_cpu_seconds=parent_cpu)


# -- reading -----------------------------------------------------------------------------------------
def _match(value: Any, want: Any) -> bool:
    if callable(want):
        return bool(want(value))
    if isinstance(want, (list, tuple, set, frozenset)):
        return any(_match(value, w) for w in want)
    return value == want or (isinstance(value, str) and not isinstance(want, str) and value == str(want))


class _CorpusBase:
    """Shared by :class:`TokenCorpus` and :class:`ConcatCorpus` (needs ``sentences``, ``_tokens``)."""

    sentences: list[dict[str, Any]]
    token_shape: tuple[int, int]

    def _init_ids(self) -> None:
        self.subjects = sorted({f"{s['dataset']}/{s['subject']}" for s in self.sentences})
        self.datasets = sorted({s["dataset"] for s in self.sentences})
        self._subject_id = {k: i for i, k in enumerate(self.subjects)}
        self._dataset_id = {k: i for i, k in enumerate(self.datasets)}

    @property
    def n_sentences(self) -> int:
        return len(self.sentences)

    @property
    def n_tokens(self) -> int:
        return int(sum(s["n_tokens"] for s in self.sentences))

    def __len__(self) -> int:
        return self.n_sentences

    def select(self, **filters: Any) -> list[int]:
        """Indices of the sentences whose fields match every filter (equality, strings also match
        numbers: ``subject=3`` matches ``"3"``; list/tuple/set = membership; callable = predicate)."""
        known = set(self.sentences[0]) if self.sentences else set(_INDEX_FIELDS)
        unknown = sorted(set(filters) - known)
        if unknown:
            raise ConfigError(f"select: unknown field(s) {', '.join(unknown)}; fields: {', '.join(sorted(known))}")
        return [i for i, s in enumerate(self.sentences)
                if all(_match(s[k], v) for k, v in filters.items())]

    def _tokens(self, i: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def sentence(self, i: int) -> Sentence:
        """Sentence ``i`` (token arrays are read-only views of the memory-mapped shards)."""
        s = self.sentences[i]
        arrays = self._tokens(i)
        return Sentence(**arrays, key=s["key"], dataset=s["dataset"], subject=s["subject"],
                        session=s["session"], trial=s["trial"], label=int(s["label"]),
                        device=s["device"], rate=self.rate, n_events=int(s["n_events"]))

    def batch(self, indices: Iterable[int], max_len: int | None = None) -> dict[str, np.ndarray]:
        """Padded arrays of the sentences ``indices``.

        Sentences are padded to the longest in the batch, or truncated/padded to ``max_len``.

        Returns
        -------
        dict
            payload (B, N, C, L) float32; energy (B, N, C) float32; onset_event_s, onset_trial_s,
            duration_s (B, N) float32; event_index, order, dominant (B, N) int64; mask (B, N) bool
            (True = real token); label, subject_id (index into :attr:`subjects`), dataset_id
            (index into :attr:`datasets`) (B,) int64.
        """
        idx = [int(i) for i in indices]
        lens = [self.sentences[i]["n_tokens"] for i in idx]
        n = max(lens, default=0) if max_len is None else int(max_len)
        if n < 0:
            raise ConfigError(f"max_len={max_len!r}: must be >= 0")
        b = len(idx)
        c, L = self.token_shape
        out = {"payload": np.zeros((b, n, c, L), np.float32), "energy": np.zeros((b, n, c), np.float32),
               "onset_event_s": np.zeros((b, n), np.float32), "onset_trial_s": np.zeros((b, n), np.float32),
               "duration_s": np.zeros((b, n), np.float32), "event_index": np.zeros((b, n), np.int64),
               "order": np.zeros((b, n), np.int64), "dominant": np.zeros((b, n), np.int64),
               "mask": np.zeros((b, n), bool), "label": np.zeros(b, np.int64),
               "subject_id": np.zeros(b, np.int64), "dataset_id": np.zeros(b, np.int64)}
        names = {"payload": "payload", "energy": "energy", "onset_event_s": "onset_in_event_s",
                 "onset_trial_s": "onset_in_trial_s", "duration_s": "duration_s",
                 "event_index": "event_index", "dominant": "dominant_channel"}
        for row, i in enumerate(idx):
            s = self.sentences[i]
            k = min(s["n_tokens"], n)
            if k:
                arrays = self._tokens(i)
                for dst, src in names.items():
                    out[dst][row, :k] = arrays[src][:k]
                out["order"][row, :k] = np.arange(k)
                out["mask"][row, :k] = True
            out["label"][row] = int(s["label"])
            out["subject_id"][row] = self._subject_id[f"{s['dataset']}/{s['subject']}"]
            out["dataset_id"][row] = self._dataset_id[s["dataset"]]
        return out

    def labels(self) -> np.ndarray:
        """Trial labels of every sentence, (n_sentences,) int64 (-1 = unknown)."""
        return np.array([int(s["label"]) for s in self.sentences], np.int64)


class TokenCorpus(_CorpusBase):
    """A token corpus folder written by :func:`tokenize_archive`, opened for reading.

    Attributes
    ----------
    n_sentences, n_tokens : int
    token_shape : tuple (C, L)
    rate : float
        Hz.
    channel_angles : np.ndarray, shape (C,)
        Radians of the standard electrodes around the forearm.
    sentences : list of dict
        Per sentence: key, dataset, subject, session, trial, label, device, n_tokens, n_events,
        n_samples, shard, offset.
    classes : dict
        Dataset -> class names.
    subjects, datasets : list of str
        Sorted unique ``"dataset/subject"`` and dataset names (``subject_id``/``dataset_id`` of
        :meth:`batch` index them; subjects are qualified by dataset because ids repeat across
        datasets).
    config : TokenizerConfig
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError(self.path, "token corpus folder not found")
        if not (self.path / CORPUS).is_file():
            raise DataError(self.path, f"not a complete token corpus (no {CORPUS}; "
                                       "re-run `aemg tokenize` to finish it)")
        meta = read_json(self.path / CORPUS)
        check_format(meta, self.path / CORPUS, FORMAT, READ_VERSIONS, "token corpus")
        self.meta = meta
        try:
            self.config = TokenizerConfig.from_dict(meta["config"])
            self.token_shape = tuple(int(v) for v in meta["token_shape"])
            self.rate = float(meta["rate"])
            self.channel_angles = np.asarray(meta["channel_angles"], np.float64)
            self.classes = {k: tuple(v) for k, v in meta["classes"].items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(self.path / CORPUS, f"corrupt corpus description ({exc})") from None
        try:
            text = (self.path / INDEX).read_text()
            self.sentences = [json.loads(line) for line in text.splitlines() if line.strip()]
        except FileNotFoundError:
            raise DataError(self.path / INDEX, "missing") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(self.path / INDEX, f"corrupt sentence index ({exc})") from None
        if not self.sentences:
            raise DataError(self.path, "the corpus holds no sentences")
        if sum(s["n_tokens"] for s in self.sentences) != meta["counts"]["tokens"]:
            raise DataError(self.path / INDEX, "token count differs from corpus.json (corrupt index)")
        self._shards: dict[str, dict[str, np.ndarray]] = {}
        self._init_ids()

    def shard(self, name: str) -> dict[str, np.ndarray]:
        """The memory-mapped arrays of shard ``name``."""
        arrays = self._shards.get(name)
        if arrays is None:
            folder = self.path / SHARDS / name
            files = _TOKEN_FIELDS if self.meta["version"] == 1 else ("payload", "tokens")
            arrays = {}
            for k in files:
                p = folder / f"{k}.npy"
                try:
                    arrays[k] = np.load(p, mmap_mode="r")
                except FileNotFoundError:
                    raise DataError(p, "shard file missing") from None
                except ValueError as exc:
                    raise DataError(p, f"corrupt shard file ({exc})") from None
            if "tokens" in arrays:
                table = arrays.pop("tokens")
                if table.dtype != _token_table_dtype(self.token_shape[0]) or table.ndim != 1:
                    raise DataError(folder / "tokens.npy", f"unexpected token table {table.dtype} "
                                                           f"of shape {table.shape}")
                arrays.update({k: table[k] for k in _TOKEN_FIELDS[1:]})
            n = arrays["payload"].shape[0]
            if arrays["payload"].shape[1:] != self.token_shape or \
                    any(a.shape[0] != n for a in arrays.values()):
                raise DataError(folder, "shard arrays have inconsistent shapes")
            self._shards[name] = arrays
        return arrays

    def _tokens(self, i: int) -> dict[str, np.ndarray]:
        s = self.sentences[i]
        arrays = self.shard(s["shard"])
        lo, hi = s["offset"], s["offset"] + s["n_tokens"]
        if hi > arrays["payload"].shape[0]:
            raise DataError(self.path / SHARDS / s["shard"], f"sentence {s['key']!r} runs past the shard end")
        return {k: a[lo:hi] for k, a in arrays.items()}

    def __repr__(self) -> str:
        return (f"TokenCorpus({str(self.path)!r}, sentences={self.n_sentences}, tokens={self.n_tokens}, "
                f"token_shape={self.token_shape}, rate={self.rate:g} Hz)")


class ConcatCorpus(_CorpusBase):
    """Several corpora read as one (e.g. for pre-training on every dataset); same interface as
    :class:`TokenCorpus`. Token shapes and rates must match."""

    def __init__(self, corpora: Sequence[TokenCorpus | str | os.PathLike]):
        self.parts = [c if isinstance(c, _CorpusBase) else TokenCorpus(c) for c in corpora]
        if not self.parts:
            raise DataError("ConcatCorpus", "no corpora given")
        first = self.parts[0]
        for c in self.parts[1:]:
            if c.token_shape != first.token_shape or c.rate != first.rate:
                raise DataError(getattr(c, "path", "ConcatCorpus"),
                                f"token shape {c.token_shape} at {c.rate:g} Hz differs from "
                                f"{first.token_shape} at {first.rate:g} Hz")
        self.token_shape, self.rate = first.token_shape, first.rate
        self.channel_angles = first.channel_angles
        self.config = first.config
        self.classes: dict[str, tuple[str, ...]] = {}
        for c in self.parts:
            for k, v in c.classes.items():
                if self.classes.setdefault(k, v) != v:
                    raise DataError("ConcatCorpus", f"dataset {k!r} has two class lists: {self.classes[k]} and {v}")
        self._where = [(p, j) for p, c in enumerate(self.parts) for j in range(c.n_sentences)]
        self.sentences = [self.parts[p].sentences[j] for p, j in self._where]
        self._init_ids()

    def _tokens(self, i: int) -> dict[str, np.ndarray]:
        p, j = self._where[i]
        return self.parts[p]._tokens(j)

    def __repr__(self) -> str:
        return f"ConcatCorpus({len(self.parts)} corpora, sentences={self.n_sentences}, tokens={self.n_tokens})"


def open_corpus(path: str | os.PathLike) -> TokenCorpus:
    """Open a token corpus folder (see :class:`TokenCorpus`); DataError if missing, corrupt or empty."""
    return TokenCorpus(path)


def verify_corpus(path: str | os.PathLike) -> tuple[list[str], str]:
    """Check a token corpus folder completely: ``(problems, summary)``, one line per problem:
    completeness, every shard against its shard.json (group, sizes, checksums), and that every
    sentence of the index lies inside its shard. DataError when ``path`` is not a corpus."""
    path = Path(path)
    if not (path / PLAN).is_file():
        raise DataError(path, f"not a token corpus (no {PLAN})")
    plan = read_json(path / PLAN)
    groups = plan.get("groups") or []
    names = [f"{k:06d}" for k in range(len(groups))]
    problems = verify_shards(path, groups, names)
    missing = [n for n in names if not (path / SHARDS / n).is_dir()]
    if not (path / CORPUS).is_file():
        problems.insert(0, f"{path}: incomplete ({len(groups) - len(missing)} of {len(groups)} shards; re-run "
                           "the same `aemg tokenize` command to finish it)")
    else:
        problems.extend(f"{path / SHARDS / n}: missing" for n in missing)
        if not problems:
            try:
                corpus = TokenCorpus(path)
                for i in range(corpus.n_sentences):
                    corpus._tokens(i)
            except DataError as exc:
                problems.append(str(exc))
    summary = f"{path}: token corpus of {len(groups)} group(s), {len(groups) - len(missing)} shard(s) checked"
    return problems, summary
