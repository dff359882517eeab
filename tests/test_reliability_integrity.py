"""Fault injection for completeness and integrity: deleted, truncated and swapped shards of
archives and corpora are found by re-runs (which redo them) and by ``aemg verify``; incomplete
archives are refused by their readers unless asked."""
import json
import shutil

import numpy as np
import pytest
from helpers import tree_digest

from aemg.cli import main
from aemg.data.archive import INDEX, open_archive, verify_archive
from aemg.data.pipeline import rectify_dataset
from aemg.errors import DataError
from aemg.tokenizer.corpus import tokenize_archive, verify_corpus

OPTIONS = {"n_subjects": 4, "trial_s": 2}


def _archive(out):
    rectify_dataset("synthetic", out, reader_options=OPTIONS, workers=1, progress=False, shard_bytes=2 << 20)
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    _archive(root / "a")
    tokenize_archive(root / "a", root / "c", workers=1, progress=False)
    return root


def _contents(path):
    with open_archive(path) as a:
        return {rec.key: rec.data.copy() for rec in a}


def _same_recordings(a, b):
    ca, cb = _contents(a), _contents(b)
    assert sorted(ca) == sorted(cb)
    assert all(np.array_equal(ca[k], cb[k]) for k in ca)


def _shards(out):
    return sorted((out / "shards").glob("*.h5"))


@pytest.mark.parametrize("damage", ["delete", "truncate", "swap"])
def test_rectify_rerun_verifies_what_it_skips_and_redoes_damaged_shards(tmp_path, reference, damage, caplog):
    out = tmp_path / "a"
    shutil.copytree(reference / "a", out)
    first, second = _shards(out)[:2]
    if damage == "delete":
        first.unlink()
    elif damage == "truncate":
        first.write_bytes(first.read_bytes()[:5000])
    else:
        tmp = first.with_suffix(".x")
        first.rename(tmp)
        second.rename(first)
        tmp.rename(second)
    problems, _ = verify_archive(out)
    assert problems and all(str(out / "shards") in p for p in problems)
    assert {"delete": "missing", "truncate": "truncated", "swap": "when committed"}[damage] in problems[0]
    report = rectify_dataset("synthetic", out, reader_options=OPTIONS, workers=1, progress=False,
                             shard_bytes=2 << 20)
    assert report.complete and report.processed > 0 and "read again" in caplog.text
    _same_recordings(out, reference / "a")
    assert verify_archive(out)[0] == []


@pytest.mark.parametrize("recorded", ["crc32", "sha256"])
def test_a_flipped_byte_is_found_by_the_recorded_checksum(tmp_path, reference, recorded):
    """Shards record crc32 (since session 6); archives that recorded sha256 are still verified."""
    from aemg._io import file_digest

    out = tmp_path / "a"
    shutil.copytree(reference / "a", out)
    index = json.loads((out / INDEX).read_text())
    assert all(set(e) == {"bytes", "crc32", "sources"} for e in index["shards"].values())
    if recorded == "sha256":
        for name, entry in index["shards"].items():
            del entry["crc32"]
            entry["sha256"] = file_digest(out / name, "sha256")[1]
        (out / INDEX).write_text(json.dumps(index))
    assert verify_archive(out)[0] == []
    first = _shards(out)[0]
    data = bytearray(first.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, one bit
    first.write_bytes(bytes(data))
    problems, _ = verify_archive(out)
    assert len(problems) == 1 and "checksum differs" in problems[0] and first.name in problems[0]
    report = rectify_dataset("synthetic", out, reader_options=OPTIONS, workers=1, progress=False,
                             shard_bytes=2 << 20)
    assert report.complete and report.processed > 0
    _same_recordings(out, reference / "a")
    assert verify_archive(out)[0] == []


def test_verify_finds_swapped_shards_without_checksums(tmp_path, reference):
    out = tmp_path / "a"
    shutil.copytree(reference / "a", out)
    index = json.loads((out / INDEX).read_text())
    del index["shards"]  # an archive written before checksums
    (out / INDEX).write_text(json.dumps(index))
    first, second = _shards(out)[:2]
    data = first.read_bytes()
    first.write_bytes(second.read_bytes())
    second.write_bytes(data)
    problems, _ = verify_archive(out)
    assert any("holds" in p and "the index says" in p for p in problems)


def test_readers_refuse_an_incomplete_archive_unless_asked(tmp_path, reference):
    out = tmp_path / "a"
    shutil.copytree(reference / "a", out)
    index = json.loads((out / INDEX).read_text())
    (out / INDEX).write_text(json.dumps({**index, "complete": False}))
    with pytest.raises(DataError, match="archive is incomplete.*--allow-partial"):
        open_archive(out)
    assert len(open_archive(out, allow_partial=True)) == len(index["recordings"])
    assert verify_archive(out)[0][0].endswith("re-run the same `aemg rectify` command to finish it)")


@pytest.mark.parametrize("damage", ["delete-payload", "truncate-tokens", "swap-folders"])
def test_tokenize_rerun_redoes_damaged_shards_to_the_same_bytes(tmp_path, reference, damage, caplog):
    out = tmp_path / "c"
    shutil.copytree(reference / "c", out)
    a, b = sorted(p for p in (out / "shards").iterdir())[:2]
    if damage == "delete-payload":
        (a / "payload.npy").unlink()
    elif damage == "truncate-tokens":
        (a / "tokens.npy").write_bytes((a / "tokens.npy").read_bytes()[:100])
    else:
        a.rename(a.with_name("x"))
        b.rename(a)
        a.with_name("x").rename(b)
    problems, _ = verify_corpus(out)
    assert problems and str(a) in problems[0]
    r = tokenize_archive(reference / "a", out, workers=1, progress=False)
    assert r.groups_done_before == r.groups - (2 if damage == "swap-folders" else 1)
    assert "tokenizing that group again" in caplog.text
    assert tree_digest(out) == tree_digest(reference / "c")


def test_verify_command_exit_codes(tmp_path, reference, capsys):
    assert main(["verify", str(reference / "a")]) == 0
    assert capsys.readouterr().out.strip().endswith(": OK")
    assert main(["verify", str(reference / "c")]) == 0
    capsys.readouterr()
    out = tmp_path / "a"
    shutil.copytree(reference / "a", out)
    for shard in _shards(out)[:2]:
        shard.unlink()
    assert main(["verify", str(out)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.startswith("problem: ") for line in lines] == [True, True, False]
    assert lines[-1].endswith(": 2 problem(s)")


def test_verify_a_run(tmp_path, capsys):
    from test_pretrain import MICRO

    from aemg.train import pretrain, synthetic_corpus

    pretrain(synthetic_corpus(8, n_channels=4, token_len=20, tokens=(2, 8), seed=1), tmp_path / "r", MICRO,
             stage=1, steps=2, progress=False)
    assert main(["verify", str(tmp_path / "r")]) == 0
    ck = next((tmp_path / "r" / "checkpoints").iterdir())
    (ck / "model.safetensors").write_bytes(b"\0" * 10)
    assert main(["verify", str(tmp_path / "r")]) == 1
    assert "model.safetensors: truncated or corrupt" in capsys.readouterr().out
