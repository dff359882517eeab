"""CIIL datasets from LibEMG (ElectrodeShift, MinimalTrainingData): Myo armband, 5 classes, 200 Hz.

Layout (``R`` = repetition, ``C`` = class; comma-separated text, no header, 8 integer columns)::

    ElectrodeShift/subject<k>/training/R_<r>_C_<c>.csv[.gz]          5 reps before the shift
    ElectrodeShift/subject<k>/trial_<1..4>/R_<r>_C_<c>.csv[.gz]      2 reps each, after the shift
    ElectrodeShift/subject<k>/trial_0/...                            subjects 13 and 16 only
    MinimalTrainingData/subject<k>/train/R_0_C_<c>.csv[.gz]          1 rep of 1 s per class
    MinimalTrainingData/subject<k>/test/trial_<0..6>/R_<r>_C_<c>...  3 reps (trial_0), 2 (others)

plus ``metadata.json`` in every ``training``/``trial_*`` folder (``rep_idx``, ``class_idx``,
``class_name`` per file).

Decisions
---------
- Class order from the metadata, which all 184 files agree on: 0 hand close, 1 hand open,
  2 no motion (rest), 3 wrist extension, 4 wrist flexion. libemg's dictionary for these sets swaps
  3 and 4 (``{3: Flexion, 4: Extension}``); the dataset README's check (the RMS pattern of class 3
  is the closer one to hand open in 32 of 32 subjects, as wrist extension's is in Cote-Allard and
  3DC) supports the metadata, so libemg's names are not used. Where a ``metadata.json`` sits beside
  a file, its entry for that file is checked (class id and name, repetition): a disagreement raises
  DataError naming the metadata file.
- The two sets may or may not share people (undocumented), so subjects are prefixed:
  ``"shift-subject3"``, ``"minimal-subject3"`` (meta ``set``). Session = the folder holding the
  file (``training``, ``trial_1``, ...; ``train``, ``trial_0``, ...). Meta ``shifted``: False for
  ElectrodeShift ``training``, True for its ``trial_1..4`` (after the shift), None for ``trial_0``
  (read here although libemg skips it; whether it came before or after the shift is not
  documented) and for MinimalTrainingData. Reproduce libemg's split with
  ``sessions=training,trial_1,...``.
- trial id ``"R_<r>_C_<c>"`` (unique within a session); meta ``repetition`` = r (within the session, as
  Cote-Allard's cycles: the intra-subject protocol leaves one r out across the subject's sessions).
- ``split``: ``"both"`` (default), ``"electrode_shift"`` or ``"minimal"``.
"""
from __future__ import annotations

import os
import re
from functools import lru_cache

import numpy as np

from ...errors import DataError
from ..recording import Recording
from . import register_reader
from .base import (
    DatasetInfo,
    Reader,
    check_choice,
    check_class,
    check_finite,
    match_source,
    natural_key,
    parse_table,
    read_json,
    read_text,
)

CLASSES = ("hand close", "hand open", "no motion", "wrist extension", "wrist flexion")
#: the metadata's class names (class_name), in class-id order
METADATA_NAMES = ("Hand_Close", "Hand_Open", "No_Motion", "Wrist_Extension", "Wrist_Flexion")
#: libemg's names for the same ids (3 and 4 swapped; not used, see the module docstring)
LIBEMG_NAMES = ("Close", "Open", "Rest", "Flexion", "Extension")
SETS = {"electrode_shift": ("ElectrodeShift", "shift"), "minimal": ("MinimalTrainingData", "minimal")}
_NAME = re.compile(r"R_(?P<rep>\d+)_C_(?P<cls>\d+)\.csv(\.gz)?")
_FOLDER = re.compile(r"ElectrodeShift/(?P<es>subject\d+)/(?P<es_session>training|trial_\d+)"
                     r"|MinimalTrainingData/(?P<mt>subject\d+)/(?P<mt_session>train|test/trial_\d+)")
_LAYOUT = ("ElectrodeShift/subject<k>/<training|trial_<n>>/R_<r>_C_<c>.csv[.gz] or "
           "MinimalTrainingData/subject<k>/<train|test/trial_<n>>/R_<r>_C_<c>.csv[.gz]")


def _metadata(path: str) -> dict[str, dict]:
    """Entries of one ``metadata.json`` keyed by the file name they describe (``R_0_C_0.csv``);
    parsed once per version of the file (its size and modification time)."""
    stat = os.stat(path)
    return _parse_metadata(path, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _parse_metadata(path: str, size: int, mtime_ns: int) -> dict[str, dict]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(path, "expected a JSON object of file entries")
    return {key.rsplit("/", 1)[-1]: v for key, v in data.items() if isinstance(v, dict)}


@register_reader
class CiilMyoReader(Reader):
    """Reader of LibEMG's CIIL ElectrodeShift and MinimalTrainingData sets (folder ``ciil_myo``).

    Parameters
    ----------
    root : path or None
        The dataset folder (holding ``ElectrodeShift/`` and/or ``MinimalTrainingData/``).
    split : {"both", "electrode_shift", "minimal"}
        Which set(s) to read.
    """

    info = DatasetInfo(
        name="ciil_myo", device="myo", channels=8, rate=200.0, subjects=32, classes=CLASSES, units="int8",
        description="CIIL (LibEMG) Myo sets: ElectrodeShift 21 subjects (5 reps before, 8 after a shift) + "
                    "MinimalTrainingData 11 subjects (1 s train, 15 test reps); 5 classes, class order "
                    "from metadata.json (<set>/subject<k>/<session>/R_<r>_C_<c>.csv.gz)",
        citation="ElectrodeShift: J. NeuroEng. Rehabil. 2024, doi:10.1186/s12984-024-01355-4; "
                 "MinimalTrainingData: IEEE, ieeexplore.ieee.org/document/10394393; "
                 "data: github.com/LibEMG/CIILData")
    default_folder = "ciil_myo"
    download_hint = "github.com/LibEMG/CIILData"

    def __init__(self, root=None, split: str = "both"):
        super().__init__(root)
        self.split = check_choice("split", split, ("both", *SETS))

    def sources(self) -> list[str]:
        sets = SETS if self.split == "both" else {self.split: SETS[self.split]}
        out = [s for folder, _ in sets.values() for pattern in ("*/*/R_*.csv*", "*/*/*/R_*.csv*")
               for s in self.glob(f"{folder}/{pattern}", name=_NAME)]
        return sorted(out, key=natural_key)

    def read(self, source: str) -> list[Recording]:
        path = self.path(source)
        where, m = match_source(source, path, _FOLDER, _NAME, _LAYOUT)
        folder = "ElectrodeShift" if where["es"] else "MinimalTrainingData"
        subject = where["es"] or where["mt"]
        session = (where["es_session"] or where["mt_session"]).removeprefix("test/")
        rep, cls = int(m["rep"]), check_class(path, int(m["cls"]), CLASSES)
        meta_path = path.parent / "metadata.json"
        if meta_path.is_file():
            self._check_metadata(meta_path, m.group().removesuffix(".gz"), rep, cls)
        table = parse_table(read_text(path), path, delimiter=",", n_columns=8)
        check_finite(path, table)
        shifted = None
        if folder == "ElectrodeShift":
            shifted = False if session == "training" else (None if session == "trial_0" else True)
        prefix = next(p for f, p in SETS.values() if f == folder)
        return [self.recording(source, table.T.astype(np.float32), rate=200.0, device="myo", units="int8",
                               subject=f"{prefix}-{subject}", session=session, trial=f"R_{rep}_C_{cls}",
                               label=cls, classes=CLASSES,
                               meta={"repetition": rep, "set": folder, "shifted": shifted})]

    @staticmethod
    def _check_metadata(meta_path, name: str, rep: int, cls: int) -> None:
        """DataError unless ``meta_path``'s entry for ``name`` (when it has one) says ``rep``/``cls``."""
        entry = _metadata(str(meta_path)).get(name)
        if entry is None:
            return
        said = (entry.get("rep_idx"), entry.get("class_idx"), entry.get("class_name"))
        if said != (rep, cls, METADATA_NAMES[cls]):
            raise DataError(meta_path, f"entry for {name} says rep_idx={said[0]!r}, class_idx={said[1]!r}, "
                                       f"class_name={said[2]!r}; the file name and this reader's class "
                                       f"order say {rep}, {cls}, {METADATA_NAMES[cls]!r}")
