"""Every backend gives the reference's envelope and event boundaries, bit for bit.

The envelope's stated tolerance is 0 (not just "close"): all backends perform the same float64
operations in the same order (see aemg/tokenizer/segment_reference.py), which is what makes
integer event boundaries identical even when the envelope sits exactly on a threshold.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from aemg import backends
from aemg.data.readers import get_reader
from aemg.errors import DataError
from aemg.tokenizer import segment_reference
from aemg.tokenizer.segment import SegmentParams, detect_events, energy_envelope, noise_level

COMPILED = [b for b in backends.available("segment") if b != "numpy"]
HYP = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_signal(seed, C, T, dtype, layout, nan_runs):
    """Bursty noise (C, T) in ``dtype`` and memory ``layout``; optional NaN runs (floats)."""
    rng = np.random.default_rng(seed)
    amp = np.ones(T)
    for _ in range(int(rng.integers(0, 6))):
        if T > 1:
            s = int(rng.integers(0, T - 1))
            amp[s: s + int(rng.integers(1, max(2, T // 3)))] *= rng.uniform(1.5, 10)
    x = rng.normal(0, 30, (C, T)) * amp
    if rng.random() < 0.2:  # a dead channel and a clipped one
        x[0] = 0
        x[-1] = np.clip(x[-1], -40, 40)
    if np.issubdtype(dtype, np.integer):
        x = np.clip(np.round(x), np.iinfo(dtype).min, np.iinfo(dtype).max)
    x = x.astype(dtype)
    if nan_runs and np.issubdtype(dtype, np.floating) and T:
        for _ in range(int(rng.integers(1, 4))):
            s = int(rng.integers(0, T))
            x[int(rng.integers(0, C)), s: s + int(rng.integers(1, 60))] = np.nan
    if layout == "F":
        x = np.asfortranarray(x)
    elif layout == "strided":  # every other sample of a wider buffer, channels reversed
        wide = np.zeros((C, 2 * T), dtype=dtype)
        wide[:, ::2] = x[::-1]
        x = wide[::-1, ::2]
    elif layout == "transposed":  # a (T, C) file read as (C, T)
        x = np.ascontiguousarray(x.T).T
    return x


signals = st.fixed_dictionaries({
    "seed": st.integers(0, 2**32 - 1),
    "C": st.one_of(st.integers(1, 12), st.sampled_from([16, 32, 64])),
    "T": st.one_of(st.integers(0, 3000), st.sampled_from([0, 1, 2, 9, 10, 11, 511, 512, 513, 40_000])),
    "dtype": st.sampled_from([np.float32, np.float64, np.int16, np.int8]),
    "layout": st.sampled_from(["C", "F", "strided", "transposed"]),
    "nan_runs": st.booleans(),
})
params_st = st.builds(
    SegmentParams,
    window_s=st.sampled_from([0.001, 0.01, 0.05, 0.2, 1.5, 5.0]),  # W up to 10240 > kernel blocks
    on_factor=st.sampled_from([1.0, 1.5, 3.0, 8.0]),
    off_factor=st.sampled_from([0.5, 1.0]),
    min_event_s=st.sampled_from([0.0, 0.01, 0.1]),
    merge_gap_s=st.sampled_from([0.0, 0.02, 0.1]),
    max_event_s=st.sampled_from([None, 0.2, 1.0]),
    nan_policy=st.just("zero"),
)


@pytest.mark.skipif(not COMPILED, reason="no compiled backend loads here")
@HYP
@given(sig=signals, params=params_st, rate=st.sampled_from([200.0, 1000.0, 2048.0]))
def test_backends_match_reference(sig, params, rate):
    x = make_signal(**sig)
    if x.size and not np.isfinite(x).any():  # documented: nothing to estimate the noise from
        for b in ["numpy"] + COMPILED:
            with pytest.raises(DataError, match="no finite samples"):
                detect_events(x, rate, params, backend=b)
        return
    ref = detect_events(x, rate, params, backend="numpy")
    event(f"events: {'none' if not len(ref) else 'some'}; non-finite: {ref.n_nonfinite > 0}")
    env = energy_envelope(x, rate, params.window_s, nan_policy="zero", backend="numpy")
    per_ch = energy_envelope(x, rate, params.window_s, per_channel=True, nan_policy="zero", backend="numpy")
    assert env.shape == (x.shape[1],) and per_ch.shape == x.shape and env.dtype == np.float64
    for b in COMPILED:
        ev = detect_events(x, rate, params, backend=b)
        np.testing.assert_array_equal(ev.starts, ref.starts, err_msg=b)
        np.testing.assert_array_equal(ev.ends, ref.ends, err_msg=b)
        assert (ev.noise_level, ev.n_nonfinite) == (ref.noise_level, ref.n_nonfinite)
        np.testing.assert_array_equal(energy_envelope(x, rate, params.window_s, nan_policy="zero", backend=b),
                                      env, err_msg=b)
        np.testing.assert_array_equal(
            energy_envelope(x, rate, params.window_s, per_channel=True, nan_policy="zero", backend=b),
            per_ch, err_msg=b)
    # the per-channel envelopes average to the envelope (up to rounding)
    if x.shape[1]:
        np.testing.assert_allclose(per_ch.mean(axis=0), env, rtol=1e-9, atol=1e-9 * env.max())


@pytest.mark.skipif(not COMPILED, reason="no compiled backend loads here")
def test_many_crossings_and_thresholds_hit_exactly():
    # W = 1 and a signal that flips every sample: 300k crossings (several kernel output buffers);
    # the window sum equals on_sum exactly at the plateaus (> is strict, <= is not).
    T = 300_000
    x = np.zeros((2, T), np.int16)
    x[:, 1::2] = 2
    x[:, 4::6] = 1  # wsum 2 == on_sum: not above
    p = SegmentParams(window_s=0.001, on_factor=1.0, off_factor=1.0, min_event_s=0, merge_gap_s=0,
                      max_event_s=None)
    ref = detect_events(x, 1000.0, p, noise=1.0, backend="numpy")
    assert len(ref) == T // 2
    for b in COMPILED:
        ev = detect_events(x, 1000.0, p, noise=1.0, backend=b)
        np.testing.assert_array_equal(ev.starts, ref.starts)
        np.testing.assert_array_equal(ev.ends, ref.ends)


@pytest.mark.skipif(not COMPILED, reason="no compiled backend loads here")
@pytest.mark.parametrize("backend", COMPILED)
def test_compiled_kernel_resumes_like_reference(backend):
    x = make_signal(7, 5, 5000, np.float32, "C", False)
    kernel = backends.get("segment", backend)
    ref_state, state = segment_reference.KernelState(13), segment_reference.KernelState(13)
    ref, _ = segment_reference.segment(x, ref_state, 9e4, 4e4)
    got = np.concatenate([kernel(x[:, i:j], state, 9e4, 4e4)[0] for i, j in
                          [(0, 1), (1, 700), (700, 700), (700, 5000)]])
    np.testing.assert_array_equal(got, ref)
    assert state.position == ref_state.position == 5000 and state.active == ref_state.active
    assert state.fstate[0] == ref_state.fstate[0]
    np.testing.assert_array_equal(np.roll(state.ring, -state.istate[0]), ref_state.ring)


# ------------------------------------------------------------------------------- real recordings

# folder -> (reader, dtype of the file's samples); the kernels get them as the file lays them out:
# row-major (T, C) seen as a (C, T) strided view, integer counts as int16.
READERS = {"3dc_armband": ("3dc", np.int16), "coteallard_myoarmband": ("coteallard", np.int16),
           "libemg_sdist_one_subject_myo": ("libemg_myo", np.float32),
           "uci_emg_gestures_myo": ("uci_myo", np.float64)}


def _load(data_root, dataset, source):
    """One real recording as ``(x, rate)``: x (C, T) a non-contiguous view in the file's dtype."""
    name, dtype = READERS[dataset]
    (rec,) = get_reader(name, data_root / dataset).read(source)
    rate = 1000.0 if name == "uci_myo" else rec.rate  # UCI rows come at about 1 kHz (nominal 200 Hz)
    return np.ascontiguousarray(rec.data.T, dtype=dtype).T, rate


REAL = {
    "3dc_armband": ["Participant1/train/EMG/3dc_EMG_gesture_0_0.txt.gz",
                    "Participant1/train/EMG/3dc_EMG_gesture_0_7.txt.gz",
                    "Participant5/train/EMG/3dc_EMG_gesture_2_4.txt.gz"],
    "coteallard_myoarmband": ["PreTrainingDataset/Female0/training0/classe_0.dat.gz",
                              "PreTrainingDataset/Female0/training0/classe_5.dat.gz",
                              "EvaluationDataset/Male3/Test0/classe_12.dat.gz"],
    "libemg_sdist_one_subject_myo": ["R_0_C_0_EMG.csv", "R_1_C_2_EMG.csv", "R_3_C_4_EMG.csv"],
    "uci_emg_gestures_myo": ["01/1_raw_data_13-12_22.03.16.txt.gz"],
}


@pytest.mark.realdata
@pytest.mark.parametrize("dataset", sorted(REAL))
def test_real_recordings_parity(data_root, dataset):
    params = SegmentParams(window_s=0.05, min_event_s=0.05, merge_gap_s=0.05, max_event_s=0.5)
    n_events = 0
    for rel in REAL[dataset]:
        x, rate = _load(data_root, dataset, rel)
        rest = x[:, : x.shape[1] // 5]
        for noise in (None, noise_level(x, rate, params, calibration=rest)):
            ref = detect_events(x, rate, params, noise=noise, backend="numpy")
            n_events += len(ref)
            env = energy_envelope(x, rate, params.window_s, backend="numpy")
            for b in COMPILED:
                ev = detect_events(x, rate, params, noise=noise, backend=b)
                assert ev.pairs() == ref.pairs(), (rel, b)
                np.testing.assert_array_equal(energy_envelope(x, rate, params.window_s, backend=b), env)
    assert n_events > 0
