"""Dataset readers: one :class:`Reader` per public dataset or file format, found by name.

>>> from aemg.data.readers import read_dataset
>>> for rec in read_dataset("coteallard", split="evaluation"):   # doctest: +SKIP
...     print(rec)

Readers are registered lazily: the registry maps a name to ``module:Class`` and imports the module
on first use, so ``import aemg.data`` stays light.
"""
from __future__ import annotations

import importlib
import os
from typing import Iterator

from ...errors import ConfigError
from ..recording import Recording
from .base import DatasetInfo, Reader, check_options

__all__ = ["DatasetInfo", "Reader", "get_reader", "list_readers", "read_dataset", "register_reader",
           "reader_class", "reader_names"]

# name -> "module:Class" (built-ins, imported on first use) or the class itself (registered)
_REGISTRY: dict[str, str | type[Reader]] = {
    "uci_myo": "uci_myo:UciMyoReader",
    "coteallard": "coteallard:CoteAllardReader",
    "3dc": "threedc:ThreeDCReader",
    "libemg_myo": "libemg_myo:LibEmgMyoReader",
    "myo_readings": "myo_readings:MyoReadingsReader",
    "ciil_myo": "ciil_myo:CiilMyoReader",
    "suguru_longterm_armband": "suguru:SuguruLongtermReader",
    "multiday_4ch": "multiday_4ch:MultiDay4chReader",
    "ninapro": "ninapro:NinaproReader",
    "epn612": "epn612:Epn612Reader",
    "grabmyo": "grabmyo:GrabMyoReader",
    "generic": "generic:GenericReader",
    "synthetic": "synthetic:SyntheticReader",
}


def register_reader(cls: type[Reader]) -> type[Reader]:
    """Register a :class:`Reader` subclass under ``cls.info.name`` (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Reader)) or not isinstance(
            getattr(cls, "info", None), DatasetInfo):
        raise ConfigError(f"register_reader({cls!r}): expected a Reader subclass with an `info` DatasetInfo")
    _REGISTRY[cls.info.name] = cls
    return cls


def reader_class(name: str) -> type[Reader]:
    """The reader class registered as ``name``; ConfigError listing the known names otherwise."""
    entry = _REGISTRY.get(name)
    if entry is None:
        raise ConfigError(f"unknown dataset reader {name!r}; known readers: {', '.join(sorted(_REGISTRY))}")
    if isinstance(entry, str):
        module, cls_name = entry.split(":")
        entry = getattr(importlib.import_module(f"{__name__}.{module}"), cls_name)
        _REGISTRY[name] = entry
    return entry


def get_reader(name: str, root: str | os.PathLike | None = None, /, **options) -> Reader:
    """An instance of reader ``name`` on folder ``root``.

    Parameters
    ----------
    name : str
        Registered reader name (see :func:`list_readers`).
    root : path or None
        The dataset folder; None uses ``default_data_root() / <the reader's default folder>``.
    **options
        Reader-specific options (see each reader's docstring).

    Raises
    ------
    ConfigError
        Unknown reader name; a reserved (root, self), unknown, missing or mistyped option.
    DataError
        The dataset folder does not exist.
    """
    cls = reader_class(name)
    check_options(cls, options)  # reserved, unknown, missing and mistyped options
    reader = cls(root, **options)
    reader._options = dict(options)
    return reader


def list_readers() -> list[DatasetInfo]:
    """Information on every registered reader, sorted by name."""
    return [reader_class(name).info for name in sorted(_REGISTRY)]


def reader_names() -> list[str]:
    """Names of every registered reader, sorted (imports no reader module)."""
    return sorted(_REGISTRY)


def read_dataset(name: str, root: str | os.PathLike | None = None, /, **options) -> Iterator[Recording]:
    """Iterate over every raw recording of a dataset (``iter(get_reader(name, root, **options))``)."""
    return iter(get_reader(name, root, **options))
