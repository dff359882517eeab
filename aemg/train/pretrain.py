"""Two-stage pre-training: stage 1 VQ vocabulary, stage 2 masked token modelling.

Determinism: batch order, codebook initialisation, dead-code restarts and mask positions are drawn
from generators seeded by (seed, stage, step[, sentence]); dropout uses the torch RNG, whose state
is checkpointed. A resumed run therefore repeats an uninterrupted one exactly (on CPU).
"""
from __future__ import annotations

import csv
import io
import logging
import math
import os
import signal
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .._io import atomic_write, folder_entries, locks_folder
from .._progress import progress_bar
from ..errors import AemgError, ConfigError
from ..model import AEMG
from ..model.config import PretrainConfig, preset
from ..model.targets import TARGET_PARTS
from ..model.vq import perplexity
from . import ddp
from .allocator import keep_freed_memory
from .augment import AUGMENT_STREAM, AugmentConfig, augment_batch
from .checkpoint import (
    MODEL_FILE,
    check_compatible,
    check_same_run,
    corpus_identities,
    has_checkpoint,
    load_checkpoint,
    load_weights,
    resume_arguments,
    save_checkpoint,
    write_json_atomic,
)
from .data import batch_indices, check_corpus, geometry, local_share, mix_corpora, to_tensors

log = logging.getLogger("aemg.train")

LOG_COLUMNS = ("stage", "step", "loss", "rec_loss", "rec_base", "spatial_loss", "spatial_base", "level_loss",
               "level_base", "envelope_loss", "envelope_base", "spectrum_loss", "spectrum_base",
               "commit_loss", "inv_loss", "quantized", "codes_used", "usage", "perplexity",
               "batch_perplexity", "accuracy", "majority_acc", "lr", "tokens", "tokens_per_s", "elapsed_s")
#: Stage-1 columns: ``*_loss`` the standardised squared error of each target part (aemg.model.targets),
#: ``*_base`` the same for predicting the batch mean; ``codes_used`` codes chosen in the last
#: ``model.usage_window`` steps, ``usage`` = codes_used / K, ``perplexity`` over that window,
#: ``batch_perplexity`` of this step's batch; ``quantized`` 0 during the VQ warm-up.
#: Stage 2: ``accuracy`` masked-token accuracy, ``majority_acc`` the accuracy of predicting the
#: batch's most frequent target code (a hindsight, hence generous, trivial baseline).


class NonFiniteLoss(AemgError, RuntimeError):
    """The loss became NaN or infinite; training stopped and the last good checkpoint was kept."""


@dataclass
class PretrainResult:
    """What :func:`pretrain` did: ``history`` holds one dict per optimiser step (columns of
    :data:`LOG_COLUMNS`); ``final`` the last row of each stage by stage number."""

    run_dir: Path
    checkpoint: Path | None
    config: PretrainConfig
    history: list[dict] = field(default_factory=list)
    final: dict[int, dict] = field(default_factory=dict)
    wall_s: float = 0.0


def _step_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


def _lr(cfg, step: int, total: int) -> float:
    t = cfg.train
    if t.warmup_steps and step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    frac = (step - t.warmup_steps) / max(1, total - t.warmup_steps)
    return t.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def _stages(stage) -> list[int]:
    if stage in ("both", None):
        return [1, 2]
    if str(stage) in ("1", "2"):
        return [int(stage)]
    raise ConfigError(f"stage={stage!r}: choose 1, 2 or 'both'")


class TrainingLog:
    """The run's one logger: each step's row (columns of :data:`LOG_COLUMNS`) goes to the progress
    bar (every step), to RUN/log.csv (every ``log_every`` steps and a stage's last step) and, when
    asked, to TensorBoard (the same rows' float columns as ``stage{s}/{column}``). Only the main
    process writes: on the others every method does nothing.

    Parameters
    ----------
    run_dir : Path
        The run folder (log.csv, tensorboard/).
    keep_until : (stage, step) or None
        Resuming: the rows of an existing log.csv up to this step are kept, later ones (written
        after the checkpoint resumed from) dropped; None: a new log.csv.
    log_every : int
        Steps between CSV / TensorBoard rows.
    main : bool
        This process writes (rank 0).
    progress : bool
        Show a tqdm bar per stage with the loss and tokens/s.
    tensorboard : bool
        Also write TensorBoard logs (ConfigError when the tensorboard package is missing).
    """

    def __init__(self, run_dir: Path, keep_until: tuple[int, int] | None, log_every: int, *,
                 main: bool = True, progress: bool = True, tensorboard: bool = False):
        self.run_dir, self.log_every = Path(run_dir), int(log_every)
        self.main, self.progress = main, progress
        self._file = self._csv = self._tb = self._bar = None
        if not main:
            return
        path = self.run_dir / "log.csv"
        rows = []
        if keep_until is not None and path.is_file():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if (int(r["stage"]), int(r["step"])) <= keep_until]
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, LOG_COLUMNS)
        w.writeheader()
        w.writerows(rows)
        atomic_write(path, buf.getvalue())
        self._file = open(path, "a", newline="")  # noqa: SIM115 - open for the run; close() closes it
        self._csv = csv.DictWriter(self._file, LOG_COLUMNS)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self.close()
                raise ConfigError("--tensorboard: the tensorboard package is not installed (pip install "
                                  "tensorboard), or drop the option; the CSV log is always written") from None
            self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))

    def start_stage(self, stage: int, total: int, start: int) -> None:
        """Stage ``stage`` of ``total`` steps begins at step ``start`` (> 0 when resumed)."""
        self._bar = progress_bar(self.progress and self.main, total=total, initial=start,
                                 desc=f"stage {stage}", unit="step")

    def step(self, row: dict, total: int) -> None:
        """Record the row of one finished step of a stage of ``total`` steps."""
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{row['loss']:.4f}", tok_s=f"{row['tokens_per_s']:.0f}")
        done = int(row["step"])
        if self._csv is None or not (done % self.log_every == 0 or done == total):
            return
        self._csv.writerow({k: row.get(k, "") for k in LOG_COLUMNS})
        self._file.flush()
        if self._tb is not None:
            for k, v in row.items():
                if k not in ("stage", "step") and isinstance(v, float):
                    self._tb.add_scalar(f"stage{row['stage']}/{k}", v, done)

    def end_stage(self) -> None:
        """The stage's steps are done (closes its progress bar)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        """Close the bar, log.csv and the TensorBoard writer (idempotent)."""
        self.end_stage()
        if self._file is not None:
            self._file.close()
            self._file = self._csv = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


@dataclass
class _Run:
    """A run after :func:`_set_up`: what every stage and step reads."""

    run_dir: Path
    cfg: PretrainConfig
    corpus: Any
    model: AEMG
    dev: torch.device
    info: Any                 # ddp.setup(): rank, world size, main process
    angles: torch.Tensor      # channel geometry of the corpus (aemg.train.data.geometry)
    z: torch.Tensor
    stages: list[int]
    seed: int
    state: dict               # trainer state written into every checkpoint
    ck: Any                   # the checkpoint resumed or continued from, or None
    resume: bool
    aug: AugmentConfig
    use_amp: bool
    result: PretrainResult
    t_start: float            # time.perf_counter() at the call
    tokens_total: int = 0     # real tokens seen by all steps so far (all processes)


@dataclass
class _Stage:
    """One stage's loop state (:func:`_start_stage`)."""

    number: int
    total: int                # steps of the stage
    params: list
    opt: torch.optim.Optimizer
    net: torch.nn.Module      # the model, or its DistributedDataParallel wrapper
    vq_start: int = 0         # stage 1: quantise from this step on
    last_ck: Path | None = None


def _set_up(corpora, out, config, stage, steps, batch_size, seed, resume, device, t_start) -> _Run:
    """Check the arguments, resolve the config (preset, object, or the resumed run's), open the
    corpus, build the model (with the weights of the checkpoint resumed or continued from) and the
    trainer state, and write config.json; see :func:`pretrain` for the rules."""
    run_dir = Path(out)
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if value is not None and int(value) < 1:
            raise ConfigError(f"{name}={value} (--{name.replace('_', '-')}): must be >= 1")
    corpus_ids = corpus_identities(corpora if isinstance(corpora, (list, tuple)) else [corpora])
    ck = None
    if has_checkpoint(run_dir):
        if not resume and _stages(stage or "both") != [2]:
            raise ConfigError(f"{run_dir}: already holds a run; pass resume=True (--resume) to continue it "
                              "or choose another output folder")
        ck = load_checkpoint(run_dir)
    elif resume and not (run_dir / "config.json").is_file():
        raise ConfigError(f"{run_dir}: nothing to resume (no checkpoint)")
    elif resume:
        log.info("%s: the run stopped before its first checkpoint; starting it again from step 0", run_dir)
        resume = False
    elif run_dir.is_dir() and folder_entries(run_dir):
        raise ConfigError(f"{run_dir}: exists and holds no checkpoint (a run that stopped before its first "
                          "one, or other files); pass --resume to start that run again from step 0, or "
                          "choose another output folder")
    base = ck.config if resume and ck is not None and config is None else \
        preset(config or "tiny") if config is None or isinstance(config, str) else config
    tr = base.train
    if steps is not None:
        tr = replace(tr, stage1_steps=int(steps), stage2_steps=int(steps))
    if batch_size is not None:
        tr = replace(tr, batch_size=int(batch_size))
    cfg = replace(base, train=tr)
    run_args = {"stage": str(stage) if stage is not None else None, "seed": seed, "corpora": corpus_ids}
    arg_diffs: list[str] = []
    if resume and ck is not None:
        run_args, arg_diffs = resume_arguments(ck, run_args)
    run_args["stage"] = run_args["stage"] or "both"
    run_args["seed"] = 0 if run_args["seed"] is None else int(run_args["seed"])
    stage, seed = run_args["stage"], run_args["seed"]
    stages = _stages(stage)
    aug = AugmentConfig.from_train(cfg.train)
    info = ddp.setup(device)
    dev = torch.device(device or (f"cuda:{info.local_rank}" if torch.cuda.is_available() else "cpu"))
    if info.world > 1 and dev.type == "cuda":
        dev = torch.device(f"cuda:{info.local_rank}")
    if dev.type == "cpu":
        keep_freed_memory()  # no mmap/munmap churn per step (aemg.train.allocator)
    if cfg.train.batch_size < info.world:
        raise ConfigError(f"batch_size={cfg.train.batch_size}: smaller than the {info.world} processes")
    corpus = mix_corpora(corpora if isinstance(corpora, (list, tuple)) else [corpora])
    where = getattr(corpus, "path", "corpus")
    L = int(corpus.token_shape[1])
    if not (resume and config is None) and L > 0 and cfg.model.token_len != L:
        log.info("model.token_len %d -> %d (the corpus's token length)", cfg.model.token_len, L)
        cfg = replace(cfg, model=replace(cfg.model, token_len=L))
    rate = float(getattr(corpus, "rate", 0.0) or 0.0)
    if rate > 0 and cfg.model.token_rate != rate:  # always: a resumed run must see the same corpus rate
        log.info("model.token_rate %g -> %g Hz (the corpus's rate)", cfg.model.token_rate, rate)
        cfg = replace(cfg, model=replace(cfg.model, token_rate=rate))
    check_corpus(corpus, cfg.model.max_tokens, cfg.model.token_len, str(where))
    angles, z = geometry(corpus, dev)

    torch.manual_seed(seed)
    model = AEMG(cfg.model)
    if ck is not None:
        if resume:
            check_same_run(run_dir, ck.config, cfg, arg_diffs)
        check_compatible(ck.config, cfg, ck.path)
        load_weights(model, ck.weights, ck.path / MODEL_FILE)
        if not resume:  # stage 2 from a finished stage 1: weights only
            if not ck.state.get("stage1_done"):
                raise ConfigError(f"{ck.path}: stage 1 of this run is not finished; resume it first")
            ck = replace(ck, optimizer=None, state={**ck.state, "stage": 2, "step": 0})
    elif stages == [2]:
        raise ConfigError(f"{run_dir}: stage 2 needs a finished stage 1 in this run folder; "
                          "run stage 1 first")
    model.to(dev)
    if info.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / "config.json", cfg.to_dict())
    state = dict(ck.state) if ck else {"stage": stages[0], "step": 0, "stage1_done": False, "seed": seed,
                                       "data": _data_info(corpus)}
    if ck is not None:
        seed = int(state.get("seed", seed))
        if ck.rng.get("rng.torch") is not None and resume:
            torch.set_rng_state(ck.rng["rng.torch"])
    state["seed"] = seed
    state["args"] = run_args  # what a resumed run must repeat (checked by resume_arguments)
    return _Run(run_dir, cfg, corpus, model, dev, info, angles, z, stages, seed, state, ck, resume, aug,
                use_amp=dev.type == "cuda" and cfg.train.amp,
                result=PretrainResult(run_dir, ck.path if ck else None, cfg), t_start=t_start,
                tokens_total=int(state.get("tokens", 0)))


def _local_batch(run: _Run, s: int, k: int) -> dict:
    """This process's share of the global batch of step ``k`` of stage ``s``, as tensors."""
    return to_tensors(run.corpus.batch(local_share(
        batch_indices(run.corpus.n_sentences, run.cfg.train.batch_size, run.seed, s, k), run.info)), run.dev)


def _start_stage(run: _Run, s: int) -> _Stage:
    """Optimiser (its state restored when resuming this stage), DDP wrapper and the train / eval
    modes of stage ``s``."""
    cfg, model = run.cfg, run.model
    total = cfg.train.stage1_steps if s == 1 else cfg.train.stage2_steps
    params = model.trainable(s)
    opt = torch.optim.AdamW(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    if run.ck is not None and run.ck.optimizer is not None and int(run.ck.state["stage"]) == s and run.resume:
        opt.load_state_dict(run.ck.optimizer)
    net = model
    if run.info.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[run.dev.index] if run.dev.type == "cuda" else None)
    model.train()
    if s == 2:
        model.vq_encoder.eval()
    return _Stage(s, total, params, opt, net, vq_start=min(cfg.train.vq_warmup_steps, max(total - 1, 0)))


def _step_inputs(run: _Run, st: _Stage, step: int):
    """(batch, local sentence indices, real tokens of the global batch, the step's generator, lr)
    of step ``step``; sets the optimiser's learning rate."""
    s = st.number
    lidx = local_share(batch_indices(run.corpus.n_sentences, run.cfg.train.batch_size, run.seed, s, step),
                       run.info)
    batch = to_tensors(run.corpus.batch(lidx), run.dev)
    if run.aug.active:  # nuisance view of every sentence (own generator: clean runs unchanged)
        batch["view"] = augment_batch(batch, run.aug, torch.Generator().manual_seed(
            _step_seed(run.seed, s, step, AUGMENT_STREAM)))
    n_real = ddp.all_reduce_sum(batch["mask"].sum().float()).item()
    gen = torch.Generator().manual_seed(_step_seed(run.seed, s, step))
    lr = _lr(run.cfg, step, st.total)
    for g in st.opt.param_groups:
        g["lr"] = lr
    return batch, lidx, n_real, gen, lr


def _optimise(run: _Run, st: _Stage, step: int, loss_sum: torch.Tensor, n: float) -> float:
    """One optimiser step on ``loss_sum`` (this process's sum over the ``n`` items of the global
    batch); returns the global mean loss. NonFiniteLoss (on every process) when it is NaN / inf."""
    loss = loss_sum * (run.info.world / n)
    g_loss = ddp.all_reduce_sum(loss_sum).item() / n
    if ddp.any_true(not math.isfinite(g_loss)):
        raise NonFiniteLoss(
            f"{run.run_dir}: stage {st.number} step {step + 1}: the loss is {g_loss}; training stopped. "
            f"The last good checkpoint is kept ({st.last_ck or run.result.checkpoint or 'none yet'}); "
            "check the corpus for bad values or lower train.lr, then resume")
    st.opt.zero_grad(set_to_none=True)
    loss.backward()
    if run.cfg.train.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(st.params, run.cfg.train.grad_clip)
    st.opt.step()
    return g_loss


def _base_row(run: _Run, st: _Stage, step: int, g_loss: float, lr: float, n_real: float, t0: float) -> dict:
    """The columns every stage logs (counts the step's tokens into ``run.tokens_total``)."""
    dt = time.perf_counter() - t0
    run.tokens_total += int(n_real)
    return {"stage": st.number, "step": step + 1, "loss": g_loss, "lr": lr, "tokens": run.tokens_total,
            "tokens_per_s": n_real / dt if dt > 0 else float("nan"),
            "elapsed_s": time.perf_counter() - run.t_start}


def _stage1_step(run: _Run, st: _Stage, step: int) -> dict:
    """One step of stage 1 (VQ vocabulary: reconstruction of the token targets); its log row."""
    t0 = time.perf_counter()
    cfg, model = run.cfg, run.model
    batch, _, n_real, gen, lr = _step_inputs(run, st, step)
    quantize = step >= st.vq_start
    if quantize and not bool(model.quantizer.initialised):
        # k-means on the current encoder's outputs of this and the previous batches
        m_init = cfg.train.kmeans_batches
        with torch.no_grad():
            was = model.vq_encoder.training
            model.vq_encoder.eval()
            pool = [batch] + [_local_batch(run, 1, k) for k in range(max(0, step - m_init + 1), step)]
            zc = torch.cat([model.encode_codes(b, run.angles, run.z)[b["mask"]] for b in pool])
            model.vq_encoder.train(was)
        model.quantizer.initialise(zc, cfg.train.kmeans_iters, gen)
    with torch.autocast(run.dev.type, dtype=torch.bfloat16, enabled=run.use_amp):
        out = st.net(1, batch, run.angles, run.z, gen, quantize=quantize)
    n = max(n_real, 1.0)
    loss_sum = out["rec_sum"] + cfg.model.commitment * out["commit_sum"]
    if "inv_sum" in out:
        loss_sum = loss_sum + run.aug.consistency * out["inv_sum"]
    g_loss = _optimise(run, st, step, loss_sum, n)
    row = _base_row(run, st, step, g_loss, lr, n_real, t0)
    sums = {k: ddp.all_reduce_sum(v.detach().float()).item() / n for k, v in out.items()
            if k.endswith("_sum")}
    used, ppl = model.quantizer.window_stats() if quantize else (0, 0.0)
    row.update({k[:-4] + ("" if k.endswith("_base_sum") else "_loss"): v for k, v in sums.items()})
    row.update(rec_base=sum(sums[p + "_base_sum"] for p in TARGET_PARTS), quantized=int(quantize),
               codes_used=used, usage=used / cfg.model.codebook_size, perplexity=ppl,
               batch_perplexity=perplexity(out["counts"]))
    return row


def _stage2_step(run: _Run, st: _Stage, step: int) -> dict:
    """One step of stage 2 (masked token modelling of the frozen stage-1 codes); its log row."""
    t0 = time.perf_counter()
    batch, lidx, n_real, _, lr = _step_inputs(run, st, step)
    masked = run.model.sample_mask(batch["mask"], [_step_seed(run.seed, 2, step, i) for i in lidx])
    with torch.autocast(run.dev.type, dtype=torch.bfloat16, enabled=run.use_amp):
        out = st.net(2, batch, run.angles, run.z, masked, quantize=True)
    n = max(ddp.all_reduce_sum(out["n_tokens"].float()).item(), 1.0)
    g_loss = _optimise(run, st, step, out["ce_sum"], n)
    row = _base_row(run, st, step, g_loss, lr, n_real, t0)
    counts = ddp.all_reduce_sum(out["target_counts"].float())
    row.update(accuracy=ddp.all_reduce_sum(out["correct"].float()).item() / n,
               majority_acc=float(counts.max()) / n)
    return row


#: stage -> its step function (run, stage state, step index) -> log row
STAGE_STEPS: dict[int, Callable[[_Run, _Stage, int], dict]] = {1: _stage1_step, 2: _stage2_step}


def _run_stage(run: _Run, s: int, logger: TrainingLog, stop: _StopRequest,
               on_step: Callable[[dict], None] | None) -> None:
    """The steps of stage ``s`` from the trainer state's step on: each logged, a checkpoint every
    ``checkpoint_every`` steps and at the end; Ctrl-C (``stop``) checkpoints after the step and
    raises :class:`Interrupted`."""
    state, result, cfg = run.state, run.result, run.cfg
    if s == 2 and not state.get("stage1_done") and 1 not in run.stages:
        raise ConfigError(f"{run.run_dir}: stage 2 needs a finished stage 1")
    start = int(state["step"]) if int(state["stage"]) == s else 0
    st = _start_stage(run, s)
    logger.start_stage(s, st.total, start)
    state.update(stage=s, step=start)
    if s == 1 and not bool(run.model.targets_ready):  # target statistics from the first batches
        run.model.init_target_stats([_local_batch(run, 1, k) for k in range(cfg.train.kmeans_batches)])
    for step in range(start, st.total):
        row = STAGE_STEPS[s](run, st, step)
        result.history.append(row)
        state.update(step=step + 1, tokens=run.tokens_total)
        if step + 1 == st.total and s == 1:
            state["stage1_done"] = True
        logger.step(row, st.total)
        if (step + 1) % cfg.train.checkpoint_every == 0 or step + 1 == st.total:
            st.last_ck = _save(run.run_dir, run.model, st.opt, state, cfg, run.info)
            result.checkpoint = st.last_ck
        if on_step is not None:
            try:
                on_step(row)
            except KeyboardInterrupt:
                stop.requested = True
        if ddp.any_true(stop.requested):
            if st.last_ck is None or not st.last_ck.name.endswith(f"{step + 1:07d}"):
                result.checkpoint = _save(run.run_dir, run.model, st.opt, state, cfg, run.info)
            raise Interrupted(result.checkpoint, s, step + 1)
    logger.end_stage()
    if result.history and result.history[-1]["stage"] == s:
        result.final[s] = result.history[-1]
    if s == 1 and 2 in run.stages:
        state.update(stage=2, step=0)


@locks_folder("out", "run")
def pretrain(corpora: Any, out: str | os.PathLike, config: PretrainConfig | str | None = "tiny", *,
             stage: str | int | None = "both", steps: int | None = None, batch_size: int | None = None,
             seed: int | None = 0, resume: bool = False, device: str | None = None, progress: bool = True,
             tensorboard: bool = False, on_step: Callable[[dict], None] | None = None) -> PretrainResult:
    """Pre-train AEMG on token corpora.

    Parameters
    ----------
    corpora : corpus or sequence of corpora
        Token corpora (``aemg.tokenizer.corpus.open_corpus`` or :class:`~aemg.train.data.ArrayCorpus`);
        several are mixed.
    out : path
        Run folder: config.json, log.csv, checkpoints (see :mod:`aemg.train.checkpoint`).
    config : PretrainConfig, preset name, or None
        None: the tiny preset, or with ``resume`` the run's own config.
    stage : 1, 2, "both" or None
        Stage 2 alone needs a run folder whose stage 1 is done (it continues from it). None: both,
        or with ``resume`` the run's.
    steps : int, optional
        Override the steps of every stage run (>= 1).
    batch_size : int, optional
        Override the global batch (sentences per step, split across processes; >= 1).
    seed : int or None
        None: 0, or with ``resume`` the run's.
    resume : bool
        Continue from the run folder's latest checkpoint. Every argument given must be the run's
        (config, steps, batch size, seed, stage, corpora), else ConfigError naming each that differs;
        those left None are the run's. A run folder whose run stopped before its first checkpoint
        starts again from step 0.
    device : str, optional
        ``"cpu"``, ``"cuda"``...; default CUDA when available. bfloat16 autocast on CUDA when
        ``config.train.amp``.
    progress : bool
        Show a tqdm bar with the loss and tokens/s.
    tensorboard : bool
        Also write TensorBoard logs (needs the tensorboard package).
    on_step : callable, optional
        Called with each step's log row after the step (a KeyboardInterrupt raised there is handled
        like Ctrl-C: a checkpoint is written and the run can be resumed).

    Ctrl-C (SIGINT, in the main thread) finishes the current step, writes a checkpoint and raises
    :class:`Interrupted` (a KeyboardInterrupt naming the checkpoint); a second Ctrl-C stops at once.

    Returns
    -------
    PretrainResult

    Raises
    ------
    DataError
        Empty corpus, sentences longer than ``model.max_tokens``, wrong token length, bad checkpoint.
    ConfigError
        Existing run without ``resume``, ``resume`` with other arguments than the run's, a
        checkpoint of another model, stage 2 without stage 1, ``steps`` or ``batch_size`` < 1.
    NonFiniteLoss
        The loss became NaN/inf: the run stops, the last good checkpoint stays.
    """
    t_start = time.perf_counter()
    run = _set_up(corpora, out, config, stage, steps, batch_size, seed, resume, device, t_start)
    keep_until = (int(run.state["stage"]), int(run.state["step"])) if run.ck else None
    logger = TrainingLog(run.run_dir, keep_until, run.cfg.train.log_every, main=run.info.main,
                         progress=progress, tensorboard=tensorboard)
    stop = _StopRequest()  # Ctrl-C: finish the step, checkpoint, raise Interrupted
    try:
        for s in run.stages:
            if s >= int(run.state["stage"]):
                _run_stage(run, s, logger, stop, on_step)
    finally:
        stop.restore()
        logger.close()
    run.result.wall_s = time.perf_counter() - t_start
    return run.result


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`pretrain`: the step finished and ``checkpoint`` (stage ``stage``,
    ``step`` steps done) was written; ``--resume`` continues exactly from there."""

    def __init__(self, checkpoint: Path | None, stage: int, step: int):
        super().__init__(f"interrupted after stage {stage} step {step}; checkpoint {checkpoint}")
        self.checkpoint, self.stage, self.step = checkpoint, stage, step


class _StopRequest:
    """SIGINT handler for the training loop: the first Ctrl-C sets :attr:`requested` (the loop
    checkpoints at the end of the step and stops), a second one interrupts at once. Outside the
    main thread (no signal handlers there) Ctrl-C keeps its default behaviour."""

    def __init__(self) -> None:
        self.requested = False
        try:
            self._old = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread
            self._old = None

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("interrupted: finishing this step and writing a checkpoint "
                    "(Ctrl-C again to stop at once)")

    def restore(self) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None


def _save(run_dir, model, opt, state, cfg, info) -> Path | None:
    path = None
    if info.main:
        path = save_checkpoint(run_dir, model, opt, dict(state), cfg)
    ddp.barrier()
    return path if path is not None else run_dir


def _data_info(corpus) -> dict:
    """How the corpus's tokens were made (tokenizer settings, standard space, geometry), stored in
    checkpoints so :func:`aemg.embed` prepares new recordings the same way."""
    cfg = getattr(corpus, "config", None)
    info = {"tokenizer": cfg.to_dict() if cfg is not None else None,
            "token_shape": [int(v) for v in corpus.token_shape], "rate": float(getattr(corpus, "rate", 0.0)),
            "channel_angles": [float(a) for a in corpus.channel_angles], "space": None}
    first = corpus.parts[0] if hasattr(corpus, "parts") else corpus
    try:
        from ..data.archive import open_archive
        with open_archive(first.meta["archive"]["path"]) as arch:
            info["space"] = arch.manifest["space"]
    except Exception:  # noqa: BLE001 - in-memory corpus or archive moved: embed falls back to defaults
        pass
    return info
