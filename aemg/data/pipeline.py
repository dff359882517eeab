"""Raw dataset -> rectified archive: :func:`rectify_dataset`, streamed through a process pool.

Each *source* of a reader (one file) is read and rectified in a worker process; results come back
in source order (so the archive is the same for any number of workers), at most ``2 * workers``
sources in flight, and are committed to the archive in shards of bounded size
(:class:`~aemg.data.archive.ArchiveWriter`). A re-run with the same arguments resumes: sources
already committed are skipped. See :mod:`aemg.data.archive` for the format and crash safety.
"""
from __future__ import annotations

import concurrent.futures
import functools
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .._folder import stored_marker
from .._io import locks_folder
from .._pool import WorkerPool, default_workers, submit_bounded
from .._progress import logging_redirect, progress_bar
from .._spool import Spool, call_chunk, call_spooled, submit_spooled, unpack
from ..errors import AemgError, ConfigError, DataError, shorten
from .archive import DEFAULT_SHARD_BYTES, MANIFEST, ArchiveWriter, read_archive_json
from .distributed import IN_FLIGHT_PER_WORKER, checked_runner, source_chunks
from .recording import Recording

logger = logging.getLogger("aemg.rectify")

#: sources read to estimate the dataset's amplitude scale (evenly spaced over the sorted list)
SCALE_SAMPLE_SOURCES = 8


@dataclass
class RectifyReport:
    """What one :func:`rectify_dataset` run did.

    Attributes
    ----------
    out : Path
        The archive folder.
    reader : str
        Reader name.
    sources : int
        Sources the reader lists.
    skipped : int
        Sources already in the archive from an earlier run (resume), not read again.
    processed : int
        Sources read in this run (including failed ones).
    recordings : int
        Recordings written in this run.
    samples_in : int
        Raw samples per channel read in this run (sum of T over the raw recordings).
    samples_out : int
        Rectified samples per channel written in this run.
    seconds : float
        Wall time of the run, scale estimation included.
    errors : list of dict
        ``{"source", "problem"}`` for each source that failed in this run.
    amplitude_scale : float
        The dataset's amplitude scale (from the manifest when resuming).
    complete : bool
        True when every source is done (False after ``on_error="stop"``).
    """

    out: Path
    reader: str
    sources: int = 0
    skipped: int = 0
    processed: int = 0
    recordings: int = 0
    samples_in: int = 0
    samples_out: int = 0
    seconds: float = 0.0
    errors: list[dict[str, str]] = field(default_factory=list)
    amplitude_scale: float = 1.0
    complete: bool = False

    @property
    def samples_per_s(self) -> float:
        """Raw samples per channel read per second of wall time."""
        return self.samples_in / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line for the end of ``aemg rectify``."""
        resumed = f", {self.skipped} already done" if self.skipped else ""
        return (f"{self.reader}: {self.processed} of {self.sources} sources read{resumed}, "
                f"{self.recordings} recordings, {self.samples_in:,} samples in, {self.samples_out:,} out, "
                f"{len(self.errors)} error(s), {self.seconds:.1f} s ({self.samples_per_s:,.0f} samples/s) "
                f"-> {self.out}")


# -- worker side -----------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(reader, space, scale, native_rate=None, precision="float64") -> None:
    from .rectify import pin_backends
    _WORKER.update(reader=reader, space=space, scale=scale, native_rate=native_rate, precision=precision)
    pin_backends()  # the filter kernels are chosen once per run, not per recording


def _problem(exc: BaseException, path: str) -> str:
    """The problem text of ``exc``, without repeating ``path`` when the error names it already
    (an error that is not aemg's own is named by its type: a bug or an unexpected file)."""
    if isinstance(exc, DataError) and os.path.normpath(exc.where) == os.path.normpath(path):
        return shorten(exc.problem)
    if isinstance(exc, AemgError):
        return shorten(str(exc))
    if isinstance(exc, MemoryError):
        return f"out of memory while reading or rectifying it ({shorten(str(exc))})"
    return shorten(f"{type(exc).__name__}: {exc}")


def _source_path(reader, source: str) -> str:
    root = getattr(reader, "root", None)
    return str(Path(root) / source) if root is not None else source


#: fewest samples a recording needs to be rectified (a 1-sample file is a broken export)
MIN_SAMPLES = 2
#: a time column may span at most this many times the duration its samples have at the nominal
#: rate (plus :data:`TIME_SLACK_S`); beyond, resampling it would allocate for the gaps
MAX_TIME_STRETCH = 4.0
TIME_SLACK_S = 10.0


def check_time_span(rec: Recording, where: str | os.PathLike) -> None:
    """DataError unless ``rec.times`` (if any) spans a plausible time for its samples.

    A time column in the wrong unit or with one huge jump (a clock reset, a corrupt row) would
    make :func:`~aemg.data.rectify.rectify` resample over the whole span: a +1e6 s jump in a
    1 kHz file asks for 30 GiB. Checked before any allocation: the span ``times[-1] - times[0]``
    must be at most ``MAX_TIME_STRETCH * n_samples / rate + TIME_SLACK_S`` seconds.
    """
    t = rec.times
    if t is None or t.size < 2:
        return
    span, nominal = float(t[-1] - t[0]), rec.n_samples / float(rec.rate)
    if not span <= MAX_TIME_STRETCH * nominal + TIME_SLACK_S:
        steps = np.diff(t)
        j = int(np.argmax(steps))
        raise DataError(where, f"time column spans {span:.6g} s, but its {rec.n_samples} samples at "
                               f"{float(rec.rate):g} Hz last {nominal:.4g} s (largest jump +{steps[j]:.6g} s "
                               f"from sample {j + 1} to {j + 2}); refusing implausible timestamps "
                               "(check the time column and its time_scale)")


def _read_checked(reader, source: str, space, scale: float | None, native_rate: float | None = None,
                  precision: str = "float64") -> tuple[list[Recording], list[Recording], int]:
    """The raw and rectified recordings of ``source`` and its raw samples per channel; raises what
    any step raises (the caller reports it as this source's problem). ``native_rate``: the
    dataset's rate for irregular logs (:func:`~aemg.data.rectify.dataset_native_rate`);
    ``precision``: :func:`~aemg.data.rectify.rectify`'s."""
    from .rectify import rectify
    raw = _read_raw(reader, source)
    return (raw, [rectify(rec, space, amplitude_scale=scale, native_rate=native_rate, precision=precision)
                  for rec in raw],
            sum(r.n_samples for r in raw))


def _read_raw(reader, source: str) -> list[Recording]:
    """The raw recordings of ``source``, checked to be long enough and plausibly timed."""
    raw = list(reader.read(source))
    for rec in raw:
        if rec.n_samples < MIN_SAMPLES:
            raise DataError(_source_path(reader, source), f"{rec.key}: {rec.n_samples} sample(s), too "
                                                          f"short to rectify (at least {MIN_SAMPLES})")
        if rec.times is not None:
            check_time_span(rec, _source_path(reader, source))
    return raw


def _scale_source(source: str) -> tuple[str, list[Recording] | None, np.ndarray | None, str | None,
                                        list | None]:
    """Worker task: ``(source, raw recordings, moving RMS, None, unscaled)`` if the whole file
    passes (reads, rectifies, is not silent), else ``(source, None, None, problem, None)``; only
    passing files estimate the amplitude scale. The moving RMS (:func:`~aemg.data.rectify.moving_rms`
    of each recording rectified without gain, concatenated) is what
    :func:`~aemg.data.rectify.estimate_amplitude_scale` pools, so each sampled recording is
    rectified once here; ``unscaled`` holds each recording's ``_unscaled`` result (samples before
    the gain, labels, provenance), which the run then finishes instead of rectifying it again."""
    from .rectify import _unscaled, moving_rms
    reader, space, precision = _WORKER["reader"], _WORKER["space"], _WORKER.get("precision", "float64")
    try:
        raw = _read_raw(reader, source)
        # the amplitude mode plays no part before the gain: the run's own space, so the provenance
        # of what is kept is the run's
        unscaled = [_unscaled(rec, space, None, precision) for rec in raw]
        rms = [moving_rms(u[0], space.rate, space.floor_window_s) for u in unscaled]
        values = np.concatenate(rms) if rms else np.zeros(0)
        if raw and values.size == 0:
            raise DataError("estimate_amplitude_scale", "no samples in the given recordings")
        if raw and not float(np.percentile(values, space.floor_percentile)) > 0:
            raise DataError("estimate_amplitude_scale", "the recordings are silent (noise floor 0)")
        return source, raw, values, None, unscaled
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the run
        return source, None, None, _problem(exc, _source_path(reader, source)), None


def _rectify_source(source: str) -> tuple[str, list[Recording] | None, str | None, int]:
    """Worker task: read and rectify ``source``; returns (source, recordings, problem, raw samples).
    Any exception is this source's problem: the run goes on with the next source."""
    reader, space, scale = _WORKER["reader"], _WORKER["space"], _WORKER["scale"]
    try:
        _, recs, n_in = _read_checked(reader, source, space, scale, _WORKER.get("native_rate"),
                                      _WORKER.get("precision", "float64"))
        return source, recs, None, n_in
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the run
        return source, None, _problem(exc, _source_path(reader, source)), 0


class _Runner:
    """Runs worker tasks in order, in-process (``workers == 1``) or in a bounded process pool
    (:class:`aemg._pool.WorkerPool`: workers ignore Ctrl-C, the parent stops and joins them)."""

    def __init__(self, workers: int, initargs: tuple):
        self.workers = workers
        self.initargs = initargs
        self.pool: WorkerPool | None = None
        self.spool: Spool | None = None

    def __enter__(self) -> "_Runner":
        if self.workers > 1:
            self.spool = Spool().__enter__()  # the recordings travel through it, not the pipes
            try:
                self.pool = WorkerPool(self.workers, _init_worker, self.initargs, what="rectify")
            except BaseException:
                self.spool.__exit__(None, None, None)
                raise
        else:
            _init_worker(*self.initargs)
        return self

    def imap(self, fn: Callable, items: Sequence) -> Iterator:
        """``map(fn, items)`` in order: tasks of a few items (:func:`~aemg.data.distributed.source_chunks`),
        at most ``IN_FLIGHT_PER_WORKER * workers`` of them in flight (so that the workers go on while
        this process writes a shard), each task's results back through the run's spool."""
        if self.pool is None:
            yield from map(fn, items)
            return
        task = functools.partial(call_chunk, fn, self.spool.ticket)
        chunks = source_chunks(list(items), self.workers, getattr(self.initargs[0], "root", None))
        for results in submit_bounded(self.pool.executor, task, chunks, IN_FLIGHT_PER_WORKER * self.workers):
            yield from unpack(results)

    def submit(self, fn: Callable, *args) -> concurrent.futures.Future:
        """``fn(*args)`` on a pool worker (in this process, done when returned, without a pool)."""
        if self.pool is not None:
            return submit_spooled(self.pool.executor.submit, call_spooled, self.spool.ticket, fn, args)
        fut: concurrent.futures.Future = concurrent.futures.Future()
        try:
            fut.set_result(fn(*args))
        except Exception as exc:  # noqa: BLE001 - handed to the caller's .result()
            fut.set_exception(exc)
        return fut

    def __exit__(self, *exc) -> bool:
        from .rectify import unpin_backends
        try:
            return bool(self.pool.__exit__(*exc)) if self.pool is not None else False
        finally:
            _WORKER.clear()
            if self.spool is not None:
                self.spool.__exit__(None, None, None)
            if self.pool is None:
                unpin_backends()


# -- the run ---------------------------------------------------------------------------------------
def scale_sample(sources: Sequence[str], k: int = SCALE_SAMPLE_SOURCES) -> list[str]:
    """``k`` sources evenly spaced over ``sources`` (all of them when there are fewer): deterministic."""
    if len(sources) <= k:
        return list(sources)
    picks = np.unique(np.round(np.linspace(0, len(sources) - 1, k)).astype(int))
    return [sources[i] for i in picks]


def _resolve_reader(reader, root, reader_options):
    from .readers import get_reader
    options = dict(reader_options or {})
    if isinstance(reader, str):
        return get_reader(reader, root, **options), reader, options
    if root is not None:
        raise ConfigError("rectify_dataset: give root= only with a reader name "
                          "(the reader object has its root)")
    info = getattr(reader, "info", None)
    if (info is None or not callable(getattr(reader, "sources", None))
            or not callable(getattr(reader, "read", None))):
        raise ConfigError(f"rectify_dataset: {reader!r} is neither a reader name nor a Reader")
    return reader, info.name, options or dict(getattr(reader, "options", {}) or {})


@locks_folder("out", "archive")
def rectify_dataset(reader, out: str | os.PathLike, space=None, *, root: str | os.PathLike | None = None,
                    reader_options: dict[str, Any] | None = None, workers: int | None = None,
                    on_error: str = "skip", progress: bool = True,
                    shard_bytes: int = DEFAULT_SHARD_BYTES, compression: str | None = None,
                    on_source: Callable[[str, list[Recording]], None] | None = None,
                    on_runner: Callable[[Any], None] | None = None,
                    scheduler: str | None = None, precision: str | None = None) -> RectifyReport:
    """Read every source of a dataset, rectify it into ``space`` and write an archive at ``out``.

    Parameters
    ----------
    reader : str or Reader
        A reader name (``aemg datasets`` lists them) or a reader instance.
    out : path
        Archive folder. Created if missing; if it holds an archive from an interrupted or earlier
        run with the same arguments, the run resumes (sources already committed are skipped).
    space : StandardSpace or None
        Target space (None: ``StandardSpace()``).
    root : path or None
        Dataset folder (None: the reader's default under the data root).
    reader_options : dict or None
        Reader options (e.g. ``{"pattern": "*.csv", "rate": 1000, "device": "ring:8"}``).
    workers : int or None
        Worker processes (None: all cores; 1: no pool).
    on_error : {"skip", "stop"}
        A source that fails to read or rectify is logged (a warning naming the file and the
        problem) and stored in the archive's errors log; ``"stop"`` then raises its DataError
        after committing everything read before it.
    progress : bool
        Show a progress bar on stderr (files, samples/s).
    shard_bytes : int
        Bound on the float32 samples per shard, bytes (a shard may exceed it by one source).
    compression : str or None
        HDF5 filter for the samples (None, ``"lzf"`` or ``"gzip"``); see docs/notes/archive.md.
    on_source : callable or None
        Called in this process as ``on_source(source, recordings)`` with the rectified recordings
        of each source added to the archive, in archive order (``aemg prepare`` tokenizes them).
    on_runner : callable or None
        Called in this process with the runner once its workers are up (``runner.submit(fn, *args)``
        runs ``fn`` on them, a future) and with None after the last source, before they stop.
    scheduler : str or None
        Dask scheduler address (else ``$AEMG_SCHEDULER``; neither: the local pool): the sources are
        rectified on the cluster, this process writes the archive (:mod:`aemg.data.distributed`).
    precision : {"float32", "float64"} or None
        Arithmetic of :func:`~aemg.data.rectify.rectify` (None: ``DEFAULT_PRECISION``, float32).
        Stored in the manifest: resuming an archive made with the other precision is refused
        (the archive would mix the two); archives made before the option count as ``"float64"``.

    Returns
    -------
    RectifyReport

    Raises
    ------
    ConfigError
        Bad arguments, or ``out`` holds an archive made with other arguments.
    DataError
        The dataset folder is missing, no sampled source could be read, or (``on_error="stop"``)
        the first bad source.
    """
    from .rectify import DEFAULT_PRECISION, StandardSpace, check_precision, estimate_amplitude_scale

    t0 = time.perf_counter()
    precision = check_precision(DEFAULT_PRECISION if precision is None else precision,
                                "rectify_dataset: precision")
    if on_error not in ("skip", "stop"):
        raise ConfigError(f"on_error={on_error!r}: expected 'skip' or 'stop'")
    space = StandardSpace() if space is None else space
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ConfigError(f"workers={workers}: need at least 1")
    if int(shard_bytes) < 1:
        raise ConfigError(f"shard_bytes={shard_bytes}: must be positive")
    out = Path(out)
    rdr, name, options = _resolve_reader(reader, root, reader_options)
    remote = checked_runner(scheduler, rdr, _init_worker)  # a bad scheduler fails before any work
    source_root = None if getattr(rdr, "root", None) is None else str(Path(rdr.root).resolve())
    manifest = {"reader": name, "reader_options": options, "source_root": source_root,
                "space": space.to_dict(), "precision": precision, "shard_bytes": int(shard_bytes),
                "compression": compression}

    sources = list(rdr.sources())
    stored = stored_marker(out, MANIFEST, "an aemg archive", read_archive_json)
    kept: dict[str, tuple[list[Recording], list]] = {}  # sampled sources already rectified (no gain)
    if stored is None:
        scale, native = _estimate_scale(rdr, sources, space, min(workers, len(sources) or 1),
                                        estimate_amplitude_scale, precision, kept)
        manifest["amplitude_scale"] = scale
        if native is not None:
            manifest["native_rate"] = native
    # checks the arguments of a resumed archive; shards are written while the next results come in
    writer = ArchiveWriter(out, manifest, background=True)
    scale = float(writer.manifest["amplitude_scale"])
    native = writer.manifest.get("native_rate")  # absent: archives before it, or no irregular logs
    for problem in writer.damaged:
        logger.warning("%s/%s; its sources are read again", out, problem)
    for name_ in writer.cleaned:
        logger.info("removed %s left by an interrupted run", out / name_)
    todo = [s for s in sources if s not in writer.done]
    report = RectifyReport(out=out, reader=name, sources=len(sources), skipped=len(sources) - len(todo),
                           amplitude_scale=scale)
    if not todo:
        writer.finish()
        report.complete, report.seconds = True, time.perf_counter() - t0
        return report

    bar = progress_bar(progress, total=len(sources), initial=report.skipped, desc="rectify", unit="file")
    try:
        initargs = (rdr, space, scale, native, precision)
        with logging_redirect(bar), (_Runner(min(workers, len(todo)), initargs)
                                     if remote is None else remote(initargs)) as runner:
            if on_runner is not None:
                on_runner(runner)
            for source, recs, problem, n_in in _results(runner, todo, kept, space, scale):
                report.processed += 1
                # add() may turn the source into an error (a duplicate recording key)
                problem = writer.add(source, recs or (), problem)
                if problem is not None:
                    path = _source_path(rdr, source)
                    report.errors.append({"source": source, "problem": problem})
                    if on_error == "stop":
                        writer.commit()
                        raise DataError(path, problem)
                    logger.warning("skipped %s: %s", path, problem)
                else:
                    report.recordings += len(recs)
                    report.samples_in += n_in
                    report.samples_out += sum(rec.n_samples for rec in recs)
                    if on_source is not None:
                        on_source(source, recs)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"{report.samples_in / (time.perf_counter() - t0):,.0f} samples/s",
                                        refresh=False)
            if on_runner is not None:
                on_runner(None)
    except BaseException as exc:
        try:
            if not isinstance(exc, OSError):  # Ctrl-C, a dead worker, --stop-on-error: keep what was read
                writer.commit()
            else:  # a full disk, say: the shard being written in the background is kept if it made it
                writer.wait()
        except Exception as again:  # noqa: BLE001 - the first error is the one to report
            logger.warning("could not commit the last recordings read: %s", again)
        raise
    finally:
        if bar is not None:
            bar.close()
        report.seconds = time.perf_counter() - t0
    writer.finish()
    report.complete = True
    report.seconds = time.perf_counter() - t0
    return report


def _results(runner, todo: list[str], kept: dict, space, scale: float) -> Iterator[tuple]:
    """``_rectify_source``'s results for ``todo`` in order: the sources in ``kept`` (rectified
    without gain by the amplitude-scale pass) are finished in this process, the others come from
    the runner (the same samples either way: ``rectify`` is ``_unscaled`` then the gain)."""
    from .rectify import finish_rectified
    rest = runner.imap(_rectify_source, [s for s in todo if s not in kept])
    for source in todo:
        if source not in kept:
            yield next(rest)
            continue
        raw, unscaled = kept.pop(source)
        recs = [finish_rectified(rec, x, labels, prov, space, scale)
                for rec, (x, labels, prov) in zip(raw, unscaled)]
        yield source, recs, None, sum(r.n_samples for r in raw)


def _estimate_scale(rdr, sources: list[str], space, workers: int, estimate: Callable,
                    precision: str = "float64", kept: dict | None = None) -> tuple[float, float | None]:
    """The amplitude scale and the native rate of irregular logs (None when none is irregular) of
    the dataset, from the raw recordings of :func:`scale_sample` that pass (a sampled file that
    fails is logged and left out; it is reported again when its turn comes in the run). ``kept``
    (when given, and no log is irregular) receives ``{source: (raw, unscaled)}`` of the passing
    sampled sources for :func:`_results`."""
    from .rectify import dataset_native_rate, estimate_amplitude_scale
    sample = scale_sample(sources)
    if not sample:
        raise DataError(getattr(rdr, "root", None) or rdr.info.name, "the reader lists no sources")
    recordings: list[Recording] = []
    pooled: list[np.ndarray] = []
    problems = []
    with _Runner(workers, (rdr, space, None, None, precision)) as runner:
        done: dict[str, tuple[list[Recording], list]] = {}
        for source, recs, rms, problem, unscaled in runner.imap(_scale_source, sample):
            if problem is None:
                recordings.extend(recs)
                pooled.append(rms)
                done[source] = (recs, unscaled)
            else:
                problems.append(f"{_source_path(rdr, source)}: {problem}")
                logger.warning("not used for the amplitude scale: %s", problems[-1])
    if not recordings:
        where = getattr(rdr, "root", None) or rdr.info.name
        raise DataError(where, f"none of the {len(sample)} sources sampled to estimate the amplitude scale "
                               f"could be read (first: {problems[0] if problems else 'no recordings'})")
    native = dataset_native_rate(recordings)
    if native is None and estimate is estimate_amplitude_scale:
        # no irregular log: the workers' moving RMS is what the estimate pools (same scale)
        values = np.concatenate(pooled)
        scale = float(np.percentile(values, space.floor_percentile))  # each passing source has windows
        if not scale > 0:
            raise DataError("estimate_amplitude_scale", "the recordings are silent (noise floor 0)")
        if kept is not None:
            kept.update(done)
        return scale, None
    return float(estimate(recordings, space, native_rate=native, precision=precision)), native
