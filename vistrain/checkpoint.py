"""The checkpoint format: a plain dict of tensors and plain values, saved with ``torch.save`` and loaded
with ``weights_only=True``. This module owns its fields: writing them, reading them, and upgrading older
format versions. Writes are durable (:mod:`vistrain.durable`).

Fields of format version 1 (``make_checkpoint`` writes them, the readers below read them):

- ``format``, ``format_version``: ``"vistrain-checkpoint"`` and 1
- ``model`` (name, num_classes, in_chans, input_size, kwargs: what rebuilds it), ``input`` (channels, size,
  mean, std: what it expects), ``classes`` (names, index = output)
- ``state_dict``; ``epoch`` (last completed) and ``global_step``; ``metrics``; ``config`` (the run's, resolved)
- to resume: ``optimizer``, ``scheduler``, ``scaler``, ``rng``; where training stands (``epoch_step``,
  ``epoch_accum``, ``loader_state``, ``best_metric``, ``best_epoch``, ``best_seen``, ``steps_per_epoch``,
  ``stage_epochs``); ``strategy``, ``stage`` and ``stage_state``; under DDP ``rank_states`` (each rank's
  ``rng``, ``loader_state`` and ``epoch_accum``)
"""

from __future__ import annotations

import math
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from vistrain.errors import CheckpointError

FORMAT = "vistrain-checkpoint"
FORMAT_VERSION = 1


# --- writing ---------------------------------------------------------------------------------


def make_checkpoint(*, model, model_spec: dict, input_spec: dict, classes: list[str], epoch: int, global_step: int,
                    optimizer=None, scheduler=None, scaler=None, metrics: dict | None = None,
                    config: dict | None = None, rng: dict | None = None, state=None, stage_epochs: int | None = None,
                    strategy: str = "", stage: str = "", stage_state: dict | None = None,
                    rank_states: list[dict] | None = None, extra_modules: dict | None = None,
                    ema_model=None) -> dict:
    """Assemble the checkpoint dict: everything needed to predict, evaluate or resume.

    *state* (the loop's ``TrainState``) adds where training stands inside the stage; *rank_states* every
    DDP rank's own RNG, loader position and running sums.
    """
    module = model.module if hasattr(model, "module") else model
    ckpt: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model_spec,
        "input": input_spec,
        "classes": list(classes),
        "epoch": int(epoch),
        "global_step": int(global_step),
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "metrics": dict(metrics or {}),
        "config": config or {},
        "strategy": strategy,
        "stage": stage,
        "stage_state": dict(stage_state or {}),
    }
    if ema_model is not None:  # the averaged weights are the ones validated and used; training goes on from these
        ckpt["train_state_dict"] = ckpt["state_dict"]
        ckpt["state_dict"] = {k: v.detach().cpu() for k, v in ema_model.state_dict().items()}
        ckpt["weights"] = "ema"
    if extra_modules:  # trained beside the model (a distillation adapter): for resume only
        ckpt["extra_modules"] = {name: {k: v.detach().cpu() for k, v in m.state_dict().items()}
                                 for name, m in extra_modules.items()}
    if optimizer is not None:
        ckpt["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        ckpt["scheduler"] = scheduler.state_dict()
    if scaler is not None:
        ckpt["scaler"] = scaler.state_dict()
    if rng is not None:
        ckpt["rng"] = rng
    if state is not None:
        ckpt.update(best_metric=float(state.best_metric), best_epoch=int(state.best_epoch),
                    best_seen=float(state.best_seen), epoch_step=int(state.epoch_step),
                    epoch_accum=dict(state.epoch_accum), loader_state=dict(state.loader_state),
                    steps_per_epoch=int(state.steps_per_epoch))
    if stage_epochs is not None:
        ckpt["stage_epochs"] = int(stage_epochs)
    if rank_states:
        ckpt["rank_states"] = list(rank_states)
    return ckpt


# --- reading ---------------------------------------------------------------------------------


def _load_failure(exc: BaseException) -> str:
    """The part of torch.load's error that says what is wrong, without its multi-line advice."""
    text = str(exc).strip()
    if "Weights only load failed" in text:
        detail = text.split("WeightsUnpickler error:", 1)[-1].strip().splitlines()
        reason = detail[0].strip() if "WeightsUnpickler error:" in text and detail else "refused"
        return f"a weights-only load refused it ({reason[:80]}); nothing in it was run"
    return (text.splitlines()[0] if text else type(exc).__name__)[:160]


def upgrade(ckpt: dict, where: str) -> dict:
    """*ckpt* in the current format version; a newer version than this vistrain knows is an error.

    Version 1 is the first released format, so there is nothing older to convert yet: a later version
    adds its conversion here, so that every reader sees the current fields.
    """
    version = int(ckpt.get("format_version", 0))
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{where} was written by a newer vistrain (format {version})", hint="upgrade vistrain")
    if version < 1:
        raise CheckpointError(f"{where} has no format version", hint="use a checkpoint written by vistrain")
    return ckpt


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a vistrain checkpoint safely; missing, corrupt or foreign files raise CheckpointError."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} not found", hint="check the path, e.g. runs/<name>/checkpoints/best.pt")
    if path.is_dir():
        raise CheckpointError(f"{str(path)!r} is a folder, not a checkpoint", hint="pass runs/<name>/checkpoints/best.pt")
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of files it then refuses
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or not a safe torch checkpoint: {_load_failure(exc)}",
                              hint="use a checkpoint written by vistrain") from None
    if not is_checkpoint(ckpt):
        raise CheckpointError(f"{str(path)!r} is not a vistrain checkpoint", hint="use runs/<name>/checkpoints/best.pt")
    return upgrade(ckpt, repr(str(path)))


def is_checkpoint(obj: Any) -> bool:
    """Whether *obj* (anything ``torch.load`` returned) is a vistrain checkpoint dict."""
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def model_description(ckpt: dict, where: str = "checkpoint") -> tuple[dict, dict, list[str]]:
    """(model spec, input spec, class names): what rebuilds the model and feeds it; a CheckpointError names
    a missing or inconsistent part."""
    try:
        spec, input_spec, classes = dict(ckpt["model"]), dict(ckpt["input"]), list(ckpt["classes"])
        num_classes = int(spec["num_classes"])
        for key in ("channels", "size", "mean", "std"):
            input_spec[key]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where} lacks its model description ({exc})") from None
    if len(classes) != num_classes:
        raise CheckpointError(f"{where} lists {len(classes)} classes for a {num_classes}-class head")
    return spec, input_spec, classes


def saved_config(ckpt: dict, where: str = "checkpoint"):
    """The run's resolved :class:`~vistrain.config.Config` as the checkpoint saved it (defaults when it has none)."""
    from pydantic import ValidationError

    from vistrain.config import Config

    try:
        return Config.model_validate(ckpt.get("config") or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise CheckpointError(f"{where} holds a configuration this vistrain cannot read ({key}: {first['msg']})",
                              hint="use the vistrain version that wrote it") from None


def classes_of(ckpt: dict) -> list[str]:
    """Class names, index = the model's output."""
    return list(ckpt["classes"])


def weights(ckpt: dict) -> dict:
    """The model's ``state_dict``: the weights validated and used (the EMA of the weights when the run kept one)."""
    return ckpt["state_dict"]


def training_weights(ckpt: dict) -> dict:
    """The weights training continues from: the raw ones beside an EMA, else :func:`weights`."""
    return ckpt.get("train_state_dict") or ckpt["state_dict"]


def temperature(ckpt: dict) -> float:
    """The softmax temperature ``vistrain calibrate`` fitted on the val split (1.0: not calibrated)."""
    return float(ckpt.get("temperature") or 1.0)


def holds_ema(ckpt: dict) -> bool:
    """Whether :func:`weights` are an exponential moving average (``train.ema_decay``)."""
    return ckpt.get("weights") == "ema"


def metrics_of(ckpt: dict) -> dict[str, float]:
    """The metrics of the epoch it was written after (train and val loss and top-1...)."""
    return dict(ckpt.get("metrics") or {})


def trained_on(ckpt: dict) -> str | None:
    """The dataset spec the checkpoint's run trained on, or None for a checkpoint without a saved config."""
    return ((ckpt.get("config") or {}).get("data") or {}).get("name")


def stage_of(ckpt: dict) -> tuple[str, dict]:
    """(the strategy stage that wrote it, that stage's saved state); ``""`` for a single-stage checkpoint."""
    return str(ckpt.get("stage") or ""), dict(ckpt.get("stage_state") or {})


def stage_epochs(ckpt: dict) -> int | None:
    """How many epochs the stage that wrote it was set to train (None when it does not say)."""
    value = ckpt.get("stage_epochs")
    return None if value is None else int(value)


def rank_state(ckpt: dict, rank: int, world_size: int) -> dict | None:
    """Rank *rank*'s own RNG, loader position and running sums, when the checkpoint has them for *world_size*."""
    ranks = ckpt.get("rank_states")
    return ranks[rank] if ranks and len(ranks) == world_size else None


def position(ckpt: dict, rank: int = 0, world_size: int = 1) -> dict[str, Any]:
    """Where training stands, as keyword arguments of the loop's ``TrainState``; the loader position and
    running sums are rank *rank*'s own when the checkpoint has them for *world_size* ranks."""
    mine = rank_state(ckpt, rank, world_size) or ckpt
    return {"epoch": int(ckpt["epoch"]), "global_step": int(ckpt["global_step"]),
            "best_metric": float(ckpt.get("best_metric", -math.inf)), "best_epoch": int(ckpt.get("best_epoch", 0)),
            "best_seen": float(ckpt.get("best_seen", -math.inf)), "epoch_step": int(ckpt.get("epoch_step", 0)),
            "epoch_accum": dict(mine.get("epoch_accum") or {}), "loader_state": dict(mine.get("loader_state") or {}),
            "steps_per_epoch": int(ckpt.get("steps_per_epoch", 0) or 0)}


def extra_modules(ckpt: dict) -> dict[str, dict]:
    """The state dicts of the modules trained beside the model (e.g. ``distill_adapter``), by name."""
    return dict(ckpt.get("extra_modules") or {})


def resume_states(ckpt: dict) -> tuple[dict | None, dict | None, dict | None]:
    """The optimizer's, scheduler's and gradient scaler's saved states (None for each one it lacks)."""
    return ckpt.get("optimizer"), ckpt.get("scheduler"), ckpt.get("scaler")


def rng_of(ckpt: dict, rank: int = 0, world_size: int = 1) -> dict | None:
    """The RNG states to restore: rank *rank*'s own, else the checkpoint's (rank 0's)."""
    mine = rank_state(ckpt, rank, world_size)
    return mine["rng"] if mine is not None else ckpt.get("rng")


# --- the checkpoints of a run folder ----------------------------------------------------------


def average_weights(ckpts: list[dict], names: list[str]) -> dict[str, torch.Tensor]:
    """The uniform average of the checkpoints' weights, after checking they hold one model."""
    if len(ckpts) < 2:
        raise CheckpointError("averaging needs at least two checkpoints", hint="pass two or more checkpoint files")
    first_spec, _input, first_classes = model_description(ckpts[0], repr(names[0]))
    first = weights(ckpts[0])
    for ck, name in zip(ckpts[1:], names[1:]):
        spec, _input, classes = model_description(ck, repr(name))
        if spec != first_spec or list(classes) != list(first_classes) or weights(ck).keys() != first.keys():
            raise CheckpointError(f"{name} holds another model than {names[0]} ({spec['name']} with {len(classes)} "
                                  f"classes against {first_spec['name']} with {len(first_classes)})",
                                  hint="average checkpoints of one run (or of runs of the same model and classes)")
    out = {}
    for key, value in first.items():
        if value.is_floating_point():
            out[key] = sum(weights(ck)[key].double() for ck in ckpts).div(len(ckpts)).to(value.dtype)
        else:
            out[key] = weights(ckpts[-1])[key].clone()
    return out


def averaged_checkpoint(last: dict, state_dict: dict, sources: list[str], metrics: dict | None = None,
                        **extra: Any) -> dict:
    """A checkpoint of averaged weights *state_dict*: the model description of *last* (the newest averaged
    checkpoint), ``weights: "average"`` and the names it came from, plus *extra* keys; for eval, predict, export
    and teachers, not for ``--resume`` (no optimizer, schedule or position)."""
    keep = ("format", "format_version", "model", "input", "classes", "config", "strategy", "epoch", "global_step",
            "stage", "stage_state", "temperature")
    ckpt = {k: last[k] for k in keep if k in last}
    ckpt.update(state_dict={k: v.detach().cpu() for k, v in state_dict.items()}, weights="average",
                averaged_from=list(sources), metrics=dict(metrics or {}), **extra)
    ckpt.setdefault("stage", "")
    return ckpt


def epoch_checkpoint_name(prefix: str, epoch: int) -> str:
    """``{prefix}epoch-0042.pt``: an epoch's checkpoint kept for ``checkpoint.average_last``."""
    return f"{prefix}epoch-{epoch:04d}.pt"


def step_checkpoint_name(prefix: str, global_step: int) -> str:
    """``{prefix}step-00001234.pt``: sorts by step."""
    return f"{prefix}step-{global_step:08d}.pt"


def prune_step_checkpoints(folder: str | os.PathLike, prefix: str, keep: int) -> list[Path]:
    """Delete all but the newest *keep* step checkpoints of *prefix*; returns the deleted paths."""
    files = sorted(Path(folder).glob(f"{prefix}step-*.pt"))
    files = [f for f in files if f.name[len(prefix) + 5:-3].isdigit()]
    doomed = files[:-keep] if keep > 0 else files
    for f in doomed:
        f.unlink(missing_ok=True)
    return doomed


def resume_candidates(folder: str | os.PathLike) -> list[Path]:
    """Checkpoints a run could continue from, newest first: ``*last.pt`` and ``*step-N.pt`` (not best, nor the
    ``*epoch-N.pt`` kept for averaging, nor averaged weights)."""
    folder = Path(folder)
    files = [p for p in folder.glob("*.pt") if not p.name.startswith(".") and
             (p.name.endswith("last.pt") or re.fullmatch(r".*step-\d+\.pt", p.name))]

    def key(p: Path):
        try:
            return (p.stat().st_mtime_ns, p.name)
        except OSError:
            return (0, p.name)

    return sorted(files, key=key, reverse=True)


def find_resume_checkpoint(folder: str | os.PathLike) -> tuple[dict | None, Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint in the checkpoints *folder* that loads: (checkpoint, path, [(skipped path, why)])."""
    skipped: list[tuple[Path, str]] = []
    for path in resume_candidates(folder):
        try:
            return load_checkpoint(path), path, skipped
        except CheckpointError as exc:
            skipped.append((path, exc.message))
    return None, None, skipped
