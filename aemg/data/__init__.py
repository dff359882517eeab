"""Data layer: the Recording model, device geometries, readers, rectification and the archive."""
from .devices import Device, get_device, known_devices, register_device
from .readers import get_reader, list_readers, read_dataset  # readers themselves load on first use
from .recording import UNLABELLED, Recording, intervals_to_labels, labels_to_intervals
from .trials import split_trials

__all__ = ["Device", "Recording", "UNLABELLED", "get_device", "known_devices", "register_device",
           "intervals_to_labels", "labels_to_intervals", "get_reader", "list_readers", "read_dataset",
           "split_trials"]
