"""The data model: one continuous EMG recording with its device, provenance and labels.

Conventions (everywhere in aemg): samples are **channels x time** ``(C, T)`` float32; rates in Hz;
times in seconds. Labels are integer class ids aligned to samples: ``labels[t]`` is the class of
sample ``t``; :data:`UNLABELLED` (-1) marks samples with no class (transitions, unmarked rows).
A recording of one held gesture (a *trial*) also has a trial-level ``label``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from ..errors import DataError
from .devices import Device, device_from_dict, get_device

UNLABELLED = -1
UNITS = ("int8", "adc", "V", "mV", "uV", "a.u.", "standard")


@dataclass(eq=False)
class Recording:
    """One continuous multichannel EMG recording.

    Attributes
    ----------
    data : np.ndarray, shape (C, T), float32
        Samples, channels x time, in ``units``.
    rate : float
        Sampling rate, Hz (> 0).
    device : Device
        Electrode geometry; ``device.n_channels == C``.
    units : str
        One of :data:`UNITS`; ``"standard"`` after rectification.
    subject, session, trial : str
        Provenance (strings so that dataset ids like ``"Female3"`` survive).
    dataset : str
        Reader / dataset name, e.g. ``"coteallard"``.
    label : int or None
        Trial-level class id (the gesture held during the trial), None if the recording holds
        several gestures (then see ``labels``).
    labels : np.ndarray, shape (T,), int32, or None
        Per-sample class ids, :data:`UNLABELLED` where unknown.
    classes : tuple of str
        Class names indexed by class id (may be empty when unknown).
    source : str
        The file (or files) the recording came from, for error messages and the archive index.
    meta : dict
        Anything else (JSON-serialisable), e.g. ``{"repetition": 2}``.
    times : np.ndarray, shape (T,), float64, or None
        Sample times in seconds for irregularly logged data (e.g. the UCI Myo files); None for
        uniform sampling at ``rate``. Non-decreasing. Rectification resamples onto a uniform grid
        and drops it; ``rate`` is then the nominal rate.
    """

    data: np.ndarray
    rate: float
    device: Device
    units: str = "a.u."
    subject: str = "0"
    session: str = "0"
    trial: str = "0"
    dataset: str = ""
    label: int | None = None
    labels: np.ndarray | None = None
    classes: tuple[str, ...] = ()
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    times: np.ndarray | None = None

    def __post_init__(self):
        where = self.source or f"recording {self.dataset}/{self.subject}/{self.session}/{self.trial}"
        self.device = get_device(self.device)
        data = np.asarray(self.data)
        if data.ndim != 2:
            raise DataError(where, f"samples must be 2-D (channels, time), got shape {data.shape}")
        if data.shape[0] != self.device.n_channels:
            raise DataError(where, f"{data.shape[0]} channels but device {self.device.name!r} "
                                   f"has {self.device.n_channels}")
        if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
            raise DataError(where, f"samples must be real numbers, got dtype {data.dtype}")
        integers = data.dtype.kind in "iub"  # every value of at most 64 bits is finite in float32
        data = np.ascontiguousarray(data, dtype=np.float32)
        # a finite sum proves every sample finite (NaN and inf propagate) in one read without a
        # temporary; only when it is not (a bad sample, or float32 overflow) is each one checked
        with np.errstate(over="ignore", invalid="ignore"):
            finite = integers or not data.size or np.isfinite(data.sum()) or bool(np.all(np.isfinite(data)))
        if not finite:
            bad = np.argwhere(~np.isfinite(data))[0]
            raise DataError(where, f"non-finite sample (NaN or inf) at channel {bad[0] + 1}, "
                                   f"sample {bad[1] + 1} (1-based; t = {bad[1] / float(self.rate):.3f} s)"
                            if self.rate and self.rate > 0 else "non-finite sample (NaN or inf)")
        self.data = data
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float, np.integer, np.floating)):
            raise DataError(where, f"sampling rate must be a positive number of Hz, got {self.rate!r}")
        if not (np.isfinite(self.rate) and self.rate > 0):
            raise DataError(where, f"sampling rate must be a positive number of Hz, got {self.rate!r}")
        self.rate = float(self.rate)
        if self.units not in UNITS:
            raise DataError(where, f"unknown units {self.units!r}; expected one of {UNITS}")
        if self.labels is not None:
            lab = np.asarray(self.labels)
            if lab.shape != (data.shape[1],):
                raise DataError(where, f"labels have shape {lab.shape}, expected ({data.shape[1]},) "
                                       "(one per sample)")
            if lab.size and not np.issubdtype(lab.dtype, np.integer):
                if not np.all(np.isfinite(lab)) or not np.all(lab == np.round(lab)):
                    raise DataError(where, "labels must be integer class ids")
            self.labels = np.ascontiguousarray(lab, dtype=np.int32)
            if self.labels.size and self.labels.min() < UNLABELLED:
                raise DataError(where, f"label {self.labels.min()} is negative (only {UNLABELLED} "
                                       "= unlabelled is allowed)")
        if self.label is not None:
            if isinstance(self.label, bool) or not isinstance(self.label,
                                                              (int, float, np.integer, np.floating)) \
                    or not float(self.label).is_integer():
                raise DataError(where, f"trial label must be an integer class id, got {self.label!r}")
            self.label = int(self.label)
            if self.label < 0:
                raise DataError(where, f"trial label must be >= 0, got {self.label}")
        self.classes = tuple(self.classes)
        if self.classes:
            top = max([self.label or 0] + ([int(self.labels.max())] if self.labels is not None
                                            and self.labels.size else []))
            if top >= len(self.classes):
                raise DataError(where, f"class id {top} has no name: only {len(self.classes)} "
                                       f"classes {self.classes}")
        if self.times is not None:
            t = np.ascontiguousarray(self.times, dtype=np.float64)
            if t.shape != (data.shape[1],):
                raise DataError(where, f"times have shape {t.shape}, expected ({data.shape[1]},)")
            if t.size and not np.all(np.isfinite(t)):
                raise DataError(where, "timestamps must be finite")
            i = first_backwards(t)
            if i is not None:
                raise DataError(where, f"timestamps go backwards at sample {i + 1} (1-based): "
                                       f"{t[i - 1]:.6g} s -> {t[i]:.6g} s")
            self.times = t
        self.subject, self.session, self.trial = str(self.subject), str(self.session), str(self.trial)

    @classmethod
    def trusted(cls, data: np.ndarray, rate: float, device: Device, units: str, subject: str, session: str,
                trial: str, dataset: str, label: int | None, labels: np.ndarray | None,
                classes: tuple[str, ...], source: str, meta: dict[str, Any],
                times: np.ndarray | None = None) -> "Recording":
        """A Recording of fields that already are what validation would make of them, without the
        checks (about 40 us of a short recording's fixed cost): ``data`` (C, T) float32 C-contiguous
        with ``C == device.n_channels`` and finite, ``rate`` a positive float, ``device`` a Device,
        ``labels`` (T,) int32 contiguous or None, ``label`` a non-negative int or None, ``classes`` a
        tuple, the three ids strings, ``times`` None or (T,) float64. For producers that derived
        every field from a validated Recording (:func:`aemg.data.rectify.finish_rectified`);
        anything else goes through the constructor."""
        rec = cls.__new__(cls)
        rec.__dict__.update(data=data, rate=rate, device=device, units=units, subject=subject,
                            session=session, trial=trial, dataset=dataset, label=label, labels=labels,
                            classes=classes, source=source, meta=meta, times=times)
        return rec

    # -- shape helpers -------------------------------------------------------------------------
    @property
    def n_channels(self) -> int:
        return int(self.data.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        if self.times is not None and self.times.size:
            return float(self.times[-1] - self.times[0]) + 1.0 / self.rate
        return self.n_samples / self.rate

    @property
    def key(self) -> str:
        """Unique id within an archive: ``dataset/subject/session/trial``."""
        return f"{self.dataset}/{self.subject}/{self.session}/{self.trial}"

    def with_data(self, data: np.ndarray, **changes) -> "Recording":
        """A copy with new samples (and optionally other fields, e.g. ``rate``, ``labels``)."""
        return replace(self, data=data, **changes)

    def intervals(self) -> list[tuple[float, float, int]]:
        """Per-sample labels as ``(start_s, end_s, class)`` runs, unlabelled runs left out.

        A recording with only a trial-level label gives one interval over the whole recording.
        """
        if self.labels is None:
            return [] if self.label is None else [(0.0, self.duration, self.label)]
        return labels_to_intervals(self.labels, self.rate)

    # -- serialisation -----------------------------------------------------------------------
    def header(self) -> dict[str, Any]:
        """Everything but the arrays, JSON-serialisable (inverse: :meth:`from_header`)."""
        return {"rate": self.rate, "device": self.device.to_dict(), "units": self.units,
                "subject": self.subject, "session": self.session, "trial": self.trial,
                "dataset": self.dataset, "label": self.label, "classes": list(self.classes),
                "source": self.source, "meta": self.meta}

    @classmethod
    def from_header(cls, header: dict[str, Any], data: np.ndarray,
                    labels: np.ndarray | None = None, times: np.ndarray | None = None) -> "Recording":
        h = dict(header)
        h["times"] = times
        h["device"] = device_from_dict(h["device"])
        h["classes"] = tuple(h.get("classes", ()))
        return cls(data=data, labels=labels, **h)

    def __repr__(self) -> str:
        return (f"Recording({self.key!r}, channels={self.n_channels}, samples={self.n_samples}, "
                f"rate={self.rate:g} Hz, units={self.units!r}, device={self.device.name!r}, "
                f"label={self.label})")


def labels_to_intervals(labels: np.ndarray, rate: float) -> list[tuple[float, float, int]]:
    """Runs of equal per-sample labels as ``(start_s, end_s, class)``, unlabelled runs left out."""
    labels = np.asarray(labels)
    starts, ends = label_runs(labels)
    return [(s / rate, e / rate, int(labels[s])) for s, e in zip(starts, ends) if labels[s] != UNLABELLED]


def label_runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of equal consecutive values of a 1-D array (per-sample labels, repetition ids).

    Returns
    -------
    starts, ends : (R,) int64
        Run r covers ``values[starts[r]:ends[r]]`` (end exclusive); both empty for an empty array.
    """
    values = np.asarray(values)
    if values.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    change = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate([[0], change]).astype(np.int64)
    return starts, np.concatenate([change, [values.size]]).astype(np.int64)


def first_backwards(times: np.ndarray) -> int | None:
    """Index ``i`` of the first timestamp earlier than the one before it (``times[i] < times[i-1]``),
    or None when ``times`` (T,) never goes backwards."""
    back = np.flatnonzero(np.diff(np.asarray(times, dtype=np.float64)) < 0)
    return int(back[0]) + 1 if back.size else None


def intervals_to_labels(intervals: Sequence[tuple[float, float, int]], n_samples: int,
                        rate: float) -> np.ndarray:
    """Per-sample labels (T,) int32 from ``(start_s, end_s, class)`` intervals; gaps unlabelled."""
    out = np.full(n_samples, UNLABELLED, dtype=np.int32)
    for start, end, cls in intervals:
        if end < start:
            raise DataError("intervals", f"interval ({start}, {end}) ends before it starts")
        out[int(round(start * rate)):int(round(end * rate))] = cls
    return out
