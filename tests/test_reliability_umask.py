"""Files and folders written by rectify, tokenize and pretrain get the modes the umask allows
(colleagues sharing a folder can read the index, corpus.json and checkpoints, not only shards)."""
import os
import stat

import pytest
from helpers import synthetic_archive
from test_pretrain import MICRO

from aemg.tokenizer.corpus import tokenize_archive
from aemg.train import pretrain, synthetic_corpus


def _modes(root):
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_every_file_honours_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        synthetic_archive(tmp_path / "a", n_subjects=1)
        tokenize_archive(tmp_path / "a", tmp_path / "c", workers=1, progress=False)
        pretrain(synthetic_corpus(6, n_channels=4, token_len=20, tokens=(2, 6), seed=1), tmp_path / "r",
                 MICRO, stage=1, steps=2, progress=False)
    finally:
        os.umask(old)
    for name in ("a", "c", "r"):
        for path, mode in _modes(tmp_path / name).items():
            want = (0o777 if (tmp_path / name / path).is_dir() else 0o666) & ~mask
            assert mode == want, f"{name}/{path}: {oct(mode)}, expected {oct(want)}"
