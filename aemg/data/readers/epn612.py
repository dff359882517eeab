"""EMG-EPN-612 (JSON): Myo armband, 8 channels, 200 Hz, 5 gestures + no gesture, 612 users.

Layout: ``{training,testing}JSON/user<n>/user<n>.json``, each with ``generalInfo``,
``trainingSamples`` and ``testingSamples``; a sample ``idx_<k>`` has ``emg`` (``ch1``..``ch8``
lists), ``gestureName`` and, for gestures, ``groundTruth`` (0/1 per sample). The testing
samples of the ``testingJSON`` users have no ``gestureName`` (the challenge's hidden labels).

Decisions
---------
- One source per user file; one Recording per sample. subject ``"<split>-<n>"`` (the two splits
  hold different people: ``"training-12"``, ``"testing-12"``), session ``"training"`` /
  ``"testing"`` (the sample set), trial ``"<k>"``.
- Trial ``label`` = gesture id (0 noGesture, 1 fist, 2 waveIn, 3 waveOut, 4 open, 5 pinch); per-sample
  ``labels`` = the gesture where ``groundTruth`` is 1, noGesture (0) elsewhere. Samples without
  ``gestureName`` get neither (usable for pre-training only).
- Units: integer values are Myo counts (``"int8"``); values in [-1, 1] that are multiples of 1/128
  are scaled back to counts (``"int8"``); anything else is kept as ``"a.u."``.
- The rate comes from ``generalInfo.samplingFrequencyInHertz`` when present, else 200 Hz.
"""
from __future__ import annotations

import re

import numpy as np

from ...errors import DataError
from ..recording import Recording
from . import register_reader
from .base import DatasetInfo, Reader, read_json

CLASSES = ("noGesture", "fist", "waveIn", "waveOut", "open", "pinch")
_NAME = re.compile(r"(?P<split>[A-Za-z]+)JSON/user(?P<n>\d+)/user(?P=n)\.json")
_SAMPLE = re.compile(r"idx_(?P<k>\d+)")


def _to_counts(emg: np.ndarray) -> tuple[np.ndarray, str]:
    """(C, T) Myo samples -> (samples, units): int8 counts when the values allow it."""
    if np.all(emg == np.round(emg)):
        return emg, "int8"
    scaled = emg * 128.0
    if np.abs(emg).max() <= 1.0 and np.all(np.abs(scaled - np.round(scaled)) < 1e-6):
        return np.round(scaled), "int8"
    return emg, "a.u."


@register_reader
class Epn612Reader(Reader):
    """Reader of EMG-EPN-612 JSON files (folder ``emg_epn612``).

    Parameters
    ----------
    root : path or None
        The folder holding ``trainingJSON/`` and/or ``testingJSON/``.
    """

    info = DatasetInfo(
        name="epn612", device="myo", channels=8, rate=200.0, subjects=612, classes=CLASSES, units="int8",
        description="EMG-EPN-612: Myo armband, 5 gestures + no gesture, 612 users, 5 s samples "
                    "({split}JSON/user<n>/user<n>.json)",
        citation="Benalcazar M. et al., EMG-EPN-612 dataset, Zenodo 4421500, 2020")
    default_folder = "emg_epn612"
    download_hint = "zenodo.org/record/4421500 (EMG-EPN-612), unzipped"

    def sources(self) -> list[str]:
        return [s for s in self.glob("*JSON/user*/user*.json") if _NAME.fullmatch(s)]

    def read(self, source: str) -> list[Recording]:
        path = self.path(source)
        m = _NAME.fullmatch(source)
        if m is None:
            raise DataError(path, "expected <split>JSON/user<n>/user<n>.json")
        doc = read_json(path)
        if not isinstance(doc, dict):
            raise DataError(path, "expected a JSON object with trainingSamples/testingSamples")
        info = doc.get("generalInfo") or {}
        rate = float(info.get("samplingFrequencyInHertz") or 200.0)
        subject = f"{m['split']}-{int(m['n'])}"
        out: list[Recording] = []
        found = False
        for key, session in (("trainingSamples", "training"), ("testingSamples", "testing")):
            samples = doc.get(key)
            if samples is None:
                continue
            found = True
            if not isinstance(samples, dict):
                raise DataError(path, f"{key} must be an object of idx_<k> samples")
            for name in sorted(samples, key=lambda s: (len(s), s)):
                where = f"{key}/{name}"
                k = _SAMPLE.fullmatch(name)
                if k is None:
                    raise DataError(path, f"{where}: unexpected sample name (expected idx_<k>)")
                out.append(self._sample(source, path, where, samples[name], rate, subject, session, k["k"]))
        if not found:
            raise DataError(path, "no trainingSamples or testingSamples")
        return out

    def _sample(self, source, path, where, sample, rate, subject, session, k) -> Recording:
        emg = sample.get("emg") if isinstance(sample, dict) else None
        if not isinstance(emg, dict) or not emg:
            raise DataError(path, f"{where}: no 'emg' channels")
        names = sorted(emg, key=lambda c: (len(c), c))
        lengths = {len(emg[c]) if isinstance(emg[c], list) else -1 for c in names}
        if len(lengths) != 1 or -1 in lengths:
            raise DataError(path, f"{where}: channels {names} have different lengths or are not lists")
        try:
            data = np.asarray([emg[c] for c in names], dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(path, f"{where}: emg values must be numbers") from None
        if data.shape[1] == 0:
            raise DataError(path, f"{where}: empty emg")
        if not np.all(np.isfinite(data)):
            ch, t = np.argwhere(~np.isfinite(data))[0]
            raise DataError(path, f"{where}: non-finite sample (NaN or inf) at {names[ch]}, sample {t}")
        data, units = _to_counts(data)
        label = labels = None
        gesture = sample.get("gestureName")
        if gesture is not None:
            if gesture not in CLASSES:
                raise DataError(path, f"{where}: unknown gesture {gesture!r} (expected one of {CLASSES})")
            label = CLASSES.index(gesture)
            truth = sample.get("groundTruth")
            if truth is not None and label != 0:
                truth = np.asarray(truth).reshape(-1)
                if truth.shape != (data.shape[1],):
                    raise DataError(path, f"{where}: groundTruth has {truth.size} values for "
                                          f"{data.shape[1]} samples")
                labels = np.where(truth > 0, label, 0).astype(np.int32)
        return self.recording(source, data.astype(np.float32), rate=rate, device="myo", units=units,
                              subject=subject, session=session, trial=k, label=label, labels=labels,
                              classes=CLASSES, meta={"sample": where})
