"""Checkpoints: safetensors weights and optimiser state, JSON config and trainer state.

Layout of a run folder::

    RUN/config.json                      the run's PretrainConfig
    RUN/log.csv                          one row per logged step
    RUN/latest.json                      {"checkpoint": "checkpoints/s1-0000100"}
    RUN/checkpoints/s1-0000100/          one checkpoint (stage 1, 100 steps done)
        model.safetensors                every parameter and buffer of the model
        optimizer.safetensors            AdamW moments (tensors only)
        trainer.json                     step, stage, RNG states, optimiser hyper-parameters,
                                         config, sizes of the two safetensors files

A checkpoint folder is written under a temporary name and renamed into place, then latest.json is
replaced atomically, so an interruption never leaves a half-written checkpoint in use. The last
``keep`` checkpoints are kept.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .._io import atomic_write, honour_umask
from ..errors import ConfigError, DataError
from ..model.config import PretrainConfig

MODEL_FILE, OPTIM_FILE = "model.safetensors", "optimizer.safetensors"
STATE_FILE, LATEST = "trainer.json", "latest.json"


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (see :func:`aemg._io.atomic_write`)."""
    atomic_write(path, json.dumps(obj, indent=1))


def _optimizer_tensors(opt_state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, rest = {}, {"param_groups": opt_state["param_groups"], "state": {}}
    for pid, st in opt_state["state"].items():
        rest["state"][str(pid)] = {}
        for name, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{name}"] = v.detach().cpu().contiguous()
            else:
                rest["state"][str(pid)][name] = v
    return tensors, rest


def _optimizer_state(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    state: dict[int, dict] = {int(p): dict(v) for p, v in rest["state"].items()}
    for key, v in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    groups = [{k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()}
              for g in rest["param_groups"]]  # JSON turned tuples (betas) into lists
    return {"state": state, "param_groups": groups}


def save_checkpoint(run_dir: str | os.PathLike, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None,
                    state: dict, config: PretrainConfig, *, keep: int = 2) -> Path:
    """Write a checkpoint of ``model`` (+ ``optimizer``) and trainer ``state`` into ``run_dir``.

    ``state`` must hold ``stage`` and ``step`` (JSON-serialisable values); the torch RNG state is
    added. Returns the checkpoint folder.
    """
    run_dir = Path(run_dir)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    name = f"s{int(state['stage'])}-{int(state['step']):07d}"
    final = run_dir / "checkpoints" / name
    tmp = Path(tempfile.mkdtemp(dir=run_dir / "checkpoints", prefix=f".{name}."))
    try:
        honour_umask(tmp, folder=True)
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, tmp / MODEL_FILE)
        rng = {"rng.torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                rng[f"rng.cuda.{i}"] = s
        opt_tensors, opt_rest = _optimizer_tensors(optimizer.state_dict()) if optimizer else ({}, None)
        save_file({**opt_tensors, **rng}, tmp / OPTIM_FILE)
        trainer = {"state": state, "optimizer": opt_rest, "config": config.to_dict(),
                   "sizes": {f: (tmp / f).stat().st_size for f in (MODEL_FILE, OPTIM_FILE)}}
        write_json_atomic(tmp / STATE_FILE, trainer)
        for f in (MODEL_FILE, OPTIM_FILE):  # safetensors writes them 0600 whatever the umask
            honour_umask(tmp / f)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_json_atomic(run_dir / LATEST, {"checkpoint": f"checkpoints/{name}"})
    done = sorted(p for p in (run_dir / "checkpoints").iterdir() if not p.name.startswith("."))
    for old in done[:-keep] if keep > 0 else []:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


@dataclass
class Checkpoint:
    """A loaded checkpoint: ``weights`` (name -> tensor), ``optimizer`` (state dict or None),
    ``rng`` (name -> ByteTensor), ``state`` (trainer state), ``config``, ``path``."""

    weights: dict[str, torch.Tensor]
    optimizer: dict | None
    rng: dict[str, torch.Tensor]
    state: dict
    config: PretrainConfig
    path: Path


def resolve(path: str | os.PathLike) -> Path:
    """The checkpoint folder for a run folder (its latest checkpoint), a checkpoint folder, or the
    name of shipped weights (``aemg-tiny``: :mod:`aemg.weights`, digests verified)."""
    from ..weights import is_shipped, shipped_path
    if is_shipped(path):
        return shipped_path(path)
    path = Path(path)
    if (path / STATE_FILE).is_file():
        return path
    latest = path / LATEST
    if latest.is_file():
        try:
            rel = json.loads(latest.read_text())["checkpoint"]
        except (ValueError, KeyError):
            raise DataError(latest, "corrupt pointer to the latest checkpoint") from None
        return path / rel
    if not path.exists():
        raise DataError(path, "no such run or checkpoint folder")
    raise DataError(path, f"holds no checkpoint (no {LATEST} nor {STATE_FILE})")


def has_checkpoint(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / LATEST).is_file()


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load a checkpoint folder (or a run's latest); DataError names a missing, truncated or
    corrupt file."""
    ck = resolve(path)
    try:
        meta = json.loads((ck / STATE_FILE).read_text())
        config = PretrainConfig.from_dict(meta["config"], where=f"{ck / STATE_FILE}: config")
    except FileNotFoundError:
        raise DataError(ck / STATE_FILE, "missing: the checkpoint is incomplete") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(ck / STATE_FILE, f"corrupt trainer state ({exc})") from None
    out = {}
    for f in (MODEL_FILE, OPTIM_FILE):
        p = ck / f
        if not p.is_file():
            raise DataError(p, "missing: the checkpoint is incomplete")
        want = meta.get("sizes", {}).get(f)
        if want is not None and p.stat().st_size != want:
            raise DataError(p, f"truncated or corrupt: {p.stat().st_size} bytes, expected {want}")
        try:
            out[f] = load_file(p)
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise DataError(p, f"truncated or corrupt safetensors file ({exc})") from None
    opt = out[OPTIM_FILE]
    rng = {k: v for k, v in opt.items() if k.startswith("rng.")}
    opt_tensors = {k: v for k, v in opt.items() if not k.startswith("rng.")}
    optimizer = _optimizer_state(opt_tensors, meta["optimizer"]) if meta.get("optimizer") else None
    return Checkpoint(out[MODEL_FILE], optimizer, rng, meta["state"], config, ck)


def check_compatible(saved: PretrainConfig, wanted: PretrainConfig, where: str | os.PathLike) -> None:
    """ConfigError when the model architectures differ (e.g. a checkpoint of another preset)."""
    a, b = saved.model, wanted.model
    diff = [f"{k}: checkpoint {getattr(a, k)!r} vs requested {getattr(b, k)!r}"
            for k in a.__dataclass_fields__ if k != "name" and getattr(a, k) != getattr(b, k)]
    if diff:
        raise ConfigError(f"{where}: checkpoint of model {a.name!r} does not match the requested model "
                          f"{b.name!r}: " + "; ".join(diff[:5]) + (" ..." if len(diff) > 5 else ""))


def load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], where: str | os.PathLike) -> None:
    """Copy ``weights`` into ``model``; DataError names missing, extra or mis-shaped tensors."""
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    extra = sorted(set(weights) - set(own))
    shapes = [k for k in own if k in weights and tuple(own[k].shape) != tuple(weights[k].shape)]
    if missing or extra or shapes:
        raise DataError(where, "weights do not fit this model (another preset or version?): "
                               f"missing {missing[:3]}, unexpected {extra[:3]}, shape mismatch {shapes[:3]}")
    model.load_state_dict(weights)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """The model of a checkpoint (or a run's latest checkpoint), in eval mode.

    Returns
    -------
    model : aemg.model.AEMG
    checkpoint : Checkpoint
    """
    from ..model import AEMG

    ck = load_checkpoint(path)
    model = AEMG(ck.config.model)
    load_weights(model, ck.weights, ck.path / MODEL_FILE)
    return model.to(device).eval(), ck


# -- resuming: the same run or none --------------------------------------------------------------
#: command-line flags of the config fields a command line sets (others: ``train.<field>`` of the config)
FLAGS = {"stage1_steps": "--steps", "stage2_steps": "--steps", "batch_size": "--batch-size",
         "seed": "--seed", "stage": "--stage", "corpora": "corpus"}


def corpus_identities(corpora) -> list[dict[str, Any]]:
    """What identifies each corpus of a run (its folder, sentences and tokens): a resumed run must
    read the same ones (compared on the counts, so a corpus folder may move)."""
    out = []
    for c in corpora:
        for part in getattr(c, "parts", None) or [c]:
            path = getattr(part, "path", None)
            out.append({"path": str(Path(path).resolve())
                        if isinstance(path, (str, os.PathLike)) else str(path),
                        "sentences": int(part.n_sentences), "tokens": int(part.n_tokens)})
    return out


def _same_corpora(a: list[dict], b: list[dict]) -> bool:
    return [(c["sentences"], c["tokens"]) for c in a] == [(c["sentences"], c["tokens"]) for c in b]


def resume_arguments(ck: Checkpoint, given: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The arguments of a resumed run: ``given`` (``stage``, ``seed``, ``corpora``; None = not given)
    completed from the checkpoint's, and one line per given argument that differs from the run's."""
    stored = dict(ck.state.get("args") or {})
    stored.setdefault("seed", ck.state.get("seed"))
    merged, diffs = dict(given), []
    for key in ("stage", "seed"):
        if given.get(key) is None:
            merged[key] = stored.get(key)
        elif stored.get(key) is not None and str(stored[key]) != str(given[key]):
            diffs.append(f"{FLAGS[key]}: the run has {stored[key]}, now {given[key]}")
    if stored.get("corpora") is not None and not _same_corpora(stored["corpora"], given["corpora"]):
        def show(cs):
            return ", ".join(f"{c['path']} ({c['sentences']} sentences, {c['tokens']} tokens)" for c in cs)
        diffs.append(f"corpus: the run read {show(stored['corpora'])}; now {show(given['corpora'])}")
    return merged, diffs


def check_same_run(where: str | os.PathLike, saved: PretrainConfig, wanted: PretrainConfig,
                   diffs: list[str] = ()) -> None:
    """ConfigError naming every setting of ``wanted`` (and every line of ``diffs``) that differs
    from the run being resumed: a resumed run repeats an uninterrupted one only with its own
    arguments (``--steps 50`` after 100 steps would silently skip to stage 2)."""
    lines = list(diffs)
    for part in ("train", "model"):
        a, b = getattr(saved, part), getattr(wanted, part)
        for f in dataclasses.fields(a):
            if f.name == "name":
                continue
            x, y = getattr(a, f.name), getattr(b, f.name, None)
            if x != y:
                flag = FLAGS.get(f.name, f"{part}.{f.name}") if part == "train" else f"model.{f.name}"
                line = f"{flag}: the run has {x!r}, now {y!r}"
                if line not in lines and not (flag == "--steps"
                                              and any(s.startswith("--steps") for s in lines)):
                    lines.append(line)
    if lines:
        raise ConfigError(f"{where}: --resume with arguments other than the run's ({'; '.join(lines)}); "
                          "resume with the run's own arguments (any left out are taken from the run), "
                          "or start a new run in another folder")


def verify_run(path: str | os.PathLike) -> tuple[list[str], str]:
    """Check a pre-training run folder: ``(problems, summary)``, one line per problem: config.json
    and log.csv readable, latest.json pointing at a checkpoint, every checkpoint loading with the
    sizes it recorded. DataError when ``path`` is not a run."""
    import csv

    path = Path(path)
    if not ((path / LATEST).is_file() or (path / "config.json").is_file()):
        raise DataError(path, f"not a pre-training run (no {LATEST} nor config.json)")
    problems = []
    for name in ("config.json", LATEST):
        try:
            json.loads((path / name).read_text())
        except FileNotFoundError:
            problems.append(f"{path / name}: missing" + (" (no checkpoint written yet)"
                                                         if name == LATEST else ""))
        except (ValueError, UnicodeDecodeError) as exc:
            problems.append(f"{path / name}: corrupt JSON ({exc})")
    try:
        with open(path / "log.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        rows = []
        problems.append(f"{path / 'log.csv'}: missing")
    except (csv.Error, UnicodeDecodeError) as exc:
        rows = []
        problems.append(f"{path / 'log.csv'}: unreadable ({exc})")
    folders = sorted(p for p in (path / "checkpoints").iterdir() if not p.name.startswith(".")) \
        if (path / "checkpoints").is_dir() else []
    latest = None
    for ck in folders:
        try:
            latest = load_checkpoint(ck)
        except DataError as exc:
            problems.append(str(exc))
    if (path / LATEST).is_file():
        try:
            target = resolve(path)
            if not target.is_dir():
                problems.append(f"{path / LATEST}: points to {target}, which does not exist")
        except DataError as exc:
            problems.append(str(exc))
    where = (f"stage {latest.state.get('stage')} step {latest.state.get('step')}" if latest
             else "no checkpoint")
    summary = (f"{path}: run with {len(folders)} checkpoint(s) loaded and checked ({where}), "
               f"{len(rows)} log row(s)")
    return problems, summary


def check_run_finished(path: str | os.PathLike) -> None:
    """DataError when ``path`` is a run folder whose training stopped before the end of its last
    stage (an interrupted run: ``--resume`` it, or name one of its checkpoint folders, or pass
    ``--allow-partial``). A checkpoint folder given explicitly is always accepted."""
    path = Path(path)
    if (path / STATE_FILE).is_file() or not (path / LATEST).is_file():
        return
    ck = resolve(path)
    try:
        meta = json.loads((ck / STATE_FILE).read_text())
        state, train = meta["state"], meta["config"]["train"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # load_checkpoint reports what is wrong with it
    stages = {"1": [1], "2": [2]}.get(str((state.get("args") or {}).get("stage")), [1, 2])
    last = stages[-1]
    total = train.get("stage1_steps" if last == 1 else "stage2_steps")
    if int(state.get("stage", 0)) < last or (total is not None and int(state.get("step", 0)) < int(total)):
        raise DataError(path, f"the run is unfinished (its latest checkpoint is stage {state.get('stage')} "
                              f"step {state.get('step')} of {total}); resume it with `aemg pretrain ... "
                              "--resume`, name a checkpoint folder, or pass --allow-partial to use its "
                              "latest checkpoint")
