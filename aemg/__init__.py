"""aemg: self-supervised foundation models for surface EMG (AEMG).

Public API (imported lazily so ``import aemg`` stays fast and torch loads only when needed)::

    from aemg import Recording, Device, get_device
"""
from ._version import __version__
from .data import Device, Recording, get_device
from .errors import AemgError, DataError


def embed(*args, **kwargs):
    """Sentence and token embeddings from a pre-trained checkpoint (see :func:`aemg.embed.embed`)."""
    from .embed import embed as _embed
    return _embed(*args, **kwargs)


__all__ = ["__version__", "embed", "AemgError", "DataError", "Device", "Recording", "get_device"]
