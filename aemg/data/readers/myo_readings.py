"""myo-readings-dataset (Francic): Myo armband, 8 wrist classes with a per-row label, 41 subjects.

Layout: ``_readings_<right|left>_hand/<id>-<session>/<g>.txt[.gz]``: comma-separated text, no
header, 9 integer columns ``ch1..ch8, label`` (Myo int8 values); ``0.txt`` is rest ("hibernation")
throughout, ``<g>.txt`` (g = 1..7) alternates rest / gesture g every 5 s, 6 times.

Decisions
---------
- One Recording per file with per-sample ``labels`` (like ``uci_myo``): split into trials by
  :func:`aemg.data.trials.split_trials`, whose ``repetition`` (the ordinal of the run among the
  file's runs of that class, 0..5) is what the intra-subject protocol leaves out. ``0.txt`` is one
  long rest trial (repetition 0).
- subject = the ID (``"10000"``), session = the number after the dash (``"1"``; for ID 40052 the
  sessions are numbered 0, 1, 2), trial = ``g``; meta ``hand`` (``"right"``/``"left"``, from the
  folder) and ``gesture`` (g). The left-hand sessions use the same ``myo`` geometry (channel order
  as worn; not mirrored).
- The gesture of ``<g>.txt`` is taken from the file name: the label column only says rest (0) or
  active (non-zero). ``69069-1/3.txt`` (radial deviation by its name) carries 2 (extension) in its
  label column; with ``label_mismatch="name"`` (default) its active rows get class 3 and meta
  ``label_column`` keeps the values found; ``"skip"`` leaves such a file out, ``"error"`` refuses it.
  ``0.txt`` with a non-zero label always raises.
- Repeated rows: in 55555-1 and 69069-1 every 5th row repeats the previous one exactly (about
  250 rows/s; the device runs at 200 Hz). When more than :data:`REPEAT_SHARE` of a file's rows
  repeat their predecessor, those rows are dropped (``repeated_rows="drop"``, default; meta
  ``dropped_repeats``), which gives back 200 rows/s; ``"keep"`` keeps them (rate still 200 Hz,
  i.e. wrong), ``"error"`` refuses the file. Fewer repeats are left alone (chance coincidences).
- Broken records (64917-1/2.txt has one record split over two lines of 11 and 7 fields): lines
  without exactly 9 fields are dropped, at most :data:`MAX_BROKEN` per file (meta
  ``dropped_lines``, 1-based line numbers); more raise DataError naming the first one.
- ", " separators and CRLF line ends parse as they are. Irregular label-run lengths (32185-1: 6 s
  periods; 46666-1, 60186-1, 6666-1) are kept; runs under ``split_trials``' 0.5 s are dropped there.
"""
from __future__ import annotations

import re

import numpy as np

from ...errors import DataError
from ..recording import Recording
from . import register_reader
from .base import DatasetInfo, Reader, check_choice, check_finite, match_source, parse_table, read_text

CLASSES = ("rest", "wrist flexion", "wrist extension", "radial deviation", "ulnar deviation", "pronation",
           "supination", "fist")
_NAME = re.compile(r"(?P<gesture>\d+)\.txt(\.gz)?")
_SESSION = re.compile(r"_readings_(?P<hand>right|left)_hand/(?P<subject>\d+)-(?P<session>\d+)")
_COLUMNS = 9
#: share of rows equal to their predecessor above which a file is taken to repeat rows
REPEAT_SHARE = 0.05
#: most lines with another number of fields dropped from one file
MAX_BROKEN = 10


def parse_rows(text: str, path, n_columns: int, delimiter: str = ",",
               max_broken: int = MAX_BROKEN) -> tuple[np.ndarray, list[int]]:
    """Parse a table, dropping up to ``max_broken`` lines that have another number of fields.

    Returns
    -------
    table : np.ndarray, shape (rows, n_columns), float64
    dropped : list of int
        1-based line numbers of the dropped lines.

    Raises
    ------
    DataError
        More than ``max_broken`` such lines (names the first), or any other parse problem.
    """
    try:
        return parse_table(text, path, delimiter=delimiter, n_columns=n_columns), []
    except DataError:
        lines = text.splitlines()
        dropped = [i + 1 for i, line in enumerate(lines)
                   if line.strip() and len(line.split(delimiter)) != n_columns]
        if not dropped:
            raise
        if len(dropped) > max_broken:
            first = dropped[0]
            raise DataError(path, f"{len(dropped)} lines do not have {n_columns} fields (at most "
                                  f"{max_broken} are dropped), the first is line {first} with "
                                  f"{len(lines[first - 1].split(delimiter))}") from None
        for number in dropped:
            lines[number - 1] = ""  # blank lines keep the line numbers of later errors right
        return parse_table("\n".join(lines), path, delimiter=delimiter, n_columns=n_columns), dropped


def repeated_rows(table: np.ndarray) -> np.ndarray:
    """(rows,) bool: rows equal to the previous row in every column (the first row is False)."""
    out = np.zeros(len(table), dtype=bool)
    if len(table) > 1:
        out[1:] = np.all(table[1:] == table[:-1], axis=1)
    return out


@register_reader
class MyoReadingsReader(Reader):
    """Reader of the myo-readings-dataset (folder ``myo_readings``).

    Parameters
    ----------
    root : path or None
        The dataset folder (holding ``_readings_right_hand/`` and ``_readings_left_hand/``).
    repeated_rows : {"drop", "keep", "error"}
        Files in which more than :data:`REPEAT_SHARE` of the rows repeat the previous row.
    label_mismatch : {"name", "skip", "error"}
        A gesture file whose label column holds another gesture than its name: take the name's
        gesture, leave the file out, or raise.
    """

    info = DatasetInfo(
        name="myo_readings", device="myo", channels=8, rate=200.0, subjects=41, classes=CLASSES,
        units="int8",
        description="myo-readings: Myo armband, 41 subjects (session -1 staged), "
                    "rest (hibernation) + 7 wrist gestures, 6 x 5 s per file, per-row labels "
                    "(_readings_<hand>_hand/<id>-<s>/<g>.txt.gz)",
        citation="Francic A., myo-readings-dataset, github.com/aljazfrancic/myo-readings-dataset (MIT)")
    default_folder = "myo_readings"
    download_hint = "github.com/aljazfrancic/myo-readings-dataset"

    def __init__(self, root=None, repeated_rows: str = "drop", label_mismatch: str = "name"):
        super().__init__(root)
        self.repeated_rows = check_choice("repeated_rows", repeated_rows, ("drop", "keep", "error"))
        self.label_mismatch = check_choice("label_mismatch", label_mismatch, ("name", "skip", "error"))

    def sources(self) -> list[str]:
        return self.glob("_readings_*_hand/*-*/*.txt*", name=_NAME)

    def read(self, source: str) -> list[Recording]:
        path = self.path(source)
        where, m = match_source(source, path, _SESSION, _NAME,
                                "_readings_<right|left>_hand/<id>-<session>/<g>.txt[.gz]")
        gesture = int(m["gesture"])
        if gesture >= len(CLASSES):
            raise DataError(path, f"unknown gesture file {m.group()!r} (expected 0..{len(CLASSES) - 1}.txt)")
        table, dropped = parse_rows(read_text(path), path, _COLUMNS)
        check_finite(path, table)
        meta: dict = {"hand": where["hand"], "gesture": gesture}
        if dropped:
            meta["dropped_lines"] = dropped
        repeats = repeated_rows(table)
        if repeats.mean() > REPEAT_SHARE:
            share = (f"{repeats.sum()} of {len(table)} rows ({100 * repeats.mean():.1f} %) repeat the "
                     "previous row")
            if self.repeated_rows == "error":
                raise DataError(path, f"{share} (a logger duplicating samples); repeated_rows='drop' "
                                      "removes them")
            if self.repeated_rows == "drop":
                table = table[~repeats]
                meta["dropped_repeats"] = int(repeats.sum())
        emg, column = table[:, :8], table[:, 8]
        bad = np.any((emg != np.round(emg)) | (emg < -128) | (emg > 127), axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(path, f"data row {row + 1}: {emg[row].tolist()} are not Myo int8 values")
        values = np.unique(column)
        if np.any(values != np.round(values)) or values[0] < 0 or values[-1] >= len(CLASSES):
            raise DataError(path, f"label column holds {[f'{v:g}' for v in values]} (expected class ids "
                                  f"0..{len(CLASSES) - 1})")
        found = [int(v) for v in values]
        active = column != 0
        if gesture == 0 and active.any():
            raise DataError(path, f"the rest file 0.txt has labels {found} (expected 0 throughout)")
        if set(found) - {0, gesture}:
            if self.label_mismatch == "error":
                raise DataError(path, f"label column holds {found}, but the file name says gesture {gesture} "
                                      f"({CLASSES[gesture]}); label_mismatch='name' trusts the name")
            if self.label_mismatch == "skip":
                return []
            meta["label_column"] = found
        labels = np.where(active, gesture, 0).astype(np.int32)
        return [self.recording(source, emg.T.astype(np.float32), rate=200.0, device="myo", units="int8",
                               subject=where["subject"], session=where["session"], trial=str(gesture),
                               labels=labels, classes=CLASSES, meta=meta)]
