"""The reader interface shared by every dataset, and the file helpers the readers reuse.

A reader turns one dataset folder into :class:`~aemg.data.recording.Recording` objects. Work is
split into *sources* (usually one file each, named relative to the dataset folder) so that callers
can read them in parallel, resume, and report the file at fault.
"""
from __future__ import annotations

import abc
import collections.abc
import gzip
import inspect
import io
import json
import os
import re
import types
import typing
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ...errors import SHORT_CHARS, ConfigError, DataError, shorten
from ..paths import default_data_root, natural_key  # noqa: F401 - natural_key: the readers sort with it
from ..recording import Recording, first_backwards


@dataclass(frozen=True)
class DatasetInfo:
    """What ``aemg datasets`` prints about one reader.

    Attributes
    ----------
    name : str
        Registered reader name, e.g. ``"uci_myo"``.
    device : str
        Device registry name (or spec) of the recordings.
    channels : int
        Channels per recording (0 when it depends on the options, e.g. ``generic``).
    rate : float or None
        Nominal sampling rate, Hz (None when it depends on the options).
    subjects : int or None
        Number of subjects of the full public dataset (None when unknown).
    classes : tuple of str
        Class names indexed by class id.
    units : str
        Units of the raw samples (one of :data:`aemg.data.recording.UNITS`).
    description : str
        One line: what the dataset is and its folder layout.
    citation : str
        Paper(s) to cite.
    """

    name: str
    device: str
    channels: int
    rate: float | None
    subjects: int | None
    classes: tuple[str, ...]
    units: str
    description: str
    citation: str = ""

    @property
    def rest_class(self) -> int | None:
        """Id of the rest class: the first name that :func:`aemg.tokenizer.tokens.is_rest_class`
        takes for "no movement" (what tokenize calibration and the evaluation use), or None
        when no class is at rest (e.g. ``multiday_4ch``)."""
        from ...tokenizer.calibration import is_rest_class

        return next((i for i, name in enumerate(self.classes) if is_rest_class(name)), None)


class Reader(abc.ABC):
    """One dataset on disk -> :class:`Recording` objects.

    Subclasses set :attr:`info` and :attr:`default_folder` and implement :meth:`sources` and
    :meth:`read`. Options are keyword arguments of the subclass ``__init__``; unknown ones raise
    :class:`ConfigError` (Python's own ``TypeError`` is turned into one by :func:`get_reader`).

    Parameters
    ----------
    root : str or os.PathLike or None
        The dataset folder. None: ``default_data_root() / default_folder``.
    """

    info: DatasetInfo
    #: folder name of the dataset under the data root (None: no default, ``root`` is required)
    default_folder: str | None = None
    #: False for readers that generate data and need no folder
    needs_root: bool = True
    #: a hint printed when the folder is missing (where to get the data)
    download_hint: str = ""

    def __init__(self, root: str | os.PathLike | None = None):
        if root is None and self.needs_root:
            if self.default_folder is None:
                raise ConfigError(f"reader {self.info.name!r}: give the dataset folder (root=...)")
            root = default_data_root() / self.default_folder
        self.root = None if root is None else Path(root).expanduser()
        if self.needs_root and not self.root.is_dir():
            hint = self.download_hint or f"expected the {self.info.name} files there"
            raise DataError(self.root, f"dataset folder not found ({hint}; set AEMG_DATA_ROOT or "
                                       "pass the folder explicitly)")

    # -- the interface -----------------------------------------------------------------------
    @abc.abstractmethod
    def sources(self) -> list[str]:
        """Units of work: sorted file paths relative to :attr:`root` (strings, picklable).

        Listing looks at names only, so one unreadable file does not break it.
        """

    @abc.abstractmethod
    def read(self, source: str) -> list[Recording]:
        """The raw recordings of one source (one file), in file units, shape (C, T) each."""

    def __iter__(self) -> Iterator[Recording]:
        for source in self.sources():
            yield from self.read(source)

    @classmethod
    def declared_options(cls) -> dict[str, tuple[Any, Any]] | None:
        """The options this reader takes: ``{name: (type hint, default)}`` (default
        ``inspect.Parameter.empty``: required), from the keyword parameters of ``__init__`` after
        ``root``; None when ``__init__`` takes ``**options`` it checks itself. Readers with such
        options override this to declare them (:func:`check_options` validates against it)."""
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        try:
            hints = typing.get_type_hints(cls.__init__)
        except Exception:  # noqa: BLE001 - an unresolvable annotation: check names only
            hints = {}
        return {p.name: (hints.get(p.name, Any), p.default) for p in params
                if p.name != "root" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    @property
    def options(self) -> dict[str, Any]:
        """The options this reader was made with by :func:`~aemg.data.readers.get_reader` (for
        manifests and re-creating it in worker processes)."""
        return dict(getattr(self, "_options", {}))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r})"

    # -- helpers for subclasses --------------------------------------------------------------
    def path(self, source: str) -> Path:
        """Absolute path of a source."""
        return self.root / source

    def glob(self, pattern: str, name: re.Pattern | None = None) -> list[str]:
        """Files under :attr:`root` matching a glob ``pattern`` (and, when given, whose file name
        fully matches the regular expression ``name``), as naturally sorted relative POSIX paths."""
        found = [p
                 for p in (_glob_following_links(self.root, pattern)
                           if "**" in pattern else self.root.glob(pattern))
                 if p.is_file()]
        if name is not None:
            found = [p for p in found if name.fullmatch(p.name)]
        return sorted((p.relative_to(self.root).as_posix() for p in found), key=natural_key)

    def recording(self, source: str, data: np.ndarray, **fields: Any) -> Recording:
        """Build a :class:`Recording` of this dataset; its validation errors name the full path.

        ``data`` is (C, T); ``source`` is stored as given (relative, so archives stay portable).
        """
        fields.setdefault("dataset", self.info.name)
        try:
            return Recording(data=data, source=source, **fields)
        except DataError as exc:
            raise DataError(self.path(source) if self.root is not None else source, exc.problem) from None


def _glob_following_links(root: Path, pattern: str) -> list[Path]:
    """``root.glob(pattern)`` for a pattern with ``**``, also descending into symlinked folders
    (pathlib's ``**`` skips them before Python 3.13; a dataset folder of links is common). Each
    real folder is visited once, so a link loop ends."""
    parts = []
    for i, seg in enumerate(pattern.split("/")):
        if seg == "**":
            parts.append("(?:[^/]+/)*")
            continue
        rx = "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in seg)
        parts.append(rx + ("" if i == len(pattern.split("/")) - 1 else "/"))
    regex = re.compile("".join(parts))
    out, seen = [], set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        rel = Path(folder).relative_to(root).as_posix()
        for f in files:
            if regex.fullmatch(f if rel == "." else f"{rel}/{f}"):
                out.append(Path(folder) / f)
    return out


def read_bytes(path: str | os.PathLike) -> bytes:
    """All bytes of a file, gunzipped when its name ends in ``.gz``.

    Raises
    ------
    DataError
        Missing, unreadable, empty, or truncated/corrupt gzip file.
    """
    path = os.fspath(path)
    try:
        raw = _file_bytes(path)
        if path.endswith(".gz"):
            raw = gunzip(raw)
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(path, f"truncated or corrupt gzip file ({exc})") from None
    except OSError as exc:
        raise DataError(path, f"cannot read file ({exc})") from None
    if not raw:
        raise DataError(path, "empty file")
    return raw


def _file_bytes(path: str) -> bytes:
    """``Path(path).read_bytes()`` with two system calls' worth of work: ``os.read`` of the size
    ``fstat`` gives, then reads until end of file (a file that grows or a short read is still read
    whole). The buffered ``open().read()`` costs ~60 us for a 100 KB file here, this ~16 us
    (docs/notes/rectify.md, Session 7). An OSError names ``path`` as ``open`` would."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        first = os.read(fd, os.fstat(fd).st_size + 1)
        parts = [first]
        while parts[-1]:
            parts.append(os.read(fd, 1 << 20))
    except OSError as exc:
        if exc.filename is None:
            raise type(exc)(exc.errno, exc.strerror, path) from None
        raise
    finally:
        os.close(fd)
    return first if len(parts) == 2 else b"".join(parts)


def gunzip(data: bytes) -> bytes:
    """``gzip.decompress(data)``: a single-member file (the usual) in one zlib call; anything else
    (several members, trailing bytes, a truncated or corrupt file) through ``gzip.decompress``,
    which also raises its errors. ``gzip.decompress`` parses each member's header in Python:
    about 0.1 ms a file, as much as inflating a 16 KB one."""
    z = zlib.decompressobj(31)  # 16 + MAX_WBITS: a gzip header and trailer
    try:
        out = z.decompress(data)
    except zlib.error:
        out = None
    if out is None or not z.eof or z.unused_data:
        return gzip.decompress(data)
    return out


def read_text(path: str | os.PathLike) -> str:
    """Text of a (possibly gzipped) file; see :func:`read_bytes`."""
    raw = read_bytes(path)
    try:
        return raw.decode("utf-8-sig")  # an Excel export starts with a byte-order mark
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def parse_table(text: str, path: str | os.PathLike, *, delimiter: str | None = None,
                skip_rows: int = 0, n_columns: int | None = None,
                dtype: type = np.float64) -> np.ndarray:
    """Parse delimited numeric text into a 2-D array (rows, columns).

    Parameters
    ----------
    text : str
        File contents. Tables of plain decimal numbers (``-12``, ``0.78384``, ``1.5e-03``) go
        through a compiled parser (the same values as ``np.loadtxt`` bit for bit, 10-20x faster);
        anything else (``nan``, a malformed row) through ``np.loadtxt``.
    path : str or os.PathLike
        Named in error messages.
    delimiter : str or None
        Column separator; None splits on any whitespace.
    skip_rows : int
        Header lines to skip.
    n_columns : int or None
        Expected number of columns (None: whatever the first data row has).

    Returns
    -------
    np.ndarray, shape (rows, columns), ``dtype``
        Blank lines are ignored. NaN/inf are returned as such (callers reject them).

    Raises
    ------
    DataError
        No data rows, a row with another number of columns (names the row, 1-based line number in
        the file), or a value that is not a number.
    """
    fast = _parse_fast_table(text, delimiter, skip_rows, n_columns)
    if fast is not None:
        return fast if dtype is np.float64 else fast.astype(dtype)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": handled below
            table = np.loadtxt(io.StringIO(text), delimiter=delimiter, skiprows=skip_rows, dtype=dtype,
                               ndmin=2, comments=None)
    except ValueError:
        table = None
    if table is not None and table.size and (n_columns is None or table.shape[1] == n_columns):
        return table
    # Slow path: find the first offending line and say what is wrong with it.
    lines = text.splitlines()
    width = n_columns
    rows = 0
    for number, line in enumerate(lines[skip_rows:], start=skip_rows + 1):
        if not line.strip():
            continue
        fields = line.split(delimiter) if delimiter is not None else line.split()
        if width is None:
            width = len(fields)
        if len(fields) != width:
            raise DataError(path, f"row {number} has {len(fields)} columns, expected {width}")
        for field in fields:
            try:
                float(field)
            except ValueError:
                raise DataError(path, f"row {number}: {shorten(repr(field.strip()), SHORT_CHARS)} is not a "
                                      "number") from None
        rows += 1
    if rows == 0:
        raise DataError(path, "no data rows" + (f" after {skip_rows} header row(s)" if skip_rows else ""))
    raise DataError(path, "cannot parse the table")  # pragma: no cover - loadtxt failed for another reason


def _parse_fast_table(text: str | bytes, delimiter: str | None, skip_rows: int,
                      n_columns: int | None) -> np.ndarray | None:
    """The compiled number-table parser (``aemg._ext.parse_cy``): float64 (rows, columns) equal to
    ``np.loadtxt``'s bit for bit, or None when it is not built or the text is not a plain table of
    decimal numbers (then :func:`parse_table` uses ``np.loadtxt`` and its checks)."""
    if _FAST_PARSER is None:
        return None
    if delimiter is not None and (len(delimiter) != 1 or delimiter in _NUMBER_CHARS):
        return None
    try:
        raw = text.encode("ascii") if isinstance(text, str) else text
    except UnicodeEncodeError:
        return None
    return _FAST_PARSER(raw, -1 if delimiter is None else ord(delimiter), skip_rows,
                       -1 if n_columns is None else n_columns)


#: characters of a number: a delimiter among them (``"."``, ``"e"``, ...) is left to ``np.loadtxt``
_NUMBER_CHARS = "0123456789.eE+-"

try:
    from ..._ext.parse_cy import parse_number_table as _FAST_PARSER
except ImportError:  # built without extensions (AEMG_NO_EXT=1): np.loadtxt only
    _FAST_PARSER = None


def check_finite(path: str | os.PathLike, table: np.ndarray, what: str = "sample",
                 first_line: int = 1) -> None:
    """Raise DataError naming the first NaN/inf entry of a (rows, columns) table.

    Rows are named like :func:`parse_table` names them, by 1-based file line: ``first_line`` is the
    line of the table's first row (``skip_rows + 1`` for a text file with header lines; 1 for arrays).
    """
    bad = ~np.isfinite(table)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(path, f"non-finite {what} (NaN or inf) at row {row + first_line}, column {col + 1}")


def check_increasing(path: str | os.PathLike, times: np.ndarray, first_line: int = 1) -> None:
    """Raise DataError naming the first row (1-based file line, as :func:`check_finite`) where the
    timestamps ``times`` (T,) go backwards."""
    i = first_backwards(times)
    if i is not None:
        raise DataError(path, f"timestamps go backwards at row {i + first_line}: {times[i - 1]:.6g} s -> "
                              f"{times[i]:.6g} s")


def read_json(path: str | os.PathLike) -> Any:
    """The JSON document in a (possibly gzipped) file; DataError naming the file when it is not JSON."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid or truncated JSON ({exc})") from None


def match_source(source: str, path: str | os.PathLike, folder: re.Pattern, name: re.Pattern,
                 layout: str) -> tuple[re.Match, re.Match]:
    """Match a source's folder part and file name; DataError ``expected <layout>`` otherwise."""
    parent, _, file_name = source.rpartition("/")
    where = folder.fullmatch(parent)
    if where is None:
        raise DataError(path, f"expected {layout}")
    return where, match_name(name, file_name, path)


def match_name(pattern: re.Pattern, name: str, path: str | os.PathLike) -> re.Match:
    """Match ``pattern`` against a file ``name`` or raise DataError saying the name is unexpected."""
    match = pattern.fullmatch(name)
    if match is None:
        raise DataError(path, f"unexpected file name {name!r} (expected {pattern.pattern})")
    return match


def check_class(path: str | os.PathLike, index: int, classes: Sequence[str]) -> int:
    """Raise DataError unless ``index`` is a class id of ``classes`` (0-based); return it."""
    if not 0 <= index < len(classes):
        raise DataError(path, f"unknown class {index} (expected 0..{len(classes) - 1})")
    return index


#: option names no reader takes: the dataset folder is ``root`` (the SRC argument of ``aemg rectify``)
RESERVED_OPTIONS = ("root", "self")


def _conforms(value: Any, hint: Any) -> bool:
    """Whether ``value`` (as parsed from JSON) fits the type ``hint`` (unknown hints accept anything)."""
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    if hint is type(None) or hint is None:
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is None:
        return isinstance(value, hint) if isinstance(hint, type) and hint is not os.PathLike else True
    if origin in (list, tuple, collections.abc.Sequence, collections.abc.Iterable,
                  collections.abc.Collection):
        if not isinstance(value, (list, tuple)):
            return False
        item = args[0] if args and (origin is not tuple or len(args) == 2 and args[1] is Ellipsis) else Any
        return all(_conforms(v, item) for v in value)
    if origin in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    return True


def _describe(hint: Any) -> str:
    """A type hint in words: ``float | None`` -> ``"a number or null"``."""
    if hint is type(None) or hint is None:
        return "null"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if hint in words:
        return words[hint]
    if origin in (list, tuple, collections.abc.Sequence, collections.abc.Iterable,
                  collections.abc.Collection):
        item = _describe(args[0]) if args else "values"
        return f"a list of {item.removeprefix('an ').removeprefix('a ')}s" if args and args[0] in words \
            else f"a list ({item})"
    if origin in (dict, collections.abc.Mapping):
        return "a JSON object {...}"
    return getattr(hint, "__name__", str(hint))


def check_options(cls: type[Reader], options: dict[str, Any], *, flags: dict[str, str] | None = None) -> None:
    """ConfigError naming the first reserved, unknown, missing or mistyped option of ``cls``.

    ``flags`` maps an option to the command-line flag that sets it (``{"rate": "--source-rate"}``),
    named in the messages; other options are named ``--option NAME=...`` when ``flags`` is given.
    """
    name = cls.info.name

    def flag(opt: str, value: Any = inspect.Parameter.empty) -> str:
        shown = "..." if value is inspect.Parameter.empty else shorten(json.dumps(value, default=repr),
                                                                       SHORT_CHARS)
        if flags is not None and opt in flags:
            return flags[opt] if value is inspect.Parameter.empty else f"{flags[opt]} {shown}"
        if flags is not None:
            return f"--option {opt}={shown}"
        return opt if value is inspect.Parameter.empty else f"{opt}={shown}"

    reserved = [k for k in options if k in RESERVED_OPTIONS]
    if reserved:
        why = "the dataset folder is the SRC argument (root= in Python)" if reserved[0] == "root" else \
            "a reserved name"
        raise ConfigError(f"reader {name!r}: {flag(reserved[0])}: not an option ({why})")
    declared = cls.declared_options()
    if declared is None:
        return
    unknown = sorted(set(options) - set(declared))
    if unknown:
        raise ConfigError(f"reader {name!r}: unknown option(s) {', '.join(unknown)}; "
                          f"options: {', '.join(sorted(declared)) or 'none'}")
    missing = [k for k, (_, default) in declared.items()
               if default is inspect.Parameter.empty and k not in options]
    if missing:
        raise ConfigError(f"reader {name!r}: missing required option(s) "
                          f"{', '.join(flag(k) for k in missing)}")
    for key, value in options.items():
        hint = declared[key][0]
        if not _conforms(value, hint):
            how, items = "", _comma_items(value) if isinstance(value, str) else None
            if items is not None and _conforms(items, hint):  # a comma list where JSON was due
                how = f" (values are JSON: {key}='{json.dumps(items)}')"
            raise ConfigError(f"reader {name!r}: {flag(key, value)}: expected {_describe(hint)}{how}")


def _comma_items(text: str) -> list:
    """``"a,1,b"`` -> ``["a", 1, "b"]`` (each item as JSON when it parses, else the string)."""
    out = []
    for item in text.split(","):
        try:
            out.append(json.loads(item))
        except json.JSONDecodeError:
            out.append(item.strip())
    return out


def check_choice(option: str, value: Any, choices: Sequence[Any]) -> Any:
    """Raise ConfigError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{option}={value!r}: expected one of {', '.join(map(repr, choices))}")
    return value
