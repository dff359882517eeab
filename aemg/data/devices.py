"""Electrode geometries of EMG devices, and a registry of known devices.

Geometry convention (one for every device): each electrode sits on the skin of a forearm modelled
as a cylinder, at

- ``angle``: position around the circumference, radians in [0, 2*pi), counter-clockwise seen from
  the hand, 0 = the device's own channel-1 direction (armband rotation between subjects is unknown,
  so 0 is a device convention, not an anatomical landmark);
- ``z``: position along the forearm, metres from the device's reference ring (positive towards the
  hand).

A :class:`Device` also carries its nominal sampling rate and amplitude units. Users declare their
own devices with a spec string (``"ring:8"``, ``"ring:6@0.3"`` for a ring starting 0.3 rad off,
``"grid:8x8@0.01"`` for an 8x8 grid with 10 mm pitch) or explicit positions
(:meth:`Device.from_positions`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError

TWO_PI = 2.0 * np.pi


@dataclass(frozen=True, eq=False)
class Device:
    """An EMG acquisition device: electrode geometry, nominal rate and units.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"myo"``.
    angles : np.ndarray, shape (C,), float64
        Electrode angle around the forearm, radians in [0, 2*pi).
    z : np.ndarray, shape (C,), float64
        Electrode position along the forearm, metres.
    rate : float or None
        Nominal sampling rate, Hz (None when it varies by recording).
    units : str
        Amplitude units of raw samples: ``"int8"`` (8-bit counts), ``"adc"`` (ADC counts),
        ``"V"``, ``"mV"``, ``"uV"`` or ``"a.u."``.
    description : str
        One line for ``aemg datasets`` and plots.
    """

    name: str
    angles: np.ndarray
    z: np.ndarray
    rate: float | None = None
    units: str = "a.u."
    description: str = ""
    groups: tuple[str, ...] = field(default=())

    def __post_init__(self):
        a = np.asarray(self.angles, dtype=np.float64).reshape(-1) % TWO_PI
        z = np.asarray(self.z, dtype=np.float64).reshape(-1)
        if a.size == 0:
            raise ConfigError(f"device {self.name!r}: no electrodes")
        if z.size != a.size:
            raise ConfigError(f"device {self.name!r}: {a.size} angles but {z.size} z positions")
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(z))):
            raise ConfigError(f"device {self.name!r}: electrode positions must be finite")
        a.setflags(write=False)
        z.setflags(write=False)
        object.__setattr__(self, "angles", a)
        object.__setattr__(self, "z", z)

    @property
    def n_channels(self) -> int:
        return int(self.angles.size)

    @classmethod
    def ring(cls, n: int, *, offset: float = 0.0, name: str | None = None, **kw) -> "Device":
        """``n`` electrodes equally spaced around one ring, channel 0 at ``offset`` radians."""
        if n < 1:
            raise ConfigError(f"ring:{n}: a ring needs at least one electrode")
        return cls(name or f"ring:{n}", offset + TWO_PI * np.arange(n) / n, np.zeros(n), **kw)

    @classmethod
    def from_positions(cls, name: str, angles, z=None, **kw) -> "Device":
        """A device from explicit electrode angles (radians) and optional z (metres)."""
        angles = np.asarray(angles, dtype=np.float64)
        return cls(name, angles, np.zeros_like(angles) if z is None else z, **kw)

    def to_dict(self) -> dict:
        """JSON-serialisable description (inverse: :func:`device_from_dict`)."""
        return {"name": self.name, "angles": self.angles.tolist(), "z": self.z.tolist(),
                "rate": self.rate, "units": self.units, "description": self.description,
                "groups": list(self.groups)}

    def __eq__(self, other) -> bool:
        return (isinstance(other, Device) and self.name == other.name
                and np.array_equal(self.angles, other.angles) and np.array_equal(self.z, other.z)
                and self.rate == other.rate and self.units == other.units)

    def __hash__(self) -> int:
        return hash((self.name, self.n_channels))

    def __repr__(self) -> str:
        return f"Device({self.name!r}, channels={self.n_channels}, rate={self.rate}, units={self.units!r})"


def device_from_dict(d: dict) -> Device:
    """Inverse of :meth:`Device.to_dict`."""
    return Device(d["name"], np.asarray(d["angles"]), np.asarray(d["z"]), d.get("rate"),
                  d.get("units", "a.u."), d.get("description", ""), tuple(d.get("groups", ())))


_REGISTRY: dict[str, Device] = {}


def register_device(device: Device) -> Device:
    """Add ``device`` to the registry under ``device.name`` (replacing any previous one)."""
    _REGISTRY[device.name] = device
    return device


def known_devices() -> dict[str, Device]:
    """A copy of the registry: name -> Device."""
    return dict(_REGISTRY)


_SPEC = re.compile(r"^(?P<kind>ring|grid):(?P<a>\d+)(?:x(?P<b>\d+))?(?:@(?P<p>[-+0-9.eE]+))?$")


def get_device(spec: str | Device) -> Device:
    """A device by registry name or spec string.

    Specs: ``ring:N`` (N electrodes around one ring), ``ring:N@OFFSET`` (first electrode at OFFSET
    radians), ``grid:RxC@PITCH`` (R rows along the forearm x C columns around it, PITCH metres
    between neighbours, on a forearm of 0.08 m radius).
    """
    if isinstance(spec, Device):
        return spec
    if spec in _REGISTRY:
        return _REGISTRY[spec]
    m = _SPEC.match(spec.strip())
    if not m:
        raise ConfigError(f"device {spec!r}: not a known device ({', '.join(sorted(_REGISTRY))}) "
                          "nor a spec like 'ring:8', 'ring:8@0.39' or 'grid:8x8@0.01'")
    a, b, p = int(m["a"]), m["b"], m["p"]
    if m["kind"] == "ring":
        if b is not None:
            raise ConfigError(f"device {spec!r}: a ring takes one count, e.g. 'ring:8'")
        return Device.ring(a, offset=float(p or 0.0), name=spec)
    if b is None:
        raise ConfigError(f"device {spec!r}: a grid needs rows x columns, e.g. 'grid:8x8@0.01'")
    return hd_grid(a, int(b), pitch=float(p or 0.01), name=spec)


def hd_grid(rows: int, cols: int, *, pitch: float = 0.01, radius: float = 0.045,
            name: str | None = None, **kw) -> Device:
    """A high-density grid: ``rows`` along the forearm x ``cols`` around it, ``pitch`` metres apart.

    Channels are numbered row-major. The grid is centred on angle pi/2 and z=0 on a forearm of
    ``radius`` metres, so it covers ``cols * pitch / radius`` radians of the circumference.
    """
    if rows < 1 or cols < 1:
        raise ConfigError(f"grid {rows}x{cols}: needs at least one row and one column")
    dth = pitch / radius
    th = np.pi / 2 + (np.arange(cols) - (cols - 1) / 2) * dth
    zz = (np.arange(rows) - (rows - 1) / 2) * pitch
    A, Z = np.meshgrid(th, zz)
    return Device(name or f"grid:{rows}x{cols}@{pitch}", A.ravel(), Z.ravel(), **kw)


def _builtin() -> None:
    register_device(Device.ring(8, name="myo", rate=200.0, units="int8",
                                description="Thalmic Labs Myo armband: 8 dry bipolar "
                                            "electrodes around the forearm"))
    register_device(Device.ring(10, name="3dc", rate=1000.0, units="adc",
                                description="3DC armband: 10 dry bipolar electrodes around the forearm"))
    # Ninapro DB2/DB3: 8 equally spaced around the forearm at the radio-humeral joint level, plus
    # 2 on flexor/extensor activity spots (digitorum) and 2 on biceps/triceps (placed here on a
    # proximal ring at their usual angles). DB4 uses the same 12-electrode layout (Cometa).
    ring8 = TWO_PI * np.arange(8) / 8
    ninapro_angles = np.concatenate([ring8, [np.pi / 2, 3 * np.pi / 2, np.pi / 2, 3 * np.pi / 2]])
    ninapro_z = np.concatenate([np.zeros(8), [0.03, 0.03, -0.2, -0.2]])
    register_device(Device("ninapro12", ninapro_angles, ninapro_z, rate=2000.0, units="V",
                           description="Ninapro DB2/DB3/DB4: 8 ring + 2 forearm spots + biceps/triceps (12)"))
    register_device(Device.ring(10, name="ninapro_db1", rate=100.0, units="a.u.",
                                description="Ninapro DB1: 10 Otto Bock electrodes (RMS-rectified, 100 Hz)"))
    # Ninapro DB5: two Myo armbands, the second rotated 22.5 degrees, closer to the elbow.
    register_device(Device("ninapro_db5", np.concatenate([ring8, ring8 + np.pi / 8]),
                           np.concatenate([np.zeros(8), -0.04 * np.ones(8)]), rate=200.0, units="int8",
                           description="Ninapro DB5: two Myo armbands (16), the second rotated 22.5 deg"))
    # GRABMyo: forearm 2 rings of 8 (16), wrist 2 rings of 6 (12), 2048 Hz.
    ring6 = TWO_PI * np.arange(6) / 6
    register_device(Device("grabmyo", np.concatenate([ring8, ring8, ring6, ring6]),
                           np.concatenate([np.zeros(8), 0.03 * np.ones(8),
                                           0.15 * np.ones(6), 0.18 * np.ones(6)]),
                           rate=2048.0, units="mV", groups=("forearm",) * 16 + ("wrist",) * 12,
                           description="GRABMyo: 16 forearm (2 rings of 8) + 12 wrist (2 rings of 6)"))
    register_device(hd_grid(8, 8, pitch=0.01, name="hdgrid8x8", rate=2048.0, units="mV",
                            description="High-density 8x8 grid, 10 mm pitch"))
    # MultiDay (Kaufmann et al.): a 4-channel MindMedia amplifier; the electrode placement is not
    # documented, so the default is 4 electrodes equally spaced around one forearm ring (ring:4).
    register_device(Device.ring(4, name="mindmedia4", rate=2048.0, units="a.u.",
                                description="MindMedia 4-channel amplifier "
                                            "(MultiDay); placement undocumented, modelled as ring:4"))
    register_device(Device.ring(16, name="standard16",
                                description="aemg standard space: 16 virtual electrodes around the forearm"))


_builtin()
