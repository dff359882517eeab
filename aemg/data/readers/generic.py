"""Users' own recordings: delimited text (optionally gzipped) or .npy files named by a template.

Example::

    get_reader("generic", "my_study", pattern="P{subject}/day{session}/gesture{label}_rep{trial}.csv.gz",
               rate=1000, device="ring:8", classes=["rest", "fist", "open"])

The template names path fields in braces: ``subject``, ``session``, ``trial`` and ``label`` fill the
Recording; any other field (e.g. ``{arm}``) goes into ``meta``. A field matches one path segment
or part of it (no ``/``). Files under the folder whose relative path matches are the sources.
"""
from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath

import numpy as np

from ...errors import ConfigError, DataError
from ..devices import get_device
from ..recording import UNITS, UNLABELLED, Recording
from . import register_reader
from .base import DatasetInfo, Reader, check_choice, check_finite, check_increasing, parse_table, read_bytes

_FIELD = re.compile(r"\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}")
_STANDARD = ("subject", "session", "trial", "label")


def _is_npy(source: str) -> bool:
    name = PurePosixPath(source).name.lower()
    return name.endswith(".npy") or name.endswith(".npy.gz")


#: the header numpy writes for a plain numeric array (np.save: keys sorted, padded with spaces)
_NPY_HEADER = re.compile(rb"\{'descr': '(?P<descr>[<>|=]?[iuf][1248])', "
                         rb"'fortran_order': (?P<fortran>True|False), "
                         rb"'shape': \((?P<shape>(?:\d+, ?)*\d*)\), *\} *\n")


def npy_array(raw: bytes) -> np.ndarray | None:
    """The array of the ``.npy`` bytes ``raw`` as a read-only view (no copy), when it is a plain
    integer or float array whose data fill the rest of ``raw`` exactly; None otherwise (then
    ``np.load`` reads it and reports what is wrong). ``np.load`` parses the header with Python's
    ``ast`` (about 1 ms a file, more than reading and rectifying a short recording)."""
    if raw[:6] != b"\x93NUMPY" or len(raw) < 12 or raw[6] not in (1, 2, 3):
        return None
    start = 10 if raw[6] == 1 else 12
    end = start + int.from_bytes(raw[8:start], "little")
    m = _NPY_HEADER.fullmatch(raw[start:end])
    if m is None:
        return None
    dtype = np.dtype(m["descr"].decode("ascii"))
    shape = tuple(int(v) for v in m["shape"].split(b",") if v.strip())
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) - end != count * dtype.itemsize:
        return None
    return np.frombuffer(raw, dtype, count=count, offset=end).reshape(
        shape, order="F" if m["fortran"] == b"True" else "C")


def compile_pattern(pattern: str) -> tuple[re.Pattern, str]:
    """A path template -> (regex matching relative POSIX paths, glob that pre-selects them)."""
    if not pattern or pattern.startswith("/"):
        raise ConfigError(f"pattern={pattern!r}: expected a relative path template like "
                          "'P{subject}/gesture{label}_rep{trial}.csv'")
    regex, glob, seen, pos = [], [], set(), 0
    for m in _FIELD.finditer(pattern):
        literal = pattern[pos:m.start()]
        regex.append(re.escape(literal))
        glob.append(literal)
        name = m["name"]
        regex.append(f"(?P={name})" if name in seen else f"(?P<{name}>[^/]+?)")
        glob.append("*")
        seen.add(name)
        pos = m.end()
    regex.append(re.escape(pattern[pos:]))
    glob.append(pattern[pos:])
    if "{" in "".join(glob) or "}" in "".join(glob):
        raise ConfigError(f"pattern={pattern!r}: fields are written {{name}} with a Python identifier")
    return re.compile("".join(regex)), re.sub(r"\*+", "*", "".join(glob))


@register_reader
class GenericReader(Reader):
    """Reader of user files laid out by a path template.

    Parameters
    ----------
    root : path
        The folder holding the files (required).
    pattern : str
        Path template relative to ``root``, e.g. ``"P{subject}/gesture{label}_rep{trial}.csv.gz"``.
    rate : float
        Sampling rate, Hz (nominal rate when ``time_column`` is given).
    device : str
        Device registry name or spec (``"myo"``, ``"ring:8"``); its channel count must match.
    delimiter : str or None
        Column separator of text files; None: ``","`` for ``.csv[.gz]``, any whitespace otherwise.
    skip_rows : int
        Header rows to skip in text files.
    channels : sequence of int or None
        Columns (0-based, after ``orientation``) holding the channels; None: every column that is
        not the time or label column.
    time_column : int or None
        Column of sample times (then ``Recording.times`` is set; must not go backwards).
    time_scale : float
        Factor turning the time column into seconds (0.001 for milliseconds).
    label_column : int or None
        Column of per-sample class labels (numbers).
    orientation : {"samples", "channels"}
        ``"samples"``: each row is one sample (time runs down the file); ``"channels"``: each row is
        one channel.
    units : str or None
        Units of the values; None: the device's units.
    classes : sequence of str or None
        Class names; labels (from the path or the label column) must be one of these names or an
        id below ``len(classes)``, else DataError. None: labels must be non-negative integers.
    label_names : mapping or None
        Raw label -> class name or id, applied before the lookup (e.g. ``{"fist": "power grip"}``).
    unlabelled : sequence
        Raw label-column values meaning "no class" (become :data:`UNLABELLED`).
    name : str
        The ``dataset`` field of the recordings.
    """

    info = DatasetInfo(
        name="generic", device="(option)", channels=0, rate=None, subjects=None, classes=(), units="(option)",
        description="your own .csv/.txt(.gz)/.npy files, fields taken from a path template "
                    "(pattern='P{subject}/gesture{label}_rep{trial}.csv')")

    def __init__(self, root=None, *, pattern: str, rate: float, device: str, delimiter: str | None = None,
                 skip_rows: int = 0, channels: Sequence[int] | None = None, time_column: int | None = None,
                 time_scale: float = 1.0, label_column: int | None = None, orientation: str = "samples",
                 units: str | None = None, classes: Sequence[str] | None = None,
                 label_names: Mapping | None = None, unlabelled: Sequence = (), name: str = "generic"):
        if root is None:
            raise ConfigError("reader 'generic': give the folder holding your files (root=...)")
        super().__init__(root)
        self.pattern = pattern
        self.regex, self.glob_pattern = compile_pattern(pattern)
        try:
            self.rate = float(rate)
        except (TypeError, ValueError):
            raise ConfigError(f"rate={rate!r}: expected a number of Hz") from None
        if not (np.isfinite(self.rate) and self.rate > 0):
            raise ConfigError(f"rate={rate!r}: expected a positive number of Hz")
        self.device = get_device(device)
        self.units = check_choice("units", units if units is not None else self.device.units, UNITS)
        self.orientation = check_choice("orientation", orientation, ("samples", "channels"))
        if int(skip_rows) < 0:
            raise ConfigError(f"skip_rows={skip_rows!r}: expected >= 0")
        self.delimiter, self.skip_rows = delimiter, int(skip_rows)
        self.channels = None if channels is None else [int(c) for c in channels]
        self.time_column, self.label_column = time_column, label_column
        self.time_scale = float(time_scale)
        self.classes = tuple(classes) if classes is not None else ()
        self.label_names = dict(label_names or {})
        self.unlabelled = set(unlabelled)
        self.name = name
        special = [c for c in (time_column, label_column) if c is not None]
        if self.channels is not None and set(self.channels) & set(special):
            raise ConfigError("channels must not include the time or label column")

    def sources(self) -> list[str]:
        return [s for s in self.glob(self.glob_pattern) if self.regex.fullmatch(s)]

    # -- labels ------------------------------------------------------------------------------
    def class_id(self, raw, path) -> int:
        """A raw label (path field or label-column value) -> class id; DataError if unknown."""
        value = self.label_names.get(raw, self.label_names.get(str(raw), raw))
        if isinstance(value, str) and value in self.classes:
            return self.classes.index(value)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            cid = int(value)
        elif isinstance(value, str) and value.strip().isdigit():
            cid = int(value)
        else:
            cid = None
        if cid is not None and cid >= 0 and (not self.classes or cid < len(self.classes)):
            return cid
        known = f"one of {list(self.classes)} or an id below {len(self.classes)}" if self.classes \
            else "a non-negative integer class id (or pass classes=[...])"
        raise DataError(path, f"unknown label {raw!r}: expected {known}")

    # -- reading -----------------------------------------------------------------------------
    def load_table(self, source: str) -> np.ndarray:
        """The file as a (samples, columns) table: float64 from text; a ``.npy`` array keeps its
        dtype when float32 and the samples' float32 are the same through float64 (floats, integers
        of at most 32 bits: binary data pays for no float64 copy), else float64."""
        path = self.path(source)
        name = PurePosixPath(source).name.lower()
        raw = read_bytes(path)
        if _is_npy(source):
            table = npy_array(raw)
            if table is None:
                try:
                    table = np.load(io.BytesIO(raw), allow_pickle=False)
                except (ValueError, OSError, EOFError) as exc:
                    raise DataError(path, f"cannot read .npy file ({exc})") from None
            if table.ndim != 2 or table.size == 0:
                raise DataError(path, f"expected a non-empty 2-D array, got shape {table.shape}")
            if not np.issubdtype(table.dtype, np.number) or np.iscomplexobj(table):
                raise DataError(path, f"expected real numbers, got dtype {table.dtype}")
            if not (table.dtype.kind == "f" or table.dtype.kind in "iu" and table.dtype.itemsize <= 4):
                table = table.astype(np.float64)  # int64: float32 rounding as through float64
        else:
            delimiter = self.delimiter
            if delimiter is None and (name.endswith(".csv") or name.endswith(".csv.gz")):
                delimiter = ","
            text = raw.decode("utf-8-sig", errors="replace")  # an Excel export starts with a byte-order mark
            table = parse_table(text, path, delimiter=delimiter, skip_rows=self.skip_rows)
        return table.T if self.orientation == "channels" else table

    def read(self, source: str) -> list[Recording]:
        path = self.path(source)
        m = self.regex.fullmatch(source)
        if m is None:
            raise DataError(path, f"does not match pattern {self.pattern!r}")
        fields = m.groupdict()
        table = self.load_table(source)
        n_cols = table.shape[1]
        special = [c for c in (self.time_column, self.label_column) if c is not None]
        for c in special + (self.channels or []):
            if not -n_cols <= c < n_cols:
                raise DataError(path, f"column {c} does not exist (the file has {n_cols} columns)")
        channels = self.channels if self.channels is not None else \
            [c for c in range(n_cols) if c not in {s % n_cols for s in special}]
        data = table if channels == list(range(n_cols)) else table[:, channels]
        # rows are named by file line (as parse_table does) where a row is a line of a text file
        first = self.skip_rows + 1 if self.orientation == "samples" and not _is_npy(source) else 1
        if data.dtype.kind == "f":  # integers are finite
            check_finite(path, data, first_line=first)
        times = labels = None
        if self.time_column is not None:
            times = table[:, self.time_column] * self.time_scale
            check_finite(path, times[:, None], "time", first_line=first)
            check_increasing(path, times, first_line=first)
        if self.label_column is not None:
            column = table[:, self.label_column]
            check_finite(path, column[:, None], "label", first_line=first)
            labels = np.full(column.size, UNLABELLED, dtype=np.int32)
            for value in np.unique(column):
                key = int(value) if value == int(value) else value
                if key in self.unlabelled:
                    continue
                labels[column == value] = self.class_id(key, path)
        label = self.class_id(fields["label"], path) if "label" in fields else None
        stem = source
        for ext in (".gz", ".csv", ".txt", ".tsv", ".npy", ".dat"):
            stem = stem[: -len(ext)] if stem.lower().endswith(ext) else stem
        meta = {k: v for k, v in fields.items() if k not in _STANDARD}
        trial = fields.get("trial", stem.replace("/", "_"))
        if "trial" in fields and "label" in fields:
            # 'gesture{label}_rep{trial}': the repetition number repeats across gestures, so the
            # trial id names both (recording keys stay unique) and the repetition is kept in meta
            trial = f"{fields['label']}.{fields['trial']}"
            if str(fields["trial"]).isdigit():
                meta.setdefault("repetition", int(fields["trial"]))
        # (C, T) view: Recording makes the one float32 copy (C order) from any dtype and layout
        return [self.recording(source, data.T, rate=self.rate, device=self.device,
                               units=self.units, dataset=self.name, subject=fields.get("subject", "0"),
                               session=fields.get("session", "0"),
                               trial=trial,
                               label=label, labels=labels, classes=self.classes, times=times, meta=meta)]
