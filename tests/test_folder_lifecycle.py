"""Issue 11 seams: the resumable-folder lifecycle (aemg._folder), the archive index's renamed
``position`` (old ``group`` archives still read and resume), the token-field table shared by
sentences, shards and batches, and the calibration policy module."""
import json

import numpy as np
import pytest
from helpers import synthetic_archive, tree_digest

from aemg._folder import (
    field_differences,
    identity_error,
    matcher,
    refuse_foreign,
    remove_leftovers,
    select_rows,
    stored_marker,
)
from aemg.data.archive import INDEX, ArchiveWriter, open_archive
from aemg.errors import ConfigError
from aemg.tokenizer import calibration, sentence
from aemg.tokenizer.corpus import open_corpus, tokenize_archive
from aemg.tokenizer.tokens import TokenizerConfig


def test_marker_refuses_a_foreign_folder_and_reads_its_own(tmp_path):
    assert stored_marker(tmp_path / "missing", "plan.json", "a token corpus") is None
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".aemg.lock").write_text("")  # the lock file does not count
    assert stored_marker(tmp_path / "empty", "plan.json", "a token corpus") is None
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"full: exists and is not a token corpus \(no plan.json\); refus"):
        refuse_foreign(tmp_path / "full", "plan.json", "a token corpus")
    (tmp_path / "full" / "plan.json").write_text('{"version": 2}')
    assert stored_marker(tmp_path / "full", "plan.json", "a token corpus") == {"version": 2}


def test_identity_differences_and_error_text(tmp_path):
    diffs = field_differences({"a": 1, "b": [1, 2]}, {"a": 1, "b": [1, 3], "c": None}, ["a", "b", "c"],
                              "archive")
    assert diffs == ["b: archive has [1, 2], now [1, 3]"]
    assert field_differences({"t": 1}, {"t": 1.0}, ["t"], "the corpus") == []           # equal values
    assert field_differences({"t": 1}, {"t": 1.0}, ["t"], "the corpus", by_json=True) == \
        ["t: the corpus has 1, now 1.0"]                                                   # other JSON
    err = identity_error(tmp_path, "an archive made with other settings", diffs + ["x: y"], "output folder")
    assert str(err) == (f"{tmp_path}: already holds an archive made with other settings (b: archive has "
                        "[1, 2], now [1, 3]; x: y); re-run with the same arguments to resume, or choose "
                        "another output folder")


def test_leftovers_and_row_selection(tmp_path):
    (tmp_path / "a.tmp").write_text("")
    (tmp_path / ".000001.tmp").mkdir()
    (tmp_path / "keep.h5").write_text("")
    assert [p.name for p in remove_leftovers(tmp_path)] == [".000001.tmp", "a.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["keep.h5"]
    assert remove_leftovers(tmp_path / "missing") == []
    rows = [{"subject": "3", "label": 0}, {"subject": "10", "label": None}, {"subject": "3", "label": 2}]
    assert select_rows(rows, {"subject": 3}, ["subject", "label"]) == [0, 2]
    picks = {"subject": ["10", 3], "label": lambda v: v is not None}
    assert select_rows(rows, picks, ["subject", "label"]) == [0, 2]
    assert matcher((1, 2))(2) and not matcher("3")(3)
    with pytest.raises(ConfigError, match="select: unknown field.s. shard; fields: subject, label"):
        select_rows(rows, {"shard": 1}, ["subject", "label"])


def test_archives_with_the_old_group_key_read_resume_and_tokenize_the_same(tmp_path):
    new = synthetic_archive(tmp_path / "a", n_subjects=2)
    tokenize_archive(new, tmp_path / "c_new", workers=1, progress=False)
    state = json.loads((new / INDEX).read_text())
    assert all("position" in r and "group" not in r for r in state["recordings"])
    for r in state["recordings"]:  # an archive written before the rename
        r["group"] = r.pop("position")
    (new / INDEX).write_text(json.dumps(state, separators=(",", ":")) + "\n")
    archive = open_archive(new)
    assert [r["position"] for r in archive.index] == [r["group"] for r in state["recordings"]]
    assert len(archive.select(position="000000")) >= 1 and archive[0].data.size > 0
    tokenize_archive(new, tmp_path / "c_old", workers=1, progress=False)
    # the same bytes, plan.json and corpus.json included: the archive identity hashes the positions,
    # not the key's name, so a corpus made before the rename resumes from the renamed archive
    assert tree_digest(tmp_path / "c_old") == tree_digest(tmp_path / "c_new")
    writer = ArchiveWriter(new, json.loads((new / "manifest.json").read_text()))  # resume: rows renamed
    writer.finish()
    assert all("position" in r for r in json.loads((new / INDEX).read_text())["recordings"])


def test_one_field_vocabulary_for_sentences_shards_and_batches(tmp_path):
    archive = synthetic_archive(tmp_path / "a", n_subjects=2)
    tokenize_archive(archive, tmp_path / "c", workers=1, progress=False)
    corpus = open_corpus(tmp_path / "c")
    table = np.load(tmp_path / "c" / "shards" / "000000" / "tokens.npy", mmap_mode="r")
    assert table.dtype.names == sentence.TABLE_FIELDS
    assert table.dtype == sentence.token_table_dtype(corpus.token_shape[0])
    s = corpus.sentence(0)
    assert tuple(s.tokens()) == sentence.FIELD_NAMES
    assert all(getattr(s, f.name).dtype == f.dtype for f in sentence.TOKEN_FIELDS)
    b = corpus.batch([0, 1])
    assert tuple(b)[:len(sentence.BATCH_KEYS)] == sentence.BATCH_KEYS
    assert all(b[k].dtype == sentence.BATCH_DTYPES[k] for k in sentence.BATCH_KEYS)
    n = s.n_tokens
    for name in sentence.FIELD_NAMES:  # every field lands in the batch under its own name
        np.testing.assert_array_equal(b[name][0, :n], getattr(s, name))


def test_calibration_policy():
    assert calibration.is_rest_class("noGesture") and calibration.is_rest_class("Rest") and \
        not calibration.is_rest_class("fist")
    assert calibration.is_rest_label(2, ("a", "b", "c"), rest_id=2)
    assert not calibration.is_rest_label(-1, ("rest",))
    assert calibration.may_hold_rest({"label": None})
    assert calibration.may_hold_rest({"label": 0, "classes": ["rest"]})
    assert not calibration.may_hold_rest({"label": 0, "classes": ["fist"]})
    assert calibration.session_noise({"s1": [1.0, 3.0], "s2": [10.0]}, "s1") == 2.0
    assert calibration.session_noise({"s1": [1.0, 3.0], "s2": [10.0]}, "s3") == 3.0  # no rest there: all
    cfg = TokenizerConfig()
    own, shared = calibration.group_levels({"r1": 1.0, "r2": 3.0, "r3": 8.0}, cfg)
    assert own == {"r1": (5.5, "rest"), "r2": (4.5, "rest"), "r3": (2.0, "rest")} and shared == (3.0, "rest")
    assert calibration.group_levels({}, TokenizerConfig(calibration="robust")) == ({}, (None, "robust"))
    rng = np.random.default_rng(0)
    x = [rng.standard_normal((4, 400)).astype(np.float32) * s for s in (1, 1, 5)]
    levels = calibration.noise_levels(x, [200.0] * 3, [True, True, False], cfg, groups=["g", "g", "g"])
    r0, r1 = (calibration.rest_level(v, 200.0, cfg) for v in x[:2])
    assert levels == [(r1, "rest"), (r0, "rest"), (float(np.median([r0, r1])), "rest")]
    assert calibration.noise_levels(x, [200.0] * 3, [True] * 3, TokenizerConfig(mode="windows")) == \
        [(None, "robust")] * 3
