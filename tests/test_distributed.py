"""rectify, tokenize and prepare on a Dask LocalCluster of 2 worker processes on loopback: the
archive and corpus equal a local run's; a worker killed mid-run (while rectifying, or half-way
through writing a shard) loses nothing; a client killed mid-run resumes when re-run; progress bars
count every item; a bad scheduler fails before any work."""
import json
import os
import signal

import pytest

pytest.importorskip("distributed")

from helpers import tree_digest  # noqa: E402

from aemg.data.distributed import SCHEDULER_ENV  # noqa: E402
from aemg.data.pipeline import rectify_dataset  # noqa: E402
from aemg.errors import ConfigError  # noqa: E402

#: 12 sources: the amplitude-scale pass (always local) samples and finishes 8 of them, the other 4
#: are rectified on the cluster
OPTIONS = {"n_subjects": 12, "trial_s": 1.5, "repetitions": 2, "n_gestures": 2}


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=50) as c:
        yield c


def same_archive(a, b):
    """Every file byte for byte except the manifest, equal but for its creation time."""
    da, db = tree_digest(a), tree_digest(b)
    da.pop("manifest.json"), db.pop("manifest.json")
    assert da == db and len(da) > 2
    ma, mb = (json.loads((p / "manifest.json").read_text()) for p in (a, b))
    ma.pop("created"), mb.pop("created")
    assert ma == mb


def _malloc_tuned():
    from aemg.data import distributed
    return distributed._MALLOC["tuned"]


def test_rectify_on_the_cluster_equals_a_local_run(tmp_path, cluster, monkeypatch):
    from distributed import Client
    rectify_dataset("synthetic", tmp_path / "local", reader_options=OPTIONS, workers=1, progress=False)
    report = rectify_dataset("synthetic", tmp_path / "dask", reader_options=OPTIONS, progress=False,
                             scheduler=cluster.scheduler_address)
    assert report.complete and not report.errors
    same_archive(tmp_path / "local", tmp_path / "dask")
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        # the nanny's MALLOC_TRIM_THRESHOLD_ was overridden by the first aemg task of each worker
        tuned = list(client.run(_malloc_tuned).values())
        assert True in tuned and False not in tuned  # None: a worker that ran no task yet
    monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)  # the address from the environment
    rectify_dataset("synthetic", tmp_path / "env", reader_options=OPTIONS, progress=False)
    same_archive(tmp_path / "local", tmp_path / "env")


def test_a_worker_killed_mid_run_loses_nothing(tmp_path, cluster):
    rectify_dataset("synthetic", tmp_path / "local", reader_options=OPTIONS, workers=1, progress=False)
    killed = []

    def kill_one_worker(source, recordings):
        if not killed:
            nanny = next(iter(cluster.workers.values()))
            os.kill(nanny.process.process.pid, signal.SIGKILL)
            killed.append(source)

    report = rectify_dataset("synthetic", tmp_path / "dask", reader_options=OPTIONS, progress=False,
                             scheduler=cluster.scheduler_address, on_source=kill_one_worker)
    assert killed and report.complete and not report.errors
    same_archive(tmp_path / "local", tmp_path / "dask")
    from distributed import Client
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker


def test_prepare_on_the_cluster(tmp_path, cluster):
    from test_prepare import same_corpus

    from aemg.data.prepare import prepare_dataset
    prepare_dataset("synthetic", tmp_path / "local", reader_options=OPTIONS, workers=1, progress=False)
    prepare_dataset("synthetic", tmp_path / "dask", reader_options=OPTIONS, progress=False,
                    scheduler=cluster.scheduler_address)
    same_corpus(tmp_path / "local", tmp_path / "dask")


def test_tokenize_on_the_cluster_equals_a_local_run(tmp_path, cluster):
    from test_prepare import same_corpus

    from aemg.tokenizer.corpus import tokenize_archive
    rectify_dataset("synthetic", tmp_path / "a", reader_options=OPTIONS, workers=1, progress=False)
    tokenize_archive(tmp_path / "a", tmp_path / "local", workers=1, progress=False)
    report = tokenize_archive(tmp_path / "a", tmp_path / "dask", progress=False,
                              min_channel_samples_per_worker=0,
                              scheduler=cluster.scheduler_address)
    assert report.workers >= 1
    same_corpus(tmp_path / "local", tmp_path / "dask")
    assert (tmp_path / "local" / "plan.json").read_bytes() == (tmp_path / "dask" / "plan.json").read_bytes()


def test_folders_workers_cannot_see_are_named(tmp_path, cluster):
    from distributed import Client

    from aemg.data.distributed import blind_workers
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        assert len(blind_workers(client, tmp_path / "nowhere" / "manifest.json")) == 2
        (tmp_path / "here").write_text("")
        assert blind_workers(client, tmp_path / "here") == []


def test_tune_malloc_only_where_the_trim_threshold_is_set(monkeypatch):
    from aemg.data import distributed
    monkeypatch.setitem(distributed._MALLOC, "tuned", None)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert distributed.tune_malloc() is False and distributed._MALLOC["tuned"] is False
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    assert distributed.tune_malloc() is False  # decided once per process


def test_unreachable_scheduler_fails_before_any_work(tmp_path, monkeypatch):
    from aemg.data import distributed
    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT_S", 2.0)
    with pytest.raises(ConfigError, match=r"scheduler tcp://127\.0\.0\.1:9: unreachable"):
        rectify_dataset("synthetic", tmp_path / "a", reader_options=OPTIONS, progress=False,
                        scheduler="tcp://127.0.0.1:9")
    assert not (tmp_path / "a").exists()


def test_cli_scheduler_option(tmp_path, cluster, capsys, monkeypatch):
    from aemg.cli import main
    from aemg.data import distributed
    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT_S", 2.0)
    args = ["--option", "n_subjects=2", "--option", "repetitions=1", "--no-progress"]
    assert main(["rectify", "synthetic", "-", str(tmp_path / "a"), *args,
                 "--scheduler", cluster.scheduler_address]) == 0
    assert main(["tokenize", str(tmp_path / "a"), str(tmp_path / "c"), "--no-progress",
                 "--scheduler", cluster.scheduler_address]) == 0
    assert main(["prepare", "synthetic", "-", str(tmp_path / "p"), *args,
                 "--scheduler", cluster.scheduler_address]) == 0
    assert main(["rectify", "synthetic", "-", str(tmp_path / "b"), *args, "--scheduler",
                 "tcp://127.0.0.1:9"]) == 2
    assert "tcp://127.0.0.1:9: unreachable" in capsys.readouterr().err


def test_a_bad_file_on_a_worker_is_reported_like_locally(tmp_path, cluster):
    import numpy as np
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        np.savetxt(src / f"s{i}.csv", rng.normal(size=(600, 2)), delimiter=",")
    (src / "s1.csv").write_text("1,2\n3,x\n")
    opts = {"pattern": "s{subject}.csv", "rate": 1000, "device": "ring:2"}
    local = rectify_dataset("generic", tmp_path / "local", root=src, reader_options=opts, workers=1,
                            progress=False)
    remote = rectify_dataset("generic", tmp_path / "dask", root=src, reader_options=opts, progress=False,
                             scheduler=cluster.scheduler_address)
    assert remote.errors == local.errors and len(remote.errors) == 1
    assert "s1.csv" in remote.errors[0]["source"] and "'x' is not a number" in remote.errors[0]["problem"]
    same_archive(tmp_path / "local", tmp_path / "dask")


# -- reliability: the client killed and re-run, a worker killed while it writes a shard, progress ---
CLIENT = """
import sys, time
from aemg.data import prepare as prep
real = prep._GroupStream.add

def add_slowly(self, source, recordings):  # the source before this one is committed (shard_bytes=1;
    # each shard is written in the background and indexed when the next one starts)
    real(self, source, recordings)
    with open(sys.argv[2], "a") as f:
        f.write(source + "\\n")
    time.sleep(0.5)

prep._GroupStream.add = add_slowly
prep.prepare_dataset("synthetic", sys.argv[1], reader_options=%r, progress=False, shard_bytes=1,
                     scheduler=sys.argv[3])
print("finished")
"""


def test_a_client_killed_mid_run_resumes_to_the_local_result(tmp_path, cluster):
    """``aemg prepare`` on the cluster in a subprocess, SIGKILLed once two sources are committed
    (three handed on: the last one's shard may still be in writing); the same run again resumes
    (skips them) and ends with the local run's archive and corpus."""
    import subprocess
    import sys
    import time

    from test_prepare import same_corpus

    from aemg.data.prepare import default_archive, prepare_dataset
    options = OPTIONS
    local = prepare_dataset("synthetic", tmp_path / "local", reader_options=options, workers=1,
                            progress=False, shard_bytes=1)
    done = tmp_path / "committed.txt"
    client = subprocess.Popen([sys.executable, "-c", CLIENT % (options,), str(tmp_path / "dask"), str(done),
                               cluster.scheduler_address], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (done.is_file() and len(done.read_text().split()) >= 3):
            assert client.poll() is None, client.communicate()
            assert time.monotonic() < deadline, "the client committed nothing in 120 s"
            time.sleep(0.05)
        client.send_signal(signal.SIGKILL)
    finally:
        client.kill()
        out, _ = client.communicate()
    assert b"finished" not in out  # killed mid-run
    report = prepare_dataset("synthetic", tmp_path / "dask", reader_options=options, progress=False,
                             shard_bytes=1, scheduler=cluster.scheduler_address)
    assert report.rectify.skipped >= 2 and report.rectify.processed <= local.rectify.processed - 2
    assert report.rectify.complete and not report.rectify.errors
    same_archive(default_archive(tmp_path / "local"), default_archive(tmp_path / "dask"))
    same_corpus(tmp_path / "local", tmp_path / "dask")


def _kill_self_in_first_payload_write(marker: str) -> None:
    """On a worker: the first payload write of any worker (``marker`` created) SIGKILLs its own
    process, half-way through a shard's temporary folder."""
    from aemg.tokenizer.corpus import writer
    real = writer.NpyStream.__dict__.get("_real_write", writer.NpyStream.write)

    def write(self, rows):
        real(self, rows)
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os.kill(os.getpid(), signal.SIGKILL)

    writer.NpyStream._real_write = real
    writer.NpyStream.write = write


def _restore_payload_write() -> None:
    from aemg.tokenizer.corpus import writer
    real = writer.NpyStream.__dict__.get("_real_write")
    if real is not None:
        writer.NpyStream.write = real
        del writer.NpyStream._real_write


@pytest.mark.parametrize("command", ["tokenize", "prepare"])
def test_a_worker_killed_while_writing_a_shard_loses_nothing(tmp_path, cluster, command):
    """A worker SIGKILLs itself in its first shard write (tokenize's group tasks; prepare's
    groups tokenized from memory): the task is re-run, no temporary folder is left, and the corpus
    equals the local run's (shards' tree digest, index, plan)."""
    from distributed import Client
    from test_prepare import same_corpus

    from aemg.data.prepare import prepare_dataset
    from aemg.tokenizer.corpus import tokenize_archive
    rectify_dataset("synthetic", tmp_path / "a", reader_options=OPTIONS, workers=1, progress=False)
    tokenize_archive(tmp_path / "a", tmp_path / "local", workers=1, progress=False)
    marker = str(tmp_path / "killed")
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=60)
        client.run(_kill_self_in_first_payload_write, marker)
        try:
            if command == "tokenize":
                tokenize_archive(tmp_path / "a", tmp_path / "dask", progress=False,
                                 min_channel_samples_per_worker=0, scheduler=cluster.scheduler_address)
            else:
                report = prepare_dataset("synthetic", tmp_path / "dask", reader_options=OPTIONS,
                                         progress=False, scheduler=cluster.scheduler_address)
                assert report.groups_from_memory == report.tokenize.groups  # on the workers
        finally:
            client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker
            client.run(_restore_payload_write)
    assert os.path.exists(marker)  # a worker was killed mid-shard
    assert not [p for p in (tmp_path / "dask" / "shards").iterdir() if p.name.endswith(".tmp")]
    same_corpus(tmp_path / "local", tmp_path / "dask")
    if command == "tokenize":
        plans = [(tmp_path / c / "plan.json").read_bytes() for c in ("local", "dask")]
        assert plans[0] == plans[1]


def test_progress_bars_count_every_item_over_the_cluster(tmp_path, cluster, monkeypatch):
    """The rectify bar counts every source and the tokenize bar every channel-sample, with the work
    on the cluster."""
    import io

    import tqdm

    from aemg.data import pipeline
    from aemg.data.readers import get_reader
    from aemg.tokenizer.corpus import tokenize_archive, writer
    bars = {}

    def progress_bar(enabled, *, total, desc, unit, initial=0, **options):
        assert enabled
        bars[desc] = tqdm.tqdm(total=total, initial=initial, desc=desc, unit=unit, file=io.StringIO(),
                               mininterval=0, **options)
        return bars[desc]

    monkeypatch.setattr(pipeline, "progress_bar", progress_bar)
    monkeypatch.setattr(writer, "progress_bar", progress_bar)
    rect = rectify_dataset("synthetic", tmp_path / "a", reader_options=OPTIONS, progress=True,
                           scheduler=cluster.scheduler_address)
    tok = tokenize_archive(tmp_path / "a", tmp_path / "c", progress=True, min_channel_samples_per_worker=0,
                           scheduler=cluster.scheduler_address)
    n_sources = len(get_reader("synthetic", **OPTIONS).sources())
    assert rect.processed == n_sources and tok.workers == 2
    assert bars["rectify"].n == bars["rectify"].total == n_sources
    assert bars["tokenize"].n == bars["tokenize"].total == tok.channel_samples > 0
    text = bars["rectify"].fp.getvalue()
    assert f"{n_sources}/{n_sources}" in text and "100%" in text


def test_prepare_progress_bars_count_every_group_over_the_cluster(tmp_path, cluster, monkeypatch):
    """prepare on the cluster: the in-memory tokenize bar counts every group tokenized on the
    workers while rectifying, the archive pass's bar every group (those from memory from the start)."""
    from test_prepare import channel_samples, check_bars, record_bars

    from aemg.data.prepare import prepare_dataset
    from aemg.data.readers import get_reader
    bars = record_bars(monkeypatch)
    report = prepare_dataset("synthetic", tmp_path / "c", reader_options=OPTIONS, progress=True,
                             scheduler=cluster.scheduler_address)
    assert report.groups_from_memory == report.tokenize.groups == OPTIONS["n_subjects"]
    check_bars(bars, report, len(get_reader("synthetic", **OPTIONS).sources()),
               in_memory=channel_samples(report.archive))


def test_tasks_are_cut_by_count_and_by_file_bytes(tmp_path, monkeypatch):
    """A task holds at most MAX_CHUNK sources, about 1/(8 x workers) of them, and at most
    CHUNK_BYTES of their files (a larger file alone); order and every source are kept."""
    from aemg.data import distributed
    monkeypatch.setattr(distributed, "CHUNK_BYTES", 1000)
    names = [f"f{i:03d}" for i in range(200)]
    for i, n in enumerate(names):
        (tmp_path / n).write_bytes(b"x" * (3000 if i == 7 else 300))
    runner = distributed.DaskRunner("tcp://nowhere:1", None, (), root=tmp_path)
    runner.workers = 2
    chunks = runner.chunks(names)
    assert [s for c in chunks for s in c] == names
    assert ["f007"] in chunks  # over CHUNK_BYTES: alone
    assert max(len(c) for c in chunks) == 3  # 3 x 300 bytes <= 1000 < 4 x 300
    monkeypatch.setattr(distributed, "CHUNK_BYTES", 1 << 30)
    assert max(len(c) for c in runner.chunks(names)) == 200 // 16
    assert max(len(c) for c in runner.chunks(names * 10)) == distributed.MAX_CHUNK
    runner.root = tmp_path / "missing"  # sizes unknown: by count only
    assert max(len(c) for c in runner.chunks(names)) == 200 // 16
