"""Envelope, fused segmentation and full tokenization per backend, on real 3DC recordings.

Reported in Msamples/s (channel-samples: C x T per second) and as a fraction of this machine's
memory-read bandwidth measured in the same run. Baselines: the vectorised NumPy multichannel
envelope a user writes (per-channel moving mean square by float64 cumsum, mean over channels,
vectorised hysteresis: the issue's ~160 Msamples/s anchor), our stronger channel-summed version
(einsum energy in float64 or float32, one cumsum), and NeuroKit2's ``emg_activation`` (on a small
slice; skipped when neurokit2 is not installed). "Msamples/s" counts channel-samples (C x T) per
second on one core.
Guards (the only assertions about speed), measured in this run: every compiled backend's fused
segmentation is >= 4x the vectorised multichannel envelope (the issue's guard), >= 3x the
channel-summed float64 version (the kernels' precision; 3.7-3.9x on the idle machine) and >= 1.5x
its float32-energy variant (see docs/notes/segment.md). Every timed function's result is checked.
"""
import importlib.util

import harness
import numpy as np
import pytest

from aemg import backends
from aemg.data.paths import default_data_root
from aemg.data.readers import get_reader
from aemg.tokenizer.segment import (
    SegmentParams,
    detect_events,
    energy_envelope,
    noise_level,
    postprocess_events,
)

RATE = 1000.0
PARAMS = SegmentParams()
COMPILED = [b for b in backends.available("segment") if b != "numpy"]
# The guard, vs the vectorised NumPy multichannel envelope + hysteresis. Speed ratios
# hold on DRAM-bound inputs only (a cache-resident 8 MB input favours NumPy's several passes), so
# --quick tiles its 2 M real samples to 16 M (64 MB).
GUARD = 4.0
GUARD_BEST = 3.0  # vs our stronger channel-summed vectorised version (measured 3.7-3.9x idle, 4-6x loaded)
GUARD_F32 = 1.5  # vs the float32-energy variant (faster, slightly different boundaries)
CONFIRM = 3  # measurements before a failed guard counts (see test_segmentation)


@pytest.fixture(scope="module")
def signal(quick):
    """3DC train recordings (10 channels, 1 kHz, int16 counts) concatenated into one float32 (C, T)
    signal: about 2 M samples tiled 8x in quick mode, about 20 M otherwise; plus its rest-file noise level."""
    folder = default_data_root() / "3dc_armband"
    if not folder.is_dir():
        pytest.skip("3dc_armband recordings not found")
    reader = get_reader("3dc", folder)
    files = sorted(s for s in reader.sources() if s.split("/")[1] == "train")
    if not files:
        pytest.skip("3dc_armband recordings not found")
    target = 2_000_000 if quick else 20_000_000
    parts, n = [], 0
    for f in files:
        (rec,) = reader.read(f)
        parts.append(rec.data)
        n += rec.data.size
        if n >= target:
            break
    x = np.concatenate(parts, axis=1)
    if quick:  # past the caches, like real archives, without reading 20 M samples of text
        x = np.tile(x, (1, 8))
    x = np.ascontiguousarray(x)
    noise = noise_level(x, RATE, PARAMS, calibration=parts[0])  # the first file is a neutral one
    return x, noise


def _best_times(fns: dict, quick: bool) -> dict:
    """Best seconds per call of each function, in interleaved rounds (the guard compares ratios)."""
    return harness.interleaved_best(fns, repeat=15 if quick else 7, min_time=0.03 if quick else 0.3)


def _record(op, times, x, mem, base="numpy-vectorised", **extra):
    """One result row per backend; returns {backend: samples/s}."""
    rates = {name: x.size / t for name, t in times.items()}
    for name, rate in rates.items():
        harness.record("segment", op=op, backend=name, msamples_per_s=rate / 1e6,
                       fraction_of_memory_read=rate / mem, ratio_vs_vectorised=rate / rates[base],
                       samples=x.size, **extra.get(name, {}))
    return rates


def vectorised_numpy_envelope(x, window, energy_dtype=np.float64):
    """What a NumPy user writes: energy by einsum (float64 like the kernels, or float32: faster,
    less precise), float64 cumsum moving window."""
    y = x.astype(energy_dtype, copy=False)
    e = np.einsum("ct,ct->t", y, y)
    cs = np.cumsum(e, dtype=np.float64)
    wsum = cs.copy()
    wsum[window:] -= cs[:-window]
    return wsum / (x.shape[0] * window)


def perchannel_numpy_envelope(x, window):
    """The textbook multichannel envelope: each channel's moving mean square (float64 cumsum over
    time, (C, T)), then the mean over channels. The issue's "vectorised NumPy multichannel
    envelope" anchor (~160 Msamples/s)."""
    y = x.astype(np.float64)
    cs = np.cumsum(y * y, axis=1)
    wsum = cs.copy()
    wsum[:, window:] -= cs[:, :-window]
    return wsum.mean(axis=0) / window


def vectorised_numpy_events(x, rate, params, noise, energy_dtype=np.float64, envelope=None):
    """Vectorised envelope + hysteresis + the same post-processing; returns (starts, ends).
    ``envelope="perchannel"`` uses :func:`perchannel_numpy_envelope`."""
    window, min_len, gap, max_len = params.samples(rate)
    env = (perchannel_numpy_envelope(x, window) if envelope == "perchannel"
           else vectorised_numpy_envelope(x, window, energy_dtype))
    above = env > noise * params.on_factor
    idx = np.flatnonzero(above | (env <= noise * params.off_factor))
    state = above[idx].astype(np.int8)
    flips = idx[np.flatnonzero(np.diff(state, prepend=np.int8(0)))]
    starts, ends = flips[0::2], flips[1::2]
    if ends.size < starts.size:
        ends = np.append(ends, x.shape[1])
    return postprocess_events(starts, ends, gap, min_len, max_len)


@pytest.mark.realdata
def test_envelope(signal, quick, memory_read_rate):
    x, _ = signal
    window = PARAMS.samples(RATE)[0]
    ref = energy_envelope(x, RATE, PARAMS.window_s, backend="numpy")
    for dt in (np.float64, np.float32):
        np.testing.assert_allclose(vectorised_numpy_envelope(x, window, dt), ref, rtol=1e-5,
                                   atol=1e-9 * ref.max())
    fns = {"numpy-vectorised": lambda: vectorised_numpy_envelope(x, window),
           "numpy-vectorised-f32": lambda: vectorised_numpy_envelope(x, window, np.float32)}
    for b in backends.available("envelope"):
        np.testing.assert_array_equal(energy_envelope(x, RATE, PARAMS.window_s, backend=b), ref)
        fns[b] = lambda b=b: energy_envelope(x, RATE, PARAMS.window_s, backend=b)
    _record("envelope", _best_times(fns, quick), x, memory_read_rate)


@pytest.mark.realdata
def test_segmentation(signal, quick, memory_read_rate):
    """Fused envelope + hysteresis + post-processing, noise level given (as when streaming)."""
    x, noise = signal
    ref = detect_events(x, RATE, PARAMS, noise=noise, backend="numpy")
    assert len(ref) > 10
    fns, extra = {}, {}
    for name, dt, env in (("numpy-perchannel", np.float64, "perchannel"),
                          ("numpy-vectorised", np.float64, None),
                          ("numpy-vectorised-f32", np.float32, None)):
        vs, _ = vectorised_numpy_events(x, RATE, PARAMS, noise, dt, env)
        # other rounding (einsum order, float32 energies): nearly all boundaries agree
        assert abs(vs.size - len(ref)) <= max(2, len(ref) // 50), name
        assert np.isin(vs, ref.starts).mean() > 0.95, name
        fns[name] = lambda dt=dt, env=env: vectorised_numpy_events(x, RATE, PARAMS, noise, dt, env)
        extra[name] = {"events": int(vs.size)}
    for b in backends.available("segment"):
        ev = detect_events(x, RATE, PARAMS, noise=noise, backend=b)
        assert ev.pairs() == ref.pairs(), b
        fns[b] = lambda b=b: detect_events(x, RATE, PARAMS, noise=noise, backend=b)
        extra[b] = {"events": len(ev)}
    # The CI guards: ratios measured in this run only. A burst of load from another process can
    # hit one contender harder than another (all of them are memory-bound), so a guard that fails
    # is measured again, at most CONFIRM times in all: a real regression fails every attempt.
    for attempt in range(1, CONFIRM + 1):
        rates = _record("segmentation", _best_times(fns, quick), x, memory_read_rate, attempt=attempt,
                        **extra)
        base, best = rates["numpy-perchannel"], rates["numpy-vectorised"]
        base32 = rates["numpy-vectorised-f32"]
        failures = [f"{b}: {rates[b] / base:.2f}x the vectorised NumPy multichannel envelope (< {GUARD}x)"
                    for b in COMPILED if rates[b] < GUARD * base]
        failures += [f"{b}: {rates[b] / best:.2f}x the channel-summed vectorised "
                     f"NumPy version (< {GUARD_BEST}x)"
                     for b in COMPILED if rates[b] < GUARD_BEST * best]
        failures += [f"{b}: {rates[b] / base32:.2f}x the float32 vectorised NumPy version (< {GUARD_F32}x)"
                     for b in COMPILED if rates[b] < GUARD_F32 * base32]
        if not failures:
            break
    assert not failures, f"after {CONFIRM} measurements: " + "; ".join(failures)


@pytest.mark.realdata
def test_tokenization(signal, quick, memory_read_rate):
    """Segmentation + token extraction (aemg.tokenizer.tokens.tokenize_signal), per backend."""
    tokens = pytest.importorskip("aemg.tokenizer.tokens")
    x, noise = signal
    config = tokens.TokenizerConfig(segment=PARAMS)
    ref = tokens.tokenize_signal(x, RATE, config, noise=noise, backend="numpy", cap=False)
    assert ref.n_tokens > 0
    fns, extra = {}, {}
    for b in backends.available("segment"):
        s = tokens.tokenize_signal(x, RATE, config, noise=noise, backend=b, cap=False)
        assert s.n_tokens == ref.n_tokens
        fns[b] = lambda b=b: tokens.tokenize_signal(x, RATE, config, noise=noise, backend=b, cap=False)
        extra[b] = {"tokens": int(s.n_tokens)}
    _record("tokenization", _best_times(fns, quick), x, memory_read_rate, base="numpy", **extra)


@pytest.mark.realdata
@pytest.mark.skipif(importlib.util.find_spec("neurokit2") is None,
                    reason="neurokit2 not installed (pip install -e '.[bench]')")
def test_neurokit2_emg_activation(signal, quick, memory_read_rate):
    """NeuroKit2's emg_activation, channel by channel, on a small slice (it is ~1e4x slower)."""
    import neurokit2 as nk

    x, _ = signal
    part = x[:, : 20_000 if quick else 100_000].astype(np.float64)

    def run():
        return [nk.emg_activation(emg_amplitude=np.abs(ch), sampling_rate=int(RATE))[0] for ch in part]

    out = run()
    assert len(out) == part.shape[0]
    t = harness.best_time(run, repeat=1, min_time=0.0)
    rate = part.size / t
    harness.record("segment", op="segmentation", backend="neurokit2-emg_activation",
                   msamples_per_s=rate / 1e6, fraction_of_memory_read=rate / memory_read_rate,
                   samples=part.size)
