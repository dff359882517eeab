"""MultiDay (Kaufmann, Englehart, Platzner): one person, 4-channel MindMedia amplifier, 121 days.

Layout: ``S<s>_D<d>_C<c>.csv[.gz]``: whitespace-separated text, no header, 4 float columns,
one file (5-8 s) per class per day; the shared folder stages every 10th day (1, 11, ..., 111).

Decisions
---------
- Rate 2048 Hz: libemg's figure (KaufmannMD) only; neither the files nor the README give one (the
  spectrum, 20-500 Hz, is consistent with it). The ``rate`` option overrides it.
- Device ``mindmedia4`` (aemg/data/devices.py): placement is undocumented, so 4 electrodes equally
  spaced around one ring (the ``ring:4`` default). Channel 4 is 20-100 times weaker than 1-3; it
  is kept as it is. Units ``"a.u."`` (not stated; values are multiples of 0.001, +-1700).
- Classes are the ``C`` indices, named ``"C0"``..``"C10"``, and **none is rest**: C0 (libemg: "No
  Motion") holds a contraction from 1 s on, no class is at rest throughout, and the names libemg
  gives are unverified (kept in :data:`LIBEMG_NAMES` and meta ``libemg_name`` only). So
  ``info.rest_class`` is None: rest-calibrated tokenizing falls back to robust noise levels.
- subject ``"<s>"`` (``"0"``), session ``"day<d>"`` (cross-day evaluation), trial ``"C<c>"``,
  meta ``day`` = d and ``repetition`` = d - 1 (one trial per class per day: the intra-subject
  protocol leaves one day out).
"""
from __future__ import annotations

import re

import numpy as np

from ...errors import ConfigError
from ..recording import Recording
from . import register_reader
from .base import DatasetInfo, Reader, check_class, check_finite, match_name, parse_table, read_text

CLASSES = tuple(f"C{c}" for c in range(11))
#: libemg's (unverified) names for C0..C10; C0 is not a rest recording
LIBEMG_NAMES = ("No Motion", "Wrist Extension", "Wrist Flexion", "Wrist Adduction", "Wrist Abduction",
                "Wrist Supination", "Wrist Pronation", "Hand Open", "Hand Closed", "Key Grip", "Index Point")
_NAME = re.compile(r"S(?P<subject>\d+)_D(?P<day>\d+)_C(?P<cls>\d+)\.csv(\.gz)?")
RATE = 2048.0


@register_reader
class MultiDay4chReader(Reader):
    """Reader of the MultiDay 4-channel dataset (folder ``multiday_4ch``).

    Parameters
    ----------
    root : path or None
        The folder of ``S<s>_D<d>_C<c>.csv[.gz]`` files.
    rate : float
        Sampling rate, Hz (default libemg's 2048; not stated by the data).
    """

    info = DatasetInfo(
        name="multiday_4ch", device="mindmedia4", channels=4, rate=RATE, subjects=1, classes=CLASSES,
        units="a.u.",
        description="MultiDay (Kaufmann): 1 subject, 4-ch MindMedia, 12 staged days of 121, 11 classes "
                    "C0..C10 (no rest class; libemg's names unverified), 2048 Hz "
                    "per libemg (S0_D<d>_C<c>.csv.gz)",
        citation="Kaufmann P., Englehart K., Platzner M., Fluctuating EMG signals: investigating long-term "
                 "effects of pattern matching algorithms, IEEE EMBC 2010 "
                 "(ieeexplore.ieee.org/document/5627288)")
    default_folder = "multiday_4ch"
    download_hint = "github.com/LibEMG/MultiDay"

    def __init__(self, root=None, rate: float = RATE):
        super().__init__(root)
        if not (isinstance(rate, (int, float)) and np.isfinite(rate) and rate > 0):
            raise ConfigError(f"rate={rate!r}: expected a positive number of Hz")
        self.rate = float(rate)

    def sources(self) -> list[str]:
        return self.glob("S*_D*_C*.csv*", name=_NAME)

    def read(self, source: str) -> list[Recording]:
        path = self.path(source)
        m = match_name(_NAME, source.rsplit("/", 1)[-1], path)
        day, cls = int(m["day"]), check_class(path, int(m["cls"]), CLASSES)
        table = parse_table(read_text(path), path, n_columns=4)
        check_finite(path, table)
        return [self.recording(source, table.T.astype(np.float32), rate=self.rate, device="mindmedia4",
                               units="a.u.", subject=str(int(m["subject"])), session=f"day{day}",
                               trial=f"C{cls}", label=cls, classes=CLASSES,
                               meta={"day": day, "repetition": day - 1, "libemg_name": LIBEMG_NAMES[cls]})]
