"""UCI "EMG data for gestures" (Lobov et al. 2018): Myo armband, irregularly logged rows.

Layout: ``<subject>/<series>_raw_data_<HH-MM>_<DD.MM.YY>.txt[.gz]``, tab-separated with one header
row ``time channel1..channel8 class``; ``time`` in integer milliseconds (irregular, about 970 rows/s
with held values), channels = Myo int8 value x 1e-5, ``class`` 0 = unmarked.

Decisions
---------
- Samples are converted back to int8 counts (``round(x * 1e5)``), units ``"int8"``, like the other
  Myo datasets; a value that is not a whole count raises DataError.
- ``time`` becomes ``Recording.times`` (seconds); ``rate`` is the Myo's nominal 200 Hz. Rectification
  resamples on the timestamps.
- Class ids: file class ``k`` (1..7) -> id ``k - 1``; class 0 (unmarked transitions and pauses)
  -> :data:`UNLABELLED`. So 0 rest, 1 fist, 2 wrist flexion, 3 wrist extension, 4 radial deviation,
  5 ulnar deviation, 6 extended palm (the last is in none of the staged files).
- subject = the folder name (``"01"``), session ``"1"`` (both series were recorded minutes apart),
  trial = the series (``"1"`` or ``"2"``); one Recording per file with per-sample ``labels``; use
  :func:`aemg.data.trials.split_trials` for one Recording per held gesture.
"""
from __future__ import annotations

import re

import numpy as np

from ...errors import DataError
from ..recording import UNLABELLED, Recording
from . import register_reader
from .base import DatasetInfo, Reader, check_finite, check_increasing, match_name, parse_table, read_text

CLASSES = ("rest", "fist", "wrist flexion", "wrist extension", "radial deviation", "ulnar deviation",
           "extended palm")
_NAME = re.compile(r"(?P<series>\d+)_raw_data_.*\.txt(\.gz)?")


@register_reader
class UciMyoReader(Reader):
    """Reader of the UCI "EMG data for gestures" Myo dataset (folder ``uci_emg_gestures_myo``)."""

    info = DatasetInfo(
        name="uci_myo", device="myo", channels=8, rate=200.0, subjects=36, classes=CLASSES, units="int8",
        description="UCI EMG data for gestures: Myo armband, 6-7 gestures held 3 s, 2 series per subject, "
                    "irregular timestamps (<subject>/<series>_raw_data_*.txt.gz)",
        citation="Lobov S. et al., Latent factors limiting the performance of sEMG-interfaces, "
                 "Sensors 18(4):1122, 2018; UCI ML Repository dataset 481")
    default_folder = "uci_emg_gestures_myo"
    download_hint = "UCI ML Repository dataset 481 'EMG data for gestures', one folder per subject"

    def sources(self) -> list[str]:
        return self.glob("*/*_raw_data_*.txt*", name=_NAME)

    def read(self, source: str) -> list[Recording]:
        path = self.path(source)
        subject, name = source.rsplit("/", 1) if "/" in source else ("0", source)
        series = match_name(_NAME, name, path)["series"]
        table = parse_table(read_text(path), path, delimiter="\t", skip_rows=1, n_columns=10)
        check_finite(path, table, first_line=2)  # rows named by file line, after the header
        check_increasing(path, table[:, 0] / 1000.0, first_line=2)
        counts = np.round(table[:, 1:9] * 1e5)
        off = np.abs(counts - table[:, 1:9] * 1e5) > 1e-3
        if off.any():
            row, col = np.argwhere(off)[0]
            raise DataError(path, f"row {row + 2}, channel {col + 1}: {table[row, col + 1]!r} is not a "
                                  "Myo int8 count x 1e-5")
        classes = table[:, 9]
        if np.any(classes != np.round(classes)) or classes.min() < 0 or classes.max() > len(CLASSES):
            bad = int(np.flatnonzero((classes != np.round(classes)) | (classes < 0)
                                     | (classes > len(CLASSES)))[0])
            raise DataError(path, f"row {bad + 2}: unknown class {classes[bad]:g} "
                                  f"(expected 0..{len(CLASSES)})")
        labels = np.where(classes == 0, UNLABELLED, classes - 1).astype(np.int32)
        return [self.recording(source, counts.T.astype(np.float32), rate=200.0, device="myo",
                               units="int8", subject=subject, session="1", trial=series,
                               labels=labels, classes=CLASSES, times=table[:, 0] / 1000.0,
                               meta={"series": int(series)})]
