"""Geometric mapping of any electrode layout onto the standard topology.

The standard topology is ``n_virtual`` virtual electrodes equally spaced on one ring around the
forearm: virtual electrode ``k`` sits at angle ``2*pi*k/n_virtual`` (angle 0 = the device's own
channel-1 direction, see :mod:`aemg.data.devices`) and at the z of the device's *main ring*.

Method (:func:`topology_matrix`):

1. Electrodes are grouped into rings by their z position (to 0.1 mm). The **main ring** is the ring
   with the most electrodes (ties: the one nearest z = 0, the device's reference ring, then the
   lower z).
2. Within each ring, a virtual electrode gets **circular linear interpolation** between its two
   angular neighbours in that ring (weights ``1 - d/gap``). A gap between neighbours is *bridged*
   only if it is at most ``2.5 x`` the main ring's median gap; angles inside an unbridged gap are
   not covered by that ring (this is what makes a high-density grid a partial-coverage device).
   An electrode of another ring with no bridged gap on either side (an isolated "spot" electrode,
   e.g. Ninapro's biceps/forearm spots) contributes nothing, not even at its own angle.
3. Rings covering a virtual electrode are combined with weights ``exp(-(dz / z_scale)^2 / 2)``
   where ``dz`` is the ring's distance to the main ring (``z_scale`` = 30 mm by default), so a
   second armband 30 mm away contributes 0.61 of the main ring's weight and wrist rings 150 mm
   away contribute nothing (weights below 1e-3 are dropped). Rows are normalised to sum to 1.
4. **Outside coverage** (no ring covers the virtual angle, e.g. the far side of the arm for an
   8x8 grid): the virtual electrode takes the weights at the angularly nearest electrode of the
   main ring, i.e. the edge of the covered arc (constant extension), so every row still sums to 1
   and no virtual channel is silent; :func:`coverage_mask` reports these positions as False so
   downstream code can mask them.

All weights are non-negative (interpolation, never extrapolation with overshoot). A ring of
``n_virtual`` electrodes at the virtual angles maps to itself exactly (identity), and rotating a
ring device by ``m`` virtual steps circularly shifts the rows by ``m``.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import DataError
from .devices import TWO_PI, Device, get_device

#: Width of the Gaussian weight of rings at other z positions, metres.
Z_SCALE = 0.03
#: A gap between angular neighbours in a ring is interpolated across only if it is at most this
#: multiple of the main ring's median gap.
BRIDGE_FACTOR = 2.5
_MIN_RING_WEIGHT = 1e-3
_Z_DECIMALS = 4  # rings grouped by z rounded to 0.1 mm


def virtual_angles(n_virtual: int = 16) -> np.ndarray:
    """Angles of the virtual electrodes, radians, shape (n_virtual,)."""
    return TWO_PI * np.arange(n_virtual) / n_virtual


def _rings(device: Device) -> tuple[list[np.ndarray], int, np.ndarray]:
    """Electrode indices per ring, the main ring's position in that list, ring z values."""
    zr = np.round(device.z, _Z_DECIMALS)
    levels = np.unique(zr)
    rings = [np.flatnonzero(zr == lv) for lv in levels]
    sizes = np.array([r.size for r in rings])
    order = sorted(range(len(rings)), key=lambda i: (-sizes[i], abs(levels[i]), levels[i]))
    return rings, order[0], levels


def _sorted_unique_angles(angles: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Distinct angles of a ring (sorted) and, for each, the local indices of the electrodes there."""
    a = np.round(angles % TWO_PI, 9) % TWO_PI
    uniq = np.unique(a)
    return uniq, [np.flatnonzero(a == u) for u in uniq]


def _gaps(uniq: np.ndarray) -> np.ndarray:
    """Angular gap from each distinct angle to the next one counter-clockwise (wrapping)."""
    if uniq.size == 1:
        return np.array([TWO_PI])
    return np.diff(np.concatenate([uniq, uniq[:1] + TWO_PI]))


def _ring_weights(angles: np.ndarray, phi: float, bridge: float, *,
                  main: bool) -> np.ndarray | None:
    """Circular linear interpolation weights over one ring's electrodes at angle ``phi``.

    Returns None when ``phi`` lies in a gap wider than ``bridge`` (not covered by this ring), or,
    for a ring other than the main one, on an electrode with no bridged gap on either side.
    """
    uniq, members = _sorted_unique_angles(angles)
    w = np.zeros(angles.size)
    d0 = (phi - uniq) % TWO_PI
    gaps = _gaps(uniq)
    hit = np.flatnonzero(np.minimum(d0, TWO_PI - d0) < 1e-9)
    if hit.size:  # exactly on an electrode
        h = int(hit[0])
        if not main and (uniq.size == 1 or min(gaps[h], gaps[h - 1]) > bridge + 1e-12):
            return None
        w[members[h]] = 1.0 / members[h].size
        return w
    if uniq.size == 1:
        return None
    i = int(np.argmin(d0))  # nearest electrode clockwise of phi (smallest ccw distance to phi)
    gap = gaps[i]
    if gap > bridge + 1e-12:
        return None
    j = (i + 1) % uniq.size
    t = d0[i] / gap
    w[members[i]] += (1.0 - t) / members[i].size
    w[members[j]] += t / members[j].size
    return w


def _weights_at(device: Device, phi: float, rings, main: int, levels, bridge: float) -> np.ndarray | None:
    row = np.zeros(device.n_channels)
    total = 0.0
    for r, idx in enumerate(rings):
        wz = float(np.exp(-0.5 * ((levels[r] - levels[main]) / Z_SCALE) ** 2))
        if wz < _MIN_RING_WEIGHT:
            continue
        w = _ring_weights(device.angles[idx], phi, bridge, main=r == main)
        if w is None:
            continue
        row[idx] += wz * w
        total += wz
    if total == 0.0:
        return None
    return row / total


@lru_cache(maxsize=256)
def _matrix_cached(device_key: tuple, n_virtual: int) -> tuple[np.ndarray, np.ndarray]:
    name, angles, z = device_key
    device = Device(name, np.array(angles), np.array(z))
    rings, main, levels = _rings(device)
    main_uniq, _ = _sorted_unique_angles(device.angles[rings[main]])
    bridge = BRIDGE_FACTOR * float(np.median(_gaps(main_uniq)))
    phis = virtual_angles(n_virtual)
    W = np.zeros((n_virtual, device.n_channels))
    covered = np.zeros(n_virtual, dtype=bool)
    for k, phi in enumerate(phis):
        row = _weights_at(device, phi, rings, main, levels, bridge)
        if row is not None:
            W[k], covered[k] = row, True
    for k in np.flatnonzero(~covered):
        d = np.abs(main_uniq - phis[k]) % TWO_PI
        d = np.minimum(d, TWO_PI - d)
        W[k] = _weights_at(device, float(main_uniq[int(np.argmin(d))]), rings, main, levels, bridge)
    W.setflags(write=False)
    covered.setflags(write=False)
    return W, covered


def _key(device: Device) -> tuple:
    return (device.name, tuple(device.angles.tolist()), tuple(device.z.tolist()))


def topology_matrix(device: str | Device, n_virtual: int = 16) -> np.ndarray:
    """Weights that map a device's channels onto the standard ring of virtual electrodes.

    Parameters
    ----------
    device : str or Device
        Registry name, spec string (``"ring:8"``, ``"grid:8x8@0.01"``) or :class:`Device`.
    n_virtual : int
        Number of virtual electrodes on the standard ring.

    Returns
    -------
    np.ndarray, shape (n_virtual, C), float64
        Non-negative weights, each row sums to 1: ``virtual = W @ channels``.
    """
    if int(n_virtual) < 1:
        raise DataError("n_virtual", f"needs at least one virtual electrode, got {n_virtual}")
    W, _ = _matrix_cached(_key(get_device(device)), int(n_virtual))
    return W.copy()


def coverage_mask(device: str | Device, n_virtual: int = 16) -> np.ndarray:
    """Which virtual electrodes lie inside the device's angular coverage, shape (n_virtual,) bool.

    False marks virtual electrodes whose weights were copied from the nearest covered position
    (e.g. the far side of the forearm for a high-density grid).
    """
    if int(n_virtual) < 1:
        raise DataError("n_virtual", f"needs at least one virtual electrode, got {n_virtual}")
    _, covered = _matrix_cached(_key(get_device(device)), int(n_virtual))
    return covered.copy()


def map_topology(x: np.ndarray, device: str | Device, n_virtual: int = 16) -> np.ndarray:
    """Map samples from a device's channels to the standard virtual electrodes.

    Parameters
    ----------
    x : array, shape (C, T)
        Samples of the device's ``C`` channels (any real dtype, any memory layout).
    device : str or Device
        The device that recorded ``x``.
    n_virtual : int
        Number of virtual electrodes.

    Returns
    -------
    np.ndarray, shape (n_virtual, T), float32
    """
    dev = get_device(device)
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] != dev.n_channels:
        raise DataError("x", f"expected shape ({dev.n_channels}, T) for device {dev.name!r}, got {x.shape}")
    W = topology_matrix(dev, n_virtual)
    if x.dtype == np.float64:
        return (W @ x).astype(np.float32)
    return W.astype(np.float32) @ x.astype(np.float32, copy=False)
