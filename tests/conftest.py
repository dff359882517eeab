"""Shared test fixtures.

- ``TRITON_INTERPRET=1`` is set before any kernel module is imported (no GPU in CI), unless a CUDA
  run asked otherwise with ``AEMG_TEST_CUDA=1``.
- ``data_root``: the shared real recordings, from ``AEMG_DATA_ROOT`` or ``../shared/data`` beside
  the repository; tests marked ``realdata`` skip when it is missing (outside CI).
- ``AEMG_CACHE_DIR`` (the filter-design cache of ``aemg.data.designs``) points to a folder of
  this test run unless set, so tests never write to the user's cache.
- This folder is on ``sys.path``, so test modules share helpers with ``from helpers import ...``.
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

if os.environ.get("AEMG_TEST_CUDA") != "1":
    os.environ.setdefault("TRITON_INTERPRET", "1")
if "AEMG_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile
    os.environ["AEMG_CACHE_DIR"] = tempfile.mkdtemp(prefix="aemg-test-cache-")
    atexit.register(shutil.rmtree, os.environ["AEMG_CACHE_DIR"], True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from aemg.data.paths import default_data_root  # noqa: E402


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = default_data_root()
    if not root.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"shared data missing at {root} (set AEMG_DATA_ROOT)")
        pytest.skip(f"shared data not found at {root} (set AEMG_DATA_ROOT)")
    return root


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models on a shared 2-core machine: one torch thread is several times faster than two."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
