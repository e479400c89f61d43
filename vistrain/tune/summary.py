"""What a study holds: its settings (``study.yaml``), its trials from the storage, the best trial and its config.

Used by the console summary at the end of ``vistrain tune``, ``vistrain tune report`` and ``--best-config``.
The ranking is by val top-1 (the value each trial reports); no figure of the held-out test split is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vistrain.config import read_yaml
from vistrain.durable import atomic_write_text
from vistrain.errors import ConfigError, OutputError
from vistrain.tune import study as st
from vistrain.tune.space import describe

STUDY_FILE = "study.yaml"
# keys that differ between the trials and say nothing about the study (each trial names its own folder)
IGNORED = ("output", "train.threads")


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in config.items() if k != "output"}
    if isinstance(out.get("train"), dict):
        out["train"] = {k: v for k, v in out["train"].items() if k != "threads"}
    return out


def check_study_file(settings) -> None:
    """Write ``study.yaml`` for a new study; for an existing one, refuse settings that differ (another space,
    config, sampler or pruner would make its trials incomparable). The budget (``--trials``) may change."""
    path = settings.folder / STUDY_FILE
    record = settings.study_record()
    if path.exists():
        saved = read_yaml(path, "study file") or {}
        changed = [k for k in ("space", "sampler", "pruner", "seed", "preset", "prune_after")
                   if saved.get(k, 0 if k == "prune_after" else None) != record[k]]
        if _comparable(saved.get("config") or {}) != _comparable(record["config"]):
            changed.append("config")
        if changed:
            raise ConfigError(f"{settings.folder} holds study {saved.get('study')!r} with a different "
                              f"{', '.join(changed)}", hint="continue it with the same settings, or pass another --study")
        return
    try:
        # workers starting together may all find no study.yaml: each writes through its own temporary file
        atomic_write_text(path, yaml.safe_dump({**record, "storage": settings.storage or "", "trials": settings.trials},
                                               sort_keys=False))
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}", hint="choose a writable --out folder") from None


@dataclass
class TrialRow:
    """One trial as the summary shows it."""

    number: int
    state: str  # complete, pruned, fail, running, waiting
    outcome: str
    value: float | None
    params: dict[str, Any]
    steps: list[float]
    run_dir: str
    duration_s: float | None
    over_budget: bool = False


@dataclass
class StudySummary:
    """A study's settings and trials."""

    folder: Path
    name: str
    settings: dict[str, Any]
    trials: list[TrialRow] = field(default_factory=list)
    importances: dict[str, float] = field(default_factory=dict)

    @property
    def shown(self) -> list[TrialRow]:
        """The trials worth showing (not the ones a worker asked for over the budget and dropped)."""
        return [t for t in self.trials if not t.over_budget]

    def best(self, k: int = 1) -> list[TrialRow]:
        """The *k* completed trials with the highest val top-1 (earlier trial first on a tie)."""
        done = [t for t in self.trials if t.state == "complete" and t.value is not None]
        return sorted(done, key=lambda t: (-t.value, t.number))[:k]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.shown:
            out[t.state] = out.get(t.state, 0) + 1
        return out

    def best_config_yaml(self) -> str:
        """The best trial's resolved config (its run folder's ``config.yaml``) without the output section."""
        best = self.best()
        if not best:
            raise ConfigError(f"study {self.name!r} has no completed trial yet", hint="let it run, then ask again")
        path = Path(best[0].run_dir) / "config.yaml"
        data = read_yaml(path, "trial config")
        if isinstance(data, dict):
            data.pop("output", None)
        header = f"# study {self.name}, trial {best[0].number}: val top-1 {100 * best[0].value:.2f}%\n"
        return header + yaml.safe_dump(data, sort_keys=False)

    def text(self) -> str:
        """A few lines for the console: counts, the best trials."""
        c = self.counts()
        lines = [f"study {self.name}: {c.get('complete', 0)} complete, {c.get('pruned', 0)} pruned, "
                 f"{c.get('fail', 0)} failed, {c.get('running', 0)} running, {c.get('waiting', 0)} waiting"]
        for rank, t in enumerate(self.best(5), start=1):
            lines.append(f"  {rank}. trial {t.number:3d}  val top-1 {100 * t.value:.2f}%  {describe(t.params)}")
        if self.best():
            lines.append(f"best config: vistrain tune report {self.folder} --best-config > best.yaml")
        return "\n".join(lines)


def load_study(folder: str | Path) -> StudySummary:
    """Read a study folder (its ``study.yaml`` names the storage)."""
    folder = Path(folder).expanduser()
    path = folder / STUDY_FILE
    if not path.exists():
        raise ConfigError(f"{folder} is not a study folder (no {STUDY_FILE})",
                          hint="pass the folder vistrain tune made: OUT/STUDY")
    settings = read_yaml(path, "study file") or {}
    name = str(settings.get("study") or folder.name)
    study = st.open_study(name, st.storage_url(settings.get("storage") or "", folder), None, None)
    rows = []
    for t in study.get_trials(deepcopy=False):
        steps = [t.intermediate_values[k] for k in sorted(t.intermediate_values)]
        duration = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
        outcome = str(t.user_attrs.get(st.OUTCOME, t.state.name.lower()))
        rows.append(TrialRow(t.number, t.state.name.lower(), outcome, t.value, dict(t.params), steps,
                             str(t.user_attrs.get("vistrain_run_dir", "")), duration,
                             bool(t.user_attrs.get(st.OVER_BUDGET))))
    summary = StudySummary(folder, name, settings, rows)
    if sum(1 for r in rows if r.state == "complete") >= 2 and any(r.params for r in rows):
        try:
            import optuna

            summary.importances = dict(optuna.importance.get_param_importances(study))
        except (RuntimeError, ValueError):  # every trial had the same values of a parameter
            summary.importances = {}
    return summary
