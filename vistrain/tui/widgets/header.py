"""Header: run name, strategy, model, dataset, device, the current stage and the run state."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from vistrain.events import Event, RunFailed, RunFinished, RunStarted, StageStarted

STATE_STYLES = {"starting": "yellow", "running": "green", "paused": "black on yellow", "stopping": "black on red",
                "finished": "bold green", "stopped": "bold yellow", "failed": "bold red", "following": "cyan",
                "replayed": "bold green"}


class RunHeader(Widget):
    """Two lines on top of the dashboard; ``state`` is set by the app (running, paused, ...)."""

    state: reactive[str] = reactive("starting")

    def __init__(self, mode: str = "live", **kwargs) -> None:
        super().__init__(**kwargs)
        self.mode = mode
        self.run_name = "waiting for the run to start"
        self.what = ""
        self.device = ""
        self.stage = ""

    def apply(self, event: Event) -> None:
        """Take what the header shows from *event*."""
        if isinstance(event, RunStarted):
            self.run_name = event.run_name
            self.what = f"{event.strategy} · {event.model} on {event.dataset}"
            self.device = event.device
        elif isinstance(event, StageStarted):
            self.stage = f"stage {event.index}/{event.total}: {event.description or event.stage}"
        elif isinstance(event, RunFinished):
            self.stage = f"{'stopped' if event.stopped_early else 'finished'} after {event.duration_s:.1f}s"
        elif isinstance(event, RunFailed):
            self.stage = f"failed: {event.message}"
        else:
            return
        self.refresh()

    def render(self) -> Text:
        """Line 1: name, what and device; line 2: the stage and the state badge."""
        top = Text(" vistrain ", style="bold reverse")
        top.append(f" {self.run_name}", style="bold")
        if self.what:
            top.append(f"  {self.what}")
        if self.device:
            top.append(f"  [{self.device}]", style="cyan")
        if self.mode == "attach":
            top.append("  (attached, view only)", style="italic")
        bottom = Text(" ")
        bottom.append(f" {self.state.upper()} ", style=STATE_STYLES.get(self.state, ""))
        bottom.append(f"  {self.stage}" if self.stage else "")
        top.truncate(self.size.width or 80)
        bottom.truncate(self.size.width or 80)
        return Text("\n").join([top, bottom])
