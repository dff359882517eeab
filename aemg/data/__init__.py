"""Data layer: the Recording model, device geometries, readers, rectification and the archive."""
from .devices import Device, get_device, known_devices, register_device
from .recording import UNLABELLED, Recording, intervals_to_labels, labels_to_intervals

__all__ = ["Device", "Recording", "UNLABELLED", "get_device", "known_devices", "register_device",
           "intervals_to_labels", "labels_to_intervals"]
