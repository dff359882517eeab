"""The `aemg datasets`, `aemg rectify` and `aemg demo` commands (thin layers over the API)."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from aemg.cli import main
from aemg.cli.demo import STEPS, run_demo
from aemg.cli.rectify import parse_options
from aemg.data.archive import open_archive
from aemg.data.readers import get_reader, list_readers
from aemg.errors import ConfigError


def aemg(*args, **kw):
    """Run the CLI in a fresh process, as a user would."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "aemg", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env, **kw)


def test_datasets_lists_every_reader(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:7] == ["name", "device", "channels", "rate_hz", "subjects", "classes",
                                  "description"]
    names = [line.split()[0] for line in out[1:]]
    assert names == [info.name for info in list_readers()]
    row = next(line for line in out if line.startswith("libemg_myo "))
    assert row.split()[1:6] == ["myo", "8", "200", "1", "5"]


def test_parse_options():
    assert parse_options(["n=3", "name=P{subject}.csv", "x=[1, 2]", "flag=true", "s=a=b"]) == {
        "n": 3, "name": "P{subject}.csv", "x": [1, 2], "flag": True, "s": "a=b"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_options(["novalue"])


@pytest.mark.realdata
def test_rectify_skips_a_bad_file_or_stops_on_it(tmp_path, data_root):
    src = tmp_path / "src"
    shutil.copytree(data_root / "libemg_sdist_one_subject_myo", src)
    bad = src / "R_1_C_2_EMG.csv"
    bad.write_text("1,2,abc,4,5,6,7,8\n")

    proc = aemg("rectify", "libemg_myo", src, tmp_path / "a", "--workers", 2)
    assert proc.returncode == 0, proc.stderr
    assert f"{bad}: row 1: 'abc' is not a number" in proc.stderr
    assert "libemg_myo: 20 of 20 sources read" in proc.stdout and "19 recordings" in proc.stdout
    archive = open_archive(tmp_path / "a")
    assert len(archive) == 19 and archive.complete and archive.subjects() == ["0"]
    assert archive[0].data.shape[0] == 16 and archive[0].units == "standard"
    errors = [json.loads(line) for line in (tmp_path / "a" / "errors.jsonl").read_text().splitlines()]
    assert errors == [{"source": "R_1_C_2_EMG.csv", "problem": "row 1: 'abc' is not a number"}]

    proc = aemg("rectify", "libemg_myo", src, tmp_path / "b", "--workers", 1, "--stop-on-error",
                "--no-progress")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == f"aemg: error: {bad}: row 1: 'abc' is not a number"
    before = get_reader("libemg_myo", src).sources().index("R_1_C_2_EMG.csv")
    archive = open_archive(tmp_path / "b", allow_partial=True)
    assert len(archive) == before > 0 and not archive.complete

    # fixed file + same command: resumes and completes; other settings: refused
    shutil.copy(data_root / "libemg_sdist_one_subject_myo" / bad.name, bad)
    assert main(["rectify", "libemg_myo", str(src), str(tmp_path / "b"), "--workers",
                 "1", "--no-progress"]) == 0
    archive = open_archive(tmp_path / "b")
    assert len(archive) == 20 and archive.complete and archive.errors == []
    proc = aemg("rectify", "libemg_myo", src, tmp_path / "b", "--rate", 300, "--no-progress")
    assert proc.returncode == 2 and "other settings" in proc.stderr and "rate" in proc.stderr
    # --precision is stored and must match on resume
    proc = aemg("rectify", "libemg_myo", src, tmp_path / "b", "--precision", "float64", "--no-progress")
    assert proc.returncode == 2 and "--precision" in proc.stderr and '"float32", now "float64"' in proc.stderr
    assert main(["rectify", "libemg_myo", str(src), str(tmp_path / "c"), "--precision", "float64",
                 "--workers", "1", "--no-progress"]) == 0
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["precision"] == "float64"
    assert open_archive(tmp_path / "c")[0].meta["rectify"]["precision"] == "float64"


def test_rectify_unknown_reader_and_bad_option(tmp_path, capsys):
    assert main(["rectify", "nope", "-", str(tmp_path / "x")]) == 2
    assert "unknown dataset reader 'nope'" in capsys.readouterr().err
    assert main(["rectify", "synthetic", "-", str(tmp_path / "x"), "--option", "colour=3"]) == 2
    assert "colour" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_demo_command_and_resume(tmp_path, capsys):
    """The whole demo in its reduced --fast configuration, then the CLI resumes it (every step skips)."""
    assert [s.name for s in STEPS] == ["data", "rectify", "tokenize", "pretrain", "evaluate"]
    lines = []
    state = run_demo(tmp_path, workers=1, progress=False, echo=lines.append, fast=True)
    assert lines[0].startswith("[1/5] data: synthetic dataset: 3 sources, 3 subjects")
    assert "[2/5] rectify: archive" in lines[1] and "3 subjects" in lines[1] and "0 errors" in lines[1]
    archive = state.results["archive"]
    assert len(archive) == 3 * 3 * 2 and archive.complete and archive.manifest["reader_options"] == {
        "n_subjects": 3, "n_gestures": 2, "repetitions": 2}
    assert lines[2].startswith("[3/5] tokenize: corpus") and "x 125 samples" in lines[2]
    assert lines[3].startswith("[4/5] pretrain: run") and "stage 2 4 steps" in lines[3]
    assert lines[4].startswith("[5/5] evaluate: LOSO trial accuracy: lda ") and "aemg-probe" in lines[4]
    report = tmp_path / "report"
    assert lines[-1] == f"report: {report / 'results.md'}"
    summary = json.loads((report / "results.json").read_text())["summary"]
    assert {(r["method"], r["protocol"]) for r in summary} == {
        (m, p) for m in state.methods for p in ("loso", "fewshot")}
    assert main(["demo", "--out", str(tmp_path), "--fast", "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "0 sources read now, 3 already done" in out[1]
    assert all("already" in line for line in out[2:5]), out
    assert out[-2].startswith("demo done in") and out[-1] == f"report: {report / 'results.md'}"
