"""The Numba kernels' parity, with ``NUMBA_DISABLE_JIT=1``: their source runs as plain Python.

Compiled, the kernels are opaque to coverage and to a debugger; as Python they run line by line,
so this proves the kernel *source* (not only what LLVM made of it) computes the reference's
numbers, and lets ``coverage run`` see every kernel line. The JIT switch is read when Numba is
first imported, so :func:`test_numba_kernels_as_python` runs the ``test_nojit_*`` checks of this file in a
fresh interpreter (small signals: a few seconds in pure Python). Run them directly with
``NUMBA_DISABLE_JIT=1 python -m pytest tests/test_kernels_numba_nojit.py``.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aemg import backends

NOJIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
needs_nojit = pytest.mark.skipif(not NOJIT, reason="runs in the NUMBA_DISABLE_JIT=1 subprocess")
needs_numba = pytest.mark.skipif("numba" not in backends.available("segment"), reason="numba not installed")


@needs_numba
@pytest.mark.skipif(NOJIT, reason="already the NUMBA_DISABLE_JIT=1 run")
def test_numba_kernels_as_python():
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    env.pop("AEMG_STRICT", None)
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k",
                          "test_nojit_", str(Path(__file__))], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parents[1], check=False)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and " skipped" not in out.stdout, out.stdout[-2000:]


def _bursty(rng, C, T, dtype):
    x = rng.normal(0, 30, (C, T)) * np.repeat(rng.uniform(1, 8, T // 100 + 1), 100)[:T]
    if np.issubdtype(dtype, np.integer):
        x = np.clip(np.round(x), np.iinfo(dtype).min, np.iinfo(dtype).max)
    return x.astype(dtype)


@needs_nojit
def test_nojit_is_really_python():
    import numba

    from aemg.tokenizer import segment_numba
    assert numba.config.DISABLE_JIT
    assert not hasattr(segment_numba.segment_chunk, "signatures")  # a plain function, not a dispatcher


@needs_nojit
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.int8])
def test_nojit_envelope_and_segment_match_reference(dtype):
    from aemg.tokenizer import segment_reference
    from aemg.tokenizer.segment import SegmentParams, detect_events, energy_envelope

    rng = np.random.default_rng(1)
    x = _bursty(rng, 3, 1500, dtype)
    if np.issubdtype(dtype, np.floating):
        x[1, 700:720] = np.nan
    p = SegmentParams(window_s=0.01, min_event_s=0.01, merge_gap_s=0.01, nan_policy="zero")
    ref = detect_events(x, 1000.0, p, backend="numpy")
    got = detect_events(x, 1000.0, p, backend="numba")
    assert got.pairs() == ref.pairs() and len(ref) > 0
    assert (got.noise_level, got.n_nonfinite) == (ref.noise_level, ref.n_nonfinite)
    for per_channel in (False, True):
        np.testing.assert_array_equal(
            energy_envelope(x, 1000.0, 0.01, per_channel=per_channel, nan_policy="zero", backend="numba"),
            energy_envelope(x, 1000.0, 0.01, per_channel=per_channel, nan_policy="zero", backend="numpy"))
    # resumable: chunks of every size, bit-identical state
    kernel = backends.get("segment", "numba")
    ref_state, state = segment_reference.KernelState(13), segment_reference.KernelState(13)
    want, _ = segment_reference.segment(x, ref_state, 9e4, 4e4)
    got_flips = np.concatenate([kernel(x[:, i:j], state, 9e4, 4e4)[0]
                                for i, j in [(0, 1), (1, 700), (700, 700), (700, 1500)]])
    np.testing.assert_array_equal(got_flips, want)
    assert state.fstate[0] == ref_state.fstate[0] and state.position == ref_state.position


@needs_nojit
def test_nojit_tokens_match_reference():
    from aemg.tokenizer.tokens import extract_tokens

    rng = np.random.default_rng(2)
    x = _bursty(rng, 5, 600, np.float32)
    x[2] = 2.5  # a flat channel
    x[3, 100] = np.nan
    for signal, L in [(x, 31), (x, 1), (x[:, ::2], 7), ((x[:2] * 10).astype(np.int16), 9)]:
        starts = rng.integers(0, signal.shape[1] - L + 1, 25)
        ref = extract_tokens(signal, starts, L, backend="numpy")
        got = extract_tokens(signal, starts, L, backend="numba")
        for a, b in zip(ref, got):  # the tolerance of tests/test_tokens.py
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_allclose(b, a, rtol=2e-6, atol=2e-6)
            assert np.array_equal(np.isnan(a), np.isnan(b))
