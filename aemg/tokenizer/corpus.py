"""The token corpus on disk: memory-mappable shards of tokens plus a sentence index.

Layout (format ``aemg-token-corpus``, version 2)::

    OUT/
      plan.json          written first: tokenizer config, archive identity and the work groups; a
                         re-run with the same arguments resumes, other arguments are refused
      shards/000000/     one shard per (dataset, subject, session) group of the archive, written to
                         shards/.000000.tmp/ and renamed when complete:
                           payload.npy (N, C, L) float32,
                           tokens.npy  (N,) structured: energy (C,) float32, onset_in_event_s,
                                       onset_in_trial_s, duration_s float32, event_index int32,
                                       dominant_channel int16 (one file instead of six: creating a
                                       file costs ~0.3 ms here, as much as writing 1 MB)
                           sentences.json   [{key, dataset, subject, session, trial, label, device,
                                              offset, n_tokens, n_events, n_samples, events,
                                              noise, calibration}]
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
import json
import multiprocessing as mp
import os
import resource
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .. import backends
from .._version import __version__
from .._io import atomic_write, check_format, read_json
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
    if config.mode != "events" or config.calibration != "rest":
        return [(None, "robust")] * n
    from .segment import noise_level
    members: dict[Any, list[int]] = {}
    for i, g in enumerate(groups if groups is not None else [0] * n):
        members.setdefault(g, []).append(i)
    out: list[tuple[float | None, str]] = [(None, "robust")] * n
    for idx in members.values():
        rest_i = [i for i in idx if rest[i]]
        if not rest_i:
            continue
        # a rest trial's noise level is its median envelope (noise_level with calibration=)
        levels = {i: float(noise_level(signals[i], rates[i], config.segment, calibration=signals[i]))
                  for i in rest_i}
        shared = (float(np.median(list(levels.values()))), "rest")
        for i in idx:
            out[i] = shared
        # a rest trial never calibrates itself: it uses the median of the other rest trials' levels
        for i in rest_i:
            out[i] = (float(np.median([levels[j] for j in rest_i if j != i])), "rest") if len(rest_i) > 1 \
                else (None, "robust")
    return out


def is_rest_trial(trial) -> bool:
    """Whether a labelled trial Recording belongs to a rest class (by its class name)."""
    return (trial.label is not None and bool(trial.classes) and 0 <= trial.label < len(trial.classes)
            and is_rest_class(trial.classes[trial.label]))


def _noise_levels(trials: list, config: TokenizerConfig) -> list[tuple[float | None, str]]:
    """Noise level (or None = robust statistics of the trial) and its origin, per trial of one group."""
    return noise_levels([t.data for t in trials], [t.rate for t in trials],
                        [is_rest_trial(t) for t in trials], config)


def _tokenize_group(archive_path: str, rows: list[int], config_dict: dict, shard_dir: str,
                    backend: str | None) -> dict[str, Any]:
    """Tokenize one group of archive rows into the shard ``shard_dir`` (atomically).

    The recordings are read with one archive call (:meth:`~aemg.data.archive.Archive.read_many`);
    token positions are planned per trial, then every token of the group is cut straight into the
    shard's preallocated arrays (no per-sentence arrays, no concatenation) and each array is saved
    with one write.
    """
    config = TokenizerConfig.from_dict(config_dict)
    archive = _open(archive_path)
    trials, samples = [], 0
    for rec in archive.read_many(rows):
        samples += rec.data.size
        trials.extend(_trials(rec))
    noises = _noise_levels(trials, config)
    c = trials[0].n_channels if trials else archive.index[rows[0]]["n_channels"]
    rate = trials[0].rate if trials else float(archive.index[rows[0]]["rate"])
    L = config.token_len(rate)
    plan = plan_sentences([t.data for t in trials], rate, config, noises=[n for n, _ in noises],
                          backend=backend)
    n = plan.starts.size
    arrays = {"energy": np.empty((n, c), np.float32), "dominant_channel": np.empty(n, np.int16),
              "event_index": plan.event_index, **token_times(plan.starts, plan.event_start, plan.event_len, rate)}
    final = Path(shard_dir)
    tmp = final.with_name("." + final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    kernel = backends.get("tokens")
    meta = []
    # the payload is streamed: each trial's tokens are cut into a small buffer that is still in the
    # CPU cache when it is written, instead of filling a whole-shard array in memory first and
    # reading it back for np.save (one memory round trip of the largest array less); the file is
    # byte-identical to np.save of the whole array
    most = int(np.diff(plan.offsets).max(initial=0))
    buf = np.empty((most, c, L), np.float32)
    with open(tmp / "payload.npy", "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(buf.dtype),
                                                  "fortran_order": False, "shape": (n, c, L)})
        for i, (trial, (noise, origin)) in enumerate(zip(trials, noises)):
            rows_i = plan.tokens_of(i)
            k = plan.n_tokens(i)
            _extract_into(kernel, trial.data, plan.starts[rows_i], L, buf[:k], arrays["energy"][rows_i],
                          arrays["dominant_channel"][rows_i])
            if k:
                fh.write(memoryview(buf[:k]).cast("B"))
            meta.append({"key": trial.key, "dataset": trial.dataset, "subject": trial.subject,
                         "session": trial.session, "trial": trial.trial,
                         "label": -1 if trial.label is None else int(trial.label), "device": trial.device.name,
                         "offset": rows_i.start, "n_tokens": k,
                         "n_tokens_uncapped": int(plan.n_uncapped[i]), "n_events": len(plan.events[i]),
                         "n_samples": int(trial.n_samples), "events": plan.events[i].tolist(),
                         "noise": noise, "calibration": origin, "classes": list(trial.classes)})
    table = np.empty(n, _token_table_dtype(c))
    for name in _TOKEN_FIELDS[1:]:
        table[name] = arrays[name]
    np.save(tmp / "tokens.npy", table)
    (tmp / "sentences.json").write_text(_dumps(meta, separators=(",", ":")))
    os.replace(tmp, final)
    return {"samples": samples, "n_recordings": len(rows), "meta": meta,
            "lines": _index_lines(meta, final.name)}


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


def tokenize_archive(archive_path: str | os.PathLike, out: str | os.PathLike,
                     config: TokenizerConfig = TokenizerConfig(), *, workers: int | None = None,
                     progress: bool = True, backend: str | None = None,
                     min_samples_per_worker: int = MIN_SAMPLES_PER_WORKER) -> TokenizeReport:
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

    Returns
    -------
    TokenizeReport
    """
    from ..data.archive import open_archive
    archive = open_archive(archive_path)
    _ARCHIVES[str(archive.path)] = archive  # this run's workers read through it
    if not archive.complete:
        raise DataError(archive.path, "archive is incomplete (a rectify run is still writing or was "
                                      "interrupted); finish it first")
    rows = archive.index
    if not rows:
        raise DataError(archive.path, "archive holds no recordings")
    shapes = {(r["n_channels"], float(r["rate"])) for r in rows}
    if len(shapes) != 1:
        raise DataError(archive.path, f"recordings differ in (channels, rate): {sorted(shapes)}; a corpus "
                                      "needs one token shape (rectify into one standard space)")
    (n_channels, rate), = shapes
    token_len = config.token_len(rate)
    groups = _groups(rows)
    identity = _archive_identity(archive)
    out = Path(out)
    plan = {"format": FORMAT, "version": VERSION, "config": config.to_dict(), "archive": identity,
            "groups": [[rows[g[0]]["dataset"], str(rows[g[0]]["subject"]), str(rows[g[0]]["session"]), g]
                       for g in groups]}
    plan_text = _dumps(plan, indent=1) + "\n"
    if (out / PLAN).is_file():
        stored = read_json(out / PLAN)
        if _dumps(stored.get("config")) != _dumps(plan["config"]) or \
                _dumps(stored.get("archive")) != _dumps(identity) or stored.get("version") != VERSION:
            raise ConfigError(f"{out}: already holds a corpus made with other settings or from another "
                              "archive; re-run with the same arguments to resume, or choose another folder")
    else:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ConfigError(f"{out}: exists and is not a token corpus (no {PLAN}); refusing to write into it")
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / PLAN, plan_text)
    shard_dir = out / SHARDS
    shard_dir.mkdir(exist_ok=True)
    for p in shard_dir.iterdir():
        if p.name.startswith(".") and p.name.endswith(".tmp"):
            shutil.rmtree(p)
    names = [f"{k:06d}" for k in range(len(groups))]
    todo = [k for k in range(len(groups)) if not (shard_dir / names[k]).is_dir()]
    total = sum(rows[i]["n_samples"] * rows[i]["n_channels"] for k in todo for i in groups[k])
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
    extract_tokens(np.zeros((1, 1), np.float32), np.zeros(1, np.int64), 1)  # load the kernel before forking
    config_dict = config.to_dict()
    # largest groups first, so the last ones to finish are small (balanced workers); the output
    # does not depend on the order
    todo_sizes = {k: sum(rows[i]["n_samples"] for i in groups[k]) for k in todo}
    todo = sorted(todo, key=lambda k: (-todo_sizes[k], k))
    args = [(str(archive.path), groups[k], config_dict, str(shard_dir / names[k]), backend) for k in todo]
    results: dict[int, dict[str, Any]] = {}
    try:
        if workers == 1:
            for k, a in zip(todo, args):
                r = results[k] = _tokenize_group(*a)
                samples += r["samples"]
                if bar is not None:
                    bar.update(r["samples"])
        else:
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
            archive.close()
            gc.freeze()  # forked workers then never copy the parent's objects to collect them
            try:
                with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                    futures = {pool.submit(_tokenize_group, *a): k for k, a in zip(todo, args)}
                    for fut in as_completed(futures):
                        r = results[futures[fut]] = fut.result()
                        samples += r["samples"]
                        if bar is not None:
                            bar.update(r["samples"])
            finally:
                gc.unfreeze()
    finally:
        if bar is not None:
            bar.close()
    # the index and corpus.json, from every shard (also those of earlier runs)
    lines, classes = [], {}
    counts = dict(sentences=0, tokens=0, events=0, empty=0, capped=0, trials=0)
    per_dataset: dict[str, dict[str, float]] = {}
    for k, name in enumerate(names):
        if k in results:  # written by this run: its workers sent the metadata and index lines
            meta, shard_lines = results[k]["meta"], results[k]["lines"]
        else:
            meta = read_json(shard_dir / name / "sentences.json")
            shard_lines = _index_lines(meta, name)
        lines.extend(shard_lines)
        for m in meta:
            counts["trials"] += 1
            d = per_dataset.setdefault(m["dataset"], dict(trials=0, sentences=0, tokens=0, events=0,
                                                          empty=0, capped=0, samples=0))
            d["trials"] += 1
            d["samples"] += m["n_samples"]
            if m["classes"]:
                prev = classes.setdefault(m["dataset"], m["classes"])
                if prev != m["classes"]:
                    raise DataError(archive.path, f"dataset {m['dataset']!r} has two class lists: "
                                                  f"{prev} and {m['classes']}")
            counts["events"] += m["n_events"]
            d["events"] += m["n_events"]
            if m["n_tokens_uncapped"] > m["n_tokens"]:
                counts["capped"] += 1
                d["capped"] += 1
            if m["n_tokens"] == 0:
                counts["empty"] += 1
                d["empty"] += 1
                continue
            counts["sentences"] += 1
            counts["tokens"] += m["n_tokens"]
            d["sentences"] += 1
            d["tokens"] += m["n_tokens"]
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
