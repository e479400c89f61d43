"""Log: warnings, messages, checkpoints and stage changes, stamped with time since the run started."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from vistrain.events import (
    CheckpointSaved, Event, ImagesSkipped, Log, RunFailed, RunFinished, RunStarted, StageStarted, Unknown,
)
from vistrain.listeners.console import result_summary, skipped_line

LEVEL_STYLES = {"debug": "dim", "info": "", "warning": "yellow", "error": "bold red"}


MAX_LINES = 500


class EventLog(Widget):
    """The newest lines, wrapped to the current width on every draw (so a resize re-wraps them).

    Times are relative to RunStarted, so replays and snapshots read the same.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.t0: float | None = None
        self.lines_written: list[str] = []
        self._texts: list[Text] = []

    def say(self, message: str, style: str = "", at: float | None = None) -> None:
        """Write one line, prefixed with ``+seconds`` when *at* is known."""
        stamp = f"+{at - self.t0:.1f}s " if at is not None and self.t0 is not None else ""
        self.lines_written.append(stamp + message)
        self._texts.append(Text(stamp, style="dim") + Text(message, style=style))
        del self._texts[:-MAX_LINES], self.lines_written[:-MAX_LINES]
        self.refresh()

    def render(self) -> Text:
        """As many of the newest lines as fit, wrapped to the panel width."""
        width, height = max(10, self.size.width), max(1, self.size.height)
        shown: list[Text] = []
        for text in reversed(self._texts):
            shown[:0] = list(text.wrap(self.app.console, width))
            if len(shown) >= height:
                break
        return Text("\n").join(shown[-height:])

    def apply(self, event: Event) -> None:
        """Write a line for the events a person should notice."""
        if isinstance(event, RunStarted):
            self.t0 = event.time
            self.say(f"run {event.run_name} → {event.run_dir}", at=event.time)
        elif isinstance(event, StageStarted):
            params = f", {event.num_params:,} params" if event.num_params else ""
            self.say(f"stage {event.index}/{event.total}: {event.description or event.stage} "
                     f"({event.epochs} epochs × {event.steps_per_epoch} steps{params})", "bold", event.time)
        elif isinstance(event, Log) and event.level != "debug":
            prefix = "" if event.level == "info" else f"{event.level}: "
            self.say(prefix + event.message, LEVEL_STYLES.get(event.level, ""), event.time)
        elif isinstance(event, ImagesSkipped):
            self.say(f"warning: {skipped_line(event)}", LEVEL_STYLES["warning"], event.time)
        elif isinstance(event, CheckpointSaved) and event.reason in ("user", "stop"):
            self.say(f"checkpoint saved ({event.reason}): {event.path}", "green", event.time)
        elif isinstance(event, RunFinished):
            word = "stopped" if event.stopped_early else "finished"  # the same summary as the console's last line
            self.say(f"run {word} in {event.duration_s:.1f}s{result_summary(event.metrics)}", "bold green", event.time)
        elif isinstance(event, RunFailed):
            self.say(f"run failed: {event.message}", "bold red", event.time)
        elif isinstance(event, Unknown):
            self.say(f"(event of unknown kind {event.original_kind!r} skipped)", "dim", event.time)
