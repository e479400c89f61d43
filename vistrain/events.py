"""Typed events a run emits through the ``on_event`` hook, and their JSON form.

Every event is a small dataclass. ``to_dict`` adds ``schema`` (:data:`SCHEMA_VERSION`),
``kind`` and ``time``; :func:`from_dict` turns a JSON line back into an event so the
dashboard can replay ``events.jsonl``. Unknown kinds from newer writers are kept as ``Unknown``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

SCHEMA_VERSION = 1


@dataclass
class Event:
    """Base class: every event records when it happened."""

    kind: ClassVar[str] = "event"
    time: float = field(default_factory=time.time, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with schema version and kind."""
        data = {"schema": SCHEMA_VERSION, "kind": self.kind}
        data.update(dataclasses.asdict(self))
        return data


@dataclass
class RunStarted(Event):
    """A run began; carries what is being trained and where it writes."""

    kind: ClassVar[str] = "run_started"
    run_name: str
    run_dir: str
    strategy: str
    model: str
    dataset: str
    device: str
    num_classes: int = 0
    num_train: int = 0
    num_val: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)  # versions, platform, device name


@dataclass
class RunFinished(Event):
    """A run ended normally (or was stopped by the user with a checkpoint saved)."""

    kind: ClassVar[str] = "run_finished"
    run_name: str
    duration_s: float
    metrics: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False


@dataclass
class RunFailed(Event):
    """A run ended with an error; ``message`` is the one-line explanation shown to the user."""

    kind: ClassVar[str] = "run_failed"
    run_name: str
    error: str
    message: str


@dataclass
class StageStarted(Event):
    """A strategy entered a stage, e.g. "noisy-student 2/3: training student vgg11"."""

    kind: ClassVar[str] = "stage_started"
    stage: str
    index: int = 1
    total: int = 1
    description: str = ""
    epochs: int = 0
    steps_per_epoch: int = 0
    model: str = ""
    num_params: int = 0


@dataclass
class BatchEnd(Event):
    """Emitted every ``log_interval`` steps with averages over those steps."""

    kind: ClassVar[str] = "batch_end"
    stage: str
    epoch: int
    step: int  # step within the epoch, 1-based
    steps_per_epoch: int
    global_step: int
    loss: float
    lr: float
    samples_per_s: float
    data_wait_s: float  # time spent waiting for data over the interval
    step_time_s: float  # wall time of the interval
    epochs: int = 0

    @property
    def data_wait_fraction(self) -> float:
        """Share of wall time spent waiting for the data pipeline."""
        return self.data_wait_s / self.step_time_s if self.step_time_s > 0 else 0.0


@dataclass
class EpochEnd(Event):
    """A training epoch finished; train loss/accuracy are averages over the epoch."""

    kind: ClassVar[str] = "epoch_end"
    stage: str
    epoch: int
    epochs: int
    train_loss: float
    train_top1: float
    lr: float
    duration_s: float
    samples: int


@dataclass
class EvalEnd(Event):
    """An evaluation finished; accuracies are fractions in [0, 1]. *split*: ``val`` after an epoch, ``test`` (the
    held-out split, once at the end), ``val-average`` (the averaged weights of ``checkpoint.average_last``)."""

    kind: ClassVar[str] = "eval_end"
    stage: str
    epoch: int
    split: str
    loss: float
    top1: float
    top5: float
    num_samples: int
    # per-class figures (vistrain.metrics): class-averaged, and per class in the model's class order
    balanced_top1: float | None = None
    macro_f1: float | None = None
    class_precision: list[float] | None = None
    class_recall: list[float] | None = None


@dataclass
class CheckpointSaved(Event):
    """A checkpoint file was written atomically."""

    kind: ClassVar[str] = "checkpoint_saved"
    path: str
    epoch: int
    global_step: int
    is_best: bool = False
    metric: float | None = None
    reason: str = "epoch"  # epoch | best | user | stop | step | average


@dataclass
class SystemSample(Event):
    """CPU/RAM usage, and per-GPU stats through NVML when available.

    Under DDP, rank 0 emits one sample that merges the latest sample of every rank.
    """

    kind: ClassVar[str] = "system_sample"
    cpu_percent: float
    ram_used_gb: float
    ram_total_gb: float
    process_rss_gb: float
    gpus: list[dict[str, Any]] = field(default_factory=list)  # under DDP: every rank's GPU, tagged with its rank
    ranks: list[dict[str, Any]] = field(default_factory=list)  # under DDP: one CPU/RSS summary per rank


@dataclass
class Log(Event):
    """A message for the user: level is debug, info, warning or error."""

    kind: ClassVar[str] = "log"
    level: str
    message: str
    source: str = "vistrain"


@dataclass
class ImagesSkipped(Event):
    """Images that could not be read (corrupt, truncated, deleted during the run) and were left out."""

    kind: ClassVar[str] = "images_skipped"
    stage: str
    epoch: int
    split: str  # train, val or test
    paths: list[str] = field(default_factory=list)  # the images skipped since the last such event
    total: int = 0  # images skipped so far in this stage's training, or in this evaluation


@dataclass
class PseudoLabelStats(Event):
    """Statistics of one pseudo-labelling round (pseudo-label and Noisy Student strategies)."""

    kind: ClassVar[str] = "pseudo_label_stats"
    round: int
    counts_before: list[int]  # accepted per class, before balancing
    counts_after: list[int]  # per class after balancing (duplication / truncation)
    confidence_hist: list[int]  # 20 bins over [0, 1]
    threshold: float
    acceptance_rate: float
    mean_confidence: float
    flip_rate: float | None = None  # vs. the previous round; None in round 1
    accuracy: float | None = None  # against true labels, when known
    class_names: list[str] = field(default_factory=list)


@dataclass
class ConsistencyStats(Event):
    """Statistics of a consistency-training stage (``fixmatch``, ``flexmatch``) over one logging interval:
    how many unlabelled images' pseudo-labels (the weak view's argmax) passed their threshold, how right they
    were where the true label is known (``--labels-per-class`` holds them back), and per class the threshold
    and the accepted count."""

    kind: ClassVar[str] = "consistency_stats"
    stage: str
    epoch: int
    global_step: int
    images: int  # unlabelled images seen in the interval (all ranks)
    mask_rate: float  # share of them whose confidence passed its class's threshold
    unlabelled_loss: float  # mean over the interval of the masked cross-entropy on the strong view (before lambda)
    threshold: float  # tau
    accuracy: float | None = None  # accepted pseudo-labels against the true labels, when known
    accuracy_all: float | None = None  # every pseudo-label (accepted or not) against the true labels
    class_thresholds: list[float] = field(default_factory=list)  # per class (fixmatch: tau for every class)
    class_accepted: list[int] = field(default_factory=list)  # accepted pseudo-labels per class in the interval
    class_names: list[str] = field(default_factory=list)


@dataclass
class AugmentTrial(Event):
    """One trial of an augmentation policy search finished; carries the leaderboard so far."""

    kind: ClassVar[str] = "augment_trial"
    trial: int
    trials: int
    policy: dict[str, Any]
    score: float
    leaderboard: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TuneTrial(Event):
    """A trial of a ``vistrain tune`` study started or ended (written to the study folder's ``events.jsonl``).

    *state*: ``running``, ``complete``, ``pruned`` (by the pruner, or ``outcome`` diverged), ``fail``;
    *outcome* says why a trial ended (completed, pruned, diverged, preempted, killed, failed). *number* is
    Optuna's trial number; *run_dir* the trial's run folder; *steps* the val top-1 of each epoch reported."""

    kind: ClassVar[str] = "tune_trial"
    study: str
    number: int
    state: str
    params: dict[str, Any]
    trials: int  # the study's budget: trials that complete or are pruned
    finished: int  # how many have so far
    run_dir: str = ""
    value: float | None = None
    outcome: str = ""
    steps: list[float] = field(default_factory=list)
    best_number: int | None = None
    best_value: float | None = None
    worker: str = ""
    duration_s: float = 0.0
    message: str = ""


@dataclass
class Unknown(Event):
    """An event of a kind this version does not know (written by a newer vistrain or a plugin)."""

    kind: ClassVar[str] = "unknown"
    original_kind: str = ""
    data: dict[str, Any] = field(default_factory=dict)


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        RunStarted, RunFinished, RunFailed, StageStarted, BatchEnd, EpochEnd, EvalEnd,
        CheckpointSaved, SystemSample, Log, ImagesSkipped, PseudoLabelStats, ConsistencyStats, AugmentTrial,
        TuneTrial,
    )
}


def from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from :meth:`Event.to_dict` output; unknown kinds become :class:`Unknown`."""
    kind = data.get("kind", "")
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        return Unknown(original_kind=str(kind), data=dict(data), time=float(data.get("time", 0.0)))
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def parse_event(line: str | bytes) -> Event | None:
    """One JSON line (of ``events.jsonl`` or the dashboard's pipe) as an Event; None for a torn or foreign
    line (not a JSON object with a kind)."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        return None
    try:
        return from_dict(data)
    except (TypeError, ValueError):
        return None
