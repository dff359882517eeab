"""Dataset readers on the shared real recordings, plus the registry."""
import pickle

import numpy as np
import pytest

from aemg.data.readers import DatasetInfo, Reader, get_reader, list_readers, read_dataset, register_reader
from aemg.data.recording import UNLABELLED
from aemg.data.trials import split_trials
from aemg.errors import ConfigError, DataError

realdata = pytest.mark.realdata


# -- registry ------------------------------------------------------------------------------------
def test_list_readers_has_every_builtin():
    names = {info.name for info in list_readers()}
    assert {"uci_myo", "coteallard", "3dc", "libemg_myo", "ninapro", "epn612", "grabmyo", "generic",
            "synthetic"} <= names
    assert all(isinstance(info, DatasetInfo) for info in list_readers())


def test_unknown_reader_lists_known_names():
    with pytest.raises(ConfigError, match="known readers: .*coteallard"):
        get_reader("nope")


def test_unknown_option_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown option.*bogus.*split"):
        get_reader("coteallard", tmp_path, bogus=1)
    with pytest.raises(ConfigError, match="split='x'"):
        get_reader("coteallard", tmp_path, split="x")
    with pytest.raises(ConfigError, match="db=7"):
        get_reader("ninapro", tmp_path, db=7)


def test_missing_dataset_folder(tmp_path):
    with pytest.raises(DataError, match="dataset folder not found") as err:
        get_reader("coteallard", tmp_path / "absent")
    assert err.value.where == str(tmp_path / "absent")
    with pytest.raises(DataError, match="dataset folder not found"):
        read_dataset("uci_myo", tmp_path / "absent")


def test_default_root_comes_from_env(tmp_path, monkeypatch):
    (tmp_path / "3dc_armband").mkdir()
    monkeypatch.setenv("AEMG_DATA_ROOT", str(tmp_path))
    reader = get_reader("3dc")
    assert reader.root == tmp_path / "3dc_armband"
    assert reader.sources() == []
    monkeypatch.setenv("AEMG_DATA_ROOT", str(tmp_path / "nothing"))
    with pytest.raises(DataError, match="nothing/3dc_armband: dataset folder not found"):
        get_reader("3dc")


def test_register_custom_reader(tmp_path):
    class Tiny(Reader):
        info = DatasetInfo("tiny_test", "ring:2", 2, 10.0, 1, ("a",), "a.u.", "two samples")

        def sources(self):
            return ["x"]

        def read(self, source):
            return [self.recording(source, np.zeros((2, 3)), rate=10.0, device="ring:2", label=0,
                                   classes=self.info.classes)]

    register_reader(Tiny)
    recs = list(read_dataset("tiny_test", tmp_path))
    assert len(recs) == 1 and recs[0].dataset == "tiny_test" and recs[0].source == "x"
    with pytest.raises(ConfigError):
        register_reader(int)


# -- real data -----------------------------------------------------------------------------------
def _spread(sources, n):
    """n sources spread over the list (first, last and evenly in between)."""
    idx = np.unique(np.linspace(0, len(sources) - 1, n).round().astype(int))
    return [sources[i] for i in idx]


@realdata
def test_uci_myo(data_root):
    reader = get_reader("uci_myo", data_root / "uci_emg_gestures_myo")
    sources = reader.sources()
    assert len(sources) == 64
    assert len({s.split("/")[0] for s in sources}) == 33
    assert sources == sorted(sources)
    pickle.loads(pickle.dumps(reader))
    for source in _spread(sources, 2):
        (rec,) = reader.read(source)
        assert rec.n_channels == 8 and rec.device.name == "myo" and rec.units == "int8"
        assert rec.times is not None and rec.times.shape == (rec.n_samples,)
        assert np.all(np.diff(rec.times) > 0)
        assert 25 < rec.duration < 120
        assert rec.data.min() >= -128 and rec.data.max() <= 127
        assert np.array_equal(rec.data, np.round(rec.data))
        assert set(np.unique(rec.labels)) == {UNLABELLED, 0, 1, 2, 3, 4, 5}
        assert rec.classes[0] == "rest" and len(rec.classes) == 7
        assert rec.source == source and rec.subject == source.split("/")[0]
        trials = split_trials(rec)
        assert len(trials) == 12
        assert sorted(t.label for t in trials) == sorted(list(range(6)) * 2)
        assert all(1.0 < t.duration < 5.0 for t in trials)
        assert sorted(t.meta["repetition"] for t in trials) == [0] * 6 + [1] * 6
        # rest is the quietest class
        mean_abs = {t.label: np.abs(t.data).mean() for t in trials}
        assert min(mean_abs, key=mean_abs.get) == 0


@realdata
def test_coteallard(data_root):
    reader = get_reader("coteallard", data_root / "coteallard_myoarmband")
    sources = reader.sources()
    assert len(sources) == 2128
    subjects = {"/".join(s.split("/")[:2]) for s in sources}
    assert len(subjects) == 40
    assert len(get_reader("coteallard", data_root / "coteallard_myoarmband", split="pretraining").sources()) \
        == 22 * 28
    evaluation = get_reader("coteallard", data_root / "coteallard_myoarmband", split="evaluation").sources()
    assert len(evaluation) == 18 * 3 * 28
    assert {s.split("/")[2] for s in evaluation} == {"training0", "Test0", "Test1"}
    for source in _spread(sources, 6):
        (rec,) = reader.read(source)
        i = int(source.rsplit("_", 1)[1].split(".")[0])
        assert rec.label == i % 7 and rec.meta["repetition"] == i // 7
        assert rec.n_channels == 8 and 700 < rec.n_samples < 1100 and rec.rate == 200.0
        assert rec.subject.startswith(("pre-", "eval-")) and rec.session == source.split("/")[2]
        assert rec.data.min() >= -128 and rec.data.max() <= 127
    keys = {rec.key for s in evaluation[:56] for rec in reader.read(s)}
    assert len(keys) == 56


@realdata
def test_3dc(data_root):
    reader = get_reader("3dc", data_root / "3dc_armband")
    sources = reader.sources()
    assert len(sources) == 968
    assert len({s.split("/")[0] for s in sources}) == 22
    assert sources[:2] == ["Participant1/train/EMG/3dc_EMG_gesture_0_0.txt.gz",
                           "Participant1/train/EMG/3dc_EMG_gesture_0_1.txt.gz"]
    recs = [r for s in _spread(sources, 4) for r in reader.read(s)]
    for rec in recs:
        assert rec.n_channels == 10 and rec.rate == 1000.0 and rec.units == "adc"
        assert 0 <= rec.label < 11 and len(rec.classes) == 11 and 300 < rec.n_samples < 7000


@realdata
def test_libemg_myo(data_root):
    recs = list(read_dataset("libemg_myo", data_root / "libemg_sdist_one_subject_myo"))
    assert len(recs) == 20
    assert sorted((r.meta["repetition"], r.label) for r in recs) == [(r, c) for r in range(4)
                                                                     for c in range(5)]
    assert all(r.n_channels == 8 and 500 < r.n_samples < 700 for r in recs)
    by_class = {}
    for r in recs:
        by_class.setdefault(r.label, []).append(np.abs(r.data).mean())
    assert min(by_class, key=lambda c: np.mean(by_class[c])) == recs[0].classes.index("rest")
