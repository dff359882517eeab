"""A shared set seen through fewer of its electrodes: a stand-in for a low-channel device that no
pre-training saw (issue 9, session 9). Writes the archive of ``READER`` with only ``CHANNELS`` kept,
as a device of those electrodes' positions (e.g. Myo channels 0,2,4,6: a 4-electrode ring at 90
degrees; 0,4: two opposite electrodes). Evaluate it like any archive::

    python scripts/fewer_electrodes.py myo_readings 0,2,4,6 /tmp/sub/arch_myo4
    aemg evaluate /tmp/sub/arch_myo4 --out /tmp/sub/rep_myo4 --checkpoint /tmp/res/runs/old4 \\
        --regimes rest,online,unlabelled,fewshot --shares 0.05 --small-share one --seeds 0

One worker, in this process (the wrapping reader is defined here, not in the package).
"""
from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np

from aemg.data.devices import Device
from aemg.data.pipeline import rectify_dataset
from aemg.data.readers import get_reader


class SubsetReader:
    """``name``'s reader with only ``channels`` (0-based) of every recording kept."""

    def __init__(self, name: str, channels, root=None):
        self.inner = get_reader(name, root)
        self.channels = [int(c) for c in channels]
        self.options = {"subset_of": name, "channels": self.channels}
        self.info = replace(self.inner.info, name=f"{name}-ch{len(self.channels)}",
                            channels=len(self.channels))

    def sources(self):
        return self.inner.sources()

    def read(self, source):
        out = []
        for rec in self.inner.read(source):
            d = rec.device
            dev = Device.from_positions(f"{d.name}-ch{len(self.channels)}", d.angles[self.channels],
                                        d.z[self.channels], rate=d.rate, units=d.units)
            out.append(replace(rec, data=np.ascontiguousarray(rec.data[self.channels]), device=dev,
                               dataset=self.info.name))
        return out

    def __getattr__(self, item):  # root, options the pipeline asks of a reader
        return getattr(self.inner, item)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    name, channels, out = argv
    print(rectify_dataset(SubsetReader(name, channels.split(",")), out, workers=1, progress=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
