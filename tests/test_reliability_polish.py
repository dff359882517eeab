"""First contact: help texts, an Excel CSV, nonsense files and parameters refused or warned about,
messages cut to a readable length."""
import numpy as np
import pytest

from aemg.cli import COMMANDS, main
from aemg.data import Recording
from aemg.data.pipeline import rectify_dataset
from aemg.data.readers import get_reader
from aemg.data.readers.base import parse_table
from aemg.errors import DataError

COMMON = {"rate": 1000.0, "device": "ring:2"}


@pytest.mark.parametrize("command", [c.replace("_", "-") for c in COMMANDS])
def test_help_texts_have_no_rst_markup(command, capsys):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert "``" not in text and "`" not in text
    assert " glob" not in text.replace("global", "")


def test_vocab_help_is_whole_and_evaluate_lists_its_methods(capsys):
    main(["vocab", "--help"])
    assert "how often each is used per dataset/device." in " ".join(capsys.readouterr().out.split())
    assert main(["evaluate", "--list-methods"]) == 0
    names = capsys.readouterr().out.split()
    assert "lda" in names and "aemg-probe" in names


def test_an_excel_csv_with_a_byte_order_mark_is_read(tmp_path):
    (tmp_path / "P1").mkdir()
    (tmp_path / "P1" / "g0_rep0.csv").write_bytes("\ufeff1,2\n3,4\n5,6\n".encode("utf-8"))
    reader = get_reader("generic", tmp_path, pattern="P{subject}/g{label}_rep{trial}.csv", **COMMON)
    (rec,) = reader.read("P1/g0_rep0.csv")
    assert rec.data.tolist() == [[1, 3, 5], [2, 4, 6]]


def test_complex_npy_and_one_sample_files_are_refused(tmp_path):
    (tmp_path / "P1").mkdir()
    np.save(tmp_path / "P1" / "g0_rep0.npy", np.ones((10, 2), np.complex64))
    np.save(tmp_path / "P1" / "g0_rep1.npy", np.ones((1, 2)))
    np.save(tmp_path / "P1" / "g0_rep2.npy", np.random.default_rng(0).normal(size=(2000, 2)))
    report = rectify_dataset("generic", tmp_path / "a", root=tmp_path, workers=1, progress=False,
                             reader_options={"pattern": "P{subject}/g{label}_rep{trial}.npy", **COMMON})
    problems = {e["source"]: e["problem"] for e in report.errors}
    assert problems["P1/g0_rep0.npy"] == "expected real numbers, got dtype complex64"
    assert "1 sample(s), too short to rectify" in problems["P1/g0_rep1.npy"]
    assert report.recordings == 1


def test_folders_behind_a_symlink_are_listed(tmp_path):
    from test_archive import FakeReader

    (tmp_path / "elsewhere" / "deep").mkdir(parents=True)
    (tmp_path / "elsewhere" / "deep" / "R_1_C_1_EMG.csv").write_text("1")
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "linked").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "root" / "loop").symlink_to(tmp_path / "root")  # a loop ends
    reader = FakeReader()
    reader.root = tmp_path / "root"
    assert reader.glob("**/R_*_C_*_EMG.csv") == ["linked/deep/R_1_C_1_EMG.csv"]


def test_recording_fields_of_the_wrong_type_are_data_errors():
    x = np.zeros((2, 10), np.float32)
    with pytest.raises(DataError, match="trial label must be an integer class id, got 1.7"):
        Recording(x, rate=100.0, device="ring:2", label=1.7)
    with pytest.raises(DataError, match="sampling rate must be a positive number of Hz, got '200'"):
        Recording(x, rate="200", device="ring:2")
    assert Recording(x, rate=100.0, device="ring:2", label=np.int64(2)).label == 2


def test_a_huge_field_is_cut_in_the_message():
    with pytest.raises(DataError) as info:
        parse_table("1,2\n3," + "\0" * 50_000 + "\n", "f.csv", delimiter=",")
    assert len(str(info.value)) < 300 and "more characters" in str(info.value)


def test_recordings_shorter_than_a_token_are_warned_about(tmp_path, caplog):
    from aemg.data.archive import ArchiveWriter
    from aemg.tokenizer.corpus import tokenize_archive
    from aemg.tokenizer.tokens import TokenizerConfig

    writer = ArchiveWriter(tmp_path / "a", {"reader": "x", "reader_options": {}, "source_root": None,
                                            "space": {}, "amplitude_scale": 1.0})
    rng = np.random.default_rng(0)
    for i, t in enumerate((2000, 30)):
        writer.add(f"s{i}", [Recording(rng.normal(size=(2, t)).astype(np.float32), rate=1000.0,
                                       device="ring:2", trial=str(i), units="standard")])
    writer.finish()
    tokenize_archive(tmp_path / "a", tmp_path / "c", TokenizerConfig(token_s=0.05, mode="windows"), workers=1,
                     progress=False)
    assert "1 of 2 recordings are shorter than one token (0.05 s)" in caplog.text


@pytest.mark.parametrize("command, says",
                         [("verify", "nothing was written"), ("tokenize", "re-run the same command")])
def test_ctrl_c_says_what_to_do(monkeypatch, capsys, command, says):
    import importlib

    module = importlib.import_module(f"aemg.cli.{command}")

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(module, "run", interrupted)
    assert main([command, "x", "y"][: 2 if command == "verify" else 3]) == 130
    assert says in capsys.readouterr().err


def test_rows_are_named_by_1_based_file_line_everywhere(tmp_path):
    (tmp_path / "P1").mkdir()
    reader = get_reader("generic", tmp_path, pattern="P{subject}/g{label}_rep{trial}.csv", skip_rows=1,
                        time_column=0, **COMMON)
    f = tmp_path / "P1" / "g0_rep0.csv"
    f.write_text("t,a,b\n0.001,1,2\n0.002,x,3\n")   # parse error: line 3
    with pytest.raises(DataError, match="row 3: 'x' is not a number"):
        reader.read("P1/g0_rep0.csv")
    f.write_text("t,a,b\n0.001,1,2\n0.002,1,2\n0.003,nan,2\n")   # non-finite: line 4
    with pytest.raises(DataError, match="non-finite sample .* at row 4, column 1"):
        reader.read("P1/g0_rep0.csv")
    f.write_text("t,a,b\n0.001,1,2\n0.002,1,2\n0.003,1,2\n0.0025,1,2\n")   # backwards: line 5
    with pytest.raises(DataError, match="timestamps go backwards at row 5"):
        reader.read("P1/g0_rep0.csv")
