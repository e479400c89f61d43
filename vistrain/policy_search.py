"""RandAugment policy search (orchestration above the runner): sample (N, M[, op subset]), train briefly, score on val, keep the best.

Each trial is an ordinary run (:func:`vistrain.runner.execute`) in ``<out>/trial-NNN`` whose
``augment.spec`` points at that trial's ``policy.yaml``. Finished trials are appended to
``<out>/trials.jsonl``; a rerun skips them, so an interrupted search resumes where it stopped.
Trial *t*'s policy depends only on (seed, t), so resuming samples the same policies.
The best policy so far is kept in ``<out>/policy.yaml``; ``vistrain run --augment`` takes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vistrain.config import read_yaml
from vistrain.errors import ConfigError, OutputError
from vistrain.runfolder import RunFolder

N_CHOICES = (1, 2, 3)


def sample_policy(seed: int, trial: int, pool: list[str], subset: bool = False) -> dict[str, Any]:
    """The RandAugment step of trial *trial*: ``{op: rand, n, m[, ops]}``, reproducible from (seed, trial)."""
    rng = np.random.default_rng([seed, trial])
    policy: dict[str, Any] = {"op": "rand", "n": int(rng.choice(N_CHOICES)), "m": int(rng.integers(0, 31))}
    if subset and len(pool) > 2:
        k = int(rng.integers(max(2, len(pool) // 2), len(pool) + 1))
        policy["ops"] = sorted(str(x) for x in rng.choice(pool, size=k, replace=False))
    return policy


def policy_spec(policy: dict[str, Any]) -> str:
    """A short human label such as ``rand-n2-m9`` (``+k ops`` when a subset is used)."""
    label = f"rand-n{policy['n']}-m{policy['m']}"
    return label + (f" ({len(policy['ops'])} ops)" if policy.get("ops") else "")


def write_policy(path: Path, policy: dict[str, Any], base: list[Any], **info: Any) -> None:
    """Write a policy file: the pipeline (base steps then the RandAugment step) and *info*."""
    data = {"pipeline": list(base) + [policy], **info}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}", hint="choose a writable --out folder") from None


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


def run_search(cfg, *, trials: int, epochs: int, out_dir: str | Path, subset: bool = False,
               base: list[Any] | None = None, listeners: list[Any] | None = None,
               on_trial: Callable[[dict[str, Any]], None] | None = None) -> SearchResult:
    """Run (or resume) a search of *trials* policies, *epochs* epochs each, on *cfg*'s data and model.

    Emits an ``AugmentTrial`` event with the leaderboard after every trial, through the same
    dispatcher and listeners a run uses.
    """
    from vistrain.augment.pipeline import build_pipeline
    from vistrain.augment.randaugment import default_pool
    from vistrain.dispatch import EventDispatcher
    from vistrain.events import AugmentTrial
    from vistrain.plugins import get_plugin_manager
    from vistrain.listeners.jsonl import JsonlWriter
    from vistrain.runner import execute

    out = Path(out_dir).expanduser()
    base = list(base or [])
    build_pipeline(base or None)  # a bad base spec fails before any training
    pool = default_pool()
    _check_same_search(out, {"data": cfg.data.name, "model": cfg.model.name, "seed": cfg.train.seed,
                             "epochs": epochs, "subset": subset, "base": base})
    trials_path = out / "trials.jsonl"
    records = read_trials(trials_path)
    done = {r["trial"] for r in records}
    pm = get_plugin_manager()
    writer = JsonlWriter(RunFolder(out).events)

    def emit_trial(record: dict[str, Any]) -> None:
        board = leaderboard(records)
        own = [("vistrain.search.jsonl", writer)] + [(f"vistrain.search.listener{i}", obj) for i, obj in enumerate(listeners or [])]
        emit = EventDispatcher(pm, listeners=own)
        emit(AugmentTrial(trial=record["trial"], trials=trials, policy=record["policy"], score=record["score"],
                          leaderboard=[{k: r[k] for k in ("trial", "label", "score")} for r in board]))

    try:
        for trial in range(1, trials + 1):
            if trial in done:
                continue
            policy = sample_policy(cfg.train.seed, trial, pool, subset)
            trial_dir = out / f"trial-{trial:03d}"
            policy_path = trial_dir / "policy.yaml"
            write_policy(policy_path, policy, base)
            trial_cfg = cfg.model_copy(deep=True)
            trial_cfg.augment.spec = str(policy_path)
            trial_cfg.train.epochs = epochs
            trial_cfg.output.dir, trial_cfg.output.name = str(out), trial_dir.name
            result = execute(trial_cfg, listeners=list(listeners or []), run_dir=trial_dir)
            score = float(result.metrics.get("best_val_top1", result.metrics.get("val_top1", 0.0)))
            record = {"trial": trial, "policy": policy, "label": policy_spec(policy), "score": score,
                      "run_dir": str(trial_dir)}
            records.append(record)
            with open(trials_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
            best = leaderboard(records)[0]
            write_policy(out / "policy.yaml", best["policy"], base, score=best["score"], trial=best["trial"],
                         data=cfg.data.name, model=cfg.model.name)
            emit_trial(record)
            if on_trial is not None:
                on_trial(record)
    finally:
        writer.close()
    board = leaderboard(records)
    if not board:
        raise ConfigError("the search ran no trials", hint="use --trials 1 or more")
    return SearchResult(out, board, out / "policy.yaml", skipped=len(done))
