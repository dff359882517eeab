"""Noise calibration policy: which trials are rest, and which noise level each trial is segmented with.

The event detector needs a noise level per trial (:func:`aemg.tokenizer.segment.detect_events`);
how a level is *measured* from a signal is :func:`aemg.tokenizer.segment.noise_level` (a
percentile of the energy envelope, or the median envelope of a calibration signal). This module is
the *policy* on top of it, used alike by ``aemg tokenize`` (:mod:`aemg.tokenizer.corpus`),
:func:`aemg.embed` and the evaluation (:mod:`aemg.eval.methods`), so that one trial gets the
same level everywhere:

- **Rest classes** are recognised by their names (:func:`is_rest_class`: rest, neutral, noGesture,
  no motion, relax).
- **Whether to calibrate** (:func:`calibrates`): events mode with ``calibration="rest"``; windows
  mode and ``calibration="robust"`` use robust statistics of each trial alone (level None).
- **Per group** (one user and session, ``(dataset, subject, session)``): each rest trial's own level
  is its median envelope (:func:`rest_level`); every non-rest trial uses the median of the group's
  rest levels, a rest trial the median of the *other* ones (:func:`group_noise`; it never
  calibrates itself); no rest level left: robust statistics. :func:`noise_levels` applies this to
  a list of trials, :func:`group_levels` to the rest levels of one group.
- **A user seen live** (the evaluation's test user under a regime): every trial takes the median of
  the rest recordings of its session, else of all the user's rest recordings
  (:func:`session_noise`).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Hashable, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .tokens import TokenizerConfig

#: the values of ``TokenizerConfig.calibration``
CALIBRATION = ("rest", "robust")
_REST = re.compile(r"\b(rest|neutral|no ?gesture|no ?motion|relax(ed)?)\b", re.IGNORECASE)

#: ``(level, origin)``: a noise level (None = robust statistics of the trial) and ``"rest"``/``"robust"``
Level = tuple[float | None, str]
ROBUST: Level = (None, "robust")


def is_rest_class(name: str) -> bool:
    """True for class names that mean "no movement" (rest, neutral, noGesture, no motion)."""
    return bool(_REST.search(re.sub(r"([a-z])([A-Z])", r"\1 \2", str(name))))


def is_rest_label(label: int | None, classes: Sequence[str], rest_id: int | None = None) -> bool:
    """Whether class id ``label`` of ``classes`` is a rest class (by name), or is ``rest_id``."""
    if label is None:
        return False
    label = int(label)
    return bool(label == rest_id or (0 <= label < len(classes) and is_rest_class(classes[label])))


def is_rest_trial(trial) -> bool:
    """Whether a labelled trial Recording belongs to a rest class (by its class name)."""
    return bool(trial.classes) and is_rest_label(trial.label, trial.classes)


def may_hold_rest(row: Mapping[str, Any]) -> bool:
    """Whether an archive row can contain rest trials (a rest-labelled recording, or a
    per-sample-labelled or unlabelled one: only its samples tell)."""
    label = row.get("label")
    return label is None or is_rest_label(label, row.get("classes") or ())


def calibrates(config: "TokenizerConfig") -> bool:
    """Whether ``config`` takes noise levels from rest trials (events mode, ``calibration="rest"``)."""
    return config.mode == "events" and config.calibration == "rest"


def rest_level(x: np.ndarray, rate: float, config: "TokenizerConfig") -> float:
    """A rest trial's own level: its median envelope (``noise_level`` with itself as calibration).

    ``x`` (C, T) float32, ``rate`` Hz; envelope units (mean square per channel-sample)."""
    from .segment import noise_level
    return float(noise_level(x, rate, config.segment, calibration=x))


def group_noise(rest_levels: Sequence[float], own: int | None = None) -> Level:
    """The noise level of one trial from the rest-trial levels of its group, and its origin.

    A non-rest trial (``own`` None) uses the median of all levels; a rest trial (``own``: the index
    of its level) the median of the *other* ones, so it never calibrates itself; no level left:
    ``(None, "robust")`` (robust statistics of the trial alone).
    """
    others = list(rest_levels) if own is None else [v for j, v in enumerate(rest_levels) if j != own]
    return (float(np.median(others)), "rest") if others else ROBUST


def group_levels(rest_levels: Mapping[Hashable, float], config: "TokenizerConfig"
                 ) -> tuple[dict[Hashable, Level], Level]:
    """The levels of one group from the own levels of its rest trials (``{trial key: level}``, in
    trial order): ``(level of each rest trial, level of every other trial)``."""
    levels = list(rest_levels.values())
    own = {key: group_noise(levels, j) for j, key in enumerate(rest_levels)}
    return own, (group_noise(levels) if calibrates(config) else ROBUST)


def noise_levels(signals: Sequence[np.ndarray], rates: Sequence[float], rest: Sequence[bool],
                 config: "TokenizerConfig", groups: Sequence[Any] | None = None) -> list[Level]:
    """The noise level of each trial under ``aemg tokenize``'s calibration policy, and its origin.

    Parameters
    ----------
    signals : sequence of np.ndarray, each (C, T_i) float32
    rates : sequence of float
        Hz, per trial.
    rest : sequence of bool
        Whether each trial is a rest-class trial (see :func:`is_rest_trial`).
    config : TokenizerConfig
    groups : sequence of hashable, optional
        Group of each trial (default: all trials form one group).

    Returns
    -------
    list of (float or None, str)
        Per trial: the noise level (None = robust statistics of the trial) and ``"rest"``/``"robust"``.
    """
    n = len(signals)
    if not calibrates(config):
        return [ROBUST] * n
    members: dict[Any, list[int]] = {}
    for i, g in enumerate(groups if groups is not None else [0] * n):
        members.setdefault(g, []).append(i)
    out: list[Level] = [ROBUST] * n
    for idx in members.values():
        own, shared = group_levels({i: rest_level(signals[i], rates[i], config) for i in idx if rest[i]},
                                   config)
        for i in idx:
            out[i] = own.get(i, shared)
    return out


def session_noise(rest_by_session: Mapping[Hashable, Sequence[float]], session: Hashable) -> float:
    """A live user's level in ``session``: the median of its rest recordings' own levels in that
    session, else of all its rest recordings (``rest_by_session``: session -> levels, not empty)."""
    every = [v for vs in rest_by_session.values() for v in vs]
    return float(np.median(rest_by_session.get(session, every)))
