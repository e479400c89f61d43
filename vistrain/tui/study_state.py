"""A ``vistrain tune`` study as the study view shows it: its trials, folded from the study's ``tune_trial`` events.

Plain Python (no Textual): the view's table, its header line and ``vistrain attach`` without a terminal all
read this one model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vistrain.events import Event, TuneTrial
from vistrain.runfolder import follow_events

# how an ended trial is labelled: the outcome where it says more than the state (diverged is recorded as pruned)
FAILED_OUTCOMES = ("preempted", "killed", "taken over")


def format_value(value: Any) -> str:
    """A sampled parameter as the table shows it: floats to four significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@dataclass
class TrialView:
    """One trial: the latest of its events, and for the trial being followed the val top-1 of its epochs so far."""

    number: int
    state: str  # running, complete, pruned, fail
    outcome: str
    params: dict[str, Any]
    run_dir: str
    value: float | None = None
    steps: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``running``, ``complete``, ``pruned``, ``diverged``, ``failed``, ``preempted``, ``killed``..."""
        if self.state == "pruned" and self.outcome == "diverged":
            return "diverged"
        if self.state == "fail":
            return self.outcome if self.outcome in FAILED_OUTCOMES else "failed"
        return self.state

    @property
    def top1(self) -> float | None:
        """The trial's value (a pruned one's: its last epoch), else the last epoch's val top-1 reported so far."""
        if self.value is not None:
            return self.value
        return self.steps[-1] if self.steps else None


class StudyTrials:
    """The trials of the study in *folder*, updated by :meth:`apply` as its ``tune_trial`` events come."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.name = self.folder.name
        self.trials: dict[int, TrialView] = {}
        self.budget = 0  # trials that must complete or be pruned (the latest event's)
        self.finished = 0
        self.best_number: int | None = None
        self.best_value: float | None = None
        self._started: list[int] = []  # trial numbers in the order their "running" events came

    def apply(self, event: TuneTrial) -> None:
        """Take one ``tune_trial`` event."""
        self.name = event.study or self.name
        self.budget = event.trials
        # several workers append to one file, each with the counts it saw: the largest is the newest
        self.finished = max(self.finished, event.finished)
        if event.best_value is not None and (self.best_value is None or event.best_value > self.best_value):
            self.best_number, self.best_value = event.best_number, event.best_value
        trial = TrialView(event.number, event.state, event.outcome, dict(event.params), event.run_dir, event.value,
                          list(event.steps))
        self.trials[event.number] = trial
        if event.state == "running":
            self._started.append(event.number)
            for other in self.trials.values():
                # a retry continues the run folder of a trial whose worker died: that trial never sent its end
                if other.state == "running" and other.number < trial.number and self.same_folder(other, trial):
                    other.state, other.outcome = "fail", "killed"

    def same_folder(self, a: TrialView, b: TrialView) -> bool:
        """Whether two trials train in one run folder (a retry and the trial it continues)."""
        return bool(a.run_dir) and self.run_dir(a) == self.run_dir(b)

    def run_dir(self, trial: TrialView) -> Path:
        """The trial's run folder. Trials always train in the study folder; the event's path may be relative to
        the directory ``vistrain tune`` was started in, so it is found by name here."""
        return self.folder / Path(trial.run_dir).name

    @property
    def done(self) -> bool:
        """Whether the budget is reached."""
        return self.budget > 0 and self.finished >= self.budget

    def counts(self) -> dict[str, int]:
        """How many trials are running, complete, pruned and failed (diverged trials count as pruned)."""
        out = {"running": 0, "complete": 0, "pruned": 0, "fail": 0}
        for trial in self.trials.values():
            out[trial.state] = out.get(trial.state, 0) + 1
        return out

    def param_keys(self) -> list[str]:
        """Every sampled parameter, in the order they first appear."""
        keys: dict[str, None] = {}
        for number in sorted(self.trials):
            keys.update(dict.fromkeys(self.trials[number].params))
        return list(keys)

    def to_follow(self) -> TrialView | None:
        """The trial whose curves to show: the best once the study is done, else the newest running trial, else
        the one that started last (between two trials)."""
        if self.done and self.best_number in self.trials:
            return self.trials[self.best_number]
        for number in reversed(self._started):
            if self.trials[number].state == "running":
                return self.trials[number]
        return self.trials[self._started[-1]] if self._started else None

    def note_progress(self, number: int, val_top1: list[float]) -> None:
        """The val top-1 of each epoch the followed trial has run so far (fractions)."""
        trial = self.trials.get(number)
        if trial is not None and trial.state == "running":
            trial.steps = list(val_top1)

    def best_line(self) -> str:
        """``best trial 3: val top-1 97.50% · 4/6 done · 1 running · 1 pruned`` (counts that are not 0; the budget
        counts complete and pruned trials)."""
        best = (f"best trial {self.best_number}: val top-1 {100 * self.best_value:.2f}%"
                if self.best_value is not None else "no complete trial yet")
        c = self.counts()
        counts = "".join(f" · {c[key]} {word}" for key, word in (("running", "running"), ("pruned", "pruned"),
                                                                 ("fail", "failed")) if c[key])
        return f"{best} · {self.finished}/{self.budget or '?'} done{counts}"

    def trial_line(self, trial: TrialView) -> str:
        """One plain line about *trial* (``vistrain attach`` without a terminal)."""
        params = " ".join(f"{k}={format_value(v)}" for k, v in trial.params.items())
        if trial.state == "running":
            return f"trial {trial.number} running: {params}"
        top1 = f" val top-1 {100 * trial.top1:.2f}%" if trial.top1 is not None else ""
        return f"trial {trial.number} {trial.label} after {len(trial.steps)} epoch(s){top1}: {params}"


def follow_when_written(path: Path, on_event: Callable[[Event], None], stop: threading.Event,
                        poll_s: float = 0.25) -> None:
    """Follow *path* until *stop*, past any run's end (:func:`~vistrain.runfolder.follow_events`), once it exists: a
    study's or a trial's ``events.jsonl`` appears only with its first event."""
    while not path.exists():
        if stop.wait(poll_s):
            return
    follow_events(path, on_event, stop, poll_s, until_end=False)
