"""Ninapro DB1-DB5 (.mat files): one Recording per exercise file, per-sample labels.

Layout: ``[s<n>/]S<n>_E<k>_A1.mat`` (DB2-DB5) or ``S<n>_A1_E<k>.mat`` (DB1), anywhere under the
dataset folder. Variables: ``emg`` (T x C), ``restimulus`` / ``stimulus`` (T x 1, 0 = rest),
``rerepetition`` / ``repetition`` (T x 1), optionally ``frequency``. MATLAB v5 files are read with
:func:`scipy.io.loadmat`, v7.3 (HDF5) files with h5py.

Decisions
---------
- Class ids are global across exercises: 0 = rest, then the movements of E1, E2, E3 in order
  (DB1/DB4/DB5: 12 + 17 + 23 = 52; DB2/DB3: 17 + 23 + 9 = 49). Files that number movements per
  exercise (1..n) are shifted by the exercise offset; files already numbered globally are kept.
  Which one is decided per file from the label range (a mix raises DataError). Rest is a class
  (``"rest"``), not :data:`UNLABELLED`.
- ``label="restimulus"`` (default; the relabelled stimulus) or ``"stimulus"``; falls back to
  ``stimulus`` when ``restimulus`` is missing. Repetition runs go into
  ``meta["repetitions"] = [[start, end, repetition], ...]`` (sample indices, rest excluded) so that
  :func:`aemg.data.trials.split_trials` can tag each trial.
- When ``emg`` and the labels differ in length, both are truncated to the shorter
  (``meta["truncated_from"]`` keeps the original lengths).
- Device, rate and units per DB: DB1 ``ninapro_db1`` (10 ch, 100 Hz, a.u.), DB2/DB3/DB4
  ``ninapro12`` (12 ch, 2 kHz, V), DB5 ``ninapro_db5`` (16 ch, 200 Hz, int8). A ``frequency``
  variable in the file overrides the rate.
- subject = ``<n>`` from the file name, session ``"1"``, trial ``"E<k>"``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError, DataError
from ..recording import Recording, label_runs
from . import register_reader
from .base import DatasetInfo, Reader, check_choice, check_finite

_NAME = re.compile(r"S(?P<subject>\d+)_(?:A\d+_)?E(?P<exercise>\d+)(?:_A\d+)?\.mat", re.IGNORECASE)


@dataclass(frozen=True)
class _DB:
    device: str
    rate: float
    units: str
    moves: tuple[int, ...]  # movements per exercise E1, E2, E3
    subjects: int


DATABASES = {
    1: _DB("ninapro_db1", 100.0, "a.u.", (12, 17, 23), 27),
    2: _DB("ninapro12", 2000.0, "V", (17, 23, 9), 40),
    3: _DB("ninapro12", 2000.0, "V", (17, 23, 9), 11),
    4: _DB("ninapro12", 2000.0, "V", (12, 17, 23), 10),
    5: _DB("ninapro_db5", 200.0, "int8", (12, 17, 23), 10),
}


def _classes(db: _DB) -> tuple[str, ...]:
    names = ["rest"]
    for exercise, n in enumerate(db.moves, start=1):
        names += [f"E{exercise} movement {i}" for i in range(1, n + 1)]
    return tuple(names)


def load_mat(path, names: list[str]) -> dict[str, np.ndarray]:
    """Variables ``names`` (those present) of a MATLAB v5 or v7.3 file, as MATLAB-shaped arrays.

    v7.3 files are HDF5 and store arrays transposed; they are transposed back here so ``emg`` is
    (T, C) either way.
    """
    import h5py
    import scipy.io

    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as fh:
                return {n: np.asarray(fh[n]).T for n in names if n in fh}
        return {n: v for n, v in scipy.io.loadmat(path, variable_names=names).items() if n in names}
    except DataError:
        raise
    except Exception as exc:  # scipy/h5py raise many types for corrupt files; all mean "unreadable"
        raise DataError(path, f"cannot read MATLAB file ({type(exc).__name__}: {exc})") from None


@register_reader
class NinaproReader(Reader):
    """Reader of Ninapro DB1-DB5 exercise files (folder ``ninapro_db<db>``).

    Parameters
    ----------
    root : path or None
        The folder holding the .mat files (searched recursively).
    db : int
        Database number 1..5 (sets device, rate, units and the class list). Default 4, the
        paper's benchmark.
    label : {"restimulus", "stimulus"}
        Which label variable to use.
    """

    info = DatasetInfo(
        name="ninapro", device="ninapro12", channels=12, rate=2000.0, subjects=10,
        classes=_classes(DATABASES[4]), units="V",
        description="Ninapro DB1-DB5 (option db; default DB4: 12 Cometa electrodes at 2 kHz, 52 movements "
                    "+ rest; DB1 10 ch 100 Hz, DB5 16 ch 200 Hz) (S<n>_E<k>_A1.mat)",
        citation="Atzori M. et al., Electromyography data for non-invasive naturally-controlled robotic "
                 "hand prostheses, Scientific Data 1:140053, 2014; Pizzolato S. et al., PLoS ONE "
                 "12(10):e0186132, 2017")
    download_hint = "ninapro.hevs.ch; unzip the S<n>_E<k>_A1.mat files there"

    def __init__(self, root=None, db: int = 4, label: str = "restimulus"):
        if db not in DATABASES:
            raise ConfigError(f"db={db!r}: Ninapro databases are 1..5")
        self.db = int(db)
        self.spec = DATABASES[self.db]
        self.label = check_choice("label", label, ("restimulus", "stimulus"))
        self.classes = _classes(self.spec)
        super().__init__(root)

    @property
    def default_folder(self) -> str:  # type: ignore[override]
        return f"ninapro_db{self.db}"

    def sources(self) -> list[str]:
        return self.glob("**/*.mat", name=_NAME)

    def read(self, source: str) -> list[Recording]:
        path = self.path(source)
        m = _NAME.fullmatch(source.rsplit("/", 1)[-1])
        if m is None:
            raise DataError(path, "expected a file named S<n>_E<k>_A1.mat")
        subject, exercise = int(m["subject"]), int(m["exercise"])
        if not 1 <= exercise <= len(self.spec.moves):
            raise DataError(path, f"exercise E{exercise} does not exist in Ninapro DB{self.db}")
        other = "stimulus" if self.label == "restimulus" else "restimulus"
        v = load_mat(path, ["emg", self.label, other, "rerepetition", "repetition", "frequency"])
        if "emg" not in v:
            raise DataError(path, "no 'emg' variable")
        emg = np.asarray(v["emg"], dtype=np.float64)
        if emg.ndim != 2 or emg.size == 0:
            raise DataError(path, f"'emg' must be a non-empty T x C matrix, got shape {emg.shape}")
        label_name = self.label if self.label in v else ("stimulus" if "stimulus" in v else None)
        if label_name is None:
            raise DataError(path, f"no '{self.label}' or 'stimulus' variable")
        raw = np.asarray(v[label_name]).reshape(-1)
        rep_name = "rerepetition" if "rerepetition" in v else ("repetition" if "repetition" in v else None)
        reps = np.asarray(v[rep_name]).reshape(-1) if rep_name else None
        lengths = {"emg": emg.shape[0], label_name: raw.size}
        if reps is not None:
            lengths[rep_name] = reps.size
        n = min(lengths.values())
        emg, raw = emg[:n], raw[:n]
        check_finite(path, emg)
        labels = self._global_labels(raw, exercise, path)
        meta = {"db": self.db, "exercise": exercise, "label_variable": label_name}
        if len(set(lengths.values())) > 1:
            meta["truncated_from"] = {k: int(x) for k, x in lengths.items()}
        if reps is not None:
            meta["repetitions"] = _runs(np.where(labels > 0, reps[:n], 0).astype(np.int64))
        rate = float(np.asarray(v["frequency"]).reshape(-1)[0]) if "frequency" in v else self.spec.rate
        return [self.recording(source, emg.T.astype(np.float32), rate=rate, device=self.spec.device,
                               units=self.spec.units, subject=str(subject), session="1",
                               trial=f"E{exercise}", labels=labels, classes=self.classes, meta=meta)]

    def _global_labels(self, raw: np.ndarray, exercise: int, path) -> np.ndarray:
        """Per-exercise or global movement numbers -> global class ids (0 = rest)."""
        if not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)) or (raw.size and raw.min() < 0):
            raise DataError(path, "labels must be non-negative integers")
        raw = raw.astype(np.int64)
        offset = sum(self.spec.moves[:exercise - 1])
        count = self.spec.moves[exercise - 1]
        moving = raw[raw > 0]
        if moving.size == 0:
            return raw.astype(np.int32)
        lo, hi = int(moving.min()), int(moving.max())
        if offset < lo and hi <= offset + count:      # already global
            return raw.astype(np.int32)
        if hi <= count:                               # numbered within the exercise
            return np.where(raw > 0, raw + offset, 0).astype(np.int32)
        raise DataError(path, f"unknown labels {lo}..{hi} for E{exercise} of DB{self.db} "
                              f"(expected 1..{count} "
                              f"or {offset + 1}..{offset + count})")


def _runs(values: np.ndarray) -> list[list[int]]:
    """Runs of equal non-zero values as ``[start, end, value]`` (end exclusive)."""
    starts, ends = label_runs(values)
    return [[int(s), int(e), int(values[s])] for s, e in zip(starts, ends) if values[s] != 0]
