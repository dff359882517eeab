"""Fault injection: two writers of one output folder. The second is refused at once, naming the
holder's PID, before it reads or deletes anything; the first finishes a valid archive."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from helpers import synthetic_archive

from aemg._io import LOCK, FolderLock
from aemg.cli import main
from aemg.data.archive import verify_archive
from aemg.data.pipeline import rectify_dataset
from aemg.errors import ConfigError
from aemg.tokenizer.corpus import tokenize_archive

SLOW_RECTIFY = """
    import sys, time
    import aemg.data.pipeline as p
    slow = p._rectify_source
    def source(s):
        print("source", flush=True)
        time.sleep(0.5)
        return slow(s)
    p._rectify_source = source
    p.rectify_dataset("synthetic", sys.argv[1], reader_options={"n_subjects": 12, "trial_s": 2}, workers=1,
                      progress=False, shard_bytes=1 << 20)
"""


def test_a_second_rectify_is_refused_naming_the_holder_and_deletes_nothing(tmp_path):
    out = tmp_path / "a"
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SLOW_RECTIFY), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(3):  # two sources done: at least one shard committed
            assert proc.stdout.readline().startswith("source"), proc.stderr.read()
        before = sorted(p.name for p in (out / "shards").iterdir())
        with pytest.raises(ConfigError,
                           match=f"another aemg process is writing this archive \\(PID {proc.pid}:"):
            rectify_dataset("synthetic", out, reader_options={"n_subjects": 12, "trial_s": 2}, workers=1,
                            progress=False, shard_bytes=1 << 20)
        assert set(before) <= {p.name for p in (out / "shards").iterdir()}
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert verify_archive(out)[0] == [] and not (out / LOCK).exists()


def test_tokenize_and_pretrain_refuse_a_locked_folder(tmp_path, capsys):
    synthetic_archive(tmp_path / "a", n_subjects=2)
    with FolderLock(tmp_path / "c", "token corpus"):
        assert main(["tokenize", str(tmp_path / "a"), str(tmp_path / "c"), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert f"another aemg process is writing this token corpus (PID {os.getpid()}" in err
    tokenize_archive(tmp_path / "a", tmp_path / "c", workers=1, progress=False)
    assert not (tmp_path / "c" / LOCK).exists()
    with FolderLock(tmp_path / "r", "run"):
        assert main(["pretrain", str(tmp_path / "c"), "--out", str(tmp_path / "r"), "--steps", "1"]) == 2
        assert "another aemg process is writing this run" in capsys.readouterr().err


def test_a_killed_holder_leaves_no_lock_behind(tmp_path):
    code = (f"from aemg._io import FolderLock; import os, signal\n"
            f"with FolderLock({str(tmp_path / 'x')!r}):\n"
            "    os.kill(os.getpid(), signal.SIGKILL)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == -signal.SIGKILL
    assert (tmp_path / "x" / LOCK).exists()  # the file stays, the kernel dropped the lock
    with FolderLock(tmp_path / "x"):
        pass
    assert not (tmp_path / "x" / LOCK).exists()


def test_a_refused_command_leaves_no_folder(tmp_path):
    with pytest.raises(ConfigError):
        rectify_dataset("synthetic", tmp_path / "new", reader_options={"colour": 1}, workers=1,
                        progress=False)
    assert not (tmp_path / "new").exists()
