"""A small reader for PhysioNet WFDB records (``.hea`` header + ``.dat`` signal files).

Supports the header fields aemg needs (signal count, sampling frequency, sample count, per-signal
file, format, byte offset, gain, baseline, units, description) and the two common storage formats:
16 (little-endian int16) and 212 (two 12-bit samples packed in 3 bytes). Signals stored in one
file are interleaved frame by frame. See https://physionet.org/physiotools/wag/header-5.htm.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import DataError
from .base import read_bytes, read_text

_FORMAT = re.compile(r"(?P<fmt>\d+)(?:x(?P<spf>\d+))?(?::(?P<skew>\d+))?(?:\+(?P<offset>\d+))?")
_GAIN = re.compile(r"(?P<gain>[-+0-9.eE]+)(?:\((?P<baseline>[-+0-9]+)\))?(?:/(?P<units>\S+))?")
INVALID = {16: -32768, 212: -2048}


@dataclass(frozen=True)
class Signal:
    """One signal line of a WFDB header."""

    file: str
    fmt: int
    offset: int
    gain: float
    baseline: int
    units: str
    description: str


@dataclass(frozen=True)
class Header:
    """A parsed WFDB single-segment header."""

    record: str
    fs: float
    n_samples: int | None
    signals: tuple[Signal, ...]


def read_header(path: str | Path) -> Header:
    """Parse a ``.hea`` file; DataError names the line at fault."""
    lines = [(i, ln.strip()) for i, ln in enumerate(read_text(path).splitlines(), start=1)]
    lines = [(i, ln) for i, ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise DataError(path, "empty WFDB header")
    number, first = lines[0]
    fields = first.split()
    if len(fields) < 2 or "/" in fields[0]:
        raise DataError(path, f"line {number}: expected '<record> <n_signals> [fs [n_samples]]' "
                              "(multi-segment records are not supported)")
    try:
        n_sig = int(fields[1])
        fs = float(re.split(r"[/(]", fields[2])[0]) if len(fields) > 2 else 250.0
        n_samples = int(fields[3]) if len(fields) > 3 else None
    except ValueError:
        raise DataError(path, f"line {number}: cannot parse record line {first!r}") from None
    if n_sig < 1 or fs <= 0:
        raise DataError(path, f"line {number}: need >= 1 signal and a positive frequency")
    if len(lines) - 1 < n_sig:
        raise DataError(path, f"header announces {n_sig} signals but has {len(lines) - 1} signal lines")
    signals = []
    for number, line in lines[1:n_sig + 1]:
        parts = line.split(maxsplit=8)
        fm = _FORMAT.fullmatch(parts[1]) if len(parts) > 1 else None
        if fm is None:
            raise DataError(path, f"line {number}: cannot parse signal line {line!r}")
        if fm["spf"] not in (None, "1") or fm["skew"] not in (None, "0"):
            raise DataError(path, f"line {number}: multi-frequency or skewed signals are not supported")
        gain, baseline, units = 200.0, None, "mV"
        if len(parts) > 2:
            gm = _GAIN.fullmatch(parts[2])
            if gm is None:
                raise DataError(path, f"line {number}: cannot parse gain {parts[2]!r}")
            gain = float(gm["gain"]) or 200.0
            baseline = int(gm["baseline"]) if gm["baseline"] else None
            units = gm["units"] or units
        adc_zero = int(parts[4]) if len(parts) > 4 else 0
        signals.append(Signal(parts[0], int(fm["fmt"]), int(fm["offset"] or 0), gain,
                              adc_zero if baseline is None else baseline, units,
                              parts[8] if len(parts) > 8 else ""))
    return Header(fields[0], fs, n_samples, tuple(signals))


def _decode(raw: bytes, fmt: int, n_signals: int, path) -> np.ndarray:
    """Bytes of one signal file -> digital samples (T, n_signals) int32."""
    if fmt == 16:
        frame = 2 * n_signals
        if len(raw) % frame:
            raise DataError(path, f"size {len(raw)} bytes is not a multiple of the {frame}-byte frame "
                                  f"({n_signals} int16 signals): truncated file?")
        return np.frombuffer(raw, dtype="<i2").reshape(-1, n_signals).astype(np.int32)
    if fmt == 212:
        n_values = (len(raw) * 2) // 3
        if n_values % n_signals or len(raw) % 3 not in (0, 2):
            raise DataError(path, f"size {len(raw)} bytes does not hold whole frames of {n_signals} "
                                  "12-bit signals: truncated file?")
        b = np.frombuffer(raw[: (len(raw) // 3) * 3], dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        pairs = np.stack([b[:, 0] | ((b[:, 1] & 0x0F) << 8), b[:, 2] | ((b[:, 1] & 0xF0) << 4)], axis=1)
        values = pairs.reshape(-1)
        if len(raw) % 3 == 2:  # an odd number of samples: the last one has 2 bytes
            values = np.append(values, raw[-2] | ((raw[-1] & 0x0F) << 8))
        values = np.where(values >= 2048, values - 4096, values)
        return values[: (values.size // n_signals) * n_signals].reshape(-1, n_signals)
    raise DataError(path, f"WFDB format {fmt} is not supported (only 16 and 212)")


def read_record(header_path: str | Path) -> tuple[Header, np.ndarray]:
    """Read a record: its header and physical samples (C, T) float64 in the header's units.

    Invalid samples (WFDB's -32768 / -2048) become NaN.
    """
    header_path = Path(header_path)
    header = read_header(header_path)
    columns: list[np.ndarray | None] = [None] * len(header.signals)
    by_file: dict[tuple[str, int, int], list[int]] = {}
    for i, sig in enumerate(header.signals):
        by_file.setdefault((sig.file, sig.fmt, sig.offset), []).append(i)
    for (name, fmt, offset), members in by_file.items():
        path = header_path.parent / name
        if not path.exists() and (header_path.parent / (name + ".gz")).exists():
            path = header_path.parent / (name + ".gz")
        if not path.exists():
            raise DataError(path, "signal file named in the header not found")
        raw = read_bytes(path)[offset:]
        digital = _decode(raw, fmt, len(members), path)
        if header.n_samples is not None:
            if digital.shape[0] < header.n_samples:
                raise DataError(path, f"{digital.shape[0]} samples but the header says {header.n_samples}: "
                                      "truncated file?")
            digital = digital[: header.n_samples]
        for j, i in enumerate(members):
            sig = header.signals[i]
            col = (digital[:, j] - sig.baseline) / sig.gain
            columns[i] = np.where(digital[:, j] == INVALID[fmt], np.nan, col)
    lengths = {c.size for c in columns}
    if len(lengths) != 1:
        raise DataError(header_path, f"signal files have different lengths {sorted(lengths)}")
    return header, np.stack(columns)

