"""Exact resume: put a model, its optimizer, scheduler, scaler and every RNG back where a checkpoint left them.

A checkpoint written by the loop holds the position inside the epoch (``epoch_step``) and the
epoch's running sums; the loaders' order is a function of (seed, epoch) and each batch's
augmentation generator a function of its position, so restoring these and skipping the batches
already done replays the interrupted run bit for bit (deterministic mode, CPU).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

from vistrain.engine import distributed as dist
from vistrain.engine.device import rng_state, set_rng_state
from vistrain.engine.loop import TrainState
from vistrain.errors import CheckpointError, ConfigError


def training_position(state: TrainState, epochs: int) -> dict:
    """The checkpoint fields that say where training stands (added to every checkpoint; under DDP
    ``loader_state`` is rank 0's and ``rank_states`` holds every rank's)."""
    return {"best_metric": float(state.best_metric), "best_epoch": int(state.best_epoch),
            "best_seen": float(state.best_seen),
            "epoch_step": int(state.epoch_step), "epoch_accum": dict(state.epoch_accum),
            "loader_state": dict(state.loader_state), "stage_epochs": int(epochs),
            "steps_per_epoch": int(state.steps_per_epoch)}


def per_rank_states(state: TrainState) -> dict:
    """RNG, loader and running-sum fields for a checkpoint: this process's, and under DDP every rank's (a
    collective call). Each rank counts its own images and hits within the epoch."""
    own = {"rng": rng_state(), "loader_state": dict(state.loader_state), "epoch_accum": dict(state.epoch_accum)}
    ranks = dist.gather_objects(own) if dist.is_distributed() else None
    out = {"rng": own["rng"]}
    if ranks is not None and len(ranks) > 1:
        out["rank_states"] = ranks
    return out


def _rank_state(ckpt: dict) -> dict | None:
    ranks = ckpt.get("rank_states")
    d = dist.info()
    return ranks[d.rank] if ranks and len(ranks) == d.world_size else None


def restore_rng(ckpt: dict) -> None:
    """Restore this rank's RNG states (rank 0's when the world size changed)."""
    mine = _rank_state(ckpt)
    if mine is not None:
        set_rng_state(mine["rng"])
    elif "rng" in ckpt:
        set_rng_state(ckpt["rng"])


def restore_training(ckpt: dict, *, model, optimizer=None, scheduler=None, scaler=None, epochs: int,
                     steps_per_epoch: int | None = None,
                     log: Callable[[str], None] = lambda message: None) -> TrainState:
    """Load *ckpt* into the training objects and return the :class:`TrainState` to continue from.

    A changed number of *epochs* stretches the LR schedule: the new schedule is replayed up to the
    saved step. Fewer epochs than already trained is an error; exactly as many finishes at once.
    A changed *steps_per_epoch* (another batch size or number of DDP processes) continues the
    schedule at the same epoch from an epoch-end checkpoint, and is an error mid-epoch.
    """
    ep, part = int(ckpt["epoch"]), int(ckpt.get("epoch_step", 0))
    global_step = int(ckpt["global_step"])
    saved_spe = int(ckpt.get("steps_per_epoch", 0) or 0)
    remapped = bool(saved_spe and steps_per_epoch and saved_spe != steps_per_epoch)
    if remapped and part:
        raise ConfigError(f"the checkpoint stopped inside an epoch of {saved_spe} steps; this run has "
                          f"{steps_per_epoch} steps per epoch (another batch size or number of processes)",
                          hint="resume with the same --batch-size and number of processes (--nproc) it was "
                               "trained with")
    if remapped:
        global_step = ep * int(steps_per_epoch)
        log(f"steps per epoch changed from {saved_spe} to {steps_per_epoch}: the LR schedule continues at epoch {ep}")
    if epochs < ep or (epochs == ep and part):
        where = f"{ep} epoch(s) and {part} step(s)" if part else f"{ep} epoch(s)"
        raise ConfigError(f"the checkpoint has already trained {where}; --epochs {epochs} is fewer",
                          hint=f"pass --epochs {ep + 1} or more to continue")
    try:
        dist.unwrap(model).load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        saved = (ckpt.get("model") or {}).get("name", "?")
        raise CheckpointError(f"the checkpoint's weights (model {saved!r}) do not fit the model: {first[:160]}",
                              hint=f"resume with the model the checkpoint was trained with: leave out --model "
                                   f"or pass --model {saved}") from None
    if optimizer is not None and "optimizer" in ckpt:
        optimizer.load_state_dict(ckpt["optimizer"])
    saved_epochs = ckpt.get("stage_epochs", (ckpt.get("config") or {}).get("train", {}).get("epochs"))
    if scheduler is not None:
        if "scheduler" in ckpt and saved_epochs == epochs and not remapped:
            scheduler.load_state_dict(ckpt["scheduler"])
        else:  # a different length (or no saved state): replay the new schedule up to the saved step
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for _ in range(global_step):
                    scheduler.step()
            if saved_epochs != epochs:
                log(f"epochs changed from {saved_epochs} to {epochs}: the LR schedule was stretched to the new length")
    if scaler is not None and "scaler" in ckpt:
        scaler.load_state_dict(ckpt["scaler"])
    restore_rng(ckpt)
    return TrainState(epoch=int(ckpt["epoch"]), global_step=global_step,
                      best_metric=float(ckpt.get("best_metric", -math.inf)), best_epoch=int(ckpt.get("best_epoch", 0)),
                      best_seen=float(ckpt.get("best_seen", ckpt.get("best_metric", -math.inf))),
                      epoch_step=int(ckpt.get("epoch_step", 0)),
                      epoch_accum=dict((_rank_state(ckpt) or ckpt).get("epoch_accum") or {}),
                      loader_state=dict((_rank_state(ckpt) or ckpt).get("loader_state") or {}))
