"""Rectification into the standard space: each step on its own, then the pipeline."""
import json

import numpy as np
import pytest

from aemg.data.devices import TWO_PI
from aemg.data.recording import Recording
from aemg.data.rectify import (
    StandardSpace,
    amplitude_gain,
    bandpass,
    collapse_held,
    dataset_native_rate,
    detect_line_frequency,
    effective_rate,
    estimate_amplitude_scale,
    line_harmonics,
    moving_rms,
    noise_floor,
    notch,
    power_above,
    rate_ratio,
    rectify,
    resample,
    resample_irregular,
    standard_device,
)
from aemg.data.synthetic import SyntheticConfig, generate_unit
from aemg.errors import ConfigError, DataError


def sines(freqs, rate, seconds=2.0, channels=3):
    t = np.arange(int(seconds * rate)) / rate
    return np.tile(sum(np.sin(TWO_PI * f * t) for f in freqs), (channels, 1)), t


def amp_at(x, rate, f):
    """Amplitude of the f Hz component (single-bin DFT over the middle half, away from edges)."""
    n = x.shape[-1]
    seg = x[..., n // 4: 3 * n // 4]
    t = np.arange(seg.shape[-1]) / rate
    return np.abs((seg * np.exp(-2j * np.pi * f * t)).mean(-1)).max() * 2


# -- space --------------------------------------------------------------------------------------

def test_space_roundtrips_through_json():
    space = StandardSpace(rate=400.0, channels=8, notch=(60.0,), amplitude="recording")
    again = StandardSpace.from_dict(json.loads(json.dumps(space.to_dict())))
    assert again == space and isinstance(again.band, tuple)
    assert StandardSpace().device.name == "standard16"
    assert standard_device(8).name == "standard8" and standard_device(8).n_channels == 8


@pytest.mark.parametrize("bad", [dict(rate=0), dict(band=(100, 20)), dict(amplitude="zscore"),
                                 dict(notch_mode="maybe"), dict(channels=0), dict(notch=(-50,))])
def test_space_rejects_bad_values(bad):
    with pytest.raises(ConfigError):
        StandardSpace(**bad)
    with pytest.raises(ConfigError, match="unknown"):
        StandardSpace.from_dict({"rate": 500, "colour": 1})


# -- steps --------------------------------------------------------------------------------------

def test_bandpass_keeps_the_band_zero_phase():
    x, t = sines([5, 80, 400], 1000.0)
    y = bandpass(x, 1000.0, 20, 200)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert amp_at(y, 1000, 80) == pytest.approx(1.0, abs=0.02)
    assert amp_at(y, 1000, 5) < 0.01 and amp_at(y, 1000, 400) < 0.01
    # zero phase: the kept 80 Hz component is in phase with the input
    mid = slice(500, 1500)
    np.testing.assert_allclose(y[0, mid], np.sin(TWO_PI * 80 * t[mid]), atol=0.03)
    # low-pass and high-pass variants
    assert amp_at(bandpass(x, 1000.0, None, 30), 1000, 80) < 0.01
    assert amp_at(bandpass(x, 1000.0, 200, None), 1000, 80) < 0.01


def test_notch_removes_line_and_harmonics_only():
    x, _ = sines([50, 80, 150], 1000.0)
    y = notch(x, 1000.0, line_harmonics(50.0, 120.0))
    assert line_harmonics(50.0, 120.0) == [50.0, 100.0]
    assert amp_at(y, 1000, 50) < 0.01
    assert amp_at(y, 1000, 80) == pytest.approx(1.0, abs=0.02)
    assert amp_at(y, 1000, 150) == pytest.approx(1.0, abs=0.02)
    np.testing.assert_allclose(notch(x, 1000.0, [600.0]), x, atol=1e-6)  # above Nyquist: skipped


def test_detect_line_frequency(rng):
    noise = rng.normal(size=(4, 5000))
    t = np.arange(5000) / 1000
    assert detect_line_frequency(noise + 2 * np.sin(TWO_PI * 60 * t), 1000.0) == 60.0
    assert detect_line_frequency(noise + 2 * np.sin(TWO_PI * 50 * t), 1000.0) == 50.0
    assert detect_line_frequency(noise, 1000.0) is None
    assert detect_line_frequency(noise[:, :10], 1000.0) is None


def detect_line_reference(x, rate, candidates=(50.0, 60.0), min_ratio=4.0, max_seconds=10.0):
    """The detection rule spelled out with SciPy's Welch (the pre-session-5 code): 0.5 Hz bins over
    the first ``max_seconds``, peak (+-1 Hz) over the median 3-8 Hz away, largest ratio >= min_ratio."""
    from scipy import signal

    x = np.asarray(x, dtype=np.float64)[:, : int(max_seconds * rate)]
    nper = min(x.shape[1], int(2 * rate))
    if nper < 16:
        return None
    f, p = signal.welch(x, fs=rate, nperseg=nper, axis=-1)
    p = p.sum(axis=0)
    best, best_ratio = None, min_ratio
    for f0 in candidates:
        if f0 + 8 >= rate / 2:
            continue
        peak, side = p[np.abs(f - f0) <= 1.0], p[(np.abs(f - f0) >= 3.0) & (np.abs(f - f0) <= 8.0)]
        if peak.size and side.size and peak.max() / max(np.median(side), 1e-300) >= best_ratio:
            best, best_ratio = f0, peak.max() / max(np.median(side), 1e-300)
    return best


@pytest.mark.parametrize("rate", [1000.0, 500.0, 200.0, 2048.0])
def test_detect_line_frequency_matches_the_reference(rng, rate):
    """Line amplitudes around the threshold, odd lengths, DC offsets: the same decision as the
    readable reference (SciPy's Welch) on every case, for 50 and 60 Hz lines and none."""
    decisions = set()
    for i in range(40):
        n = int(rng.integers(20, int(12 * rate)))
        t = np.arange(n) / rate
        f0 = (50.0, 60.0)[i % 2]
        amp = float(rng.choice([0.0, 0.05, 0.1, 0.2, 0.4, 1.0]))
        x = rng.normal(size=(3, n)) + 300.0 * rng.normal() + amp * np.sin(TWO_PI * f0 * t + rng.uniform(0, 6))
        want = detect_line_reference(x, rate)
        assert detect_line_frequency(x, rate) == want, (i, n, amp)
        assert detect_line_frequency(x.astype(np.float32)[:, ::1], rate) == detect_line_reference(
            x.astype(np.float32), rate)
        decisions.add(want)
    assert decisions >= {None, 50.0, 60.0}  # the cases cover every outcome


def test_rectify_detects_the_line_after_downsampling(rng):
    """A 1 kHz / 2 kHz recording is downsampled first; the line is found on what the filters see
    and its harmonics below the band edge are notched."""
    for rate in (1000.0, 2048.0):
        t = np.arange(int(6 * rate)) / rate
        x = rng.normal(size=(8, t.size)) * 5 + 3.0 * np.sin(TWO_PI * 60.0 * t)
        rec = Recording(x.astype(np.float32), rate=rate, device="myo", units="adc")
        prov = rectify(rec).meta["rectify"]
        assert prov["line_hz"] == 60.0 and prov["notch"] == [60.0, 120.0, 180.0]
        quiet = Recording(rng.normal(size=(8, t.size)).astype(np.float32), rate=rate, device="myo",
                          units="adc")
        assert rectify(quiet).meta["rectify"]["line_hz"] is None


@pytest.mark.parametrize("rate_in,rate_out",
                         [(1000.0, 500.0), (200.0, 500.0), (2048.0, 500.0), (1024.0, 500.0)])
def test_resample_reproduces_a_sine(rate_in, rate_out):
    x, _ = sines([13.0], rate_in, seconds=2.0, channels=2)
    y = resample(x, rate_in, rate_out)
    up, down = rate_ratio(rate_in, rate_out)
    assert up * rate_in == down * rate_out
    assert y.shape == (2, int(np.ceil(x.shape[1] * up / down))) and y.dtype == np.float32
    t_out = np.arange(y.shape[1]) / rate_out
    mid = slice(y.shape[1] // 8, -y.shape[1] // 8)
    np.testing.assert_allclose(y[:, mid], np.sin(TWO_PI * 13 * t_out[mid])[None].repeat(2, 0), atol=0.01)


def test_resample_edge_cases():
    assert rate_ratio(2048, 500) == (125, 512)
    assert resample(np.zeros((3, 0)), 1000, 500).shape == (3, 0)
    assert resample(np.ones((2, 1), dtype=np.int16), 1000, 500).shape == (2, 1)
    with pytest.raises(DataError, match="rate"):
        resample(np.zeros((1, 4)), 0, 500)
    with pytest.raises(DataError, match="non-finite"):
        resample(np.array([[0.0, np.nan]]), 1000, 500)
    with pytest.raises(DataError, match="2-D"):
        bandpass(np.zeros(5), 1000, 20, 200)


def myo_like_log(rng, seconds=20.0, native=100.0, f=2.0):
    """Samples at `native` Hz delivered in bursts and logged at 1 kHz with held values (UCI Myo)."""
    n = int(seconds * native)
    true_t = np.arange(n) / native
    values = np.sin(TWO_PI * f * true_t) + 0.01 * rng.normal(size=n)
    # delivered in Bluetooth bursts every 30 ms, 1 ms apart (mean delay 21 ms)
    arrival = (np.floor(true_t / 0.03) + 1) * 0.03 + (np.arange(n) % 3) * 0.001 + rng.uniform(0, 1e-4, n)
    rows_t = np.arange(int(arrival[0] * 1000), int(arrival[-1] * 1000) + 1) / 1000
    idx = np.searchsorted(arrival, rows_t, side="right") - 1
    x = np.stack([values[idx], -values[idx]])
    return rows_t, x


def test_collapse_held_and_resample_irregular(rng):
    times, x = myo_like_log(rng)
    t_kept, v = collapse_held(times, x)
    assert abs(t_kept.size - 2000) <= 2 and v.shape == (2, t_kept.size)
    y, t_out = resample_irregular(times, x, 200.0)
    assert y.dtype == np.float32 and y.shape == (2, t_out.size)
    np.testing.assert_allclose(np.diff(t_out), 1 / 200.0, rtol=1e-9)
    # against the true signal at the output times (mean arrival delay (30+21+12)/3 = 21 ms)
    truth = np.sin(TWO_PI * 2.0 * (t_out - 0.021))
    mid = slice(100, -100)
    assert np.abs(y[0, mid] - truth[mid]).max() < 0.05
    np.testing.assert_allclose(y[1], -y[0], atol=1e-6)
    # output slower than the native rate: decimated with anti-aliasing
    y2, t2 = resample_irregular(times, x, 50.0)
    np.testing.assert_allclose(np.diff(t2), 1 / 50.0, rtol=1e-9)
    assert np.abs(y2[0, 25:-25] - np.sin(TWO_PI * 2.0 * (t2[25:-25] - 0.021))).max() < 0.1


def test_resample_irregular_rejects_backwards_time():
    with pytest.raises(DataError, match="non-decreasing"):
        resample_irregular(np.array([0.0, 0.2, 0.1]), np.zeros((1, 3)), 100.0)
    y, t = resample_irregular(np.array([0.5]), np.ones((2, 1)), 100.0)
    assert y.shape == (2, 1) and t.tolist() == [0.5]


def test_noise_floor_and_gain(rng):
    x = np.concatenate([0.1 * rng.normal(size=(4, 1000)), 5 * rng.normal(size=(4, 3000))], axis=1)
    assert noise_floor(x, 1000.0) == pytest.approx(0.1, rel=0.15)
    assert moving_rms(x, 1000.0).shape == ((4000 - 100) // 50 + 1,)
    assert noise_floor(np.zeros((2, 0)), 1000.0) == 0.0
    space = StandardSpace()
    assert amplitude_gain(space, scale=0.5) == (2.0, "dataset")
    assert amplitude_gain(space, own_floor=0.25) == (4.0, "recording")
    assert amplitude_gain(space, own_floor=0.0) == (1.0, "recording")
    assert amplitude_gain(StandardSpace(amplitude="none"), scale=3.0) == (1.0, "none")
    with pytest.raises(DataError, match="amplitude_scale"):
        amplitude_gain(space, scale=-1.0)


def test_power_above(rng):
    x, _ = sines([60, 300], 1000.0, channels=1)
    frac = power_above([(x, 1000.0)], [100, 250, 400])
    assert frac[100] == pytest.approx(0.5, abs=0.02) and frac[250] == pytest.approx(0.5, abs=0.02)
    assert frac[400] < 0.01
    with pytest.raises(DataError):
        power_above([], [100])


# -- the pipeline -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synth():
    cfg = SyntheticConfig(n_subjects=3, repetitions=1, n_gestures=2)
    return {u: generate_unit(cfg, u) for u in ("s00", "s01", "s02")}  # myo, 3dc, ring:6


@pytest.mark.parametrize("unit", ["s00", "s01", "s02"])
def test_rectify_output_contract(synth, unit):
    rec = synth[unit][2]
    out = rectify(rec)
    # the synthetic 50 Hz line is found where nothing masks it (the rest trial) and notched
    assert rectify(synth[unit][0]).meta["rectify"]["line_hz"] == 50.0
    assert out.units == "standard" and out.device.name == "standard16" and out.rate == 500.0
    assert out.data.shape == (16, round(rec.duration * 500)) and out.data.dtype == np.float32
    assert out.labels.shape == (out.n_samples,) and out.times is None
    assert out.label == rec.label and out.classes == rec.classes and out.subject == rec.subject
    # labels resampled by nearest sample: the contraction keeps its extent in seconds
    assert abs((out.labels > 0).mean() - (rec.labels > 0).mean()) < 0.01
    prov = out.meta["rectify"]
    assert prov["source_rate"] == rec.rate and prov["source_device"] == rec.device.name
    assert prov["source_units"] == rec.units and prov["gain"] > 0 and out.meta["repetition"] == 0
    json.dumps(out.meta)  # serialisable provenance
    assert prov["band"][1] <= 0.9 * min(rec.rate, 500.0) / 2


def test_rectify_input_dtypes_give_the_same_result(synth):
    rec = synth["s01"][1]
    ref = rectify(rec, amplitude_scale=10.0).data
    as_int16 = rec.with_data(rec.data.astype(np.int16))
    as_f64 = rec.with_data(rec.data.astype(np.float64))
    np.testing.assert_allclose(rectify(as_int16, amplitude_scale=10.0).data, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rectify(as_f64, amplitude_scale=10.0).data, ref, rtol=1e-5, atol=1e-5)
    strided = np.repeat(rec.data, 2, axis=1)[:, ::2]
    np.testing.assert_allclose(rectify(rec.with_data(strided), amplitude_scale=10.0).data, ref, rtol=1e-5,
                               atol=1e-5)


def test_rectify_amplitude_makes_units_comparable_and_keeps_rest_low(synth):
    trials = synth["s01"]                         # rest, gesture1, gesture2 in ADC counts
    volts = [r.with_data(r.data * 3e-4, units="V") for r in trials]
    s_adc, s_v = estimate_amplitude_scale(trials), estimate_amplitude_scale(volts)
    assert s_v == pytest.approx(s_adc * 3e-4, rel=1e-4)
    a = [rectify(r, amplitude_scale=s_adc).data for r in trials]
    b = [rectify(r, amplitude_scale=s_v).data for r in volts]
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-3)
    rms = [float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) for x in a]
    assert rms[0] < 2.0 and rms[1] > 5 * rms[0] and rms[2] > 5 * rms[0]   # rest stays near 1 floor
    # "recording" mode normalises each trial to its own floor instead
    own = rectify(trials[1], StandardSpace(amplitude="recording"))
    assert own.meta["rectify"]["amplitude_source"] == "recording"
    assert rectify(trials[1], StandardSpace(amplitude="none")).meta["rectify"]["gain"] == 1.0
    with pytest.raises(DataError):
        estimate_amplitude_scale([])


@pytest.mark.parametrize("n", [0, 1, 2, 7, 40])
def test_rectify_short_recordings_do_not_crash(n, rng):
    rec = Recording(rng.normal(size=(10, n)).astype(np.float32), 1000.0, "3dc", units="adc",
                    labels=np.ones(n, dtype=np.int32))
    out = rectify(rec, amplitude_scale=1.0)
    assert out.data.shape == (16, -(-n // 2)) and np.isfinite(out.data).all()
    assert out.labels.shape == (out.n_samples,)


def test_rectify_irregular_recording(rng):
    times, x = myo_like_log(rng, seconds=6.0)
    x8 = np.repeat(x[:1], 8, axis=0) * 30 + rng.normal(size=(8, 1)).round()
    labels = (times > 3.0).astype(np.int32)
    rec = Recording(x8.astype(np.float32), 200.0, "myo", units="int8", labels=labels, times=times)
    out = rectify(rec, StandardSpace(band=(0.5, 450.0)), amplitude_scale=1.0)
    assert out.rate == 500.0 and out.times is None
    assert out.n_samples == pytest.approx((times[-1] - times[0]) * 500, abs=30)
    assert out.meta["rectify"]["native_rate"] == pytest.approx(100.0, rel=0.02)
    assert out.meta["rectify"]["band"][1] == pytest.approx(45.0, rel=0.02)  # 0.9 x native Nyquist
    switch = np.flatnonzero(np.diff(out.labels))[0] / 500 + times[0]
    assert switch == pytest.approx(3.0, abs=0.05)


def test_rectify_other_channel_counts_and_errors(synth):
    out = rectify(synth["s00"][1], StandardSpace(channels=8))
    assert out.device.name == "standard8" and out.n_channels == 8
    with pytest.raises(DataError, match="too low for the band"):
        rectify(synth["s00"][1], StandardSpace(band=(95.0, 450.0)))


@pytest.mark.realdata
def test_rectify_real_3dc_and_uci(data_root):
    from aemg.data.readers import get_reader

    reader = get_reader("3dc", data_root / "3dc_armband")
    recs = reader.read(reader.sources()[0])[:3]
    scale = estimate_amplitude_scale(recs)
    out = rectify(recs[0], amplitude_scale=scale)
    assert out.n_channels == 16 and out.rate == 500.0 and np.isfinite(out.data).all()
    uci = get_reader("uci_myo", data_root / "uci_emg_gestures_myo")
    rec = uci.read(uci.sources()[0])[0]
    out = rectify(rec)
    assert out.rate == 500.0 and out.labels is not None
    assert out.duration == pytest.approx(rec.duration, abs=0.5)


def test_dataset_native_rate_gives_irregular_logs_one_band(rng):
    """Two logs of one device at different native rates: without a dataset rate each gets its own
    band (0.9 x its own Nyquist); with dataset_native_rate both get the same one."""
    recs = []
    for native in (60.0, 130.0):
        times, x = myo_like_log(rng, seconds=6.0, native=native)
        x8 = np.repeat(x[:1], 8, axis=0) * 30 + rng.normal(size=(8, 1)).round()
        recs.append(Recording(x8.astype(np.float32), 200.0, "myo", units="int8", times=times))
    own = [rectify(r, amplitude_scale=1.0).meta["rectify"] for r in recs]
    rates = [effective_rate(r.times, r.data) for r in recs]
    assert rates[1] > rates[0] * 1.2
    assert [o["band"][1] for o in own] == pytest.approx([0.45 * r for r in rates])
    native = dataset_native_rate(recs)
    assert native == pytest.approx(np.percentile(rates, 10.0))
    shared = [rectify(r, amplitude_scale=1.0, native_rate=native).meta["rectify"] for r in recs]
    assert shared[0]["band"] == shared[1]["band"] and shared[0]["band"][1] == pytest.approx(0.45 * native)
    assert shared[0]["native_rate"] == shared[1]["native_rate"] == native
    # uniform recordings: no native rate, and the argument changes nothing for them
    uniform = Recording(rng.normal(size=(8, 600)).astype(np.float32), 200.0, "myo", units="int8")
    assert dataset_native_rate([uniform]) is None
    assert np.array_equal(rectify(uniform, amplitude_scale=1.0, native_rate=50.0).data,
                          rectify(uniform, amplitude_scale=1.0).data)
    assert dataset_native_rate([]) is None


@pytest.mark.parametrize("unit", ["s00", "s01", "s02"])
def test_float32_precision_is_within_1e5_of_float64(synth, unit):
    """The float32 path (default) against the float64 one on every synthetic trial of each device
    (Myo 200 Hz upsampled, 3DC 1 kHz downsampled, ring:6 mapped first): RMS difference < 1e-5 of
    the signal RMS, same line decision, same labels; provenance names the precision."""
    for rec in synth[unit]:
        a = rectify(rec, amplitude_scale=3.0, precision="float64")
        b = rectify(rec)
        assert b.meta["rectify"]["precision"] == "float32" and a.meta["rectify"]["precision"] == "float64"
        assert a.data.shape == b.data.shape and b.data.dtype == np.float32
        assert a.meta["rectify"]["line_hz"] == b.meta["rectify"]["line_hz"]
        np.testing.assert_array_equal(a.labels, b.labels)
        x, y = a.data.astype(np.float64), rectify(rec, amplitude_scale=3.0).data.astype(np.float64)
        rms = np.sqrt(np.mean(x * x))
        assert np.sqrt(np.mean((y - x) ** 2)) < 1e-5 * rms
        assert not np.array_equal(x, y)  # really another computation
    with pytest.raises(ConfigError, match="float16"):
        rectify(synth[unit][0], precision="float16")


def test_float32_precision_int16_and_non_contiguous_input(synth):
    rec = synth["s01"][1]
    ref = rectify(rec, amplitude_scale=10.0).data
    as_int16 = rec.with_data(rec.data.astype(np.int16))
    np.testing.assert_allclose(rectify(as_int16, amplitude_scale=10.0).data, ref, rtol=1e-4, atol=1e-4)
    strided = np.repeat(rec.data, 2, axis=1)[:, ::2]
    np.testing.assert_array_equal(rectify(rec.with_data(strided), amplitude_scale=10.0).data, ref)


# -- fixed costs (docs/notes/rectify.md, Session 7) ---------------------------------------------

@pytest.mark.parametrize("unit", ["s00", "s01"])
def test_rectify_output_equals_a_validated_recording(synth, unit):
    """The output Recording is built without re-validation: every field is what the validating
    constructor makes of the same values."""
    for rec in synth[unit]:
        out = rectify(rec, amplitude_scale=3.0)
        ref = Recording(data=out.data, rate=out.rate, device=out.device, units=out.units,
                        subject=out.subject, session=out.session, trial=out.trial, dataset=out.dataset,
                        label=out.label, labels=out.labels, classes=out.classes, source=out.source,
                        meta=out.meta, times=out.times)
        assert out.data.dtype == np.float32 and out.data.flags.c_contiguous
        assert out.labels.dtype == np.int32 and out.labels.flags.c_contiguous
        assert type(out.rate) is float and out.header() == ref.header() and repr(out) == repr(ref)
        np.testing.assert_array_equal(out.data, ref.data)
        np.testing.assert_array_equal(out.labels, ref.labels)


def test_rectify_overflowing_gain_is_still_reported(synth):
    """A gain that overflows float32 gives the constructor's error naming the sample, as before."""
    rec = synth["s01"][1]
    with np.errstate(over="ignore"), pytest.raises(DataError, match="non-finite sample"):
        rectify(rec, amplitude_scale=1e-300)


def test_integer_recordings_skip_only_the_finite_check(rng):
    x = rng.integers(-2 ** 15, 2 ** 15, size=(10, 257)).astype(np.int16)
    for data in (x, x.T.copy().T, x.astype(np.int64) * 2 ** 40, x.astype(np.uint8)):
        rec = Recording(data, 1000.0, "3dc")
        assert rec.data.dtype == np.float32 and rec.data.flags.c_contiguous
        np.testing.assert_array_equal(rec.data, np.asarray(data, np.float64).astype(np.float32))
    bad = x.astype(np.float32)
    bad[3, 100] = np.nan
    with pytest.raises(DataError, match="channel 4, sample 101"):
        Recording(bad, 1000.0, "3dc")


def test_pinned_backends_are_chosen_once_per_run(tmp_path, synth):
    """A run looks the filter kernels up once (at worker set-up) and forgets them at its end; the
    kernels chosen are the ones backends.use() selects, and the output is the same."""
    from aemg import backends
    from aemg.data import rectify as R
    from aemg.data.pipeline import rectify_dataset
    from aemg.data.readers import get_reader

    calls = []
    scipy32 = backends.get("sosfiltfilt32", "scipy")

    def counting(*a, **k):
        calls.append(1)
        return scipy32(*a, **k)

    reader = get_reader("synthetic", n_subjects=1, repetitions=1, n_gestures=2)
    with backends.override("sosfiltfilt32", "counting", counting, priority=100):
        R.pin_backends()
        assert R._PINNED["sosfiltfilt32"] is counting
        R.unpin_backends()
        assert not R._PINNED
        a = rectify_dataset(reader, tmp_path / "a", workers=1, progress=False)
        assert calls and not R._PINNED   # used during the run, forgotten after it
    b = rectify_dataset(reader, tmp_path / "b", workers=1, progress=False)
    assert a.recordings == b.recordings > 0
    from aemg.data.archive import open_archive
    for x, y in zip(open_archive(tmp_path / "a"), open_archive(tmp_path / "b")):
        np.testing.assert_array_equal(x.data, y.data)   # the SciPy reference = the compiled kernel


def test_pinning_skips_an_op_whose_backend_does_not_load(monkeypatch, synth):
    """A float64-only backend request that cannot load does not stop a float32 run (the op is
    left unpinned; its own calls would raise as before)."""
    from aemg import backends
    from aemg.data import rectify as R

    monkeypatch.setenv("AEMG_BACKEND_SOSFILTFILT", "no-such-backend")
    R.pin_backends()
    try:
        assert "sosfiltfilt" not in R._PINNED and "sosfiltfilt32" in R._PINNED
        rectify(synth["s01"][1], amplitude_scale=1.0)  # float32: fine
        with pytest.raises(ConfigError, match="no-such-backend"):
            rectify(synth["s01"][1], amplitude_scale=1.0, precision="float64")
    finally:
        R.unpin_backends()
    assert backends.requested("sosfiltfilt") == "no-such-backend"
