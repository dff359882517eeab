"""Segmentation API: parameters, the naive loop oracle, post-processing rules, bad input, dispatch."""
import logging

import numpy as np
import pytest

from aemg import backends
from aemg.errors import BackendUnavailable, ConfigError, DataError
from aemg.tokenizer import segment_reference
from aemg.tokenizer.segment import (
    Events,
    SegmentParams,
    detect_events,
    energy_envelope,
    noise_level,
    postprocess_events,
    seconds_to_samples,
)

BACKENDS = backends.available("segment")


# ------------------------------------------------------------------ the deliberately naive oracle

def naive_events(x, rate, params, noise):
    """Per-sample Python loops, window sums recomputed from scratch, list-based post-processing.

    Exact (and so comparable with ``==``) on integer-valued signals, where every sum is exact."""
    window, min_len, gap, max_len = params.samples(rate)
    C, T = x.shape
    energy = [sum(float(x[c, t]) ** 2 for c in range(C)) for t in range(T)]
    on_sum = noise * params.on_factor * (C * window)
    off_sum = noise * params.off_factor * (C * window)
    raw, active, start = [], False, 0
    for t in range(T):
        w = sum(energy[max(0, t - window + 1): t + 1])
        if not active and w > on_sum:
            active, start = True, t
        elif active and w <= off_sum:
            raw.append((start, t))
            active = False
    if active:
        raw.append((start, T))
    merged = []
    for s, e in raw:
        if merged and s - merged[-1][1] < gap:
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    out = []
    for s, e in merged:
        if e - s < min_len:
            continue
        if max_len is None or e - s <= max_len:
            out.append((s, e))
            continue
        p = s
        while p < e:
            q = min(p + max_len, e)
            if q - p >= min_len:
                out.append((p, q))
            p = q
    return out


def bursty(rng, C, T, dtype=np.int16, n_bursts=4, scale=20):
    """Integer-valued noise with louder bursts, shape (C, T)."""
    x = rng.normal(0, scale, size=(C, T))
    for _ in range(n_bursts):
        if T < 2:
            break
        s = int(rng.integers(0, T - 1))
        x[:, s: s + int(rng.integers(1, max(2, T // 4)))] *= rng.uniform(2, 8)
    return np.clip(np.round(x), -30000, 30000).astype(dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(4))
def test_matches_naive_oracle(backend, seed):
    rng = np.random.default_rng(seed)
    C, T = int(rng.integers(1, 9)), int(rng.integers(1, 1500))
    x = bursty(rng, C, T, dtype=[np.int16, np.float32, np.int8][seed % 3], scale=[20, 20, 10][seed % 3])
    rate = float(rng.choice([200.0, 1000.0]))
    params = SegmentParams(window_s=float(rng.uniform(0.002, 0.06)), on_factor=float(rng.uniform(2, 6)),
                           off_factor=float(rng.uniform(0.5, 2)), min_event_s=float(rng.uniform(0, 0.1)),
                           merge_gap_s=float(rng.uniform(0, 0.1)), max_event_s=float(rng.uniform(0.1, 0.4)))
    noise = float(np.mean(x.astype(np.float64) ** 2))
    ev = detect_events(x, rate, params, noise=noise, backend=backend)
    assert ev.pairs() == naive_events(x, rate, params, noise)


def test_oracle_example_by_hand():
    # one channel, W = 2 samples at 1 kHz; energy 0 0 9 9 0 0 0 9 0 0
    x = np.array([[0, 0, 3, 3, 0, 0, 0, 3, 0, 0]], dtype=np.int16)
    p = SegmentParams(window_s=0.002, on_factor=1.0, off_factor=0.5, min_event_s=0, merge_gap_s=0,
                      max_event_s=None)
    # window sums 0 0 9 18 9 0 0 9 9 0; on_sum = 4*2 = 8, off_sum = 4
    ev = detect_events(x, 1000.0, p, noise=4.0, backend="numpy")
    assert ev.pairs() == [(2, 5), (7, 9)] == naive_events(x, 1000.0, p, 4.0)
    assert ev.on_level == 4.0 and ev.off_level == 2.0 and ev.noise_level == 4.0
    env = energy_envelope(x, 1000.0, 0.002, backend="numpy")
    np.testing.assert_array_equal(env, [0, 0, 4.5, 9, 4.5, 0, 0, 4.5, 4.5, 0])
    merged = detect_events(x, 1000.0, SegmentParams(window_s=0.002, on_factor=1.0, off_factor=0.5,
                                                    min_event_s=0, merge_gap_s=0.003, max_event_s=None),
                           noise=4.0)
    assert merged.pairs() == [(2, 9)]  # gap 2 < 3 samples
    assert detect_events(x, 1000.0, SegmentParams(window_s=0.002, on_factor=1.0, off_factor=0.5,
                                                  min_event_s=0.003, merge_gap_s=0, max_event_s=None),
                         noise=4.0).pairs() == [(2, 5)]  # (7, 9) is 2 samples < 3


def test_postprocess_rules():
    s, e = np.array([0, 14, 17, 40]), np.array([10, 15, 30, 41])
    # merge gaps < 3: (14,15)+(17,30) -> (14,30); min 3 drops (40,41); split at 7 from each start;
    # the 2-sample tail (28, 30) is below the minimum
    ps, pe = postprocess_events(s, e, 3, 3, 7)
    assert list(zip(ps, pe)) == [(0, 7), (7, 10), (14, 21), (21, 28)]
    ps, pe = postprocess_events(s, e, 3, 4, 7)  # the 3-sample tail (7, 10) is now dropped too
    assert list(zip(ps, pe)) == [(0, 7), (14, 21), (21, 28)]
    ps, pe = postprocess_events(s, e, 5, 0, None)  # gap 4 < 5 merges everything but (40, 41)
    assert list(zip(ps, pe)) == [(0, 30), (40, 41)]
    ps, pe = postprocess_events(s, e, 0, 0, None)
    assert list(zip(ps, pe)) == list(zip(s, e))
    ps, pe = postprocess_events(np.zeros(0, np.int64), np.zeros(0, np.int64), 3, 5, 7)
    assert ps.size == pe.size == 0


def test_params_validation_and_samples():
    assert SegmentParams().samples(200.0) == (10, 20, 20, 400)
    assert SegmentParams(window_s=0.001).samples(200.0)[0] == 1  # never below one sample
    assert seconds_to_samples(0.0125, 200.0) == 3  # 2.5 rounds up
    for bad in (dict(window_s=0), dict(on_factor=-1), dict(off_factor=5, on_factor=4),
                dict(max_event_s=0.05, min_event_s=0.1), dict(nan_policy="ignore"),
                dict(noise_percentile=101), dict(merge_gap_s=float("nan"))):
        with pytest.raises(ConfigError, match="SegmentParams"):
            SegmentParams(**bad)
    with pytest.raises(ConfigError, match="noise"):
        detect_events(np.zeros((2, 10)), 100.0, noise=-1.0)


def test_bad_input_raises_clear_errors():
    with pytest.raises(DataError, match="x: must be 2-D"):
        detect_events(np.zeros(10), 100.0)
    with pytest.raises(DataError, match="no channels"):
        detect_events(np.zeros((0, 10)), 100.0)
    with pytest.raises(DataError, match="real numbers"):
        detect_events(np.zeros((2, 10), complex), 100.0)
    with pytest.raises(DataError, match="rate"):
        detect_events(np.zeros((2, 10)), 0)
    with pytest.raises(DataError, match="calibration: has 3 channels"):
        noise_level(np.zeros((2, 10)), 100.0, calibration=np.ones((3, 10)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_policy(backend):
    rng = np.random.default_rng(1)
    x = bursty(rng, 4, 3000).astype(np.float32)
    x[2, 1000:1100] = np.nan
    x[0, 5] = np.inf
    with pytest.raises(DataError,
                       match=r"x: non-finite sample .* channel 1, sample 6 \(1-based; 101 in total\)"):
        detect_events(x, 1000.0, backend=backend)
    with pytest.raises(DataError, match="non-finite"):
        energy_envelope(x, 1000.0, 0.05, backend=backend)
    with pytest.raises(DataError, match="calibration: non-finite"):
        noise_level(x[:, 2000:], 1000.0, calibration=x[:, :2000])
    p = SegmentParams(nan_policy="zero")
    ev = detect_events(x, 1000.0, p, backend=backend)
    assert ev.n_nonfinite == 101
    zeroed = np.where(np.isfinite(x), x, 0)
    # NaN counts as zero energy: same events as the zero-filled signal, given the same noise level
    assert ev.pairs() == detect_events(zeroed, 1000.0, p, noise=ev.noise_level, backend=backend).pairs()
    env = energy_envelope(x, 1000.0, 0.05, nan_policy="zero", backend=backend)
    np.testing.assert_array_equal(env, energy_envelope(zeroed, 1000.0, 0.05, backend=backend))
    # the noise estimate skips windows that touch non-finite samples
    all_nan_but = np.full((2, 500), np.nan)
    all_nan_but[:, :3] = 2.0
    assert noise_level(all_nan_but, 1000.0, p) == 4.0  # no full finite window: mean finite square
    with pytest.raises(DataError, match="no finite samples"):
        noise_level(np.full((2, 50), np.nan), 1000.0, p)


@pytest.mark.parametrize("backend", BACKENDS)
def test_degenerate_signals(backend):
    rate = 1000.0
    # empty
    ev = detect_events(np.zeros((3, 0), np.float32), rate, backend=backend)
    assert len(ev) == 0 and ev.n_samples == 0 and ev.starts.dtype == np.int64
    # a single sample
    ev = detect_events(np.ones((3, 1), np.int16), rate, backend=backend)
    assert len(ev) == 0 and ev.noise_level == 1.0
    assert energy_envelope(np.ones((3, 1)), rate, 0.05, backend=backend).shape == (1,)
    # all zero: noise 0, no events
    ev = detect_events(np.zeros((4, 5000), np.float32), rate, backend=backend)
    assert len(ev) == 0 and ev.noise_level == 0.0
    # flat (DC) line: envelope equals the noise level, never above on
    ev = detect_events(np.full((4, 5000), 300, np.int16), rate, backend=backend)
    assert len(ev) == 0
    # silent rest then a clipped burst with a dead (all-zero) channel: one event, found exactly
    x = np.zeros((4, 5000), np.int16)
    x[:3, 2000:3000] = np.where(np.arange(1000) % 2, 32767, -32768)
    ev = detect_events(x, rate, SegmentParams(), noise=1.0, backend=backend)
    assert ev.pairs() == [(2000, 3000 + 49)]  # the trailing 50-sample window sees it 49 more
    # no activity at all: stationary noise with a calibration of the same noise -> no events
    rng = np.random.default_rng(3)
    quiet = rng.normal(0, 10, (8, 20000)).astype(np.float32)
    ev = detect_events(quiet[:, 5000:], rate, calibration=quiet[:, :5000], backend=backend)
    assert len(ev) == 0


def test_long_events_are_split_and_events_dataclass():
    x = np.zeros((2, 10000), np.int16)
    x[:, 1000:6500] = 100
    ev = detect_events(x, 1000.0, SegmentParams(max_event_s=2.0, min_event_s=0.5), noise=1.0)
    # raw event [1000, 6549) -> pieces of 2000 from its start; the 1549-sample tail is kept
    assert ev.pairs() == [(1000, 3000), (3000, 5000), (5000, 6549)]
    np.testing.assert_allclose(ev.durations_s(), [2.0, 2.0, 1.549])
    short_tail = detect_events(x, 1000.0, SegmentParams(max_event_s=2.0, min_event_s=1.6), noise=1.0)
    assert short_tail.pairs() == [(1000, 3000), (3000, 5000)]  # tail 1549 < 1600 samples: dropped
    assert isinstance(ev, Events) and len(ev) == 3 and ev.window == 50


def test_noise_level_rules(rng):
    rest = rng.normal(0, 3, (4, 4000))
    active = rng.normal(0, 30, (4, 4000))
    x = np.concatenate([rest, active], axis=1)
    p = SegmentParams()
    cal = noise_level(x, 1000.0, p, calibration=rest)
    assert cal == pytest.approx(9.0, rel=0.1)  # median envelope of the rest = its mean square
    robust = noise_level(x, 1000.0, p)  # 10th percentile of the whole recording: in the rest part
    assert robust < 2 * cal
    env = energy_envelope(x, 1000.0, p.window_s)
    assert robust == np.percentile(env[49:], 10)


def test_dispatch_fallback_without_cython(monkeypatch, caplog):
    missing = ImportError("No module named 'aemg._ext.segment_cy'")
    monkeypatch.delenv("AEMG_BACKEND", raising=False)
    monkeypatch.delenv("AEMG_BACKEND_SEGMENT", raising=False)
    monkeypatch.delenv("AEMG_STRICT", raising=False)
    # as on a machine where the extension is not built (restored on exit)
    with backends.override("segment", "cython", error=missing), \
            backends.override("envelope", "cython", error=missing):
        with caplog.at_level(logging.WARNING, logger="aemg.backends"):
            assert backends.choose("segment") in ("numba", "numpy")
        assert "unavailable" in caplog.text
        x = bursty(np.random.default_rng(0), 3, 3000)
        assert detect_events(x, 1000.0).pairs() == detect_events(x, 1000.0, backend="numpy").pairs()
        with pytest.raises(BackendUnavailable, match="cython"):
            detect_events(x, 1000.0, backend="cython")
        monkeypatch.setenv("AEMG_BACKEND_ENVELOPE", "cython")
        with pytest.raises(BackendUnavailable, match="cython"):
            energy_envelope(x, 1000.0, 0.05)
        monkeypatch.delenv("AEMG_BACKEND_ENVELOPE")
        monkeypatch.setenv("AEMG_STRICT", "1")
        with pytest.raises(BackendUnavailable, match="AEMG_STRICT"):
            detect_events(x, 1000.0)
        with pytest.raises(ConfigError, match="unknown backend"):
            detect_events(x, 1000.0, backend="fortran")


def test_reference_kernel_is_resumable():
    rng = np.random.default_rng(5)
    x = bursty(rng, 3, 4000).astype(np.float32)
    whole = segment_reference.KernelState(7)
    a, _ = segment_reference.segment(x, whole, 4000.0, 1500.0)
    parts = segment_reference.KernelState(7)
    b = np.concatenate([segment_reference.segment(x[:, i:j], parts, 4000.0, 1500.0)[0]
                        for i, j in [(0, 3), (3, 1000), (1000, 1000), (1000, 4000)]])
    np.testing.assert_array_equal(a, b)
    assert parts.position == whole.position == 4000
    np.testing.assert_array_equal(np.roll(parts.ring, -parts.istate[0]),
                                  np.roll(whole.ring, -whole.istate[0]))
