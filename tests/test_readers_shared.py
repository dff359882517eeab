"""Readers of the four newer shared datasets (myo_readings, ciil_myo, suguru_longterm_armband,
multiday_4ch): a few real files each, plus every quirk of their READMEs on small files written in the
documented layouts; and the old readers' sessions/splits beyond the staged ones."""
import gzip
import json
import re

import numpy as np
import pytest

from aemg.data.readers import get_reader, list_readers, read_dataset
from aemg.data.trials import split_trials
from aemg.errors import ConfigError, DataError
from aemg.tokenizer.calibration import is_rest_class

realdata = pytest.mark.realdata
NEW = ("myo_readings", "ciil_myo", "suguru_longterm_armband", "multiday_4ch")


def write_gz(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()))


def rows(table, sep=",", end="\n") -> str:
    return "".join(sep.join(f"{v:g}" for v in row) + end for row in table)


# -- registry and rest classes ------------------------------------------------------------------
def test_new_readers_are_registered_with_their_rest_class():
    infos = {info.name: info for info in list_readers()}
    assert set(NEW) <= set(infos)
    rest = {name: infos[name].rest_class for name in (*NEW, "coteallard", "3dc", "uci_myo", "libemg_myo")}
    assert rest == {"myo_readings": 0, "ciil_myo": 2, "suguru_longterm_armband": 0, "multiday_4ch": None,
                    "coteallard": 0, "3dc": 0, "uci_myo": 0, "libemg_myo": 2}
    assert not any(is_rest_class(c) for c in infos["multiday_4ch"].classes)
    assert (infos["multiday_4ch"].device, infos["multiday_4ch"].channels, infos["multiday_4ch"].rate) \
        == ("mindmedia4", 4, 2048.0)
    assert infos["ciil_myo"].classes[3:] == ("wrist extension", "wrist flexion")  # metadata, not libemg
    assert len(infos["suguru_longterm_armband"].classes) == 22


# -- myo_readings ---------------------------------------------------------------------------------
def _myo_file(rng, gesture: int, periods: int = 4, per: int = 150) -> np.ndarray:
    """(rows, 9) int table: ``periods`` alternating rest / ``gesture`` runs of ``per`` rows."""
    emg = rng.integers(-20, 20, size=(periods * per, 8))
    label = np.repeat([0 if k % 2 == 0 else gesture for k in range(periods)], per)
    return np.column_stack([emg, label])


def test_myo_readings_layout_and_trials(tmp_path, rng):
    root = tmp_path / "myo"
    write_gz(root / "_readings_right_hand/123-1/0.txt.gz", rows(_myo_file(rng, 0)))
    table = _myo_file(rng, 5)
    write_gz(root / "_readings_right_hand/123-1/5.txt.gz", rows(table, sep=", ", end="\r\n"))
    write_gz(root / "_readings_left_hand/77-2/1.txt.gz", rows(_myo_file(rng, 1)))
    reader = get_reader("myo_readings", root)
    assert reader.sources() == ["_readings_left_hand/77-2/1.txt.gz", "_readings_right_hand/123-1/0.txt.gz",
                                "_readings_right_hand/123-1/5.txt.gz"]
    (rec,) = reader.read("_readings_right_hand/123-1/5.txt.gz")
    assert (rec.subject, rec.session, rec.trial, rec.meta) == ("123", "1", "5",
                                                               {"hand": "right", "gesture": 5})
    assert np.array_equal(rec.data.T, table[:, :8]) and np.array_equal(rec.labels, table[:, 8])
    trials = split_trials(rec)
    assert [(t.label, t.meta["repetition"]) for t in trials] == [(0, 0), (5, 0), (0, 1), (5, 1)]
    (left,) = reader.read("_readings_left_hand/77-2/1.txt.gz")
    assert (left.subject, left.session, left.meta["hand"]) == ("77", "2", "left")
    from aemg.eval.protocols import intra_folds
    from aemg.eval.trials import TrialSet

    ts = TrialSet.from_recordings(read_dataset("myo_readings", root))
    assert sorted(set(ts.repetitions.tolist())) == [0, 1]
    assert len(intra_folds(ts, ["123"])) == 2


def test_myo_readings_repeated_rows(tmp_path, rng):
    table = _myo_file(rng, 2, per=200)
    repeated = np.repeat(table, [2 if i % 4 == 3 else 1 for i in range(len(table))], axis=0)  # 20 % extra
    write_gz(tmp_path / "_readings_right_hand/55-1/2.txt.gz", rows(repeated))
    source = "_readings_right_hand/55-1/2.txt.gz"
    (rec,) = get_reader("myo_readings", tmp_path).read(source)
    assert rec.n_samples == len(table) and rec.meta["dropped_repeats"] == len(repeated) - len(table)
    assert np.array_equal(rec.data.T, table[:, :8])
    (kept,) = get_reader("myo_readings", tmp_path, repeated_rows="keep").read(source)
    assert kept.n_samples == len(repeated) and "dropped_repeats" not in kept.meta
    with pytest.raises(DataError, match=r"55-1/2.txt.gz: 200 of 1000 rows \(20.0 %\) repeat"):
        get_reader("myo_readings", tmp_path, repeated_rows="error").read(source)
    # a few chance repeats (under 5 %) are real samples and stay
    few = np.insert(table, 10, table[9], axis=0)
    write_gz(tmp_path / "_readings_right_hand/55-1/2.txt.gz", rows(few))
    (rec,) = get_reader("myo_readings", tmp_path).read(source)
    assert rec.n_samples == len(few) and "dropped_repeats" not in rec.meta
    with pytest.raises(ConfigError, match="repeated_rows='x'"):
        get_reader("myo_readings", tmp_path, repeated_rows="x")


def test_myo_readings_broken_lines(tmp_path, rng):
    table = _myo_file(rng, 3)
    text = rows(table[:5]) + "1,2,3,4,5,6,7,8,9,1,2\n1,2,3,4,5,6,7\n" + rows(table[5:])
    write_gz(tmp_path / "_readings_right_hand/9-1/3.txt.gz", text)
    reader = get_reader("myo_readings", tmp_path)
    (rec,) = reader.read("_readings_right_hand/9-1/3.txt.gz")
    assert rec.meta["dropped_lines"] == [6, 7] and np.array_equal(rec.data.T, table[:, :8])
    many = "".join(rows(table[i:i + 1]) + "1,2\n" for i in range(12))
    write_gz(tmp_path / "_readings_right_hand/9-1/3.txt.gz", many)
    with pytest.raises(DataError, match=r"9-1/3.txt.gz: 12 lines do not have 9 fields .* line 2 with 2"):
        reader.read("_readings_right_hand/9-1/3.txt.gz")
    write_gz(tmp_path / "_readings_right_hand/9-1/3.txt.gz", rows(table[:3]) + "1,2,3,4,5,6,7,8,x\n")
    with pytest.raises(DataError, match=r"row 4: 'x' is not a number"):
        reader.read("_readings_right_hand/9-1/3.txt.gz")


def test_myo_readings_labels_and_values(tmp_path, rng):
    table = _myo_file(rng, 2)  # label 2 in a file named 3.txt, as 69069-1/3.txt
    write_gz(tmp_path / "_readings_right_hand/6-1/3.txt.gz", rows(table))
    source = "_readings_right_hand/6-1/3.txt.gz"
    (rec,) = get_reader("myo_readings", tmp_path).read(source)
    assert set(rec.labels.tolist()) == {0, 3} and rec.meta["label_column"] == [0, 2]
    assert get_reader("myo_readings", tmp_path, label_mismatch="skip").read(source) == []
    with pytest.raises(DataError, match=r"6-1/3.txt.gz: label column holds \[0, 2\], but the file name says "
                                        r"gesture 3 \(radial deviation\)"):
        get_reader("myo_readings", tmp_path, label_mismatch="error").read(source)
    reader = get_reader("myo_readings", tmp_path)
    bad = {"0.txt.gz": (table, r"the rest file 0.txt has labels \[0, 2\]"),
           "4.txt.gz": (np.column_stack([table[:, :8], np.full(len(table), 9)]),
                        r"label column holds \['9'\]"),
           "5.txt.gz": (np.column_stack([table[:, :7], np.full(len(table), 300), table[:, 8]]),
                        r"data row 1: .* are not Myo int8 values"),
           "8.txt.gz": (table, r"unknown gesture file '8.txt.gz'")}
    for name, (content, message) in bad.items():
        write_gz(tmp_path / "_readings_right_hand/6-1" / name, rows(content))
        with pytest.raises(DataError, match=message):
            reader.read(f"_readings_right_hand/6-1/{name}")
    write_gz(tmp_path / "_readings_right_hand/6-x/1.txt.gz", rows(table))
    with pytest.raises(DataError, match=r"expected _readings_<right\|left>_hand/<id>-<session>/<g>.txt"):
        reader.read("_readings_right_hand/6-x/1.txt.gz")


@realdata
def test_myo_readings_real(data_root):
    reader = get_reader("myo_readings", data_root / "myo_readings")
    sources = reader.sources()
    assert len(sources) == 328 and len({s.split("/")[1] for s in sources}) == 41
    (rest,) = reader.read("_readings_right_hand/10000-1/0.txt.gz")
    assert set(rest.labels.tolist()) == {0} and rest.rate == 200.0 and rest.n_channels == 8
    (rec,) = reader.read("_readings_right_hand/10000-1/7.txt.gz")
    trials = split_trials(rec)
    assert [t.label for t in trials] == [0, 7] * 6
    assert all(4.5 < t.duration < 5.5 for t in trials[1:-1])
    assert np.abs(trials[1].data).mean() > 1.5 * np.abs(trials[0].data).mean()  # fist over rest
    # quirks of the real files
    (wrong,) = reader.read("_readings_right_hand/69069-1/3.txt.gz")  # labels 0/2 in the radial file;
    assert wrong.meta["label_column"] == [0, 2] and set(wrong.labels.tolist()) == {0, 3}  # 250 rows/s
    runs = [t.n_samples for t in split_trials(wrong)[1:-1]]
    assert 0.2 < wrong.meta["dropped_repeats"] / (wrong.n_samples + wrong.meta["dropped_repeats"]) < 0.21
    assert all(950 < n < 1050 for n in runs)  # back to 200 rows/s once the repeats are dropped
    (broken,) = reader.read("_readings_right_hand/64917-1/2.txt.gz")
    assert broken.meta["dropped_lines"] == [1032, 1033]
    (left,) = reader.read("_readings_left_hand/44444-1/1.txt.gz")
    assert left.meta["hand"] == "left" and left.subject == "44444"


# -- ciil_myo -------------------------------------------------------------------------------------
def _ciil_folder(folder, reps, rng, metadata=True, names=None):
    names = names or ["Hand_Close", "Hand_Open", "No_Motion", "Wrist_Extension", "Wrist_Flexion"]
    meta = {"continuous": False}
    for r in range(reps):
        for c in range(5):
            write_gz(folder / f"R_{r}_C_{c}.csv.gz", rows(rng.integers(-50, 50, size=(30, 8)), end="\r\n"))
            meta[f"data/subjectX/sgt/{folder.name}/R_{r}_C_{c}.csv"] = {
                "rep_idx": r, "class_idx": c, "class_name": names[c], "file_type": "png"}
    if metadata:
        (folder / "metadata.json").write_text(json.dumps(meta))


def test_ciil_layout_sessions_and_metadata(tmp_path, rng):
    es, mt = tmp_path / "ElectrodeShift/subject3", tmp_path / "MinimalTrainingData/subject3"
    _ciil_folder(es / "training", 2, rng)
    _ciil_folder(es / "trial_1", 1, rng)
    _ciil_folder(es / "trial_0", 1, rng)
    _ciil_folder(mt / "train", 1, rng, metadata=False)
    _ciil_folder(mt / "test/trial_2", 1, rng)
    reader = get_reader("ciil_myo", tmp_path)
    sources = reader.sources()
    assert len(sources) == 30 and sources[0] == "ElectrodeShift/subject3/training/R_0_C_0.csv.gz"
    recs = {s: reader.read(s)[0] for s in sources}
    got = {(r.subject, r.session, r.meta["shifted"]) for r in recs.values()}
    assert got == {("shift-subject3", "training", False), ("shift-subject3", "trial_1", True),
                   ("shift-subject3", "trial_0", None), ("minimal-subject3", "train", None),
                   ("minimal-subject3", "trial_2", None)}
    rec = recs["ElectrodeShift/subject3/training/R_1_C_3.csv.gz"]
    assert (rec.label, rec.trial, rec.meta["repetition"], rec.classes[3]) == (3, "R_1_C_3", 1,
                                                                              "wrist extension")
    assert rec.n_channels == 8 and rec.n_samples == 30
    assert len(get_reader("ciil_myo", tmp_path, split="minimal").sources()) == 10
    assert len({r.key for r in recs.values()}) == 30
    from aemg.eval.protocols import intra_folds
    from aemg.eval.trials import TrialSet

    ts = TrialSet.from_recordings(r for r in recs.values() if r.subject == "shift-subject3")
    assert len(intra_folds(ts)) == 2


def test_ciil_refuses_libemg_class_order_and_bad_files(tmp_path, rng):
    folder = tmp_path / "ElectrodeShift/subject0/training"
    _ciil_folder(folder, 1, rng, names=["Close", "Open", "Rest", "Flexion", "Extension"])
    reader = get_reader("ciil_myo", tmp_path)
    with pytest.raises(DataError,
                       match=r"training/metadata.json: entry for R_0_C_0.csv says .*class_name='Close'"):
        reader.read("ElectrodeShift/subject0/training/R_0_C_0.csv.gz")
    (folder / "metadata.json").write_text("{")
    with pytest.raises(DataError, match=r"metadata.json: invalid or truncated JSON"):
        reader.read("ElectrodeShift/subject0/training/R_0_C_1.csv.gz")
    (folder / "metadata.json").unlink()
    write_gz(folder / "R_0_C_5.csv.gz", rows(np.zeros((3, 8))))
    with pytest.raises(DataError, match=r"R_0_C_5.csv.gz: unknown class 5 \(expected 0..4\)"):
        reader.read("ElectrodeShift/subject0/training/R_0_C_5.csv.gz")
    write_gz(folder / "R_0_C_1.csv.gz", rows(np.zeros((3, 7))))
    with pytest.raises(DataError, match=r"R_0_C_1.csv.gz: row 1 has 7 columns, expected 8"):
        reader.read("ElectrodeShift/subject0/training/R_0_C_1.csv.gz")
    write_gz(tmp_path / "ElectrodeShift/subject0/odd/R_0_C_1.csv.gz", rows(np.zeros((3, 8))))
    with pytest.raises(DataError,
                       match=re.escape("odd/R_0_C_1.csv.gz: expected ElectrodeShift/subject<k>/<training|")):
        reader.read("ElectrodeShift/subject0/odd/R_0_C_1.csv.gz")


@realdata
def test_ciil_real(data_root):
    reader = get_reader("ciil_myo", data_root / "ciil_myo")
    sources = reader.sources()
    assert len(sources) == 2260
    assert len({s.split("/")[1] for s in sources if s.startswith("Elec")}) == 21
    picks = ["ElectrodeShift/subject0/training/R_4_C_2.csv.gz",
             "ElectrodeShift/subject0/trial_4/R_1_C_0.csv.gz",
             "ElectrodeShift/subject16/trial_0/R_0_C_3.csv.gz",
             "MinimalTrainingData/subject10/train/R_0_C_4.csv.gz",
             "MinimalTrainingData/subject10/test/trial_0/R_2_C_1.csv.gz"]
    recs = [reader.read(s)[0] for s in picks]  # each checked against its metadata.json
    assert [r.session for r in recs] == ["training", "trial_4", "trial_0", "train", "trial_0"]
    assert [r.meta["shifted"] for r in recs] == [False, True, None, None, None]
    assert recs[3].n_samples == 200 and recs[3].label == 4  # the 1 s training repetition
    assert all(r.units == "int8" and r.data.min() >= -128 and r.data.max() <= 127 for r in recs)
    assert np.abs(recs[0].data - recs[0].data.mean(1, keepdims=True)).mean() < 5  # class 2 = rest


# -- suguru_longterm_armband ----------------------------------------------------------------------
def test_suguru_layout_and_checks(tmp_path, rng):
    table = rng.normal(0, 0.05, size=(300, 8)).round(5)
    write_gz(tmp_path / "data/sub2/day3/D3M1T4.csv.gz", rows(table))
    write_gz(tmp_path / "data/sub2/day3/D3M22T1.csv.gz", rows(table))
    reader = get_reader("suguru_longterm_armband", tmp_path)
    assert reader.sources() == ["data/sub2/day3/D3M1T4.csv.gz", "data/sub2/day3/D3M22T1.csv.gz"]
    (rec,) = reader.read("data/sub2/day3/D3M1T4.csv.gz")
    assert (rec.subject, rec.session, rec.trial, rec.label, rec.units) == ("2", "day3", "M1T4", 0, "a.u.")
    assert rec.meta == {"repetition": 3, "day": 3, "placement": "O"} and rec.classes[0] == "rest"
    assert np.allclose(rec.data.T, table, atol=1e-7) and rec.rate == 200.0
    assert reader.read("data/sub2/day3/D3M22T1.csv.gz")[0].classes[21] == "supination + hand close"
    for name, message in (("D4M1T1.csv.gz", "file name says day 4 but it is in folder day3"),
                          ("D3M23T1.csv.gz", r"unknown motion M23 or trial T1 \(expected M1..M22"),
                          ("D3M2T0.csv.gz", "unknown motion M2 or trial T0")):
        write_gz(tmp_path / "data/sub2/day3" / name, rows(table))
        with pytest.raises(DataError, match=message):
            reader.read(f"data/sub2/day3/{name}")
    write_gz(tmp_path / "data/sub2/day3/D3M2T1.csv.gz", rows(table[:, :7]))
    with pytest.raises(DataError, match="row 1 has 7 columns, expected 8"):
        reader.read("data/sub2/day3/D3M2T1.csv.gz")


@realdata
def test_suguru_real(data_root):
    reader = get_reader("suguru_longterm_armband", data_root / "suguru_longterm_armband")
    sources = reader.sources()
    assert len(sources) == 4400
    recs = [reader.read(f"data/sub5/day{d}/D{d}M{m}T2.csv.gz")[0] for d in (1, 10) for m in (1, 10)]
    assert all(r.data.shape == (8, 300) and r.units == "a.u." for r in recs)
    assert [(r.session, r.meta["placement"], r.label) for r in recs] == [
        ("day1", "N", 0), ("day1", "N", 9), ("day10", "N", 0), ("day10", "N", 9)]
    assert np.abs(recs[0].data).mean() < np.abs(recs[1].data).mean()  # M1 is rest
    assert np.abs(recs[0].data).max() < 2  # pre-scaled floats, not counts


# -- multiday_4ch ---------------------------------------------------------------------------------
def test_multiday_layout_rate_and_classes(tmp_path, rng):
    table = rng.normal(0, 30, size=(50, 4)).round(3)
    write_gz(tmp_path / "S0_D11_C0.csv.gz", rows(table, sep=" "))
    write_gz(tmp_path / "S0_D1_C10.csv.gz", rows(table, sep=" "))
    reader = get_reader("multiday_4ch", tmp_path)
    assert reader.sources() == ["S0_D1_C10.csv.gz", "S0_D11_C0.csv.gz"]
    (rec,) = reader.read("S0_D11_C0.csv.gz")
    assert (rec.subject, rec.session, rec.trial, rec.label, rec.rate) == ("0", "day11", "C0", 0, 2048.0)
    assert rec.device.name == "mindmedia4" and rec.n_channels == 4
    assert rec.meta == {"day": 11, "repetition": 10, "libemg_name": "No Motion"}
    assert not is_rest_class(rec.classes[0])  # class 0 is not rest
    assert get_reader("multiday_4ch", tmp_path, rate=1000).read("S0_D11_C0.csv.gz")[0].rate == 1000.0
    with pytest.raises(ConfigError, match="rate=0"):
        get_reader("multiday_4ch", tmp_path, rate=0)
    write_gz(tmp_path / "S0_D1_C11.csv.gz", rows(table, sep=" "))
    with pytest.raises(DataError, match=r"S0_D1_C11.csv.gz: unknown class 11 \(expected 0..10\)"):
        reader.read("S0_D1_C11.csv.gz")


@realdata
def test_multiday_real(data_root):
    reader = get_reader("multiday_4ch", data_root / "multiday_4ch")
    sources = reader.sources()
    assert len(sources) == 132 and sources[:2] == ["S0_D1_C0.csv.gz", "S0_D1_C1.csv.gz"]
    (rec,) = reader.read("S0_D111_C0.csv.gz")
    assert rec.n_channels == 4 and 9000 < rec.n_samples < 17000 and rec.session == "day111"
    # C0 holds a contraction after its first second: not a rest recording
    assert np.sqrt(np.mean(rec.data[:3, 2048:] ** 2)) > 20 * np.sqrt(np.mean(rec.data[:3, :256] ** 2))


# -- the old readers' sessions and splits ---------------------------------------------------------
def test_3dc_reads_the_test_split_beside_train(tmp_path, rng):
    for split in ("train", "test"):
        write_gz(tmp_path / f"Participant2/{split}/EMG/3dc_EMG_gesture_1_4.txt.gz",
                 rows(rng.integers(-100, 100, size=(20, 10))))
    reader = get_reader("3dc", tmp_path)
    recs = [r for s in reader.sources() for r in reader.read(s)]
    assert sorted((r.session, r.meta["repetition"], r.label) for r in recs) == [("test", 1, 4),
                                                                                ("train", 1, 4)]
    assert len({r.key for r in recs}) == 2


@realdata
def test_coteallard_reads_all_three_evaluation_sessions(data_root):
    reader = get_reader("coteallard", data_root / "coteallard_myoarmband", split="evaluation")
    sessions = {}
    for source in reader.sources():
        sessions.setdefault(source.split("/")[1], set()).add(source.split("/")[2])
    assert len(sessions) == 18 and all(s == {"training0", "Test0", "Test1"} for s in sessions.values())
    (rec,) = reader.read("EvaluationDataset/Male3/Test1/classe_27.dat.gz")
    assert (rec.session, rec.label, rec.meta["repetition"]) == ("Test1", 6, 3)
