"""The search space: a YAML mapping of config keys to distributions, sampled through an Optuna trial.

.. code-block:: yaml

    optim.lr: {log_uniform: [1.0e-4, 1.0e-1]}
    optim.weight_decay: {log_uniform: [1.0e-6, 1.0e-2]}
    train.label_smoothing: {uniform: [0.0, 0.2]}
    data.batch_size: {choice: [64, 128, 256]}
    train.epochs: {int: [5, 20]}              # {int: [lo, hi], step: 5}; {log_int: [lo, hi]}
    model.name: {choice: [lenet5, mlp]}
    augment.spec: {randaugment: {n: [1, 3], m: [3, 15]}}   # RandAugment's (N, M), integers

Each key must be a config key (``vistrain config show``); keys under ``strategy.params`` and
``model.kwargs`` are free. ``randaugment`` takes ``n`` and ``m`` ranges (or one fixed value each),
optionally ``base`` (a spec applied before it, e.g. ``flip-h``), ``mstd`` and ``ops: subset`` (each op of the
pool kept or left out, at least two kept); a trial writes its policy as ``policy.yaml`` in its run folder
and trains with it. A trial's sampled values become ``--set``-style settings on top of the study's config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vistrain.config import Config, read_yaml
from vistrain.errors import ConfigError
from vistrain.errors import suggest

KINDS = ("uniform", "log_uniform", "int", "log_int", "choice", "randaugment")
FREE_UNDER = {("strategy", "params"), ("model", "kwargs")}  # dict fields: any key below them


def check_key(key: str, where: str = "the search space") -> None:
    """Raise a ConfigError unless *key* is a config key (with a 'did you mean')."""
    parts = key.split(".")
    model: Any = Config
    for i, part in enumerate(parts):
        if tuple(parts[:i]) in FREE_UNDER:
            return
        fields = getattr(model, "model_fields", None)
        if fields is None:
            break
        if part not in fields:
            raise ConfigError(f"{where}: unknown config key {key!r}.{suggest(part, list(fields))}",
                              hint="see 'vistrain config show' for every key")
        model = fields[part].annotation
    if getattr(model, "model_fields", None) is not None and tuple(parts) not in FREE_UNDER:
        raise ConfigError(f"{where}: {key!r} is a section, not a key",
                          hint=f"name one of its keys, e.g. {key}.{next(iter(model.model_fields))}")


def _bounds(key: str, kind: str, value: Any, integer: bool, positive: bool) -> tuple[Any, Any]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"the search space: {key}: {kind} takes [low, high], got {value!r}",
                          hint=f"e.g. {key}: {{{kind}: [1, 10]}}")
    lo, hi = value
    numbers = (int,) if integer else (int, float)
    if not all(isinstance(v, numbers) and not isinstance(v, bool) for v in (lo, hi)):
        raise ConfigError(f"the search space: {key}: {kind} bounds must be {'integers' if integer else 'numbers'}, "
                          f"got {value!r}", hint="write numbers such as 1.0e-4 (YAML reads 1e-4 as a string)")
    if not all(math.isfinite(float(v)) for v in (lo, hi)):
        raise ConfigError(f"the search space: {key}: {kind} bounds must be finite", hint="e.g. [1.0e-4, 1.0e-1]")
    if lo > hi:
        raise ConfigError(f"the search space: {key}: {kind} has low {lo} > high {hi}", hint="write [low, high]")
    if positive and lo <= 0:
        raise ConfigError(f"the search space: {key}: {kind} needs bounds above 0, got {lo}",
                          hint="use uniform for a range that includes 0")
    return lo, hi


@dataclass
class Param:
    """One key of the space and its distribution."""

    key: str
    kind: str
    low: Any = None
    high: Any = None
    step: Any = None
    choices: list[Any] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)  # randaugment: n, m, base, mstd, ops

    def sample(self, trial, pool: list[str] | None = None) -> Any:
        """The value of this key for *trial* (an Optuna trial); randaugment gives its policy step
        (``{op: rand, n, m[, mstd][, ops]}``), which the trial writes as a policy file with ``base`` before it."""
        if self.kind == "uniform":
            return trial.suggest_float(self.key, self.low, self.high)
        if self.kind == "log_uniform":
            return trial.suggest_float(self.key, self.low, self.high, log=True)
        if self.kind in ("int", "log_int"):
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.kind == "log_int")
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, self.choices)
        return self.randaugment_policy(trial, pool or [])

    def randaugment_policy(self, trial, pool: list[str]) -> dict[str, Any]:
        """``{op: rand, n, m[, mstd][, ops]}`` for *trial*."""
        policy: dict[str, Any] = {"op": "rand"}
        for name in ("n", "m"):
            lo, hi = self.options[name]
            policy[name] = trial.suggest_int(f"{self.key}.{name}", lo, hi) if lo != hi else lo
        if self.options.get("mstd"):
            policy["mstd"] = self.options["mstd"]
        if self.options.get("ops") == "subset" and len(pool) > 2:
            kept = [op for op in pool if trial.suggest_categorical(f"{self.key}.op.{op}", [True, False])]
            if len(kept) < 2:  # a pool of fewer than two ops is RandAugment no more: keep the first two drawn out
                kept = sorted(set(kept) | set(pool[:2]))
            if len(kept) < len(pool):
                policy["ops"] = kept
        return policy


def _randaugment(key: str, value: Any) -> Param:
    if key != "augment.spec":
        raise ConfigError(f"the search space: randaugment is a distribution of augment.spec, not of {key}",
                          hint="write augment.spec: {randaugment: {n: [1, 3], m: [3, 15]}}")
    if not isinstance(value, dict):
        raise ConfigError("the search space: augment.spec: randaugment takes a mapping with n and m",
                          hint="e.g. {randaugment: {n: [1, 3], m: [3, 15]}}")
    unknown = set(value) - {"n", "m", "base", "mstd", "ops"}
    if unknown:
        raise ConfigError(f"the search space: augment.spec: randaugment has no {sorted(unknown)[0]!r}",
                          hint="it takes n, m, base, mstd and ops")
    options: dict[str, Any] = {"base": value.get("base"), "mstd": value.get("mstd"), "ops": value.get("ops")}
    for name, (lo_ok, hi_ok) in {"n": (0, 16), "m": (0, 30)}.items():
        raw = value.get(name, [1, 3] if name == "n" else [0, 30])
        lo, hi = (raw, raw) if isinstance(raw, int) and not isinstance(raw, bool) else _bounds(
            f"augment.spec.{name}", "randaugment", raw, integer=True, positive=False)
        if lo < lo_ok or hi > hi_ok:
            raise ConfigError(f"the search space: randaugment {name} must lie in [{lo_ok}, {hi_ok}], got [{lo}, {hi}]",
                              hint=f"e.g. {name}: [{lo_ok}, {min(hi_ok, 3 if name == 'n' else 15)}]")
        options[name] = (lo, hi)
    if options["ops"] not in (None, "all", "subset"):
        raise ConfigError("the search space: randaugment ops must be all or subset", hint="ops: subset")
    if options["base"] is not None:
        from vistrain.augment.pipeline import build_pipeline

        build_pipeline(str(options["base"]))  # a bad base spec fails before any trial
    return Param(key, "randaugment", options=options)


def parse_param(key: str, value: Any) -> Param:
    """One entry of the space file."""
    check_key(key)
    if not isinstance(value, dict) or len(value) != 1:
        raise ConfigError(f"the search space: {key} must map to one distribution, e.g. {{uniform: [0, 1]}}",
                          hint=f"distributions: {', '.join(KINDS)}")
    (kind, arg), = value.items()
    if kind not in KINDS:
        raise ConfigError(f"the search space: {key}: unknown distribution {kind!r}.{suggest(str(kind), list(KINDS))}",
                          hint=f"distributions: {', '.join(KINDS)}")
    if kind == "randaugment":
        return _randaugment(key, arg)
    if kind == "choice":
        if not isinstance(arg, list) or not arg:
            raise ConfigError(f"the search space: {key}: choice takes a non-empty list", hint="e.g. {choice: [64, 128]}")
        if not all(isinstance(c, (str, int, float, bool)) or c is None for c in arg):
            raise ConfigError(f"the search space: {key}: choices must be numbers, strings, booleans or null",
                              hint="put a structured value in a config file and choose between files instead")
        return Param(key, kind, choices=list(arg))
    if kind in ("int", "log_int"):
        arg, step = (arg, None) if not isinstance(arg, dict) else (arg.get("range"), arg.get("step"))
        lo, hi = _bounds(key, kind, arg, integer=True, positive=kind == "log_int")
        return Param(key, kind, lo, hi, step=step)
    lo, hi = _bounds(key, kind, arg, integer=False, positive=kind == "log_uniform")
    return Param(key, kind, float(lo), float(hi))


@dataclass
class Space:
    """The parsed space file."""

    params: list[Param]
    source: str = "the search space"

    @classmethod
    def from_mapping(cls, data: Any, source: str = "the search space") -> "Space":
        if not isinstance(data, dict) or not data:
            raise ConfigError(f"{source} must be a mapping of config keys to distributions",
                              hint="e.g. optim.lr: {log_uniform: [1.0e-4, 1.0e-1]}")
        return cls([parse_param(str(k), v) for k, v in data.items()], source)

    @classmethod
    def from_file(cls, path: str | Path) -> "Space":
        return cls.from_mapping(read_yaml(path, "search space file"), str(path))

    def to_mapping(self) -> dict[str, Any]:
        """The space as the file wrote it (for study.yaml)."""
        out: dict[str, Any] = {}
        for p in self.params:
            if p.kind == "randaugment":
                out[p.key] = {"randaugment": {k: (list(v) if isinstance(v, tuple) else v)
                                              for k, v in p.options.items() if v is not None}}
            elif p.kind == "choice":
                out[p.key] = {"choice": p.choices}
            elif p.step:
                out[p.key] = {p.kind: {"range": [p.low, p.high], "step": p.step}}
            else:
                out[p.key] = {p.kind: [p.low, p.high]}
        return out

    def sample(self, trial, pool: list[str] | None = None) -> dict[str, Any]:
        """``{config key: value}`` for *trial*."""
        return {p.key: p.sample(trial, pool) for p in self.params}


def describe(params: dict[str, Any]) -> str:
    """``optim.lr=0.0031 train.label_smoothing=0.12 ...`` for a log line."""
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return " ".join(f"{k}={fmt(v)}" for k, v in params.items()) or "(no parameters)"
