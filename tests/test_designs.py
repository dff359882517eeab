"""The disk cache of filter and window designs (aemg.data.designs): the values are SciPy's bit for
bit, cold or warm; a warm process rectifies without importing scipy.signal; damaged files,
unwritable folders and a turned-off cache only cost the computation."""
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import signal

from aemg.data import designs, rectify


def _clear_memory_caches():
    for fn in (rectify._band_sos, rectify._notch_sos_cached, rectify._sos_design_cached,
               rectify._sos_design32_cached, rectify._polyphase_fir, rectify._polyphase_taps,
               rectify._hann, rectify._cascade):
        fn.cache_clear()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("AEMG_CACHE_DIR", str(folder))
    _clear_memory_caches()
    yield folder
    _clear_memory_caches()


def _designs():
    """Every cached design of the pipeline for a few settings, as {name: array}."""
    sos = rectify._cascade(1000.0, 20.0, 450.0, 4, (50.0, 100.0), 30.0)
    out = {"band": rectify._band_sos(1000.0, 20.0, 450.0, 4), "low": rectify._band_sos(200.0, None, 80.0, 4),
           "high": rectify._band_sos(2048.0, 20.0, None, 4),
           "notch": rectify._notch_sos(500.0, (60.0, 120.0), 30.0),
           "zi": rectify._sos_zi(sos), "zi32": rectify._sos_design32(sos)[1],
           "fir": rectify._polyphase_fir(1, 2), "taps": rectify._polyphase_plan(5, 2, 777)[0],
           "taps32": rectify._polyphase_plan(1, 2, 999, np.float32)[0], "hann": rectify._hann(1000),
           "hann32": rectify._hann(250, "float32")}
    return out


def _scipy_designs():
    sos = np.vstack([signal.butter(4, [20.0, 450.0], "bandpass", fs=1000.0, output="sos")]
                    + [signal.tf2sos(*signal.iirnotch(f, 30.0, fs=1000.0)) for f in (50.0, 100.0)])
    from scipy.signal._upfirdn import _pad_h

    def taps(up, down, n_post, dtype):
        n = max(up, down)
        h = signal.firwin(2 * 10 * n + 1, 1.0 / n, window=("kaiser", 5.0)).astype(dtype)
        h *= up
        pre = down - ((h.size - 1) // 2) % down
        return _pad_h(np.concatenate([np.zeros(pre, dtype), h, np.zeros(n_post, dtype)]), up)

    return {"band": signal.butter(4, [20.0, 450.0], "bandpass", fs=1000.0, output="sos"),
            "low": signal.butter(4, 80.0, "lowpass", fs=200.0, output="sos"),
            "high": signal.butter(4, 20.0, "highpass", fs=2048.0, output="sos"),
            "notch": np.vstack([signal.tf2sos(*signal.iirnotch(f, 30.0, fs=500.0)) for f in (60.0, 120.0)]),
            "zi": signal.sosfilt_zi(sos).ravel(), "zi32": signal.sosfilt_zi(sos.astype(np.float32)).ravel(),
            "fir": signal.firwin(41, 0.5, window=("kaiser", 5.0)),
            "taps": taps(5, 2, _post(5, 2, 777), np.float64),
            "taps32": taps(1, 2, _post(1, 2, 999), np.float32),
            "hann": signal.get_window("hann", 1000),
            "hann32": signal.get_window("hann", 250).astype(np.float32)}


def _post(up, down, n_in):
    """SciPy's post padding of resample_poly for n_in samples (as rectify._polyphase_plan)."""
    half = 10 * max(up, down)
    pre = down - half % down
    n_out, n_rm, len_h, n_post = -(-n_in * up // down), (half + pre) // down, 2 * half + 1 + pre, 0
    while ((n_in - 1) * up + len_h + n_post - 1) // down + 1 < n_out + n_rm:
        n_post += 1
    return n_post


def _assert_bitwise(got, want):
    for k, w in want.items():
        g = got[k]
        assert g.dtype == np.asarray(w).dtype, k
        assert g.tobytes() == np.ascontiguousarray(w).tobytes(), k
        assert not g.flags.writeable, k


def test_cold_and_warm_designs_are_scipys_bit_for_bit(cache):
    want = _scipy_designs()
    _assert_bitwise(_designs(), want)          # computed and stored
    assert len(list(cache.rglob("*.npy"))) >= 10
    _clear_memory_caches()
    _assert_bitwise(_designs(), want)          # loaded from the files


def test_a_warm_process_rectifies_without_scipy_signal(cache, tmp_path):
    code = ("import sys, numpy as np\n"
            "from aemg.data.recording import Recording\n"
            "from aemg.data.rectify import rectify\n"
            "x = (np.random.default_rng(0).standard_normal((8, 3001)) * 300).astype(np.int16)\n"
            "rec = Recording(data=x, rate=1000.0, device='myo')\n"
            "y = rectify(rec, amplitude_scale=2.0).data\n"
            "np.save(sys.argv[1], y)\n"
            "print('scipy.signal' in sys.modules)\n")
    env = {**os.environ, "AEMG_CACHE_DIR": str(cache)}
    runs = [subprocess.run([sys.executable, "-c", code, str(tmp_path / f"y{i}.npy")], env=env,
                           capture_output=True, text=True, check=True) for i in range(2)]
    assert [r.stdout.strip() for r in runs] == ["True", "False"]   # cold: computed; warm: loaded
    cold, warm = np.load(tmp_path / "y0.npy"), np.load(tmp_path / "y1.npy")
    assert cold.tobytes() == warm.tobytes()
    off = subprocess.run([sys.executable, "-c", code, str(tmp_path / "y2.npy")],
                         env={**os.environ, "AEMG_CACHE_DIR": ""}, capture_output=True, text=True, check=True)
    assert off.stdout.strip() == "True"
    assert np.load(tmp_path / "y2.npy").tobytes() == cold.tobytes()


@pytest.mark.parametrize("damage", [b"", b"not a npy file", "wrong dtype"])
def test_a_damaged_file_is_computed_again_and_replaced(cache, damage):
    want = rectify._band_sos(1000.0, 20.0, 450.0, 4).copy()
    (path,) = cache.rglob("butter-*.npy")
    if damage == "wrong dtype":
        np.save(path, want.astype(np.float32))
    else:
        path.write_bytes(damage)
    _clear_memory_caches()
    got = rectify._band_sos(1000.0, 20.0, 450.0, 4)
    assert got.dtype == np.float64 and got.tobytes() == want.tobytes()
    assert np.load(path).tobytes() == want.tobytes()     # replaced by the good value


def test_an_unwritable_or_turned_off_cache_only_computes(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("AEMG_CACHE_DIR", str(blocker))
    _clear_memory_caches()
    want = signal.butter(4, [20.0, 200.0], "bandpass", fs=500.0, output="sos")
    assert rectify._band_sos(500.0, 20.0, 200.0, 4).tobytes() == want.tobytes()
    assert blocker.is_file() and not list(tmp_path.glob(".*tmp"))
    monkeypatch.setenv("AEMG_CACHE_DIR", "")
    assert designs.cache_folder() is None
    _clear_memory_caches()
    assert rectify._band_sos(500.0, 20.0, 200.0, 4).tobytes() == want.tobytes()
    _clear_memory_caches()


def test_the_folder_names_the_scipy_version(monkeypatch, tmp_path):
    import scipy
    monkeypatch.setenv("AEMG_CACHE_DIR", str(tmp_path))
    assert designs.cache_folder() == tmp_path / f"designs-scipy{scipy.__version__}-v{designs.FORMAT}"
    monkeypatch.delenv("AEMG_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert designs.cache_folder().parent == tmp_path / "xdg" / "aemg"
