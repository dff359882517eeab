"""Shipped weights (aemg.weights): resolved by name everywhere, digests verified, stable values."""
import json
import shutil

import pytest

import aemg
from aemg import weights
from aemg._io import file_digest
from aemg.errors import ConfigError, DataError
from aemg.train.checkpoint import resolve


def test_aemg_tiny_is_shipped_small_and_matches_its_recorded_digest_and_embedding():
    assert "aemg-tiny" in weights.shipped_names()
    entry = json.loads(weights.INDEX.read_text())["aemg-tiny"]
    folder = weights.shipped_path("aemg-tiny")
    assert entry["bytes"] <= 10_000_000
    for f in weights.FILES:
        assert file_digest(folder / f)[1] == entry["sha256"][f]
    assert "licen" in weights.card("aemg-tiny").lower() and entry["command"] in weights.card("aemg-tiny")
    model = aemg.load("aemg-tiny")
    from aemg.train.checkpoint import load_checkpoint
    angles = load_checkpoint("aemg-tiny").state["data"]["channel_angles"]
    assert weights.reference_embedding(model, angles) == pytest.approx(entry["reference_embedding"], abs=1e-5)
    assert resolve("aemg-tiny") == folder


def test_altered_or_missing_file_is_refused_naming_the_digest(tmp_path, monkeypatch):
    fake = tmp_path / "w"
    shutil.copytree(weights.HERE, fake, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setattr(weights, "HERE", fake)
    monkeypatch.setattr(weights, "INDEX", fake / "index.json")
    monkeypatch.setattr(weights, "_verified", set())
    p = fake / "aemg-tiny" / "model.safetensors"
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(DataError, match="digest mismatch"):
        weights.shipped_path("aemg-tiny")
    p.unlink()
    with pytest.raises(DataError, match="missing"):
        weights.shipped_path("aemg-tiny")


def test_unknown_name_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="aemg-tiny"):
        weights.shipped_path("aemg-huge")


def test_an_existing_folder_of_that_name_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "aemg-tiny").mkdir()
    assert not weights.is_shipped("aemg-tiny")
    with pytest.raises(DataError, match="no checkpoint"):
        resolve("aemg-tiny")
