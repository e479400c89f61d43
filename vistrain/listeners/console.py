"""Headless console reporter: plain lines when stdout is not a terminal, rich progress when it is."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from vistrain.events import (
    BatchEnd, CheckpointSaved, ConsistencyStats, EpochEnd, EvalEnd, Event, ImagesSkipped, Log, PseudoLabelStats,
    RunFailed, RunFinished, RunStarted, StageStarted, AugmentTrial,
)
from vistrain.hookspecs import hookimpl


REFRESH_S = 0.5  # seconds between progress-bar redraws in a terminal


def result_summary(metrics: dict) -> str:
    """``, best.pt (epoch N) val top-1 X%, test top-1 Y%`` from a finished run's metrics (parts it has)."""
    best, epoch, test = metrics.get("best_val_top1"), metrics.get("best_epoch"), metrics.get("test_top1")
    text = ""
    if isinstance(best, float) and best >= 0:
        parts = ([f"epoch {int(epoch)}"] if isinstance(epoch, (int, float)) and epoch else []) + \
            (["EMA weights"] if metrics.get("ema_decay") else []) + \
            ([f"average of {int(metrics['average_epochs'])} epochs"] if metrics.get("average_is_best") else [])
        where = f" ({', '.join(parts)})" if parts else ""
        text = f", best.pt{where} val top-1 {_pct(best)}"
    views = {2: "flip", 5: "crops", 10: "crops-flip"}.get(int(metrics.get("test_tta_views") or 0))  # inference.TTA_VIEWS
    with_tta = f" (TTA {views})" if views else ""
    return text + (f", test top-1 {_pct(test)}{with_tta}" if isinstance(test, float) else "")


def shows_top5(num_classes: int) -> bool:
    """Whether a top-5 figure says anything: with five classes or fewer it is always 100 %."""
    return num_classes > 5


def skipped_line(event: ImagesSkipped) -> str:
    """One line naming the images an ``ImagesSkipped`` event reports (the first five by file name)."""
    import os

    names = ", ".join(os.path.basename(p) or p for p in event.paths[:5])
    more = f" and {len(event.paths) - 5} more" if len(event.paths) > 5 else ""
    return (f"skipped {len(event.paths)} unreadable image(s): {names}{more} ({event.stage} {event.split}, epoch "
            f"{event.epoch}: {event.total} so far)")


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


class EpochPseudoLabels:
    """A consistency stage's statistics (one per logging interval) summed over an epoch, for one line at its end."""

    def __init__(self, epoch: int | None = None) -> None:
        self.epoch, self.images, self.accepted = epoch, 0, 0.0
        # accuracies weighted by the images they cover, over the intervals whose true labels are known
        self.right = self.right_all = self.known = self.known_accepted = 0.0
        self.last: ConsistencyStats | None = None

    def add(self, e: ConsistencyStats) -> None:
        """Count one interval (a new epoch starts the sums again)."""
        if e.epoch != self.epoch:
            self.__init__(e.epoch)
        accepted = e.mask_rate * e.images
        self.images += e.images
        self.accepted += accepted
        if e.accuracy is not None and e.accuracy_all is not None:
            self.right += e.accuracy * accepted
            self.right_all += e.accuracy_all * e.images
            self.known += e.images
            self.known_accepted += accepted
        self.last = e

    def line(self) -> str | None:
        """``pseudo labels: mask 63.2%, accuracy 97.1% (all 92.0%), threshold 0.95`` (None before any interval);
        a range of thresholds where they differ by class (FlexMatch), as of the epoch's last interval."""
        if not self.images or self.last is None:
            return None
        text = f"pseudo labels: mask {100 * self.accepted / self.images:.1f}%"
        if self.known:
            acc = f"{100 * self.right / self.known_accepted:.1f}%" if self.known_accepted else "n/a"
            text += f", accuracy {acc} (all {100 * self.right_all / self.known:.1f}%)"
        lo, hi = min(self.last.class_thresholds or [self.last.threshold]), max(self.last.class_thresholds or [0.0])
        return text + (f", threshold {lo:.2f}" if hi - lo < 5e-3 else f", thresholds {lo:.2f}-{hi:.2f}")


def _per_class(e: EvalEnd) -> str:
    """`` balanced top-1 x% macro-F1 y%`` of an evaluation that has them."""
    if e.balanced_top1 is None or e.macro_f1 is None:
        return ""
    return f" balanced top-1 {_pct(e.balanced_top1)} macro-F1 {_pct(e.macro_f1)}"


class ConsoleReporter:
    """Listener printing a run's progress. The engine never prints; this does.

    ``plain=True`` writes one line every *every* steps and one per epoch, with no ANSI codes
    and no carriage returns, so SLURM and nohup logs stay readable.
    """

    def __init__(self, stream: TextIO | None = None, plain: bool | None = None, every: int = 50):
        self.stream = stream or sys.stdout
        self.plain = (not self.stream.isatty()) if plain is None else plain
        self.every = max(1, every)
        self._last_print_step = 0
        self._progress = None
        self._task = None
        self._console = None
        self._pending_epoch: EpochEnd | None = None
        self._pseudo = EpochPseudoLabels()  # a consistency stage's: one line after each epoch's
        self._stage = ""
        self._classes = 0  # the run's, from RunStarted: top-5 is shown only above five
        if not self.plain:
            from rich.console import Console

            self._console = Console(file=self.stream)

    def _line(self, text: str) -> None:
        if self._console is not None:
            self._console.print(text, highlight=False, markup=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    # -- rich progress ---------------------------------------------------------------
    def _start_progress(self, total: int, description: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._stop_progress()
        # redrawn from the batch events at most REFRESH_S apart, in the training thread: rich's own refresh
        # thread would take the GIL from training ten times a second
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"), console=self._console, transient=True, auto_refresh=False,
        )
        self._progress.start()
        self._drawn_at = time.monotonic()
        self._task = self._progress.add_task(description, total=total, info="")

    def _stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @hookimpl
    def on_event(self, event: Event) -> None:
        """Render one event."""
        if isinstance(event, RunStarted):
            self._classes = event.num_classes
            self._line(f"run {event.run_name}: {event.strategy} {event.model} on {event.dataset} "
                       f"({event.num_train} train / {event.num_val} val, {event.num_classes} classes) "
                       f"on {event.device} -> {event.run_dir}")
        elif isinstance(event, StageStarted):
            self._stage = event.stage
            self._pseudo = EpochPseudoLabels()
            self._last_print_step = -self.every  # each stage counts its steps from 0 again
            params = f", {event.num_params:,} params" if event.num_params else ""
            self._line(f"stage {event.index}/{event.total}: {event.description} "
                       f"({event.epochs} epochs x {event.steps_per_epoch} steps{params})")
        elif isinstance(event, BatchEnd):
            self._on_batch(event)
        elif isinstance(event, EpochEnd):
            self._pending_epoch = event
        elif isinstance(event, EvalEnd):
            self._on_eval(event)
        elif isinstance(event, CheckpointSaved):
            if event.reason in ("user", "stop"):
                self._line(f"checkpoint saved: {event.path}")
        elif isinstance(event, Log):
            if event.level in ("warning", "error", "info"):
                prefix = "" if event.level == "info" else f"{event.level}: "
                self._line(f"{prefix}{event.message}")
        elif isinstance(event, ImagesSkipped):
            self._line(f"warning: {skipped_line(event)}")
        elif isinstance(event, ConsistencyStats):
            self._pseudo.add(event)  # every few steps: summed into one line at the end of the epoch
        elif isinstance(event, PseudoLabelStats):
            acc = f", label accuracy {_pct(event.accuracy)}" if event.accuracy is not None else ""
            self._line(f"pseudo labels round {event.round}: accepted {_pct(event.acceptance_rate)} at "
                       f"threshold {event.threshold:.2f}, mean confidence {event.mean_confidence:.3f}{acc}")
        elif isinstance(event, AugmentTrial):
            self._line(f"augment trial {event.trial}/{event.trials}: {event.policy} -> val top-1 {_pct(event.score)}")
        elif isinstance(event, RunFinished):
            self._stop_progress()
            word = "stopped" if event.stopped_early else "finished"
            self._line(f"run {event.run_name} {word} in {event.duration_s:.1f}s{result_summary(event.metrics)}")
        elif isinstance(event, RunFailed):
            self._stop_progress()

    def _on_batch(self, e: BatchEnd) -> None:
        wait = 100 * e.data_wait_fraction
        info = f"loss {e.loss:.4f} lr {e.lr:.2e} {e.samples_per_s:,.0f} img/s wait {wait:.0f}%"
        if self._pseudo.last is not None and self._pseudo.epoch == e.epoch:
            info += f" mask {100 * self._pseudo.last.mask_rate:.0f}%"  # the latest interval's
        if self.plain:
            if e.global_step - self._last_print_step >= self.every:
                self._last_print_step = e.global_step
                self._line(f"{e.stage} epoch {e.epoch}/{e.epochs} step {e.step}/{e.steps_per_epoch} {info}")
            return
        if self._progress is None or e.step <= (self._progress.tasks[0].completed if self._progress.tasks else 0):
            self._start_progress(e.steps_per_epoch, f"epoch {e.epoch}/{e.epochs}")
        self._progress.update(self._task, completed=e.step, info=info)
        now = time.monotonic()
        if now - self._drawn_at >= REFRESH_S or e.step == e.steps_per_epoch:
            self._drawn_at = now
            self._progress.refresh()

    def _on_eval(self, e: EvalEnd) -> None:
        self._stop_progress()
        if e.split == "test":
            self._line(f"test split ({e.num_samples} held-out images, checkpoint of epoch {e.epoch}): "
                       f"loss {e.loss:.4f} top-1 {_pct(e.top1)}{self._top5(e.top5)}{_per_class(e)}")
            return
        if e.split == "val-average":  # checkpoint.average_last: the average of the last epochs' weights
            self._line(f"{e.stage} averaged weights: val loss {e.loss:.4f} top-1 {_pct(e.top1)}{self._top5(e.top5)}")
            return
        ep = self._pending_epoch
        if ep is not None and ep.epoch == e.epoch:
            train = f"train loss {ep.train_loss:.4f} acc {_pct(ep.train_top1)} | "
            took = f" | {ep.duration_s:.1f}s"
        else:
            train, took = "", ""
        self._line(f"{e.stage} epoch {e.epoch}/{ep.epochs if ep else '?'} {train}"
                   f"{e.split} loss {e.loss:.4f} top-1 {_pct(e.top1)}{self._top5(e.top5)}{took}")
        self._pending_epoch = None
        pseudo = self._pseudo.line() if self._pseudo.epoch == e.epoch else None
        if pseudo:
            self._line(f"{e.stage} epoch {e.epoch} {pseudo}")

    def _top5(self, top5: float) -> str:
        """`` top-5 x%`` where top-5 means something (more than five classes), else nothing."""
        return f" top-5 {_pct(top5)}" if shows_top5(self._classes) else ""

    def close(self) -> None:
        """Stop any live progress display."""
        self._stop_progress()
