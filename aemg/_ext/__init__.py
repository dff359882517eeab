"""Compiled Cython extensions built by setup.py from csrc/ (``csrc/<name>.pyx -> aemg._ext.<name>``).

``AEMG_NO_EXT=1`` means "no compiled extensions", in one place:

- at build time (setup.py) nothing is compiled;
- at run time (this module) installed extensions are not loaded: every ``import aemg._ext.<name>``
  raises ImportError, so each op falls back to its Numba or NumPy backend (see
  :mod:`aemg.backends`) and the text-table reader to ``np.loadtxt``. CI runs the tokenizer and
  dispatch tests this way so the pure-Python path stays green.
"""
import os

#: True when ``AEMG_NO_EXT`` was set to a true value when aemg was first imported.
DISABLED = os.environ.get("AEMG_NO_EXT", "").lower() in {"1", "true", "yes", "on"}

if DISABLED:
    __path__ = []


def check_enabled(module: str) -> None:
    """Raise ImportError naming ``AEMG_NO_EXT`` when the extensions are disabled."""
    if DISABLED:
        raise ImportError(f"{module}: compiled extensions are disabled (AEMG_NO_EXT=1)")
