"""Helpers shared by several test modules (import as ``from helpers import ...``; tests/conftest.py
puts this folder on ``sys.path``)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch


def assert_allclose_verbose(actual: torch.Tensor, expected: torch.Tensor, *, rtol: float, atol: float,
                            what: str = "") -> None:
    """``torch.allclose`` (NaN equal to NaN) that reports the first mismatching index, both values and
    the number of mismatches."""
    actual, expected = actual.detach().double().cpu(), expected.detach().double().cpu()
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    both_nan = actual.isnan() & expected.isnan()
    bad = ~((actual - expected).abs() <= atol + rtol * expected.abs()) & ~both_nan
    if bad.any():
        first = tuple(int(i) for i in bad.nonzero()[0])
        raise AssertionError(f"{what}: {int(bad.sum())}/{bad.numel()} elements differ (rtol={rtol}, "
                             f"atol={atol}); first at {first}: got {actual[first].item()!r}, "
                             f"expected {expected[first].item()!r}")


def assert_compiles_for_gpu(code: str, timeout: float = 600) -> None:
    """Run ``code`` (Python source that compiles kernels ahead of time) in a fresh interpreter with
    ``TRITON_INTERPRET`` unset and assert it exits 0: the interpreter cannot see GPU-only compile
    errors, Triton's ptxas can. Skips when Triton has no NVIDIA backend."""
    pytest.importorskip("triton.backends.nvidia")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert run.returncode == 0, run.stderr[-4000:]


def tree_digest(root) -> dict:
    """``{relative path: sha256}`` of every file under ``root`` (two folders with equal digests hold
    the same bytes)."""
    import hashlib
    from pathlib import Path

    root = Path(root)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def synthetic_archive(out, n_subjects: int = 3, trial_s: float = 2.0, **options):
    """A small archive of the synthetic reader at ``out`` (one process, no progress bar)."""
    from aemg.data.pipeline import rectify_dataset

    rectify_dataset("synthetic", out,
                    reader_options={"n_subjects": n_subjects, "trial_s": trial_s, **options},
                    workers=1, progress=False)
    return out


def register_two_class_reader(name: str, classes: tuple, source_names: list, trials_per_source: int, *,
                              one_subject: bool = False, quiet_level: float = 0.0):
    """Register (for good: reader names are global) a reader ``name`` of 8-channel Myo recordings at
    200 Hz, 120 samples: per source ``trials_per_source`` trials alternating classes 0 and 1
    (repetition = trial // 2), class 1 = channel 1 five times louder than noise, class 0 = channel 1
    at ``quiet_level`` times noise. A source (of ``source_names``) is a subject ``P<source>``, or
    with ``one_subject`` the session ``day<source>`` of subject ``P``. Returns the reader class."""
    import numpy as np

    from aemg.data.readers import register_reader
    from aemg.data.readers.base import DatasetInfo, Reader
    from aemg.data.recording import Recording

    class _TwoClass(Reader):
        info = DatasetInfo(name=name, device="myo", channels=8, rate=200.0,
                           subjects=1 if one_subject else len(source_names), classes=tuple(classes),
                           units="a.u.", description="test data")
        needs_root = False

        def sources(self):
            return list(source_names)

        def read(self, source):
            rng = np.random.default_rng(int(source))
            who = {"subject": "P", "session": f"day{source}"} if one_subject else {"subject": f"P{source}"}
            out = []
            for i in range(trials_per_source):
                x = rng.normal(size=(8, 120)).astype(np.float32)
                x[1] *= quiet_level + (5 - quiet_level) * (i % 2)
                out.append(Recording(x, 200.0, "myo", trial=str(i), dataset=name, label=i % 2,
                                     classes=tuple(classes), meta={"repetition": i // 2}, **who))
            return out

    return register_reader(_TwoClass)
