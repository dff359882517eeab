"""The rectified archive: format round trip, bad sources, interruption and resume, selection."""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from aemg.data import Recording
from aemg.data.archive import (
    ERRORS,
    INDEX,
    MANIFEST,
    ArchiveWriter,
    open_archive,
    read_group,
    read_shard,
    write_shard,
)
from aemg.data.pipeline import RectifyReport, rectify_dataset, scale_sample
from aemg.data.readers import DatasetInfo, Reader
from aemg.data.rectify import StandardSpace, rectify
from aemg.errors import ConfigError, DataError

CLASSES = ("rest", "fist", "open")


class FakeReader(Reader):
    """``n`` sources ``s00..``, two 8-channel 200 Hz recordings each (one with per-sample labels).

    ``bad``: sources whose read raises DataError; after ``interrupt_after`` reads, the next read
    raises KeyboardInterrupt (a Ctrl-C); after ``kill_after`` reads, the next one kills the process
    (kill -9). The amplitude-scale estimate reads 8 sources first (all when n <= 8; of 12:
    s00, s02, s03, s05, s06, s08, s09, s11) and the run does not read them again.
    """

    info = DatasetInfo(name="fake", device="myo", channels=8, rate=200.0, subjects=3, classes=CLASSES,
                       units="int8", description="test data")
    needs_root = False

    def __init__(self, root=None, n=6, bad=(), interrupt_after=None, kill_after=None, duplicate=False):
        super().__init__(root)
        self.n, self.bad, self.duplicate = n, set(bad), duplicate
        self.interrupt_after, self.kill_after, self.reads = interrupt_after, kill_after, 0
        self._options = {"n": n}  # what Reader.options reports (get_reader sets it for registered readers)

    def sources(self):
        return [f"s{i:02d}" for i in range(self.n)]

    def read(self, source):
        self.reads += 1
        if self.interrupt_after is not None and self.reads > self.interrupt_after:
            raise KeyboardInterrupt
        if self.kill_after is not None and self.reads > self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        if source in self.bad:
            raise DataError(source, "row 3: 'abc' is not a number")
        i = int(source[1:])
        rng = np.random.default_rng(i)
        t = 600 + 7 * i
        burst = np.where((np.arange(t) // 150) % 2 == 1, 8.0, 1.0)
        data = np.round(rng.normal(size=(8, t)) * burst).astype(np.int16)
        labels = np.where(burst > 1, 1 + i % 2, 0).astype(np.int32)
        session = "0" if self.duplicate else str(i)
        common = dict(rate=200.0, device="myo", units="int8", subject=str(i % 3), session=session,
                      dataset="fake", classes=CLASSES, source=source)
        return [Recording(data, labels=labels, trial="0", meta={"rep": i}, **common),
                Recording(data[:, : t // 2] * 2, label=2, trial="1", **common)]


def expected(reader, space, scale):
    """What the archive must hold: every recording rectified with the manifest's scale."""
    return [rectify(rec, space, amplitude_scale=scale) for s in reader.sources() for rec in reader.read(s)]


def assert_same(a: Recording, b: Recording):
    assert np.array_equal(a.data, b.data) and a.data.dtype == np.float32
    assert (a.labels is None) == (b.labels is None)
    if a.labels is not None:
        assert np.array_equal(a.labels, b.labels) and a.labels.dtype == np.int32
    assert a.header() == b.header()
    assert a.device == b.device


SPACE = StandardSpace(rate=400.0, channels=8)
SMALL_SHARD = 60_000  # bytes: about two sources per shard


def test_roundtrip_index_and_selection(tmp_path):
    reader = FakeReader(n=6)
    report = rectify_dataset(reader, tmp_path / "a", SPACE, workers=1, progress=False,
                             shard_bytes=SMALL_SHARD)
    assert isinstance(report, RectifyReport)
    assert (report.sources, report.processed, report.skipped, report.recordings) == (6, 6, 0, 12)
    assert report.complete and report.errors == [] and report.samples_in > 0 and report.samples_per_s > 0

    archive = open_archive(tmp_path / "a")
    want = expected(reader, SPACE, archive.amplitude_scale)
    assert len(archive) == len(want) == 12 and archive.complete
    for got, ref in zip(archive, want):
        assert_same(got, ref)
    assert_same(archive[-1], want[-1])
    assert_same(archive.get("fake/1/1/0"), want[2])
    with pytest.raises(KeyError):
        archive.get("fake/9/9/9")
    assert report.samples_out == archive.n_samples == sum(r.n_samples for r in want)

    m = archive.manifest
    assert m["reader"] == "fake" and m["reader_options"] == {"n": 6} and m["source_root"] is None
    assert archive.space == SPACE and m["amplitude_scale"] > 0 and m["aemg_version"]
    shards = {row["shard"] for row in archive.index}
    assert len(shards) >= 3 and all((tmp_path / "a" / s).is_file() for s in shards)
    row = archive.index[1]
    assert row["key"] == "fake/0/0/1" and row["label"] == 2 and row["n_channels"] == 8
    assert row["source"] == "s00" and row["classes"] == list(CLASSES) and row["rate"] == 400.0

    assert archive.subjects() == ["0", "1", "2"]
    sub = archive.select(subject=1)
    assert [r.key for r in sub] == ["fake/1/1/0", "fake/1/1/1", "fake/1/4/0", "fake/1/4/1"]
    assert len(archive.select(subject=["0", "2"], label=2)) == 4
    assert len(archive.select(n_samples=lambda n: n > 1300)) == sum(r.n_samples > 1300 for r in want)
    assert sub.select(trial="1").keys() == ["fake/1/1/1", "fake/1/4/1"]
    with pytest.raises(ConfigError, match="unknown field"):
        archive.select(colour="red")
    archive.close()


def test_workers_give_the_same_archive(tmp_path):
    reader = FakeReader(n=5)
    rectify_dataset(reader, tmp_path / "one", SPACE, workers=1, progress=False, shard_bytes=SMALL_SHARD)
    rectify_dataset(reader, tmp_path / "two", SPACE, workers=2, progress=False, shard_bytes=SMALL_SHARD)
    one, two = open_archive(tmp_path / "one"), open_archive(tmp_path / "two")
    assert one.index == two.index and one.amplitude_scale == two.amplitude_scale
    for a, b in zip(one, two):
        assert_same(a, b)


def test_bad_source_is_logged_and_skipped(tmp_path, caplog):
    reader = FakeReader(n=5, bad={"s02"})
    report = rectify_dataset(reader, tmp_path / "a", SPACE, workers=1, progress=False)
    assert report.errors == [{"source": "s02", "problem": "row 3: 'abc' is not a number"}]
    assert any("s02" in r.getMessage() and "not a number" in r.getMessage() for r in caplog.records)
    archive = open_archive(tmp_path / "a")
    assert len(archive) == 8 and "s02" not in {row["source"] for row in archive.index}
    assert archive.errors == report.errors and archive.complete
    lines = (tmp_path / "a" / ERRORS).read_text().splitlines()
    assert [json.loads(line) for line in lines] == report.errors
    # the file gets fixed: a re-run retries the failed source only
    report = rectify_dataset(FakeReader(n=5), tmp_path / "a", SPACE, workers=1, progress=False)
    assert (report.processed, report.skipped, report.recordings, report.errors) == (1, 4, 2, [])
    archive = open_archive(tmp_path / "a")
    assert len(archive) == 10 and archive.errors == [] and (tmp_path / "a" / ERRORS).read_text() == ""


def test_stop_on_error_keeps_what_was_written(tmp_path):
    with pytest.raises(DataError, match="s03: row 3"):
        rectify_dataset(FakeReader(n=6, bad={"s03"}), tmp_path / "a", SPACE, workers=1, progress=False,
                        on_error="stop")
    archive = open_archive(tmp_path / "a", allow_partial=True)
    assert not archive.complete and len(archive) == 6
    assert [e["source"] for e in archive.errors] == ["s03"]
    for got, ref in zip(archive, expected(FakeReader(n=3), SPACE, archive.amplitude_scale)):
        assert_same(got, ref)


def test_interrupt_then_resume(tmp_path):
    out = tmp_path / "a"
    with pytest.raises(KeyboardInterrupt):  # while reading s07, after s00..s06
        rectify_dataset(FakeReader(n=12, interrupt_after=8 + 2), out, SPACE, workers=1, progress=False,
                        shard_bytes=10**9)
    archive = open_archive(out, allow_partial=True)  # what was read before Ctrl-C is committed
    assert not archive.complete and len(archive) == 14
    report = rectify_dataset(FakeReader(n=12), out, SPACE, workers=1, progress=False, shard_bytes=10**9)
    assert (report.skipped, report.processed, report.recordings) == (7, 5, 10) and report.complete
    archive = open_archive(out)
    want = expected(FakeReader(n=12), SPACE, archive.amplitude_scale)
    assert len(archive) == 24 and archive.complete
    for got, ref in zip(archive, want):
        assert_same(got, ref)


def test_a_run_killed_before_its_first_shard_leaves_an_empty_incomplete_archive(tmp_path, monkeypatch):
    """No index is written before the first commit: a folder holding only the manifest reads as an
    empty, incomplete archive (open_archive with allow_partial, verify) and a re-run finishes it."""
    import aemg.data.archive as archive_module
    from aemg.data.archive import verify_archive

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies while writing its first shard

    out = tmp_path / "a"
    with monkeypatch.context() as m:
        m.setattr(archive_module, "write_shard", crash)
        with pytest.raises(KeyboardInterrupt):
            rectify_dataset(FakeReader(n=4), out, SPACE, workers=1, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "shards"]
    assert not any((out / "shards").iterdir())
    with pytest.raises(DataError, match="incomplete.*0 sources done"):
        open_archive(out)
    partial = open_archive(out, allow_partial=True)
    assert len(partial) == 0 and partial.errors == [] and not partial.complete
    problems, _ = verify_archive(out)
    assert len(problems) == 1 and "incomplete" in problems[0]
    report = rectify_dataset(FakeReader(n=4), out, SPACE, workers=1, progress=False)
    assert report.complete and report.skipped == 0 and report.processed == 4
    archive = open_archive(out)
    assert archive.complete and len(archive) == 8 and (out / ERRORS).read_text() == ""
    for got, ref in zip(archive, expected(FakeReader(n=4), SPACE, archive.amplitude_scale)):
        assert_same(got, ref)


def test_precision_is_recorded_and_a_resume_cannot_mix_the_two(tmp_path):
    out = tmp_path / "a"
    rectify_dataset(FakeReader(n=2), out, SPACE, workers=1, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "float32"  # the default
    assert {r.meta["rectify"]["precision"] for r in open_archive(out)} == {"float32"}
    with pytest.raises(ConfigError, match=r'precision: archive has "float32", now "float64".*--precision'):
        rectify_dataset(FakeReader(n=2), out, SPACE, workers=1, progress=False, precision="float64")
    with pytest.raises(ConfigError, match="precision.*float16"):
        rectify_dataset(FakeReader(n=2), tmp_path / "b", SPACE, workers=1, progress=False,
                        precision="float16")
    # an archive made before the field was made in float64: resumable only as float64
    old = tmp_path / "old"
    rectify_dataset(FakeReader(n=2), old, SPACE, workers=1, progress=False, precision="float64")
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["precision"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match=r'precision: archive has "float64", now "float32"'):
        rectify_dataset(FakeReader(n=2), old, SPACE, workers=1, progress=False)
    report = rectify_dataset(FakeReader(n=2), old, SPACE, workers=1, progress=False, precision="float64")
    assert report.skipped == 2 and report.complete
    # the two paths give nearly, not exactly, the same samples
    a, b = open_archive(out), open_archive(old)
    for x, y in zip(a, b):
        assert not np.array_equal(x.data, y.data)
        np.testing.assert_allclose(x.data, y.data, rtol=0, atol=1e-4 * float(np.abs(y.data).max()))


def test_resume_refuses_other_arguments(tmp_path):
    out = tmp_path / "a"
    rectify_dataset(FakeReader(n=2), out, SPACE, workers=1, progress=False)
    with pytest.raises(ConfigError, match="other settings.*space"):
        rectify_dataset(FakeReader(n=2), out, StandardSpace(rate=300.0, channels=8), workers=1,
                        progress=False)
    with pytest.raises(ConfigError, match="reader_options"):
        rectify_dataset(FakeReader(n=3), out, SPACE, workers=1, progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an aemg archive"):
        rectify_dataset(FakeReader(n=2), tmp_path / "other", SPACE, workers=1, progress=False)
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["notes.txt"]
    with pytest.raises(ConfigError, match="on_error"):
        rectify_dataset(FakeReader(n=2), out, SPACE, on_error="ignore")


KILL_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_archive import FakeReader, SPACE, SMALL_SHARD
from aemg.data.pipeline import rectify_dataset
rectify_dataset(FakeReader(n=12, kill_after=8 + 3), {out!r}, SPACE, workers=1, progress=False,
                shard_bytes=SMALL_SHARD)
"""


def test_kill9_leaves_a_valid_archive_and_resumes(tmp_path):
    out = tmp_path / "a"
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parent), out=str(out))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    archive = open_archive(out, allow_partial=True)
    committed = len(archive)
    assert not archive.complete and 0 < committed < 24
    want = expected(FakeReader(n=12), SPACE, archive.amplitude_scale)
    for got, ref in zip(archive, want):
        assert_same(got, ref)
    # debris of a crash during a commit: a truncated temp shard and a renamed shard not yet indexed
    shard_dir = out / "shards"
    first = shard_dir / "000001.h5"
    (shard_dir / "000099.h5.tmp").write_bytes(first.read_bytes()[:1000])
    shutil.copy(first, shard_dir / "000098.h5")  # past every committed shard
    (out / (INDEX + ".tmp")).write_text('{"trunc')
    report = rectify_dataset(FakeReader(n=12), out, SPACE, workers=1, progress=False, shard_bytes=SMALL_SHARD)
    assert report.skipped == committed // 2 and report.complete
    leftovers = sorted(p.name for p in shard_dir.iterdir())
    assert "000099.h5.tmp" not in leftovers and not (out / (INDEX + ".tmp")).exists()
    archive = open_archive(out)
    assert {row["shard"].split("/")[1] for row in archive.index} == set(leftovers)
    assert len(archive) == 24
    for got, ref in zip(archive, want):
        assert_same(got, ref)


def test_duplicate_keys_are_an_error(tmp_path):
    report = rectify_dataset(FakeReader(n=3, duplicate=True), tmp_path / "a", SPACE, workers=1,
                             progress=False)
    # s01 and s02 repeat s00's keys only when subject also repeats: subjects are 0, 1, 2 -> unique
    assert report.errors == []
    report = rectify_dataset(FakeReader(n=4, duplicate=True), tmp_path / "b", SPACE, workers=1,
                             progress=False)
    assert [e["source"] for e in report.errors] == ["s03"]
    assert "not unique (also from s00)" in report.errors[0]["problem"]
    assert len(open_archive(tmp_path / "b")) == 6


def edge_recordings():
    return [Recording(np.zeros((3, 0), np.float32), 100.0, "ring:3", subject="a", trial="empty"),
            Recording(np.arange(3 * 5000, dtype=np.float32).reshape(3, 5000)[:, ::2], 100.0, "ring:3",
                      labels=np.arange(2500) % 2, trial="strided", classes=("x", "y")),
            Recording(np.ones((3, 4)), 100.0, "ring:3", times=[0.0, 0.01, 0.01, 0.5], trial="irregular",
                      meta={"gain": np.float64(2.5), "ids": [1, 2]}),
            Recording(np.full((8, 1), -3, np.int16), 200.0, "myo", units="int8", trial="one sample",
                      labels=[1], classes=("a", "b"), label=1),
            Recording(np.ones((3, 7), np.float32), 100.0, "ring:3", times=np.arange(7) / 100.0,
                      labels=np.zeros(7, np.int32), trial="both")]


@pytest.mark.parametrize("compression", [None, "lzf"])
def test_shard_roundtrip_edge_cases(tmp_path, compression):
    recs = edge_recordings()
    path = tmp_path / "000001.h5"
    write_shard(path, recs, compression=compression)
    assert not path.with_name(path.name + ".tmp").exists()
    with h5py.File(path, "r") as f:
        assert f.attrs["version"] == 2 and f["samples"].shape == (sum(r.data.size for r in recs),)
        assert (f["samples"].compression == compression) and f["layout"].shape == (len(recs), 5)
    back = read_shard(path)
    assert len(back) == len(recs)
    for got, ref in zip(back, recs):
        assert_same(got, ref)
        assert (got.times is None) == (ref.times is None)
        if ref.times is not None:
            assert np.array_equal(got.times, ref.times) and got.times.dtype == np.float64
    assert back[0].n_samples == 0 and back[2].meta == {"gain": 2.5, "ids": [1, 2]}
    assert back[3].device.name == "myo" and back[1].device is back[0].device  # devices stored once
    write_shard(tmp_path / "empty.h5", [])
    assert read_shard(tmp_path / "empty.h5") == []
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="unreadable shard"):
        read_shard(tmp_path / "bad.h5")


def test_read_many_equals_single_reads(tmp_path):
    recs = edge_recordings()
    writer = ArchiveWriter(tmp_path / "a", {"reader": "x", "reader_options": {}, "source_root": None,
                                            "space": {}, "shard_bytes": 100})
    big = Recording(np.random.default_rng(0).normal(size=(3, 100_000)), 100.0, "ring:3", trial="big")
    for i, rec in enumerate(recs * 2):  # small shards
        writer.add(f"f{i}", [rec.with_data(rec.data, subject=str(i))])
    writer.add("fbig", [recs[1].with_data(recs[1].data, subject="b"), big,  # a > 1 MiB gap
                        recs[4].with_data(recs[4].data, subject="b")])
    writer.finish()
    archive = open_archive(tmp_path / "a")
    assert 3 <= len({r["shard"] for r in archive.index}) < len(archive)
    order = [7, 0, 3, 3, 9, 1, 2, 8, 4, 5, 6, 12, 10, 9, 10]
    many = archive.read_many(order)
    for i, got in zip(order, many):
        assert_same(got, archive[i])
    assert [r.key for r in archive] == archive.keys()
    assert archive.read_many([]) == []
    view = archive.select(trial=["strided", "both"])
    assert [r.key for r in view.read_many([1, 0])] == [view.keys()[1], view.keys()[0]]
    with pytest.raises(IndexError):
        archive.read_many([99])
    # through a reused buffer: the same recordings; the next read overwrites the buffer; only the
    # first run of neighbours goes through it (the big recording's gap makes a second run)
    from aemg.data.archive import ReadBuffer
    buf = ReadBuffer()
    fbig = [i for i, r in enumerate(archive.index) if r["subject"] == "b" or r["trial"] == "big"]
    for rows in ([0], [3, 4], fbig, list(range(len(archive)))):
        got = archive.read_many(rows, buffer=buf)
        for i, rec in zip(rows, got):
            assert_same(rec, archive[i])
    first = archive.read_many([fbig[0]], buffer=buf)[0]
    second = archive.read_many([fbig[-1]], buffer=buf)[0]
    assert np.shares_memory(first.data, second.data)  # the second read reused (overwrote) it
    archive.close()


def test_read_buffer_with_compressed_and_empty_shards(tmp_path):
    from aemg.data.archive import ReadBuffer, _ShardTable
    recs = edge_recordings()
    for compression in (None, "lzf"):
        path = tmp_path / f"{compression}.h5"
        write_shard(path, recs, compression=compression)
        with h5py.File(path, "r") as f:
            table = _ShardTable(f, str(path))
            assert (table._samples_at is None) == (compression is not None)  # compressed: h5py path
            got = table.read_run(list(range(len(recs))), str(path), ReadBuffer())
            table.close()
        for g, ref in zip(got, recs):
            assert_same(g, ref)
    path = tmp_path / "short.h5"
    write_shard(path, recs[1:2])
    with h5py.File(path, "r") as f:
        table = _ShardTable(f, str(path))
    os.truncate(path, table._samples_at + 100)  # the file ends inside the samples
    with pytest.raises(DataError, match="ends early"):
        table.read_run([0], str(path), ReadBuffer())
    table.close()


def test_reads_version_1_archives(tmp_path):
    """Archives written before the contiguous format (one HDF5 group per recording) still read."""
    recs = edge_recordings()[:3]
    out = tmp_path / "v1"
    (out / "shards").mkdir(parents=True)
    rows = []
    with h5py.File(out / "shards" / "000001.h5", "w") as f:
        f.attrs["version"] = 1
        for i, rec in enumerate(recs):
            grp = f.create_group(f"{i:06d}")
            grp.create_dataset("samples", data=rec.data)
            if rec.labels is not None:
                grp.create_dataset("labels", data=rec.labels)
            if rec.times is not None:
                grp.create_dataset("times", data=rec.times)
            grp.attrs["header"] = json.dumps(rec.header(), default=float)
            rows.append({"key": rec.key, "subject": rec.subject, "n_samples": rec.n_samples,
                         "shard": "shards/000001.h5", "group": f"{i:06d}"})
    (out / MANIFEST).write_text(json.dumps({"format": "aemg-archive", "version": 1}))
    (out / INDEX).write_text(json.dumps({"complete": True, "sources": [], "recordings": rows}))
    archive = open_archive(out)
    for got, ref in zip(list(archive) + archive.read_many([0, 1, 2]), recs * 2):
        assert_same(got, ref)
    with h5py.File(out / "shards" / "000001.h5", "r") as f:
        assert_same(read_group(f["000001"], "000001"), recs[1])


def test_writer_commits_sources_without_recordings(tmp_path):
    writer = ArchiveWriter(tmp_path / "a", {"reader": "x", "reader_options": {}, "source_root": None,
                                            "space": {}, "amplitude_scale": 1.0})
    assert writer.add("f1", error="broken") == "broken"
    assert writer.commit() is None  # no recordings: no shard, but the index records the error
    assert list((tmp_path / "a" / "shards").iterdir()) == []
    state = json.loads((tmp_path / "a" / INDEX).read_text())
    assert state["sources"] == [{"source": "f1", "recordings": 0, "error": "broken"}]
    assert json.loads((tmp_path / "a" / MANIFEST).read_text())["format"] == "aemg-archive"


def test_open_archive_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        open_archive(tmp_path / "missing")
    with pytest.raises(DataError, match="no manifest.json"):
        open_archive(tmp_path)
    (tmp_path / MANIFEST).write_text('{"format": "aemg-archive", "version": 99}')
    with pytest.raises(DataError, match="version 99"):
        open_archive(tmp_path)
    (tmp_path / MANIFEST).write_text('{"format": ')
    with pytest.raises(DataError, match="corrupt JSON"):
        open_archive(tmp_path)


def test_scale_sample_is_spread_and_deterministic():
    sources = [f"f{i}" for i in range(100)]
    assert scale_sample(sources, 4) == ["f0", "f33", "f66", "f99"]
    assert scale_sample(sources[:3], 8) == sources[:3] and scale_sample([], 8) == []


class IrregularReader(FakeReader):
    """Like FakeReader, but every recording is an irregular log at its own rate (90 + 5 i Hz)."""

    def read(self, source):
        i = int(source[1:])
        rng = np.random.default_rng(i)
        native = 90.0 + 5 * i
        t = np.sort(rng.uniform(0, 4.0, int(4.0 * native)))
        x = rng.normal(size=(8, t.size)).astype(np.float32) * 20
        yield Recording(x, 200.0, "myo", units="int8", subject=str(i % 3), trial=f"t{i}", times=t,
                        source=source, dataset="fake", classes=CLASSES)


def test_irregular_dataset_gets_one_native_rate(tmp_path):
    rectify_dataset(IrregularReader(n=4), tmp_path / "a", SPACE, workers=1, progress=False)
    arch = open_archive(tmp_path / "a")
    native = arch.manifest["native_rate"]
    bands = {tuple(rec.meta["rectify"]["band"]) for rec in arch}
    assert len(bands) == 1 and list(bands)[0][1] == pytest.approx(0.45 * native)
    assert all(rec.meta["rectify"]["native_rate"] == native for rec in arch)
    assert 90.0 <= native < 105.0
    # a uniformly sampled dataset has none
    rectify_dataset(FakeReader(n=2), tmp_path / "b", SPACE, workers=1, progress=False)
    assert "native_rate" not in open_archive(tmp_path / "b").manifest


def test_a_run_writes_each_file_durably_no_more_than_needed(tmp_path, monkeypatch):
    """One shard's run: the manifest once, the index and errors.jsonl once each, with the (final)
    commit, nothing at creation; each write durable (fsynced, renamed, folder fsynced): 8 fsyncs."""
    import aemg.data.archive as archive_module

    writes, fsyncs = [], []

    def counting(path, data, **kw):
        writes.append((Path(path).name, kw.get("durable", True)))
        return real(path, data, **kw)

    def fsync(fd):
        fsyncs.append(fd)
        return real_fsync(fd)

    real, real_fsync = archive_module.atomic_write, os.fsync
    monkeypatch.setattr(archive_module, "atomic_write", counting)
    monkeypatch.setattr(os, "fsync", fsync)
    rectify_dataset(FakeReader(n=4), tmp_path / "a", SPACE, workers=1, progress=False)
    names = [n for n, _ in writes]
    assert names == [MANIFEST, INDEX, ERRORS]
    assert all(durable for _, durable in writes)
    # each file and its folder: the manifest, the shard, the index, errors.jsonl
    assert len(fsyncs) == 8
    state = json.loads((tmp_path / "a" / INDEX).read_text())
    assert state["complete"] and len(state["shards"]) == 1 and (tmp_path / "a" / ERRORS).read_text() == ""
    # errors.jsonl is written again when its text changes: a failed source, then that source fixed
    writes.clear(), fsyncs.clear()
    rectify_dataset(FakeReader(n=6, bad={"s04"}), tmp_path / "b", SPACE, workers=1, progress=False,
                    shard_bytes=1)  # a shard per good source (s04's error goes with s05's), then complete
    assert [n for n, _ in writes] == [MANIFEST] + [INDEX, ERRORS] + [INDEX] * 3 + [INDEX, ERRORS] + [INDEX]
    assert len(fsyncs) == 2 * (1 + 5 + 6 + 2)  # manifest, shards, index writes, errors.jsonl writes
    lines = (tmp_path / "b" / ERRORS).read_text().splitlines()
    assert [json.loads(line)["source"] for line in lines] == ["s04"]
    writes.clear()
    rectify_dataset(FakeReader(n=6), tmp_path / "b", SPACE, workers=1, progress=False)
    assert [n for n, _ in writes] == [INDEX, ERRORS] and (tmp_path / "b" / ERRORS).read_text() == ""


def test_the_scale_pass_gives_the_dataset_estimate(tmp_path):
    """The amplitude scale in the manifest is estimate_amplitude_scale of the sampled sources'
    recordings (the pass rectifies each of them once)."""
    from aemg.data.rectify import estimate_amplitude_scale

    reader = FakeReader(n=12)
    rectify_dataset(reader, tmp_path / "a", SPACE, workers=1, progress=False)
    sampled = [rec for s in scale_sample(reader.sources()) for rec in FakeReader(n=12).read(s)]
    assert json.loads((tmp_path / "a" / MANIFEST).read_text())["amplitude_scale"] == \
        estimate_amplitude_scale(sampled, SPACE)


def test_the_scale_pass_sources_are_read_once_and_equal_a_plain_rectify(tmp_path):
    """The 8 sources the amplitude-scale pass samples are finished from its results (not read
    again); the archive equals rectify() of every recording, with 1 and 2 workers."""
    reader = FakeReader(n=12)
    rectify_dataset(reader, tmp_path / "a", SPACE, workers=1, progress=False)
    assert reader.reads == 12
    archive = open_archive(tmp_path / "a")
    want = expected(FakeReader(n=12), SPACE, archive.amplitude_scale)
    assert len(archive) == len(want) == 24
    for got, ref in zip(archive, want):
        assert_same(got, ref)
        assert got.meta["rectify"]["space"] == SPACE.to_dict()  # the run's space, not the pass's
    rectify_dataset(FakeReader(n=12), tmp_path / "b", SPACE, workers=2, progress=False)
    for got, ref in zip(open_archive(tmp_path / "b"), want):
        assert_same(got, ref)


def test_background_commits_write_the_same_archive_and_index_a_shard_when_the_next_starts(tmp_path):
    """``background=True`` (rectify's writer): each full buffer's shard is written by a thread and
    indexed when the next one starts (or at commit / finish / wait); the folder ends byte for byte
    equal to the synchronous writer's but for the manifest's creation time."""
    from test_distributed import same_archive
    recs = edge_recordings()
    meta = {"reader": "x", "reader_options": {}, "source_root": None, "space": {}, "shard_bytes": 100}
    indexed = {}

    def sources_indexed(folder):  # no index before the first shard is committed
        index = folder / INDEX
        return [s["source"] for s in json.loads(index.read_text())["sources"]] if index.is_file() else []

    for background in (False, True):
        folder = tmp_path / f"a{background}"
        writer = ArchiveWriter(folder, meta, background=background)
        for i, rec in enumerate(recs * 2):
            writer.add(f"f{i}", [rec.with_data(rec.data, subject=str(i))])
            if i == 3:
                indexed[background] = sources_indexed(folder)
                if background:  # the last full shard is still in writing; then it is indexed
                    sync = indexed[False]
                    assert len(indexed[True]) < len(sync) and indexed[True] == sync[:len(indexed[True])]
                    writer.wait()
                    assert sources_indexed(folder) == sync
        writer.add("f-bad", error="broken")
        writer.finish()
    assert indexed[False]  # shards were committed by then
    same_archive(tmp_path / "aFalse", tmp_path / "aTrue")


def test_a_failed_background_shard_raises_at_the_next_step_and_is_not_indexed(tmp_path, monkeypatch):
    from aemg.data import archive as arch
    recs = edge_recordings()
    meta = {"reader": "x", "reader_options": {}, "source_root": None, "space": {}, "shard_bytes": 1}
    writer = ArchiveWriter(tmp_path / "a", meta, background=True)
    writer.add("f0", [recs[1]])
    writer.wait()
    real = arch._write_and_digest

    def full_disk(path, recordings, compression):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(arch, "_write_and_digest", full_disk)
    writer.add("f1", [recs[2].with_data(recs[2].data, subject="x")])  # handed to the thread
    monkeypatch.setattr(arch, "_write_and_digest", real)
    with pytest.raises(OSError, match="No space left"):
        writer.add("f2", [recs[3].with_data(recs[3].data, subject="y")])
    writer.finish()  # f2 (still buffered) is written; f1 is not in the index: a resumed run reads it again
    state = json.loads((tmp_path / "a" / INDEX).read_text())
    assert [s["source"] for s in state["sources"]] == ["f0", "f2"]
    assert len(open_archive(tmp_path / "a")) == 2
