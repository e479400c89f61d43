"""Progress: epoch and step bars, ETA, samples/s, data-wait share, loss and learning rate."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from vistrain.events import BatchEnd, EpochEnd, Event, StageStarted
from vistrain.tui.widgets.bars import gauge


def format_eta(seconds: float | None) -> str:
    """``h:mm:ss`` or ``m:ss``; ``--:--`` while unknown."""
    if seconds is None:
        return "--:--"
    seconds = int(round(max(0.0, seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressPanel(Widget):
    """Bars and rates from BatchEnd events; ``global_step`` is the latest step seen."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.epoch = 0
        self.epochs = 0
        self.step = 0
        self.steps_per_epoch = 0
        self.global_step = 0
        self.loss: float | None = None
        self.lr: float | None = None
        self.samples_per_s = 0.0
        self.data_wait = 0.0
        self.seconds_per_step: float | None = None
        self._last_global: int | None = None
        self._dirty = False

    def flush(self) -> None:
        """Redraw if batch events arrived since the last frame."""
        if self._dirty:
            self._dirty = False
            self.refresh()

    def apply(self, event: Event) -> None:
        """Update the counters from *event*; batch and epoch ends are drawn at the next :meth:`flush`."""
        if isinstance(event, StageStarted):
            self.epochs, self.steps_per_epoch = event.epochs, event.steps_per_epoch
            self.epoch, self.step, self.seconds_per_step = 0, 0, None
            self._last_global = None
        elif isinstance(event, BatchEnd):
            last = self._last_global
            steps = event.global_step - last if last is not None and event.global_step > last else event.step
            self._last_global = event.global_step
            per_step = event.step_time_s / max(1, steps)
            # The mean over a few intervals keeps the ETA from jumping with every eval pause.
            self.seconds_per_step = per_step if self.seconds_per_step is None else (
                0.7 * self.seconds_per_step + 0.3 * per_step)
            self.epoch, self.epochs = event.epoch, event.epochs or self.epochs
            self.step, self.steps_per_epoch = event.step, event.steps_per_epoch
            self.global_step = event.global_step
            self.loss, self.lr = event.loss, event.lr
            self.samples_per_s, self.data_wait = event.samples_per_s, event.data_wait_fraction
            self._dirty = True
            return
        elif isinstance(event, EpochEnd):  # several a second on small data: drawn with the next frame too
            self.epoch, self.epochs = event.epoch, event.epochs
            self.step = self.steps_per_epoch
            self._dirty = True
            return
        else:
            return
        self.refresh()

    @property
    def eta_s(self) -> float | None:
        """Seconds left in the current stage at the recent step rate (evaluation time not counted)."""
        if self.seconds_per_step is None or not self.steps_per_epoch:
            return None
        left = (self.epochs - self.epoch) * self.steps_per_epoch + (self.steps_per_epoch - self.step)
        return left * self.seconds_per_step

    def render(self) -> Text:
        """Four lines: epoch bar, step bar, speed line, loss line."""
        width = max(20, self.size.width)
        epoch_done = (self.epoch - 1 + self.step / self.steps_per_epoch) if self.steps_per_epoch and self.epoch else 0
        lines = [
            gauge(f"epoch {self.epoch:>3}/{self.epochs:<3}", epoch_done / self.epochs if self.epochs else 0.0,
                  width, f"{100 * epoch_done / self.epochs if self.epochs else 0:3.0f}%", "green"),
            gauge(f"step {self.step:>4}/{self.steps_per_epoch:<4}",
                  self.step / self.steps_per_epoch if self.steps_per_epoch else 0.0, width,
                  f"{100 * self.step / self.steps_per_epoch if self.steps_per_epoch else 0:3.0f}%", "cyan"),
        ]
        wait_style = "bold red" if self.data_wait > 0.3 else ("yellow" if self.data_wait > 0.1 else "")
        speed = Text(f"ETA {format_eta(self.eta_s)} · {self.samples_per_s:,.0f} img/s · ")
        speed.append(f"data wait {100 * self.data_wait:.0f}%", style=wait_style)
        loss = f"loss {self.loss:.4f}" if self.loss is not None else "loss -"
        lr = f"lr {self.lr:.2e}" if self.lr is not None else "lr -"
        lines += [speed, Text(f"{loss} · {lr} · global step {self.global_step:,}")]
        for line in lines:
            line.truncate(width)
        return Text("\n").join(lines)
