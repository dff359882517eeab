"""Rectification throughput: :func:`aemg.data.rectify.rectify` vs the straightforward SciPy
pipeline a user would write, measured in the same run on the same recordings.

Throughput is in *input* samples/s (channels x time of the raw recording) and as a fraction of the
machine's memory-read rate. Inputs: real 3DC recordings (10 channels, 1 kHz -> 500 Hz, 16 virtual
channels) when the shared data is present, else synthetic 3DC-like trials; ``--quick`` uses a few
short trials. Both pipelines do the same work: band-pass 20-225 Hz (4th order, zero phase),
notches at 50/100/150/200 Hz (Q 30, zero phase), 1000 -> 500 Hz polyphase, 16 output channels.

Guard: ours must be at least ``MIN_SPEEDUP`` x the straightforward pipeline's throughput.
"""
import numpy as np
import pytest
from scipy import signal

import harness
from aemg.data.paths import default_data_root
from aemg.data.rectify import StandardSpace, rectify
from aemg.data.synthetic import SyntheticConfig, generate_unit

#: Measured 3.9x (full) and 4.0x (--quick) on the development machine (docs/notes/rectify.md);
#: guarded with margin for noisy shared CI machines.
MIN_SPEEDUP = 2.0
LINES = (50.0, 100.0, 150.0, 200.0)
SPACE = StandardSpace(notch=(50.0,), notch_mode="all", amplitude="none")   # same work as the naive one


def straightforward(x: np.ndarray, rate: float, out_rate: float = 500.0, n_out: int = 16) -> np.ndarray:
    """What a user would write: per-channel filtfilt with butter and iirnotch, resample_poly, then
    repeat channels up to 16 (the published implementation's "fewer channels are repeated")."""
    y = np.empty(x.shape, dtype=np.float64)
    b, a = signal.butter(4, [20.0, 225.0], "bandpass", fs=rate)
    for c in range(x.shape[0]):
        y[c] = signal.filtfilt(b, a, x[c])
    for f in LINES:
        bn, an = signal.iirnotch(f, 30.0, fs=rate)
        for c in range(x.shape[0]):
            y[c] = signal.filtfilt(bn, an, y[c])
    y = signal.resample_poly(y, int(out_rate), int(rate), axis=1)
    return y[np.arange(n_out) % x.shape[0]].astype(np.float32)


def load_inputs(quick: bool):
    root = default_data_root() / "3dc_armband"
    if root.is_dir():
        from aemg.data.readers import get_reader

        reader = get_reader("3dc", root)
        recs = []
        for source in reader.sources()[: 4 if quick else 44]:
            recs.extend(reader.read(source))
        if quick:
            recs = [r.with_data(r.data[:, :1000], labels=None) for r in recs]
        return "3dc", recs
    cfg = SyntheticConfig(n_subjects=2, devices=("3dc",), repetitions=1 if quick else 4,
                          trial_s=1.5 if quick else 5.0)
    return "synthetic-3dc", generate_unit(cfg, "s00")


@pytest.fixture(scope="module")
def inputs(quick):
    return load_inputs(quick)


def test_rectify_vs_straightforward(benchmark, inputs, quick, memory_read_rate):
    name, recs = inputs
    n_in = sum(r.data.size for r in recs)

    # correctness first: same band, notches and rate. Virtual electrodes 0 and 8 sit exactly on
    # 3DC electrodes 0 and 5, and the naive pipeline repeats channels, so compare those. Our filters
    # run at 500 Hz after decimation (bilinear designs differ slightly from 1 kHz ones) and pad
    # differently: compare the middle half, relative RMS difference.
    for r in recs[:3]:
        ours = rectify(r, SPACE).data
        ref = straightforward(r.data, r.rate)
        assert ours.shape == ref.shape
        mid = slice(ours.shape[1] // 4, 3 * ours.shape[1] // 4)
        for v, c in ((0, 0), (8, 5)):
            err = np.sqrt(np.mean((ours[v, mid] - ref[c, mid]) ** 2) / np.mean(ref[c, mid] ** 2))
            assert err < 0.1, f"{r.source}: virtual {v} differs from channel {c} by {err:.1%} RMS"

    def run_ours():
        for r in recs:
            rectify(r, SPACE)

    def run_naive():
        for r in recs:
            straightforward(r.data, r.rate)

    repeat = 2 if quick else 5
    t_naive = harness.best_time(run_naive, repeat=repeat, min_time=0.05 if quick else 0.5)
    t_ours = harness.best_time(run_ours, repeat=repeat, min_time=0.05 if quick else 0.5)
    benchmark.pedantic(run_ours, rounds=repeat, iterations=1)
    t_default = harness.best_time(lambda: [rectify(r) for r in recs], repeat=repeat,
                                  min_time=0.05 if quick else 0.5)
    speedup = t_naive / t_ours
    for impl, t in (("straightforward scipy", t_naive), ("aemg rectify (same work)", t_ours),
                    ("aemg rectify (default space)", t_default)):
        harness.record("rectify", input=name, recordings=len(recs), input_samples=n_in, impl=impl,
                       seconds=t, samples_per_s=n_in / t, fraction_of_memory_read=n_in / t / memory_read_rate,
                       speedup_vs_straightforward=t_naive / t)
    assert speedup >= MIN_SPEEDUP, (f"rectify is {speedup:.2f}x the straightforward SciPy pipeline "
                                    f"(floor {MIN_SPEEDUP}x)")
