"""Where aemg finds the shared datasets: ``AEMG_DATA_ROOT``, else ``../shared/data`` next to the
repository (the layout of the project's machines), else ``./data``; and the natural order of the
names found there (:func:`natural_key`)."""
from __future__ import annotations

import os
import re
from pathlib import Path


def natural_key(text: str) -> list:
    """Sort key that orders embedded numbers numerically (``user2`` before ``user10``, subject
    ``"2"`` before ``"10"``)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


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
