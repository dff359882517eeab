"""Readers on small files written in each documented layout, and on broken files."""
import gzip
import json

import h5py
import numpy as np
import pytest
import scipy.io

from aemg.data.readers import get_reader, read_dataset
from aemg.data.readers.base import parse_table, read_bytes
from aemg.data.readers.wfdb import read_header, read_record
from aemg.data.recording import UNLABELLED
from aemg.data.trials import split_trials
from aemg.errors import ConfigError, DataError


def write_gz(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data))


# -- shared helpers ------------------------------------------------------------------------------
def test_parse_table_names_bad_rows(tmp_path):
    p = tmp_path / "t.txt"
    assert parse_table("a b\n1 2\n3 4\n", p, skip_rows=1).tolist() == [[1, 2], [3, 4]]
    with pytest.raises(DataError, match=r"t.txt: row 3 has 1 columns, expected 2"):
        parse_table("1,2\n3,4\n5\n", p, delimiter=",")
    with pytest.raises(DataError, match=r"row 1 has 2 columns, expected 3"):
        parse_table("1,2\n", p, delimiter=",", n_columns=3)
    with pytest.raises(DataError, match=r"row 2: 'x' is not a number"):
        parse_table("1,2\n3,x\n", p, delimiter=",")
    with pytest.raises(DataError, match="no data rows after 1 header"):
        parse_table("header\n", p, skip_rows=1)


def test_read_bytes_errors(tmp_path):
    with pytest.raises(DataError, match="empty file"):
        (tmp_path / "e.csv").write_bytes(b"")
        read_bytes(tmp_path / "e.csv")
    with pytest.raises(DataError, match="empty file"):
        write_gz(tmp_path / "e.csv.gz", b"")
        read_bytes(tmp_path / "e.csv.gz")
    full = gzip.compress(b"1,2,3\n" * 10000)
    (tmp_path / "cut.csv.gz").write_bytes(full[: len(full) // 2])
    with pytest.raises(DataError, match="cut.csv.gz: truncated or corrupt gzip"):
        read_bytes(tmp_path / "cut.csv.gz")
    (tmp_path / "bad.csv.gz").write_bytes(b"\x1f\x8b\x08\x00garbage-not-deflate" * 3)
    with pytest.raises(DataError, match="bad.csv.gz: truncated or corrupt gzip"):
        read_bytes(tmp_path / "bad.csv.gz")
    with pytest.raises(DataError, match="file not found"):
        read_bytes(tmp_path / "absent.csv")


def test_gunzip_is_gzip_decompress():
    """The one-call path for single-member files; gzip.decompress (and its errors) otherwise."""
    from aemg.data.readers.base import gunzip

    one = gzip.compress(b"1,2,3\n" * 5000)
    cases = [one, one + gzip.compress(b"4,5,6\n"), one + b"\0\0", gzip.compress(b""), one[:-4], one[:30],
             b"\x1f\x8b\x08\x00garbage", b"plain text", b""]
    for data in cases:
        try:
            want = gzip.decompress(data)
        except Exception as exc:  # noqa: BLE001 - the type is what is compared
            want = type(exc)
        try:
            got = gunzip(data)
        except Exception as exc:  # noqa: BLE001
            got = type(exc)
        assert got == want


# -- layouts of the shared datasets, broken ------------------------------------------------------
def test_uci_bad_files(tmp_path):
    header = "time\t" + "\t".join(f"channel{i}" for i in range(1, 9)) + "\tclass\n"

    def row(t, v=1e-05, c=1):
        return f"{t}\t" + "\t".join([str(v)] * 8) + f"\t{c}\n"

    write_gz(tmp_path / "01" / "1_raw_data_10-00_01.01.16.txt.gz",
             (header + "".join(row(t, c=0 if t < 3 else 2) for t in range(1, 9))).encode())
    write_gz(tmp_path / "02" / "1_raw_data_10-00_01.01.16.txt.gz",
             (header + row(1) + row(3) + row(2)).encode())
    write_gz(tmp_path / "03" / "1_raw_data_10-00_01.01.16.txt.gz",
             (header + row(1) + row(2, v="nan")).encode())
    write_gz(tmp_path / "04" / "1_raw_data_10-00_01.01.16.txt.gz",
             (header + row(1) + "2\t1e-05\t1\n").encode())
    write_gz(tmp_path / "05" / "1_raw_data_10-00_01.01.16.txt.gz", (header + row(1, c=9)).encode())
    write_gz(tmp_path / "06" / "1_raw_data_10-00_01.01.16.txt.gz", (header + row(1, v=1.5e-05)).encode())
    reader = get_reader("uci_myo", tmp_path)
    sources = reader.sources()
    assert len(sources) == 6  # listing does not open files
    (rec,) = reader.read(sources[0])
    assert rec.labels.tolist() == [UNLABELLED, UNLABELLED, 1, 1, 1, 1, 1, 1]
    assert rec.times.tolist() == pytest.approx([0.001 * t for t in range(1, 9)])
    assert rec.data[0, 0] == 1.0 and rec.units == "int8"
    with pytest.raises(DataError, match=r"02/1_raw.*timestamps go backwards at row 4"):
        reader.read(sources[1])
    with pytest.raises(DataError, match=r"03/1_raw.*non-finite sample.*row 3"):
        reader.read(sources[2])
    with pytest.raises(DataError, match=r"04/1_raw.*row 3 has 3 columns, expected 10"):
        reader.read(sources[3])
    with pytest.raises(DataError, match=r"05/1_raw.*unknown class 9"):
        reader.read(sources[4])
    with pytest.raises(DataError, match=r"06/1_raw.*not a Myo int8 count"):
        reader.read(sources[5])


def test_coteallard_truncated_dat(tmp_path):
    folder = tmp_path / "EvaluationDataset" / "Male0" / "Test0"
    data = np.arange(8 * 5, dtype="<i2")
    write_gz(folder / "classe_9.dat.gz", data.tobytes())
    write_gz(folder / "classe_10.dat.gz", data.tobytes()[:-2])
    (tmp_path / "PreTrainingDataset").mkdir()
    reader = get_reader("coteallard", tmp_path)
    assert reader.sources() == ["EvaluationDataset/Male0/Test0/classe_9.dat.gz",
                                "EvaluationDataset/Male0/Test0/classe_10.dat.gz"]
    (rec,) = reader.read(reader.sources()[0])
    assert rec.data.shape == (8, 5) and rec.data[:, 1].tolist() == list(range(8, 16))
    assert (rec.label, rec.meta["repetition"], rec.subject, rec.session) == (2, 1, "eval-Male0", "Test0")
    with pytest.raises(DataError, match=r"classe_10.dat.gz: size 78 bytes is not a multiple of the 16-byte"):
        reader.read(reader.sources()[1])


# -- Ninapro -------------------------------------------------------------------------------------
def _ninapro_vars(rng, n=600, channels=12, local=True, exercise=2):
    stim = np.zeros(n, dtype=np.int64)
    rep = np.zeros(n, dtype=np.int64)
    for k, (s, e) in enumerate([(50, 150), (200, 300), (350, 450), (480, 560)]):
        stim[s:e] = (k % 2) + 1 + (0 if local else 12)
        rep[s:e] = k // 2 + 1
    return {"emg": rng.normal(size=(n, channels)) * 1e-5, "restimulus": stim[:, None],
            "stimulus": stim[:, None], "rerepetition": rep[:, None], "exercise": exercise}


def _write_v73(path, variables):
    """An HDF5-based MATLAB v7.3 file (arrays stored transposed, as MATLAB does)."""
    with h5py.File(path, "w", userblock_size=512) as fh:
        for name, value in variables.items():
            fh[name] = np.asarray(value, dtype=np.float64).T
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 "
                 b"00:00:00 2024 HDF5 schema 1.00 .")


def test_ninapro_v5_and_v73(tmp_path, rng):
    (tmp_path / "s1").mkdir()
    v5 = _ninapro_vars(rng)
    v5["emg"] = v5["emg"][:590]  # emg shorter than the labels: truncated to 590
    scipy.io.savemat(tmp_path / "s1" / "S1_E2_A1.mat", v5)
    v73 = _ninapro_vars(rng, local=False)
    _write_v73(tmp_path / "S2_E2_A1.mat", v73)
    scipy.io.savemat(tmp_path / "S3_E1_A1.mat", _ninapro_vars(rng, channels=10))
    reader = get_reader("ninapro", tmp_path, db=4)
    assert reader.sources() == ["S2_E2_A1.mat", "S3_E1_A1.mat", "s1/S1_E2_A1.mat"]
    (a,) = reader.read("s1/S1_E2_A1.mat")
    (b,) = reader.read("S2_E2_A1.mat")
    for rec in (a, b):
        assert rec.device.name == "ninapro12" and rec.rate == 2000.0 and rec.n_channels == 12
        assert set(np.unique(rec.labels)) == {0, 13, 14}  # E2 movements 1, 2 -> global 13, 14
        assert rec.classes[13] == "E2 movement 1" and len(rec.classes) == 53
        assert (rec.subject, rec.trial) == (rec.source.rsplit("/", 1)[-1][1], "E2")
    assert a.n_samples == 590 and a.meta["truncated_from"]["emg"] == 590
    assert "truncated_from" not in b.meta
    np.testing.assert_allclose(b.data, v73["emg"].T.astype(np.float32))
    trials = split_trials(b, min_s=0.01)
    assert [(t.label, t.meta["repetition"]) for t in trials if t.label] == [(13, 1), (14, 1), (13, 2),
                                                                            (14, 2)]
    assert trials[0].label == 0  # rest is a class in Ninapro
    with pytest.raises(DataError, match="S3_E1_A1.mat: 10 channels but device 'ninapro12' has 12"):
        reader.read("S3_E1_A1.mat")
    db1 = get_reader("ninapro", tmp_path, db=1)
    (c,) = db1.read("S3_E1_A1.mat")
    assert c.device.name == "ninapro_db1" and c.rate == 100.0 and set(np.unique(c.labels)) == {0, 1, 2}


def test_ninapro_bad_files(tmp_path, rng):
    (tmp_path / "S1_E1_A1.mat").write_bytes(b"")
    (tmp_path / "S2_E1_A1.mat").write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 40)
    bad = _ninapro_vars(rng, exercise=1)
    bad["emg"][5, 3] = np.nan
    scipy.io.savemat(tmp_path / "S3_E1_A1.mat", bad)
    wrong = _ninapro_vars(rng, exercise=1)
    wrong["restimulus"][100] = 40
    scipy.io.savemat(tmp_path / "S4_E1_A1.mat", wrong)
    reader = get_reader("ninapro", tmp_path, db=2)
    with pytest.raises(DataError, match="S1_E1_A1.mat: empty file|S1_E1_A1.mat: cannot read"):
        reader.read("S1_E1_A1.mat")
    with pytest.raises(DataError, match="S2_E1_A1.mat: cannot read MATLAB file"):
        reader.read("S2_E1_A1.mat")
    with pytest.raises(DataError, match="S3_E1_A1.mat: non-finite sample.*row 6, column 4"):
        reader.read("S3_E1_A1.mat")
    with pytest.raises(DataError, match="S4_E1_A1.mat: unknown labels 1..40 for E1 of DB2"):
        reader.read("S4_E1_A1.mat")


# -- EMG-EPN-612 ---------------------------------------------------------------------------------
def _epn_sample(rng, gesture, n=100, scale=1.0, truth=True):
    sample = {"emg": {f"ch{c}": (np.round(rng.normal(size=n) * 20).clip(-128, 127) * scale).tolist()
                      for c in range(1, 9)}}
    if gesture is not None:
        sample["gestureName"] = gesture
        if gesture != "noGesture" and truth:
            sample["groundTruth"] = [0] * 30 + [1] * 50 + [0] * (n - 80)
    return sample


def test_epn612(tmp_path, rng):
    user = {"generalInfo": {"samplingFrequencyInHertz": 200},
            "trainingSamples": {"idx_1": _epn_sample(rng, "noGesture"), "idx_2": _epn_sample(rng, "fist"),
                                "idx_10": _epn_sample(rng, "pinch", scale=1 / 128)},
            "testingSamples": {"idx_1": _epn_sample(rng, None)}}
    folder = tmp_path / "testingJSON" / "user7"
    folder.mkdir(parents=True)
    (folder / "user7.json").write_text(json.dumps(user))
    (tmp_path / "trainingJSON" / "user1").mkdir(parents=True)
    (tmp_path / "trainingJSON" / "user1" / "user1.json").write_text('{"trainingSamples": {"idx_1": ')
    reader = get_reader("epn612", tmp_path)
    assert reader.sources() == ["testingJSON/user7/user7.json", "trainingJSON/user1/user1.json"]
    recs = reader.read("testingJSON/user7/user7.json")
    assert [(r.session, r.trial, r.label) for r in recs] == [
        ("training", "1", 0), ("training", "2", 1), ("training", "10", 5), ("testing", "1", None)]
    assert all(r.subject == "testing-7" and r.n_channels == 8 and r.units == "int8" for r in recs)
    assert recs[1].labels.tolist() == [0] * 30 + [1] * 50 + [0] * 20
    assert recs[0].labels is None and recs[3].labels is None
    assert np.array_equal(recs[2].data, np.round(recs[2].data))  # 1/128 units scaled back to counts
    with pytest.raises(DataError, match="user1.json: invalid or truncated JSON"):
        reader.read("trainingJSON/user1/user1.json")
    user["trainingSamples"]["idx_2"]["gestureName"] = "thumbsUp"
    (folder / "user7.json").write_text(json.dumps(user))
    with pytest.raises(DataError, match="user7.json: trainingSamples/idx_2: unknown gesture 'thumbsUp'"):
        reader.read("testingJSON/user7/user7.json")


# -- GRABMyo / WFDB ------------------------------------------------------------------------------
def _write_wfdb(folder, record, digital, fs=2048, gain=1000.0, descriptions=None, fmt=16, n_samples=None):
    """Write a WFDB record from (C, T) digital values in format 16 or 212."""
    c, t = digital.shape
    names = descriptions or [f"ch{i + 1}" for i in range(c)]
    if fmt == 16:
        raw = digital.T.astype("<i2").tobytes()
    else:
        flat = digital.T.reshape(-1).astype(np.int64) & 0xFFF
        assert flat.size % 2 == 0
        a, b = flat[0::2], flat[1::2]
        raw = np.stack([a & 0xFF, ((a >> 8) & 0x0F) | ((b >> 8) << 4), b & 0xFF],
                       axis=1).astype(np.uint8).tobytes()
    (folder / f"{record}.dat").write_bytes(raw)
    lines = [f"{record} {c} {fs} {t if n_samples is None else n_samples}"]
    lines += [f"{record}.dat {fmt} {gain:g}(0)/mV 16 0 0 0 0 {names[i]}" for i in range(c)]
    (folder / f"{record}.hea").write_text("# comment\n" + "\n".join(lines) + "\n")


def test_wfdb_formats(tmp_path, rng):
    digital = rng.integers(-2000, 2000, size=(3, 50))
    _write_wfdb(tmp_path, "a", digital, fs=500, gain=200.0)
    _write_wfdb(tmp_path, "b", digital, fs=500, gain=200.0, fmt=212)
    for name in ("a", "b"):
        header, data = read_record(tmp_path / f"{name}.hea")
        assert header.fs == 500 and header.n_samples == 50 and len(header.signals) == 3
        np.testing.assert_allclose(data, digital / 200.0)
    assert read_header(tmp_path / "a.hea").signals[0].units == "mV"


def test_grabmyo(tmp_path, rng):
    session = tmp_path / "Session1" / "session1_participant3"
    session.mkdir(parents=True)
    # 32 signals in a shuffled order: F1..F16, W1..W12, U1..U4
    names = [f"F{i}" for i in range(1, 17)] + [f"W{i}" for i in range(1, 13)] + [f"U{i}" for i in range(1, 5)]
    order = rng.permutation(32)
    digital = rng.integers(-3000, 3000, size=(32, 64))
    _write_wfdb(session, "session1_participant3_gesture17_trial2", digital,
                descriptions=[names[i] for i in order])
    _write_wfdb(session, "session1_participant3_gesture1_trial1", digital[:28])
    _write_wfdb(session, "session1_participant3_gesture2_trial1", digital[:20])
    _write_wfdb(session, "session1_participant3_gesture3_trial1", digital[:28], n_samples=80)
    _write_wfdb(session, "session1_participant3_gesture4_trial1", digital[:28])
    dat = session / "session1_participant3_gesture4_trial1.dat"
    dat.write_bytes(dat.read_bytes()[:-3])
    reader = get_reader("grabmyo", tmp_path)
    sources = reader.sources()
    assert [s.rsplit("_", 2)[1] for s in sources] == ["gesture1", "gesture2", "gesture3", "gesture4",
                                                      "gesture17"]
    (rec,) = reader.read(sources[-1])
    expected = np.stack([digital[list(order).index(names.index(n))] for n in names[:28]]) / 1000.0
    np.testing.assert_allclose(rec.data, expected, rtol=1e-6)
    assert (rec.subject, rec.session, rec.trial, rec.label) == ("3", "1", "17_2", 16)
    assert rec.rate == 2048.0 and rec.units == "mV" and rec.device.name == "grabmyo"
    (plain,) = reader.read(sources[0])
    np.testing.assert_allclose(plain.data, digital[:28] / 1000.0, rtol=1e-6)
    with pytest.raises(DataError, match="gesture2_trial1.hea: 20 signals without F1..F16"):
        reader.read(sources[1])
    with pytest.raises(DataError, match="gesture3_trial1.dat: 64 samples but the header says 80"):
        reader.read(sources[2])
    with pytest.raises(DataError,
                       match="gesture4_trial1.dat: size 3581 bytes is not a multiple of the 56-byte"):
        reader.read(sources[3])


# -- generic -------------------------------------------------------------------------------------
def _csv(rows):
    return "\n".join(",".join(str(v) for v in r) for r in rows).encode()


def test_generic_template(tmp_path, rng):
    data = rng.integers(-100, 100, size=(40, 3))
    for subject, session, label, trial in [("01", "1", "fist", "0"), ("01", "2", "open", "1"),
                                           ("02", "1", "rest", "0")]:
        write_gz(tmp_path / f"P{subject}" / f"day{session}" / f"gesture{label}_rep{trial}.csv.gz",
                 b"a,b,c\n" + _csv(data))
    (tmp_path / "P01" / "notes.txt").write_text("not a recording")
    reader = get_reader("generic", tmp_path,
                        pattern="P{subject}/day{session}/gesture{label}_rep{trial}.csv.gz",
                        rate=1000, device="ring:3", skip_rows=1, classes=["rest", "fist", "open"])
    sources = reader.sources()
    assert sources == ["P01/day1/gesturefist_rep0.csv.gz", "P01/day2/gestureopen_rep1.csv.gz",
                       "P02/day1/gesturerest_rep0.csv.gz"]
    recs = [r for s in sources for r in reader.read(s)]
    assert [(r.subject, r.session, r.trial, r.label, r.meta["repetition"]) for r in recs] == [
        ("01", "1", "fist.0", 1, 0), ("01", "2", "open.1", 2, 1), ("02", "1", "rest.0", 0, 0)]
    np.testing.assert_array_equal(recs[0].data, data.T)
    assert recs[0].rate == 1000.0 and recs[0].dataset == "generic" and recs[0].units == "a.u."
    strict = get_reader("generic", tmp_path,
                        pattern="P{subject}/day{session}/gesture{label}_rep{trial}.csv.gz",
                        rate=1000, device="ring:3", skip_rows=1, classes=["rest", "fist"])
    with pytest.raises(DataError, match=r"gestureopen_rep1.csv.gz: unknown label 'open'"):
        strict.read(sources[1])
    no_classes = get_reader("generic", tmp_path,
                            pattern="P{subject}/day{session}/gesture{label}_rep{trial}.csv.gz",
                            rate=1000, device="ring:3", skip_rows=1)
    with pytest.raises(DataError, match="unknown label 'fist'.*classes="):
        no_classes.read(sources[0])
    renamed = get_reader("generic", tmp_path,
                         pattern="P{subject}/day{session}/gesture{label}_rep{trial}.csv.gz",
                         rate=1000, device="ring:3", skip_rows=1, classes=["rest", "power"],
                         label_names={"fist": "power"})
    assert renamed.read(sources[0])[0].label == 1
    wrong = get_reader("generic", tmp_path,
                       pattern="P{subject}/day{session}/gesture{label}_rep{trial}.csv.gz",
                       rate=1000, device="ring:4", skip_rows=1, classes=["rest", "fist", "open"])
    with pytest.raises(DataError, match="gesturefist_rep0.csv.gz: 3 channels but device 'ring:4' has 4"):
        wrong.read(sources[0])


def test_generic_keys_stay_unique_when_repetitions_repeat_across_gestures(tmp_path, rng):
    """'gesture{label}_rep{trial}': rep 0 of two gestures are two trials, not one key twice."""
    for label in ("fist", "open"):
        np.save(tmp_path / f"gesture{label}_rep0.npy", rng.normal(size=(50, 2)))
    reader = get_reader("generic", tmp_path, pattern="gesture{label}_rep{trial}.npy", rate=500,
                        device="ring:2", classes=["fist", "open"])
    recs = [r for s in reader.sources() for r in reader.read(s)]
    assert len({r.key for r in recs}) == 2
    assert [r.meta["repetition"] for r in recs] == [0, 0]


def test_generic_columns_time_labels_npy(tmp_path, rng):
    n = 30
    t_ms = np.arange(n) * 5 + 100
    labels = np.r_[np.zeros(10), np.ones(10), np.full(10, 9)]
    values = rng.normal(size=(n, 2))
    table = np.column_stack([t_ms, values, labels])
    (tmp_path / "s1").mkdir()
    (tmp_path / "s1" / "a.txt").write_text("\n".join("\t".join(f"{v:.6f}" for v in r) for r in table))
    np.save(tmp_path / "s1" / "b.npy", table.T)  # rows are channels here
    common = dict(rate=200, device="ring:2", time_column=0, time_scale=1e-3, label_column=3,
                  unlabelled=[9], classes=["rest", "fist"])
    txt = get_reader("generic", tmp_path, pattern="s{subject}/a.txt", **common)
    npy = get_reader("generic", tmp_path, pattern="s{subject}/b.npy", orientation="channels", **common)
    for reader in (txt, npy):
        (rec,) = reader.read(reader.sources()[0])
        assert rec.subject == "1" and rec.n_channels == 2 and rec.label is None
        np.testing.assert_allclose(rec.data, values.T, atol=1e-6)
        np.testing.assert_allclose(rec.times, t_ms / 1000)
        assert rec.labels.tolist() == [0] * 10 + [1] * 10 + [UNLABELLED] * 10
        assert [t.label for t in split_trials(rec, min_s=0.01)] == [0, 1]
    table[4, 0] = 10.0  # time goes backwards
    (tmp_path / "s1" / "a.txt").write_text("\n".join(",".join(map(str, r)) for r in table))
    with pytest.raises(DataError, match=r"s1/a.txt: timestamps go backwards at row 5"):
        get_reader("generic", tmp_path, pattern="s{subject}/a.txt", delimiter=",", **common).read("s1/a.txt")
    table[4, 0], table[5, 3] = 120.0, 4.0  # unknown per-row label
    (tmp_path / "s1" / "a.txt").write_text("\n".join(",".join(map(str, r)) for r in table))
    with pytest.raises(DataError, match=r"s1/a.txt: unknown label 4"):
        get_reader("generic", tmp_path, pattern="s{subject}/a.txt", delimiter=",", **common).read("s1/a.txt")
    (tmp_path / "s1" / "a.txt").write_text("1,2,3,0\n4,inf,6,0\n")
    with pytest.raises(DataError, match=r"s1/a.txt: non-finite sample .*row 2, column 1"):
        get_reader("generic", tmp_path, pattern="s{subject}/a.txt", delimiter=",", **common).read("s1/a.txt")
    (tmp_path / "s1" / "a.txt").write_text("")
    with pytest.raises(DataError, match=r"s1/a.txt: empty file"):
        get_reader("generic", tmp_path, pattern="s{subject}/a.txt", delimiter=",", **common).read("s1/a.txt")
    (tmp_path / "s1" / "b.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match=r"s1/b.npy: cannot read .npy"):
        npy.read("s1/b.npy")


def test_generic_options_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="root"):
        get_reader("generic", pattern="x{subject}.csv", rate=1, device="myo")
    with pytest.raises(ConfigError, match="rate"):
        get_reader("generic", tmp_path, pattern="x{subject}.csv", rate=-1, device="myo")
    with pytest.raises(ConfigError, match="pattern"):
        get_reader("generic", tmp_path, pattern="/abs/{subject}.csv", rate=1, device="myo")
    with pytest.raises(ConfigError, match="device"):
        get_reader("generic", tmp_path, pattern="x{subject}.csv", rate=1, device="blob")
    with pytest.raises(ConfigError, match="orientation"):
        get_reader("generic", tmp_path, pattern="x{subject}.csv", rate=1, device="myo", orientation="cols")


# -- synthetic -----------------------------------------------------------------------------------
def test_synthetic_reader_wraps_the_generator():
    synthetic = pytest.importorskip("aemg.data.synthetic")
    config = synthetic.SyntheticConfig(seed=3)
    reader = get_reader("synthetic", config=config)
    sources = reader.sources()
    assert sources and sources == [str(u) for u in synthetic.synthetic_units(config)]
    first = reader.read(sources[0])
    again = get_reader("synthetic", seed=3).read(sources[0])
    assert len(first) == len(again) > 0
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.data, b.data)
    with pytest.raises(ConfigError, match="unknown option"):
        get_reader("synthetic", no_such_field=1)
    assert next(iter(read_dataset("synthetic", seed=3))).n_samples == first[0].n_samples


@pytest.mark.parametrize("array", [
    np.arange(60, dtype=np.int16).reshape(12, 5),
    np.asfortranarray(np.arange(60, dtype="<i4").reshape(6, 10)),
    np.arange(12, dtype=">f4").reshape(4, 3), np.zeros((0, 3), np.uint8), np.arange(5.0), np.array(7.0),
    np.arange(24, dtype=np.int64).reshape(2, 3, 4)])
@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_npy_array_reads_what_np_load_reads(array, version):
    """The header fast path gives np.load's array (dtype, shape, order, values) or declines."""
    import io

    from aemg.data.readers.generic import npy_array

    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, version=version)
    raw = buf.getvalue()
    got, want = npy_array(raw), np.load(io.BytesIO(raw))
    assert got is not None and got.dtype == want.dtype and got.shape == want.shape
    assert got.flags.f_contiguous == want.flags.f_contiguous and np.array_equal(got, want)
    assert npy_array(raw[:-1]) is None and npy_array(raw + b"\0") is None  # np.load decides then
    assert npy_array(b"\x93NUMPY garbage") is None and npy_array(b"") is None


def test_npy_array_declines_other_dtypes():
    import io

    from aemg.data.readers.generic import npy_array

    for array in (np.array(["a", "b"]), np.array([1 + 2j]), np.array([True]),
                  np.zeros(2, dtype=[("a", "<i2")])):
        buf = io.BytesIO()
        np.save(buf, array)
        assert npy_array(buf.getvalue()) is None


@pytest.mark.parametrize("dtype", ["<i2", ">i2", "<i4", "<i8", "<f4", "<f8", "|u1"])
def test_generic_npy_samples_equal_the_float64_route(tmp_path, rng, dtype):
    """int16/float32 tables are not widened to float64 first: same float32 samples as before
    (``table.astype(float64)[:, channels].T.astype(float32)``), channel subsets and orientation."""
    table = (rng.normal(size=(301, 4)) * 1000).astype(dtype)
    np.save(tmp_path / "a.npy", table)
    want = table.astype(np.float64).T.astype(np.float32)
    reader = get_reader("generic", tmp_path, pattern="{subject}.npy", rate=1000, device="ring:4")
    (rec,) = reader.read("a.npy")
    assert rec.data.dtype == np.float32 and rec.data.flags.c_contiguous
    np.testing.assert_array_equal(rec.data, want)
    sub = get_reader("generic", tmp_path, pattern="{subject}.npy", rate=1000, device="ring:2",
                     channels=[3, 1])
    np.testing.assert_array_equal(sub.read("a.npy")[0].data, want[[3, 1]])
    np.save(tmp_path / "b.npy", table.T)
    rows = get_reader("generic", tmp_path, pattern="{subject}.npy", rate=1000, device="ring:4",
                      orientation="channels")
    np.testing.assert_array_equal(rows.read("b.npy")[0].data, want)


def test_generic_npy_non_finite_float_is_named(tmp_path):
    table = np.zeros((5, 2), np.float32)
    table[3, 1] = np.nan
    np.save(tmp_path / "a.npy", table)
    with pytest.raises(DataError, match=r"a.npy: non-finite sample .*row 4, column 2"):
        get_reader("generic", tmp_path, pattern="{subject}.npy", rate=100, device="ring:2").read("a.npy")


def test_read_bytes_reads_whole_files_and_names_unreadable_ones(tmp_path):
    """The os.read path returns every byte (sizes around its read lengths) and keeps the errors."""
    rng = np.random.default_rng(0)
    for n in (1, 4095, 4096, 4097, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 7):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        (tmp_path / "f.bin").write_bytes(data)
        assert read_bytes(tmp_path / "f.bin") == data
        assert read_bytes(str(tmp_path / "f.bin")) == data
        write_gz(tmp_path / "f.bin.gz", data)
        assert read_bytes(tmp_path / "f.bin.gz") == data
    (tmp_path / "folder.npy").mkdir()
    with pytest.raises(DataError, match=r"folder.npy: cannot read file \(.*Is a directory: .*folder.npy"):
        read_bytes(tmp_path / "folder.npy")
