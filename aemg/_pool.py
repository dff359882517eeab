"""Process pools that stop cleanly on Ctrl-C and report a dead worker as an error, not a hang.

Ctrl-C in a terminal sends SIGINT to the whole process group. A pool worker that receives it
raises KeyboardInterrupt wherever it is, possibly while holding the lock of the pool's task queue,
and the parent can then wait forever for it. Here workers ignore SIGINT from the start (the
parent alone decides), and on any exception in the ``with`` block (KeyboardInterrupt included) the
parent cancels the tasks not started, gives running ones ``grace`` seconds and then terminates the
workers, joining every process before the exception goes on. Work a killed worker had not
committed is redone by the resumed run (every long command writes atomically and resumes).
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
import time
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

from .errors import AemgError

#: seconds a worker may go on with its task after Ctrl-C before it is terminated
GRACE_S = 2.0


def default_workers() -> int:
    """The default number of worker processes: all cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class WorkerDied(AemgError, RuntimeError):
    """A worker process ended abruptly (killed, out of memory): the run stops, what was committed
    stays, and re-running the same command resumes."""


def _init(initializer: Callable | None, initargs: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)


def _context():
    """``fork`` where available (workers inherit what the parent loaded), else the default."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)


class WorkerPool:
    """``with WorkerPool(n, initializer, initargs) as pool:`` a ProcessPoolExecutor whose workers
    ignore SIGINT, shut down within about ``grace`` seconds when the block raises, and whose abrupt
    death raises :class:`WorkerDied` naming ``what`` (e.g. ``"tokenize"``)."""

    def __init__(self, workers: int, initializer: Callable | None = None, initargs: tuple = (), *,
                 what: str = "a", grace: float = GRACE_S):
        self.workers, self.what, self.grace = int(workers), what, float(grace)
        self.executor = concurrent.futures.ProcessPoolExecutor(
            self.workers, mp_context=_context(), initializer=_init, initargs=(initializer, tuple(initargs)))

    def __enter__(self) -> concurrent.futures.ProcessPoolExecutor:
        return self.executor

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.executor.shutdown(wait=True)
            return False
        self.stop()
        if isinstance(exc, BrokenProcessPool):
            raise WorkerDied(f"{self.what} worker process ended abruptly (killed, or out of memory?); "
                             "what was committed is kept: re-run the same command to resume") from None
        return False

    def stop(self) -> None:
        """Cancel queued tasks, wait ``grace`` seconds for running ones, terminate the rest, join all."""
        ex = self.executor
        processes = list((getattr(ex, "_processes", None) or {}).values())
        ex.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + self.grace
        for p in processes:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in processes:
            if p.is_alive():
                p.terminate()
        for p in processes:
            p.join(1.0)
            if p.is_alive():  # pragma: no cover - ignored SIGTERM
                p.kill()
                p.join()
        thread = getattr(ex, "_executor_manager_thread", None)
        if thread is not None:
            thread.join(5.0)


def submit_bounded(pool: concurrent.futures.Executor, fn: Callable, items, in_flight: int):
    """``map(fn, items)`` through ``pool`` in order, with at most ``in_flight`` tasks submitted."""
    import collections

    pending: collections.deque = collections.deque()
    it = iter(items)
    for item in it:
        pending.append(pool.submit(fn, item))
        if len(pending) >= in_flight:
            break
    while pending:
        result: Any = pending.popleft().result()
        for item in it:
            pending.append(pool.submit(fn, item))
            break
        yield result
