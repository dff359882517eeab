"""AEMG downstream methods: linear probe, fine-tuning, no pre-training, sliding-window Transformer.

Registered in the method registry (:func:`aemg.eval.baselines.get_method`):

- ``aemg-probe``: the frozen pre-trained backbone (stage 2) embeds each trial's sentence (mean of
  its token outputs, or the CLS output with ``pooling="cls"``); the embeddings are standardised with
  the training trials' mean/std and a multinomial logistic regression (or LDA) is fitted on them.
- ``aemg-finetune``: the same backbone plus a fresh linear head; every weight is trained for a few
  epochs. Every fold starts from a copy of the same pre-trained weights.
- ``aemg-scratch``: the same architecture, randomly initialised (seeded), trained supervised per
  fold ("AEMG without pre-training").
- ``window-transformer``: the same architecture on fixed sliding-window tokens
  (``TokenizerConfig(mode="windows")``), no pre-training: the tokenizer ablation.

Trials become sentences with :func:`aemg.tokenizer.tokens.tokenize_signal` and the tokenizer
settings of the checkpoint (defaults without one). **Noise calibration** (events mode) under a
regime (:func:`regime_noise_levels`): training subjects follow ``aemg tokenize``
(:func:`aemg.tokenizer.calibration.noise_levels`: per (dataset, subject, session), from the group's
rest-class trials; their labels are visible); every trial of the test user takes the level of its
rest recording of the same session (the one designated rest trial given by the regime), as a live
system would from the rest recorded at donning. Such a method ``needs_rest`` and supports
``rest`` and ``fewshot`` (the probe with ``subject_norm="all"``: ``online``, ``unlabelled``,
``fewshot``). ``calibration="robust"`` is the strict alternative: each trial's own robust
statistics, nothing of the user read (regimes ``none`` and ``fewshot``). Sentences and embeddings
are cached per trial and noise level in the trial set's shared cache, so folds never re-tokenize.
Called without an adaptation (no fold context: scripts), trials are calibrated as before from the
labels they carry (:func:`prepare_calibration` / :func:`calibrate`).

Bad input: a checkpoint whose token settings (rate, channels, token length) differ from the trials
raises ConfigError naming both; a trial without tokens (dead or too short) is predicted -1 (an
error); training trials without tokens are skipped.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from .adapt import PRIORS, SharedGaussian, adapted_scores, mapped_scores
from .baselines import (
    Method,
    Prediction,
    online_standardise,
    register_method,
    subject_standardise,
    subject_stats,
    user_standardise,
    vote,
)
from .classifiers import LDA, logistic_regression
from .protocols import Adaptation
from .trials import TrialSet

log = logging.getLogger(__name__)

POOLINGS = ("mean", "cls")
#: ``online`` regime: weight (in trials) of the training trials' pooled statistics blended into the
#: user's running ones. One embedding per trial makes a user's first trials' statistics noise (a
#: day of multiday_4ch: 11 trials in class order); 2 trials: +4.5 / +4.7 / +17.4 on UCI /
#: Cote-Allard / multiday_4ch, -0.7 on 3DC against 0 (docs/notes/generalisation.md, experiment 15)
ONLINE_PRIOR = 2.0
CLASSIFIERS = ("logreg", "lda")
#: how the probe standardises embeddings: "none" = with the training trials' statistics;
#: "labelled" = per subject with that subject's *training* trials (few-shot: the target's labelled
#: calibration trials; a subject without training trials, as in LOSO, gets the pooled statistics);
#: "all" = as "labelled", and the test user with the unlabelled trials its regime shows
#: (``unlabelled``: all; ``online``: the earlier ones), as the lda-log-subjnorm baseline
SUBJECT_NORMS = ("none", "labelled", "all")
#: method names registered here
AEMG_METHODS = ("aemg-probe", "aemg-finetune", "aemg-scratch", "window-transformer")
#: what the probe classifies: the backbone embedding, the pooled classic features of the same NCT
#: tokens (:func:`aemg.eval.features.pooled_token_features`), or both
PROBE_FEATURES = ("embedding", "embedding+tokens", "tokens")
#: adaptation of the class means to the user after per-user standardisation: none; EM on its
#: unlabelled trials (regime ``unlabelled``); MAP from its labelled share (regime ``fewshot``)
#: (:class:`aemg.eval.adapt.SharedGaussian`)
ADAPTS = ("none", "em", "map")
#: the token-feature probes classify with shrinkage LDA (session 4, docs/notes/generalisation.md
#: experiment 10: +0.6..+4.9 LOSO over logistic regression on four sets; the embedding alone keeps
#: logistic regression, where LDA lost 0.6-3.2)
_TOK = {"features": "embedding+tokens", "classifier": "lda"}
_SUBJ = {"subject_norm": "all"}
_EM = {"subject_norm": "all", "adapt": "em"}
#: few-shot: the user's class means from its labelled share (MAP, prior 4 trials per class) on
#: the time-domain token means (session 5, experiment 13)
_MAP = {"features": "embedding+tokens", "token_set": "td", "subject_norm": "labelled", "adapt": "map"}
#: probe variants registered here: name -> options (aemg-probe-robust: nothing of the test user, regime none;
#: -tok: embedding + classic token features; -em: EM adaptation in the unlabelled regime)
PROBE_VARIANTS = {"aemg-probe-calibnorm": {"subject_norm": "labelled"}, "aemg-probe-subjnorm": _SUBJ,
                  "aemg-probe-robust": {"calibration": "robust"}, "aemg-probe-em": _EM,
                  "aemg-probe-tok": _TOK, "aemg-probe-tok-subjnorm": {**_TOK, **_SUBJ},
                  "aemg-probe-tok-em": {**_TOK, **_EM}, "aemg-probe-tok-map": _MAP}
#: the same classifier on the classic features of the NCT tokens alone (no network): the ablation
#: that tells what the pre-trained embedding adds
NCT_VARIANTS = {"nct-logreg": {}, "nct-logreg-subjnorm": _SUBJ, "nct-logreg-em": _EM,
                "nct-lda": {"classifier": "lda"}, "nct-lda-subjnorm": {**_SUBJ, "classifier": "lda"}}


# ----------------------------------------------------------------------------------------------
# pre-trained runs
@dataclass(frozen=True)
class PretrainedRun:
    """What the downstream methods take from a pre-training run.

    Attributes
    ----------
    path : Path
        The checkpoint folder.
    model : aemg.model.AEMG
        The loaded model, eval mode, on CPU (never trained here: methods copy its backbone).
    model_config : aemg.model.config.ModelConfig
    tokenizer : aemg.tokenizer.tokens.TokenizerConfig
        The settings the pre-training corpus was tokenized with.
    token_shape : (int, int)
        (C, L) of the pre-training tokens.
    rate : float
        Sampling rate of the pre-training tokens, Hz.
    angles : np.ndarray, shape (C,), radians
        Electrode angles of the pre-training corpus.
    backbone_sha256 : str
        Hash of the backbone weights (identifies the run in caches; fold-isolation checks).
    """

    path: Path
    model: Any
    model_config: Any
    tokenizer: Any
    token_shape: tuple
    rate: float
    angles: np.ndarray
    backbone_sha256: str


_RUNS: dict[tuple, PretrainedRun] = {}


def state_sha256(module) -> str:
    """SHA-256 of a module's state dict (names, shapes and float32 values), for identity checks."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def load_run(run: str | os.PathLike) -> PretrainedRun:
    """Load (once per process and checkpoint) the pre-trained run ``run`` (run or checkpoint folder).

    Raises
    ------
    DataError
        No checkpoint there, or a corrupt one (from :func:`aemg.train.load_model`).
    """
    from ..tokenizer.tokens import TokenizerConfig
    from ..train import load_model
    from ..train.checkpoint import MODEL_FILE, resolve

    ck_path = resolve(run)
    weights = ck_path / MODEL_FILE
    stamp = (str(ck_path.resolve()), weights.stat().st_mtime_ns if weights.is_file() else 0)
    if stamp not in _RUNS:
        model, ck = load_model(ck_path, "cpu")
        info = ck.state.get("data", {}) or {}
        tok = TokenizerConfig.from_dict(info["tokenizer"]) if info.get("tokenizer") else TokenizerConfig()
        shape = tuple(int(v) for v in info.get("token_shape") or (len(info.get("channel_angles", [])),
                                                                   ck.config.model.token_len))
        angles = np.asarray(info.get("channel_angles") or [], dtype=np.float64)
        if angles.size != shape[0]:
            from ..data.rectify import standard_device
            angles = np.asarray(standard_device(shape[0]).angles, dtype=np.float64)
        _RUNS[stamp] = PretrainedRun(ck_path, model, ck.config.model, tok, shape,
                                     float(info.get("rate") or 0.0),
                                     angles, state_sha256(model.backbone))
    return _RUNS[stamp]


def check_run_matches(run: PretrainedRun, trials: TrialSet) -> None:
    """ConfigError when the run's token settings (rate, channels, token length) differ from what
    the trials give, naming both."""
    C, L = run.token_shape
    have_L = run.tokenizer.token_len(trials.rate)
    rate_ok = not run.rate or abs(run.rate - trials.rate) <= 1e-6 * run.rate
    if trials.n_channels != C or have_L != L or have_L != run.model_config.token_len or not rate_ok:
        raise ConfigError(
            f"checkpoint {run.path} was pre-trained on tokens of {C} channels x {L} samples "
            f"({run.tokenizer.token_s:g} s at {run.rate:g} Hz), but the trials "
            f"of {trials.name or 'the data'} have {trials.n_channels} channels at {trials.rate:g} Hz (tokens "
            f"of {have_L} samples): rectify the data into the checkpoint's standard space (`aemg rectify`) "
            f"or pre-train on matching tokens")


# ----------------------------------------------------------------------------------------------
# trials -> sentences
def _dataset_of(key: str, default: str) -> str:
    return key.split("/", 1)[0] if "/" in key else default


def _rest_flags(trials: TrialSet, rest_id: int | None = None) -> list[bool]:
    """Per trial: labelled with a class whose name marks rest (as ``aemg tokenize``) or with
    ``rest_id`` (``--rest-class``)."""
    from ..tokenizer.calibration import is_rest_label
    return [is_rest_label(lab, trials.classes, rest_id) for lab in trials.labels.tolist()]


def _noise_key(config) -> tuple:
    return ("aemg-noise", json.dumps(config.to_dict(), sort_keys=True))


def calibrate(trials: TrialSet, config) -> list[float | None]:
    """Noise levels of every trial under ``aemg tokenize``'s policy, grouped by (dataset, subject,
    session), rest trials chosen by their labels (hidden labels: robust statistics per trial)."""
    from ..tokenizer.calibration import noise_levels
    groups = [(_dataset_of(k, trials.name), s, ss) for k, s, ss in
              zip(trials.keys.tolist(), trials.subjects.tolist(), trials.sessions.tolist())]
    levels = noise_levels(trials.data, [trials.rate] * len(trials), _rest_flags(trials), config, groups)
    return [lvl for lvl, _ in levels]


def prepare_calibration(trials: TrialSet, config) -> None:
    """Compute :func:`calibrate` on the whole trial set once and store it in its shared cache, so
    every subset (every fold, the label-hidden test sets too) tokenizes with these levels."""
    what = _noise_key(config)
    if all((k, what) in trials.cache for k in trials.keys.tolist()):
        return
    for key, level in zip(trials.keys.tolist(), calibrate(trials, config)):
        trials.cache[(key, what)] = level


def regime_noise_levels(trials: TrialSet, config, adaptation: Adaptation) -> list[float | None]:
    """Noise levels of ``trials`` under a regime (module docstring): training subjects by ``aemg
    tokenize``'s policy on their rest-class trials (class ``adaptation.rest_class``); the test user
    (``adaptation.subject``) by its rest recording of the same session (a session without one: the
    median over the user's recordings). Robust (None) everywhere when ``config`` does not calibrate,
    and for the test user when the dataset marks no rest class (``adaptation.rest_class`` None)
    under a regime other than ``rest``: as for the training users, who then have no rest trials.

    Raises
    ------
    DataError
        The trials hold the test user but the adaptation gives no rest recording (the dataset has a
        rest class, or the regime is ``rest``).
    """
    from ..tokenizer.calibration import calibrates, noise_levels, session_noise
    n = len(trials)
    if not calibrates(config):
        return [None] * n
    levels: list[float | None] = [None] * n
    user = adaptation.subject
    mine = trials.subjects == user
    flags = _rest_flags(trials, adaptation.rest_class)
    groups: dict = {}
    for i in np.flatnonzero(~mine).tolist():
        groups.setdefault((_dataset_of(trials.keys[i], trials.name), trials.subjects[i], trials.sessions[i]),
                          []).append(i)
    for idx in groups.values():  # one group's levels depend on its trials only: cached by their keys
        ck = ("aemg-group-noise", _noise_key(config)[1], tuple(trials.keys[idx].tolist()),
              tuple(flags[i] for i in idx))
        if ck not in trials.cache:
            trials.cache[ck] = [lvl for lvl, _ in noise_levels([trials.data[i] for i in idx],
                                                               [trials.rate] * len(idx),
                                                               [flags[i] for i in idx], config)]
        for i, lvl in zip(idx, trials.cache[ck]):
            levels[i] = lvl
    if mine.any():
        rest = adaptation.rest
        if rest is None or not len(rest):
            if adaptation.rest_class is None and adaptation.regime != "rest":
                return levels  # no rest class: the user's trials robust, as the training users'
            raise DataError(trials.name or "trials", f"subject {user}: the noise calibration needs its rest "
                            f"recording, which regime {adaptation.regime} does not give")
        by_session: dict = {}
        for j in range(len(rest)):
            by_session.setdefault(rest.sessions[j], []).append(_cached_rest_level(rest, j, config))
        for i in np.flatnonzero(mine).tolist():
            levels[i] = session_noise(by_session, trials.sessions[i])
    return levels


def _cached_rest_level(trials: TrialSet, i: int, config) -> float:
    """A rest trial's own level (its median envelope), cached per trial."""
    from ..tokenizer.calibration import rest_level
    k = (trials.keys[i], ("aemg-rest-level", _noise_key(config)[1]))
    if k not in trials.cache:
        trials.cache[k] = rest_level(trials.data[i], trials.rate, config)
    return trials.cache[k]


def _resolved_levels(trials: TrialSet, config, levels: list | None) -> list:
    """``levels`` when given; else those of :func:`prepare_calibration` when it ran on a superset,
    else :func:`calibrate` on ``trials`` themselves."""
    if levels is not None:
        return list(levels)
    what = _noise_key(config)
    missing = [i for i, k in enumerate(trials.keys.tolist()) if (k, what) not in trials.cache]
    fallback = {}
    if missing:
        sub = trials.subset(missing)
        fallback = dict(zip(sub.keys.tolist(), calibrate(sub, config)))
        from ..tokenizer.calibration import calibrates
        if calibrates(config) and (sub.labels < 0).any():
            log.warning("%d trials with hidden labels were not calibrated beforehand "
                        "(AemgMethod.prepare): robust per-trial noise levels used",
                        int((sub.labels < 0).sum()))
    return [trials.cache[(k, what)] if (k, what) in trials.cache else fallback[k]
            for k in trials.keys.tolist()]


def trial_sentences(trials: TrialSet, config, levels: list | None = None) -> list:
    """The sentence of every trial (:class:`~aemg.tokenizer.tokens.Sentence`, label -1), cached
    per trial and noise level. ``levels``: per-trial noise levels (:func:`regime_noise_levels`);
    None: see :func:`_resolved_levels`."""
    from ..tokenizer.tokens import tokenize_signal

    what = _noise_key(config)
    out = []
    for i, (key, noise) in enumerate(zip(trials.keys.tolist(), _resolved_levels(trials, config, levels))):
        tkey = (key, ("aemg-sentence", what[1], noise))
        if tkey not in trials.cache:
            trials.cache[tkey] = tokenize_signal(
                trials.data[i], trials.rate, config, noise=noise, key=key,
                dataset=_dataset_of(key, trials.name), subject=str(trials.subjects[i]),
                session=str(trials.sessions[i]))
        out.append(trials.cache[tkey])
    return out


# ----------------------------------------------------------------------------------------------
# methods
class AemgMethod(Method):
    """Common part of the AEMG methods: tokenizer and architecture settings, sentences, batches.

    Parameters
    ----------
    run : path or None
        Pre-training run (or checkpoint) folder; gives the weights (probe, fine-tune), the
        architecture and the tokenizer settings. Without it (scratch, window-transformer): the
        ``preset`` architecture and default tokenizer settings.
    pooling : {"mean", "cls"}
        Sentence embedding: mean of the real tokens' outputs, or the CLS output.
    calibration : {"rest", "robust"} or None
        Noise calibration of the event tokenizer (None: the run's setting; see module docstring).
    preset : str
        Architecture without a run (``tiny``, ``base``, ``large``).
    device : str
        Torch device.
    batch_size : int
        Sentences per batch.
    """

    windowed = False
    needs_run = False
    pretrained = False
    token_mode = "events"

    def __init__(self, run: str | os.PathLike | None = None, pooling: str = "mean",
                 calibration: str | None = None, preset: str = "tiny", device: str = "cpu",
                 batch_size: int = 16):
        if pooling not in POOLINGS:
            raise ConfigError(f"{self.name}: pooling={pooling!r}; choose from {POOLINGS}")
        if calibration not in (None, "rest", "robust"):
            raise ConfigError(f"{self.name}: calibration={calibration!r}; choose rest or robust")
        if int(batch_size) < 1:
            raise ConfigError(f"{self.name}: batch_size={batch_size!r} must be >= 1")
        if self.needs_run and not run:
            raise ConfigError(f"{self.name} needs a pre-trained run: `aemg evaluate --checkpoint RUN` "
                              'or --method-options \'{"<method>": {"run": "RUN"}}\'')
        self.run, self.pooling, self.calibration = run, pooling, calibration
        self.preset, self.device, self.batch_size = preset, device, int(batch_size)

    # -- settings ---------------------------------------------------------------------------
    def _run(self) -> PretrainedRun | None:
        return load_run(self.run) if self.run else None

    def tokenizer_config(self, trials: TrialSet | None = None):
        """The tokenizer settings used for the trials (the run's, with ``mode`` and ``calibration``
        of this method)."""
        from ..tokenizer.tokens import TokenizerConfig
        run = self._run()
        cfg = run.tokenizer if run else TokenizerConfig()
        changes = {"mode": self.token_mode}
        if self.calibration:
            changes["calibration"] = self.calibration
        return dataclasses.replace(cfg, **changes)

    def model_config(self, trials: TrialSet):
        """The architecture: the run's, or ``preset``'s with the token length of the trials."""
        from ..model.config import preset
        run = self._run()
        if run is not None:
            return run.model_config
        cfg = preset(self.preset).model
        names = {f.name for f in dataclasses.fields(cfg)}
        changes = {"token_len": self.tokenizer_config().token_len(trials.rate),
                   "token_rate": float(trials.rate)}
        return dataclasses.replace(cfg, **{k: v for k, v in changes.items() if k in names})

    def geometry(self, trials: TrialSet):
        """Electrode angles and z as tensors (C,): the run's, else the standard ring's."""
        import torch
        run = self._run()
        if run is not None:
            angles = run.angles
        else:
            from ..data.rectify import standard_device
            angles = np.asarray(standard_device(trials.n_channels).angles, dtype=np.float64)
        a = torch.tensor(np.asarray(angles, dtype=np.float32), device=self.device)
        return a, torch.zeros_like(a)

    #: a dataset without a rest class: every trial robust (the training users' calibration is then
    #: robust too), under every regime but ``rest`` (see :func:`regime_noise_levels`)
    rest_optional = True

    @property
    def needs_rest(self) -> bool:
        """Whether the tokenizer calibrates from rest recordings (events mode, rest calibration)."""
        from ..tokenizer.calibration import calibrates
        return calibrates(self.tokenizer_config())

    @property
    def regimes(self) -> tuple:
        return ("rest", "fewshot") if self.needs_rest else ("none", "fewshot")

    def prepare(self, trials: TrialSet) -> None:
        """For scripts calling the methods without folds (the runner does not call it): checks the
        run against the data and calibrates every trial from the labels it carries."""
        run = self._run()
        if run is not None and self.pretrained:
            check_run_matches(run, trials)
        prepare_calibration(trials, self.tokenizer_config())

    def noise_levels(self, trials: TrialSet, adaptation: Adaptation | None) -> list | None:
        """Per-trial noise levels under ``adaptation`` (None: no fold context, see module docstring)."""
        return None if adaptation is None else regime_noise_levels(trials, self.tokenizer_config(),
                                                                   adaptation)

    def sentences(self, trials: TrialSet, adaptation: Adaptation | None = None) -> list:
        run = self._run()
        if run is not None and self.pretrained:
            check_run_matches(run, trials)
        return trial_sentences(trials, self.tokenizer_config(), self.noise_levels(trials, adaptation))

    def _batches(self, sentences: list, order: np.ndarray, angles):
        """Tensor batches of ``sentences[order]`` (each a dict of the corpus batch keys)."""
        from ..train.data import ArrayCorpus, to_tensors
        corpus = ArrayCorpus([sentences[i] for i in order], angles.cpu().numpy(), rate=sentences[0].rate
                             if sentences else 0.0, where=self.name)
        for lo in range(0, len(order), self.batch_size):
            yield to_tensors(corpus.batch(range(lo, min(lo + self.batch_size, len(order)))), self.device)

    @staticmethod
    def _usable(sentences: list) -> np.ndarray:
        return np.flatnonzero([s.n_tokens > 0 for s in sentences])


class AemgProbe(AemgMethod):
    """Linear probe on the frozen pre-trained backbone (``aemg-probe``).

    Sentence embeddings (cached per trial) are standardised with the training trials' mean/std
    (or per subject: ``subject_norm``, see :data:`SUBJECT_NORMS`), then ``classifier`` is fitted:
    ``"logreg"`` = multinomial logistic regression (:func:`~aemg.eval.classifiers.logistic_regression`:
    scikit-learn L-BFGS, L2 penalty ``l2`` on the weights), ``"lda"`` =
    :class:`~aemg.eval.classifiers.LDA` with ``shrinkage``. ``rotations = r`` adds the
    training trials rolled by +-1..+-r positions of the standard channel ring (armband rotation).
    ``subject_norm="all"``: the test user's statistics from ``adaptation.unlabelled`` (``online``:
    its earlier trials, running statistics; before the first one the training trials' pooled ones,
    which ``online_prior`` trials of weight keep blended in afterwards: :data:`ONLINE_PRIOR`).
    ``adapt="em"``: EM on the
    class means and priors (:class:`~aemg.eval.adapt.SharedGaussian`; ``em_iters``, ``em_prior``
    trials per class, ``em_priors`` = ``"train"`` or ``"equal"``). ``token_set``: which pooled token
    features (:func:`~aemg.eval.features.token_feature_columns`: ``"all"`` or ``"td"``).
    """

    name = "aemg-probe"
    needs_run = True
    pretrained = True

    def __init__(self, run=None, classifier: str = "logreg", l2: float = 1e-3, shrinkage: float = 0.1,
                 max_iter: int = 200, subject_norm: str = "none", rotations: int = 0,
                 online_prior: float = ONLINE_PRIOR, features: str = "embedding", adapt: str = "none",
                 em_iters: int = 10, em_prior: float = 5.0, em_priors: str = "train",
                 token_set: str = "all", map_prior: float = 4.0, **kw):
        super().__init__(run, **kw)
        from .features import TOKEN_SETS
        if token_set not in TOKEN_SETS:
            raise ConfigError(f"{self.name}: token_set={token_set!r}; choose from {TOKEN_SETS}")
        self.token_set = token_set
        if features not in PROBE_FEATURES:
            raise ConfigError(f"{self.name}: features={features!r}; choose from {PROBE_FEATURES}")
        if "embedding" in features and not self.needs_run:
            raise ConfigError(f"{self.name}: features={features!r} needs a pre-trained run; use aemg-probe")
        if adapt not in ADAPTS:
            raise ConfigError(f"{self.name}: adapt={adapt!r}; choose from {ADAPTS}")
        if adapt == "em" and subject_norm != "all":
            raise ConfigError(f"{self.name}: adapt='em' adapts after per-user standardisation: "
                              "set subject_norm='all' as well")
        if adapt == "map" and subject_norm != "labelled":
            raise ConfigError(f"{self.name}: adapt='map' adapts to the user's labelled share after "
                              "standardising with it: set subject_norm='labelled' as well")
        if float(map_prior) < 0:
            raise ConfigError(f"{self.name}: map_prior={map_prior!r} must be >= 0")
        self.map_prior = float(map_prior)
        if int(em_iters) < 0 or float(em_prior) < 0:
            raise ConfigError(f"{self.name}: em_iters={em_iters!r} and em_prior={em_prior!r} must be >= 0")
        self.features, self.adapt = features, adapt
        if em_priors not in PRIORS:
            raise ConfigError(f"{self.name}: em_priors={em_priors!r}; choose from {PRIORS}")
        self.em_iters, self.em_prior, self.em_priors = int(em_iters), float(em_prior), em_priors
        if classifier not in CLASSIFIERS:
            raise ConfigError(f"aemg-probe: classifier={classifier!r}; choose from {CLASSIFIERS}")
        if subject_norm not in SUBJECT_NORMS:
            raise ConfigError(f"aemg-probe: subject_norm={subject_norm!r}; choose from {SUBJECT_NORMS}")
        self.classifier, self.l2, self.shrinkage = classifier, float(l2), shrinkage
        self.max_iter = int(max_iter)
        self.subject_norm = subject_norm
        if int(rotations) < 0:
            raise ConfigError(f"aemg-probe: rotations={rotations!r} must be >= 0")
        self.rotations = int(rotations)
        if float(online_prior) < 0:
            raise ConfigError(f"aemg-probe: online_prior={online_prior!r} must be >= 0")
        self.online_prior = float(online_prior)

    @property
    def regimes(self) -> tuple:
        if self.adapt == "em":  # EM needs every unlabelled trial of the user
            return ("unlabelled",)
        if self.adapt == "map":  # MAP needs the user's labelled share
            return ("fewshot",)
        return ("online", "unlabelled", "fewshot") if self.subject_norm == "all" else super().regimes

    def _sentences(self, trials: TrialSet, roll: int, adaptation: Adaptation | None):
        """(sentences, config, per-trial noise levels) of ``trials`` under the fold's calibration."""
        cfg = self.tokenizer_config()
        levels = _resolved_levels(trials, cfg, self.noise_levels(trials, adaptation))
        sents = trial_sentences(trials, cfg, levels)
        if roll:
            sents = [s.rolled(roll) for s in sents]
        return sents, cfg, levels

    def trial_features(self, trials: TrialSet, roll: int = 0,
                       adaptation: Adaptation | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(features (n', F) float64 of the trials with tokens, their indices (n',)) as set by
        ``features``: the backbone embedding, the pooled classic features of the same tokens
        (:func:`aemg.eval.features.pooled_token_features`), or both concatenated."""
        sents, cfg, levels = self._sentences(trials, roll, adaptation)
        use = self._usable(sents)
        parts = []
        if "embedding" in self.features:
            parts.append(self._embed(trials, sents, cfg, levels, roll))
        if "tokens" in self.features:
            from .features import pooled_token_features
            what = ("aemg-token-features", json.dumps(cfg.to_dict(), sort_keys=True), roll)
            keys = [(trials.keys[i], what, levels[i]) for i in range(len(trials))]
            todo = [i for i in use if keys[i] not in trials.cache]
            for i, f in zip(todo, pooled_token_features([sents[i] for i in todo], trials.n_channels)):
                trials.cache[keys[i]] = f
            from .features import token_feature_columns
            tok = (np.stack([trials.cache[keys[i]] for i in use]) if len(use)
                   else pooled_token_features([], trials.n_channels))
            parts.append(tok[:, token_feature_columns(trials.n_channels, self.token_set)])
        return (np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]), use

    def embeddings(self, trials: TrialSet, roll: int = 0,
                   adaptation: Adaptation | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings (n', d) float64 of the trials with tokens, their indices (n',)); ``roll``:
        of the sentences with channels rolled by that many ring positions (:meth:`Sentence.rolled`);
        ``adaptation``: the fold's (noise calibration, see module docstring)."""
        sents, cfg, levels = self._sentences(trials, roll, adaptation)
        return self._embed(trials, sents, cfg, levels, roll), self._usable(sents)

    def _embed(self, trials: TrialSet, sents: list, cfg, levels: list, roll: int) -> np.ndarray:
        """(n', d) float64 backbone embeddings of the sentences with tokens, cached per trial and
        noise level."""
        import torch

        from ..model.network import pool
        run = self._run()
        if run is not None:
            check_run_matches(run, trials)
        what = ("aemg-embedding", run.backbone_sha256, self.pooling,
                json.dumps(cfg.to_dict(), sort_keys=True), roll)
        keys = [(trials.keys[i], what, levels[i]) for i in range(len(trials))]
        use = self._usable(sents)
        todo = [i for i in use if keys[i] not in trials.cache]
        if todo:
            angles, z = self.geometry(trials)
            backbone = run.model.backbone.to(self.device).eval()
            with torch.no_grad():
                rows = []
                for b in self._batches(sents, np.asarray(todo), angles):
                    rows.append(pool(backbone(b, angles, z), b["mask"], self.pooling).float().cpu().numpy())
            for i, e in zip(todo, np.concatenate(rows)):
                trials.cache[keys[i]] = e.astype(np.float64)
        return (np.stack([trials.cache[keys[i]] for i in use]) if len(use)
                else np.zeros((0, run.model_config.d_model)))

    def fit(self, train, seed=0, adaptation=None):
        feats, use = self.trial_features(train, adaptation=adaptation)
        if not len(use):
            raise DataError(train.name or "trials", "no training trial has any token")
        if self.rotations:  # armband-rotation augmentation: the training trials rolled by +-1..+-r
            feats = np.concatenate([feats] + [self.trial_features(train, k, adaptation)[0]
                                              for r in range(1, self.rotations + 1) for k in (r, -r)])
            use = np.tile(use, 2 * self.rotations + 1)
        return self.fit_rows(feats, train.labels[use], train.subjects[use], train.n_classes,
                             adaptation.subject if adaptation is not None else None)

    def fit_rows(self, feats: np.ndarray, y: np.ndarray, subjects: np.ndarray, n_classes: int,
                 user: str | None = None) -> "AemgProbe":
        """Fit the standardisation and the classifier on trial features ``feats`` (n, F) with labels
        ``y`` and subjects (n,) (what :meth:`fit` does after :meth:`trial_features`); ``user``: the
        test user, whose labelled rows (few-shot share) set its own class means with
        ``adapt="map"``."""
        self.n_classes_ = n_classes
        self.mean_ = feats.mean(axis=0)
        std = feats.std(axis=0)
        self.std_ = np.where(std > 0, std, 1.0)
        if self.subject_norm == "none":
            z = (feats - self.mean_) / self.std_
        else:  # each subject of the training trials with its own statistics (few-shot: the user's share)
            self.stats_ = subject_stats(feats, subjects)
            z = subject_standardise(feats, subjects, self.stats_)
        self.user_means_ = {}
        if self.adapt in ("em", "map"):
            self.gauss_ = SharedGaussian(self.shrinkage, self.em_priors).fit(z, y, self.n_classes_)
            mine = subjects == user
            if self.adapt == "map" and mine.any():
                self.user_means_[user] = self.gauss_.map_means(z[mine], y[mine], self.map_prior)
        elif self.classifier == "lda":
            self.lda_ = LDA(self.shrinkage).fit(z, y)
        else:
            self.weight_, self.bias_ = logistic_regression(z, y, self.n_classes_, self.l2, self.max_iter)
        return self

    def _class_scores(self, z: np.ndarray) -> np.ndarray:
        if self.classifier == "lda":
            s = np.full((len(z), self.n_classes_), -np.inf)
            s[:, self.lda_.classes_] = self.lda_.decision_function(z)
            return s
        return z @ self.weight_.T + self.bias_

    def scores(self, test: TrialSet, adaptation: Adaptation | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(class scores (n', K) of the test trials with tokens, their indices)."""
        feats, use = self.trial_features(test, adaptation=adaptation)
        visible = None
        # the user's statistics: its unlabelled trials (all), else a share in fit, else pooled
        if (self.subject_norm == "all" and adaptation is not None and adaptation.unlabelled is not None
                and len(adaptation.unlabelled)):
            vf, vuse = self.trial_features(adaptation.unlabelled, adaptation=adaptation)
            visible = (vf, adaptation.unlabelled.subjects[vuse])
        return self.score_rows(feats, test.subjects[use], visible), use

    def score_rows(self, feats: np.ndarray, subjects: np.ndarray,
                   visible: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """(n, K) class scores of trial features ``feats`` (n, F) of ``subjects`` (n,); ``visible`` =
        (features (m, F), subjects (m,)) of the unlabelled trials the regime shows (their per-user
        statistics and EM; used with ``subject_norm="all"`` only)."""
        if self.subject_norm == "none":
            z = (feats - self.mean_) / self.std_
        else:
            visible = visible if self.subject_norm == "all" else None
            z = user_standardise(feats, subjects, self.stats_, (self.mean_, self.std_), visible)
        if self.adapt == "em":  # class means re-estimated on each user's visible unlabelled trials
            if visible is not None:
                visible = (user_standardise(*visible, self.stats_, (self.mean_, self.std_), visible),
                           visible[1])
            return adapted_scores(self.gauss_, z, subjects, visible, self.em_iters, self.em_prior)
        if self.adapt == "map":  # the user's own class means where its labelled share gave them
            return mapped_scores(self.gauss_, z, subjects, self.user_means_)
        return self._class_scores(z)

    def _prediction(self, n: int, scores: np.ndarray, use: np.ndarray) -> Prediction:
        out = np.full(n, -1, dtype=np.int64)
        out[use] = scores.argmax(axis=1)
        return Prediction(out)

    def predict(self, test, adaptation=None):
        scores, use = self.scores(test, adaptation)
        return self._prediction(len(test), scores, use)

    def online_scores(self, test: TrialSet, adaptation: Adaptation) -> tuple[np.ndarray, np.ndarray]:
        """``online`` with ``subject_norm="all"``: (class scores (n', K) of the test trials with
        tokens, each standardised with the running statistics of the user's earlier trials blended
        with ``online_prior`` trials of the pooled ones, their indices)."""
        feats, use = self.trial_features(test, adaptation=adaptation)
        z = online_standardise(feats, use, test.subjects, (self.mean_, self.std_), self.online_prior)
        return self._class_scores(z), use

    def predict_online(self, test, adaptation):
        if self.subject_norm != "all":
            return super().predict_online(test, adaptation)
        return self._prediction(len(test), *self.online_scores(test, adaptation))


#: candidates of ``aemg-probe-auto`` (on equal inner accuracy the first wins): the token-feature set
#: x EM or plain per-user standardisation (docs/notes/generalisation.md, session 5, experiment 12)
AUTO_CANDIDATES = ({"token_set": "td", "adapt": "em"}, {"token_set": "all", "adapt": "em"},
                   {"token_set": "td", "adapt": "none"}, {"token_set": "all", "adapt": "none"})


class AemgProbeAuto(AemgProbe):
    """``aemg-probe-auto`` (regime ``unlabelled``): ``aemg-probe-tok-em``'s family, its settings
    chosen per fold from the training subjects alone.

    Each candidate of ``candidates`` (default :data:`AUTO_CANDIDATES`: the pooled token features
    ``"td"`` or ``"all"``, with EM or without) is scored by an inner leave-subjects-out cross-
    validation on the training trials (``inner_folds`` groups of training subjects; each held-out
    subject standardised and, with EM, adapted on its own trials, as the test user will be); the
    one with the most correct inner trials is fitted on all training trials and classifies the test
    user. Nothing of the test user is read before its prediction: the choice is the training
    data's. Why: which of those settings wins depends on the device and protocol (EM loses 8 points
    on a rest-heavy set; the band shares help on one set and hurt on three), and a new device is
    exactly where nobody can say beforehand. ``selection_``: inner accuracy per candidate of the
    last fit; ``chosen_``: the fitted candidate.
    """

    name = "aemg-probe-auto"

    def __init__(self, run=None, candidates=None, inner_folds: int = 5, **kw):
        for fixed in ("features", "subject_norm", "adapt", "token_set", "classifier"):
            if fixed in kw:
                raise ConfigError(f"{self.name}: {fixed} is set by the candidates; pass candidates=[...]")
        super().__init__(run, features="embedding+tokens", classifier="lda", subject_norm="all",
                         adapt="em", token_set="all", **kw)
        if int(inner_folds) < 2:
            raise ConfigError(f"{self.name}: inner_folds={inner_folds!r} must be >= 2")
        self.inner_folds = int(inner_folds)
        self._options = {"run": run, **kw}
        self.candidates = [dict(c) for c in (AUTO_CANDIDATES if candidates is None else candidates)]
        if not self.candidates:
            raise ConfigError(f"{self.name}: candidates is empty")
        for c in self.candidates:
            self._candidate(c)  # a bad option fails here, naming it

    @property
    def regimes(self) -> tuple:
        return ("unlabelled",)

    def _candidate(self, options: dict) -> AemgProbe:
        unknown = sorted(set(options) - {"token_set", "adapt", "shrinkage", "em_prior", "em_iters"})
        if unknown:
            raise ConfigError(f"{self.name}: candidate option(s) {', '.join(unknown)} not selectable; "
                              "use token_set, adapt, shrinkage, em_prior, em_iters")
        probe = AemgProbe(**{**self._options, "features": "embedding+tokens", "classifier": "lda",
                             "subject_norm": "all", **options})
        probe.name = self.name
        return probe

    def fit(self, train, seed=0, adaptation=None):
        from .features import token_feature_columns
        feats, use = self.trial_features(train, adaptation=adaptation)   # every column ("all")
        if not len(use):
            raise DataError(train.name or "trials", "no training trial has any token")
        y, subjects = train.labels[use], train.subjects[use]
        n_tok = len(token_feature_columns(train.n_channels, "all"))
        d = feats.shape[1] - n_tok                                     # embedding width
        probes = [self._candidate(c) for c in self.candidates]
        cols = [np.concatenate([np.arange(d), d + token_feature_columns(train.n_channels, p.token_set)])
                for p in probes]
        groups = np.array_split(np.unique(subjects), min(self.inner_folds, len(np.unique(subjects))))
        correct = np.zeros(len(probes))
        self.inner_split_ = len(groups) >= 2
        if self.inner_split_:
            for i, (probe, c) in enumerate(zip(probes, cols)):
                for g in groups:
                    held = np.isin(subjects, g)
                    probe.fit_rows(feats[~held][:, c], y[~held], subjects[~held], train.n_classes)
                    x = feats[held][:, c]
                    s = probe.score_rows(x, subjects[held], (x, subjects[held]))
                    correct[i] += int((s.argmax(axis=1) == y[held]).sum())
        best = int(np.argmax(correct))                                 # first on ties
        self.selection_ = [{**cand, "inner_accuracy": float(k / len(y))}
                           for cand, k in zip(self.candidates, correct)]
        self.chosen_ = probes[best].fit_rows(feats[:, cols[best]], y, subjects, train.n_classes)
        self.n_classes_ = self.chosen_.n_classes_
        log.info("%s: chose %s (inner accuracy %s)", self.name, self.candidates[best],
                 ", ".join(f"{r['inner_accuracy']:.3f}" for r in self.selection_))
        return self

    def scores(self, test, adaptation=None):
        return self.chosen_.scores(test, adaptation)

    def fit_choice(self) -> dict | None:
        best = max(self.selection_, key=lambda r: r["inner_accuracy"])
        decision = ", ".join(f"{k}={v}" for k, v in best.items() if k != "inner_accuracy")
        return {"decision": decision if self.inner_split_ else f"{decision} (no inner split: the first)",
                "selection": self.selection_ if self.inner_split_ else []}


#: what :class:`AemgProbeRows` classifies: one row per trial (the probe's pooled features), one row
#: per token (the token's classic features; the trial = majority vote of its tokens, as lda-log's
#: windows), or whichever the training trials' inner cross-validation prefers
ROWS = ("trial", "tokens", "auto")


class AemgProbeRows(AemgProbe):
    """``aemg-probe-tok-rows``: ``aemg-probe-tok``, or the same tokens classified one row per token,
    chosen on the training trials.

    ``rows="trial"``: exactly :class:`AemgProbe` with the same options (default: those of
    ``aemg-probe-tok``). ``rows="tokens"``: every token of a trial is a row (its classic features,
    :func:`~aemg.eval.features.token_features` restricted to ``row_set``, default ``"td"``, by
    :func:`~aemg.eval.features.token_row_columns`), standardised
    with the training rows' statistics and classified by shrinkage LDA; a trial's class is the
    majority vote of its tokens (ties by the summed scores, :func:`~aemg.eval.baselines.vote`).
    ``rows="auto"`` (default): both are scored by an inner cross-validation on the training trials
    (leave-``inner_folds``-groups-of-subjects-out with several training subjects, leave one
    repetition out within one subject, as the intra protocol); the one with more correct inner
    trials is fitted on all training trials; on ties, and when no inner split exists (one group),
    token rows: with one training trial per class trial rows have no within-class spread to
    estimate a covariance from, token rows do (many rows per trial, as LDA's windows).
    ``token_shrinkage``: the token-row LDA's shrinkage, a number in [0, 1] or ``"lw"`` (default:
    the Ledoit-Wolf intensity of the standardised, class-centred training rows, so that it follows
    the rows per feature of the data at hand). Why (docs/notes/generalisation.md, session 6 H2):
    within one user the training trials are 1-3 per class against 128-320 trial features, and the
    probe lost 4-8 points to LDA's hundreds of window rows; token rows recover it (within 2 points
    on Cote-Allard / 3DC / UCI), while across users trial rows with the embedding are better (3DC,
    unlabelled screening: +4 to +8). ``rows_``: the fitted choice; ``selection_``: inner accuracy
    per candidate; ``token_shrinkage_``: the token rows' fitted shrinkage (token rows only).
    Only ``adapt="none"`` with ``subject_norm="none"`` (regimes rest / fewshot, and intra).
    """

    name = "aemg-probe-tok-rows"

    def __init__(self, run=None, rows: str = "auto", inner_folds: int = 5,
                 token_shrinkage: float | str = "lw", row_set: str = "td", **kw):
        super().__init__(run, **{**_TOK, **kw})
        from .features import TOKEN_SETS
        if row_set not in TOKEN_SETS:
            raise ConfigError(f"{self.name}: row_set={row_set!r}; choose from {TOKEN_SETS}")
        self.row_set = row_set
        if rows not in ROWS:
            raise ConfigError(f"{self.name}: rows={rows!r}; choose from {ROWS}")
        if rows != "trial" and (self.adapt != "none" or self.subject_norm != "none" or self.rotations):
            raise ConfigError(f"{self.name}: rows={rows!r} takes adapt='none', subject_norm='none' and "
                              "no rotations; use rows='trial' for those")
        if int(inner_folds) < 2:
            raise ConfigError(f"{self.name}: inner_folds={inner_folds!r} must be >= 2")
        if token_shrinkage != "lw" and not (isinstance(token_shrinkage, (int, float))
                                            and 0.0 <= float(token_shrinkage) <= 1.0):
            raise ConfigError(f"{self.name}: token_shrinkage={token_shrinkage!r}; a number in [0, 1] or 'lw'")
        self.rows, self.inner_folds, self.token_shrinkage = rows, int(inner_folds), token_shrinkage

    def token_rows(self, trials: TrialSet,
                   adaptation: Adaptation | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows (m, F) float64: the classic features of every token of the trials, the trial index
        (m,) of each row), cached per trial and noise level."""
        from .features import token_features, token_row_columns
        sents, cfg, levels = self._sentences(trials, 0, adaptation)
        what = ("aemg-token-rows", json.dumps(cfg.to_dict(), sort_keys=True))
        cols = token_row_columns(trials.n_channels, self.row_set)
        rows, owner = [], []
        for i in self._usable(sents):
            key = (trials.keys[i], what, levels[i])
            if key not in trials.cache:
                s = sents[i]
                trials.cache[key] = token_features(s.payload, s.energy, s.rate)
            rows.append(trials.cache[key][:, cols])
            owner.append(np.full(len(rows[-1]), i, dtype=np.int64))
        if not rows:
            return np.zeros((0, len(cols))), np.zeros(0, dtype=np.int64)
        return np.concatenate(rows), np.concatenate(owner)

    def _fit_tokens(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> tuple:
        """(mean, std, LDA, n_classes, shrinkage) fitted on token rows ``x`` (m, F), labels (m,)."""
        std = x.std(axis=0)
        mean, std = x.mean(axis=0), np.where(std > 0, std, 1.0)
        z = (x - mean) / std
        shrinkage = self.token_shrinkage
        if shrinkage == "lw":
            from sklearn.covariance import ledoit_wolf_shrinkage
            centred = z.copy()
            for c in np.unique(y):
                centred[y == c] -= z[y == c].mean(axis=0)
            shrinkage = float(ledoit_wolf_shrinkage(centred, assume_centered=True)) if len(z) > 1 else 1.0
        return mean, std, LDA(float(shrinkage)).fit(z, y), n_classes, float(shrinkage)

    @staticmethod
    def _token_scores(model: tuple, x: np.ndarray) -> np.ndarray:
        """(m, K) LDA scores of token rows ``x`` (-1e9 for classes absent from training)."""
        mean, std, lda, k, _ = model
        s = np.full((len(x), k), -1e9)
        s[:, lda.classes_] = lda.decision_function((x - mean) / std)
        return s

    @classmethod
    def _vote_tokens(cls, model: tuple, x: np.ndarray, owner: np.ndarray, n_trials: int) -> np.ndarray:
        """(n_trials,) int64 majority votes of the token rows ``x`` of trials ``owner`` (-1: no token)."""
        s = cls._token_scores(model, x)
        return vote(s.argmax(axis=1), owner, n_trials, model[3], s)

    def _inner_groups(self, train: TrialSet, use: np.ndarray) -> list:
        """Held-out masks over ``train`` of the inner folds: subject groups, else repetitions."""
        subjects = np.unique(train.subjects[use])
        if len(subjects) >= 2:
            groups = np.array_split(subjects, min(self.inner_folds, len(subjects)))
            return [np.isin(train.subjects, g) for g in groups]
        reps = np.unique(train.repetitions[use])
        return [train.repetitions == r for r in reps] if len(reps) >= 2 else []

    def fit(self, train, seed=0, adaptation=None):
        self.selection_ = []
        if self.rows == "trial":
            self.rows_ = "trial"
            return super().fit(train, seed, adaptation)
        x, owner = self.token_rows(train, adaptation)
        if not len(x):
            raise DataError(train.name or "trials", "no training trial has any token")
        choice = "tokens"
        if self.rows == "auto":
            feats, use = self.trial_features(train, adaptation=adaptation)
            groups = self._inner_groups(train, use)
            if groups:
                correct = {"trial": 0, "tokens": 0}
                n = 0
                for held in groups:
                    h_t, h_k = held[use], held[owner]
                    if h_t.all() or not h_t.any():
                        continue
                    trial = AemgProbe.fit_rows(self, feats[~h_t], train.labels[use][~h_t],
                                               train.subjects[use][~h_t], train.n_classes)
                    pred = trial.score_rows(feats[h_t], train.subjects[use][h_t]).argmax(axis=1)
                    correct["trial"] += int((pred == train.labels[use][h_t]).sum())
                    model = self._fit_tokens(x[~h_k], train.labels[owner][~h_k], train.n_classes)
                    votes = self._vote_tokens(model, x[h_k], owner[h_k], len(train))
                    idx = np.flatnonzero(held)
                    correct["tokens"] += int((votes[idx] == train.labels[idx]).sum())
                    n += len(idx)
                self.selection_ = [{"rows": r, "inner_accuracy": correct[r] / max(n, 1)}
                                   for r in ("trial", "tokens")]
                choice = "trial" if n and correct["trial"] > correct["tokens"] else "tokens"
                log.info("%s: rows=%s (inner accuracy trial %.3f, tokens %.3f)", self.name, choice,
                         correct["trial"] / max(n, 1), correct["tokens"] / max(n, 1))
            if choice == "trial":
                self.rows_ = "trial"
                return self.fit_rows(feats, train.labels[use], train.subjects[use], train.n_classes,
                                     adaptation.subject if adaptation is not None else None)
        self.rows_ = "tokens"
        self.n_classes_ = train.n_classes
        self.tokens_ = self._fit_tokens(x, train.labels[owner], train.n_classes)
        self.token_shrinkage_ = self.tokens_[4]
        return self

    def fit_choice(self) -> dict | None:
        if self.rows != "auto":
            return None
        return {"decision": f"rows={self.rows_}", "selection": self.selection_}

    def scores(self, test, adaptation=None):
        """(class scores (n', K), indices of the trials with tokens); token rows: the count of each
        class among the trial's token votes."""
        if self.rows_ == "trial":
            return super().scores(test, adaptation)
        x, owner = self.token_rows(test, adaptation)
        use = np.unique(owner)
        counts = np.zeros((len(test), self.n_classes_))
        np.add.at(counts, (owner, self._token_scores(self.tokens_, x).argmax(axis=1)), 1.0)
        return counts[use], use

    def predict(self, test, adaptation=None):
        if self.rows_ == "trial":
            return super().predict(test, adaptation)
        x, owner = self.token_rows(test, adaptation)
        return Prediction(self._vote_tokens(self.tokens_, x, owner, len(test)))


#: ``aemg-probe-fuse``: the weight of the probe's log-posterior (1 = the probe alone, 0 = window
#: LDA's mean log-posterior alone). Equal weights, fixed a priori: choosing the weight per fold by
#: an inner cross-validation on the training users was measured to mislead (3DC 41.6 against 43.9
#: under ``rest``; docs/notes/generalisation.md, session 7, experiment 19)
FUSE_WEIGHT = 0.5
#: the fused methods' gross-failure guard margin (share of trials) for ``guard=``: the fixed weight is
#: kept unless one component alone beats the fused rule by more than this on training users held
#: out in turn under the fold's regime (:func:`~aemg.eval.protocols.inner_folds`); then that
#: component decides alone. Fixed before any screen at 5 points (about 3 standard errors of a paired
#: difference over 5 inner users' trials), so that it fires on gross failures, not on the 1-3 point
#: differences where per-fold weight choice misled (experiment 19). **Off by default**: measured in
#: session 10 (docs/notes/generalisation.md, experiment 27) it changed 1 fold in ~600 on real data
#: (3DC, UCI, suguru, myo_readings through 8, 2 and 1 electrodes), moved a synthetic 2-electrode
#: device by -0.9 to +2.1 (none shown), and costs 2-7x the fused methods' fold time
FUSE_GUARD = 0.05
#: training users held out in turn by the guard
FUSE_GUARD_USERS = 5
#: the fused methods registered here: name -> (probe variant, window-LDA variant)
FUSED_VARIANTS = {"aemg-probe-fuse": ("aemg-probe-tok", "lda-log"),
                  "aemg-probe-fuse-subjnorm": ("aemg-probe-tok-subjnorm", "lda-log-subjnorm"),
                  "aemg-probe-fuse-map": ("aemg-probe-tok-map", "lda-log-subjnorm-map"),
                  "aemg-probe-fuse-auto": ("aemg-probe-auto", "lda-log-subjnorm")}


def _log_posteriors(scores: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of class scores (n, K) (log-posteriors up to a row constant; -inf = a
    class the classifier never saw)."""
    s = np.where(np.isfinite(scores), scores, -1e9)
    s = s - s.max(axis=1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=1, keepdims=True))


def fusion_inputs(n: int, k: int, scores: np.ndarray, use: np.ndarray, window_scores: np.ndarray,
                  owner: np.ndarray) -> tuple:
    """What :class:`AemgProbeFused` combines, per trial of ``n``: (probe log-posteriors (n, k) from
    its class scores (n', K') of the trials ``use``, whether the probe scored the trial (n,) bool,
    the mean over the trial's windows of the LDA's window log-posteriors (n, k) from its window
    scores (W, K'') of the trials ``owner``, whether the trial has windows (n,) bool); rows the
    component did not score are 0."""
    probe = np.zeros((n, k))
    probe[use, :scores.shape[1]] = _log_posteriors(scores)
    lda = np.zeros((n, k))
    np.add.at(lda[:, :window_scores.shape[1]], owner, _log_posteriors(window_scores))
    count = np.bincount(owner, minlength=n)
    lda /= np.maximum(count, 1)[:, None]
    return probe, np.isin(np.arange(n), use), lda, count > 0


class AemgProbeFused(AemgMethod):
    """An AEMG probe and a window LDA as one classifier (``aemg-probe-fuse``: ``aemg-probe-tok`` and
    ``lda-log``, regime ``rest``; ``aemg-probe-fuse-subjnorm``: ``aemg-probe-tok-subjnorm`` and
    ``lda-log-subjnorm``, regimes ``online`` / ``unlabelled``; ``aemg-probe-fuse-map``:
    ``aemg-probe-tok-map`` and ``lda-log-subjnorm-map``, regime ``fewshot``;
    ``aemg-probe-fuse-auto``: ``aemg-probe-auto`` and ``lda-log-subjnorm``, regime ``unlabelled``).

    Per test trial, ``weight * log p_probe + (1 - weight) * mean over its windows of log p_lda``:
    the probe's class posterior (softmax of its scores) and the window LDA's, averaged in the log
    domain over the trial's windows; a trial without tokens, or without windows, gets the other's
    alone (neither: -1). The two read different things of the same trial (the pre-trained
    embedding and pooled token features of its contractions; the log time-domain features of every
    200 ms window) and err on different users; an unsure component (flat posteriors, e.g. window
    LDA across 3DC's users) leaves the decision to the other. Both are fitted on the same training
    trials with the same :class:`Adaptation`, so the fusion sees exactly what its regime gives.

    Parameters
    ----------
    probe : str
        A registered probe variant (an :class:`AemgProbe`), built with ``run`` and ``probe_options``.
    lda : str
        A registered window-LDA variant (:class:`~aemg.eval.baselines.HudginsLDA`), with
        ``lda_options``; it must run under each of the probe's regimes (or read nothing, ``none``).
    weight : float in [0, 1]
        The probe's weight (default :data:`FUSE_WEIGHT`).
    guard : float in [0, 1] or None
        Gross-failure guard margin (e.g. :data:`FUSE_GUARD`; default None: off): before the fit, up to
        ``guard_users`` training users are held out in turn under the fold's regime (their rest
        recording, running or unlabelled statistics, or labelled share, as the test user's:
        :func:`~aemg.eval.protocols.inner_folds`); when the LDA alone (its own prediction: the
        window vote, exactly the classic twin) or the probe alone (``weight`` 1) is right on more
        than ``guard`` more of their trials than the fused rule, that component decides alone
        (``alone_``). Nothing of the test user is read. ``inner_``: the inner accuracies and the
        decision of the last fit (None: no inner users, e.g. intra).
    """

    name = "aemg-probe-fuse"
    needs_run = True
    pretrained = True

    def __init__(self, run=None, probe: str = "aemg-probe-tok", lda: str = "lda-log",
                 weight: float = FUSE_WEIGHT, probe_options: dict | None = None,
                 lda_options: dict | None = None, guard: float | None = None,
                 guard_users: int = FUSE_GUARD_USERS, **kw):
        super().__init__(run, **{k: kw[k] for k in ("pooling", "preset", "device", "batch_size")
                                 if k in kw})
        from .baselines import HudginsLDA, get_method
        self.probe = get_method(probe, run=run, **{**kw, **(probe_options or {})})
        self.lda = get_method(lda, **(lda_options or {}))
        if not isinstance(self.probe, AemgProbe) or isinstance(self.probe, AemgProbeRows):
            raise ConfigError(f"{self.name}: probe={probe!r} is not a probe variant (aemg-probe...)")
        if not isinstance(self.lda, HudginsLDA):
            raise ConfigError(f"{self.name}: lda={lda!r} is not a window LDA (lda...)")
        lost = [r for r in self.probe.regimes if r not in self.lda.regimes and "none" not in self.lda.regimes]
        if lost:
            raise ConfigError(f"{self.name}: {lda} cannot run under {', '.join(lost)}, a regime of {probe}")
        self.weight = self._unit_interval("weight", weight)
        guard = None if guard is None else self._unit_interval("guard", guard, " or None (off)")
        if not isinstance(guard_users, int) or guard_users < 2:
            raise ConfigError(f"{self.name}: guard_users={guard_users!r} must be an integer >= 2")
        self.guard, self.guard_users, self.inner_ = guard, guard_users, None

    @property
    def regimes(self) -> tuple:
        return self.probe.regimes

    @property
    def needs_rest(self) -> bool:
        return self.probe.needs_rest

    def tokenizer_config(self, trials: TrialSet | None = None):
        return self.probe.tokenizer_config(trials)

    def _unit_interval(self, option: str, value, alternative: str = "") -> float:
        """``value`` as a float in [0, 1], else a ConfigError naming the method and ``option``."""
        try:
            value = float(value)
        except (TypeError, ValueError):
            value = -1.0
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{self.name}: {option} must be a number in [0, 1]{alternative}")
        return value

    @property
    def alone_(self) -> str | None:
        """The component the guard left to decide alone in the last fit (``"lda"``, ``"probe"``),
        else None."""
        return None if self.inner_ is None else self.inner_["alone"]

    @property
    def weight_(self) -> float:
        """The probe's weight in the fused rule of the last fit (1 when the probe decides alone)."""
        return 1.0 if self.alone_ == "probe" else self.weight

    @property
    def _running(self) -> bool:
        """Both components have running statistics under ``online`` (per-user standardisation
        without EM / MAP)."""
        return (self.probe.subject_norm == "all" and self.probe.adapt == "none"
                and self.lda.norm == "subject" and self.lda.adapt == "none")

    def fit(self, train, seed=0, adaptation=None):
        self.inner_ = self._guard(train, seed, adaptation) if self.guard is not None else None
        self.probe.fit(train, seed=seed, adaptation=adaptation)
        self.lda.fit(train, seed=seed, adaptation=adaptation)
        return self

    def _guard(self, train: TrialSet, seed: int, adaptation: Adaptation | None) -> dict | None:
        """Inner accuracies of the fused rule, the LDA alone and the probe alone on training users
        held out in turn under the regime, and which component (if any) they leave alone (see the
        class docstring)."""
        from .protocols import inner_folds
        from .runner import fold_adaptation
        online = adaptation is not None and adaptation.regime == "online"
        if online and not self._running:
            return None
        correct, n = np.zeros(3), 0
        for fold in inner_folds(train, adaptation, self.guard_users, seed):
            inner = fold_adaptation(train, fold, adaptation.rest_class)
            try:
                self.probe.fit(train.subset(fold.train), seed=seed, adaptation=inner)
                self.lda.fit(train.subset(fold.train), seed=seed, adaptation=inner)
            except DataError as e:  # e.g. an inner user without tokens: that user is left out
                log.info("%s: inner user %s left out of the guard: %s", self.name, fold.subject, e)
                continue
            test = train.subset(fold.test)
            hidden = test.without_labels()
            inputs = self._inputs(hidden, inner, online)
            lda = self.lda.predict_online(hidden, inner) if online else self.lda.predict(hidden, inner)
            for i, pred in enumerate((self._rule(len(test), *inputs, self.weight), lda.trial,
                                      self._rule(len(test), *inputs, 1.0))):
                correct[i] += int((pred == test.labels).sum())
            n += len(test)
        if not n:
            return None
        acc = correct / n
        best = 1 + int(np.argmax(acc[1:]))                         # the better single component
        alone = ("lda", "probe")[best - 1] if acc[best] > acc[0] + self.guard else None
        log.info("%s: guard %s (inner accuracy fused %.3f, lda %.3f, probe %.3f, %d trials)", self.name,
                 f"{alone} alone" if alone else "fused", acc[0], acc[1], acc[2], n)
        return {"alone": alone, "fused": float(acc[0]), "lda": float(acc[1]), "probe": float(acc[2]),
                "n_trials": n}

    def fit_choice(self) -> dict | None:
        if self.inner_ is None:
            return None
        return {"decision": f"{self.alone_} alone" if self.alone_ else "fused", **self.inner_}

    def _inputs(self, test: TrialSet, adaptation: Adaptation | None, online: bool = False) -> tuple:
        """(probe class scores (n', K), their trials, LDA window scores (W, K), their trials) of
        ``test``; ``online``: both on their running statistics."""
        if online:
            return (*self.probe.online_scores(test, adaptation), *self.lda.online_window_scores(test))
        return (*self.probe.scores(test, adaptation), *self.lda.window_scores(test, adaptation))

    def _rule(self, n: int, scores: np.ndarray, use: np.ndarray, window_scores: np.ndarray,
              owner: np.ndarray, weight: float) -> np.ndarray:
        """The fused class (n,) of each of ``n`` trials from the probe's class scores (n', K) of the
        trials ``use`` and the LDA's window scores (W, K) of the trials ``owner`` (-1: neither)."""
        probe, has_probe, lda, has_lda = fusion_inputs(
            n, max(self.probe.n_classes_, self.lda.n_classes_), scores, use, window_scores, owner)
        w = np.where(has_probe & has_lda, weight, has_probe.astype(np.float64))[:, None]
        out = (w * probe + (1 - w) * lda).argmax(axis=1)
        out[~(has_probe | has_lda)] = -1
        return out

    def predict(self, test, adaptation=None):
        if self.alone_ == "lda":
            return self.lda.predict(test, adaptation)
        return Prediction(self._rule(len(test), *self._inputs(test, adaptation), self.weight_))

    def predict_online(self, test, adaptation):
        """Both components' running statistics (their own ``online_prior``) where both have them
        (per-user standardisation without EM / MAP); otherwise trial by trial."""
        if not self._running:
            return super().predict_online(test, adaptation)
        if self.alone_ == "lda":
            return self.lda.predict_online(test, adaptation)
        return Prediction(self._rule(len(test), *self._inputs(test, adaptation, online=True), self.weight_))


class AemgSupervised(AemgMethod):
    """Backbone + linear head trained supervised on each fold (base of fine-tune, scratch and the
    window Transformer).

    Parameters
    ----------
    epochs : int
        Passes over the training sentences (the loop also stops after an epoch whose mean loss is
        below ``stop_loss``).
    lr : float
        AdamW learning rate of the backbone (the head uses ``head_lr``), weight decay
        ``weight_decay``; gradient norm clipped at 1.
    """

    lr_default = 1e-3

    def __init__(self, run=None, epochs: int = 10, lr: float | None = None, head_lr: float = 1e-3,
                 weight_decay: float = 0.01, stop_loss: float = 0.02, **kw):
        super().__init__(run, **kw)
        if int(epochs) < 1:
            raise ConfigError(f"{self.name}: epochs={epochs!r} must be >= 1")
        self.epochs, self.lr = int(epochs), float(lr if lr is not None else self.lr_default)
        self.head_lr, self.weight_decay = float(head_lr), float(weight_decay)
        self.stop_loss = float(stop_loss)

    def initial_backbone(self, trials: TrialSet, seed: int):
        """A new backbone for one fold: a copy of the pre-trained one, or a seeded random one."""
        import torch

        from ..model.backbone import Backbone
        if self.pretrained:
            return copy.deepcopy(self._run().model.backbone)
        torch.manual_seed(int(seed))
        cfg = self.model_config(trials)
        return Backbone(cfg, cfg.depth)

    def fit(self, train, seed=0, adaptation=None):
        import torch
        import torch.nn.functional as F

        from ..model.network import pool

        sents = self.sentences(train, adaptation)
        use = self._usable(sents)
        if not len(use):
            raise DataError(train.name or "trials", "no training trial has any token")
        if self.pretrained:
            check_run_matches(self._run(), train)
        else:
            L = self.tokenizer_config().token_len(train.rate)
            if L != self.model_config(train).token_len:
                raise ConfigError(f"{self.name}: the run's model takes tokens of "
                                  f"{self.model_config(train).token_len} samples; the trials "
                                  f"at {train.rate:g} Hz give {L}")
        self.backbone_ = self.initial_backbone(train, seed).to(self.device)
        self.initial_sha256_ = state_sha256(self.backbone_)
        self.n_classes_ = train.n_classes
        torch.manual_seed(int(seed))
        d = self.backbone_.transformer.norm.normalized_shape[0]
        self.head_ = torch.nn.Linear(d, self.n_classes_).to(self.device)
        opt = torch.optim.AdamW([{"params": self.backbone_.parameters(), "lr": self.lr},
                                 {"params": self.head_.parameters(), "lr": self.head_lr}],
                                weight_decay=self.weight_decay)
        angles, z = self.geometry(train)
        y = torch.as_tensor(train.labels, device=self.device)
        rng = np.random.default_rng([int(seed), 1])
        self.backbone_.train()
        self.epochs_run_ = 0
        for _ in range(self.epochs):
            order = use[rng.permutation(len(use))]
            total, n = 0.0, 0
            for lo, b in zip(range(0, len(order), self.batch_size), self._batches(sents, order, angles)):
                idx = torch.as_tensor(order[lo:lo + self.batch_size], device=self.device)
                logits = self.head_(pool(self.backbone_(b, angles, z), b["mask"], self.pooling))
                loss = F.cross_entropy(logits.float(), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                params = list(self.backbone_.parameters()) + list(self.head_.parameters())
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                total += float(loss.detach()) * len(idx)
                n += len(idx)
            self.epochs_run_ += 1
            if total / n < self.stop_loss:
                break
        self.backbone_.eval()
        return self

    def predict(self, test, adaptation=None):
        import torch

        from ..model.network import pool
        sents = self.sentences(test, adaptation)
        use = self._usable(sents)
        out = np.full(len(test), -1, dtype=np.int64)
        if len(use):
            angles, z = self.geometry(test)
            with torch.no_grad():
                rows = [self.head_(pool(self.backbone_(b, angles, z), b["mask"], self.pooling))
                        .float().cpu().numpy()
                        for b in self._batches(sents, use, angles)]
            out[use] = np.concatenate(rows).argmax(axis=1)
        return Prediction(out)


class AemgFinetune(AemgSupervised):
    """Full fine-tuning of the pre-trained backbone with a fresh linear head (``aemg-finetune``);
    backbone lr 3e-4 by default."""

    name = "aemg-finetune"
    needs_run = True
    pretrained = True
    lr_default = 3e-4


class AemgScratch(AemgSupervised):
    """The AEMG architecture, randomly initialised (seeded), trained supervised per fold
    (``aemg-scratch``: AEMG without pre-training). A run, when given, only sets the architecture and
    tokenizer settings."""

    name = "aemg-scratch"


class WindowTransformer(AemgSupervised):
    """``aemg-scratch`` on fixed sliding-window tokens (``window-transformer``: the tokenizer
    ablation; window = token length, no overlap, over the whole trial)."""

    name = "window-transformer"
    token_mode = "windows"


for _name, _cls in zip(AEMG_METHODS, (AemgProbe, AemgFinetune, AemgScratch, WindowTransformer)):
    register_method(_name, _cls)
class NctFeatures(AemgProbe):
    """``nct-logreg`` / ``nct-lda``: :class:`AemgProbe`'s classifier and standardisation on the pooled classic
    features of the NCT tokens only (``features="tokens"``); no network, no run needed (a run, when
    given, sets the tokenizer settings)."""

    name = "nct-logreg"
    needs_run = False
    pretrained = False

    def __init__(self, run=None, features: str = "tokens", **kw):
        super().__init__(run, features=features, **kw)


for _name, _options in PROBE_VARIANTS.items():
    register_method(_name, functools.partial(AemgProbe, **_options))
register_method("aemg-probe-auto", AemgProbeAuto)
register_method("aemg-probe-tok-rows", AemgProbeRows)
for _name, (_probe, _lda) in FUSED_VARIANTS.items():
    register_method(_name, functools.partial(AemgProbeFused, probe=_probe, lda=_lda))
#: the methods ``aemg evaluate --checkpoint RUN`` hands the run to
CHECKPOINT_METHODS = (*AEMG_METHODS, *PROBE_VARIANTS, "aemg-probe-auto", "aemg-probe-tok-rows",
                      *FUSED_VARIANTS)
#: what ``aemg evaluate --checkpoint RUN`` runs when no ``--methods`` are given: per regime, the AEMG
#: method measured to carry to a device the model never saw (docs/notes/generalisation.md, "What to
#: use on a device the model has never seen", session 8) and the classic baselines with the same
#: information
RECOMMENDED_METHODS = {"rest": "aemg-probe-fuse", "online": "aemg-probe-fuse-subjnorm",
                       "unlabelled": "aemg-probe-fuse-auto", "fewshot": "aemg-probe-fuse-map"}
RECOMMENDED_BASELINES = ("lda-log", "lda-log-subjnorm", "lda-log-subjnorm-map")
for _name, _options in NCT_VARIANTS.items():
    register_method(_name, functools.partial(NctFeatures, **_options))
