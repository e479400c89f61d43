"""A study: its folder, its Optuna storage, sampler and pruner, the trial budget, and the heartbeat.

The study folder (``--out``/``--study``) holds ``study.yaml`` (the space, the base config, sampler and
pruner: a later command or another machine must agree with it), ``events.jsonl`` (a ``tune_trial`` event when
each trial starts and when it ends, or is found dead), the default storage ``study.db`` (SQLite), and one run folder per trial
(``trial-0007``). Storages: ``sqlite:///PATH`` or any SQLAlchemy URL (Optuna's ``RDBStorage``: PostgreSQL,
MySQL...), or ``journal:PATH``, a journal file on shared storage (Optuna's ``JournalStorage`` with its file
lock), which needs no database server.

**The budget.** ``--trials N`` asks for N trials that complete or are pruned. Every worker, before it takes a
trial, counts the trials that finished or are running or waiting; once they are N it takes none, but stays
while others run, in case one of them dies. A worker that finds itself over budget after asking (two asked at
once) marks its trial failed with ``vistrain_over_budget`` and goes back to waiting; no trial is counted twice.

**The heartbeat.** A worker writes the time into its running trial (``vistrain_heartbeat``, a user attribute)
every ``heartbeat`` seconds. A trial still running whose heartbeat is older than ``grace`` seconds belongs to a
worker that was killed: the next worker to look marks it failed (only one can: the storage refuses a second
state change) and enqueues a retry with the same parameters, which continues the dead trial's run folder from
its last checkpoint. (Optuna's own heartbeat exists for RDB storages only; this one works for every storage.)
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vistrain.errors import ConfigError

SAMPLERS = ("tpe", "random", "cmaes")
PRUNERS = ("median", "hyperband", "none")
HEARTBEAT = "vistrain_heartbeat"
ORIGIN = "vistrain_origin"  # the trial whose run folder a retry continues
RETRY_OF = "vistrain_retry_of"
OVER_BUDGET = "vistrain_over_budget"
OUTCOME = "vistrain_outcome"  # completed, pruned, diverged, preempted, interrupted, killed, taken over, failed


def storage_url(spec: str | None, folder: Path) -> str:
    """The storage URL: *spec*, or a SQLite file in the study folder."""
    if not spec:
        return f"sqlite:///{(folder / 'study.db').resolve()}"
    return spec


def open_storage(url: str, attempts: int = 5):
    """An Optuna storage for *url* (``journal:PATH`` or an SQLAlchemy URL); a clear error when it cannot open.
    Workers starting together race to create a new database's tables: a failed attempt is retried."""
    for attempt in range(attempts):
        try:
            return _open_storage(url)
        except ConfigError:
            if attempt == attempts - 1 or not url.startswith("sqlite"):
                raise
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")


def _open_storage(url: str):
    import optuna

    try:
        if url.startswith("journal:"):
            from optuna.storages.journal import JournalFileBackend

            path = Path(url[len("journal:"):]).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        if "://" not in url:
            raise ValueError("not a URL")
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}}
                                          if url.startswith("sqlite") else None)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy and the drivers raise many kinds
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot open the study storage {url!r}: {first}",
                          hint="use sqlite:///PATH, journal:PATH (a file on shared storage) or a database URL "
                               "whose driver is installed") from None


def make_sampler(name: str, seed: int | None):
    """Optuna's sampler for *name*."""
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        import warnings

        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        # CMA-ES handles numbers; choices and the first trials go to its independent sampler (random)
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    raise ConfigError(f"unknown sampler {name!r}", hint=f"use one of {', '.join(SAMPLERS)}")


def make_pruner(name: str, max_epochs: int, prune_after: int = 0):
    """Optuna's pruner for *name*, fed each epoch's val top-1 (steps are epochs); no trial is pruned before
    epoch *prune_after* (e.g. the end of a learning-rate warm-up, when slow starters catch up)."""
    import optuna

    if name == "median":  # Optuna's defaults otherwise: the first five trials run whole
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=prune_after)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, prune_after), max_resource=max(1, max_epochs),
                                              reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {name!r}", hint=f"use one of {', '.join(PRUNERS)}")


def open_study(name: str, url: str, sampler, pruner):
    """Create or load study *name* (maximising val top-1)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(url)
    try:
        return optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner,
                                   direction="maximize", load_if_exists=True)
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"cannot open study {name!r} in {url!r}: {exc}",
                          hint="check the storage URL and that the study maximises") from None


# --- the budget ------------------------------------------------------------------------------------------------


def trial_states():
    """Optuna's ``TrialState`` (imported when a study is at work, not at start-up)."""
    from optuna.trial import TrialState

    return TrialState


def finished_count(study) -> int:
    """Trials that completed or were pruned."""
    ts = trial_states()
    return len(study.get_trials(deepcopy=False, states=(ts.COMPLETE, ts.PRUNED)))


def counted(study) -> list:
    """Trials that count towards the budget: finished, running or waiting (not failed)."""
    ts = trial_states()
    return study.get_trials(deepcopy=False, states=(ts.COMPLETE, ts.PRUNED, ts.RUNNING, ts.WAITING))


def waiting_count(study) -> int:
    """Trials enqueued (retries) and not yet taken."""
    return len(study.get_trials(deepcopy=False, states=(trial_states().WAITING,)))


def within_budget(study, number: int, budget: int) -> bool:
    """Whether trial *number* is among the first *budget* trials that count (by trial number)."""
    numbers = sorted(t.number for t in counted(study))
    return number in numbers[:budget]


# --- heartbeat -------------------------------------------------------------------------------------------------


class Heartbeat:
    """Writes the time into a running trial every *interval* seconds (a thread); tells when the trial was taken
    from this worker (marked failed by another worker that found its heartbeat too old)."""

    def __init__(self, study, trial_id: int, interval: float, on_lost=None):
        self.study, self.trial_id, self.interval, self.on_lost = study, trial_id, interval, on_lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vistrain-tune-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self.beat()
        self._thread.start()
        return self

    def beat(self) -> None:
        self.study._storage.set_trial_user_attr(self.trial_id, HEARTBEAT, time.time())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if self.study._storage.get_trial(self.trial_id).state != trial_states().RUNNING:
                    if self.on_lost is not None:
                        self.on_lost()
                    return
                self.beat()
            except Exception:  # noqa: BLE001 - a busy database: the next beat tries again
                continue

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def origin_of(trial) -> int:
    """The trial whose run folder *trial* works in: itself, or the first trial of a retry chain."""
    return int(trial.user_attrs.get(ORIGIN, trial.number))


def enqueue_retry(study, trial, reason: str) -> None:
    """Enqueue a trial with *trial*'s parameters that continues its run folder."""
    study.enqueue_trial(dict(trial.params), user_attrs={ORIGIN: origin_of(trial), RETRY_OF: trial.number,
                                                        "vistrain_retry_reason": reason}, skip_if_exists=False)


def reap_stale(study, grace: float, now: float | None = None) -> list[int]:
    """Fail the running trials whose heartbeat is older than *grace* seconds and enqueue their retries;
    returns their numbers. Only one worker can fail a trial: the storage refuses the second change."""
    from optuna.exceptions import UpdateFinishedTrialError

    ts = trial_states()
    now = time.time() if now is None else now
    reaped = []
    for t in study.get_trials(deepcopy=False, states=(ts.RUNNING,)):
        beat = t.user_attrs.get(HEARTBEAT)
        if beat is None and t.datetime_start is not None:
            beat = t.datetime_start.timestamp()
        if beat is None or now - float(beat) <= grace:
            continue
        try:  # the outcome first: a finished trial takes no more attributes
            study._storage.set_trial_user_attr(t._trial_id, OUTCOME, "killed")
            if not study._storage.set_trial_state_values(t._trial_id, ts.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # another worker got there first (or the trial ended after all)
        except Exception:  # noqa: BLE001 - e.g. the journal replays another worker's change first
            continue
        enqueue_retry(study, t, "killed")
        reaped.append(t.number)
    return reaped


@dataclass
class WorkerId:
    """Which worker this process is: host, pid, and its index among ``--workers``."""

    host: str
    pid: int
    index: int

    @classmethod
    def here(cls) -> "WorkerId":
        import platform

        return cls(platform.node(), os.getpid(), int(os.environ.get("VISTRAIN_TUNE_WORKER", "0")))

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"

    def sampler_seed(self, seed: int, trials_so_far: int) -> int:
        """A seed of its own for this worker's sampler: a resumed single-worker study does not redraw the
        first session's parameters, and two workers do not draw the same ones."""
        return (int(seed) * 1_000_003 + trials_so_far * 7_919 + self.index * 104_729 + (self.pid if self.index else 0)) % 2**32


def json_safe(value: Any) -> Any:
    """Numbers, strings, booleans, None, lists and dicts of them (for events and YAML)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    return str(value)
