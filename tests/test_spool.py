"""The spool that carries large task results and arguments between processes of one host
(``aemg._spool``): what goes in comes out bit for bit, files never outlive their use, and anything
the spool cannot take travels the usual way."""
import os
import pickle

import numpy as np
import pytest

from aemg import _spool
from aemg._spool import Spool, Spooled, SpoolTicket, call_chunk, call_spooled, discard, unpack
from aemg.data.recording import Recording


def _big(n=1 << 17, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(n).astype(dtype)


def _files(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".bin"))


def test_round_trip_is_bit_exact_and_the_file_goes_once_unpacked(tmp_path):
    x = _big()
    x[[3, 77]] = np.nan
    ints = (np.arange(1 << 16, dtype=np.int64) % 7000 - 3500).astype(np.int16)  # int16, odd count
    odd = _big(3 * 5 * 7 * 11 * 13, np.float64).reshape(15, 1001)
    obj = {"x": x, "ints": ints, "odd": odd, "strided": odd[:, ::3], "empty": np.zeros((0, 4)),
           "one": np.ones(1), "fortran": np.asfortranarray(odd), "name": "3dc/s1"}
    with Spool(tmp_path) as spool:
        packed = spool.ticket.pack(obj)
        assert isinstance(packed, Spooled)
        # only the small pickle travels, and the non-contiguous view (copied into it)
        assert len(packed.data) < obj["strided"].nbytes + 4096
        assert len(_files(spool.folder)) == 1
        back = pickle.loads(pickle.dumps(packed))  # what a pipe or Dask carries
        out = unpack(back)
        assert _files(spool.folder) == []
    assert out.keys() == obj.keys()
    for key, want in obj.items():
        if isinstance(want, np.ndarray):
            assert out[key].dtype == want.dtype and out[key].shape == want.shape
            assert out[key].tobytes() == want.tobytes(), key  # NaN payloads too
        else:
            assert out[key] == want
    assert out["fortran"].flags.f_contiguous
    assert all(a.flags.aligned and a.flags.writeable for a in out.values() if isinstance(a, np.ndarray))
    out["x"][0] = 5.0  # copy-on-write pages: writable, and the spool file is gone already
    assert out["x"][0] == 5.0


def test_small_objects_and_other_hosts_travel_the_usual_way(tmp_path):
    small = {"a": np.ones(100), "b": [1, 2, 3]}
    with Spool(tmp_path) as spool:
        assert spool.ticket.pack(small) is small
        elsewhere = SpoolTicket(spool.folder, "marker-of-another-host")  # a folder of that name, not ours
        big = [_big()]
        assert elsewhere.pack(big) is big
        assert _files(spool.folder) == []
    assert unpack(small) is small


def test_a_full_ram_filesystem_falls_back_and_leaves_no_file(tmp_path, monkeypatch):
    with Spool(tmp_path) as spool:
        real_open = open

        def full(path, *a, **kw):
            if str(path).endswith(".bin"):
                f = real_open(path, *a, **kw)
                f.close()
                raise OSError(28, "No space left on device")
            return real_open(path, *a, **kw)

        monkeypatch.setattr(_spool, "open", full, raising=False)
        big = [_big()]
        assert spool.ticket.pack(big) is big
        assert _files(spool.folder) == []


def test_the_folder_goes_with_the_run_and_orphans_with_the_next(tmp_path):
    with Spool(tmp_path) as spool:
        folder = spool.folder
        assert os.path.basename(folder).startswith(f"aemg-spool-{os.getpid()}-")
        spool.ticket.pack([_big()])  # a result nobody unpacked (its worker died, say)
    assert not os.path.exists(folder)
    dead = tmp_path / "aemg-spool-999999999-abc"  # no such process
    dead.mkdir()
    (dead / "1-x.bin").write_bytes(b"0" * 10)
    alive = tmp_path / f"aemg-spool-{os.getppid()}-abc"
    alive.mkdir()
    other = tmp_path / "someone-elses"
    other.mkdir()
    with Spool(tmp_path):
        pass
    assert not dead.exists() and alive.exists() and other.exists()


def test_task_helpers_unpack_arguments_and_pack_results(tmp_path):
    x = _big()
    with Spool(tmp_path) as spool:
        t = spool.ticket
        args = (t.pack(x), 2.0)
        out = call_spooled(lambda a, b: a.sum() + b, args)
        assert out == pytest.approx(float(x.sum()) + 2.0)
        # a task's arguments stay for a re-run (its worker may die before the result is back) ...
        assert call_spooled(lambda a, b: a.sum() + b, args) == out
        assert len(_files(spool.folder)) == 1
        discard(args, "the future")  # ... until the sender's future is done
        assert _files(spool.folder) == []
        packed = call_chunk(lambda k: x * k, t, [1, 2])
        assert isinstance(packed, Spooled)
        got = unpack(packed)
        assert np.array_equal(got[1], 2 * x)
        assert call_chunk(len, None, ["ab", "c"]) == [2, 1]


def test_recordings_travel_whole(tmp_path):
    from aemg.data.devices import get_device
    dev = get_device("myo")
    rec = Recording(_big(8 * 20000).reshape(8, 20000), 500.0, dev, subject="s1", session="d1", trial="t3",
                    dataset="demo", label=2, classes=("rest", "a", "b"), meta={"repetition": 1})
    with Spool(tmp_path) as spool:
        [back] = unpack(spool.ticket.pack([rec]))
    assert back.key == rec.key and back.device == rec.device and back.meta == rec.meta
    assert np.array_equal(back.data, rec.data)


def test_a_pool_run_moves_its_results_through_the_spool_and_removes_it(tmp_path, monkeypatch):
    """rectify and prepare with 2 pool workers, every result and tokenize argument through spool
    files: the archive and corpus equal the in-process run's, and no spool folder is left."""
    from test_distributed import same_archive
    from test_prepare import same_corpus

    from aemg.data.pipeline import rectify_dataset
    from aemg.data.prepare import prepare_dataset
    options = {"n_subjects": 3, "trial_s": 1.5, "repetitions": 2, "n_gestures": 2}
    monkeypatch.setattr(_spool, "SPOOL_MIN_BYTES", 0)  # forked workers inherit it
    packed = []
    real_pack = SpoolTicket.pack

    def counting(self, obj):
        out = real_pack(self, obj)
        packed.append(isinstance(out, Spooled))
        return out

    monkeypatch.setattr(SpoolTicket, "pack", counting)
    mine = f"aemg-spool-{os.getpid()}-"
    for w in (1, 2):
        rectify_dataset("synthetic", tmp_path / f"a{w}", reader_options=options, workers=w, progress=False)
        prepare_dataset("synthetic", tmp_path / f"c{w}", reader_options=options, workers=w, progress=False)
    assert any(packed)  # prepare's recordings handed to the tokenize tasks
    same_archive(tmp_path / "a1", tmp_path / "a2")
    same_corpus(tmp_path / "c1", tmp_path / "c2")
    assert not [n for n in os.listdir(_spool.spool_base()) if n.startswith(mine)]


def test_a_spool_that_cannot_be_made_sends_everything_the_usual_way(tmp_path):
    ro = tmp_path / "missing" / "folder"  # mkdtemp fails: no such parent
    with Spool(ro) as spool:
        assert spool.folder is None and not spool.ticket.visible()
        big = [_big()]
        assert spool.ticket.pack(big) is big
        assert call_chunk(len, spool.ticket, ["ab"]) == [2]
