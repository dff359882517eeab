"""LibEMG's one-subject Myo fixture: 5 classes x 4 repetitions, 8 channels, 200 Hz.

Layout: ``R_<rep>_C_<class>_EMG.csv``, comma-separated, no header, 8 integer columns (Myo int8).
Decisions: subject ``"0"``, session ``"0"``, trial id ``<rep>_<class>``, meta ``repetition``.
"""
from __future__ import annotations

import re

import numpy as np

from ..recording import Recording
from . import register_reader
from .base import DatasetInfo, Reader, check_class, check_finite, match_name, parse_table, read_text

CLASSES = ("hand close", "hand open", "rest", "wrist flexion", "wrist extension")
_NAME = re.compile(r"R_(?P<rep>\d+)_C_(?P<cls>\d+)_EMG\.csv(\.gz)?")


@register_reader
class LibEmgMyoReader(Reader):
    """Reader of LibEMG's one-subject Myo test dataset (folder ``libemg_sdist_one_subject_myo``)."""

    info = DatasetInfo(
        name="libemg_myo", device="myo", channels=8, rate=200.0, subjects=1, classes=CLASSES, units="int8",
        description="LibEMG one-subject Myo fixture: 5 classes x 4 reps, about 3 s each "
                    "(R_<rep>_C_<class>_EMG.csv)",
        citation="Eddy E. et al., LibEMG: an open source library to facilitate the exploration of "
                 "myoelectric control, IEEE Access 11, 2023")
    default_folder = "libemg_sdist_one_subject_myo"
    download_hint = "libemg==2.0.3 sdist, tests/data/myo_dataset"

    def sources(self) -> list[str]:
        return self.glob("**/R_*_C_*_EMG.csv*", name=_NAME)

    def read(self, source: str) -> list[Recording]:
        path = self.path(source)
        m = match_name(_NAME, source.rsplit("/", 1)[-1], path)
        rep, cls = int(m["rep"]), check_class(path, int(m["cls"]), CLASSES)
        table = parse_table(read_text(path), path, delimiter=",", n_columns=8)
        check_finite(path, table)
        return [self.recording(source, table.T.astype(np.float32), rate=200.0, device="myo", units="int8",
                               subject="0", session="0", trial=f"{rep}_{cls}", label=cls, classes=CLASSES,
                               meta={"repetition": rep})]
