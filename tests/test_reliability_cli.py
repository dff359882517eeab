"""One error path for the command line: a table of bad invocations across every subcommand, each
of which must end with exit code 2 and exactly one line on stderr naming the option or path,
never a traceback; a full disk (a small tmpfs where the test may mount one, else an injected
ENOSPC) is one line too, and keeps what was committed."""
import dataclasses
import errno
import json
import os
import subprocess
import sys

import pytest
from helpers import synthetic_archive

from aemg.cli import main

G = ["--pattern", "P{subject}/gesture{label}_rep{trial}.csv", "--source-rate", "1000", "--device", "ring:2"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Paths the invocations use: a complete archive A, an incomplete one P, a corpus C, a run R,
    a folder of generic files SRC, a plain file F and an existing unrelated folder D."""
    from test_pretrain import MICRO

    from aemg.tokenizer.corpus import open_corpus, tokenize_archive
    from aemg.train import pretrain

    root = tmp_path_factory.mktemp("cli")
    synthetic_archive(root / "A", n_subjects=2)
    synthetic_archive(root / "P", n_subjects=2)
    index = json.loads((root / "P" / "index.json").read_text())
    (root / "P" / "index.json").write_text(json.dumps({**index, "complete": False}))
    tokenize_archive(root / "A", root / "C", workers=1, progress=False)
    cfg = dataclasses.replace(MICRO, model=dataclasses.replace(MICRO.model, max_tokens=256))
    pretrain(open_corpus(root / "C"), root / "R", cfg, steps=1, progress=False, device="cpu")

    def stop(row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # RP: an unfinished run (stage 1 step 1 of 2)
        pretrain(open_corpus(root / "C"), root / "RP", cfg, steps=2, progress=False, device="cpu",
                 on_step=stop)
    (root / "SRC" / "P1").mkdir(parents=True)
    (root / "SRC" / "P1" / "gesture0_rep0.csv").write_text("1,2\n3,4\n" * 50)
    (root / "F").write_text("a file")
    (root / "D").mkdir()
    (root / "D" / "notes.txt").write_text("mine")
    return {k: str(root / k) for k in ("A", "P", "C", "R", "RP", "SRC", "F", "D")} | {"T": str(root)}


# (arguments with {placeholders} from env, a fragment the one line must hold)
BAD = [
    # rectify: reader options validated against each reader's declared parameters
    ("rectify generic {SRC} {T}/o1", "missing required option(s) --pattern, --source-rate, --device"),
    ("rectify generic {SRC} {T}/o1 --pattern x{{subject}}.csv",
     "missing required option(s) --source-rate, --device"),
    ("rectify synthetic - {T}/o1 --option name=x", "unknown option(s) name"),
    ("rectify generic {SRC} {T}/o1 G --option root=/x", "--option root=...: not an option"),
    ("rectify synthetic - {T}/o1 --option self=1", "--option self=...: not an option"),
    ("rectify generic {SRC} {T}/o1 G --option name=a --option root=b", "not an option"),
    ("rectify generic {SRC} {T}/o1 G --option channels=3",
     "--option channels=3: expected a list of integers or null"),
    ("rectify generic {SRC} {T}/o1 G --option skip_rows=abc",
     "--option skip_rows=\"abc\": expected an integer"),
    ("rectify generic {SRC} {T}/o1 G --option time_scale=abc", "time_scale=\"abc\": expected a number"),
    ("rectify generic {SRC} {T}/o1 G --option classes=3", "classes=3: expected a list of strings or null"),
    ("rectify generic {SRC} {T}/o1 G --option classes=rest,fist",
     "expected a list of strings or null (values are JSON: classes='[\"rest\", \"fist\"]')"),
    ("rectify generic {SRC} {T}/o1 G --option channels=0,2",
     "expected a list of integers or null (values are JSON: channels='[0, 2]')"),
    ("rectify generic {SRC} {T}/o1 G --option delimiter=5", "delimiter=5: expected a string or null"),
    ("rectify generic {SRC} {T}/o1 G --option time_column=0.5",
     "time_column=0.5: expected an integer or null"),
    ("rectify generic {SRC} {T}/o1 G --option rate=2000", "--source-rate and --option rate=... both given"),
    ("rectify generic {SRC} {T}/o1 G --option units=volts", "units='volts'"),
    ("rectify generic {SRC} {T}/o1 --pattern /abs.csv --source-rate 1 --device ring:2", "pattern='/abs.csv'"),
    ("rectify synthetic - {T}/o1 --option n_subjects=abc", "n_subjects=\"abc\": expected an integer"),
    ("rectify synthetic - {T}/o1 --option novalue", "--option 'novalue': expected KEY=VALUE"),
    ("rectify nope - {T}/o1", "unknown dataset reader 'nope'"),
    ("rectify synthetic - {T}/o1 --workers 0", "argument --workers: '0': must be >= 1"),
    ("rectify synthetic - {T}/o1 --shard-mb 0", "argument --shard-mb: '0': must be > 0"),
    ("rectify synthetic - {T}/o1 --shard-mb abc", "argument --shard-mb: 'abc' is not a number"),
    ("rectify synthetic - {T}/o1 --rate -5", "argument --rate: '-5': must be > 0"),
    ("rectify coteallard {T}/missing {T}/o1", "missing: dataset folder not found"),
    ("rectify synthetic - {F}", "exists and is not an aemg archive"),
    ("rectify synthetic - {D}", "exists and is not an aemg archive"),
    ("rectify synthetic - {F}/sub", "F/sub"),
    ("rectify synthetic - {A} --option n_subjects=3", "already holds an archive made with other settings"),
    # tokenize
    ("tokenize {T}/missing {T}/c1", "missing: archive folder not found"),
    ("tokenize {P} {T}/c1", "archive is incomplete"),
    ("tokenize {A} {T}/c1 --token-s 0", "argument --token-s: '0': must be > 0"),
    ("tokenize {A} {T}/c1 --max-len 0", "argument --max-len: '0': must be >= 1"),
    ("tokenize {A} {T}/c1 --hop-s -1", "argument --hop-s: '-1': must be > 0"),
    ("tokenize {A} {T}/c1 --mode foo", "argument --mode: invalid choice: 'foo'"),
    ("tokenize {A} {D}", "exists and is not a token corpus"),
    ("tokenize {A} {T}/c1 --token-s 1000", "--token-s 1000"),
    ("tokenize {A} {C} --token-s 0.2", "token_s: the corpus has 0.25, now 0.2"),
    ("tokenize {A} {T}/c1 --workers x", "argument --workers: 'x' is not an integer"),
    # pretrain
    ("pretrain {C} --out {T}/r1 --steps 0", "argument --steps: '0': must be >= 1"),
    ("pretrain {C} --out {T}/r1 --batch-size 0", "argument --batch-size: '0': must be >= 1"),
    ("pretrain {C} --out {T}/r1 --device tpu", "--device 'tpu': not a device"),
    ("pretrain {C} --out {T}/r1 --device meta", "--device meta: unsupported device type 'meta'"),
    ("pretrain {C} --out {T}/r1 --device nonsense", "--device 'nonsense': not a device"),
    ("pretrain {T}/missing --out {T}/r1", "missing: token corpus folder not found"),
    ("pretrain {C}", "the following arguments are required: --out"),
    ("pretrain {C} --out {T}/r1 --config {T}/missing.toml", "missing.toml: cannot read config"),
    ("pretrain {C} --out {R}", "already holds a run"),
    ("pretrain {C} --out {R} --resume --seed 5", "--seed: the run has 0, now 5"),
    ("pretrain {C} --out {D}", "exists and holds no checkpoint"),
    ("pretrain {C} --out {T}/r1 --resume", "nothing to resume"),
    ("pretrain {C} --out {F}/r", "F/r"),
    # embed
    ("embed {R} {A} --out {T}/e.npz --device tpu", "--device 'tpu'"),
    ("embed {RP} {A} --out {T}/e.npz",
     "RP: the run is unfinished (its latest checkpoint is stage 1 step 1 of 2)"),
    ("embed {R} {A} --out {T}/e.npz --batch-size 0", "argument --batch-size: '0': must be >= 1"),
    ("embed {T}/missing {A} --out {T}/e.npz", "missing: no such run or checkpoint folder"),
    ("embed {R} {P} --out {T}/e.npz", "archive is incomplete"),
    ("embed {R} {A} --out {T}/nodir/e.npz", "nodir: folder does not exist"),
    ("embed {R} {A} --out {F}/e.npz", "F: is not a folder"),
    # plot-events
    ("plot-events {A} --out {T}/p.png --index 99999", "--index 99999: the archive has"),
    ("plot-events {A} --out {T}/p.png --key nope", "--key 'nope': no such recording"),
    ("plot-events {A} --out {T}/nodir/p.png", "nodir: folder does not exist"),
    ("plot-events {P} --out {T}/p.png", "archive is incomplete"),
    ("plot-events {A} --out {T}/p.png --token-s 0", "argument --token-s: '0': must be > 0"),
    ("plot-events {A} --out {T}/p.png --index -1", "argument --index: '-1': must be >= 0"),
    # vocab
    ("vocab {R} --corpus {C} --out {T}/v.png --top 0", "argument --top: '0': must be >= 1"),
    ("vocab {RP} --corpus {C} --out {T}/v.png", "the run is unfinished"),
    ("vocab {R} --corpus {T}/missing --out {T}/v.png", "missing: token corpus folder not found"),
    ("vocab {R} --corpus {C} --out {T}/v.png --device tpu", "--device 'tpu'"),
    ("vocab {R} --corpus {C} --out {T}/nodir/v.png", "nodir: folder does not exist"),
    # evaluate
    ("evaluate {A} --out {T}/rep --protocols nope", "--protocols: unknown nope"),
    ("evaluate {A} --out {T}/rep --method-options {{bad", "--method-options: not valid JSON"),
    ("evaluate {A} --out {T}/rep --seeds x", "expected comma-separated integers"),
    ("evaluate {P} --out {T}/rep", "archive is incomplete"),
    # verify, datasets, demo, the top level
    ("verify {T}/missing", "missing: not found"),
    ("verify {D}", "not an aemg archive, token corpus or run"),
    ("compare a b --report {D}", "not a report folder (no per_subject.csv"),
    ("compare a b", "--report FOLDER (or --a-report and --b-report) is required"),
    ("compare a b --report {D} --seed -1", "--seed: '-1': must be >= 0"),
    ("datasets --bogus", "unrecognized arguments: --bogus"),
    ("demo --workers 0", "argument --workers: '0': must be >= 1"),
    ("prepare --no-such-flag", "aemg prepare: error: "),
    ("nope", "argument COMMAND: invalid choice: 'nope'"),
]


def _argv(template: str, env: dict) -> list[str]:
    out = []
    for word in template.split(" "):
        if word == "G":
            out.extend(G)
        else:
            out.append(word.format(**env))
    return out


def test_the_table_is_large_and_covers_every_subcommand():
    from aemg.cli import COMMANDS
    assert len(BAD) >= 40
    used = {t.split(" ")[0] for t, _ in BAD}
    assert {c.replace("_", "-") for c in COMMANDS} <= used


@pytest.mark.parametrize("template, fragment", BAD, ids=[t for t, _ in BAD])
def test_bad_invocation_is_one_line_and_exit_2(env, capsys, template, fragment):
    before = sorted(os.listdir(env["T"]))
    rc = main(_argv(template, env))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert ": error: " in lines[0] and fragment.format(**env) in lines[0], lines[0]
    # nothing is left behind by a refused command
    assert sorted(os.listdir(env["T"])) == before


def test_a_real_process_prints_no_traceback(env):
    proc = subprocess.run([sys.executable, "-m", "aemg", *_argv(BAD[6][0], env)], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def _small_filesystem(path):
    """Mount a 6 MiB tmpfs at ``path`` (True), or False where this process may not."""
    path.mkdir()
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.mark.parametrize("fill", ["tmpfs", "injected"])
def test_a_full_disk_is_one_line_and_keeps_what_was_committed(tmp_path, capsys, monkeypatch, fill):
    from aemg.data.archive import open_archive

    disk = tmp_path / "disk"
    mounted = fill == "tmpfs" and _small_filesystem(disk)
    if fill == "tmpfs" and not mounted:
        pytest.skip("cannot mount a tmpfs here (the injected case covers it)")
    disk.mkdir(exist_ok=True)
    try:
        if not mounted:  # inject ENOSPC from the second shard on
            import aemg.data.archive as archive_module
            write = archive_module.write_shard
            calls = []

            def full(path, *a, **k):
                calls.append(path)
                if len(calls) > 1:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
                return write(path, *a, **k)
            monkeypatch.setattr(archive_module, "write_shard", full)
        args = ["rectify", "synthetic", "-", str(disk / "a"), "--option", "n_subjects=12", "--option",
                "trial_s=2", "--workers", "1", "--no-progress", "--shard-mb", "0.2"]
        assert main(args) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("aemg")]
        assert len(err) == 1 and "no space left on device" in err[0] and str(disk / "a") in err[0], err
        with open_archive(disk / "a", allow_partial=True) as part:
            assert not part.complete and len(part) > 0
            for rec in part:  # every committed recording reads back
                assert rec.data.size
    finally:
        if mounted and subprocess.run(["umount", str(disk)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(disk)], check=False)


def test_allow_partial_reads_what_is_there(env, tmp_path, capsys):
    assert main(["embed", env["RP"], env["P"], "--out", str(tmp_path / "e.npz"), "--allow-partial",
                 "--device", "cpu"]) == 0
    assert (tmp_path / "e.npz").is_file()
    assert main(["plot-events", env["P"], "--out", str(tmp_path / "p.png"), "--allow-partial"]) == 0


def test_a_permission_error_is_one_line_naming_the_path(tmp_path, capsys, monkeypatch):
    import aemg._io

    def refuse(*a, **k):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(k.get("dir", "?")))
    monkeypatch.setattr(aemg._io.tempfile, "mkstemp", refuse)
    assert main(["rectify", "synthetic", "-", str(tmp_path / "a"), "--option", "n_subjects=1",
                 "--workers", "1", "--no-progress"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(f"aemg: error: {tmp_path / 'a'}/") and \
        "Permission denied (check the permissions of the path" in err[0], err
