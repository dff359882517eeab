"""Fault injection: Ctrl-C and killed workers in the process pools of rectify and tokenize.

Each test runs the command in a fresh process group (as a terminal does), sends the signal to the
whole group, and asserts that the command ends (no hang), keeps what it committed, and that the
re-run gives the same bytes as an uninterrupted run.
"""
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from helpers import synthetic_archive, tree_digest

from aemg._pool import WorkerDied, WorkerPool
from aemg.tokenizer.corpus import tokenize_archive

#: a hung command is one still running after this long (liveness, not a speed threshold)
HANG_S = 60


def _default_sigint() -> None:
    """In the child before exec: Ctrl-C as in a terminal. A test suite started in the background of
    a non-interactive shell (``pytest ... &``) inherits SIGINT ignored, and a child started from it
    would ignore the test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _spawn(code: str, *args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, preexec_fn=_default_sigint)


def _interrupt_after(proc: subprocess.Popen, marker: str, lines: int = 1) -> tuple[int, str]:
    """Wait for ``lines`` lines starting with ``marker`` on stdout, then SIGINT the process group."""
    seen = 0
    while seen < lines:
        line = proc.stdout.readline()
        assert line, f"ended before {marker!r}: {proc.stderr.read()[-2000:]}"
        seen += line.startswith(marker)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"still running {HANG_S} s after Ctrl-C (hang)")
    return proc.returncode, err


def test_pool_workers_ignore_ctrl_c_and_are_stopped():
    # a task that never ends: the parent still exits promptly after Ctrl-C, with no orphan left
    proc = _spawn("""
        import time
        from aemg._pool import WorkerPool
        with WorkerPool(2, what="test", grace=0.5) as pool:
            futures = [pool.submit(time.sleep, 1000) for _ in range(4)]
            time.sleep(0.5)
            print("running", [p.pid for p in pool._processes.values()], flush=True)
            futures[0].result()
    """)
    line = proc.stdout.readline()
    assert line.startswith("running"), proc.stderr.read()
    pids = [int(p) for p in line.split("[")[1].rstrip("]\n").split(",")]
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=HANG_S)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_worker_is_an_error_not_a_hang():
    with pytest.raises(WorkerDied, match="re-run the same command to resume"):
        with WorkerPool(2, what="test") as pool:
            pool.submit(_die).result()


SLOW_TOKENIZE = """
    import sys, time
    import aemg.tokenizer.corpus.writer as c
    from aemg.cli import main
    slow = c.tokenize_group
    def group(*a, **k):
        time.sleep(0.15)
        print("group", flush=True)
        return slow(*a, **k)
    c.tokenize_group = group
    tokenize = getattr(c.tokenize_archive, "__wrapped__", c.tokenize_archive)
    tokenize.__kwdefaults__["min_channel_samples_per_worker"] = 0
    sys.exit(main(["tokenize", sys.argv[1], sys.argv[2], "--workers", "2", "--no-progress"]))
"""


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return synthetic_archive(tmp_path_factory.mktemp("rel") / "a", n_subjects=6)


@pytest.fixture(scope="module")
def archive12(tmp_path_factory):
    """12 sources: the amplitude-scale pass samples 8 (s00, s02, s03, s05, s06, s08, s09, s11),
    which the run does not rectify again; the others go through ``_rectify_source``."""
    return synthetic_archive(tmp_path_factory.mktemp("rel12") / "a", n_subjects=12)


@pytest.mark.parametrize("after", [1, 4])
def test_tokenize_ctrl_c_with_workers_ends_and_resumes_to_the_same_bytes(archive, tmp_path, after):
    reference = tmp_path / "ref"
    tokenize_archive(archive, reference, workers=1, progress=False)
    rc, err = _interrupt_after(_spawn(SLOW_TOKENIZE, archive, tmp_path / "c"), "group", after)
    assert rc == 130, err
    assert err.strip().splitlines()[-1].startswith("aemg: interrupted"), err
    assert "Traceback" not in err
    tokenize_archive(archive, tmp_path / "c", workers=2, progress=False, min_channel_samples_per_worker=0)
    assert tree_digest(tmp_path / "c") == tree_digest(reference)


SLOW_RECTIFY = """
    import sys, time
    import aemg.data.pipeline as p
    from aemg.cli import main
    slow = p._rectify_source
    def source(s):
        time.sleep(0.2)
        print("source", flush=True)
        return slow(s)
    p._rectify_source = source
    sys.exit(main(["rectify", "synthetic", "-", sys.argv[1], "--option", "n_subjects=12", "--option",
                   "trial_s=2", "--workers", "2", "--no-progress", "--shard-mb", "0.05"]))
"""


def test_rectify_ctrl_c_with_workers_keeps_commits_and_resumes_to_the_same_archive(archive12, tmp_path):
    from aemg.data.archive import open_archive
    rc, err = _interrupt_after(_spawn(SLOW_RECTIFY, tmp_path / "a"), "source", 2)
    assert rc == 130 and "Traceback" not in err, err
    part = open_archive(tmp_path / "a", allow_partial=True)
    assert not part.complete
    subprocess.run([sys.executable, "-m", "aemg", "rectify", "synthetic", "-", str(tmp_path / "a"),
                    "--option", "n_subjects=12", "--option", "trial_s=2", "--workers", "2", "--no-progress",
                    "--shard-mb", "0.05"], check=True, capture_output=True, timeout=HANG_S)
    whole, again = open_archive(tmp_path / "a"), open_archive(archive12)
    assert whole.complete and whole.keys() == again.keys()
    for i in (0, len(whole) // 2, len(whole) - 1):
        assert (whole[i].data == again[i].data).all()


KILL_WORKER = """
    import os, signal, sys
    import aemg.data.pipeline as p
    from aemg.cli import main
    slow = p._rectify_source
    def source(s):
        if s == "s04":  # not one the amplitude-scale pass sampled
            os.kill(os.getpid(), signal.SIGKILL)  # the OOM killer, or a user's kill -9
        return slow(s)
    p._rectify_source = source
    sys.exit(main(["rectify", "synthetic", "-", sys.argv[1], "--option", "n_subjects=12", "--option",
                   "trial_s=2", "--workers", "2", "--no-progress", "--shard-mb", "0.05"]))
"""


def test_a_killed_rectify_worker_is_one_line_and_the_rerun_completes(archive12, tmp_path):
    from aemg.data.archive import open_archive
    proc = _spawn(KILL_WORKER, tmp_path / "a")
    _, err = proc.communicate(timeout=HANG_S)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 2 and "Traceback" not in err, err
    assert lines[-1].startswith("aemg: error: rectify worker process ended abruptly"), err
    assert not open_archive(tmp_path / "a", allow_partial=True).complete
    subprocess.run([sys.executable, "-m", "aemg", "rectify", "synthetic", "-", str(tmp_path / "a"),
                    "--option", "n_subjects=12", "--option", "trial_s=2", "--workers", "2", "--no-progress",
                    "--shard-mb", "0.05"], check=True, capture_output=True, timeout=HANG_S)
    assert open_archive(tmp_path / "a").keys() == open_archive(archive12).keys()
