"""Pre-trained weights shipped inside the package, usable by name wherever a run folder is taken.

>>> import aemg
>>> model = aemg.load("aemg-tiny")                          # doctest: +SKIP
>>> aemg.embed("aemg-tiny", recording)                      # doctest: +SKIP

``aemg embed aemg-tiny DATA`` and ``aemg evaluate ... --checkpoint aemg-tiny`` work alike: every
place that resolves a run (:func:`aemg.train.checkpoint.resolve`) maps a shipped name to its
checkpoint folder here, after checking each file's SHA-256 against ``index.json`` (an altered or
missing file is a :class:`~aemg.errors.DataError` naming the file and the digest mismatch).

Each shipped model is an ordinary checkpoint folder (``trainer.json``, ``model.safetensors``,
``optimizer.safetensors``) plus ``MODEL_CARD.md``; ``index.json`` records the files' digests, the
command that made it and a reference embedding value checked by the tests.
:func:`ship` writes a new entry from a run (``python -m aemg.weights ship RUN NAME``).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from .._io import file_digest
from ..errors import ConfigError, DataError

HERE = Path(__file__).resolve().parent
INDEX = HERE / "index.json"
#: files of a shipped checkpoint whose digests are recorded
FILES = ("trainer.json", "model.safetensors", "optimizer.safetensors")

_verified: set[str] = set()


def _index() -> dict:
    try:
        return json.loads(INDEX.read_text()) if INDEX.is_file() else {}
    except ValueError as exc:
        raise DataError(INDEX, f"corrupt index of the shipped weights ({exc}); reinstall aemg") from None


def shipped_names() -> list[str]:
    """Names of the weights shipped with this installation."""
    return sorted(_index())


def is_shipped(name) -> bool:
    """True when ``name`` (a str, not an existing path) names shipped weights."""
    return isinstance(name, str) and name in _index() and not os.path.exists(name)


def shipped_path(name: str) -> Path:
    """The verified checkpoint folder of shipped weights ``name``.

    Raises
    ------
    ConfigError
        Unknown name (lists the shipped ones).
    DataError
        A file missing, or its SHA-256 not the one recorded in ``index.json``.
    """
    entry = _index().get(name)
    if entry is None:
        raise ConfigError(f"{name!r}: no such shipped weights; shipped: "
                          f"{', '.join(shipped_names()) or 'none'}")
    folder = HERE / name
    if name not in _verified:
        for f in FILES:
            p = folder / f
            if not p.is_file():
                raise DataError(p, f"missing file of the shipped weights {name!r}; reinstall aemg")
            got, want = file_digest(p)[1], entry["sha256"][f]
            if got != want:
                raise DataError(p, f"SHA-256 digest mismatch: {got} found, {want} recorded for the shipped "
                                   f"weights {name!r} (altered or corrupt file); reinstall aemg")
        _verified.add(name)
    return folder


def card(name: str) -> str:
    """The model card (Markdown) of shipped weights ``name``."""
    return (shipped_path(name) / "MODEL_CARD.md").read_text()


def reference_embedding(model, run_angles) -> float:
    """A fixed probe value of a model: the first coordinate of the mean sentence embedding of a
    deterministic input (the first two sentences of ``synthetic_corpus(seed=0)`` with 3 tokens
    each, at the model's token length and the run's channel count), float. Recorded in
    ``index.json`` at shipping time and checked by the tests."""
    import numpy as np
    import torch

    from ..train.data import synthetic_corpus, to_tensors
    corpus = synthetic_corpus(2, n_channels=len(run_angles), token_len=int(model.cfg.token_len),
                              tokens=(3, 3), seed=0)
    batch = to_tensors(corpus.batch(np.arange(2)))
    angles = torch.tensor(np.asarray(run_angles), dtype=torch.float32)
    with torch.no_grad():
        out = model.embed(batch, angles, torch.zeros_like(angles))
    return float(out["sentence"].mean(dim=0)[0])


def ship(run: str | os.PathLike, name: str, card_text: str, command: str) -> dict:
    """Copy the latest checkpoint of ``run`` into the package as ``name`` with its model card,
    and record digests, the command and the reference embedding in ``index.json``.

    The copy is written to a temporary folder and moved into place; ``index.json`` is replaced
    atomically, so an interrupted call leaves the previous state.
    """
    from .._io import atomic_write
    from ..train.checkpoint import load_model, resolve

    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"name={name!r}: a plain folder name is needed")
    src = resolve(run)
    tmp = HERE / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for f in FILES:
        shutil.copyfile(src / f, tmp / f)
    (tmp / "MODEL_CARD.md").write_text(card_text)
    model, ck = load_model(tmp, "cpu")
    angles = (ck.state.get("data") or {}).get("channel_angles") or []
    entry = {"sha256": {f: file_digest(tmp / f)[1] for f in FILES}, "command": command,
             "source": str(src), "stage": ck.state.get("stage"), "step": ck.state.get("step"),
             "reference_embedding": reference_embedding(model, angles),
             "bytes": sum((tmp / f).stat().st_size for f in FILES)}
    dest = HERE / name
    old = HERE / f".{name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    index = _index()
    index[name] = entry
    atomic_write(INDEX, (json.dumps(index, indent=1, sort_keys=True) + "\n").encode())
    _verified.discard(name)
    return entry


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m aemg.weights",
                                description="Shipped weights: list, verify, ship.")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="names, steps and sizes")
    v = sub.add_parser("verify", help="check the digests of one shipped model")
    v.add_argument("name")
    s = sub.add_parser("ship", help="copy a run's latest checkpoint into the package")
    s.add_argument("run")
    s.add_argument("name")
    s.add_argument("--card", required=True, help="Markdown model card file")
    s.add_argument("--command", required=True, help="the command that retrains it")
    a = p.parse_args(argv)
    try:
        if a.cmd == "list":
            for n, e in sorted(_index().items()):
                print(f"{n}: stage {e.get('stage')} step {e.get('step')}, {e.get('bytes', 0) / 1e6:.1f} MB")
        elif a.cmd == "verify":
            print(shipped_path(a.name))
        else:
            print(json.dumps(ship(a.run, a.name, Path(a.card).read_text(), a.command), indent=1))
    except (ConfigError, DataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
