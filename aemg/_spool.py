"""Large task arguments and results between processes of one host through a spool folder, not a pipe.

A process pool (or Dask workers on the client's host) sends a task's result back pickled through a
pipe: the worker copies each array into the pickle, writes it 64 KiB at a time, and the parent
reads, re-assembles and unpickles it (three copies, thousands of system calls and wake-ups). For
``aemg rectify`` that moved 161 MB of float32 samples for the 968 3DC files, and made 2 workers
slower than 1 (docs/notes/rectify.md, "Session 8").

Here a task's large buffers (pickle protocol 5's out-of-band buffers: contiguous NumPy arrays)
are written to one file in a per-run spool folder on a RAM file system (``/dev/shm`` where it
exists), and only the small pickle and the file's name travel. The receiver maps the file, unlinks
it at once and rebuilds the objects on the mapped pages (copy-on-write: the arrays are writable).

A :class:`Spool` is made by the parent (``with Spool() as spool:``) and removed with whatever is
left in it on exit. Its :attr:`~Spool.ticket` goes to the workers; a worker that does not see the
folder (another host) or objects with less than :data:`SPOOL_MIN_BYTES` of buffers go the usual
way, so a ticket is always safe to use. A file of a task that a killed worker left half-written is
never read (the result that names it never arrives) and goes with the folder.
"""
from __future__ import annotations

import functools
import mmap
import os
import pickle
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any, Callable

#: objects with fewer bytes of out-of-band buffers than this travel pickled as usual
SPOOL_MIN_BYTES = 1 << 16
#: buffers start at multiples of this in a spool file (NumPy's and SIMD loads' alignment)
ALIGN = 64
PREFIX = "aemg-spool-"


def spool_base() -> str:
    """Where spool folders go: ``/dev/shm`` (RAM) where it is a writable folder, else the temp dir."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return tempfile.gettempdir()


@dataclass(frozen=True)
class SpoolTicket:
    """What a worker needs to use a :class:`Spool`: its folder and the marker that proves it is the
    same folder (not a namesake on another host)."""
    folder: str | None
    token: str | None

    def visible(self) -> bool:
        """Whether this process sees the spool (its marker file; never on Windows, where a mapped
        file cannot be unlinked; never for the ticket of a spool that could not be made)."""
        return (self.folder is not None and os.name == "posix"
                and os.path.isfile(os.path.join(self.folder, self.token)))

    def pack(self, obj: Any) -> Any:
        """``obj``, or a :class:`Spooled` stand-in whose buffers are in a file of the folder (when
        they are at least :data:`SPOOL_MIN_BYTES` and this process sees the folder)."""
        if not self.visible():
            return obj
        buffers: list[pickle.PickleBuffer] = []
        data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
        raws = [b.raw() for b in buffers]
        total = sum(r.nbytes for r in raws)
        if total == 0 or total < SPOOL_MIN_BYTES:
            return obj
        offsets, sizes, at = [], [], 0
        path = os.path.join(self.folder, f"{os.getpid()}-{uuid.uuid4().hex}.bin")
        try:
            with open(path, "wb") as f:
                for raw in raws:
                    pad = -at % ALIGN
                    if pad:
                        f.write(b"\0" * pad)
                        at += pad
                    offsets.append(at)
                    sizes.append(raw.nbytes)
                    f.write(raw)
                    at += raw.nbytes
        except OSError:  # the RAM file system is full: the usual way
            try:
                os.unlink(path)
            except OSError:
                pass
            return obj
        return Spooled(data, path, tuple(offsets), tuple(sizes))


@dataclass(frozen=True)
class Spooled:
    """A pickled object whose out-of-band buffers lie in ``path`` at ``offsets`` (``sizes`` bytes)."""
    data: bytes
    path: str
    offsets: tuple
    sizes: tuple


def unpack(obj: Any, remove: bool = True) -> Any:
    """The object a :meth:`SpoolTicket.pack` result stands for (anything else is returned as is).
    ``remove``: unlink the spool file once mapped (a result: it is unpacked once); a task's
    arguments stay until the sender :func:`discard` s them, since a task whose worker died is run
    again elsewhere and reads them again."""
    if not isinstance(obj, Spooled):
        return obj
    with open(obj.path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    if remove:
        os.unlink(obj.path)
    view = memoryview(mapped)
    return pickle.loads(obj.data, buffers=[view[o:o + n] for o, n in zip(obj.offsets, obj.sizes)])


def discard(objs, *_) -> None:
    """Unlink the spool files of the :class:`Spooled` among ``objs`` (a task's arguments, when its
    future is done: the extra arguments let it be a ``add_done_callback`` partial)."""
    for obj in objs:
        if isinstance(obj, Spooled):
            try:
                os.unlink(obj.path)
            except OSError:
                pass


def call_spooled(fn: Callable, args: tuple) -> Any:
    """On a worker: ``fn(*args)`` with spooled arguments unpacked (their files kept: see
    :func:`unpack`)."""
    return fn(*[unpack(a, remove=False) for a in args])


def submit_spooled(submit: Callable, task: Callable, ticket: SpoolTicket, fn: Callable, args: tuple,
                   **options) -> Any:
    """``submit(task, fn, packed, **options)`` with ``args`` packed through ``ticket`` (``task``
    runs :func:`call_spooled` on the worker); their spool files go when the returned future is
    done (a pool's or a Dask client's ``submit``)."""
    packed = tuple(ticket.pack(a) for a in args)
    fut = submit(task, fn, packed, **options)
    fut.add_done_callback(functools.partial(discard, packed))
    return fut


def call_chunk(fn: Callable, ticket: SpoolTicket | None, items) -> Any:
    """On a worker: ``[fn(item) for item in items]``, packed through ``ticket`` (an ``imap`` task)."""
    out = [fn(item) for item in items]
    return ticket.pack(out) if ticket is not None else out


class Spool:
    """``with Spool() as spool:`` a fresh spool folder for one run (``spool.ticket`` for the
    workers), removed on exit with what is left in it. Folders of runs whose process has died
    (killed before its exit) are removed when the next one starts."""

    def __init__(self, base: str | None = None):
        self.base = spool_base() if base is None else str(base)
        self.folder: str | None = None
        self.ticket: SpoolTicket | None = None

    def __enter__(self) -> "Spool":
        _remove_orphans(self.base)
        token = f"marker-{uuid.uuid4().hex}"
        try:
            self.folder = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=self.base)
            open(os.path.join(self.folder, token), "wb").close()
        except OSError:  # a read-only or full RAM file system: everything goes the usual way
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
            self.ticket = SpoolTicket(None, None)
            return self
        self.ticket = SpoolTicket(self.folder, token)
        return self

    def __exit__(self, *exc) -> bool:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = self.ticket = None
        return False


def _remove_orphans(base: str) -> None:
    """Remove the spool folders under ``base`` whose creating process no longer runs."""
    try:
        names = [n for n in os.listdir(base) if n.startswith(PREFIX)]
    except OSError:
        return
    for name in names:
        try:
            pid = int(name[len(PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
        except (PermissionError, OSError):
            pass
