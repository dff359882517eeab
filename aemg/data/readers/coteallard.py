"""Cote-Allard "MyoArmbandDataset" (TNSRE 2019): Myo armband, 7 gestures, 200 Hz.

Layout: ``{PreTrainingDataset,EvaluationDataset}/<Female|Male><n>/<training0|Test0|Test1>/
classe_<i>.dat[.gz]``: raw little-endian int16, channel-interleaved (8 channels), no header.

Decisions
---------
- Trial label ``i % 7``, repetition ``i // 7`` (meta ``repetition``), trial id ``str(i)``.
- The two parts have different people with the same folder names, so subjects are prefixed:
  ``"pre-Female0"``, ``"eval-Male3"`` (meta ``part``). Session = the session folder name.
- Units ``"int8"`` (Myo 8-bit values stored as int16).
"""
from __future__ import annotations

import re

import numpy as np

from ...errors import DataError
from ..recording import Recording
from . import register_reader
from .base import DatasetInfo, Reader, check_choice, match_name, natural_key, read_bytes

CLASSES = ("neutral", "radial deviation", "wrist flexion", "ulnar deviation", "wrist extension",
           "hand close", "hand open")
PARTS = {"pretraining": ("PreTrainingDataset", "pre"), "evaluation": ("EvaluationDataset", "eval")}
_NAME = re.compile(r"classe_(?P<index>\d+)\.dat(\.gz)?")
_CHANNELS = 8


@register_reader
class CoteAllardReader(Reader):
    """Reader of the Cote-Allard Myo armband dataset (folder ``coteallard_myoarmband``).

    Parameters
    ----------
    root : path or None
        The dataset folder (holding ``PreTrainingDataset/`` and/or ``EvaluationDataset/``).
    split : {"both", "pretraining", "evaluation"}
        Which part(s) to read.
    """

    info = DatasetInfo(
        name="coteallard", device="myo", channels=8, rate=200.0, subjects=40, classes=CLASSES, units="int8",
        description="Cote-Allard Myo armband dataset: 22 pre-training + 18 evaluation subjects (3 sessions), "
                    "7 gestures x 4 cycles (<part>/<subject>/<session>/classe_<i>.dat.gz)",
        citation="Cote-Allard U. et al., Deep learning for electromyographic hand gesture signal "
                 "classification using transfer learning, IEEE TNSRE 27(4):760-771, 2019")
    default_folder = "coteallard_myoarmband"
    download_hint = "github.com/UlysseCoteAllard/MyoArmbandDataset"

    def __init__(self, root=None, split: str = "both"):
        super().__init__(root)
        self.split = check_choice("split", split, ("both", *PARTS))

    def sources(self) -> list[str]:
        parts = PARTS if self.split == "both" else {self.split: PARTS[self.split]}
        out = [s for folder, _ in parts.values()
               for s in self.glob(f"{folder}/*/*/classe_*.dat*", name=_NAME)]
        return sorted(out, key=natural_key)

    def read(self, source: str) -> list[Recording]:
        path = self.path(source)
        parts = source.split("/")
        if len(parts) != 4:
            raise DataError(path, "expected <part>/<subject>/<session>/classe_<i>.dat[.gz]")
        folder, subject, session, name = parts
        index = int(match_name(_NAME, name, path)["index"])
        prefix = {f: p for f, p in PARTS.values()}.get(folder)
        if prefix is None:
            expected = [f for f, _ in PARTS.values()]
            raise DataError(path, f"unknown part folder {folder!r} (expected one of {expected})")
        raw = read_bytes(path)
        frame = 2 * _CHANNELS
        if len(raw) % frame:
            raise DataError(path, f"size {len(raw)} bytes is not a multiple of the {frame}-byte frame "
                                  f"({_CHANNELS} int16 channels): truncated file?")
        data = np.frombuffer(raw, dtype="<i2").reshape(-1, _CHANNELS).T  # Recording: one float32 copy
        part = next(k for k, (f, _) in PARTS.items() if f == folder)
        return [self.recording(source, data, rate=200.0, device="myo", units="int8",
                               subject=f"{prefix}-{subject}", session=session, trial=str(index),
                               label=index % len(CLASSES), classes=CLASSES,
                               meta={"repetition": index // len(CLASSES), "part": part})]
