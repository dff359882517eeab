"""Configuration plumbing shared by every config loader: a frozen dataclass from a mapping
(nested tables included) and a TOML / JSON file reader.

Used by :class:`aemg.model.config.PretrainConfig` (``aemg pretrain --config``), the tokenizer's
:class:`~aemg.tokenizer.tokens.TokenizerConfig` (``aemg tokenize --config``, corpus metadata) and
the rectifier's :class:`~aemg.data.rectify.StandardSpace`. Unknown keys, at any depth, raise
:class:`~aemg.errors.ConfigError` naming their key path (``run.toml: model.widht: unknown key``).
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")

#: scalar kinds a value is converted to when the field's current value has that kind
_SCALARS = (bool, int, float, str, tuple)


def _nested_class(cls: type, name: str) -> type | None:
    """The dataclass type of field ``name`` of ``cls`` (also inside ``X | None``), else None."""
    try:
        hint = typing.get_type_hints(cls).get(name)
    except Exception:  # noqa: BLE001 - unresolvable annotation: treat as a plain value
        return None
    for kind in (hint, *typing.get_args(hint)):
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            return kind
    return None


def _key(where: str, name: str) -> str:
    """Key path ``where.name`` (``where`` ending in ``:`` is a file: ``run.toml: name``)."""
    if not where:
        return name
    return f"{where} {name}" if where.endswith(":") else f"{where}.{name}"


def _coerce(value: Any, current: Any, where: str) -> Any:
    """``value`` as the kind of the field's ``current`` value (bool strict: true / false only);
    values of fields whose current value is None or of another kind pass unchanged."""
    want = type(current)
    if want is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}={value!r}: expected true/false")
        return value
    if want not in _SCALARS or current is None:
        return value
    if want is int and (isinstance(value, bool) or (isinstance(value, float) and not value.is_integer())):
        raise ConfigError(f"{where}={value!r}: expected an integer")
    try:
        return want(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}={value!r}: expected {want.__name__}") from None


def dataclass_from_dict(target: type[T] | T, values: Mapping[str, Any], where: str = "config") -> T:
    """A dataclass built from ``values``.

    Parameters
    ----------
    target : dataclass type or instance
        A type: start from its defaults; an instance: change only the keys given.
    values : mapping
        Field name -> value; a field holding a dataclass takes a nested mapping (applied the
        same way, on top of the field's current value). Values are converted to the kind of the
        field's current value (``int``, ``float``, ``str``, ``tuple``; ``bool`` accepts only
        true / false, ``int`` no fractional number).
    where : str
        Key path of ``values`` in messages: ``"config"`` gives ``config.model.width``; a file
        name ending in ``:`` gives ``run.toml: model.width``.

    Raises
    ------
    ConfigError
        ``values`` is not a mapping, holds an unknown key (naming ``where.key`` and the known
        keys) or a value of the wrong kind; the dataclass's own checks raise theirs.
    """
    cls = target if isinstance(target, type) else type(target)
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"dataclass_from_dict: {cls!r} is not a dataclass")
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where.rstrip(':')}: expected a table, got {type(values).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(known))
    if unknown:
        keys = ", ".join(_key(where, k) for k in unknown)
        raise ConfigError(f"{keys}: unknown key{'s' if len(unknown) > 1 else ''}; known: {sorted(known)}")
    base = target if not isinstance(target, type) else None
    out = {}
    for name, value in values.items():
        f = known[name]
        if base is not None:
            current = getattr(base, name)
        elif f.default is not dataclasses.MISSING:
            current = f.default
        elif f.default_factory is not dataclasses.MISSING:
            current = f.default_factory()
        else:
            current = None
        path = _key(where, name)
        nested = current if dataclasses.is_dataclass(current) else _nested_class(cls, name)
        if nested is None or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
            out[name] = _coerce(value, current, path)
        elif isinstance(value, Mapping):
            out[name] = dataclass_from_dict(nested, value, path)
        else:
            raise ConfigError(f"{path}: expected a table, got {type(value).__name__}")
    try:
        return dataclasses.replace(base, **out) if base is not None else cls(**out)
    except TypeError as exc:  # a required field missing
        raise ConfigError(f"{where.rstrip(':')}: {exc}") from None


def read_table(path: str | os.PathLike) -> dict[str, Any]:
    """The top-level table of a ``.json`` file, else of a TOML file (``tomllib``; on Python 3.10
    the ``tomli`` package, a dependency there). ConfigError naming the file when it cannot be
    read or parsed or is not a table."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    is_json = path.suffix.lower() == ".json"
    try:
        if is_json:
            d = json.loads(text)
        else:
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10
                try:
                    import tomli as tomllib
                except ImportError:
                    raise ConfigError(f"{path}: reading TOML on Python 3.10 needs the tomli package "
                                      "(pip install tomli), or use a .json config") from None
            d = tomllib.loads(text.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if is_json else 'TOML'} ({exc})") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: expected a table at top level")
    return d
