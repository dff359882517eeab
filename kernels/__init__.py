"""Triton kernels of aemg, installed as ``aemg.kernels`` (the folder is mapped by pyproject.toml).

Import this package freely: Triton itself is imported lazily by each kernel module, and launching a
kernel needs a CUDA GPU or ``TRITON_INTERPRET=1`` (CPU interpreter, for tests).
"""
