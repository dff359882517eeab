"""Where aemg finds the shared datasets: ``AEMG_DATA_ROOT``, else ``../shared/data`` next to the
repository (the layout of the project's machines), else ``./data``."""
from __future__ import annotations

import os
from pathlib import Path


def default_data_root() -> Path:
    """The configured data root (may not exist; callers check and say so)."""
    env = os.environ.get("AEMG_DATA_ROOT")
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[2]
    for cand in (repo.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"):
        if cand.is_dir():
            return cand
    return Path("data")
