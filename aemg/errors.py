"""Exceptions raised by aemg.

Every error caused by bad input names *where* the problem is (a file, an argument, a field) and
*what* the problem is, so a user can fix it without reading a traceback.
"""
from __future__ import annotations

import os


class AemgError(Exception):
    """Base class of all errors raised on purpose by aemg."""


class DataError(AemgError, ValueError):
    """Bad input data: ``DataError(where, problem)`` renders as ``"<where>: <problem>"``.

    Parameters
    ----------
    where : str or os.PathLike
        The file, folder, argument or field that holds the problem.
    problem : str
        What is wrong, in words a user can act on.
    """

    def __init__(self, where: str | os.PathLike, problem: str):
        self.where = os.fspath(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")


class BackendUnavailable(AemgError, RuntimeError):
    """An explicitly requested compute backend cannot be loaded on this machine."""


class ConfigError(AemgError, ValueError):
    """A configuration value or command-line argument is invalid."""


#: longest text of one value (a file's field, a path) quoted in a message
SHORT_CHARS = 80


def shorten(text: str, limit: int = 4 * SHORT_CHARS) -> str:
    """``text`` cut to ``limit`` characters with the number of characters left out (a 50 KB
    field of a broken file must not flood a warning or errors.jsonl)."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"
