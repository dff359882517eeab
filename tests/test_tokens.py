"""Tokens and sentences: geometry, normalisation, metadata, bad input, cap, streaming parity."""
import dataclasses

import numpy as np
import pytest

from aemg import backends
from aemg.data import Recording
from aemg.errors import ConfigError, DataError
from aemg.tokenizer.calibration import is_rest_class
from aemg.tokenizer.sentence import Sentence
from aemg.tokenizer.stream import StreamingTokenizer
from aemg.tokenizer.tokens import (
    TokenizerConfig,
    event_token_starts,
    extract_tokens,
    extract_tokens_into,
    tokenize_recording,
    tokenize_signal,
    window_starts,
)

RATE = 500.0


def bursts(rng, n=4000, c=16, on=((500, 1200), (2000, 2100), (2600, 3700)), noise=0.05, amp=1.0):
    """Gaussian noise with louder bursts on the sample ranges ``on`` (channel 3 loudest)."""
    x = noise * rng.standard_normal((c, n))
    gain = np.linspace(0.5, 1.0, c)
    gain[3] = 2.0
    for s, e in on:
        x[:, s:e] += amp * gain[:, None] * rng.standard_normal((c, e - s))
    return x.astype(np.float32)


def naive_starts(events, L, hop, T):
    """Loop oracle of event_token_starts."""
    out, which = [], []
    for k, (s, e) in enumerate(events):
        if e - s <= L:
            starts = [s - (L - (e - s)) // 2]
        else:
            starts = list(range(s, e - L + 1, hop))
            if starts[-1] + L < e:
                starts.append(e - L)
        for st in starts:
            out.append(max(0, min(st, T - L)))
            which.append(k)
    return out, which


def test_event_token_starts_matches_loop_oracle(rng):
    for _ in range(200):
        T = int(rng.integers(30, 400))
        L = int(rng.integers(1, 30))
        hop = int(rng.integers(1, L + 3))
        cuts = np.sort(rng.choice(np.arange(T + 1), size=2 * int(rng.integers(0, 5)), replace=False))
        events = list(zip(cuts[0::2], cuts[1::2]))
        events = [(s, e) for s, e in events if e > s]
        st, ev = event_token_starts(np.array([s for s, _ in events], np.int64),
                                    np.array([e for _, e in events], np.int64), L, hop, T)
        want, which = naive_starts(events, L, hop, T)
        assert st.tolist() == want and ev.tolist() == which
    # every sample of a long event is covered, the last token ends at the event end
    st, _ = event_token_starts(np.array([10]), np.array([57]), 10, 10, 100)
    assert st.tolist() == [10, 20, 30, 40, 47]
    # a short event gets one centred token, shifted inside the recording at the edges
    assert event_token_starts(np.array([50]), np.array([54]), 10, 10, 100)[0].tolist() == [47]
    assert event_token_starts(np.array([0]), np.array([2]), 10, 10, 100)[0].tolist() == [0]
    assert event_token_starts(np.array([97]), np.array([100]), 10, 10, 100)[0].tolist() == [90]
    assert window_starts(9, 10, 5).size == 0 and window_starts(20, 10, 5).tolist() == [0, 5, 10]


def test_extract_tokens_normalises_and_keeps_raw_energy(rng):
    x = rng.standard_normal((6, 300)).astype(np.float32)
    x[1] *= 10.0                 # the loudest channel on raw energy
    x[2] = 0.0                   # all-zero channel
    x[4] = 2.5                   # flat line (constant)
    x[5] += 3.0                  # offset
    starts = np.array([0, 17, 290 - 10], np.int64)
    payload, energy, dominant = extract_tokens(x, starts, 20)
    assert payload.shape == (3, 6, 20) and payload.dtype == np.float32
    ref = np.stack([x[:, s:s + 20] for s in starts]).astype(np.float64)
    np.testing.assert_allclose(energy, np.sqrt((ref ** 2).mean(-1)), rtol=1e-5)
    live = [0, 1, 3, 5]
    np.testing.assert_allclose(payload[:, live].mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(payload[:, live].std(-1), 1, rtol=1e-4)
    np.testing.assert_allclose(payload[:, live], (ref[:, live] - ref[:, live].mean(-1, keepdims=True))
                               / ref[:, live].std(-1, keepdims=True), atol=1e-4)
    assert np.all(payload[:, [2, 4]] == 0) and np.all(np.isfinite(payload))
    np.testing.assert_allclose(energy[:, 4], 2.5, rtol=1e-6)
    assert np.all(energy[:, 2] == 0)
    assert dominant.tolist() == [1, 1, 1]      # raw energy, not the z-scored one
    # int16 and non-contiguous input give the same tokens; offsets are honoured
    xi = (x[:, :] * 100).astype(np.int16)
    p16, e16, _ = extract_tokens(xi, starts, 20)
    p32, e32, _ = extract_tokens(xi.astype(np.float32), starts, 20)
    np.testing.assert_array_equal(p16, p32)
    wide = np.repeat(x, 2, axis=1)[:, ::2]
    assert not wide.flags.c_contiguous
    np.testing.assert_array_equal(extract_tokens(wide, starts, 20)[0], payload)
    np.testing.assert_array_equal(extract_tokens(x[:, 10:], starts[1:], 20, offset=10)[0], payload[1:])
    with pytest.raises(DataError, match="outside"):
        extract_tokens(x, np.array([295]), 20)
    assert extract_tokens(x, np.zeros(0, np.int64), 20)[0].shape == (0, 6, 20)


TOKEN_BACKENDS = [b for b in ("numba", "cython") if b in backends.available("tokens")]


@pytest.mark.parametrize("backend", TOKEN_BACKENDS)
def test_compiled_token_kernels_match_the_reference(rng, backend):
    """Edge cases: no token, one-sample tokens, odd lengths, flat / zero / offset / tiny / huge
    channels, int16, non-contiguous, NaN and inf; the compiled kernels are also bit-identical."""
    x = (rng.standard_normal((7, 400)) * np.array([1, 10, 0, 1, 1, 1e-20, 1e6])[:, None]).astype(np.float32)
    x[3] = 2.5
    x[4] += 1e4
    cases = [(x, 125), (x, 1), (x, 2), (x, 5), (x, 7), (x[:, ::2], 13), ((x[:3] * 100).astype(np.int16), 9)]
    bad = x.copy()
    bad[1, 50] = np.nan
    bad[6, 260] = np.inf
    cases.append((bad, 31))
    for signal, L in cases:
        for starts in (np.zeros(0, np.int64), np.array([0]), rng.integers(0, signal.shape[1] - L + 1, 40)):
            ref = extract_tokens(signal, starts, L, backend="numpy")
            got = extract_tokens(signal, starts, L, backend=backend)
            for a, b in zip(ref, got):
                assert a.dtype == b.dtype and a.shape == b.shape
                np.testing.assert_allclose(b, a, rtol=2e-6, atol=2e-6)
                assert np.array_equal(np.isnan(a), np.isnan(b))
            if len(TOKEN_BACKENDS) == 2:
                other = extract_tokens(signal, starts, L, backend=({"numba", "cython"} - {backend}).pop())
                assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(got, other))
    nan_tokens = extract_tokens(bad, np.array([40, 250]), 31, backend=backend)
    assert np.isnan(nan_tokens[0][0, 1]).all() and nan_tokens[2][0] == 1  # NaN energy is the argmax
    assert np.isnan(nan_tokens[0][1, 6]).all() and np.isinf(nan_tokens[1][1, 6])


def test_extract_tokens_into_checks_shapes(rng):
    x = rng.standard_normal((2, 50)).astype(np.float32)
    payload, energy = np.empty((3, 2, 10), np.float32), np.empty((3, 2), np.float32)
    dominant = np.empty(3, np.int16)
    extract_tokens_into(x, np.array([0, 5, 40]), 10, payload, energy, dominant)
    np.testing.assert_array_equal(payload, extract_tokens(x, np.array([0, 5, 40]), 10)[0])
    with pytest.raises(DataError, match="output shapes"):
        extract_tokens_into(x, np.array([0, 5]), 10, payload, energy, dominant)


def test_sentence_metadata_follows_the_events(rng):
    x = bursts(rng)
    rec = Recording(x, RATE, "standard16", units="standard", dataset="syn", subject="1", trial="7",
                    label=2, classes=("rest", "a", "b"))
    cfg = TokenizerConfig(token_s=0.2, hop_s=0.1)
    s = tokenize_recording(rec, cfg)
    L = cfg.token_len(RATE)
    assert isinstance(s, Sentence) and s.key == "syn/1/0/7" and s.label == 2 and s.device == "standard16"
    assert s.n_events == len(s.events) >= 3 and s.n_tokens > 0 and s.token_shape == (16, L)
    assert s.rate == RATE
    starts = np.round(s.onset_in_trial_s * RATE).astype(int)
    ev = s.events[s.event_index]
    np.testing.assert_allclose(s.onset_in_event_s * RATE, starts - ev[:, 0], atol=1e-3)
    np.testing.assert_allclose(s.duration_s * RATE, ev[:, 1] - ev[:, 0], atol=1e-3)
    assert np.all(np.diff(starts) > 0)                              # time order
    assert np.all(np.diff(s.event_index) >= 0)
    # tokens overlap their event; the detected events overlap the true bursts
    assert np.all((starts < ev[:, 1]) & (starts + L > ev[:, 0]))
    for a, b in ((500, 1200), (2000, 2100), (2600, 3700)):
        assert any(e0 < b and e1 > a for e0, e1 in s.events)
    assert set(s.dominant_channel.tolist()) == {3}
    for k in range(s.n_tokens):  # payload is exactly the z-scored window
        ref = x[:, starts[k]:starts[k] + L].astype(np.float64)
        np.testing.assert_allclose(s.payload[k],
                                   (ref - ref.mean(1, keepdims=True)) / ref.std(1, keepdims=True),
                                   atol=2e-4)


def test_windows_mode_and_cap(rng):
    x = bursts(rng, n=3000, on=((500, 1200), (2000, 2100)))
    cfg = TokenizerConfig(mode="windows", token_s=0.1, hop_s=0.05)
    s = tokenize_signal(x, RATE, cfg)
    L, hop = 50, 25
    assert s.n_tokens == (3000 - L) // hop + 1 and s.n_events == 0
    assert np.all(s.event_index == 0) and np.allclose(s.duration_s, 0.1)
    np.testing.assert_allclose(s.onset_in_event_s, s.onset_in_trial_s)
    first = tokenize_signal(x, RATE, dataclasses.replace(cfg, max_sentence_len=10))
    assert first.n_tokens == 10
    np.testing.assert_array_equal(first.payload, s.payload[:10])
    loud = tokenize_signal(x, RATE, dataclasses.replace(cfg, max_sentence_len=10, cap="energy"))
    power = (s.energy.astype(np.float64) ** 2).sum(1)
    keep = np.sort(np.argsort(-power)[:10])
    np.testing.assert_array_equal(loud.onset_in_trial_s, s.onset_in_trial_s[keep])
    assert np.all(np.diff(loud.onset_in_trial_s) > 0)


def test_bad_input_is_defined(rng):
    cfg = TokenizerConfig()
    one = Recording(np.ones((16, 1), np.float32), RATE, "standard16")
    assert tokenize_recording(one, cfg).n_tokens == 0                      # shorter than a token
    zeros = np.zeros((16, 2000), np.float32)
    assert tokenize_signal(zeros, RATE, cfg).n_tokens == 0                  # dead sensor: no garbage
    assert tokenize_signal(np.full((16, 2000), 3.0, np.float32), RATE, cfg).n_tokens == 0
    quiet = 0.05 * rng.standard_normal((16, 2000)).astype(np.float32)
    bg = tokenize_signal(quiet, RATE, cfg, noise=1.0)                       # no event: background
    assert bg.n_events == 0 and bg.n_tokens == 2000 // 125 and np.all(bg.event_index == 0)
    assert tokenize_signal(quiet, RATE, dataclasses.replace(cfg, no_event="empty"), noise=1.0).n_tokens == 0
    x = bursts(rng)
    x[5] = 0.0                                                              # flat channel in the bursts
    x[6] = 2.0
    clipped = np.clip(x, -0.8, 0.8)                                         # clipping
    for sig in (x, clipped):
        s = tokenize_signal(sig, RATE, cfg)
        assert s.n_tokens > 0 and np.all(np.isfinite(s.payload)) and np.all(np.isfinite(s.energy))
        assert np.all(s.payload[:, 5] == 0) and np.all(s.payload[:, 6] == 0)
        assert np.allclose(s.energy[:, 6], sig[6, 0])
    nan = x.copy()
    nan[2, 100:140] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        tokenize_signal(nan, RATE, cfg)
    with pytest.raises(DataError, match="channels, time"):
        tokenize_signal(np.zeros(10), RATE, cfg)


def test_config_validation_and_roundtrip():
    cfg = TokenizerConfig(token_s=0.1, hop_s=0.02, mode="windows", cap="energy")
    assert TokenizerConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.token_len(500) == 50 and cfg.hop_len(500) == 10 and TokenizerConfig().hop_len(200) == 50
    for bad in (dict(token_s=0), dict(token_s=float("nan")), dict(hop_s=-1), dict(max_sentence_len=0),
                dict(mode="bursts"), dict(cap="last"), dict(no_event="x"), dict(calibration="x")):
        with pytest.raises(ConfigError):
            TokenizerConfig(**bad)
    with pytest.raises(ConfigError, match="shorter than one sample"):
        TokenizerConfig(token_s=0.001).token_len(200)
    with pytest.raises(ConfigError, match="unknown key"):
        TokenizerConfig.from_dict({"tokens": 3})


def test_rest_class_names():
    for name in ("rest", "Rest", "neutral", "neutral/no motion", "noGesture", "hand at rest", "no gesture"):
        assert is_rest_class(name), name
    for name in ("fist", "wrist extension", "restimulus", "waveIn", "hand close"):
        assert not is_rest_class(name), name


@pytest.mark.parametrize("mode", ["events", "windows"])
def test_streaming_matches_offline_for_random_chunks(rng, mode):
    from aemg.tokenizer.segment import noise_level
    cfg = TokenizerConfig(token_s=0.2, hop_s=0.1, mode=mode, max_sentence_len=10_000)
    x = bursts(rng, n=6000, on=((300, 320), (700, 1500), (2000, 2400), (5000, 5990)))
    noise = float(noise_level(x[:, :250], RATE, cfg.segment)) if mode == "events" else None
    offline = tokenize_signal(x, RATE, cfg, noise=noise)
    assert offline.n_tokens > 5
    for trial in range(4):
        st = StreamingTokenizer(RATE, 16, cfg, noise=noise)
        parts, pos, peak = [], 0, 0
        while pos < x.shape[1]:
            n = int(rng.integers(0, 400)) if trial else 1 + (pos % 7)
            parts.append(st.push(x[:, pos:pos + n]))
            pos += n
            peak = max(peak, st.buffered)
        parts.append(st.flush())
        got = Sentence.concat(parts)
        for k, v in offline.tokens().items():
            np.testing.assert_array_equal(getattr(got, k), v, err_msg=k)
        assert peak < x.shape[1]                    # the buffer is bounded, not the whole signal
    with pytest.raises(DataError, match="flushed"):
        st.push(x[:, :10])
    with pytest.raises(DataError, match="chunk must be"):
        StreamingTokenizer(RATE, 16, cfg, noise=1.0).push(np.zeros((3, 10)))
    if mode == "events":
        with pytest.raises(ConfigError, match="noise"):
            StreamingTokenizer(RATE, 16, cfg)
