"""Compiled Cython extensions built by setup.py from csrc/ (absent when built with AEMG_NO_EXT=1)."""
