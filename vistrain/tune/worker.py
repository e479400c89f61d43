"""One ``vistrain tune`` worker: take trials from the study until it has its budget, each an ordinary run.

A trial's sampled values are settings on top of the study's config; it trains in the study folder's
``trial-NNNN`` (a RandAugment policy as that folder's ``policy.yaml``), reports each epoch's val top-1 to the
pruner, and ends complete (value: the run's best val top-1, the one ``best.pt`` was chosen by), pruned
(stopped after the epoch the pruner judged), diverged (a NaN loss: recorded as pruned, so the sampler learns
the region is bad), preempted (SIGTERM/SIGUSR1: the run saved a checkpoint; the trial is failed and a retry
enqueued that resumes it) or failed. The held-out test split is never read to rank trials.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vistrain.config import Config, ConfigLayers, build_config
from vistrain.errors import NonFiniteLossError, VistrainError
from vistrain.events import EvalEnd, Event, TuneTrial
from vistrain.hookspecs import hookimpl
from vistrain.tune import study as st
from vistrain.tune.space import Space, describe


@dataclass
class TuneSettings:
    """Everything a worker needs; the same on every worker of a study."""

    name: str
    folder: Path
    storage: str
    space: Space
    config: dict[str, Any]  # the base config (resolved, JSON form)
    trials: int
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int = 0
    heartbeat: float = 10.0
    grace: float = 120.0
    poll: float = 2.0
    preset: str = ""  # "augment-search": the trials' policy.yaml is the study's product (see policy_search)
    prune_after: int = 0  # no pruning before this epoch

    def __post_init__(self) -> None:
        from vistrain.errors import ConfigError

        if self.trials < 1:
            raise ConfigError(f"--trials must be 1 or more, got {self.trials}", hint="e.g. --trials 20")
        if self.sampler not in st.SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}", hint=f"use one of {', '.join(st.SAMPLERS)}")
        if self.pruner not in st.PRUNERS:
            raise ConfigError(f"unknown pruner {self.pruner!r}", hint=f"use one of {', '.join(st.PRUNERS)}")

    def study_record(self) -> dict[str, Any]:
        """What ``study.yaml`` holds (and a joining worker must agree with)."""
        return {"study": self.name, "space": self.space.to_mapping(), "config": self.config,
                "sampler": self.sampler, "pruner": self.pruner, "seed": self.seed, "preset": self.preset,
                "prune_after": self.prune_after}


@dataclass
class TrialOutcome:
    """How one trial ended."""

    number: int
    state: str  # complete, pruned, fail
    outcome: str
    value: float | None
    params: dict[str, Any]
    run_dir: Path
    steps: list[float] = field(default_factory=list)
    duration_s: float = 0.0
    message: str = ""


def _trial_control(outer):
    """A run control of the trial's own (the pruner or a lost heartbeat stop this trial alone) that also stops
    when *outer* (the worker's, set by SIGTERM/SIGUSR1) does."""
    from vistrain.engine.control import TrainControl

    class TrialControl(TrainControl):
        @property
        def stop_requested(self) -> bool:
            return self._stop or outer.stop_requested

    return TrialControl()


class _PrunerFeed:
    """Listener of a trial's run: each epoch's val top-1 goes to the trial; a prune asks the run to stop."""

    def __init__(self, trial, control, previous: list[float]):
        self.trial, self.control = trial, control
        self.steps = list(previous)
        self.pruned = False
        for step, value in enumerate(self.steps, start=1):  # a resumed trial's earlier epochs, for the pruner
            trial.report(value, step)

    @hookimpl
    def on_event(self, event: Event) -> None:
        if isinstance(event, EvalEnd) and event.split == "val" and event.epoch > 0:
            self.steps.append(float(event.top1))
            self.trial.report(float(event.top1), len(self.steps))
            if not self.pruned and self.trial.should_prune():
                self.pruned = True
                self.control.request_stop()  # after this epoch's checkpoint


def _previous_steps(run_dir: Path) -> list[float]:
    """Val top-1 of each epoch a trial's run folder already has (a resumed trial)."""
    from vistrain.runfolder import RunFolder, read_events

    events_path = RunFolder(run_dir).events
    if not events_path.exists():
        return []
    by_key: dict[tuple[str, int], float] = {}
    for ev in read_events(events_path)[0]:
        if isinstance(ev, EvalEnd) and ev.split == "val" and ev.epoch > 0:
            by_key[(ev.stage, ev.epoch)] = float(ev.top1)  # a resumed epoch's evaluation replaces the first
    return list(by_key.values())


def trial_config(settings: TuneSettings, values: dict[str, Any], run_dir: Path) -> Config:
    """The study's config with *values* set (a RandAugment policy written to *run_dir*/policy.yaml)."""
    from vistrain.augment.pipeline import write_policy

    layers = []
    for key, value in values.items():
        if isinstance(value, dict) and value.get("op") == "rand":
            param = next(p for p in settings.space.params if p.key == key)
            base = param.options.get("base")
            path = run_dir / "policy.yaml"
            write_policy(path, value, [s for s in str(base).split(",") if s.strip()] if base else [])
            value = str(path)
        layers.append((tuple(key.split(".")), value))
    layers += [(("output", "dir"), str(run_dir.parent)), (("output", "name"), run_dir.name)]
    return build_config(ConfigLayers(settings.config, tuple(layers), f"trial in {run_dir.name}"))


class Worker:
    """Runs trials of one study (see the module); *listeners* see every trial's run events; *on_trial* gets
    each ``TuneTrial`` event (also written to the study's ``events.jsonl``)."""

    def __init__(self, settings: TuneSettings, *, control, listeners: list[Any] | None = None,
                 on_trial: Callable[[TuneTrial], None] | None = None, log: Callable[[str], None] = print):
        self.settings, self.control = settings, control
        self.listeners = list(listeners or [])
        self.on_trial, self.log = on_trial, log
        self.worker = st.WorkerId.here()
        self.preempted = False
        self.outcomes: list[TrialOutcome] = []
        self._study = None
        self._pool: list[str] = []

    # --- the study -------------------------------------------------------------------------------------------

    def study(self):
        if self._study is None:
            from vistrain.augment.randaugment import default_pool

            from vistrain.tune.summary import check_study_file

            s = self.settings
            check_study_file(s)  # study.yaml: a study's settings, and a refusal of other ones
            url = st.storage_url(s.storage, s.folder)
            study = st.open_study(s.name, url, None, None)
            # the sampler's seed depends on the trials so far; sampler and pruner belong to this process's study
            study.sampler = st.make_sampler(s.sampler, self.worker.sampler_seed(s.seed, len(study.trials)))
            study.pruner = st.make_pruner(s.pruner, int(s.config.get("train", {}).get("epochs", 1)), s.prune_after)
            self._study = study
            self._pool = default_pool()
        return self._study

    def _emit(self, outcome: TrialOutcome | None = None, *, trial=None, state: str = "running") -> None:
        from vistrain.listeners.jsonl import JsonlWriter
        from vistrain.runfolder import RunFolder

        study = self.study()
        best_number = best_value = None
        try:
            best = study.best_trial
            best_number, best_value = best.number, best.value
        except ValueError:
            pass
        if outcome is not None:
            event = TuneTrial(study=self.settings.name, number=outcome.number, state=outcome.state,
                              params=st.json_safe(outcome.params), trials=self.settings.trials,
                              finished=st.finished_count(study), run_dir=str(outcome.run_dir), value=outcome.value,
                              outcome=outcome.outcome, steps=outcome.steps, best_number=best_number,
                              best_value=best_value, worker=str(self.worker), duration_s=outcome.duration_s,
                              message=outcome.message)
        else:
            event = TuneTrial(study=self.settings.name, number=trial.number, state=state,
                              params=st.json_safe(trial.params), trials=self.settings.trials,
                              finished=st.finished_count(study), run_dir=str(self._run_dir(trial)),
                              best_number=best_number, best_value=best_value, worker=str(self.worker))
        writer = JsonlWriter(RunFolder(self.settings.folder).events)
        try:
            writer.on_event(event)
        finally:
            writer.close()
        if self.on_trial is not None:
            self.on_trial(event)

    def _run_dir(self, trial) -> Path:
        return self.settings.folder / f"trial-{st.origin_of(trial):04d}"

    # --- the loop --------------------------------------------------------------------------------------------

    def run(self) -> list[TrialOutcome]:
        """Take trials until the study has its budget (or a stop signal); returns this worker's trials."""
        study = self.study()
        s = self.settings
        while not self.control.stop_requested:
            for number in st.reap_stale(study, s.grace):  # a killed worker's trial: failed once, retried
                dead = study.trials[number]
                self._emit(TrialOutcome(number, "fail", "killed", None, dict(dead.params), self._run_dir(dead),
                                        [dead.intermediate_values[k] for k in sorted(dead.intermediate_values)]))
                self.log(f"trial {number}: its worker stopped sending heartbeats; failed, a retry is queued")
            if st.finished_count(study) >= s.trials:
                break
            if len(st.counted(study)) >= s.trials and not st.waiting_count(study):
                time.sleep(s.poll)  # the rest of the budget runs elsewhere; stay in case a worker dies
                continue
            trial = study.ask()
            if not st.within_budget(study, trial.number, s.trials):  # another worker asked at the same moment
                trial.set_user_attr(st.OVER_BUDGET, True)
                study.tell(trial, state=st.trial_states().FAIL)
                continue
            outcome = self.run_trial(trial)
            self.outcomes.append(outcome)
            self._emit(outcome)
            if outcome.outcome == "preempted":
                self.preempted = True
                break
        return self.outcomes

    def run_trial(self, trial) -> TrialOutcome:
        """Run one trial's training and tell the study how it ended."""
        from vistrain.checkpoint import find_resume_checkpoint
        from vistrain.runner import execute

        study = self.study()
        run_dir = self._run_dir(trial)
        run_dir.mkdir(parents=True, exist_ok=True)
        trial.set_user_attr("vistrain_run_dir", str(run_dir))
        trial.set_user_attr("vistrain_worker", str(self.worker))
        t0 = time.perf_counter()
        control = _trial_control(self.control)
        lost: list[bool] = []

        def on_lost() -> None:  # another worker judged this one dead and took the trial: stop it, go on
            lost.append(True)
            control.request_stop()

        with st.Heartbeat(study, trial._trial_id, self.settings.heartbeat, on_lost=on_lost):
            values = self.settings.space.sample(trial, self._pool)
            cfg = trial_config(self.settings, values, run_dir)
            resume = None
            if (run_dir / "checkpoints").is_dir():
                resume, _path, _skipped = find_resume_checkpoint(run_dir / "checkpoints")
            feed = _PrunerFeed(trial, control, _previous_steps(run_dir) if resume is not None else [])
            self._emit(trial=trial)
            where = f", resuming {run_dir.name}" if resume is not None else ""
            self.log(f"trial {trial.number} ({self.worker}){where}: " + describe(trial.params))
            try:
                result = execute(cfg, listeners=[feed, *self.listeners], control=control, resume=resume,
                                 run_dir=run_dir)
            except NonFiniteLossError as exc:
                return self._end(trial, "pruned", "diverged", None, run_dir, feed, t0, str(exc))
            except VistrainError as exc:
                self._end(trial, "fail", "failed", None, run_dir, feed, t0, str(exc))
                raise
            except KeyboardInterrupt:  # Ctrl-C: like a preemption, the trial continues when the study does
                outcome = self._end(trial, "fail", "interrupted", None, run_dir, feed, t0)
                if outcome.outcome == "interrupted":
                    st.enqueue_retry(study, study._storage.get_trial(trial._trial_id), "interrupted")
                raise
            except BaseException as exc:
                self._end(trial, "fail", "failed", None, run_dir, feed, t0, f"{type(exc).__name__}: {exc}")
                raise
        if lost:
            return self._end(trial, "fail", "taken over", None, run_dir, feed, t0)
        if feed.pruned:
            return self._end(trial, "pruned", "pruned", None, run_dir, feed, t0)
        if result.stopped_early:  # a stop signal: the run saved a checkpoint, a retry will continue it
            outcome = self._end(trial, "fail", "preempted", None, run_dir, feed, t0)
            if outcome.outcome == "preempted":
                st.enqueue_retry(study, study._storage.get_trial(trial._trial_id), "preempted")
            return outcome
        value = float(result.metrics.get("best_val_top1", result.metrics.get("val_top1", 0.0)))
        return self._end(trial, "complete", "completed", value, run_dir, feed, t0)

    def _end(self, trial, state: str, outcome: str, value, run_dir: Path, feed: _PrunerFeed, t0: float,
             message: str = "") -> TrialOutcome:
        from optuna.exceptions import UpdateFinishedTrialError

        study = self.study()
        trial.set_user_attr(st.OUTCOME, outcome)
        if message:
            trial.set_user_attr("vistrain_message", message[:500])
        try:
            if state == "complete":
                study.tell(trial, value)
            else:
                study.tell(trial, state=getattr(st.trial_states(), state.upper()))
        except (UpdateFinishedTrialError, ValueError):  # another worker found our heartbeat too old and took it
            outcome, state = "taken over", "fail"
        result = TrialOutcome(trial.number, state, outcome, value if state == "complete" else
                              (feed.steps[-1] if feed.steps and state == "pruned" else None),
                              dict(trial.params), run_dir, list(feed.steps), time.perf_counter() - t0, message)
        shown = f"val top-1 {100 * value:.2f}%" if value is not None else f"{outcome}"
        if state == "pruned" and feed.steps:
            shown = f"{outcome} after epoch {len(feed.steps)} (val top-1 {100 * feed.steps[-1]:.2f}%)"
        self.log(f"trial {trial.number}: {shown} in {result.duration_s:.1f}s "
                 f"({st.finished_count(study)}/{self.settings.trials} done)")
        return result
