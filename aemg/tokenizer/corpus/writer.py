"""Writing a token corpus: :func:`tokenize_archive` (an archive -> a corpus folder).

The run has three seams: :func:`start_run` (open the archive, write or check the plan, clean up and
check what an earlier run left: the resume), the per-group work (:func:`tokenize_group`, one shard
per (dataset, subject, session) group, in this process, a process pool or a Dask cluster) and
:func:`finish_run` (the sentence index and ``corpus.json`` from every shard). The layout is
:mod:`aemg.tokenizer.corpus.format`'s; the noise levels follow :mod:`aemg.tokenizer.calibration`.
"""
from __future__ import annotations

import gc
import io
import logging
import os
import resource
import shutil
import time
from concurrent.futures import as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ... import backends
from ..._folder import identity_error, remove_leftovers, stored_marker
from ..._io import atomic_write, locks_folder, read_json
from ..._pool import WorkerPool, default_workers
from ..._progress import progress_bar
from ..._version import __version__
from ...errors import ConfigError, DataError
from ..calibration import calibrates, group_levels, is_rest_trial, may_hold_rest, rest_level
from ..sentence import DTYPES, TABLE_FIELDS, token_table_dtype
from ..tokens import TokenizerConfig, extract_tokens, extract_tokens_with, plan_sentences, token_times
from .format import (
    CORPUS,
    COUNT_KEYS,
    FORMAT,
    INDEX,
    PLAN,
    SHARDS,
    VERSION,
    archive_identity,
    dumps,
    group_key,
    group_rows,
    index_lines,
    make_plan,
    plan_differences,
    shard_name,
    shard_summary,
    verify_shards,
    write_shard_record,
)

log = logging.getLogger("aemg.tokenize")
#: default least channel-samples per worker process (see :func:`tokenize_archive`)
MIN_CHANNEL_SAMPLES_PER_WORKER = 16_000_000


@dataclass
class TokenizeReport:
    """What :func:`tokenize_archive` did.

    ``channel_samples`` counts the channel-samples (C x T) read in this run;
    ``channel_samples_per_s`` is over the wall time of this run (all workers together);
    ``cpu_seconds`` is the CPU time of this process and its workers during the run
    (``channel_samples_per_cpu_s``: throughput per busy core, which does not depend on how loaded a
    shared machine is); ``parent_cpu_seconds`` the part spent in this process (the serial part
    when ``workers > 1``).
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
    channel_samples: int
    seconds: float
    token_shape: tuple[int, int] = (0, 0)
    rate: float = 0.0
    per_dataset: dict[str, dict[str, float]] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    parent_cpu_seconds: float = 0.0

    @property
    def channel_samples_per_s(self) -> float:
        return self.channel_samples / self.seconds if self.seconds > 0 else float("nan")

    @property
    def channel_samples_per_cpu_s(self) -> float:
        return self.channel_samples / self.cpu_seconds if self.cpu_seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channel_samples_per_s"] = self.channel_samples_per_s
        d["channel_samples_per_cpu_s"] = self.channel_samples_per_cpu_s
        return d

    def summary(self) -> str:
        return (f"{self.sentences} sentences, {self.tokens} tokens of shape {self.token_shape}, "
                f"{self.events} events from {self.recordings} recordings "
                f"({self.empty_sentences} empty, {self.capped_sentences} capped); "
                f"{self.channel_samples / 1e6:.1f} M channel-samples in {self.seconds:.2f} s = "
                f"{self.channel_samples_per_s / 1e6:.1f} M channel-samples/s with {self.workers} worker(s) "
                f"({self.channel_samples_per_cpu_s / 1e6:.1f} M per CPU second)")


def _cpu_times() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its finished (reaped) children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _channel_samples(row: dict[str, Any]) -> int:
    """Channel-samples (C x T) of an archive row."""
    return int(row["n_channels"]) * int(row["n_samples"])


# -- one group -----------------------------------------------------------------------------------------
#: archives opened by :func:`tokenize_archive` (set before the pool forks, so workers inherit the
#: parsed index; :class:`~aemg.data.archive.Archive` reopens its HDF5 files after a fork)
_ARCHIVES: dict[str, Any] = {}
#: each process reads its groups' samples into one warm buffer (see aemg.data.archive.ReadBuffer):
#: a group's recordings are dropped before the next group is read
_READ_BUFFER = None


def _read_buffer():
    global _READ_BUFFER
    if _READ_BUFFER is None:
        from ...data.archive import ReadBuffer
        _READ_BUFFER = ReadBuffer()
    return _READ_BUFFER


def _open(archive):
    """``archive`` itself, or the archive at path ``archive`` (opened once per process)."""
    if not isinstance(archive, (str, os.PathLike)):
        return archive
    from ...data.archive import open_archive
    path = str(archive)
    if path not in _ARCHIVES:
        _ARCHIVES[path] = open_archive(path)
    return _ARCHIVES[path]


def forget_archive(path: str) -> None:
    """Close and forget the archive this process opened at ``path`` (the next task reopens it)."""
    stale = _ARCHIVES.pop(str(path), None)
    if stale is not None:
        stale.close()


def _trials(rec) -> list:
    from ...data.trials import split_trials
    return split_trials(rec)


#: bytes of samples read and tokenized at a time within a group, so that a batch and its tokens
#: are still in the CPU caches from the read to the payload write; measured: 512 KiB batches are
#: slower (per-batch Python work), 2-8 MiB the same (docs/notes/tokens.md)
BATCH_BYTES = 1 << 21


def _batches(archive, rows: Sequence[int], limit: int | None = None) -> list[list[int]]:
    """Consecutive runs of ``rows`` holding at most ``limit`` (default :data:`BATCH_BYTES`) bytes
    of samples (at least one row)."""
    limit = BATCH_BYTES if limit is None else limit
    out: list[list[int]] = []
    size = 0
    for r in rows:
        nbytes = 4 * _channel_samples(archive.index[r])
        if not out or size + nbytes > limit:
            out.append([])
            size = 0
        out[-1].append(r)
        size += nbytes
    return out


def _read_trials(archive, batch: Sequence[int]) -> list[list]:
    """The trials of each recording of ``batch`` (views of this process's read buffer)."""
    return [_trials(rec) for rec in archive.read_many(batch, buffer=_read_buffer())]


def _group_rest_levels(archive, rows: Sequence[int], config: TokenizerConfig) -> dict[tuple[int, int], float]:
    """Own level of every rest trial of a group, keyed by (row, trial number within the row)."""
    levels: dict[tuple[int, int], float] = {}
    if not calibrates(config):
        return levels
    for batch in _batches(archive, [r for r in rows if may_hold_rest(archive.index[r])]):
        for r, trials in zip(batch, _read_trials(archive, batch)):
            for j, t in enumerate(trials):
                if is_rest_trial(t):
                    levels[(r, j)] = rest_level(t.data, t.rate, config)
    return levels


class NpyStream:
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
    x = np.random.default_rng(0).standard_normal((n_channels, 4 * config.token_len(rate) + 64))
    x = x.astype(np.float32)
    x[:, x.shape[1] // 3:] *= 20  # an event, so every step runs
    noise = rest_level(x[:, : x.shape[1] // 3], rate, config) if calibrates(config) else None
    plan = plan_sentences([x], rate, config, noises=[noise], backend=backend)
    extract_tokens(x, plan.starts, config.token_len(rate))


def tokenize_groups(archive, task: list[tuple[int, list[int], str]], config_dict: dict,
                    backend: str | None) -> list[tuple[int, dict[str, Any]]]:
    """:func:`tokenize_group` for each ``(group number, rows, shard folder)`` of ``task``."""
    return [(k, tokenize_group(archive, rows, config_dict, shard, backend)) for k, rows, shard in task]


def tokenize_group(archive, rows: list[int], config_dict: dict, shard_dir: str,
                   backend: str | None) -> dict[str, Any]:
    """Tokenize one group of archive rows into the shard ``shard_dir`` (atomically).

    ``archive``: an archive path (opened once per process), or an object with the archive's
    ``index`` rows and ``read_many`` (``aemg prepare`` hands recordings held in memory). Two passes
    over small batches of recordings (:data:`BATCH_BYTES`, read into one warm buffer): the first
    measures the rest trials that calibrate the group's noise level (only rows that can hold rest
    trials are read), the second plans, cuts and writes the tokens of each batch while it is still
    in the CPU cache.

    Returns
    -------
    dict
        ``channel_samples`` read, ``n_recordings``, the shard's index ``lines`` and its ``summary``.
    """
    config = TokenizerConfig.from_dict(config_dict)
    archive = _open(archive)
    kernel = backends.get("tokens")
    # (noise, origin) of each rest trial (the median of the others' levels); other trials: shared
    own, shared = group_levels(_group_rest_levels(archive, rows, config), config)
    first = archive.index[rows[0]]
    c, rate = int(first["n_channels"]), float(first["rate"])
    L = config.token_len(rate)
    final = Path(shard_dir)
    tmp = final.with_name("." + final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    buf = np.empty((0, c, L), np.float32)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in TABLE_FIELDS}
    meta, channel_samples = [], 0
    payload = NpyStream(tmp / "payload.npy", c, L)
    try:
        for batch in _batches(archive, rows):
            trials, noises = [], []
            for r, row_trials in zip(batch, _read_trials(archive, batch)):
                for j, t in enumerate(row_trials):
                    trials.append(t)
                    noises.append(own.get((r, j), shared))
            channel_samples += sum(_channel_samples(archive.index[r]) for r in batch)
            plan = plan_sentences([t.data for t in trials], rate, config, noises=[n for n, _ in noises],
                                  backend=backend)
            n = plan.starts.size
            if buf.shape[0] < n:
                buf = np.empty((max(n, buf.shape[0] * 3 // 2), c, L), np.float32)
            energy, dominant = np.empty((n, c), DTYPES["energy"]), np.empty(n, DTYPES["dominant_channel"])
            base = payload.n
            for i, (trial, (noise, origin)) in enumerate(zip(trials, noises)):
                rows_i = plan.tokens_of(i)
                extract_tokens_with(kernel, trial.data, plan.starts[rows_i], L, buf[rows_i], energy[rows_i],
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
    table = np.empty(payload.n, token_table_dtype(c))
    for name in TABLE_FIELDS:
        table[name] = np.concatenate(parts[name])  # one part per batch, at least one batch
    np.save(tmp / "tokens.npy", table)
    (tmp / "sentences.json").write_text(dumps(meta, separators=(",", ":")))
    write_shard_record(tmp, list(group_key(first)))
    os.replace(tmp, final)
    # the parent gets the index lines and counts, not the metadata (less to pickle in its thread)
    return {"channel_samples": channel_samples, "n_recordings": len(rows),
            "lines": index_lines(meta, final.name), "summary": shard_summary(meta, final)}


#: most channel-samples in one pool task (~0.5 s of work here), so that progress keeps moving
MAX_TASK_CHANNEL_SAMPLES = 64_000_000


def work_chunks(todo: Sequence[int], sizes: Sequence[int], workers: int,
                max_task: int = MAX_TASK_CHANNEL_SAMPLES) -> list[list[int]]:
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


def check_token_length(rows: Sequence[dict[str, Any]], token_len: int, config: TokenizerConfig, rate: float,
                       where) -> None:
    """ConfigError when a token is longer than every recording (nothing would be tokenized); a
    warning counting the recordings shorter than one token (they give no tokens)."""
    longest = max(int(r["n_samples"]) for r in rows)
    if token_len > longest:
        raise ConfigError(f"token_s={config.token_s:g} (--token-s {config.token_s:g}): a token of "
                          f"{token_len} samples is longer than every recording of {where} (the longest "
                          f"has {longest} samples, {longest / rate:.3g} s at {rate:g} Hz); choose a "
                          f"shorter token")
    short = sum(int(r["n_samples"]) < token_len for r in rows)
    if short:
        log.warning(
            "%s: %d of %d recordings are shorter than one token (%g s) and give no tokens", where, short,
            len(rows), config.token_s)


# -- the run ---------------------------------------------------------------------------------------
@dataclass
class TokenizeRun:
    """What :func:`start_run` set up: the open archive, the plan and where the shards go."""

    archive: Any
    out: Path
    config: TokenizerConfig
    n_channels: int
    rate: float
    token_len: int
    groups: list[list[int]]
    identity: dict[str, Any]
    plan: dict[str, Any]
    names: list[str]

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.archive.index

    @property
    def shard_dir(self) -> Path:
        return self.out / SHARDS

    def todo(self) -> list[int]:
        """Numbers of the groups whose shard is not on disk."""
        return [k for k in range(len(self.groups)) if not (self.shard_dir / self.names[k]).is_dir()]

    def channel_samples(self, k: int) -> int:
        """Channel-samples of group ``k``."""
        return sum(_channel_samples(self.rows[i]) for i in self.groups[k])


def start_run(archive_path: str | os.PathLike, out: str | os.PathLike, config: TokenizerConfig,
              staged: str | os.PathLike | None = None) -> TokenizeRun:
    """Set up (or resume) a run: open and check the archive, write ``plan.json`` into a fresh
    folder or check the stored one (ConfigError naming each difference), remove temp shards, move
    ``staged`` shards into place and delete every damaged shard (it is done again)."""
    from ...data.archive import open_archive
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
    groups = group_rows(rows)
    identity = archive_identity(archive)
    out = Path(out)
    plan = make_plan(config.to_dict(), identity, rows, groups)
    stored = stored_marker(out, PLAN, "a token corpus")
    if stored is not None:
        diffs = plan_differences(stored, plan)
        if diffs:
            raise identity_error(out, "a corpus made with other settings or from another archive", diffs,
                                 "folder")
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / PLAN, dumps(plan, indent=1) + "\n")
    run = TokenizeRun(archive, out, config, int(n_channels), rate, token_len, groups, identity, plan,
                      [shard_name(k) for k in range(len(groups))])
    run.shard_dir.mkdir(exist_ok=True)
    remove_leftovers(run.shard_dir, lambda p: p.name.startswith(".") and p.name.endswith(".tmp"))
    for name in run.names if staged is not None else ():
        if (Path(staged) / name).is_dir() and not (run.shard_dir / name).exists():
            os.replace(Path(staged) / name, run.shard_dir / name)
    verify_shards(out, plan["groups"], run.names, remove=True)  # a damaged shard is done again
    return run


def _count_workers(workers: int | None, n_todo: int, channel_samples: int, min_per_worker: int) -> int:
    """The worker processes a run uses: ``workers`` (default: every core) but at most one per group
    and per ``min_per_worker`` channel-samples (0: no such bound), at least one."""
    if workers is None:
        workers = default_workers()
    if int(workers) < 1:
        raise ConfigError(f"workers={workers!r}: must be >= 1")
    if int(min_per_worker) < 0:
        raise ConfigError(f"min_channel_samples_per_worker={min_per_worker!r}: must be >= 0")
    by_work = channel_samples // int(min_per_worker) if min_per_worker else n_todo
    return int(max(1, min(workers, n_todo, by_work)))


def run_groups(run: TokenizeRun, todo: Sequence[int], workers: int, remote, backend: str | None,
               bar=None) -> dict[int, dict[str, Any]]:
    """Tokenize the groups ``todo`` (in this process, a local pool, or ``remote``: a Dask pool) and
    return each one's :func:`tokenize_group` result by group number; ``bar`` counts channel-samples."""
    _warm_up(run.config, float(run.rate), run.n_channels, backend)  # forked workers inherit what it loads
    config_dict = run.config.to_dict()
    path = str(run.archive.path)
    tasks = [[(k, run.groups[k], str(run.shard_dir / run.names[k])) for k in chunk]
             for chunk in work_chunks(list(todo), [run.channel_samples(k) for k in todo], workers)]
    results: dict[int, dict[str, Any]] = {}

    def collect(done: list[tuple[int, dict[str, Any]]]) -> None:
        for k, r in done:
            results[k] = r
            if bar is not None:
                bar.update(r["channel_samples"])

    if workers == 1 and remote is None:
        for task in tasks:
            collect(tokenize_groups(path, task, config_dict, backend))
        return results
    from ...data.distributed import tokenize_groups_task
    run.archive.close()
    gc.freeze()  # forked workers then never copy the parent's objects to collect them
    try:
        # cluster workers outlive runs: they reopen an archive whose identity changed
        run_id = run.identity["manifest_sha256"] + run.identity["index_sha256"]
        fn, extra = (tokenize_groups, ()) if remote is None else (tokenize_groups_task, (run_id,))
        with WorkerPool(workers, what="tokenize") if remote is None else remote as pool:
            futures = [pool.submit(fn, path, task, config_dict, backend, *extra) for task in tasks]
            for fut in as_completed(futures):
                collect(fut.result())
    finally:
        gc.unfreeze()
    return results


def finish_run(run: TokenizeRun, results: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Write ``sentences.jsonl`` and then ``corpus.json`` (the corpus is complete) from every shard:
    this run's ``results`` and, read back, those of earlier runs. Returns corpus.json's content."""
    lines: list[str] = []
    per_dataset: dict[str, dict[str, int]] = {}
    classes: dict[str, list[str]] = {}
    for k, name in enumerate(run.names):
        if k in results:  # written by this run: its worker sent the index lines and a summary
            shard_lines, summary = results[k]["lines"], results[k]["summary"]
        else:
            meta = read_json(run.shard_dir / name / "sentences.json")
            shard_lines, summary = index_lines(meta, name), shard_summary(meta, run.shard_dir / name)
        lines.extend(shard_lines)
        for ds, names_ in summary["classes"].items():
            if classes.setdefault(ds, names_) != names_:
                raise DataError(run.archive.path,
                                f"dataset {ds!r} has two class lists: {classes[ds]} and {names_}")
        for ds, d in summary["per_dataset"].items():
            total = per_dataset.setdefault(ds, dict.fromkeys(d, 0))
            for key, v in d.items():
                total[key] += v
    counts = {key: sum(d[key] for d in per_dataset.values()) for key in COUNT_KEYS}
    from ...data.devices import get_device
    c = run.n_channels
    try:
        device = get_device(run.rows[0]["device"]).to_dict()
    except ConfigError:
        device = None
    corpus = {"format": FORMAT, "version": VERSION, "aemg_version": __version__,
              "config": run.config.to_dict(), "token_shape": [c, int(run.token_len)],
              "rate": run.rate, "device": device,
              "channel_angles": device["angles"] if device and len(device["angles"]) == c else
              (2 * np.pi * np.arange(c) / c).tolist(),
              "space": run.archive.manifest.get("space"), "archive": run.identity, "counts": counts,
              "per_dataset": per_dataset, "classes": classes, "shards": run.names,
              "dtypes": {k: v.str for k, v in DTYPES.items()}}
    atomic_write(run.out / INDEX, "".join(line + "\n" for line in lines))
    atomic_write(run.out / CORPUS, dumps(corpus, indent=1) + "\n")
    return corpus


@locks_folder("out", "token corpus")
def tokenize_archive(archive_path: str | os.PathLike, out: str | os.PathLike,
                     config: TokenizerConfig = TokenizerConfig(), *, workers: int | None = None,
                     progress: bool = True, backend: str | None = None,
                     min_channel_samples_per_worker: int = MIN_CHANNEL_SAMPLES_PER_WORKER,
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
    min_channel_samples_per_worker : int
        Use fewer workers when the job is small: each gets at least this many channel-samples
        (a forked worker costs ~15-20 ms to start and warm up, ~2 M channel-samples of work; the
        default keeps that under ~10 %). 0 = always ``workers`` (up to one per group).
    progress : bool
        Show a tqdm bar of the channel-samples of every group (those tokenized before, in an
        earlier run or staged, counted from the start).
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
    run = start_run(archive_path, out, config, staged)
    todo = run.todo()
    total = sum(run.channel_samples(k) for k in todo)
    from ...data.distributed import checked_pool
    remote = checked_pool(scheduler, run.archive.path, run.out) if todo else None
    workers = _count_workers(remote.workers if remote is not None else workers, len(todo), total,
                             min_channel_samples_per_worker)
    # the groups already tokenized (an earlier run's shards, or prepare's staged ones) count from the start
    waiting = set(todo)
    done = sum(run.channel_samples(k) for k in range(len(run.groups)) if k not in waiting)
    bar = progress_bar(progress, total=done + total, initial=done, desc="tokenize", unit="sample",
                       unit_scale=True, smoothing=0.1)
    t0, cpu0 = time.perf_counter(), _cpu_times()
    try:
        results = run_groups(run, todo, workers, remote, backend, bar)
    finally:
        if bar is not None:
            bar.close()
    corpus = finish_run(run, results)
    seconds = time.perf_counter() - t0
    parent_cpu, children_cpu = (b - a for a, b in zip(cpu0, _cpu_times()))
    counts = corpus["counts"]
    return TokenizeReport(out=str(run.out), workers=workers, groups=len(run.groups),
                          groups_done_before=len(run.groups) - len(todo), recordings=len(run.rows),
                          sentences=counts["sentences"], tokens=counts["tokens"], events=counts["events"],
                          empty_sentences=counts["empty"], capped_sentences=counts["capped"],
                          channel_samples=sum(r["channel_samples"] for r in results.values()),
                          seconds=seconds, token_shape=(run.n_channels, int(run.token_len)),
                          rate=run.rate, per_dataset=corpus["per_dataset"],
                          cpu_seconds=parent_cpu + children_cpu, parent_cpu_seconds=parent_cpu)
