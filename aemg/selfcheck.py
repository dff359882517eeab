"""``python -m aemg.selfcheck``: prove the installation is whole.

Imports every subpackage (``aemg.kernels`` is mapped from the top-level kernels/ folder, so it is
the first thing a broken install loses), reports which compute backends load here, and exits
non-zero when something that should be installed is missing. ``AEMG_NO_EXT=1`` (at build time,
or now: then the built extensions are not loaded) makes the Cython extensions optional.
"""
from __future__ import annotations

import importlib
import os
import sys


def main() -> int:
    import aemg
    import aemg.kernels

    problems = []
    print(f"aemg {aemg.__version__} from {os.path.dirname(aemg.__file__)}")
    print(f"aemg.kernels from {os.path.dirname(aemg.kernels.__file__)}")
    for mod in ("numpy", "scipy", "numba", "torch", "h5py"):
        try:
            m = importlib.import_module(mod)
            print(f"{mod} {getattr(m, '__version__', '?')}")
        except ImportError as exc:
            problems.append(f"{mod}: {exc}")
    try:
        ext = importlib.import_module("aemg._ext")
        built = sorted(f.split(".")[0] for f in os.listdir(os.path.dirname(ext.__file__))
                       if f.endswith((".so", ".pyd")))
        note = " (not loaded: AEMG_NO_EXT=1)" if ext.DISABLED else ""
        print(f"compiled extensions: {built or 'none'}{note}")
        csrc = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(ext.__file__))), "csrc")
        if not built and not ext.DISABLED and os.path.isdir(csrc) \
                and any(f.endswith(".pyx") for f in os.listdir(csrc)):
            problems.append("Cython sources exist but no extension was built")
    except ImportError as exc:
        problems.append(f"aemg._ext: {exc}")
    from aemg import backends
    for op in backends.list_ops():
        if not op.startswith("_"):
            print(f"backends[{op}]: available {backends.available(op)}")
    from aemg import weights
    from aemg.errors import AemgError
    for name in weights.shipped_names() or ["aemg-tiny"]:
        try:
            print(f"shipped weights {name}: {weights.shipped_path(name)} (digests verified)")
        except AemgError as exc:  # a wheel without its package data, or an altered file
            problems.append(f"shipped weights {name}: {exc}")
    for p in problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
