"""The on-disk archive of rectified recordings: a crash-safe folder of HDF5 shards.

Layout (format ``aemg-archive``, version 2)::

    OUT/
      manifest.json      written once when the archive is created, never changed afterwards:
                         {"format", "version", "aemg_version", "created", "reader",
                          "reader_options", "source_root", "space" (StandardSpace dict),
                          "precision" ("float32" or "float64": the arithmetic that made the
                          samples; absent before session 6, i.e. "float64"),
                          "amplitude_scale", "shard_bytes", "compression", and "native_rate"
                          when the dataset is logged irregularly (the one rate that bounds every
                          recording's band, see aemg.data.rectify.dataset_native_rate)}
      index.json         the commit record, replaced atomically after every shard:
                         {"format", "version", "complete",
                          "sources":    [{"source", "recordings", "error"}]   (every finished source)
                          "recordings": [row, ...],                           (one row per recording)
                          "shards":     {"shards/000001.h5": {"bytes", "crc32", "sources"}}}
                         (the size and checksum of each committed shard: a resumed run verifies
                         them and reads the sources of a missing, truncated or changed shard again;
                         archives written before session 6 record "sha256", still verified)
      errors.jsonl       one {"source", "problem"} line per source that failed (a copy of the
                         failed ``sources`` entries, for people and ``grep``)
      shards/000001.h5   HDF5, the shard's recordings stored one after the other:
                           samples  (S,) float32   every recording's (C, T) channel-samples in C
                                                   order (the dataset keeps its format-1 name)
                           labels   (S_l,) int32   per-sample labels of the recordings having them
                           times    (S_t,) float64 timestamps of the irregular recordings
                           layout   (n, 5) int64   per recording: offset in ``samples``, C, T,
                                                   labels offset, times offset (-1 = none)
                           headers  (B,) uint8     UTF-8 JSON {"devices": [Device dicts],
                                                   "headers": [Recording.header() with "device"
                                                   = index into "devices"]}

A whole shard (or any run of its recordings) is read with one call per array, and each
:class:`Recording` is a view of that buffer (:meth:`Archive.read_many`): no per-recording HDF5
object or attribute. The headers document is not parsed whole when a process reads a few of a
shard's recordings: :func:`split_headers` locates each recording's header in it (one NumPy scan)
and only the headers read are parsed (in blocks of :data:`HEADER_BLOCK` neighbours). Version 1
(one HDF5 group per recording) is still read: an archive costs hours of reading and rectifying to
remake, and its reader is two short functions (:func:`read_group`, the version-1 branches of
:class:`Archive`) covered by a test.

An index row holds ``key, dataset, subject, session, trial, device, n_channels, label, classes,
n_samples`` (time samples per channel), ``rate, source`` and where the samples are: ``shard`` (path
relative to OUT) and ``position`` (the recording's position in that shard, ``"000000"``,
``"000001"``, ...; in a version-1 shard the name of its HDF5 group). Archives written before
issue 11 call it ``group``: :func:`read_rows` renames it when reading (and a resumed run writes
the new name).

Crash safety: a shard is written to ``shards/NNNNNN.h5.tmp``, flushed to disk (fsync) and renamed;
only then is ``index.json`` rewritten (temp file, fsync, rename). The index therefore only ever
names complete shards, and a source counts as done only once all its recordings are in such a
shard. A new archive's index (and errors.jsonl) is first written with its first commit: a folder
holding only the manifest is an empty, incomplete archive to every reader, ``aemg verify`` and a
resumed run. A run killed at any point leaves a readable archive (of the sources committed so far);
re-opening it for writing deletes leftover ``*.tmp`` files and any shard the index does not name,
and the sources not in the index are processed again, as are the sources that failed (a fixed file
gets archived; one still bad is logged again).
"""
from __future__ import annotations

import datetime
import errno
import json
import os
import re
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import h5py
import numpy as np

from .._folder import dumps as _dumps
from .._folder import field_differences, identity_error, is_temp, remove_leftovers, select_rows, stored_marker
from .._io import atomic_write, check_format, digest_problem, file_digest, fsync_dir, fsync_file, read_json
from .._version import __version__
from ..errors import DataError
from .devices import device_from_dict
from .paths import natural_key
from .recording import Recording

FORMAT = "aemg-archive"
VERSION = 2
#: format versions this module reads (1: one HDF5 group per recording)
READ_VERSIONS = (1, 2)
MANIFEST = "manifest.json"
INDEX = "index.json"
ERRORS = "errors.jsonl"
SHARDS = "shards"
#: values per HDF5 chunk when a shard is compressed (1 MiB of float32); uncompressed shards are
#: contiguous (fastest to read)
CHUNK_VALUES = 1 << 18
#: columns of a version-2 shard's ``layout`` table
LAYOUT = ("offset", "n_channels", "n_samples", "labels_offset", "times_offset")
#: runs of wanted recordings closer than this many bytes are read with one call
_MERGE_GAP_BYTES = 1 << 20
#: default bound on the samples held in one shard, bytes of float32 (64 MiB)
DEFAULT_SHARD_BYTES = 64 << 20
#: manifest fields that must match when an existing archive is resumed
IDENTITY_FIELDS = ("format", "version", "aemg_version", "reader", "reader_options", "source_root",
                   "space", "precision")
#: checksum recorded per committed shard (:func:`aemg._io.file_digest`): crc32 finds truncation,
#: torn writes and swapped files as sha256 does, at about half its cost (docs/notes/rectify.md,
#: Session 6); no security claim is made for either
SHARD_DIGEST = "crc32"
#: ``precision`` of a manifest written before the field (those archives were made in float64)
OLD_PRECISION = "float64"
INDEX_FIELDS = ("key", "dataset", "subject", "session", "trial", "device", "n_channels", "label",
                "classes", "n_samples", "rate", "source", "shard", "position")
#: the name of ``position`` in index rows written before issue 11 (still read)
OLD_POSITION = "group"

_SHARD_NAME = re.compile(r"^(\d{6})\.h5$")


# -- small file helpers ----------------------------------------------------------------------------
def read_archive_json(path: Path) -> Any:
    """An archive's manifest.json or index.json (DataError naming it when missing or corrupt)."""
    return read_json(path, missing="missing (not an aemg archive, or created by an interrupted run "
                                   "before its first commit)")


def read_rows(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The index rows of an index.json ``state``, with ``position`` under its current name
    (rows of archives written before issue 11 call it ``group``; renamed in place)."""
    rows = state["recordings"]
    for r in rows:
        if OLD_POSITION in r and "position" not in r:
            r["position"] = r.pop(OLD_POSITION)
    return rows


def index_row(rec: Recording, shard: str, position: str) -> dict[str, Any]:
    """The index row of ``rec`` stored in ``shard`` (path relative to the archive) at ``position``."""
    return {"key": rec.key, "dataset": rec.dataset, "subject": rec.subject, "session": rec.session,
            "trial": rec.trial, "device": rec.device.name, "n_channels": rec.n_channels,
            "label": rec.label, "classes": list(rec.classes), "n_samples": rec.n_samples,
            "rate": rec.rate, "source": rec.source, "shard": shard, "position": position}


def _concat(parts: list[np.ndarray], dtype) -> np.ndarray:
    out = np.empty(sum(p.size for p in parts), dtype)
    pos = 0
    for p in parts:
        out[pos:pos + p.size] = p.reshape(-1)
        pos += p.size
    return out


def write_shard(path: Path, recordings: Sequence[Recording], *, compression: str | None = None) -> None:
    """Write ``recordings`` to a new shard at ``path`` atomically (``path.tmp``, fsync, rename).

    The samples of every recording go into one flat ``samples`` array (likewise labels and times),
    located by the ``layout`` table; the headers are one JSON document (see the module docstring).
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    layout = np.full((len(recordings), len(LAYOUT)), -1, np.int64)
    samples, labels, times = [], [], []
    n_channel_samples = n_labels = n_times = 0
    devices: dict[str, int] = {}
    by_object: dict[int, int] = {}  # id(device) -> index into device_dicts: one JSON per device object
    device_dicts, headers = [], []
    for i, rec in enumerate(recordings):
        n_ch, n_t = rec.data.shape
        layout[i, :3] = (n_channel_samples, n_ch, n_t)
        samples.append(rec.data)
        n_channel_samples += rec.data.size
        if rec.labels is not None:
            layout[i, 3] = n_labels
            labels.append(rec.labels)
            n_labels += rec.labels.size
        if rec.times is not None:
            layout[i, 4] = n_times
            times.append(rec.times)
            n_times += rec.times.size
        header = rec.header()
        index = by_object.get(id(rec.device))  # the recordings keep their devices alive
        if index is None:
            device_json = _dumps(header["device"], sort_keys=True)
            if device_json not in devices:
                devices[device_json] = len(device_dicts)
                device_dicts.append(header["device"])
            index = by_object[id(rec.device)] = devices[device_json]
        header["device"] = index
        headers.append(header)
    meta = np.frombuffer(_dumps({"devices": device_dicts, "headers": headers}).encode("utf-8"), np.uint8)
    try:
        _write_h5(tmp, samples, labels, times, layout, meta, compression)
        fsync_file(tmp)
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, no permission: name the shard, leave no temp file
        tmp.unlink(missing_ok=True)
        code = exc.errno or errno.EIO
        raise OSError(code, os.strerror(code) if exc.errno else str(exc), str(path)) from None
    fsync_dir(path.parent)


def _write_and_digest(path: Path, recordings: Sequence[Recording],
                      compression: str | None) -> tuple[int, str]:
    """:func:`write_shard` to ``path``, then its size and checksum (what the index records)."""
    write_shard(path, recordings, compression=compression)
    return file_digest(path, SHARD_DIGEST)


def _write_h5(tmp: Path, samples: list, labels: list, times: list, layout: np.ndarray, meta: np.ndarray,
              compression: str | None) -> None:
    """The HDF5 file of :func:`write_shard` at ``tmp``."""
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        for name, parts, dtype in (("samples", samples, np.float32), ("labels", labels, np.int32),
                                   ("times", times, np.float64)):
            arr = _concat(parts, dtype)
            chunked = compression is not None and arr.size > 0
            f.create_dataset(name, data=arr, chunks=(min(arr.size, CHUNK_VALUES),) if chunked else None,
                             compression=compression if chunked else None)
        f.create_dataset("layout", data=layout)
        f.create_dataset("headers", data=meta)


class ReadBuffer:
    """A reusable buffer for :meth:`Archive.read_many` (``buffer=``).

    Reading many groups of recordings into fresh arrays costs page faults and kernel page zeroing
    on every read (h5py into a new array: ~1.3 GB/s here); reading into one warm buffer with
    ``pread`` runs at ~4 GB/s and keeps a group's samples in the CPU cache for what follows.
    Recordings read through a buffer are views of it: the next read through the same buffer
    overwrites them.
    """

    def __init__(self) -> None:
        self._bytes = np.empty(0, np.uint8)

    def take(self, nbytes: int) -> np.ndarray:
        """``nbytes`` of the buffer (uint8, aligned), grown by half again when too small."""
        if self._bytes.nbytes < nbytes:
            self._bytes = np.empty(max(int(nbytes), self._bytes.nbytes * 3 // 2), np.uint8)
        return self._bytes[:nbytes]


def _pread_exact(fd: int, out: np.ndarray, offset: int, where: str) -> None:
    """Fill ``out`` (a contiguous array) from file ``fd`` at byte ``offset``."""
    view, done = memoryview(out).cast("B"), 0
    while done < view.nbytes:
        n = os.preadv(fd, [view[done:]], offset + done)
        if n <= 0:
            raise DataError(where, f"shard ends early: {done} of {view.nbytes} bytes at offset {offset}")
        done += n


#: per byte value: +1 opens ({ [), -1 closes (} ]), 0 otherwise; and which bytes are structural
_DEPTH_STEP = np.zeros(256, np.int64)
_DEPTH_STEP[[ord("{"), ord("[")]] = 1
_DEPTH_STEP[[ord("}"), ord("]")]] = -1
_STRUCTURAL = _DEPTH_STEP != 0
_STRUCTURAL[ord(",")] = True


def split_headers(raw: bytes) -> tuple[dict[str, Any], list[tuple[int, int]]] | None:
    """Locate the elements of a shard's ``"headers"`` array without parsing them.

    ``raw`` is a shard's UTF-8 headers document ``{"devices": [...], "headers": [h0, h1, ...]}``.
    Returns ``(document parsed with that array emptied, [(start, end) byte span of each h_i]``), or
    None when the bytes are not laid out so (the caller then parses the document whole, which
    raises on bad JSON). One linear NumPy scan: quotes not preceded by an odd run of backslashes
    delimit strings; the brackets outside strings give each structural byte's nesting depth; the
    array's elements are separated by its commas at depth 2. The reference is
    ``json.loads(raw)["headers"]``: ``json.loads(raw[a:b])`` for each span gives the same elements.
    """
    b = np.frombuffer(raw, np.uint8)
    quotes = np.flatnonzero(b == ord('"'))
    if quotes.size and b"\\" in raw:  # drop escaped quotes: after an odd run of backslashes (rare)
        escaped = []
        for q in quotes[(quotes > 0) & (b[quotes - 1] == ord("\\"))].tolist():
            k = q - 1
            while k >= 0 and raw[k] == ord("\\"):
                k -= 1
            if (q - 1 - k) % 2:
                escaped.append(q)
        quotes = np.setdiff1d(quotes, escaped, assume_unique=True) if escaped else quotes
    if quotes.size % 2:
        return None
    at = np.flatnonzero(_STRUCTURAL.take(b))
    at = at[np.searchsorted(quotes, at) % 2 == 0]                   # structural bytes outside strings
    depth = np.cumsum(_DEPTH_STEP.take(b[at]))                            # depth after each of them
    start = 0
    while (p := raw.find(b'"headers"', start)) >= 0:                 # the key "headers" at depth 1
        start = p + 1
        k = int(np.searchsorted(quotes, p))
        if k % 2 or k >= quotes.size or quotes[k] != p or quotes[k + 1] != p + 8:
            continue                                                 # inside a string, or not a string
        j = int(np.searchsorted(at, p))
        if j == 0 or depth[j - 1] != 1 or j >= at.size or raw[p + 9:at[j]].strip() != b":" \
                or b[at[j]] != ord("["):
            continue
        ends = np.flatnonzero(depth[j:] == 1)                        # its closing bracket
        if not ends.size:
            return None
        e = j + int(ends[0])
        if b[at[e]] != ord("]"):
            return None
        commas = at[j + 1:e][(b[at[j + 1:e]] == ord(",")) & (depth[j + 1:e] == 2)]
        bounds = [int(at[j])] + commas.tolist() + [int(at[e])]
        spans = [(lo + 1, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
        if len(spans) == 1 and not raw[spans[0][0]:spans[0][1]].strip():
            spans = []
        try:
            rest = json.loads(raw[:bounds[0] + 1] + raw[bounds[-1]:])
        except ValueError:
            return None
        if not isinstance(rest, dict) or rest.get("headers") != [] \
                or not isinstance(rest.get("devices"), list):
            return None                                              # e.g. a second "headers" key
        return rest, spans
    return None


#: headers parsed together on first access (one ``json.loads`` per block of neighbours: a worker
#: reading a group parses a few blocks, a reader of the whole shard about one document's worth)
HEADER_BLOCK = 32


class _LazyHeaders(Sequence):
    """A shard's recording headers, parsed on first access: the document is scanned once
    (:func:`split_headers`) and each recording's header parsed with its block of
    :data:`HEADER_BLOCK` neighbours. A first read in the shard's first block, or of at least half
    the shard (:meth:`expect`), parses the whole document instead, without the scan (whoever starts
    at the beginning usually reads on in order: the scan would be extra work). Errors (DataError
    naming the shard) come with the first read."""

    def __init__(self, raw: bytes, n: int, where: str):
        self._raw, self._n, self._where = raw, n, where
        self._spans: list[tuple[int, int]] | None = None
        self._parsed: list[dict[str, Any] | None] = [None] * n
        self._devices: list | None = None

    def __len__(self) -> int:
        return self._n

    @property
    def devices(self) -> list:
        """The document's ``devices`` list (dicts)."""
        if self._devices is None:
            self._scan()
        return self._devices  # type: ignore[return-value]

    def expect(self, n_reads: int) -> None:
        """About to read ``n_reads`` recordings: if nothing is parsed yet and that is at least half
        of the shard, parse the whole document at once."""
        if self._devices is None and 2 * n_reads >= self._n:
            try:
                self._whole()
            except DataError:
                pass  # a bad document: per block (a bad header raises when it is read)

    def _mismatch(self, k: int) -> DataError:
        return DataError(self._where, f"shard layout ({self._n}, {len(LAYOUT)}) does not match its "
                                      f"{k} headers")

    def _whole(self) -> None:
        try:
            meta = json.loads(self._raw)
            headers, devices = meta["headers"], meta["devices"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(self._where, f"unreadable shard ({exc})") from None
        if not isinstance(headers, list) or len(headers) != self._n:
            raise self._mismatch(len(headers) if isinstance(headers, list) else 0)
        if not all(isinstance(h, dict) for h in headers) or not isinstance(devices, list):
            raise DataError(self._where, "unreadable shard (headers are not JSON objects)")
        self._parsed, self._devices = headers, devices

    def _scan(self) -> None:
        split = split_headers(self._raw)
        if split is None:  # not laid out as the writer lays it out: parse it whole (raises if bad)
            self._whole()
            return
        rest, spans = split
        if len(spans) != self._n:
            raise self._mismatch(len(spans))
        self._spans, self._devices = spans, rest["devices"]

    def __getitem__(self, i: int) -> dict[str, Any]:  # type: ignore[override]
        header = self._parsed[i]
        if header is None:
            if self._devices is None and i < HEADER_BLOCK:  # a first read at the start (a reader
                try:                                         # going through the shard in order)
                    self._whole()
                    return self._parsed[i]  # type: ignore[return-value]
                except DataError:
                    pass  # a bad document: per block below (a bad header raises when it is read)
            if self._spans is None:
                self._scan()
                if self._spans is None:  # parsed whole
                    return self._parsed[i]  # type: ignore[return-value]
            spans = self._spans
            lo = i // HEADER_BLOCK * HEADER_BLOCK
            hi = min(lo + HEADER_BLOCK, len(spans))
            try:  # the bytes between two spans are their comma: a block is a JSON array's body
                block = json.loads(b"[" + self._raw[spans[lo][0]:spans[hi - 1][1]] + b"]")
            except ValueError:
                block = None
            if block is not None and len(block) == hi - lo and all(isinstance(h, dict) for h in block):
                self._parsed[lo:hi] = block
                return block[i - lo]
            header = self._parse_one(i)   # a bad header in the block: this one alone (raises if bad)
            self._parsed[i] = header
        return header

    def _parse_one(self, i: int) -> dict[str, Any]:
        a, b = self._spans[i]  # type: ignore[index]
        try:
            header = json.loads(self._raw[a:b])
        except ValueError as exc:
            raise DataError(self._where, f"unreadable header of recording {i} ({exc})") from None
        if not isinstance(header, dict):
            raise DataError(self._where, f"header of recording {i} is not a JSON object")
        return header


class _ShardTable:
    """The layout and headers of one version-2 shard (read once per open shard). Each recording's
    header is parsed when that recording is first read (:class:`_LazyHeaders`): a process reading a
    few recordings of a shard does not parse the headers of all of them."""

    def __init__(self, f: h5py.File, where: str):
        self.where, self._fd = where, -1
        try:
            self.layout = f["layout"][()]
            self.headers = _LazyHeaders(f["headers"][()].tobytes(), len(self.layout), where)
            self.channel_samples, self.labels, self.times = f["samples"], f["labels"], f["times"]
            # byte offset of the samples when stored contiguous, unfiltered, little-endian float32
            # (what write_shard makes without compression): then read_run can pread them directly
            self._samples_at = self.channel_samples.id.get_offset() if self.channel_samples.chunks is None \
                and self.channel_samples.dtype == np.dtype("<f4") else None
        except (KeyError, OSError, ValueError, TypeError) as exc:
            raise DataError(where, f"unreadable shard ({exc})") from None
        if self.layout.ndim != 2 or self.layout.shape[1] != len(LAYOUT):
            raise DataError(where, f"shard layout {self.layout.shape} is not (recordings, {len(LAYOUT)})")
        self._devices: list | None = None

    @property
    def devices(self) -> list:
        """The shard's devices (index ``header["device"]``), converted on first use."""
        if self._devices is None:
            try:
                self._devices = [device_from_dict(d) for d in self.headers.devices]
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(self.where, f"unreadable shard ({exc})") from None
        return self._devices

    def __len__(self) -> int:
        return len(self.headers)

    def span(self, i: int) -> tuple[int, int]:
        """[start, end) of recording ``i`` in the flat ``samples`` array."""
        off, c, t = (int(v) for v in self.layout[i, :3])
        return off, off + c * t

    def recording(self, i: int, samples: np.ndarray, labels: np.ndarray | None,
                  times: np.ndarray | None, where: str) -> Recording:
        """Recording ``i`` from flat ``samples`` / ``labels`` / ``times`` buffers starting at its
        own first value (views, no copy)."""
        _, c, t, lo, to = (int(v) for v in self.layout[i])
        header = dict(self.headers[i])
        try:
            header["device"] = self.devices[header["device"]]
            header["classes"] = tuple(header.get("classes", ()))
            return Recording(data=samples[:c * t].reshape(c, t),
                             labels=None if lo < 0 else labels[:t],
                             times=None if to < 0 else times[:t], **header)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise DataError(where, f"unreadable recording ({exc})") from None

    def read(self, i: int, where: str) -> Recording:
        """Recording ``i`` read on its own (one slice per array)."""
        a, b = self.span(i)
        _, _, t, lo, to = (int(v) for v in self.layout[i])
        try:
            return self.recording(i, self.channel_samples[a:b], None if lo < 0 else self.labels[lo:lo + t],
                                  None if to < 0 else self.times[to:to + t], where)
        except OSError as exc:
            raise DataError(where, f"unreadable recording ({exc})") from None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _read_channel_samples(self, lo: int, hi: int, buffer: ReadBuffer | None) -> np.ndarray:
        """Flat samples [lo, hi): with ``pread`` into ``buffer`` when the layout allows, else h5py."""
        if buffer is None or self._samples_at is None or hi <= lo:
            return self.channel_samples[lo:hi]
        if self._fd < 0:
            self._fd = os.open(self.where, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        out = buffer.take((hi - lo) * 4).view(np.float32)
        _pread_exact(self._fd, out, self._samples_at + lo * 4, self.where)
        return out

    def read_run(self, positions: Sequence[int], where: str,
                 buffer: ReadBuffer | None = None) -> list[Recording]:
        """Recordings at ``positions`` (sorted) read with one call per array covering them all
        (the samples into ``buffer`` when given, see :class:`ReadBuffer`)."""
        self.headers.expect(len(positions))
        lay = self.layout[np.asarray(positions, np.int64)]
        lo_s = int(lay[:, 0].min())
        hi_s = int((lay[:, 0] + lay[:, 1] * lay[:, 2]).max())
        try:
            samples = self._read_channel_samples(lo_s, hi_s, buffer)
            bufs = {}
            for col, ds in ((3, self.labels), (4, self.times)):
                have = lay[:, col] >= 0
                if have.any():
                    a = int(lay[have, col].min())
                    b = int((lay[have, col] + lay[have, 2]).max())
                    bufs[col] = (a, ds[a:b])
        except OSError as exc:
            raise DataError(where, f"unreadable shard ({exc})") from None
        out = []
        for i, row in zip(positions, lay):
            lab = tim = None
            if row[3] >= 0:
                a, buf = bufs[3]
                lab = buf[int(row[3]) - a:]
            if row[4] >= 0:
                a, buf = bufs[4]
                tim = buf[int(row[4]) - a:]
            out.append(self.recording(i, samples[int(row[0]) - lo_s:], lab, tim, f"{where}:{i:06d}"))
        return out


def read_shard(path: str | os.PathLike) -> list[Recording]:
    """Every recording of a version-2 shard file, in order (inverse of :func:`write_shard`)."""
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(path, f"unreadable shard ({exc})") from None
    with f:
        table = _ShardTable(f, str(path))
        return table.read_run(list(range(len(table))), str(path)) if len(table) else []


def read_group(grp: h5py.Group, where: str) -> Recording:
    """The :class:`Recording` stored in one group of a version-1 shard (one group per recording)."""
    try:
        header = json.loads(grp.attrs["header"])
        data = grp["samples"][()]
        labels = grp["labels"][()] if "labels" in grp else None
        times = grp["times"][()] if "times" in grp else None
    except (KeyError, OSError, ValueError) as exc:
        raise DataError(where, f"unreadable recording ({exc})") from None
    return Recording.from_header(header, data, labels, times)


# -- writing -----------------------------------------------------------------------------------------
class ArchiveWriter:
    """Append-only writer of an archive folder; resumes an interrupted one.

    Recordings are buffered per finished source with :meth:`add` and committed as one shard when the
    buffer holds ``shard_bytes`` of samples (a source's recordings never straddle two shards, so a
    shard may exceed the bound by one source). :meth:`commit` forces a commit; :meth:`finish`
    commits and marks the archive complete.

    Parameters
    ----------
    path : path
        The archive folder (created if missing; an existing non-archive folder must be empty).
    manifest : dict
        Run description; when ``path`` already holds an archive, its :data:`IDENTITY_FIELDS` must
        equal the stored ones (else ConfigError) and the stored manifest is kept.
    """

    def __init__(self, path: str | os.PathLike, manifest: dict[str, Any], *, background: bool = False):
        self.path = Path(path)
        self.shard_dir = self.path / SHARDS
        #: a full buffer's shard is written (and fsynced, and its checksum taken) by a thread while
        #: the caller goes on; it enters the index at the next commit, or when the next shard starts
        self.background = bool(background)
        self._inflight: tuple[threading.Thread, list, str, dict] | None = None
        manifest = json.loads(_dumps({"format": FORMAT, "version": VERSION, "aemg_version": __version__,
                                      **manifest}))
        manifest_path = self.path / MANIFEST
        stored = stored_marker(self.path, MANIFEST, "an aemg archive", read_archive_json)
        if stored is not None:
            held = stored if "precision" not in manifest else {"precision": OLD_PRECISION, **stored}
            diff = [d + (" (rectify's --precision; an archive never mixes the two)"
                         if d.startswith("precision:") else "")
                    for d in field_differences(held, manifest, IDENTITY_FIELDS, "archive")]
            if diff:
                raise identity_error(self.path, "an archive made with other settings", diff, "output folder")
            self.manifest = stored
            self.resumed = True
        else:
            self.shard_dir.mkdir(parents=True, exist_ok=True)
            manifest.setdefault("created", datetime.datetime.now(datetime.timezone.utc)
                                .isoformat(timespec="seconds"))
            atomic_write(manifest_path, _dumps(manifest, indent=1) + "\n")
            self.manifest = manifest
            self.resumed = False
        self.shard_dir.mkdir(exist_ok=True)
        self.shard_bytes = int(self.manifest.get("shard_bytes") or DEFAULT_SHARD_BYTES)
        self.compression = self.manifest.get("compression")
        state = read_archive_json(self.path / INDEX) if (self.path / INDEX).is_file() else None
        self.sources: list[dict[str, Any]] = list(state["sources"]) if state else []
        #: rows of an archive written before issue 11 (``group``): renamed on disk at once
        renamed = bool(state) and any(OLD_POSITION in r for r in state["recordings"])
        self.rows: list[dict[str, Any]] = list(read_rows(state)) if state else []
        self.complete = bool(state and state.get("complete"))
        #: size, checksum and sources of every committed shard (absent in archives made before them)
        self.shards: dict[str, dict[str, Any]] = dict(state.get("shards") or {}) if state else {}
        #: "shard: problem" for each committed shard found missing, truncated or changed; their
        #: sources are dropped from the index and done again
        self.damaged = self._drop_damaged()
        #: sources committed without error (failed ones are retried by a resumed run)
        self.done = {s["source"] for s in self.sources if s["error"] is None}
        self._keys = {r["key"]: r["source"] for r in self.rows}
        self.cleaned = self._clean()
        self._pending: list[tuple[str, list[Recording], str | None]] = []
        self._pending_bytes = 0
        self._next = 1 + max((int(m.group(1)) for p in self.shard_dir.iterdir()
                              if (m := _SHARD_NAME.match(p.name))), default=0)
        #: the text of errors.jsonl as this writer last wrote it (None: not yet)
        self._errors_written: str | None = None
        # a new archive gets its index (and errors.jsonl) with its first commit: a folder holding a
        # manifest and no index reads as an empty, incomplete archive (Archive, verify_archive, a
        # resumed writer), which is what an index written now would say
        if self.damaged or renamed:
            self._write_index()

    def _drop_damaged(self) -> list[str]:
        """Verify every shard the index names against its recorded size and checksum; forget the
        bad ones (and their sources, which a resumed run then reads again); return the problems."""
        bad = {}
        for shard in sorted({r["shard"] for r in self.rows}):
            problem = digest_problem(self.path / shard, self.shards.get(shard))
            if problem is not None:
                bad[shard] = problem
        if not bad:
            return []
        redo = {r["source"] for r in self.rows if r["shard"] in bad}
        redo |= {src for shard in bad for src in self.shards.get(shard, {}).get("sources", ())}
        self.rows = [r for r in self.rows if r["shard"] not in bad]
        self.sources = [s for s in self.sources if s["source"] not in redo]
        for shard in bad:
            self.shards.pop(shard, None)
        self.complete = False
        return [f"{shard}: {problem}" for shard, problem in bad.items()]

    def _clean(self) -> list[str]:
        """Delete temp files and shards the index does not name; return their names."""
        named = {r["shard"] for r in self.rows}

        def unnamed(p: Path) -> bool:
            return is_temp(p) or (bool(_SHARD_NAME.match(p.name))
                                  and p.relative_to(self.path).as_posix() not in named)

        removed = remove_leftovers(self.path, is_temp) + remove_leftovers(self.shard_dir, unnamed)
        return [p.relative_to(self.path).as_posix() for p in removed]

    # -- adding ------------------------------------------------------------------------------
    def add(self, source: str, recordings: Iterable[Recording] = (), error: str | None = None) -> str | None:
        """Buffer one finished ``source``: its (rectified) ``recordings``, or the ``error`` it raised.

        A recording whose key is already in the archive turns the source into an error (keys must be
        unique); the recordings of a failed source are not stored. Returns the source's error (None
        when it is fine).
        """
        recordings = list(recordings)
        if error is None:
            seen: dict[str, str] = {}
            for rec in recordings:
                other = self._keys.get(rec.key) or seen.get(rec.key)
                if other is not None:
                    error = (f"recording key {rec.key!r} is not unique (also from "
                             f"{'this source' if other == source else other})")
                    break
                seen[rec.key] = source
        if error is not None:
            recordings = []
        for rec in recordings:
            self._keys[rec.key] = source
        self._pending.append((source, recordings, error))
        self._pending_bytes += sum(rec.data.nbytes for rec in recordings)
        if self._pending_bytes >= self.shard_bytes:
            if self.background:
                self._commit_in_background()
            else:
                self.commit()
        return error

    def commit(self, *, complete: bool = False) -> str | None:
        """Write the buffered recordings as one shard, then the index; return the shard's path.
        ``complete``: the index written marks the archive complete (:meth:`finish`). A shard still
        being written in the background is waited for (and indexed) first."""
        self.wait()
        if not self._pending:
            if complete and not self.complete:
                self.complete = True
                self._write_index()
            return None
        recordings = [rec for _, recs, _ in self._pending for rec in recs]
        shard = digest = None
        if recordings:  # on an error (or Ctrl-C) here the buffer stays for the next commit
            shard = f"{SHARDS}/{self._next:06d}.h5"
            digest = _write_and_digest(self.path / shard, recordings, self.compression)
            self._next += 1
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        self.complete = self.complete or complete
        self._record(pending, shard, digest)
        return shard

    def _record(self, pending: list, shard: str | None, digest: tuple[int, str] | None) -> None:
        """Enter the sources of ``pending`` (and their recordings, in ``shard`` of size and checksum
        ``digest``) into the index, and write it."""
        if shard is not None:
            self.shards[shard] = {"bytes": digest[0], SHARD_DIGEST: digest[1],
                                  "sources": [src for src, recs, _ in pending if recs]}
        retried = {source for source, _, _ in pending}
        self.sources = [s for s in self.sources if s["source"] not in retried]
        i = 0
        for source, recs, error in pending:
            for rec in recs:
                self.rows.append(index_row(rec, shard, f"{i:06d}"))
                i += 1
            self.sources.append({"source": source, "recordings": len(recs), "error": error})
            if error is None:
                self.done.add(source)
        self._write_index()

    def _commit_in_background(self) -> None:
        """Hand the full buffer to a shard-writing thread (after the previous one is indexed)."""
        self.wait()
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        recordings = [rec for _, recs, _ in pending for rec in recs]
        if not recordings:  # failed sources only: nothing to write
            self._record(pending, None, None)
            return
        shard, box = f"{SHARDS}/{self._next:06d}.h5", {}
        self._next += 1

        def work():
            try:
                box["digest"] = _write_and_digest(self.path / shard, recordings, self.compression)
            except BaseException as exc:  # noqa: BLE001 - raised in the caller by wait()
                box["error"] = exc

        thread = threading.Thread(target=work, name=f"aemg-commit-{shard}", daemon=True)
        thread.start()
        self._inflight = (thread, pending, shard, box)

    def wait(self) -> None:
        """Wait for the shard being written in the background (if any) and index it; raise what
        its writing raised (its sources are then not in the index: a resumed run reads them again)."""
        if self._inflight is None:
            return
        thread, pending, shard, box = self._inflight
        thread.join()
        self._inflight = None
        if "error" in box:
            raise box["error"]
        self._record(pending, shard, box["digest"])

    def finish(self) -> None:
        """Commit what is buffered and mark the archive complete (one index write)."""
        self.commit(complete=True)

    def _write_index(self) -> None:
        """index.json, then errors.jsonl when its text changed (a copy of the index's failed
        sources: rewriting the same text is a wasted fsync per commit). Both durable: fsynced,
        renamed, folder fsynced."""
        state = {"format": FORMAT, "version": VERSION, "complete": self.complete,
                 "sources": self.sources, "recordings": self.rows,
                 "shards": {k: self.shards[k] for k in sorted(self.shards)}}
        atomic_write(self.path / INDEX, _dumps(state, separators=(",", ":")) + "\n")
        errors = "".join(_dumps({"source": s["source"], "problem": s["error"]}) + "\n"
                         for s in self.sources if s["error"] is not None)
        if errors != self._errors_written:
            atomic_write(self.path / ERRORS, errors)
            self._errors_written = errors


# -- reading -----------------------------------------------------------------------------------------
class Archive:
    """Read access to an archive folder (see :func:`open_archive`).

    A sequence of :class:`Recording`: ``len(archive)``, ``archive[i]``, iteration in index order,
    :meth:`get` by key and :meth:`select` for a filtered view sharing the same files. HDF5 files are
    opened lazily and reopened after a fork, so an archive can be handed to worker processes.
    """

    def __init__(self, path: str | os.PathLike, _rows: list[dict[str, Any]] | None = None,
                 _state: tuple[dict, dict] | None = None):
        self.path = Path(path)
        if _state is None:
            if not (self.path / MANIFEST).is_file():
                where = self.path if self.path.is_dir() else self.path
                raise DataError(where, "not an aemg archive (no manifest.json)" if self.path.is_dir()
                                else "archive folder not found")
            manifest = read_archive_json(self.path / MANIFEST)
            check_format(manifest, self.path / MANIFEST, FORMAT, READ_VERSIONS, "archive")
            state = read_archive_json(self.path / INDEX) if (self.path / INDEX).is_file() else \
                {"complete": False, "sources": [], "recordings": []}
            _state = (manifest, state)
        self.manifest, self._state = _state
        self._rows = read_rows(self._state) if _rows is None else _rows
        self._by_key: dict[str, int] | None = None
        self._files: dict[str, h5py.File] = {}
        self._tables: dict[str, _ShardTable] = {}
        self._pid = os.getpid()

    # -- metadata ----------------------------------------------------------------------------
    @property
    def index(self) -> list[dict[str, Any]]:
        """One dict per recording (fields :data:`INDEX_FIELDS`), in archive order."""
        return self._rows

    @property
    def space(self):
        """The :class:`~aemg.data.rectify.StandardSpace` the recordings were rectified into."""
        from .rectify import StandardSpace
        return StandardSpace.from_dict(self.manifest["space"])

    @property
    def amplitude_scale(self) -> float | None:
        return self.manifest.get("amplitude_scale")

    @property
    def errors(self) -> list[dict[str, str]]:
        """``{"source", "problem"}`` for every source that failed."""
        return [{"source": s["source"], "problem": s["error"]} for s in self._state["sources"]
                if s["error"] is not None]

    @property
    def sources(self) -> list[dict[str, Any]]:
        """``{"source", "recordings", "error"}`` for every finished source."""
        return self._state["sources"]

    @property
    def complete(self) -> bool:
        """False while a run is still writing (or was interrupted before its end)."""
        return bool(self._state.get("complete"))

    @property
    def n_samples(self) -> int:
        """Samples per channel summed over the recordings of this view."""
        return sum(r["n_samples"] for r in self._rows)

    def keys(self) -> list[str]:
        return [r["key"] for r in self._rows]

    def subjects(self) -> list[str]:
        """Distinct subjects, numbers in natural order (``"2"`` before ``"10"``)."""
        return sorted({r["subject"] for r in self._rows}, key=natural_key)

    def select(self, **filters: Any) -> "Archive":
        """A view of the recordings whose index fields match every filter.

        A filter value is matched by equality (strings also match numbers: ``subject=3`` matches
        ``"3"``), a list/tuple/set by membership, a callable by its truth value on the field.

        >>> archive.select(subject=["1", "2"], label=lambda c: c is not None)   # doctest: +SKIP
        """
        rows = [self._rows[i] for i in select_rows(self._rows, filters, INDEX_FIELDS)]
        return Archive(self.path, rows, (self.manifest, self._state))

    # -- data --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> Recording:
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"archive indices are integers, not {type(i).__name__} (use .get(key))")
        return self._load(self._rows[i])

    def __iter__(self) -> Iterator[Recording]:
        """Recordings in index order, read a run of up to 256 rows at a time (see :meth:`read_many`)."""
        for lo in range(0, len(self._rows), 256):
            yield from self.read_many(range(lo, min(lo + 256, len(self._rows))))

    def read_many(self, indices: Iterable[int], buffer: ReadBuffer | None = None) -> list[Recording]:
        """The recordings at ``indices`` (rows of this view), in the order given.

        Recordings of one shard lying close together are read with one HDF5 call per array and
        are views of that buffer (no per-recording HDF5 access or JSON parsing): much faster than
        ``[archive[i] for i in indices]`` for many short recordings. Keeping one of them keeps its
        buffer (at most a shard) alive; copy ``rec.data`` to hold a few recordings for long.
        With ``buffer`` (a :class:`ReadBuffer`), samples are read into it instead: faster for a
        loop over groups, but valid only until the next read through that buffer (only the first
        run of neighbouring recordings goes through it; others are read as without it).
        """
        idx = [int(i) for i in indices]
        out: list[Recording | None] = [None] * len(idx)
        if self.manifest.get("version") == 1:
            for k, i in enumerate(idx):
                out[k] = self[i]
            return out  # type: ignore[return-value]
        by_shard: dict[str, list[tuple[int, int]]] = {}
        for k, i in enumerate(idx):
            row = self._rows[i]
            by_shard.setdefault(row["shard"], []).append((int(row["position"]), k))
        used = 0
        for shard, wanted in by_shard.items():
            table = self._table(shard)
            where = str(self.path / shard)
            bad = [k for pos, k in wanted if pos >= len(table)]
            if bad:
                self._position(self._rows[idx[bad[0]]])  # raises the DataError naming the recording
            wanted.sort()
            run: list[tuple[int, int]] = []
            for pos, k in wanted + [(-1, -1)]:
                if run and (pos < 0
                            or table.span(pos)[0] - table.span(run[-1][0])[1] > _MERGE_GAP_BYTES // 4):
                    positions = sorted({p for p, _ in run})
                    used += 1  # only the first run goes to the buffer: two runs would share it
                    recs = dict(zip(positions,
                                    table.read_run(positions, where, buffer if used == 1 else None)))
                    for p, kk in run:
                        out[kk] = recs[p]
                    run = []
                if pos >= 0:
                    run.append((pos, k))
        return out  # type: ignore[return-value]

    def get(self, key: str) -> Recording:
        """The recording with ``key`` (``dataset/subject/session/trial``); KeyError if absent."""
        if self._by_key is None:
            self._by_key = {r["key"]: i for i, r in enumerate(self._rows)}
        if key not in self._by_key:
            raise KeyError(key)
        return self._load(self._rows[self._by_key[key]])

    def _file(self, shard: str) -> h5py.File:
        if os.getpid() != self._pid:  # h5py handles must not cross a fork
            self._files, self._tables, self._pid = {}, {}, os.getpid()
        f = self._files.get(shard)
        if f is None:
            path = self.path / shard
            try:
                f = self._files[shard] = h5py.File(path, "r")
            except FileNotFoundError:
                raise DataError(path, "shard missing from the archive") from None
            except OSError as exc:
                raise DataError(path, f"unreadable shard ({exc})") from None
        return f

    def _table(self, shard: str) -> _ShardTable:
        f = self._file(shard)
        table = self._tables.get(shard)
        if table is None:
            table = self._tables[shard] = _ShardTable(f, str(self.path / shard))
        return table

    def _position(self, row: dict[str, Any]) -> int:
        pos = int(row["position"])
        if pos >= len(self._table(row["shard"])):
            raise DataError(self.path / row["shard"],
                            f"recording {row['key']!r} (position {row['position']}) missing from the shard")
        return pos

    def _load(self, row: dict[str, Any]) -> Recording:
        path = self.path / row["shard"]
        if self.manifest.get("version") == 1:
            f = self._file(row["shard"])
            if row["position"] not in f:
                raise DataError(path,
                                f"recording {row['key']!r} (group {row['position']}) missing from the shard")
            return read_group(f[row["position"]], f"{path}:{row['position']}")
        pos = self._position(row)
        return self._table(row["shard"]).read(pos, f"{path}:{row['position']}")

    def close(self) -> None:
        for t in self._tables.values():
            t.close()
        for f in self._files.values():
            f.close()
        self._files, self._tables = {}, {}

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Archive({str(self.path)!r}, recordings={len(self)}, subjects={len(self.subjects())}, "
                f"reader={self.manifest.get('reader')!r}, complete={self.complete})")


def open_archive(path: str | os.PathLike, *, allow_partial: bool = False) -> Archive:
    """Open an archive folder written by :func:`aemg.data.pipeline.rectify_dataset` for reading.

    ``allow_partial=True`` also opens an incomplete archive (a rectify run still writing or
    interrupted): its view holds the recordings committed so far.

    Raises
    ------
    DataError
        The folder is missing, is not an archive, has an unsupported format version, or is
        incomplete (without ``allow_partial``).
    """
    archive = Archive(path)
    if not archive.complete and not allow_partial:
        raise DataError(archive.path, f"archive is incomplete ({len(archive.sources)} sources done so far: a "
                                      "rectify run is still writing or was interrupted); re-run the same "
                                      "`aemg rectify` command to finish it, or pass --allow-partial "
                                      "(allow_partial=True) to read what it holds")
    return archive


def verify_archive(path: str | os.PathLike) -> tuple[list[str], str]:
    """Check an archive folder completely: ``(problems, summary)``, one line per problem.

    Looks at completeness, every committed shard's size and checksum against the index, that
    each shard holds the recordings the index places in it (keys at their positions: detects
    swapped shard files in archives made before checksums), and that each shard reads.
    DataError when ``path`` is not an archive at all.
    """
    archive = Archive(path)
    root = archive.path
    problems = []
    if not archive.complete:
        problems.append(f"{root}: incomplete (a rectify run is still writing or was interrupted; re-run "
                        "the same `aemg rectify` command to finish it)")
    recorded = archive._state.get("shards") or {}
    by_shard: dict[str, list[dict[str, Any]]] = {}
    for row in archive.index:
        by_shard.setdefault(row["shard"], []).append(row)
    checked = 0
    for shard, rows in sorted(by_shard.items()):
        where = root / shard
        problem = digest_problem(where, recorded.get(shard))
        if problem is not None:
            problems.append(f"{where}: {problem}")
            continue
        checked += shard in recorded
        if archive.manifest.get("version") == 1:
            continue
        try:
            table = archive._table(shard)
            for row in rows:
                pos = int(row["position"])
                if pos >= len(table):
                    problems.append(f"{where}: recording {row['key']!r} (position "
                                    f"{pos}) missing from the shard")
                    continue
                h = table.headers[pos]
                key = f"{h.get('dataset')}/{h.get('subject')}/{h.get('session')}/{h.get('trial')}"
                if key != row["key"]:
                    problems.append(f"{where}: position {pos} holds {key!r}, the index says {row['key']!r} "
                                    "(shard files swapped or replaced?)")
                    break
            table.read_run(list(range(len(table))), str(where))
        except DataError as exc:
            problems.append(str(exc))
    archive.close()
    summary = (f"{root}: archive of {len(archive.index)} recordings in {len(by_shard)} shard(s), "
               f"{checked} checksum(s) verified, {len(archive.errors)} source(s) failed when rectified")
    return problems, summary
