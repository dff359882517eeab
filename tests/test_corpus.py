"""Token corpus on disk: tokenize_archive (pool, resume, determinism), reading API, CLI."""
import json
import shutil

import numpy as np
import pytest
from helpers import tree_digest

from aemg.cli import main
from aemg.data import Recording
from aemg.data.archive import ArchiveWriter
from aemg.errors import ConfigError, DataError
from aemg.tokenizer.corpus import ConcatCorpus, TokenCorpus, open_corpus, tokenize_archive
from aemg.tokenizer.tokens import TokenizerConfig, tokenize_recording

RATE = 500.0
CLASSES = ("neutral", "fist", "open")


def trial(rng, label, subject, rep, n=1500, dataset="syn"):
    x = 0.05 * rng.standard_normal((16, n))
    if label:
        gain = np.ones(16)
        gain[4 * label] = 3.0
        for s in (n // 8, n // 2):
            x[:, s:s + n // 4] += gain[:, None] * rng.standard_normal((16, n // 4))
    return Recording(x.astype(np.float32), RATE, "standard16", units="standard", dataset=dataset,
                     subject=str(subject), session="1", trial=f"r{rep}c{label}", label=label, classes=CLASSES)


def series(rng, subject):
    """One per-sample-labelled recording (split into trials by the tokenizer)."""
    parts, labels = [], []
    for label in (1, 0, 2, 0):
        parts.append(trial(rng, label, subject, 9, n=1000).data)
        labels.append(np.full(1000, label, np.int32))
    labels[1][:100] = -1
    return Recording(np.concatenate(parts, 1), RATE, "standard16", units="standard", dataset="ser",
                     subject=str(subject), session="0", trial="s", labels=np.concatenate(labels),
                     classes=CLASSES)


def make_archive(path, rng, subjects=(1, 2, 3)):
    w = ArchiveWriter(path, {"space": {"rate": RATE, "channels": 16}})
    for s in subjects:
        w.add(f"subject{s}", [trial(rng, c, s, r) for r in range(2) for c in range(3)])
        w.add(f"series{s}", [series(rng, s)])
    w.add("tiny", [Recording(np.ones((16, 3), np.float32), RATE, "standard16", units="standard",
                             dataset="syn", subject="9", trial="tiny", label=1, classes=CLASSES)])
    w.finish()
    return path


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_archive(tmp_path_factory.mktemp("arch") / "a", np.random.default_rng(1))


def test_tokenize_archive_is_deterministic_resumable_and_readable(archive, tmp_path):
    cfg = TokenizerConfig(token_s=0.2)
    r1 = tokenize_archive(archive, tmp_path / "c1", cfg, workers=1, progress=False)
    r2 = tokenize_archive(archive, tmp_path / "c2", cfg, workers=2, progress=False,
                          min_channel_samples_per_worker=0)
    assert r2.workers == 2 and r1.workers == 1
    # a small job runs in one process whatever the workers asked for (the bytes are the same anyway)
    assert tokenize_archive(archive, tmp_path / "c3", cfg, workers=2, progress=False).workers == 1
    assert tree_digest(tmp_path / "c1") == tree_digest(tmp_path / "c2")
    assert r1.tokens == r2.tokens > 0 and r1.groups == 7 and r1.groups_done_before == 0
    # 3 subjects x 6 trials + 3 series split into 4 trials each (+1 too short to tokenize)
    assert r1.sentences == 18 + 12 and r1.empty_sentences == 1 and r1.channel_samples > 0

    c = open_corpus(tmp_path / "c1")
    assert c.n_sentences == 30 and c.n_tokens == r1.tokens and c.token_shape == (16, 100)
    assert c.rate == RATE and c.channel_angles.shape == (16,) and c.classes["syn"] == CLASSES
    assert c.subjects == ["ser/1", "ser/2", "ser/3", "syn/1", "syn/2", "syn/3"]
    # each sentence equals an offline run with the recorded calibration
    shard0 = json.loads((tmp_path / "c1" / "shards" / "000000" / "sentences.json").read_text())
    assert [m["calibration"] for m in shard0] == ["rest"] * 6
    rest = [m["noise"] for m in shard0 if m["label"] == 0]
    gesture = [m["noise"] for m in shard0 if m["label"] == 1]
    assert gesture[0] == pytest.approx(np.median(rest)) and rest[0] == pytest.approx(rest[1], rel=0.5)
    from aemg.data.archive import open_archive
    arch = open_archive(archive)
    for i, m in enumerate(shard0):
        s = c.sentence(i)
        ref = tokenize_recording(arch.get(m["key"]), cfg, noise=m["noise"])
        assert s.key == m["key"] and s.label == m["label"] and s.n_tokens == ref.n_tokens
        np.testing.assert_array_equal(s.payload, ref.payload)
        np.testing.assert_array_equal(s.dominant_channel, ref.dominant_channel)
    # series recordings were split into labelled trials
    ser = c.select(dataset="ser", subject=2)
    assert len(ser) == 4 and sorted(c.sentences[i]["label"] for i in ser) == [0, 0, 1, 2]
    assert c.select(dataset="syn", label=[1, 2], subject="3") == \
        [i for i, s in enumerate(c.sentences)
         if s["dataset"] == "syn" and s["subject"] == "3" and s["label"] > 0]
    with pytest.raises(ConfigError, match="unknown field"):
        c.select(colour="red")

    idx = [0, 5, 20]
    b = c.batch(idx)
    n = max(c.sentences[i]["n_tokens"] for i in idx)
    assert b["payload"].shape == (3, n, 16, 100) and b["payload"].dtype == np.float32
    assert b["mask"].sum(1).tolist() == [c.sentences[i]["n_tokens"] for i in idx]
    for k in ("event_index", "order", "dominant_channel", "label", "subject_id", "dataset_id"):
        assert b[k].dtype == np.int64
    assert np.all(b["payload"][~b["mask"]] == 0) and b["order"][0, :3].tolist() == [0, 1, 2]
    np.testing.assert_array_equal(b["energy"][1, :c.sentences[5]["n_tokens"]], c.sentence(5).energy)
    assert b["subject_id"].tolist() == [
        c.subjects.index(f"{c.sentences[i]['dataset']}/{c.sentences[i]['subject']}") for i in idx]
    short = c.batch(idx, max_len=2)
    assert short["payload"].shape[1] == 2 and short["mask"].all()

    # resume: a lost shard (and a stale temp folder) is redone, the rest is kept; same bytes
    before = tree_digest(tmp_path / "c1")
    shutil.rmtree(tmp_path / "c1" / "shards" / "000003")
    (tmp_path / "c1" / "corpus.json").unlink()
    (tmp_path / "c1" / "shards" / ".000004.tmp").mkdir()
    r3 = tokenize_archive(archive, tmp_path / "c1", cfg, workers=2, progress=False,
                          min_channel_samples_per_worker=0)
    assert r3.groups_done_before == 6 and tree_digest(tmp_path / "c1") == before
    with pytest.raises(ConfigError, match="other settings"):
        tokenize_archive(archive, tmp_path / "c1", TokenizerConfig(token_s=0.1), workers=1, progress=False)


def test_batch_size_and_calibration_rules_do_not_change_the_corpus(archive, tmp_path, monkeypatch):
    """Groups are tokenized in batches of recordings (writer.BATCH_BYTES) read into one reused
    buffer: one recording per batch, and one batch per group, give the same bytes."""
    from aemg.tokenizer import calibration
    from aemg.tokenizer.corpus import writer
    cfg = TokenizerConfig(token_s=0.2)
    tokenize_archive(archive, tmp_path / "big", cfg, workers=1, progress=False)
    batches = []
    real = writer._batches
    monkeypatch.setattr(writer, "BATCH_BYTES", 1)
    monkeypatch.setattr(writer, "_batches", lambda *a, **k: batches.append(real(*a, **k)) or batches[-1])
    tokenize_archive(archive, tmp_path / "small", cfg, workers=1, progress=False)
    assert tree_digest(tmp_path / "big") == tree_digest(tmp_path / "small")
    assert batches and all(len(b) == 1 for bs in batches for b in bs)  # one recording per batch
    # the calibration rules the shards were made with (see calibration.noise_levels)
    assert calibration.group_noise([], None) == (None, "robust")
    assert calibration.group_noise([2.0], 0) == (None, "robust")          # a lone rest trial: robust
    assert calibration.group_noise([1.0, 3.0, 8.0], None) == (3.0, "rest")  # other trials: median of all
    assert calibration.group_noise([1.0, 3.0, 8.0], 1) == (4.5, "rest")     # a rest trial: the others


def test_work_chunks_cover_every_group_once_in_archive_order():
    from aemg.tokenizer.corpus import work_chunks
    todo = [7, 3, 11, 5, 0, 9, 2]
    sizes = [10, 10, 10, 10, 10, 10, 1000]
    for workers in (1, 2, 3):
        chunks = work_chunks(todo, sizes, workers)
        flat = [k for c in chunks for k in c]
        assert flat == sorted(todo) and all(chunks)          # each once, neighbours together
    assert work_chunks(todo, sizes, 1) == [[k] for k in sorted(todo)]
    even = work_chunks(list(range(100)), [1] * 100, 2)
    lengths = [len(c) for c in even]
    assert lengths == sorted(lengths, reverse=True) and lengths[0] == 25 and lengths[-1] == 1
    capped = work_chunks(list(range(100)), [1] * 100, 2, max_task=5)
    assert max(len(c) for c in capped) == 5
    assert work_chunks([], [], 2) == []


def test_windows_mode_concat_and_bad_corpora(archive, tmp_path):
    tokenize_archive(archive, tmp_path / "w", TokenizerConfig(token_s=0.2, mode="windows"), workers=1,
                     progress=False)
    tokenize_archive(archive, tmp_path / "e", TokenizerConfig(token_s=0.2, calibration="robust"), workers=1,
                     progress=False)
    w, e = open_corpus(tmp_path / "w"), open_corpus(tmp_path / "e")
    assert w.n_tokens > e.n_tokens and w.config.mode == "windows"
    both = ConcatCorpus([w, tmp_path / "e"])
    assert both.n_sentences == w.n_sentences + e.n_sentences and both.n_tokens == w.n_tokens + e.n_tokens
    b = both.batch([0, w.n_sentences])
    np.testing.assert_array_equal(b["payload"][1, :e.sentences[0]["n_tokens"]], e.sentence(0).payload)
    assert both.select(dataset="ser") == w.select(dataset="ser") + [w.n_sentences + i
                                                                    for i in e.select(dataset="ser")]
    tokenize_archive(archive, tmp_path / "s", TokenizerConfig(token_s=0.1), workers=1, progress=False)
    with pytest.raises(DataError, match="token shape"):
        ConcatCorpus([w, tmp_path / "s"])

    with pytest.raises(DataError, match="not found"):
        TokenCorpus(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    with pytest.raises(DataError, match="not a complete token corpus"):
        open_corpus(tmp_path / "half")
    (tmp_path / "w" / "corpus.json").write_text("{bad")
    with pytest.raises(DataError, match="corrupt JSON"):
        open_corpus(tmp_path / "w")
    np.save(tmp_path / "e" / "shards" / "000000" / "payload.npy", np.zeros((1, 16, 40), np.float32))
    with pytest.raises(DataError, match="inconsistent"):
        open_corpus(tmp_path / "e").sentence(0)
    np.save(tmp_path / "e" / "shards" / "000000" / "tokens.npy", np.zeros((1, 16), np.float32))
    with pytest.raises(DataError, match="unexpected token table"):
        open_corpus(tmp_path / "e").sentence(0)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a token corpus"):
        tokenize_archive(archive, tmp_path / "junk", workers=1, progress=False)
    with pytest.raises(DataError, match="manifest"):
        tokenize_archive(tmp_path / "junk", tmp_path / "x", workers=1, progress=False)


def test_cli_tokenize_and_plot(archive, tmp_path, capsys):
    assert main(["tokenize", str(archive), str(tmp_path / "c"), "--workers", "1", "--no-progress",
                 "--token-s", "0.2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sentences"] == 30 and report["token_shape"] == [16, 100]
    assert main(["plot-events", str(archive), "--index", "1", "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["plot-events", str(archive), "--key", "ser/1/0/s", "--trial", "2",
                 "--out", str(tmp_path / "q.png")]) == 0
    assert main(["plot-events", str(archive), "--index", "999", "--out", str(tmp_path / "r.png")]) == 2
    assert main(["tokenize", str(tmp_path / "nothing"), str(tmp_path / "d"), "--no-progress"]) == 2


@pytest.mark.parametrize("cap", ["first", "energy"])
def test_corpus_sentences_equal_offline_sentences_when_capped(archive, tmp_path, cap):
    """The batched group path (plan_sentences + tokens cut into the shard arrays) gives exactly the
    sentences of tokenize_recording, also when the cap drops tokens."""
    cfg = TokenizerConfig(token_s=0.1, max_sentence_len=3, cap=cap)
    report = tokenize_archive(archive, tmp_path / "c", cfg, workers=1, progress=False)
    assert report.capped_sentences > 0
    c = open_corpus(tmp_path / "c")
    from aemg.data.archive import open_archive
    from aemg.data.trials import split_trials
    arch = open_archive(archive)
    trials = {t.key: t for rec in arch for t in split_trials(rec)}
    metas = {m["key"]: m for name in json.loads((tmp_path / "c" / "corpus.json").read_text())["shards"]
             for m in json.loads((tmp_path / "c" / "shards" / name / "sentences.json").read_text())}
    for i, row in enumerate(c.sentences):
        m = metas[row["key"]]
        ref = tokenize_recording(trials[row["key"]], cfg, noise=m["noise"])
        got = c.sentence(i)
        assert got.n_tokens == ref.n_tokens <= 3 and m["n_events"] == ref.n_events
        for name, want in ref.tokens().items():
            np.testing.assert_array_equal(getattr(got, name), want, err_msg=name)
        assert m["events"] == ref.events.tolist()


def test_reads_version_1_corpora(archive, tmp_path):
    """Corpora written before tokens.npy (one .npy per token field) still read the same."""
    tokenize_archive(archive, tmp_path / "c", TokenizerConfig(token_s=0.2), workers=1, progress=False)
    new = open_corpus(tmp_path / "c")
    picks = (0, 7, new.n_sentences - 1)
    want = {i: {k: np.array(v) for k, v in new.sentence(i).tokens().items()} for i in picks}
    meta = json.loads((tmp_path / "c" / "corpus.json").read_text())
    for name in meta["shards"]:
        folder = tmp_path / "c" / "shards" / name
        table = np.load(folder / "tokens.npy")
        for field in table.dtype.names:
            np.save(folder / f"{field}.npy", np.ascontiguousarray(table[field]))
        (folder / "tokens.npy").unlink()
    meta["version"] = 1
    (tmp_path / "c" / "corpus.json").write_text(json.dumps(meta))
    old = open_corpus(tmp_path / "c")
    for i in picks:
        for field, arr in want[i].items():
            np.testing.assert_array_equal(getattr(old.sentence(i), field), arr, err_msg=field)


def test_subset_corpus_is_a_view_with_the_same_interface():
    from aemg.train.data import synthetic_corpus

    base = synthetic_corpus(12, n_channels=4, token_len=20)
    keep = base.select(subject=["1", "3"])
    sub = base.subset(keep)
    assert sub.n_sentences == len(keep) == 6 and sub.subjects == ["synthetic/1", "synthetic/3"]
    assert sub.n_tokens == sum(base.sentences[i]["n_tokens"] for i in keep)
    got, ref = sub.batch([0, 1]), base.batch(keep[:2])
    for k in ("payload", "energy", "mask", "label"):
        assert np.array_equal(got[k], ref[k])
    assert sub.token_shape == base.token_shape and np.array_equal(sub.channel_angles, base.channel_angles)
    with pytest.raises(ConfigError, match="out of range"):
        base.subset([0, 99])
    with pytest.raises(ConfigError, match="repeated"):
        base.subset([1, 1])
