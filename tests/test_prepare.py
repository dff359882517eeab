"""``aemg prepare``: the corpus of ``rectify`` then ``tokenize``, in one pass, resumable."""
import json
import os

import pytest
from helpers import tree_digest

from aemg.cli import main
from aemg.data import prepare as prep
from aemg.data.pipeline import rectify_dataset
from aemg.data.prepare import default_archive, prepare_dataset
from aemg.errors import ConfigError, DataError
from aemg.tokenizer.corpus import open_corpus, tokenize_archive
from aemg.tokenizer.corpus import tokenize_group as _REAL_TOKENIZE_GROUP

OPTIONS = {"n_subjects": 3, "trial_s": 1.5, "repetitions": 2, "n_gestures": 2}


def two_step(tmp_path, reader="synthetic", options=OPTIONS, root=None, **kw):
    rectify_dataset(reader, tmp_path / "a2", root=root, reader_options=options, workers=1, progress=False,
                    **kw)
    tokenize_archive(tmp_path / "a2", tmp_path / "c2", workers=1, progress=False)
    return tmp_path / "c2"


def same_corpus(one, two):
    """Shards and index byte for byte; plan/corpus JSON equal but for the archive they name."""
    d1, d2 = tree_digest(one / "shards"), tree_digest(two / "shards")
    assert d1 == d2 and d1
    assert (one / "sentences.jsonl").read_bytes() == (two / "sentences.jsonl").read_bytes()
    for name in ("plan.json", "corpus.json"):
        j1, j2 = (json.loads((c / name).read_text()) for c in (one, two))
        j1.pop("archive"), j2.pop("archive")
        j1.pop("aemg_version", None), j2.pop("aemg_version", None)
        assert j1 == j2, name


def test_prepare_equals_rectify_then_tokenize(tmp_path):
    ref = two_step(tmp_path)
    report = prepare_dataset("synthetic", tmp_path / "c1", reader_options=OPTIONS, workers=1, progress=False)
    same_corpus(tmp_path / "c1", ref)
    assert report.groups_from_memory == report.tokenize.groups and report.groups_from_archive == 0
    assert (default_archive(tmp_path / "c1") / "index.json").is_file()
    assert not (default_archive(tmp_path / "c1") / prep.STAGING).exists()
    assert len(open_corpus(tmp_path / "c1")) == len(open_corpus(ref))


def tokenize_group_noting_pid(*args):
    """``tokenize_group``, noting the process it runs in (forked pool workers inherit the patch)."""
    with open(os.environ["AEMG_TEST_PIDS"], "a") as f:
        f.write(f"{os.getpid()}\n")
    return _REAL_TOKENIZE_GROUP(*args)


def test_prepare_two_workers_and_no_archive(tmp_path, monkeypatch):
    import aemg.tokenizer.corpus as corpus
    ref = two_step(tmp_path)
    monkeypatch.setenv("AEMG_TEST_PIDS", str(tmp_path / "pids"))
    monkeypatch.setattr(corpus, "tokenize_group", tokenize_group_noting_pid)
    report = prepare_dataset("synthetic", tmp_path / "c1", reader_options=OPTIONS, workers=2, progress=False,
                             keep_archive=False)
    same_corpus(tmp_path / "c1", ref)
    assert report.archive is None and not default_archive(tmp_path / "c1").exists()
    # every group was tokenized from memory, in the pool's workers (not in this process)
    pids = (tmp_path / "pids").read_text().split()
    assert report.groups_from_memory == report.tokenize.groups == len(pids) == OPTIONS["n_subjects"]
    assert str(os.getpid()) not in pids


def test_prepare_resumes_after_an_interruption(tmp_path, monkeypatch):
    ref = two_step(tmp_path)
    calls = []
    real = prep._GroupStream.add

    def dies_on_third_source(self, source, recordings):
        calls.append(source)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(self, source, recordings)

    monkeypatch.setattr(prep._GroupStream, "add", dies_on_third_source)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset("synthetic", tmp_path / "c1", reader_options=OPTIONS, workers=1, progress=False,
                        shard_bytes=1)  # commit every source: the resumed run skips the first ones
    monkeypatch.setattr(prep._GroupStream, "add", real)
    report = prepare_dataset("synthetic", tmp_path / "c1", reader_options=OPTIONS, workers=1, progress=False,
                             shard_bytes=1)
    assert report.rectify.skipped >= 2 and report.groups_from_archive >= 1
    same_corpus(tmp_path / "c1", ref)
    again = prepare_dataset("synthetic", tmp_path / "c1", reader_options=OPTIONS, workers=1, progress=False,
                            shard_bytes=1)  # complete: nothing to do
    assert again.rectify.processed == 0 and again.tokenize.groups_done_before == again.tokenize.groups
    same_corpus(tmp_path / "c1", ref)


def record_bars(monkeypatch):
    """Every progress bar the run makes, as ``(desc, bar)`` in creation order: real tqdm bars
    writing to a string (``mininterval=0``: every update is drawn)."""
    import io

    import tqdm

    from aemg.data import pipeline
    from aemg.tokenizer.corpus import writer
    bars = []

    def progress_bar(enabled, *, total, desc, unit, initial=0, **options):
        assert enabled
        bars.append((desc, tqdm.tqdm(total=total, initial=initial, desc=desc, unit=unit, file=io.StringIO(),
                                     mininterval=0, **options)))
        return bars[-1][1]

    for module in (pipeline, writer, prep):
        monkeypatch.setattr(module, "progress_bar", progress_bar)
    return bars


def channel_samples(archive):
    """C x T summed over the recordings of an archive folder (what the tokenize bars count)."""
    rows = json.loads((archive / "index.json").read_text())["recordings"]
    return sum(r["n_channels"] * r["n_samples"] for r in rows)


def check_bars(bars, report, n_sources, in_memory):
    """rectify counts every file; the in-memory tokenize bar (while rectifying) every channel-sample
    of the groups tokenized from memory; the archive pass's every group's, the others from the start."""
    assert [d for d, _ in bars] == ["rectify", "tokenize", "tokenize"]
    (_, rect), (_, memory), (_, final) = bars
    assert rect.n == rect.total == n_sources
    everything = channel_samples(report.archive)
    assert memory.n == memory.total == in_memory
    assert final.n == final.total == everything > 0
    assert final.n - final.initial == report.tokenize.channel_samples  # the archive pass's own work
    assert final.initial == in_memory
    assert "100%" in final.fp.getvalue()


@pytest.mark.parametrize("workers", [1, 2])
def test_progress_bars_count_every_group_tokenized_in_memory(tmp_path, monkeypatch, workers):
    from aemg.data.readers import get_reader
    bars = record_bars(monkeypatch)
    report = prepare_dataset("synthetic", tmp_path / "c", reader_options=OPTIONS, workers=workers,
                             progress=True)
    assert report.groups_from_memory == report.tokenize.groups and report.groups_from_archive == 0
    everything = channel_samples(report.archive)
    check_bars(bars, report, len(get_reader("synthetic", **OPTIONS).sources()), in_memory=everything)
    assert "100%" in bars[1][1].fp.getvalue()


def test_progress_bars_of_groups_left_to_the_archive_pass(tmp_path, monkeypatch):
    """Groups handed to memory and then found again later (sources not neighbours) leave the
    in-memory bar (its total and count) and are counted by the archive pass's bar."""
    bars = record_bars(monkeypatch)
    report = prepare_dataset(HalvesReader(), tmp_path / "c", workers=1, progress=True)
    assert report.groups_from_memory == 0
    check_bars(bars, report, len(HalvesReader().sources()), in_memory=0)


class HalvesReader:
    """Each synthetic subject's trials in two sources, listed s00/a, s01/a, s00/b, s01/b: the
    groups' sources are not neighbours."""

    def __init__(self):
        from aemg.data.readers import get_reader
        self.inner = get_reader("synthetic", **OPTIONS)
        self.info, self.root, self.options = self.inner.info, None, {}

    def sources(self):
        units = self.inner.sources()
        return [f"{u}/{h}" for h in "ab" for u in units]

    def read(self, source):
        unit, half = source.split("/")
        recs = self.inner.read(unit)
        return recs[: len(recs) // 2] if half == "a" else recs[len(recs) // 2:]


def test_groups_whose_sources_are_not_neighbours_come_from_the_archive(tmp_path):
    rectify_dataset(HalvesReader(), tmp_path / "a2", workers=1, progress=False)
    tokenize_archive(tmp_path / "a2", tmp_path / "c2", workers=1, progress=False)
    report = prepare_dataset(HalvesReader(), tmp_path / "c1", workers=1, progress=False)
    same_corpus(tmp_path / "c1", tmp_path / "c2")
    assert report.groups_from_archive == OPTIONS["n_subjects"]  # every group reappears later
    assert report.groups_from_memory == 0


def test_prepare_refuses_bad_folders(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a token corpus"):
        prepare_dataset("synthetic", tmp_path / "junk", reader_options=OPTIONS, workers=1, progress=False)
    with pytest.raises(ConfigError, match="two folders"):
        prepare_dataset("synthetic", tmp_path / "c", archive=tmp_path / "c", reader_options=OPTIONS,
                        workers=1, progress=False)
    with pytest.raises(DataError, match="not found"):
        prepare_dataset("3dc", tmp_path / "c", root=tmp_path / "missing", workers=1, progress=False)


def test_cli_prepare(tmp_path, capsys):
    rc = main(["prepare", "synthetic", "-", str(tmp_path / "c"), "--option", "n_subjects=2",
               "--option", "repetitions=1", "--option", "trial_s=1.5", "--workers", "1", "--no-progress",
               "--no-archive"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "tokenized from memory" in out and (tmp_path / "c" / "corpus.json").is_file()
    assert not (tmp_path / "c.archive").exists()


@pytest.mark.realdata
def test_prepare_real_3dc_subset(tmp_path, data_root):
    src = tmp_path / "3dc"
    for part in ("Participant1/train/EMG", "Participant2/train/EMG"):
        (src / part).mkdir(parents=True)
        for f in sorted((data_root / "3dc_armband" / part).glob("3dc_EMG_gesture_0_*.txt.gz"))[:4]:
            (src / part / f.name).symlink_to(f)
    ref = two_step(tmp_path, reader="3dc", options={}, root=src)
    prepare_dataset("3dc", tmp_path / "c1", root=src, workers=1, progress=False)
    same_corpus(tmp_path / "c1", ref)
