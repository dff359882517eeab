"""Shared helpers of the benchmark suites.

Speed is guarded by *ratios measured in one run on one machine* (a backend against the reference or
the best vectorised NumPy/SciPy version), never by absolute times. Throughput is reported in the
field's units (samples/s, tokens/s) and, for memory-bound signal kernels, as a fraction of the
machine's memory-read bandwidth measured in the same run.
"""
from __future__ import annotations

import json
import os
import platform
import time
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

RESULTS = Path(os.environ.get("AEMG_BENCH_RESULTS", Path(__file__).parent / "results"))
_ROWS: dict[str, list[dict]] = {}


def best_time(fn: Callable[[], object], *, repeat: int = 5, min_time: float = 0.05,
              warmup: bool = True) -> float:
    """Best wall time of one call of ``fn`` in seconds: ``repeat`` rounds, each looping until
    ``min_time`` has passed (so short calls are averaged over many loops). Calls ``fn`` once first to
    warm up caches and JIT compilers unless ``warmup`` is False."""
    if warmup:
        fn()
    best = float("inf")
    for _ in range(repeat):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= min_time:
                break
        best = min(best, dt / n)
    return best


def interleaved_best(fns: dict, *, repeat: int, min_time: float = 0.05) -> dict:
    """Best seconds per call of each function of ``fns`` ({name: fn}), measured in interleaved
    rounds (A, B, A, B, ...; one :func:`best_time` round each) so that load from other processes on a
    shared machine hits every contender alike. Every function is called once first (warm-up)."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            best[name] = min(best[name], best_time(fn, repeat=1, min_time=min_time, warmup=False))
    return best


@lru_cache(maxsize=1)
def memory_read_rate(n_bytes: int = 1 << 28) -> float:
    """Memory-read bandwidth of this machine in float32 samples/s, measured now.

    Sums a float32 array far larger than the caches (256 MiB by default) with NumPy's reduction,
    best of several runs: a practical ceiling for any kernel that must read every sample once.
    """
    x = np.ones(n_bytes // 4, dtype=np.float32)
    t = best_time(lambda: float(np.add.reduce(x)), repeat=5, min_time=0.2)
    return x.size / t


def machine() -> str:
    """One line describing this machine, for result tables."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def record(suite: str, **row) -> None:
    """Add one result row to ``suite``; rows are written to benchmarks/results/<suite>.json and
    printed as a Markdown table at the end of the session."""
    _ROWS.setdefault(suite, []).append(row)


def write_results() -> list[str]:
    """Write every suite's rows (atomically) and return Markdown tables, one per suite."""
    out = []
    if not _ROWS:
        return out
    RESULTS.mkdir(parents=True, exist_ok=True)
    for suite, rows in _ROWS.items():
        payload = {"machine": machine(), "memory_read_samples_per_s": memory_read_rate(), "rows": rows}
        tmp = RESULTS / f".{suite}.json.tmp"
        tmp.write_text(json.dumps(payload, indent=1, default=float))
        os.replace(tmp, RESULTS / f"{suite}.json")
        cols = list(dict.fromkeys(k for r in rows for k in r))
        lines = [f"### {suite} ({machine()})", "", "| " + " | ".join(cols) + " |",
                 "|" + "---|" * len(cols)]
        for r in rows:
            lines.append("| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |")
        out.append("\n".join(lines))
    return out


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)
