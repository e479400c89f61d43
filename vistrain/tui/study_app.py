"""The study view: ``vistrain attach STUDY_DIR`` on a ``vistrain tune`` study folder.

Two followers run in threads: one tails the study's ``events.jsonl`` (``tune_trial`` events, posted to the UI
at once), the other the run folder of the trial whose curves are shown (the newest running trial; the best
one once the study is done). The trial's events wait in a queue for the frame timer, which draws the curves.
When the shown trial changes, the old follower is told to stop and whatever it still queues is dropped.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer

from vistrain.events import BatchEnd, EpochEnd, EvalEnd, Event, StageStarted, TuneTrial
from vistrain.runfolder import RunFolder
from vistrain.tui.messages import RunEvent
from vistrain.tui.screens import STUDY_HELP, HelpScreen
from vistrain.tui.study_state import StudyTrials, TrialView, follow_when_written, format_value
from vistrain.tui.widgets.curves import CurvesPanel
from vistrain.tui.widgets.study_header import StudyHeader
from vistrain.tui.widgets.trials import TrialsTable

CURVE_EVENTS = (StageStarted, BatchEnd, EpochEnd, EvalEnd)  # what the curves of a trial are drawn from


class StudyApp(App):
    """View of the tune study in *folder*: its trials, the best so far, the shown trial's curves (view only)."""

    CSS_PATH = [Path(__file__).with_name("app.tcss"), Path(__file__).with_name("study.tcss")]
    TITLE = "vistrain tune"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+q,ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("question_mark", "help", "Help", key_display="?"),
    ]

    def __init__(self, folder: str | Path, refresh_s: float = 1.0) -> None:
        super().__init__()
        self.study = StudyTrials(Path(folder))
        self.refresh_s = refresh_s
        self.followed: TrialView | None = None  # the trial whose curves are shown
        self.followed_dir: Path | None = None
        self._generation = 0  # which follower's events the curves take
        self._trial_events: deque[tuple[int, Event]] = deque()  # appended by the trial follower, drained by frames
        self._val_top1: dict[tuple[str, int], float] = {}  # the followed trial's val top-1 per (stage, epoch)
        self._stop = threading.Event()  # the app closes: every follower ends
        self._trial_stop = threading.Event()  # the shown trial changes: its follower ends

    def compose(self) -> ComposeResult:
        yield StudyHeader(self.study, id="study-header")
        yield TrialsTable(id="trials")
        yield CurvesPanel(id="curves")
        yield Footer()

    def on_mount(self) -> None:
        self.header, self.table, self.curves = (self.query_one(kind) for kind in (StudyHeader, TrialsTable, CurvesPanel))
        self.table.border_title = "trials"
        self.curves.border_title = "curves: waiting for a trial to start"
        self.set_interval(self.refresh_s, self._frame)
        self._follow_study()

    def on_unmount(self) -> None:
        self._stop.set()
        self._trial_stop.set()

    # -- followers (threads) -------------------------------------------------------------
    @work(thread=True, exit_on_error=False, name="follow study")
    def _follow_study(self) -> None:
        path = RunFolder(self.study.folder).events
        try:
            follow_when_written(path, self._study_event, self._stop)
        except OSError as exc:
            self.call_from_thread(self.notify, f"cannot read {path}: {exc}", severity="error", timeout=30)

    def _study_event(self, event: Event) -> None:
        if isinstance(event, TuneTrial):
            self.post_message(RunEvent(event))

    @work(thread=True, exit_on_error=False, group="trial")
    def _follow_trial(self, path: Path, generation: int, stop: threading.Event) -> None:
        def take(event: Event) -> None:
            if isinstance(event, CURVE_EVENTS):
                self._trial_events.append((generation, event))

        try:
            follow_when_written(path, take, stop)
        except OSError as exc:
            self.call_from_thread(self.notify, f"cannot read {path}: {exc}", severity="warning")

    # -- the UI thread -------------------------------------------------------------------
    def on_run_event(self, message: RunEvent) -> None:
        self.study.apply(message.event)
        self._retarget()
        self._show()

    def _retarget(self) -> None:
        """Follow the trial the study says to show; a new run folder restarts the curves."""
        self.followed = self.study.to_follow()
        if self.followed is None:
            return
        path = self.study.run_dir(self.followed)
        if path == self.followed_dir:  # the same trial, or a retry continuing its folder
            return
        self.followed_dir = path
        self._trial_stop.set()
        self._trial_stop = threading.Event()
        self._generation += 1
        self._trial_events.clear()
        self._val_top1.clear()
        self.curves.clear()
        self._follow_trial(RunFolder(path).events, self._generation, self._trial_stop)

    def _show(self) -> None:
        """Redraw the header and the table, and name the shown trial above its curves."""
        followed = self.followed
        self.header.state = "finished" if self.study.done else "following"
        self.header.refresh()
        self.table.show(self.study, followed.number if followed else None)
        if followed is not None:
            which = "best trial" if self.study.done and followed.number == self.study.best_number else "trial"
            params = " ".join(f"{k}={format_value(v)}" for k, v in followed.params.items())
            self.curves.border_title = f"{which} {followed.number} ({followed.label}): {params}"

    def _frame(self) -> None:
        """Apply the followed trial's queued events, redraw its curves, and show its epochs so far in the table."""
        if not self.curves.is_mounted:  # a tick while the app closes
            return
        progressed = False
        while self._trial_events:
            generation, event = self._trial_events.popleft()
            if generation != self._generation:
                continue  # queued by the follower of a trial no longer shown
            self.curves.apply(event)
            if isinstance(event, EvalEnd) and event.split == "val" and event.epoch > 0:
                self._val_top1[(event.stage, event.epoch)] = event.top1  # a resumed epoch replaces the first
                progressed = True
        self.curves.flush()
        if progressed and self.followed is not None and self.followed.state == "running":
            self.study.note_progress(self.followed.number, list(self._val_top1.values()))
            self._show()

    # -- keys ------------------------------------------------------------------------------
    def action_help(self) -> None:
        """Show the keys (and that a study cannot be paused or saved from here)."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(attached=True, text=STUDY_HELP))
