"""Long-term armband sEMG dataset (Kanoga et al., AIST): 8-channel armband, 22 motions, 5 x 10+ days.

Layout: ``data/sub<s>/day<d>/D<d>M<m>T<t>.csv[.gz]``: comma-separated text, no header, 300 rows x
8 float columns (a 1.5 s epoch of a 6 s trial at 200 Hz); ``m`` = motion 1..22 (M1 rest), ``t`` =
trial 1..4.

Decisions
---------
- Units ``"a.u."``: the values are pre-scaled, already high-pass filtered floats (about +-1.5,
  5 significant digits), not Myo counts; amplitude normalisation (rectify's gain) handles the scale.
- Device ``myo``: the repository never names the armband, but it was recorded with the Myo SDK at
  the Myo's 200 Hz and 8 channels (set_config.m) and shows the Myo recordings' 50 Hz notch.
- Class id ``m - 1`` (0 rest, ..., 21 supination + hand close; there is no hand-open class);
  subject ``"<s>"`` (``"1"``..``"5"``), session ``"day<d>"`` (cross-day evaluation), trial
  ``"M<m>T<t>"``, meta ``repetition`` = t - 1 (the intra-subject protocol leaves one trial number
  out across all days, as Cote-Allard's cycles across sessions), ``day`` = d and ``placement``:
  the armband placement of that day from set_config.m (``N``/``I``/``O``; what they mean is in the
  paper only). The ``D<d>`` of a file name must match its ``day<d>`` folder.
"""
from __future__ import annotations

import re

import numpy as np

from ...errors import DataError
from ..recording import Recording
from . import register_reader
from .base import DatasetInfo, Reader, check_finite, match_source, parse_table, read_text

CLASSES = ("rest", "wrist flexion", "wrist extension", "radial deviation", "ulnar deviation",
           "forearm pronation", "forearm supination", "hand close", "flexion + pronation",
           "extension + pronation",
           "radial deviation + pronation", "ulnar deviation + pronation", "flexion + supination",
           "extension + supination", "radial deviation + supination", "ulnar deviation + supination",
           "flexion + hand close", "extension + hand close", "radial deviation + hand close",
           "ulnar deviation + hand close", "pronation + hand close", "supination + hand close")
#: set_config.m ``pos``: the armband placement on days 1..30
PLACEMENTS = "NIONIIOONN" "ONNOOIIINO" "OIOIINNINO"
_NAME = re.compile(r"D(?P<day>\d+)M(?P<motion>\d+)T(?P<trial>\d+)\.csv(\.gz)?")
_FOLDER = re.compile(r"data/sub(?P<subject>\d+)/day(?P<day>\d+)")


@register_reader
class SuguruLongtermReader(Reader):
    """Reader of the long-term armband sEMG dataset (folder ``suguru_longterm_armband``)."""

    info = DatasetInfo(
        name="suguru_longterm_armband", device="myo", channels=8, rate=200.0, subjects=5, classes=CLASSES,
        units="a.u.",
        description="Kanoga long-term armband (Myo SDK, 8 ch): 5 subjects x 10 "
                    "staged days (of 30), rest + 21 motions x 4 trials, 1.5 s pre-filtered float epochs "
                    "(data/sub<s>/day<d>/D<d>M<m>T<t>.csv.gz)",
        citation="Kanoga S., Kanemura A., Asoh H., Are armband sEMG devices dense enough for long-term use? "
                 "Biomed. Signal Process. Control, 2020")
    default_folder = "suguru_longterm_armband"
    download_hint = "github.com/Suguru55/Wearable_Sensor_Long-term_sEMG_Dataset"

    def sources(self) -> list[str]:
        return self.glob("data/sub*/day*/D*M*T*.csv*", name=_NAME)

    def read(self, source: str) -> list[Recording]:
        path = self.path(source)
        where, m = match_source(source, path, _FOLDER, _NAME, "data/sub<s>/day<d>/D<d>M<m>T<t>.csv[.gz]")
        day, motion, trial = int(m["day"]), int(m["motion"]), int(m["trial"])
        if day != int(where["day"]):
            raise DataError(path, f"file name says day {day} but it is in folder day{where['day']}")
        if not (1 <= motion <= len(CLASSES) and trial >= 1):
            raise DataError(path, f"unknown motion M{motion} or trial T{trial} "
                                  f"(expected M1..M{len(CLASSES)}, T1..)")
        table = parse_table(read_text(path), path, delimiter=",", n_columns=8)
        check_finite(path, table)
        placement = PLACEMENTS[day - 1] if 1 <= day <= len(PLACEMENTS) else None
        return [self.recording(source, table.T.astype(np.float32), rate=200.0, device="myo", units="a.u.",
                               subject=where["subject"], session=f"day{day}", trial=f"M{motion}T{trial}",
                               label=motion - 1, classes=CLASSES,
                               meta={"repetition": trial - 1, "day": day, "placement": placement})]
