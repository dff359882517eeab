"""The measurement that chose the standard rate (500 Hz): the share of 3DC's signal power above
candidate Nyquist frequencies, i.e. what each standard rate would lose (docs/notes/rectify.md).

Usage: python scripts/measure_rate.py [--data-root ROOT] [--limit 88]

Reads ``limit`` 3DC training-split recordings (1 kHz) spread evenly over the sorted files with the
``3dc`` reader (folder ``ROOT/3dc_armband``; default root: ``$AEMG_DATA_ROOT``, else
``../shared/data``) and prints :func:`aemg.data.rectify.power_above` (Welch PSD, 20 Hz and up)
as the median over files and pooled over files. Moved here from ``python -m aemg.data.rectify
--measure-rate`` (same output).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from aemg.data.paths import default_data_root
from aemg.data.readers import get_reader
from aemg.data.rectify import power_above
from aemg.errors import DataError

RATES = [200, 250, 400, 500, 640, 800, 1000]  # candidate standard rates; 1000: 3DC's own


def load_3dc(root, limit: int) -> list[tuple[np.ndarray, float]]:
    """``limit`` 3DC training-split recordings spread evenly over the sorted files, as
    ``(data (C, T), rate)`` pairs, read with the ``3dc`` reader (folder ``<root>/3dc_armband``)."""
    reader = get_reader("3dc", Path(root, "3dc_armband"))
    sources = sorted(s for s in reader.sources() if s.split("/")[1] == "train")
    if not sources:
        raise DataError(reader.root, "no 3DC recordings found")
    step = max(1, len(sources) // limit)
    return [(rec.data, rec.rate) for source in sources[::step][:limit] for rec in reader.read(source)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python scripts/measure_rate.py", description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None,
                    help="folder holding 3dc_armband/ (default: the shared data)")
    ap.add_argument("--limit", type=int, default=88, help="number of 3DC files (spread over subjects)")
    args = ap.parse_args(argv)
    recs = load_3dc(args.data_root or default_data_root(), args.limit)
    freqs = [r / 2 for r in RATES[:-1]] + [460]  # 460 Hz: 3DC's analogue anti-alias edge
    for reduce in ("median", "pooled"):
        frac = power_above(recs, freqs, lo=20.0, reduce=reduce)
        print(f"3DC ({len(recs)} files, 1000 Hz): fraction of power in [20, 500] Hz above f "
              f"({reduce} over files)")
        for r, f in zip(RATES, freqs):
            label = f"standard rate {r} Hz" if r != 1000 else "3DC anti-alias edge"
            print(f"  f = {f:5g} Hz ({label}): {100 * frac[f]:.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
