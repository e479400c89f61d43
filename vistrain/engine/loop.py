"""The training loop as plain functions: ``train_one_epoch`` → ``evaluate`` → ``fit``."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vistrain.config import BEST_RULES
from vistrain.data.pipeline import TimedIterator
from vistrain.engine import distributed as dist
from vistrain.engine.control import StopRequested, TrainControl
from vistrain.engine.device import autocast, input_format
from vistrain.errors import DataError, NonFiniteLossError
from vistrain.events import BatchEnd, EpochEnd, EvalEnd, Event, ImagesSkipped
from vistrain.metrics import ClassMetrics

Emit = Callable[[Event], None]


def _no_emit(event: Event) -> None:
    pass


@dataclass
class TrainState:
    """Counters that survive across epochs and stages (and go into checkpoints)."""

    epoch: int = 0  # last completed epoch
    global_step: int = 0
    best_metric: float = -math.inf  # val top-1 of the epoch chosen for best.pt
    best_epoch: int = 0
    best_seen: float = -math.inf  # the highest val top-1 so far (the 1se rule measures from it)
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch_step: int = 0  # steps done in epoch ``epoch + 1``; a resume continues after them
    epoch_accum: dict[str, float] = field(default_factory=dict)  # that epoch's running sums, for exact metrics
    loader_state: dict[str, Any] = field(default_factory=dict)  # the training loader's ``state_dict()`` then
    steps_per_epoch: int = 0  # of the training loader (a resume with another count re-maps the schedule)


def update_best(state: TrainState, epoch: int, top1: float, count: int, rule: str = "1se") -> bool:
    """Whether this evaluation's weights become ``best.pt``; updates ``state.best_seen`` and, when
    they do, ``state.best_metric`` and ``state.best_epoch``.

    ``max``: the highest val top-1 (a tie goes to the later epoch). ``last``: every epoch. ``1se``
    (the default): the latest epoch whose val top-1 is within one standard error of the highest
    so far, the binomial ``sqrt(p(1-p)/count)`` of that highest ``p`` on *count* val images (the
    one-standard-error rule). On a small val split the highest of many epochs is mostly noise; under
    a schedule that anneals the rate this keeps the later, longer-trained weights unless an
    earlier epoch was better by more than the split can tell apart.
    """
    if rule not in BEST_RULES:
        raise ValueError(f"unknown best-checkpoint rule {rule!r}; expected one of {', '.join(BEST_RULES)}")
    state.best_seen = max(state.best_seen, top1)
    if rule == "last":
        best = True
    elif rule == "max":
        best = top1 >= state.best_metric
    else:
        p = state.best_seen
        se = math.sqrt(max(p * (1.0 - p), 0.0) / count) if count > 0 else 0.0
        best = top1 >= p - se - 1e-12
    if best:
        state.best_metric, state.best_epoch = top1, epoch
    return best


class StepCheckpoints:
    """When to write a checkpoint between epochs: every N optimizer steps and/or every M minutes."""

    def __init__(self, every_steps: int | None = None, every_minutes: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.every_steps = every_steps
        self.every_s = every_minutes * 60.0 if every_minutes else None
        self._clock = clock
        self._last = clock()

    def due(self, global_step: int) -> bool:
        """Whether a checkpoint is due after *global_step*; restarts the timer when it is."""
        hit = bool(self.every_steps) and global_step % self.every_steps == 0
        if not hit and self.every_s is not None and self._clock() - self._last >= self.every_s:
            hit = True
        if hit:
            self._last = self._clock()
        return hit


class UnreadableImages:
    """What a loader could not read during one epoch: reported as ``ImagesSkipped`` events, and an error
    once more than *fraction* of the epoch's images are unreadable (under DDP the ranks agree on it)."""

    def __init__(self, loader, stage: str, epoch: int, fraction: float, emit: Emit, split: str = "train"):
        self.take = getattr(loader, "take_skipped", None)
        self.stage, self.epoch, self.fraction, self.emit, self.split = stage, epoch, fraction, emit, split
        self.images = _epoch_images(loader)
        self.names: set[str] = set()

    def check(self, distributed: bool = False) -> None:
        """Report what was skipped since the last check; stop past the share allowed."""
        if self.take is None:
            return
        new = self.take()
        if new:
            self.names.update(new)
            self.emit(ImagesSkipped(stage=self.stage, epoch=self.epoch, split=self.split, paths=list(new),
                                    total=len(self.names)))
        over = len(self.names) > self.fraction * self.images
        if distributed:
            (over,) = dist.agree(over)
        if over:
            first = f"; the first: {sorted(self.names)[0]!r}" if self.names else " on another DDP rank"
            raise DataError(f"{len(self.names)} of the {self.images} images of this epoch could not be read, more than "
                            f"data.max_bad_fraction ({self.fraction:g}) allows{first}",
                            hint="list them with 'vistrain datasets check SPEC' and fix or remove them, or raise "
                                 "data.max_bad_fraction")


def _epoch_images(loader) -> int:
    """About how many images one epoch of *loader* gives this process (its share under DDP)."""
    sampler = getattr(loader, "batch_sampler", None)
    try:
        return max(1, len(loader.dataset) // max(1, int(getattr(sampler, "world_size", 1))))
    except (AttributeError, TypeError):
        return 1


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0,
                       weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy for hard (int) or soft (probability) targets, as CutMix/MixUp produce; *weight*: one per
    class (``train.class_weights``; torch's weighted mean over hard targets, the weighted sum per image over soft)."""
    return F.cross_entropy(logits, target, label_smoothing=label_smoothing, weight=weight)


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> list[torch.Tensor]:
    """Number of samples whose target is in the top-k predictions, for each k (soft targets use argmax)."""
    if target.ndim == 2:
        target = target.argmax(dim=1)
    maxk = min(max(ks), logits.shape[1])
    pred = logits.topk(maxk, dim=1).indices
    hits = pred.eq(target.view(-1, 1))
    return [hits[:, : min(k, maxk)].any(dim=1).sum() for k in ks]


def train_one_epoch(
    model: torch.nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    epoch: int,
    epochs: int,
    state: TrainState,
    stage: str = "train",
    scheduler=None,
    loss_fn: Callable[..., torch.Tensor] = soft_cross_entropy,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    grad_clip: float | None = None,
    batch_transform: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    log_interval: int = 10,
    emit: Emit = _no_emit,
    control: TrainControl | None = None,
    on_save_request: Callable[[], None] | None = None,
    save_step: Callable[[str], None] | None = None,
    step_checkpoints: StepCheckpoints | None = None,
    max_bad_fraction: float = 0.05,
    channels_last: bool = False,
    ema: Any = None,
    accum_steps: int = 1,
) -> dict[str, float]:
    """Train for one epoch, from ``state.epoch_step`` on; returns mean loss, top-1, samples and duration.

    Emits a ``BatchEnd`` every *log_interval* steps and checks the loss for NaN/inf there
    (one device sync per interval, not per step). After each step it serves stop and save
    requests and *step_checkpoints* through ``save_step(reason)``; under DDP the ranks agree
    on them first, so all stop at the same step. Images the loader could not read are reported
    (``ImagesSkipped``) every interval; more than *max_bad_fraction* of the epoch's images stops the run.
    """
    model.train()
    sees_images = bool(getattr(loss_fn, "sees_images", False))
    start = state.epoch_step
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    resumable = hasattr(loader, "state_dict") and hasattr(loader, "load_state_dict")
    if start and resumable and state.loader_state:
        loader.load_state_dict(state.loader_state)  # continues after the batches already done
    steps = len(loader)
    non_blocking = device.type == "cuda"
    layout = input_format(channels_last)
    t_epoch = time.perf_counter()
    t_interval = t_epoch
    batches = iter(loader)
    if start and not (resumable and state.loader_state):  # no saved position: replay the batches done
        for _ in range(start):
            next(batches)
    data_iter = TimedIterator(batches)
    wait_mark = 0.0
    acc = state.epoch_accum if start else {}
    correct_sum = torch.tensor(int(acc.get("correct", 0)), device=device, dtype=torch.long)
    # the images top-1 counts: those with a label (consistency training's unlabelled views carry negative targets)
    scored_sum = torch.tensor(int(acc.get("scored", acc.get("seen", 0))), device=device, dtype=torch.long)
    interval_loss = torch.tensor(float(acc.get("interval_loss", 0.0)), device=device)
    interval_steps, interval_samples = int(acc.get("interval_steps", 0)), int(acc.get("interval_samples", 0))
    seen = int(acc.get("seen", 0))
    epoch_loss_total = float(acc.get("loss_total", 0.0))
    distributed = dist.is_distributed()
    unreadable = UnreadableImages(loader, stage, epoch, max_bad_fraction, emit)

    def snapshot(step: int) -> None:
        state.epoch_step = step
        state.epoch_accum = {"correct": int(correct_sum.item()), "scored": int(scored_sum.item()),
                             "interval_loss": float(interval_loss.item()),
                             "interval_steps": interval_steps, "interval_samples": interval_samples,
                             "seen": seen, "loss_total": epoch_loss_total}
        state.loader_state = loader.state_dict() if resumable else {}

    # gradient accumulation: *accum* loader batches (micro-batches) make one optimizer step; the epoch's last
    # group may be shorter. Stops and checkpoints happen between groups only, so a resume starts a whole group.
    accum = max(1, int(accum_steps))
    opt_steps = -(-steps // accum)
    step = start
    while True:
        if control is not None:  # before the next batch is drawn, so the loader's position is the step's
            control.wait_if_paused()
            if control.stop_requested and not distributed and step % accum == 0:
                snapshot(step)
                raise StopRequested()
        try:
            images, targets = next(data_iter)
        except StopIteration:
            break
        step += 1
        images = images.to(device, non_blocking=non_blocking, memory_format=layout if images.ndim == 4 else
                           torch.preserve_format)
        targets = targets.to(device, non_blocking=non_blocking)
        if batch_transform is not None:
            images, targets = batch_transform(images, targets)
        group_start = (step - 1) // accum * accum
        boundary = step - group_start == min(accum, steps - group_start)  # the group's last micro-batch
        # under DDP, gradients are all-reduced once per group, with its last backward
        sync = contextlib.nullcontext() if boundary or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            with autocast(device, amp_dtype):
                logits = model(images)
                # a loss marked ``sees_images`` (e.g. distillation running its teacher) also gets the batch
                loss = loss_fn(logits, targets, images) if sees_images else loss_fn(logits, targets)
            if step - 1 == group_start:
                optimizer.zero_grad(set_to_none=True)
            scaled = loss / min(accum, steps - group_start) if accum > 1 else loss  # the group's mean
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        if boundary:
            if scaler is not None:
                if grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                scaler.step(optimizer)
                scaler.update()
            else:
                if grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
            state.global_step += 1
            if ema is not None:  # the weights' moving average (engine/ema.py), after every optimizer step
                ema.update(state.global_step)
        batch = images.shape[0]
        # keep per-step bookkeeping to two tiny device ops; syncing happens once per interval
        interval_loss += loss.detach()
        if targets.ndim == 1:
            correct_sum += (logits.detach().argmax(dim=1) == targets).sum()
            scored_sum += (targets >= 0).sum()
        else:
            correct_sum += (logits.detach().argmax(dim=1) == targets.argmax(dim=1)).sum()
            scored_sum += targets.shape[0]
        interval_steps += 1
        interval_samples += batch
        seen += batch
        if boundary and (-(-step // accum) % log_interval == 0 or step == steps):
            # one all-reduce per interval: every rank sees the mean loss, so a NaN anywhere stops all
            interval_total = dist.all_reduce_mean(interval_loss).item()
            epoch_loss_total += interval_total
            mean_loss = interval_total / interval_steps
            if not math.isfinite(mean_loss):
                raise NonFiniteLossError(
                    f"loss became {mean_loss} at epoch {epoch}, step {step}; training stopped and the last good checkpoint was kept",
                    hint="lower the learning rate (--lr), enable --set train.grad_clip=1.0, or check the data",
                )
            now = time.perf_counter()
            dt = now - t_interval
            emit(BatchEnd(
                stage=stage, epoch=epoch, epochs=epochs, step=-(-step // accum), steps_per_epoch=opt_steps,
                global_step=state.global_step, loss=mean_loss, lr=optimizer.param_groups[0]["lr"],
                samples_per_s=interval_samples / dt if dt > 0 else 0.0,
                data_wait_s=data_iter.wait_s - wait_mark, step_time_s=dt,
            ))
            wait_mark = data_iter.wait_s
            t_interval = now
            interval_loss.zero_()
            interval_steps = interval_samples = 0
            unreadable.check(distributed)
        if step < steps and boundary:  # the epoch's end is fit's checkpoint
            stop = control is not None and control.stop_requested
            user_save = control is not None and control.take_save_request()
            timed = step_checkpoints is not None and step_checkpoints.due(state.global_step)
            if distributed:  # rank 0's clock and keys decide for everyone
                stop, user_save, timed = dist.agree(stop, user_save, timed)
            if stop or user_save or timed:
                snapshot(step)
                if stop:
                    raise StopRequested()
                if user_save and on_save_request is not None:
                    on_save_request()
                elif save_step is not None:
                    save_step("user" if user_save else "step")
    state.epoch_step, state.epoch_accum, state.loader_state = 0, {}, {}
    duration = time.perf_counter() - t_epoch
    seen_all, correct_all, scored_all = dist.all_reduce_sum_ints(seen, correct_sum, scored_sum)
    result = {
        "loss": epoch_loss_total / max(1, steps),  # mean of per-step losses
        "top1": correct_all / max(1, scored_all),
        "samples": seen_all,
        "duration_s": duration,
        "data_wait_s": data_iter.wait_s,
        "lr": optimizer.param_groups[0]["lr"],
    }
    emit(EpochEnd(stage=stage, epoch=epoch, epochs=epochs, train_loss=result["loss"], train_top1=result["top1"],
                  lr=result["lr"], duration_s=duration, samples=seen_all))
    return result


@torch.no_grad()
def predict_logits(model: torch.nn.Module, loader, *, device: torch.device, amp_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the model over a loader; returns (logits, targets) on the CPU."""
    model.eval()
    outs, tgts = [], []
    for images, targets in loader:
        with autocast(device, amp_dtype):
            logits = model(images.to(device, non_blocking=device.type == "cuda"))
        outs.append(logits.float().cpu())
        tgts.append(targets.cpu() if torch.is_tensor(targets) else torch.as_tensor(targets))
    if not outs:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    return torch.cat(outs), torch.cat(tgts)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    loader,
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    epoch: int = 0,
    stage: str = "train",
    split: str = "val",
    emit: Emit = _no_emit,
    class_map: torch.Tensor | None = None,
    reduce: bool = True,
    channels_last: bool = False,
) -> dict[str, float]:
    """Loss, top-1, top-5, and the per-class figures of :class:`~vistrain.metrics.ClassMetrics` (balanced top-1,
    macro-F1, per-class precision, recall and F1) over a loader. *class_map* maps dataset labels to model outputs.

    Under DDP each rank evaluates its shard of the loader and the sums (and the confusion matrix) are all-reduced
    (``reduce=False``: this process's loader alone, no collective).
    """
    model = dist.unwrap(model)
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct1 = torch.zeros((), device=device, dtype=torch.long)
    correct5 = torch.zeros((), device=device, dtype=torch.long)
    confusion: torch.Tensor | None = None  # flattened, rows true class: made once the outputs' count k is known
    k = n = 0
    for images, targets in loader:
        images = images.to(device, non_blocking=device.type == "cuda",
                           memory_format=input_format(channels_last) if images.ndim == 4 else torch.preserve_format)
        targets = targets.to(device, non_blocking=device.type == "cuda")
        if class_map is not None:
            targets = class_map.to(device)[targets]
        with autocast(device, amp_dtype):
            logits = model(images)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, targets, reduction="sum")
        c1, c5 = topk_correct(logits, targets, (1, 5))
        correct1 += c1
        correct5 += c5
        if confusion is None:
            k = logits.shape[1]
            confusion = torch.zeros(k * k, dtype=torch.long, device=device)
        confusion += torch.bincount(targets * k + logits.argmax(dim=1), minlength=k * k)
        n += images.shape[0]
    UnreadableImages(loader, stage, epoch, 1.0, emit, split).check()  # left out of the figures: reported
    sums = (loss_sum, correct1, correct5, n)
    loss_total, c1_total, c5_total, n = dist.all_reduce_sum_floats(*sums) if reduce else (float(v) for v in sums)
    if reduce and dist.is_distributed():  # a rank without images learns the outputs' count from the others
        k = dist.all_reduce_max_int(k)
        confusion = dist.all_reduce_sum_tensor(confusion if confusion is not None else
                                               torch.zeros(k * k, dtype=torch.long, device=device))
    classes = ClassMetrics.from_confusion(confusion.cpu().numpy().reshape(k, k) if k else np.zeros((0, 0)))
    n = int(n)
    result = {
        "loss": loss_total / max(1, n),
        "top1": c1_total / max(1, n),
        "top5": c5_total / max(1, n),
        "num_samples": n,
        **classes.summary(),
    }
    emit(EvalEnd(stage=stage, epoch=epoch, split=split, loss=result["loss"], top1=result["top1"],
                 top5=result["top5"], num_samples=n, balanced_top1=classes.balanced_top1, macro_f1=classes.macro_f1,
                 class_precision=result["class_precision"], class_recall=result["class_recall"]))
    return result


def fit(
    model: torch.nn.Module,
    train_loader,
    val_loader,
    optimizer: torch.optim.Optimizer,
    *,
    device: torch.device,
    epochs: int,
    state: TrainState | None = None,
    stage: str = "train",
    scheduler=None,
    save: Callable[[TrainState, dict[str, float], bool, str], None] | None = None,
    eval_every: int = 1,
    emit: Emit = _no_emit,
    best_rule: str = "1se",
    **train_kwargs: Any,
) -> TrainState:
    """Train ``epochs`` epochs from ``state.epoch``, evaluating and calling *save* after each.

    ``save(state, metrics, is_best, reason)`` writes checkpoints; the best model is chosen from the
    validation top-1 by *best_rule* (see :func:`update_best`). Extra keyword arguments go to
    :func:`train_one_epoch`.
    """
    state = state or TrainState()
    state.steps_per_epoch = len(train_loader)
    amp_dtype = train_kwargs.get("amp_dtype")
    control: TrainControl | None = train_kwargs.get("control")
    last_metrics: dict[str, float] = {}

    def save_now(reason: str) -> None:
        if save is not None:
            save(state, last_metrics, False, reason)

    train_kwargs.setdefault("on_save_request", lambda: save_now("user"))
    train_kwargs.setdefault("save_step", save_now)
    for epoch in range(state.epoch + 1, epochs + 1):
        try:
            train_metrics = train_one_epoch(model, train_loader, optimizer, device=device, epoch=epoch, epochs=epochs,
                                            state=state, stage=stage, scheduler=scheduler, emit=emit, **train_kwargs)
        except StopRequested:
            save_now("stop")
            raise
        state.epoch, state.epoch_step, state.epoch_accum, state.loader_state = epoch, 0, {}, {}
        metrics = {f"train_{k}": v for k, v in train_metrics.items() if k in ("loss", "top1")}
        is_best = False
        if val_loader is not None and (epoch % eval_every == 0 or epoch == epochs):
            ema = train_kwargs.get("ema")  # with an EMA of the weights, the average is what is validated and kept
            val = evaluate(ema.module if ema is not None else model, val_loader, device=device, amp_dtype=amp_dtype,
                           epoch=epoch, stage=stage, emit=emit, channels_last=bool(train_kwargs.get("channels_last")))
            metrics.update({f"val_{k}": v for k, v in val.items() if k != "num_samples" and isinstance(v, float)})
            is_best = update_best(state, epoch, val["top1"], int(val.get("num_samples", 0)), best_rule)
        elif val_loader is None:
            is_best = True
        metrics["epoch"] = epoch
        state.history.append(metrics)
        last_metrics = metrics
        if save is not None:
            save(state, metrics, is_best, "epoch")
        stop = control is not None and control.stop_requested
        if dist.is_distributed():
            (stop,) = dist.agree(stop)
        if stop:
            raise StopRequested()
    return state
