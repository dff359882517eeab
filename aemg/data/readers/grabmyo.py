"""GRABMyo (PhysioNet, WFDB): 16 forearm + 12 wrist channels, 2048 Hz, 17 gestures, 3 sessions.

Layout: ``.../session<s>_participant<p>_gesture<g>_trial<t>.hea`` with its ``.dat`` (anywhere
under the dataset folder), read with the small WFDB reader in :mod:`aemg.data.readers.wfdb`.

Decisions
---------
- Channels: signals described ``F1``..``F16`` (forearm) then ``W1``..``W12`` (wrist) when the
  header names them so (unused ``U*`` signals are dropped); a header with exactly 28 unnamed signals
  is taken in file order; anything else raises DataError. Device ``grabmyo``.
- Class id = gesture - 1; names ``"gesture 1"``..``"gesture 17"`` (see the dataset's documentation
  for the movements; the last one is rest in the published protocol).
- subject = ``<p>``, session = ``<s>``, trial = ``"<g>_<t>"``, meta ``repetition`` = t - 1.
  Units from the header (GRABMyo: mV).
"""
from __future__ import annotations

import re

import numpy as np

from ...errors import DataError
from ..recording import UNITS, Recording
from . import register_reader
from .base import DatasetInfo, Reader
from .wfdb import read_record

N_GESTURES = 17
CLASSES = tuple(f"gesture {g}" for g in range(1, N_GESTURES + 1))
_NAME = re.compile(r"session(?P<s>\d+)_participant(?P<p>\d+)_gesture(?P<g>\d+)_trial(?P<t>\d+)\.hea")
_CHANNEL = re.compile(r"(?P<group>[FW])(?P<n>\d+)")


@register_reader
class GrabMyoReader(Reader):
    """Reader of GRABMyo WFDB records (folder ``grabmyo``)."""

    info = DatasetInfo(
        name="grabmyo", device="grabmyo", channels=28, rate=2048.0, subjects=43, classes=CLASSES, units="mV",
        description="GRABMyo: 16 forearm + 12 wrist channels at 2048 Hz, 17 gestures x 7 trials, 3 sessions "
                    "(session<s>_participant<p>_gesture<g>_trial<t>.hea/.dat)",
        citation="Pradhan A. et al., Multi-day dataset of forearm and wrist electromyogram for hand "
                 "gesture recognition and biometrics, Scientific Data 9:733, 2022")
    default_folder = "grabmyo"
    download_hint = "physionet.org/content/grabmyo (WFDB .hea/.dat files)"

    def sources(self) -> list[str]:
        return self.glob("**/*.hea", name=_NAME)

    def read(self, source: str) -> list[Recording]:
        path = self.path(source)
        m = _NAME.fullmatch(source.rsplit("/", 1)[-1])
        if m is None:
            raise DataError(path, "expected session<s>_participant<p>_gesture<g>_trial<t>.hea")
        gesture = int(m["g"])
        if not 1 <= gesture <= N_GESTURES:
            raise DataError(path, f"unknown gesture {gesture} (expected 1..{N_GESTURES})")
        header, data = read_record(path)
        data = data[self._channel_order(header, path)]
        units = {sig.units for sig in header.signals}
        unit = units.pop() if len(units) == 1 else "a.u."
        return [self.recording(source, data.astype(np.float32), rate=header.fs, device="grabmyo",
                               units=unit if unit in UNITS else "a.u.", subject=str(int(m["p"])),
                               session=str(int(m["s"])), trial=f"{gesture}_{int(m['t'])}",
                               label=gesture - 1, classes=CLASSES, meta={"repetition": int(m["t"]) - 1})]

    @staticmethod
    def _channel_order(header, path) -> list[int]:
        named = {}
        for i, sig in enumerate(header.signals):
            cm = _CHANNEL.fullmatch(sig.description.strip())
            if cm:
                named[(cm["group"], int(cm["n"]))] = i
        wanted = [("F", n) for n in range(1, 17)] + [("W", n) for n in range(1, 13)]
        if all(key in named for key in wanted):
            return [named[key] for key in wanted]
        if len(header.signals) == 28:
            return list(range(28))
        raise DataError(path, f"{len(header.signals)} signals without F1..F16/W1..W12 descriptions; "
                              "expected 28 (16 forearm + 12 wrist)")
