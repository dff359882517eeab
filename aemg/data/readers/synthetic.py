"""Synthetic recordings as a dataset: wraps :mod:`aemg.data.synthetic`.

Sources are the generator's units (``synthetic_units(config)``); ``read(unit)`` returns
``generate_unit(config, unit)``. No folder is needed (``root`` is ignored). Options are the fields
of ``SyntheticConfig`` (e.g. ``seed``), or a ready ``config=``.
"""
from __future__ import annotations

import dataclasses

from ...errors import ConfigError
from ..recording import Recording
from . import register_reader
from .base import DatasetInfo, Reader


def _generator():
    from .. import synthetic  # owned by the synthetic-data module; imported on use

    return synthetic


@register_reader
class SyntheticReader(Reader):
    """Reader that generates synthetic EMG recordings (reproducible from ``seed``).

    Parameters
    ----------
    root : ignored
    config : SyntheticConfig or None
        A full configuration; when given, no other option is allowed.
    **options
        Fields of ``SyntheticConfig``.
    """

    info = DatasetInfo(
        name="synthetic", device="(config)", channels=0, rate=None, subjects=None, classes=(),
        units="(config)", description="synthetic EMG bursts from aemg.data.synthetic (no files; seeded)")
    needs_root = False

    def __init__(self, root=None, config=None, **options):
        super().__init__(None)
        gen = _generator()
        if config is not None:
            if options:
                raise ConfigError("reader 'synthetic': give either config= or its fields, not both")
            if not isinstance(config, gen.SyntheticConfig):
                raise ConfigError(f"config={config!r}: expected a SyntheticConfig")
            self.config = config
        else:
            fields = {f.name for f in dataclasses.fields(gen.SyntheticConfig)}
            unknown = sorted(set(options) - fields)
            if unknown:
                raise ConfigError(f"reader 'synthetic': unknown option(s) {', '.join(unknown)}; "
                                  f"options: {', '.join(sorted(fields))}")
            self.config = gen.SyntheticConfig(**options)

    @classmethod
    def declared_options(cls):
        """``config`` and every field of ``SyntheticConfig`` with its type (none required)."""
        import typing
        gen = _generator()
        hints = typing.get_type_hints(gen.SyntheticConfig)
        return {"config": (typing.Any, None),
                **{f.name: (hints.get(f.name, typing.Any), f.default)
                   for f in dataclasses.fields(gen.SyntheticConfig)}}

    def sources(self) -> list[str]:
        return [str(u) for u in _generator().synthetic_units(self.config)]

    def read(self, source: str) -> list[Recording]:
        return list(_generator().generate_unit(self.config, source))

    def __repr__(self) -> str:
        return f"SyntheticReader({self.config!r})"
