"""Streaming segmentation emits exactly the offline events, whatever the chunk sizes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aemg import backends
from aemg.data.readers import get_reader
from aemg.errors import DataError
from aemg.tokenizer.segment import SegmentParams, detect_events, noise_level, postprocess_events
from aemg.tokenizer.stream import EventAssembler, StreamingSegmenter

BACKENDS = backends.available("segment")
HYP = settings(max_examples=60, deadline=None)


def run_stream(x, rate, params, noise, chunk_sizes, backend=None):
    seg = StreamingSegmenter(rate, x.shape[0], params, noise=noise, backend=backend)
    out, i, k = [], 0, 0
    while i < x.shape[1]:
        n = chunk_sizes[k % len(chunk_sizes)]
        out += seg.push(x[:, i:i + n])
        i, k = i + n, k + 1
    out += seg.flush()
    assert seg.position == x.shape[1]
    return out


def bursts(seed, C, T):
    rng = np.random.default_rng(seed)
    amp = np.ones(T)
    for _ in range(int(rng.integers(0, 12))):
        s = int(rng.integers(0, max(1, T)))
        amp[s: s + int(rng.integers(1, 2500))] *= rng.uniform(2, 8)
    return (rng.normal(0, 20, (C, T)) * amp).astype(np.float32)


@HYP
@given(seed=st.integers(0, 2**32 - 1), C=st.integers(1, 10), T=st.integers(0, 12_000),
       chunks=st.lists(st.integers(0, 3000), min_size=1, max_size=8).filter(any),
       window_s=st.sampled_from([0.005, 0.05]), merge_gap_s=st.sampled_from([0.0, 0.03, 0.3]),
       min_event_s=st.sampled_from([0.0, 0.05, 0.2]), max_event_s=st.sampled_from([None, 0.2, 0.7]),
       backend=st.sampled_from(BACKENDS))
def test_stream_equals_offline(seed, C, T, chunks, window_s, merge_gap_s, min_event_s, max_event_s, backend):
    x = bursts(seed, C, T)
    params = SegmentParams(window_s=window_s, merge_gap_s=merge_gap_s, min_event_s=min_event_s,
                           max_event_s=max_event_s)
    noise = 400.0
    offline = detect_events(x, 1000.0, params, noise=noise, backend=backend).pairs()
    assert run_stream(x, 1000.0, params, noise, chunks, backend) == offline


@HYP
@given(gaps=st.lists(st.tuples(st.integers(1, 30), st.integers(1, 60), st.booleans()), max_size=30),
       merge_gap=st.integers(0, 20), min_len=st.integers(0, 25),
       extra=st.one_of(st.none(), st.integers(0, 40)),
       open_end=st.booleans())
def test_assembler_equals_vectorised_postprocessing(gaps, merge_gap, min_len, extra, open_end):
    """The causal assembler (fed crossing by crossing) == postprocess_events on the whole list."""
    max_len = None if extra is None else max(1, min_len + extra)
    starts, ends, t = [], [], 0
    for gap, length, _ in gaps:
        starts.append(t + gap)
        ends.append(t + gap + length)
        t = ends[-1]
    T = t + (0 if open_end else 5)
    a, out = EventAssembler(merge_gap, min_len, max_len), []
    for s, e, (_, _, tick) in zip(starts, ends, gaps):
        if tick:  # time passes before the next crossing (or both come in one chunk)
            a.advance(s, out)
        a.on(s, out)
        for now in range(s + 1, e + 1, 7 if tick else 10**9):  # time passes inside the event
            a.advance(now, out)
        if open_end and e == T:
            break
        a.off(e)
        if tick:
            a.advance(e + 1, out)
    a.close(T, out)
    ps, pe = postprocess_events(np.array(starts, np.int64), np.array(ends, np.int64), merge_gap, min_len,
                                max_len)
    assert out == list(zip(ps.tolist(), pe.tolist()))


def test_events_are_emitted_with_bounded_delay():
    x = np.zeros((2, 20_000), np.int16)
    x[:, 1000:1500] = 100
    x[:, 5000:16_000] = 100  # an 11 s contraction: pieces of 2 s come out while it lasts
    params = SegmentParams()  # merge gap 0.1 s, max 2 s
    seg = StreamingSegmenter(1000.0, 2, params, noise=1.0)
    got = {}
    for i in range(0, 20_000, 100):
        for ev in seg.push(x[:, i:i + 100]):
            got[ev] = i + 100  # samples seen when emitted
    assert seg.flush() == []
    assert list(got) == detect_events(x, 1000.0, params, noise=1.0).pairs()
    assert got[(1000, 1549)] <= 1549 + 100 + 100  # end + merge gap (+ one chunk)
    assert got[(5000, 7000)] <= 7000 + 100  # a full piece as soon as it is complete


def test_stream_errors_and_calibration():
    seg = StreamingSegmenter(200.0, 3, noise=1.0)
    with pytest.raises(DataError, match="chunk: has 2 channels, expected 3"):
        seg.push(np.zeros((2, 5)))
    bad = np.zeros((3, 10), np.float32)
    bad[1, 4] = np.nan
    seg.push(np.zeros((3, 7)))
    with pytest.raises(DataError,
                       match=r"chunk: \(stream position 7\) non-finite .* channel 2, sample 5 \(1-based"):
        seg.push(bad)
    assert seg.position == 7  # the bad chunk left the state untouched
    zero = StreamingSegmenter(200.0, 3, SegmentParams(nan_policy="zero"), noise=1.0)
    zero.push(bad)
    assert zero.n_nonfinite == 1
    seg.flush()
    with pytest.raises(DataError, match="flushed"):
        seg.push(np.zeros((3, 5)))
    with pytest.raises(DataError, match="n_channels"):
        StreamingSegmenter(200.0, 0, noise=1.0)
    cal = np.random.default_rng(0).normal(0, 2, (3, 1000))
    seg = StreamingSegmenter.from_calibration(200.0, cal)
    assert seg.noise == noise_level(cal, 200.0, calibration=cal) and seg.n_channels == 3


@pytest.mark.realdata
def test_stream_equals_offline_on_real_recordings(data_root):
    reader = get_reader("3dc", data_root / "3dc_armband")
    files = [f"Participant2/train/EMG/3dc_EMG_gesture_1_{c}.txt.gz" for c in (0, 2, 7, 0, 9)]
    x = np.concatenate([reader.read(f)[0].data.astype(np.int16) for f in files], axis=1)  # ADC counts
    params = SegmentParams()
    noise = noise_level(x, 1000.0, params, calibration=x[:, :4000])  # the first rest file
    offline = detect_events(x, 1000.0, params, noise=noise)
    assert len(offline) > 3
    rng = np.random.default_rng(0)
    for backend in BACKENDS:
        chunks = rng.integers(1, 400, size=50).tolist()
        assert run_stream(x, 1000.0, params, noise, chunks, backend) == offline.pairs()
