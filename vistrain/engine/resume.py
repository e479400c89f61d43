"""Exact resume: put a model, its optimizer, scheduler, scaler and every RNG back where a checkpoint left them.

A checkpoint written by the loop holds the position inside the epoch (``epoch_step``) and the
epoch's running sums; the loaders' order is a function of (seed, epoch) and each batch's
augmentation generator a function of its position, so restoring these and skipping the batches
already done replays the interrupted run bit for bit (deterministic mode, CPU). The fields
themselves are read through :mod:`vistrain.checkpoint`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

from vistrain import checkpoint
from vistrain.engine import distributed as dist
from vistrain.engine.device import rng_state, set_rng_state
from vistrain.engine.loop import TrainState
from vistrain.errors import CheckpointError, ConfigError


def rank_states(state: TrainState) -> tuple[dict, list[dict] | None]:
    """This process's RNG states, and under DDP every rank's RNG, loader position and running sums (a collective
    call: every rank makes it), for :func:`vistrain.checkpoint.make_checkpoint`."""
    own = {"rng": rng_state(), "loader_state": dict(state.loader_state), "epoch_accum": dict(state.epoch_accum)}
    ranks = dist.gather_objects(own) if dist.is_distributed() else None
    return own["rng"], ranks if ranks is not None and len(ranks) > 1 else None


def saved_state(ckpt: dict) -> TrainState:
    """The :class:`TrainState` a checkpoint records, for this process's rank."""
    d = dist.info()
    return TrainState(**checkpoint.position(ckpt, d.rank, d.world_size))


def restore_training(ckpt: dict, *, model, optimizer=None, scheduler=None, scaler=None, ema=None, epochs: int,
                     steps_per_epoch: int | None = None, accum_steps: int = 1,
                     log: Callable[[str], None] = lambda message: None) -> TrainState:
    """Load *ckpt* into the training objects and return the :class:`TrainState` to continue from.

    A changed number of *epochs* stretches the LR schedule: the new schedule is replayed up to the
    saved step. Fewer epochs than already trained is an error; exactly as many finishes at once.
    A changed *steps_per_epoch* (another batch size or number of DDP processes) continues the
    schedule at the same epoch from an epoch-end checkpoint, and is an error mid-epoch.
    """
    state = saved_state(ckpt)
    ep, part, saved_spe = state.epoch, state.epoch_step, state.steps_per_epoch
    remapped = bool(saved_spe and steps_per_epoch and saved_spe != steps_per_epoch)
    if remapped and part:
        raise ConfigError(f"the checkpoint stopped inside an epoch of {saved_spe} steps; this run has "
                          f"{steps_per_epoch} steps per epoch (another batch size or number of processes)",
                          hint="resume with the same --batch-size and number of processes (--nproc) it was "
                               "trained with")
    if remapped:
        state.global_step = ep * -(-int(steps_per_epoch) // max(1, accum_steps))  # optimizer steps
        log(f"steps per epoch changed from {saved_spe} to {steps_per_epoch}: the LR schedule continues at epoch {ep}")
    if epochs < ep or (epochs == ep and part):
        where = f"{ep} epoch(s) and {part} step(s)" if part else f"{ep} epoch(s)"
        raise ConfigError(f"the checkpoint has already trained {where}; --epochs {epochs} is fewer",
                          hint=f"pass --epochs {ep + 1} or more to continue")
    try:
        dist.unwrap(model).load_state_dict(checkpoint.training_weights(ckpt))
        if ema is not None:  # a checkpoint without an average starts it from the weights it has
            ema.module.load_state_dict(checkpoint.weights(ckpt) if checkpoint.holds_ema(ckpt)
                                       else checkpoint.training_weights(ckpt))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        saved = checkpoint.model_description(ckpt)[0]["name"]
        raise CheckpointError(f"the checkpoint's weights (model {saved!r}) do not fit the model: {first[:160]}",
                              hint=f"resume with the model the checkpoint was trained with: leave out --model "
                                   f"or pass --model {saved}") from None
    opt_state, sched_state, scaler_state = checkpoint.resume_states(ckpt)
    if optimizer is not None and opt_state is not None:
        optimizer.load_state_dict(opt_state)
    saved_epochs = checkpoint.stage_epochs(ckpt)
    if scheduler is not None:
        if sched_state is not None and saved_epochs == epochs and not remapped:
            scheduler.load_state_dict(sched_state)
        else:  # a different length (or no saved state): replay the new schedule up to the saved step
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for _ in range(state.global_step):
                    scheduler.step()
            if saved_epochs != epochs:
                log(f"epochs changed from {saved_epochs} to {epochs}: the LR schedule was stretched to the new length")
    if scaler is not None and scaler_state is not None:
        scaler.load_state_dict(scaler_state)
    d = dist.info()
    rng = checkpoint.rng_of(ckpt, d.rank, d.world_size)
    if rng is not None:
        set_rng_state(rng)
    return state
