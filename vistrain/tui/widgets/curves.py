"""Curves: train/val loss and accuracy against epochs, as braille line plots."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal

from vistrain.events import BatchEnd, EpochEnd, EvalEnd, Event, StageStarted
from vistrain.tui.widgets.lineplot import LinePlot

MAX_STEP_POINTS = 1500


class CurvesPanel(Horizontal):
    """Loss plot and accuracy plot side by side, redrawn when the app's frame timer calls :meth:`flush`."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.clear()

    def clear(self) -> None:
        """Forget every point (the study view then follows another trial); the next :meth:`flush` redraws."""
        self.series: dict[str, tuple[list[float], list[float]]] = {
            name: ([], []) for name in ("step_loss", "train_loss", "val_loss", "train_acc", "val_acc")}
        self._offset = 0  # epochs finished in earlier stages, so stages follow each other on the x axis
        self._stage_offsets: dict[str, float] = {}  # a stage seen again (a resume) keeps its place
        self._last_x = 0
        self._dirty = True
        self.drawn_epochs = 0  # epoch points in the last drawing: until the first, the app draws every frame

    def compose(self) -> ComposeResult:
        yield LinePlot("loss", id="loss-plot")
        # the first epochs' low accuracy would squeeze the rest against the top: follow the later epochs
        yield LinePlot("accuracy %", id="acc-plot", follow=True, floor=0.0, cap=100.0)

    def on_mount(self) -> None:
        self.flush()

    def _add(self, name: str, x: float, y: float) -> None:
        xs, ys = self.series[name]
        while xs and xs[-1] >= x:  # a resumed run replays what the killed one logged past its checkpoint
            xs.pop()
            ys.pop()
        xs.append(x)
        ys.append(y)
        if name == "step_loss" and len(xs) > MAX_STEP_POINTS:
            del xs[::2], ys[::2]  # halve the density, keep the shape
        self._dirty = True

    def apply(self, event: Event) -> None:
        """Add the points *event* carries; drawing waits for :meth:`flush`."""
        if isinstance(event, StageStarted):
            self._offset = self._stage_offsets.setdefault(event.stage, self._last_x)
        elif isinstance(event, BatchEnd) and event.steps_per_epoch:
            self._add("step_loss", self._offset + event.epoch - 1 + event.step / event.steps_per_epoch, event.loss)
        elif isinstance(event, EpochEnd):
            self._last_x = self._offset + event.epoch
            self._add("train_loss", self._last_x, event.train_loss)
            self._add("train_acc", self._last_x, 100 * event.train_top1)
        elif isinstance(event, EvalEnd) and event.epoch > 0 and event.split == "val":
            x = self._offset + event.epoch
            self._add("val_loss", x, event.loss)
            self._add("val_acc", x, 100 * event.top1)

    def flush(self) -> None:
        """Redraw both plots if new points arrived since the last redraw."""
        if not self._dirty or not self.is_mounted:
            return
        self._dirty = False
        self.drawn_epochs = len(self.series["train_acc"][0]) + len(self.series["val_acc"][0])
        self._draw(self.query_one("#loss-plot", LinePlot),
                   [("step_loss", "step", "grey50"), ("train_loss", "train", "blue"), ("val_loss", "val", "dark_orange")])
        self._draw(self.query_one("#acc-plot", LinePlot),
                   [("train_acc", "train", "blue"), ("val_acc", "val", "dark_orange")])

    def _draw(self, widget: LinePlot, lines: list[tuple[str, str, str]]) -> None:
        widget.set_series([(label, *self.series[name], color) for name, label, color in lines])
