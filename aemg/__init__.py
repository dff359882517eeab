"""aemg: self-supervised foundation models for surface EMG (AEMG).

Public API (imported lazily so ``import aemg`` stays fast and torch loads only when needed)::

    from aemg import Recording, Device, get_device
    model = aemg.load("aemg-tiny")          # shipped pre-trained weights (aemg.weights)
"""
from ._version import __version__
from .data import Device, Recording, get_device
from .errors import AemgError, DataError


def embed(*args, **kwargs):
    """Sentence and token embeddings from a pre-trained checkpoint (see :func:`aemg.embed.embed`)."""
    from .embed import embed as _embed
    return _embed(*args, **kwargs)


def load(run="aemg-tiny", device: str = "cpu"):
    """The pre-trained AEMG model (eval mode) of a run folder, a checkpoint folder or shipped
    weights by name (default ``"aemg-tiny"``; :func:`aemg.weights.shipped_names`)."""
    from .train.checkpoint import load_model
    return load_model(run, device)[0]


__all__ = ["__version__", "embed", "load", "AemgError", "DataError", "Device", "Recording", "get_device"]
