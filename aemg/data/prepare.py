"""Raw dataset -> token corpus in one pass: :func:`prepare_dataset` (``aemg prepare``).

:func:`~aemg.data.pipeline.rectify_dataset` reads and rectifies every source (process pool or Dask
cluster, source order) and commits it to the archive; each source's rectified recordings are also
handed, in this process, to a group stream which, as soon as the stream moves on to another
(dataset, subject, session) group (sources are listed sorted, so a group's files are neighbours),
sends the finished group's recordings to the same workers to be tokenized from memory into a staged
shard (one task per group; in this process with one worker). Nothing is read back from the archive,
except on a resumed run (groups that began in an earlier run) and for a group whose sources are not
neighbours: those are tokenized from the finished archive at the end by
:func:`~aemg.tokenizer.corpus.tokenize_archive`, which also writes the plan, the index and
``corpus.json`` and moves the staged shards into place.

The corpus is the one ``aemg rectify`` then ``aemg tokenize`` make: the shards and
``sentences.jsonl`` byte for byte; ``plan.json`` and ``corpus.json`` name the archive they came from
(path, manifest and index digests), so they differ exactly as two rectify runs' archives do (the
manifest holds its creation time). The archive (default: ``OUT.archive`` beside the corpus) is the
resume checkpoint; ``keep_archive=False`` deletes it at the end.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._folder import refuse_foreign
from .._progress import progress_bar
from ..errors import ConfigError
from .archive import INDEX, MANIFEST, index_row, read_archive_json, read_rows
from .pipeline import RectifyReport, rectify_dataset
from .recording import Recording

#: folder inside the archive holding the shards tokenized from memory until they are moved into
#: the corpus (the archive writer leaves other folders alone)
STAGING = ".prepare-shards"


@dataclass
class PrepareReport:
    """What one :func:`prepare_dataset` run did: both stages' reports and where groups came from.

    Attributes
    ----------
    rectify : RectifyReport
    tokenize : TokenizeReport
    groups_from_memory : int
        Groups tokenized from the rectified recordings in memory in this run.
    groups_from_archive : int
        Groups tokenized by reading the archive (resumed, or sources not neighbours).
    seconds : float
        Wall time of the whole run.
    archive : Path or None
        The archive folder (None when deleted at the end).
    """

    rectify: RectifyReport
    tokenize: Any
    groups_from_memory: int
    groups_from_archive: int
    seconds: float
    archive: Path | None

    @property
    def samples_per_s(self) -> float:
        """Raw samples per channel read per second of wall time (both stages; ``rectify.samples_in``)."""
        return self.rectify.samples_in / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """Two lines for the end of ``aemg prepare``."""
        return (f"{self.rectify.summary()}\n{self.tokenize.summary()}\n"
                f"prepare: {self.groups_from_memory} group(s) tokenized from memory, "
                f"{self.groups_from_archive} from the archive; {self.seconds:.1f} s "
                f"({self.samples_per_s:,.0f} raw samples/s)")


class _MemoryArchive:
    """The part of :class:`~aemg.data.archive.Archive` that the tokenizer's group worker uses
    (``index`` rows and ``read_many``), over rectified recordings held in memory."""

    def __init__(self, recordings: list[Recording]):
        self.path = "<memory>"
        self.recordings = recordings
        self.index = [index_row(rec, "", "") for rec in recordings]

    def read_many(self, indices, buffer=None) -> list[Recording]:
        return [self.recordings[i] for i in indices]


def _group_key(dataset, subject, session) -> tuple[str, str, str]:
    return (dataset, str(subject), str(session))  # as aemg.tokenizer.corpus.format.group_key


class _GroupStream:
    """Numbers groups in archive order and tokenizes each complete one from memory, on the run's
    workers once :meth:`attach` gave it the runner (else in this process).

    Parameters
    ----------
    earlier : list of dict
        Index rows already in the archive (resumed run); their groups are left to the archive pass.
    staging : Path
        Where the shards go (``NNNNNN`` = the group's number in the corpus).
    config : TokenizerConfig
    backend : str or None
        Segmentation backend.
    progress : bool
        Show a ``tokenize`` bar (channel-samples) under the rectify bar: its total grows as groups
        are handed to the workers, and it counts each one when its shard is written.
    """

    def __init__(self, earlier: list[dict[str, Any]], staging: Path, config, backend: str | None,
                 progress: bool = False):
        self.numbers: dict[tuple[str, str, str], int] = {}
        for r in earlier:
            self.numbers.setdefault(_group_key(r["dataset"], r["subject"], r["session"]), len(self.numbers))
        self.deferred = set(self.numbers.values())  # -> tokenized from the archive at the end
        self.staging, self.config, self.backend = staging, config, backend
        self.open: tuple[str, str, str] | None = None
        self.recordings: list[Recording] = []
        self.from_memory: set[int] = set()
        self.pending: dict[int, Any] = {}  # group number -> future of its tokenize_group task
        self.submit = None
        self.progress, self.bar = progress, None
        self.sizes: dict[int, int] = {}  # group number -> channel-samples handed over

    def attach(self, runner) -> None:
        """The rectify runner is up (``runner.submit``: tokenize there); None: it is about to stop,
        so tokenize the last group and wait for every group task."""
        if runner is None:
            self.finish()
            self.submit = None
            self.close_bar()
            return
        self.staging.mkdir(exist_ok=True)  # the archive writer has created (or checked) its folder
        check = getattr(runner, "check_visible", None)  # on a cluster: the workers write the shards
        if check is not None:
            check(self.staging, "the archive folder (prepare's shards are written there)")
        self.submit = runner.submit

    def add(self, source: str, recordings: list[Recording]) -> None:
        """The rectified recordings of one source, in archive order."""
        for rec in recordings:
            key = _group_key(rec.dataset, rec.subject, rec.session)
            if key != self.open:
                self._close()
                if key in self.numbers:  # seen before this point: not neighbours, or resumed
                    number = self.numbers[key]
                    self.deferred.add(number)
                    self._wait(number)
                    self._uncount(number)
                    shutil.rmtree(self.staging / f"{number:06d}", ignore_errors=True)
                else:
                    self.numbers[key] = len(self.numbers)
                self.open = key
            if self.numbers[key] not in self.deferred:
                self.recordings.append(rec)
        self._collect()

    def _close(self) -> None:
        if self.open is None or not self.recordings:
            self.open, self.recordings = None, []
            return
        from ..tokenizer.corpus import tokenize_group

        number = self.numbers[self.open]
        shard = self.staging / f"{number:06d}"
        shutil.rmtree(shard, ignore_errors=True)  # left by an interrupted run: redone
        self.staging.mkdir(exist_ok=True)
        args = (_MemoryArchive(self.recordings), list(range(len(self.recordings))), self.config.to_dict(),
                str(shard), self.backend)
        self.sizes[number] = sum(rec.n_channels * rec.n_samples for rec in self.recordings)
        if self.bar is None:
            self.bar = progress_bar(self.progress, total=0, desc="tokenize", unit="sample", unit_scale=True,
                                    smoothing=0.1)
        if self.bar is not None:
            self.bar.total += self.sizes[number]
            self.bar.refresh()
        self.open, self.recordings = None, []
        if self.submit is None:
            self._count(number, tokenize_group(*args))
        else:
            self.pending[number] = self.submit(tokenize_group, *args)

    def _count(self, number: int, result: dict[str, Any]) -> None:
        self.from_memory.add(number)
        if self.bar is not None:
            self.bar.update(result["channel_samples"])

    def _uncount(self, number: int) -> None:
        """Group ``number`` goes to the archive pass after all: off the bar and the counts."""
        size = self.sizes.pop(number, 0)
        if number in self.from_memory:
            self.from_memory.discard(number)
            if self.bar is not None:
                self.bar.update(-size)
        if self.bar is not None and size:
            self.bar.total -= size
            self.bar.refresh()

    def _wait(self, number: int) -> None:
        fut = self.pending.pop(number, None)
        if fut is not None:
            self._count(number, fut.result())  # raises what the task raised

    def _collect(self) -> None:
        """Count the group tasks that have finished without an error (a failed one raises in
        :meth:`finish`, as before), so that the bar moves while the sources are rectified."""
        for number in [n for n, fut in self.pending.items()
                       if fut.done() and not fut.cancelled() and fut.exception() is None]:
            self._wait(number)

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def finish(self) -> None:
        """Tokenize the open group and wait for every group task (raises the first one's error)."""
        self._close()
        for number in sorted(self.pending):
            self._wait(number)


def default_archive(out: str | os.PathLike) -> Path:
    """Where :func:`prepare_dataset` keeps its archive by default: ``OUT.archive`` beside ``OUT``."""
    out = Path(out)
    return out.with_name(out.name + ".archive")


def prepare_dataset(reader, out: str | os.PathLike, space=None, config=None, *,
                    archive: str | os.PathLike | None = None, keep_archive: bool = True,
                    root: str | os.PathLike | None = None, reader_options: dict[str, Any] | None = None,
                    workers: int | None = None, on_error: str = "skip", progress: bool = True,
                    backend: str | None = None, **rectify_options) -> PrepareReport:
    """Rectify and tokenize a dataset in one pass: the corpus of ``rectify`` then ``tokenize``.

    Parameters
    ----------
    reader : str or Reader
        As :func:`~aemg.data.pipeline.rectify_dataset`.
    out : path
        The corpus folder (missing, empty, or a corpus of an earlier run with the same arguments:
        then the run resumes).
    space : StandardSpace or None
    config : TokenizerConfig or None
    archive : path or None
        The archive folder (default :func:`default_archive`); resumed like ``aemg rectify``'s.
    keep_archive : bool
        False: delete the archive once the corpus is complete (a later re-run starts over).
    root, reader_options, workers, on_error
        As :func:`~aemg.data.pipeline.rectify_dataset`; ``workers`` also tokenizes the groups left
        to the archive pass.
    progress : bool
        Progress bars on stderr: ``rectify`` (files) and, under it while rectifying, ``tokenize``
        (channel-samples of the groups tokenized from memory: its total grows as groups are handed
        over); then the archive pass's ``tokenize`` bar over every group, those already tokenized
        counted from the start.
    backend : str or None
        Segmentation backend (``aemg tokenize --backend``).
    **rectify_options
        ``shard_bytes``, ``compression``, ``precision``, ``scheduler`` (a Dask scheduler address: the
        sources are rectified, and groups left to the archive pass tokenized, on the cluster): passed to
        ``rectify_dataset`` (and ``scheduler`` to ``tokenize_archive``).

    Returns
    -------
    PrepareReport

    Raises
    ------
    ConfigError
        ``out`` holds something that is not a corpus, or the archive folder is the corpus folder.
    DataError
        As the two stages (a missing dataset folder, ``on_error="stop"`` and a bad file).
    """
    from ..tokenizer.corpus import PLAN, tokenize_archive
    from ..tokenizer.tokens import TokenizerConfig

    t0 = time.perf_counter()
    config = TokenizerConfig() if config is None else config
    out = Path(out)
    archive = default_archive(out) if archive is None else Path(archive)
    if archive.resolve() == out.resolve():
        raise ConfigError(f"{out}: the corpus and the archive need two folders (give another --archive)")
    if not (out / PLAN).is_file():
        refuse_foreign(out, PLAN, "a token corpus")
    earlier = read_rows(read_archive_json(archive / INDEX)) if (archive / MANIFEST).is_file() and \
        (archive / INDEX).is_file() else []
    staging = archive / STAGING
    stream = _GroupStream(earlier, staging, config, backend, progress)
    try:
        rect = rectify_dataset(reader, archive, space, root=root, reader_options=reader_options,
                               workers=workers, on_error=on_error, progress=progress,
                               on_source=lambda s, r: stream.add(s, r), on_runner=stream.attach,
                               **rectify_options)
    finally:
        stream.close_bar()
    stream.finish()  # nothing left, unless the rectify stage had nothing to do
    tok = tokenize_archive(archive, out, config, workers=workers, progress=progress, backend=backend,
                           staged=staging, scheduler=rectify_options.get("scheduler"))
    shutil.rmtree(staging, ignore_errors=True)
    kept: Path | None = archive
    if not keep_archive:
        shutil.rmtree(archive)
        kept = None
    done_before = tok.groups_done_before
    from_memory = len(stream.from_memory)
    return PrepareReport(rectify=rect, tokenize=tok, groups_from_memory=from_memory,
                         groups_from_archive=max(0, tok.groups - done_before),
                         seconds=time.perf_counter() - t0, archive=kept)
