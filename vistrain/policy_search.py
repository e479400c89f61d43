"""RandAugment policy search, a preset of ``vistrain tune``: the RandAugment (N, M[, op subset]) space, the
random sampler, no pruning; each trial trains briefly and is scored on val; the best policy is kept.

Each trial is an ordinary run in ``<out>/trial-NNNN`` whose ``augment.spec`` points at that trial's
``policy.yaml``; the study (``<out>/study.db``) holds the trials, so an interrupted search resumes where it
stopped and several processes can share one. On top of tune's files the preset keeps its own: finished trials
appended to ``<out>/trials.jsonl`` (numbered from 1), ``augment_trial`` events with the leaderboard, and the best
policy so far in ``<out>/policy.yaml``, which ``vistrain run --augment`` takes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vistrain.augment.pipeline import load_policy, write_policy  # noqa: F401 - write_policy is public here too
from vistrain.config import read_yaml
from vistrain.errors import ConfigError
from vistrain.runfolder import RunFolder

N_RANGE = (1, 3)
M_RANGE = (0, 30)


def policy_spec(policy: dict[str, Any]) -> str:
    """A short human label such as ``rand-n2-m9`` (``+k ops`` when a subset is used)."""
    label = f"rand-n{policy['n']}-m{policy['m']}"
    return label + (f" ({len(policy['ops'])} ops)" if policy.get("ops") else "")


def read_trials(path: Path) -> list[dict[str, Any]]:
    """Records of finished trials (a torn last line from an interruption is ignored)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def leaderboard(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trials sorted best first (ties: earlier trial first)."""
    return sorted(records, key=lambda r: (-r["score"], r["trial"]))


@dataclass
class SearchResult:
    """What a search reports: the leaderboard and the best policy's file."""

    out_dir: Path
    leaderboard: list[dict[str, Any]]
    policy_path: Path
    skipped: int = 0


def _check_same_search(out: Path, settings: dict[str, Any]) -> None:
    path = out / "search.yaml"
    if path.exists():
        saved = read_yaml(path, "search settings file") or {}
        changed = [k for k in settings if saved.get(k) != settings[k]]
        if changed:
            raise ConfigError(f"{out} holds a search with different {', '.join(changed)}",
                              hint="resume with the same settings or choose a new --out folder")
    else:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")


def search_space(subset: bool, base: list[Any]):
    """The preset's space: RandAugment's N in 1-3 and M in 0-30 (and each op kept or not with *subset*)."""
    from vistrain.tune.space import Param, Space

    options = {"n": N_RANGE, "m": M_RANGE, "base": ",".join(str(b) for b in base) or None,
               "ops": "subset" if subset else None, "mstd": None}
    return Space([Param("augment.spec", "randaugment", options=options)], "augment search")


def run_search(cfg, *, trials: int, epochs: int, out_dir: str | Path, subset: bool = False,
               base: list[Any] | None = None, listeners: list[Any] | None = None,
               on_trial: Callable[[dict[str, Any]], None] | None = None, control=None) -> SearchResult:
    """Run (or resume) a search of *trials* policies, *epochs* epochs each, on *cfg*'s data and model.

    Emits an ``AugmentTrial`` event with the leaderboard after every trial, through the same
    dispatcher and listeners a run uses.
    """
    from vistrain.augment.pipeline import build_pipeline
    from vistrain.dispatch import EventDispatcher
    from vistrain.engine.control import TrainControl
    from vistrain.events import AugmentTrial
    from vistrain.listeners.jsonl import JsonlWriter
    from vistrain.plugins import get_plugin_manager
    from vistrain.tune.worker import TuneSettings, Worker

    out = Path(out_dir).expanduser()
    base = list(base or [])
    build_pipeline(base or None)  # a bad base spec fails before any training
    _check_same_search(out, {"data": cfg.data.name, "model": cfg.model.name, "seed": cfg.train.seed,
                             "epochs": epochs, "subset": subset, "base": base})
    trials_path = out / "trials.jsonl"
    records = read_trials(trials_path)
    skipped = len(records)
    trial_cfg = cfg.model_copy(deep=True)
    trial_cfg.train.epochs = epochs
    settings = TuneSettings(name="augment-search", folder=out, storage="", space=search_space(subset, base),
                            config=trial_cfg.model_dump(mode="json"), trials=trials, sampler="random", pruner="none",
                            seed=cfg.train.seed, preset="augment-search")
    pm = get_plugin_manager()
    writer = JsonlWriter(RunFolder(out).events)

    def record_trial(event) -> None:
        if event.state != "complete":
            return
        policy = load_policy(Path(event.run_dir) / "policy.yaml")[-1]
        record = {"trial": event.number + 1, "policy": policy, "label": policy_spec(policy), "score": event.value,
                  "run_dir": event.run_dir}
        records.append(record)
        with open(trials_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        board = leaderboard(records)
        best = board[0]
        write_policy(out / "policy.yaml", best["policy"], base, score=best["score"], trial=best["trial"],
                     data=cfg.data.name, model=cfg.model.name)
        own = [("vistrain.search.jsonl", writer)] + [(f"vistrain.search.listener{i}", obj)
                                                     for i, obj in enumerate(listeners or [])]
        EventDispatcher(pm, listeners=own)(AugmentTrial(
            trial=record["trial"], trials=trials, policy=record["policy"], score=record["score"],
            leaderboard=[{k: r[k] for k in ("trial", "label", "score")} for r in board]))
        if on_trial is not None:
            on_trial(record)

    try:
        Worker(settings, control=control or TrainControl(), listeners=list(listeners or []), on_trial=record_trial,
               log=lambda message: None).run()
    finally:
        writer.close()
    board = leaderboard(records)
    if not board:
        raise ConfigError("the search ran no trials", hint="use --trials 1 or more")
    return SearchResult(out, board, out / "policy.yaml", skipped=skipped)
