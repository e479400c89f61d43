"""What a strategy receives: the resolved config, device, data, emit and checkpoint writer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vistrain.config import Config
from vistrain.data.prepare import PreparedData
from vistrain.engine import distributed as dist
from vistrain.checkpoint import epoch_checkpoint_name, make_checkpoint, prune_step_checkpoints, step_checkpoint_name
from vistrain.durable import DurableWriter
from vistrain.engine.control import TrainControl
from vistrain.engine.distributed import DistInfo
from vistrain.engine.loop import TrainState
from vistrain.engine.resume import rank_states
from vistrain.events import CheckpointSaved, Event, Log
from vistrain.runfolder import RunFolder


@dataclass
class RunContext:
    """Everything a strategy needs; strategies compose engine functions with it."""

    config: Config
    device: torch.device
    data: PreparedData
    run_dir: Path
    emit: Callable[[Event], None]
    control: TrainControl = field(default_factory=TrainControl)
    amp_dtype: torch.dtype | None = None
    resume: dict[str, Any] | None = None  # a loaded checkpoint to continue from
    completed: set[str] = field(default_factory=set)  # stages a resumed run finished before (see stages.plan_resume)
    dist: DistInfo = field(default_factory=DistInfo)  # this process's rank under DDP
    params: Any = None  # ``strategy.params`` validated against the strategy's parameter model (a plain dict if none)
    augmentation: Any = None  # (per-image, batch) augmentation of ``config.augment``, built once for every stage

    def __post_init__(self) -> None:
        if self.params is None:
            from vistrain.strategies.params import parse_params

            self.params = parse_params(self.config.strategy.name, self.config.strategy.params)

    @property
    def folder(self) -> RunFolder:
        """The run folder (its checkpoints are ``folder.checkpoints``)."""
        return RunFolder(self.run_dir)

    def log(self, message: str, level: str = "info") -> None:
        """Emit a Log event."""
        self.emit(Log(level=level, message=message))


class CheckpointWriter:
    """Writes ``<prefix>last.pt`` (and ``<prefix>best.pt`` when the metric improves) for one stage's model,
    and the rolling ``<prefix>step-N.pt`` checkpoints between epochs.

    The checkpoint records the stage's name and *stage_state* (e.g. the Noisy Student round and the
    pseudo-label set's hash) so a resumed run can tell where it was, and the position inside the
    epoch for an exact resume. A prefixed stage also writes the run's plain ``last.pt`` (always the
    latest point to resume from) and, when *final*, ``best.pt``. Under DDP every rank calls it (their
    RNG and loader states are gathered) and rank 0 alone writes.
    """

    def __init__(self, ctx: RunContext, *, model, model_spec: dict, input_spec: dict, optimizer=None,
                 scheduler=None, scaler=None, prefix: str = "", stage: str = "", stage_state: dict | None = None,
                 epochs: int | None = None, final: bool = True, extra_modules: dict | None = None, ema=None):
        self.ctx = ctx
        self.ema = ema
        self.extra_modules = dict(extra_modules or {})
        self.epochs = epochs or ctx.config.train.epochs  # the stage's length, for a resume that changes it
        self.model = model
        self.model_spec = model_spec
        self.input_spec = input_spec
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scaler = scaler
        self.prefix = prefix
        self.stage = stage
        self.stage_state = dict(stage_state or {})
        self.final = final
        self._committer = DurableWriter()

    def path(self, which: str) -> Path:
        """Path of ``last`` or ``best``."""
        return self.ctx.folder.checkpoint(f"{self.prefix}{which}.pt")

    def __call__(self, state: TrainState, metrics: dict[str, float], is_best: bool, reason: str) -> None:
        rng, ranks = rank_states(state)  # a collective under DDP: before rank 0 goes its own way
        if not self.ctx.dist.is_main:
            return
        ckpt = make_checkpoint(
            model=dist.unwrap(self.model), model_spec=self.model_spec, input_spec=self.input_spec,
            classes=self.ctx.data.classes, epoch=state.epoch, global_step=state.global_step,
            optimizer=self.optimizer, scheduler=self.scheduler, scaler=self.scaler,
            metrics={k: float(v) for k, v in metrics.items()}, config=self.ctx.config.model_dump(mode="json"),
            rng=rng, state=state, stage_epochs=self.epochs, strategy=self.ctx.config.strategy.name,
            stage=self.stage, stage_state=self.stage_state, rank_states=ranks, extra_modules=self.extra_modules,
            ema_model=self.ema.module if self.ema is not None else None)
        metric = metrics.get("val_top1")
        folder = self.ctx.folder.checkpoints
        if reason == "step":
            path = folder / step_checkpoint_name(self.prefix, state.global_step)
            paths = [path]
        else:
            path = self.path("last")
            paths = [path, folder / "last.pt"] if self.prefix else [path]
            window = self.ctx.config.checkpoint.average_last
            if reason == "epoch" and window and state.epoch > self.epochs - window:  # kept for the average
                paths.append(folder / epoch_checkpoint_name(self.prefix, state.epoch))
        events = [CheckpointSaved(path=str(path), epoch=state.epoch, global_step=state.global_step, is_best=False,
                                  metric=metric, reason=reason)]
        if is_best:
            best = self.path("best")
            paths += [best, folder / "best.pt"] if self.prefix and self.final else [best]
            events.append(CheckpointSaved(path=str(best), epoch=state.epoch, global_step=state.global_step,
                                          is_best=True, metric=metric, reason="best"))

        def saved() -> None:  # once the files are in place
            if reason == "step":
                prune_step_checkpoints(folder, self.prefix, self.ctx.config.checkpoint.keep)
            for event in events:
                self.ctx.emit(event)

        # one serialisation for every name; the routine end-of-epoch write is made durable beside
        # the next epoch's training, a stop, user or step checkpoint before going on
        self._committer.save(ckpt, paths, background=reason == "epoch", then=saved)

    def finish(self, *, quiet: bool = False) -> None:
        """Wait until the last checkpoint is on disk (raises if writing it failed, unless *quiet*)."""
        self._committer.close(quiet=quiet)
