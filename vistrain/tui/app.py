"""The dashboard app: panels fed by engine events, live from a training thread or from events.jsonl."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer

from vistrain.events import (AugmentTrial, BatchEnd, ConsistencyStats, Event, PseudoLabelStats, RunFailed, RunFinished,
                             RunStarted, StageStarted, SystemSample)
from vistrain.runfolder import follow_events
from vistrain.tui.bridge import DashboardBridge
from vistrain.tui.messages import RunEnded, RunEvent
from vistrain.tui.screens import ConfirmQuitScreen, HelpScreen
from vistrain.tui.widgets.augment import AugmentLeaderboard
from vistrain.tui.widgets.consistency import ConsistencyPanel
from vistrain.tui.widgets.curves import CurvesPanel
from vistrain.tui.widgets.header import RunHeader
from vistrain.tui.widgets.log import EventLog
from vistrain.tui.widgets.progress import ProgressPanel
from vistrain.tui.widgets.pseudo import PseudoLabelPanel
from vistrain.tui.widgets.system import SystemPanel

Job = Callable[[DashboardBridge, Any], Any]  # (listener, control) -> RunResult
# Events that only feed the panels redrawn by the frame timer: they wait for the next frame (or the next
# other event) instead of waking the UI thread each. A message per batch cost about 0.7 ms of the
# dashboard's CPU, taken from the training beside it. A consistency stage's statistics come with its batches.
FRAME_EVENTS = (BatchEnd, SystemSample, ConsistencyStats)


class Panels(NamedTuple):
    """The dashboard's panels, looked up once (every event and frame goes through them)."""

    header: RunHeader
    progress: ProgressPanel
    system: SystemPanel
    curves: CurvesPanel
    log: EventLog
    pseudo: PseudoLabelPanel
    consistency: ConsistencyPanel
    augment: AugmentLeaderboard


class DashboardApp(App):
    """Live dashboard of one run.

    ``job`` runs the training in a thread worker (live mode, keys control it through ``control``);
    ``events_path`` follows an events.jsonl (attach mode); with neither, events come from :meth:`feed`.
    """

    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute, so subclasses elsewhere find it
    TITLE = "vistrain"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]
    BINDINGS = [
        Binding("q", "request_quit", "Quit"),
        Binding("ctrl+q,ctrl+c", "request_quit", "Quit", show=False, priority=True),
        Binding("p", "toggle_pause", "Pause/resume"),
        Binding("s", "save_now", "Save now"),
        Binding("question_mark", "help", "Help", key_display="?"),
    ]

    def __init__(self, job: Job | None = None, control: Any = None, events_path: Path | None = None,
                 refresh_s: float = 2.0) -> None:
        super().__init__()
        self.job, self.control, self.events_path = job, control, events_path
        self.refresh_s = refresh_s
        self.mode = "live" if job is not None else ("attach" if events_path is not None else "replay")
        self.result: Any = None
        self.error: BaseException | None = None
        self.run_over = False
        self.quitting = False
        self.job_done = threading.Event()
        self._stop_follow = threading.Event()
        self._pending: deque[Event] = deque()  # FRAME_EVENTS received since the last drain, in order
        self._at_once = False  # while paused, FRAME_EVENTS are applied as they come
        self._panels: Panels | None = None

    def compose(self) -> ComposeResult:
        yield RunHeader(mode=self.mode, id="header")
        with Horizontal(id="top"):
            yield ProgressPanel(id="progress")
            yield SystemPanel(id="system")
        yield CurvesPanel(id="curves")
        with Horizontal(id="bottom"):
            yield EventLog(id="log")
            yield PseudoLabelPanel(id="pseudo")
            yield ConsistencyPanel(id="consistency")
            yield AugmentLeaderboard(id="augment")
        yield Footer()

    def on_mount(self) -> None:
        for panel_id, title in (("progress", "progress"), ("system", "system"), ("log", "log")):
            self.query_one(f"#{panel_id}").border_title = title
        self.query_one("#pseudo").display = False
        self.query_one("#consistency").display = False
        self.query_one("#augment").display = False
        # One frame timer for the high-rate panels: progress and system redraw every refresh_s, the curves
        # every other frame. A redraw takes one of the cores training wants: on 2 cores, 1 s frames cost
        # 2-6 % of a 10-epoch run, 2 s frames about nothing (benchmarks/README.md, "Dashboard overhead").
        self._frames = 0
        self.set_interval(self.refresh_s, self._frame)
        if self.mode == "live":
            # start once the first frame is drawn, so the app's start-up work does not contend with training
            self.call_after_refresh(self._train)
        elif self.mode == "attach":
            self.header.state = "following"
            self._follow()

    def _frame(self) -> None:
        if self.closing or not self.query(ProgressPanel):  # a tick while the app closes, after its panels went
            return
        self._frames += 1
        self._drain()
        panels = self.panels
        panels.progress.flush()
        panels.system.flush()
        panels.consistency.flush()
        if self._frames % 2 == 0 or not panels.curves.drawn_epochs:  # the first epoch's points as soon as they come
            panels.curves.flush()

    def on_unmount(self) -> None:
        # A UI that goes away while training still runs must not leave it running without a checkpoint.
        self._stop_follow.set()
        if self.control is not None and self.mode == "live" and not self.job_done.is_set():
            self.control.request_stop()

    @property
    def panels(self) -> Panels:
        """The panels (looked up at the first use)."""
        if self._panels is None:
            self._panels = Panels(*(self.query_one(kind) for kind in (RunHeader, ProgressPanel, SystemPanel, CurvesPanel,
                                                                      EventLog, PseudoLabelPanel, ConsistencyPanel,
                                                                      AugmentLeaderboard)))
        return self._panels

    @property
    def header(self) -> RunHeader:
        """The header panel."""
        return self.panels.header

    # -- event sources -----------------------------------------------------------------
    @work(thread=True, exit_on_error=False, name="training")
    def _train(self) -> None:
        try:
            result = self.job(DashboardBridge(self.receive), self.control)
        except BaseException as exc:  # noqa: BLE001 - handed to the UI thread, re-raised by run_with_dashboard
            self.post_message(RunEnded(error=exc))
        else:
            self.post_message(RunEnded(result=result))
        finally:
            self.job_done.set()

    @work(thread=True, exit_on_error=False, name="follow")
    def _follow(self) -> None:
        try:
            follow_events(self.events_path, self.receive, self._stop_follow)
        except OSError as exc:
            self.post_message(RunEvent(RunFailed(run_name="", error=type(exc).__name__,
                                                 message=f"cannot read {self.events_path}: {exc}")))

    def receive(self, event: Event) -> None:
        """Take one event from any thread: batch progress and system samples are applied at the next
        frame (at once while paused), every other event at once (after those before it, so the order
        is kept)."""
        if isinstance(event, FRAME_EVENTS) and not self._at_once:
            self._pending.append(event)
        else:
            self.post_message(RunEvent(event))

    def _drain(self) -> None:
        """Apply the events waiting for a frame (UI thread)."""
        while self._pending:
            self.apply_event(self._pending.popleft())

    def feed(self, events: Iterable[Event]) -> None:
        """Apply recorded events directly (on the UI thread); used by replays and tests."""
        for event in events:
            self.apply_event(event)
        for panel in (self.panels.progress, self.panels.system, self.panels.curves, self.panels.consistency):
            panel.flush()

    # -- messages ------------------------------------------------------------------------
    def on_run_event(self, message: RunEvent) -> None:
        self._drain()
        self.apply_event(message.event)

    def apply_event(self, event: Event) -> None:
        """Route one event to every panel and track the run state."""
        for panel in self.panels:
            panel.apply(event)
        if isinstance(event, (PseudoLabelStats, ConsistencyStats, AugmentTrial, StageStarted)):
            panels = self.panels  # set_class does nothing when the class is already as wanted
            panels.log.parent.set_class(panels.pseudo.display or panels.consistency.display or panels.augment.display,
                                        "-side")
        if isinstance(event, RunStarted) and self.mode != "attach":
            self.header.state = "running"
        elif isinstance(event, RunFinished):
            self.run_over = True
            self.header.state = "stopped" if event.stopped_early else "finished"
            self.panels.curves.flush()
            self.panels.consistency.flush()
            self.refresh_bindings()  # only on state changes: it rebuilds the footer
        elif isinstance(event, RunFailed):
            self.run_over = True
            self.header.state = "failed"
            self.refresh_bindings()

    def on_run_ended(self, message: RunEnded) -> None:
        self._drain()
        self.run_over = True
        if message.error is not None:
            self.error = message.error
            self.exit(return_code=2)
            return
        self.result = message.result
        if self.closing:  # closed mid-run: the stop it asked for has ended the run
            return
        if self.quitting or isinstance(self.screen, ConfirmQuitScreen):  # a q as the run ended: nothing left to stop
            self.exit(self.result)
        else:
            self.notify("Training finished. Press q to close the dashboard.", timeout=8)
        self.refresh_bindings()

    @property
    def closing(self) -> bool:
        """True once the app is shutting down and its screens are gone; the run's last events and its
        end can still arrive then (closing mid-run stops it with a checkpoint)."""
        try:
            return not self.screen_stack
        except KeyError:  # no current mode any more
            return True

    def refresh_bindings(self) -> None:
        """Rebuild the footer's keys (on state changes); nothing while the app is closing."""
        if not self.closing:
            super().refresh_bindings()

    # -- keys ------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Training keys are shown disabled when there is no live run to control."""
        if action in ("toggle_pause", "save_now"):
            return None if self.mode != "live" or self.run_over or self.quitting else True
        return True

    def action_request_quit(self) -> None:
        """Ask, then stop with a checkpoint; with nothing running, just close."""
        if self.mode != "live" or self.run_over:
            self.exit(self.result)
        elif self.quitting:
            self.notify("Stopping: waiting for the checkpoint to be written…")
        elif not isinstance(self.screen, ConfirmQuitScreen):
            self.push_screen(ConfirmQuitScreen(), self._quit_answered)

    def _quit_answered(self, stop: bool | None) -> None:
        if stop and not self.run_over:
            self.quitting = True
            self.control.request_stop()
            self.header.state = "stopping"
            self.panels.log.say("stop requested: saving a checkpoint…", "yellow")
            self.refresh_bindings()
        elif stop:
            self.exit(self.result)

    def action_toggle_pause(self) -> None:
        """Pause or resume the training loop."""
        if self.check_action("toggle_pause", ()):
            paused = self.control.toggle_pause()
            self._at_once = paused  # nothing trains while paused: show each event as it comes
            if paused:
                self._drain()
                self.panels.progress.flush()
            self.header.state = "paused" if paused else "running"
            self.panels.log.say("paused" if paused else "resumed", "yellow")

    def action_save_now(self) -> None:
        """Ask the loop to write a checkpoint after the current step."""
        if self.check_action("save_now", ()):
            self.control.request_save()
            self.notify("A checkpoint will be saved after the current step.")

    def action_help(self) -> None:
        """Show the keys."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(attached=self.mode == "attach"))
