"""Read a run folder (finished, failed, killed or still going) into one plain summary.

Only the files a run writes are used: ``events.jsonl`` (a torn last line from a killed run is
skipped), ``config.yaml`` and ``checkpoints/``. Nothing here imports torch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vistrain import runfolder
from vistrain.events import (
    AugmentTrial, BatchEnd, CheckpointSaved, ConsistencyStats, EpochEnd, EvalEnd, Event, ImagesSkipped,
    PseudoLabelStats, RunFailed, RunFinished, RunStarted, StageStarted,
)
from vistrain.runfolder import RunFolder, read_events

LIVE_WINDOW_S = 120.0  # an unfinished run whose events file changed this recently counts as still going


@dataclass
class StageData:
    """One stage's curves and checkpoints, in the order the run emitted them."""

    name: str
    started: StageStarted | None = None
    epochs: list[EpochEnd] = field(default_factory=list)
    evals: list[EvalEnd] = field(default_factory=list)  # val evaluations after epochs (epoch > 0)
    steps: list[BatchEnd] = field(default_factory=list)
    checkpoints: list[CheckpointSaved] = field(default_factory=list)
    rounds: list[PseudoLabelStats] = field(default_factory=list)  # rounds emitted while this stage was current
    consistency: list[ConsistencyStats] = field(default_factory=list)  # a consistency stage's, by global step
    averaged: EvalEnd | None = None  # checkpoint.average_last: the val evaluation of the averaged weights

    @property
    def best_eval(self) -> EvalEnd | None:
        """The val evaluation with the highest top-1 (the later one on a tie). best.pt is chosen by the run's
        ``checkpoint.best`` rule and need not be this epoch: see :attr:`best_saved`."""
        return max(reversed(self.evals), key=lambda e: e.top1, default=None)

    @property
    def best_saved(self) -> CheckpointSaved | None:
        """The newest best checkpoint this stage wrote (its epoch and val top-1 are the chosen ones)."""
        best = [c for c in self.checkpoints if c.is_best]
        return best[-1] if best else None

    @property
    def best_is_average(self) -> bool:
        """Whether the stage's best checkpoint holds the averaged weights (written after their evaluation)."""
        saved = self.best_saved
        return self.averaged is not None and saved is not None and saved.time >= self.averaged.time

    @property
    def best_checkpoint(self) -> str | None:
        """File name of the newest best checkpoint this stage wrote."""
        saved = self.best_saved
        return Path(saved.path).name if saved else None

    def samples_per_s(self) -> float | None:
        """Training throughput over finished epochs."""
        seconds = sum(e.duration_s for e in self.epochs)
        return sum(e.samples for e in self.epochs) / seconds if seconds > 0 else None


@dataclass
class RunData:
    """Everything a report or a comparison needs from one run folder."""

    path: Path
    config: dict[str, Any]
    config_text: str
    started: RunStarted | None = None
    finished: RunFinished | None = None
    failed: RunFailed | None = None
    stages: list[StageData] = field(default_factory=list)
    rounds: list[PseudoLabelStats] = field(default_factory=list)
    trials: list[AugmentTrial] = field(default_factory=list)
    tests: list[EvalEnd] = field(default_factory=list)  # evaluations on the held-out test split
    unreadable: dict[str, set[str]] = field(default_factory=dict)  # split -> images skipped as unreadable
    first_time: float | None = None
    last_time: float | None = None
    sessions: list[tuple[float, float]] = field(default_factory=list)  # (start, last event) per start or resume
    events_mtime: float | None = None
    skipped_lines: int = 0

    @property
    def name(self) -> str:
        """The run's name (its folder name)."""
        return self.started.run_name if self.started else self.path.name

    @property
    def status(self) -> str:
        """finished, stopped, failed, running, or killed (no final event and its process is gone)."""
        if self.finished is not None:
            return "stopped" if self.finished.stopped_early else "finished"
        if self.failed is not None:
            return "failed"
        alive = self._process_alive()
        if alive is None:  # another machine, or an older run without a pid: judge by the last write
            alive = self.events_mtime is not None and time.time() - self.events_mtime < LIVE_WINDOW_S
        return "running" if alive else "killed"

    def _process_alive(self) -> bool | None:
        """Whether the process that wrote the run still runs; None when that cannot be told from here."""
        import platform

        import psutil

        env = self.started.environment if self.started else {}
        if not env.get("pid") or env.get("host") != platform.node():
            return None
        try:
            proc = psutil.Process(int(env["pid"]))
            # a recycled pid belongs to a process started after the run began
            return proc.create_time() <= self.started.time + 1.0 and proc.status() != psutil.STATUS_ZOMBIE
        except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
            return False

    @property
    def wall_s(self) -> float | None:
        """Time spent running, summed over sessions (a resumed run's pause is not counted)."""
        if not self.sessions:
            return None if self.first_time is None else (self.last_time or self.first_time) - self.first_time
        spans = [end - start for start, end in self.sessions]
        if self.finished is not None:  # the last session's own measure
            spans[-1] = self.finished.duration_s
        return sum(spans)

    def samples_per_s(self) -> float | None:
        """Training throughput over all finished epochs of all stages."""
        seconds = sum(e.duration_s for s in self.stages for e in s.epochs)
        samples = sum(e.samples for s in self.stages for e in s.epochs)
        return samples / seconds if seconds > 0 else None

    def final_eval(self) -> EvalEnd | None:
        """The last val evaluation of the run (the last stage's latest epoch)."""
        evals = [e for s in self.stages for e in s.evals]
        return evals[-1] if evals else None

    def best_eval(self) -> EvalEnd | None:
        """The val evaluation with the highest top-1 over all stages (the later one on a tie)."""
        evals = [e for s in self.stages for e in s.evals]
        return max(reversed(evals), key=lambda e: e.top1, default=None)

    def checkpoint_path(self, name: str) -> Path:
        """A checkpoint file of this run by file name."""
        return RunFolder(self.path).checkpoint(name)

    def final_checkpoint(self) -> Path | None:
        """The checkpoint that stands for the run's result: the last stage's best, else best.pt, else last.pt."""
        for stage in reversed(self.stages):
            name = stage.best_checkpoint
            if name and self.checkpoint_path(name).exists():
                return self.checkpoint_path(name)
        for name in ("best.pt", "last.pt"):
            if self.checkpoint_path(name).exists():
                return self.checkpoint_path(name)
        return None

    @property
    def consistency_stages(self) -> list[StageData]:
        """The stages that trained with consistency regularisation (FixMatch, FlexMatch), in order."""
        return [s for s in self.stages if s.consistency]

    @property
    def multi_stage(self) -> bool:
        """True when the run trained more than one stage."""
        return len(self.stages) > 1 or any(s.started and s.started.total > 1 for s in self.stages)


def _read_config(run_dir: Path, started: RunStarted | None) -> tuple[dict[str, Any], str]:
    import yaml

    path = RunFolder(run_dir).config
    if path.exists():
        text = path.read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            data = None
        if isinstance(data, dict):
            return data, text
    if started is not None and started.config:
        return dict(started.config), yaml.safe_dump(started.config, sort_keys=False)
    return {}, ""


def _replace_from(items: list, item, key) -> None:
    """Append *item*, first dropping items at or after its position: a resumed run replays what the
    killed one had logged past its checkpoint, and the replay is what the checkpoints hold."""
    k = key(item)
    while items and key(items[-1]) >= k:
        items.pop()
    items.append(item)


def load_run(run_dir: str | Path) -> RunData:
    """Read a run folder; a folder without ``events.jsonl`` is a DataError naming what is expected."""
    folder = runfolder.existing(run_dir)
    run_dir, events_path = folder.path, folder.events
    events, skipped = read_events(events_path)
    run = RunData(path=run_dir, config={}, config_text="", skipped_lines=skipped,
                  events_mtime=events_path.stat().st_mtime)
    by_name: dict[str, StageData] = {}
    current: StageData | None = None

    def stage(name: str) -> StageData:
        if name not in by_name:
            by_name[name] = StageData(name)
            run.stages.append(by_name[name])
        return by_name[name]

    for ev in events:
        if ev.time:
            run.first_time = ev.time if run.first_time is None else min(run.first_time, ev.time)
            run.last_time = ev.time if run.last_time is None else max(run.last_time, ev.time)
            if run.sessions and not isinstance(ev, RunStarted):
                run.sessions[-1] = (run.sessions[-1][0], max(run.sessions[-1][1], ev.time))
        if isinstance(ev, RunStarted):  # the first start, or a resume appending to the same folder
            run.started, run.finished, run.failed = ev, None, None
            run.sessions.append((ev.time, ev.time))
        elif isinstance(ev, RunFinished):
            run.finished = ev
        elif isinstance(ev, RunFailed):
            run.failed = ev
        elif isinstance(ev, StageStarted):
            current = stage(ev.stage)
            current.started = current.started or ev
        elif isinstance(ev, EpochEnd):
            current = stage(ev.stage)
            _replace_from(current.epochs, ev, lambda e: e.epoch)
        elif isinstance(ev, EvalEnd) and ev.split == "val" and ev.epoch > 0:
            _replace_from(stage(ev.stage).evals, ev, lambda e: e.epoch)
        elif isinstance(ev, EvalEnd) and ev.split == "val-average":
            stage(ev.stage).averaged = ev
        elif isinstance(ev, EvalEnd) and ev.split == "test":
            run.tests.append(ev)
        elif isinstance(ev, BatchEnd):
            current = stage(ev.stage)
            _replace_from(current.steps, ev, lambda b: (b.epoch, b.step))
        elif isinstance(ev, CheckpointSaved):
            if current is not None:
                current.checkpoints.append(ev)
        elif isinstance(ev, ConsistencyStats):
            _replace_from(stage(ev.stage).consistency, ev, lambda c: c.global_step)
        elif isinstance(ev, PseudoLabelStats):
            run.rounds.append(ev)
            if current is not None:
                current.rounds.append(ev)
        elif isinstance(ev, AugmentTrial):
            run.trials.append(ev)
        elif isinstance(ev, ImagesSkipped):
            run.unreadable.setdefault(ev.split, set()).update(ev.paths)
    run.config, run.config_text = _read_config(run_dir, run.started)
    return run
