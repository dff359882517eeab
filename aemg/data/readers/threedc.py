"""3DC armband dataset (Cote-Allard et al.): 10 channels, 1 kHz, 11 gestures.

Layout: ``Participant<n>/<train|test>/EMG/3dc_EMG_gesture_<rep>_<class>.txt[.gz]``: comma-separated
text, no header, 10 integer columns (raw ADC counts, signed).

Decisions: subject = ``<n>``; session = the split folder (``train``/``test``); trial id
``<rep>_<class>``, trial label = ``<class>``, meta ``repetition``; units ``"adc"``.
"""
from __future__ import annotations

import re

from ...errors import DataError
from ..recording import Recording
from . import register_reader
from .base import DatasetInfo, Reader, check_class, check_finite, match_name, parse_table, read_text

CLASSES = ("neutral", "radial deviation", "wrist flexion", "ulnar deviation", "wrist extension",
           "supination", "pronation", "power grip", "open hand", "chuck grip", "pinch grip")
_NAME = re.compile(r"3dc_EMG_gesture_(?P<rep>\d+)_(?P<cls>\d+)\.txt(\.gz)?")
_SUBJECT = re.compile(r"Participant(?P<n>\d+)")


@register_reader
class ThreeDCReader(Reader):
    """Reader of the 3DC armband dataset (folder ``3dc_armband``)."""

    info = DatasetInfo(
        name="3dc", device="3dc", channels=10, rate=1000.0, subjects=22, classes=CLASSES, units="adc",
        description="3DC armband dataset: 10 channels at 1 kHz, 11 gestures, 4 train + 4 test cycles "
                    "(Participant<n>/<split>/EMG/3dc_EMG_gesture_<rep>_<class>.txt.gz)",
        citation="Cote-Allard U. et al., IEEE TNSRE 27(4):760-771, 2019; Cote-Allard U. et al., "
                 "Interpreting deep learning features for myoelectric control, Front. Bioeng. "
                 "Biotechnol. 8:158, 2020")
    default_folder = "3dc_armband"
    download_hint = "github.com/LibEMG/3DCDataset"

    def sources(self) -> list[str]:
        return self.glob("Participant*/*/EMG/3dc_EMG_gesture_*.txt*", name=_NAME)

    def read(self, source: str) -> list[Recording]:
        path = self.path(source)
        parts = source.split("/")
        subject = _SUBJECT.fullmatch(parts[0]) if len(parts) == 4 else None
        if subject is None:
            raise DataError(path, "expected Participant<n>/<split>/EMG/3dc_EMG_gesture_<rep>_<class>.txt")
        m = match_name(_NAME, parts[-1], path)
        rep, cls = int(m["rep"]), check_class(path, int(m["cls"]), CLASSES)
        table = parse_table(read_text(path), path, delimiter=",", n_columns=10)
        check_finite(path, table)
        return [self.recording(source, table.T, rate=1000.0, device="3dc", units="adc",
                               subject=subject["n"], session=parts[1], trial=f"{rep}_{cls}", label=cls,
                               classes=CLASSES, meta={"repetition": rep})]
