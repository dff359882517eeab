"""Split continuous recordings with per-sample labels into one Recording per held gesture."""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .recording import UNLABELLED, Recording, label_runs


def split_trials(rec: Recording, *, min_s: float = 0.5) -> list[Recording]:
    """One :class:`Recording` per contiguous run of one label (a *trial*).

    Parameters
    ----------
    rec : Recording
        A recording with per-sample ``labels`` (e.g. a UCI series or a Ninapro exercise file), or
        with a trial-level ``label``.
    min_s : float
        Runs shorter than this many seconds are dropped (label glitches).

    Returns
    -------
    list of Recording
        - ``rec.label`` is set, or ``rec.labels`` is None: ``[rec]`` unchanged.
        - otherwise one recording per run of equal labels, :data:`UNLABELLED` gaps dropped, in time
          order: samples ``data[:, start:end]`` (and the matching ``labels``/``times``), trial
          ``label`` set, trial id ``f"{rec.trial}.{k}"`` (k = 0, 1, ... over the kept runs), meta
          adds ``parent_trial``, ``start_s`` (seconds from the start of ``rec``) and ``repetition``:
          from ``rec.meta["repetitions"]`` (``[start_sample, end_sample, repetition]`` runs, e.g.
          Ninapro's ``rerepetition``) when the run's midpoint falls in one, else the number of
          earlier kept runs of the same class in ``rec``.
    """
    if not (np.isfinite(min_s) and min_s >= 0):
        raise ConfigError(f"min_s={min_s!r}: expected a non-negative number of seconds")
    if rec.label is not None or rec.labels is None:
        return [rec]
    labels = rec.labels
    if labels.size == 0:
        return []
    starts, ends = label_runs(labels)
    reps = rec.meta.get("repetitions") or []
    seen: dict[int, int] = {}
    out: list[Recording] = []
    for start, end in zip(starts.tolist(), ends.tolist()):
        cls = int(labels[start])
        if cls == UNLABELLED:
            continue
        if rec.times is not None:
            duration = float(rec.times[end - 1] - rec.times[start]) + 1.0 / rec.rate
            start_s = float(rec.times[start] - rec.times[0])
        else:
            duration = (end - start) / rec.rate
            start_s = start / rec.rate
        if duration < min_s:
            continue
        middle = (start + end - 1) / 2
        repetition = next((int(r) for s, e, r in reps if s <= middle < e), None)
        if repetition is None:
            repetition = seen.get(cls, 0)
        seen[cls] = seen.get(cls, 0) + 1
        meta = {k: v for k, v in rec.meta.items() if k != "repetitions"}
        meta.update(parent_trial=rec.trial, start_s=round(start_s, 6), repetition=repetition)
        out.append(rec.with_data(rec.data[:, start:end], label=cls, labels=labels[start:end],
                                 times=None if rec.times is None else rec.times[start:end],
                                 trial=f"{rec.trial}.{len(out)}", meta=meta))
    return out
