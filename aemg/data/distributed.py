"""Running ``rectify``, ``tokenize`` and ``prepare`` on a Dask distributed cluster.

rectify (and prepare's rectify stage): the client (the process that runs ``aemg rectify`` /
``aemg prepare``) lists the sources, hands them to the cluster in small chunks (one task each) and
receives the rectified recordings back in source order, a few tasks per worker in flight, as with
the local process pool; it alone writes the archive. Workers on the client's own host hand their
results (and receive prepare's recordings) through a RAM spool folder (:mod:`aemg._spool`), not
through the scheduler's sockets. So the archive is byte-identical to a local
run, a worker killed mid-run loses nothing (the scheduler re-runs its tasks on another worker;
nothing is written until a result is back), and a client killed mid-run resumes from the archive
when re-run, like a local run.

tokenize (and prepare's archive pass): the group tasks run on the workers, which read the archive
and write the shards themselves (each to a temporary folder renamed when complete, so a killed
task leaves nothing the corpus counts): archive and corpus folder must be on a shared filesystem,
checked with a marker file before any work.

The workers must see the dataset folder at the same path (a shared filesystem): checked on every
worker before any work. Start workers with one thread each (``dask worker ADDRESS --nthreads 1``):
a task holds its worker's reader while it runs.

The address comes from ``scheduler=`` (``--scheduler``) or the environment variable
:data:`SCHEDULER_ENV`; none: the local process pool.
"""
from __future__ import annotations

import concurrent.futures
import os
import threading
from typing import Callable, Iterator, Sequence

from .._spool import Spool, call_chunk, call_spooled, submit_spooled, unpack
from ..errors import ConfigError

#: environment variable holding the scheduler address (``tcp://HOST:PORT``)
SCHEDULER_ENV = "AEMG_SCHEDULER"
#: seconds to wait for the scheduler, then for at least one worker
CONNECT_TIMEOUT_S = 10.0
#: times a task whose worker died is re-run before the run fails
TASK_RETRIES = 3
#: tasks in flight per worker (a round trip through the scheduler costs ~ms, more on a loaded
#: machine: keep workers fed while the client writes)
IN_FLIGHT_PER_WORKER = 4
#: most sources in one task
MAX_CHUNK = 32
#: most bytes of source files (on disk) in one task, so that the results in flight stay bounded
#: for large files: at most IN_FLIGHT_PER_WORKER x CHUNK_BYTES of input per worker (plus one file)
CHUNK_BYTES = 8 << 20

_TASK_LOCK = threading.Lock()

#: on a worker whose environment sets ``MALLOC_TRIM_THRESHOLD_`` (the Dask nanny sets 65536 for
#: every worker it starts), glibc stops adapting its mmap threshold, so every array over 128 KiB is
#: a fresh mmap, page-faulted and zeroed again: measured 6x the page faults and 4-5x the system time
#: of a forked pool worker for rectify (docs/notes/rectify.md, Session 5 H2). The first aemg task
#: of such a worker process sets the values glibc's own adaptation reaches on 64-bit Linux:
MALLOC_MMAP_THRESHOLD = 32 << 20  # bytes: larger blocks are mmapped
MALLOC_TRIM_THRESHOLD = 64 << 20  # bytes: free memory kept at the top of the heap
_MALLOC = {"tuned": None}


def scheduler_address(scheduler: str | None = None) -> str | None:
    """``scheduler`` if given, else ``$AEMG_SCHEDULER``, else None (run locally)."""
    address = scheduler if scheduler is not None else os.environ.get(SCHEDULER_ENV)
    return (address.strip() or None) if address else None


def connect(address: str, timeout: float | None = None):
    """A ``distributed.Client`` of the scheduler at ``address`` with at least one worker
    (``timeout``: seconds, default :data:`CONNECT_TIMEOUT_S`).

    Raises
    ------
    ConfigError
        dask.distributed is not installed, the scheduler is unreachable (naming the address), or
        it has no worker after ``timeout`` seconds.
    """
    timeout = CONNECT_TIMEOUT_S if timeout is None else float(timeout)
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError(f"scheduler {address}: dask.distributed is not installed "
                          "(pip install 'aemg[distributed]')") from None
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(f"scheduler {address}: unreachable ({type(exc).__name__}: {exc}); start one with "
                          f"`dask scheduler` and workers with `dask worker {address} --nthreads 1`") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError) as exc:
        client.close()
        raise ConfigError(f"scheduler {address}: no worker joined within {timeout:g} s ({exc})") from None
    return client


def tune_malloc() -> bool:
    """In this (worker) process, if ``MALLOC_TRIM_THRESHOLD_`` is set, give glibc malloc
    :data:`MALLOC_MMAP_THRESHOLD` and :data:`MALLOC_TRIM_THRESHOLD` (once); True when set now or
    earlier. No-op (False) without the variable or without glibc."""
    if _MALLOC["tuned"] is None:
        _MALLOC["tuned"] = False
        if os.environ.get("MALLOC_TRIM_THRESHOLD_"):
            try:
                import ctypes
                libc = ctypes.CDLL("libc.so.6")
                M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
                _MALLOC["tuned"] = bool(libc.mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD)
                                        and libc.mallopt(M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD))
            except (OSError, AttributeError):  # not glibc
                pass
    return _MALLOC["tuned"]


def _file_size(root, source) -> int:
    try:
        return os.path.getsize(os.path.join(str(root), str(source)) if root is not None else str(source))
    except (OSError, TypeError, ValueError):
        return 0


def _sees(path: str) -> bool:
    return os.path.isdir(path)


def _run_chunk(fn: Callable, init: Callable, initargs: tuple, chunk: Sequence, ticket=None):
    """On a worker: set up the worker state of this run, then ``[fn(item) for item in chunk]`` (one
    task at a time per worker process, so two runs sharing a worker cannot mix their readers),
    packed through the client's spool ``ticket`` (:mod:`aemg._spool`: used by a worker on the
    client's host only)."""
    tune_malloc()
    with _TASK_LOCK:
        init(*initargs)
        return call_chunk(fn, ticket, chunk)


def source_chunks(items: Sequence, workers: int, root=None) -> list[list]:
    """``items`` (source names) cut into tasks, in order: about 1/(8 x workers) of them each (so
    the last tasks spread over the workers), at most :data:`MAX_CHUNK` sources and
    :data:`CHUNK_BYTES` of their files (sizes under ``root``; a source that is no file counts 0),
    at least one source. Used by the cluster and the local process pool alike: a task's round trip
    costs milliseconds, more than rectifying a small file."""
    size = max(1, min(MAX_CHUNK, len(items) // (8 * workers)))
    out: list[list] = []
    filled = 0
    for item in items:
        nbytes = _file_size(root, item)
        if not out or len(out[-1]) >= size or (filled and filled + nbytes > CHUNK_BYTES):
            out.append([])
            filled = 0
        out[-1].append(item)
        filled += nbytes
    return out


def checked_runner(scheduler: str | None, reader, init: Callable) -> Callable[[tuple], "DaskRunner"] | None:
    """None when no scheduler is given (``scheduler``, ``$AEMG_SCHEDULER``): run locally. Else
    check now, before any work, that the scheduler answers, has workers and that they all see the
    dataset folder, and return ``make(initargs) -> DaskRunner`` for the run."""
    address = scheduler_address(scheduler)
    if address is None:
        return None
    root = getattr(reader, "root", None)
    checked = DaskRunner(address, init, (), root=root)
    checked.client = checked.connect_and_check()  # kept for the run (closed by its __exit__)
    return lambda initargs: DaskRunner(address, init, initargs, root=root, client=checked.client)


class DaskRunner:
    """The cluster counterpart of ``aemg.data.pipeline._Runner``: ``imap(fn, items)`` in order,
    at most :data:`IN_FLIGHT_PER_WORKER` tasks (chunks of items) per worker in flight.

    Parameters
    ----------
    address : str
        Scheduler address.
    init : callable
        The worker set-up function (``pipeline._init_worker``), called with ``initargs`` before each
        task.
    initargs : tuple
        Its arguments (the reader, space, scale); sent to the cluster once.
    root : path or None
        The dataset folder every worker must see.
    """

    def __init__(self, address: str, init: Callable, initargs: tuple, root=None, client=None):
        self.address, self.init, self.initargs, self.root = address, init, initargs, root
        self.client = client
        self.spool: Spool | None = None

    def connect_and_check(self):
        """A client of the scheduler whose workers all see :attr:`root` (ConfigError otherwise)."""
        client = connect(self.address)
        try:
            if self.root is not None:
                root = os.path.abspath(str(self.root))
                seen = client.run(_sees, root)
                blind = sorted(w for w, ok in seen.items() if not ok)
                if blind:
                    raise ConfigError(f"{root}: not visible on {len(blind)} of {len(seen)} workers of "
                                      f"{self.address} (first: {blind[0]}); the dataset folder must be "
                                      "on a filesystem every worker mounts at the same path")
        except BaseException:
            client.close()
            raise
        return client

    def __enter__(self) -> "DaskRunner":
        if self.client is None:
            self.client = self.connect_and_check()
        try:
            self.workers = max(1, len(self.client.scheduler_info()["workers"]))
            [self.args] = self.client.scatter([self.initargs], broadcast=True, hash=False)
            self.spool = Spool().__enter__()  # workers on this host hand results over through it
        except BaseException:
            self.client.close()
            raise
        return self

    def chunks(self, items: Sequence) -> list[list]:
        """``items`` cut into this cluster's tasks (:func:`source_chunks`)."""
        return source_chunks(items, self.workers, self.root)

    def imap(self, fn: Callable, items: Sequence) -> Iterator:
        """``map(fn, items)`` on the cluster, results in order; a task whose worker dies is re-run.

        Items go in chunks (one task each, :meth:`chunks`): a task's round trip through the scheduler
        costs milliseconds; at most :data:`IN_FLIGHT_PER_WORKER` tasks per worker in flight."""
        import collections

        chunks = iter(self.chunks(list(items)))
        pending: collections.deque = collections.deque()

        def submit(chunk):
            pending.append(self.client.submit(_run_chunk, fn, self.init, self.args, chunk, self.spool.ticket,
                                              pure=False, retries=TASK_RETRIES))

        for chunk in chunks:
            submit(chunk)
            if len(pending) >= IN_FLIGHT_PER_WORKER * self.workers:
                break
        while pending:
            fut = pending.popleft()
            results = unpack(fut.result())
            fut.release()
            for chunk in chunks:
                submit(chunk)
                break
            yield from results

    def submit(self, fn: Callable, *args):
        """``fn(*args)`` as one task on the cluster (its arguments travel with the task, so a task
        whose worker dies is re-run elsewhere); a ``distributed.Future`` (``.result()``)."""
        return submit_spooled(self.client.submit, _run_one, self.spool.ticket, fn, args, pure=False,
                              retries=TASK_RETRIES)

    def check_visible(self, folder, what: str) -> None:
        """ConfigError unless every worker sees ``folder`` (a marker file written there now)."""
        refuse_blind_folder(self.client, self.address, folder, what)

    def __exit__(self, *exc) -> bool:
        if self.client is not None:
            self.client.close()
        if self.spool is not None:
            self.spool.__exit__(None, None, None)
            self.spool = None
        return False


def _run_one(fn: Callable, args: tuple):
    """On a worker: ``fn(*args)`` (arguments spooled by the client unpacked), one task at a time per
    worker process."""
    tune_malloc()
    with _TASK_LOCK:
        return call_spooled(fn, args)


# -- tokenize: shard tasks on the cluster, written by the workers to a shared folder -------------
def _sees_file(path: str) -> bool:
    return os.path.isfile(path)


def blind_workers(client, path: str | os.PathLike) -> list[str]:
    """Addresses of the workers of ``client`` on which the file ``path`` does not exist."""
    seen = client.run(_sees_file, os.path.abspath(str(path)))
    return sorted(w for w, ok in seen.items() if not ok)


def _refuse_blind(client, address: str, path, what: str) -> None:
    blind = blind_workers(client, path)
    if blind:
        raise ConfigError(f"{os.path.dirname(os.path.abspath(str(path)))}: {what} is not visible on "
                          f"{len(blind)} worker(s) of {address} (first: {blind[0]}); it must be on a "
                          "filesystem every worker mounts at the same path")


class DaskPool:
    """A ``concurrent.futures``-style pool on a cluster for :func:`~aemg.tokenizer.corpus.tokenize_archive`:
    ``submit(fn, *args)`` returns a ``concurrent.futures.Future``; a task whose worker dies is
    re-run (the shard writer removes the dead task's temporary folder first)."""

    def __init__(self, address: str, workers: int):
        self.address, self.workers = address, workers
        self.client = None
        self._futures: list = []

    def __enter__(self) -> "DaskPool":
        self.client = connect(self.address)
        return self

    def submit(self, fn: Callable, *args) -> concurrent.futures.Future:
        out: concurrent.futures.Future = concurrent.futures.Future()
        fut = self.client.submit(fn, *args, pure=False, retries=TASK_RETRIES)

        def done(f):
            try:
                out.set_result(f.result())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's .result()
                out.set_exception(exc)

        fut.add_done_callback(done)
        self._futures.append(fut)
        return out

    def __exit__(self, *exc) -> bool:
        if self.client is not None:
            self.client.close()
        return False


def refuse_blind_folder(client, address: str, folder, what: str) -> None:
    """ConfigError naming ``folder`` unless every worker of ``client`` sees a marker file written
    there now (``what``: how the message names the folder)."""
    import uuid
    marker = os.path.join(str(folder), f".aemg-visible-{uuid.uuid4().hex}")
    with open(marker, "w"):
        pass
    try:
        _refuse_blind(client, address, marker, what)
    finally:
        os.unlink(marker)


def checked_pool(scheduler: str | None, archive, out) -> DaskPool | None:
    """None without a scheduler. Else check, before any tokenizing, that the scheduler answers, has
    workers, and that every worker sees the archive (its manifest) and the corpus folder (a marker
    file written there now); return a :class:`DaskPool` sized to the cluster."""
    address = scheduler_address(scheduler)
    if address is None:
        return None
    client = connect(address)
    try:
        _refuse_blind(client, address, os.path.join(str(archive), "manifest.json"), "the archive folder")
        refuse_blind_folder(client, address, out, "the output folder")
        workers = max(1, len(client.scheduler_info()["workers"]))
    finally:
        client.close()
    return DaskPool(address, workers)


_OPENED: dict[str, str] = {}  # archive path -> identity digest this worker process opened


def tokenize_groups_task(archive_path: str, task, config_dict: dict, backend, identity: str):
    """On a worker: the tokenizer's ``tokenize_groups``, reopening the archive when this worker
    last opened another archive at the same path (workers outlive runs, forked pools do not)."""
    from ..tokenizer.corpus import writer
    tune_malloc()
    if _OPENED.get(archive_path) != identity:
        writer.forget_archive(archive_path)
        _OPENED[archive_path] = identity
    with _TASK_LOCK:
        return writer.tokenize_groups(archive_path, task, config_dict, backend)
