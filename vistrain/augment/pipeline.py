"""Pipelines of registered ops, written as a compact spec string, a YAML list, or a YAML file.

Spec strings are comma-separated ops; an op's name is the longest registered prefix of its
dash-separated parts, and each remaining part is ``KEYvalue`` or ``KEY=value``::

    flip-h,crop-pad4,rand-n2-m9          affine-deg10-shift2-scale0.1-shear5-p0.8

``p`` (the probability of applying the step) is understood by every op. YAML lists hold the
same steps as strings or mappings (``{op: rotate, deg: 10, p: 0.5}`` or ``{rotate: {deg: 10}}``);
a YAML file holds such a list, or a mapping with ``pipeline:`` (a list or a spec string),
which is the form ``vistrain augment search`` writes to ``policy.yaml``.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vistrain.augment.ops import AugmentFn
from vistrain.errors import ConfigError, VistrainError, suggest

_PARAM = re.compile(r"^([a-z_]+)=?((?:\d+\.?\d*|\.\d+)(?:e-?\d+)?|[a-z0-9_.+]+)$")
_NUMBER = re.compile(r"^-?(?:\d+\.?\d*|\.\d+)(?:e-?\d+)?$")


@dataclass
class Step:
    """One pipeline step: a built op, its registered name and params, applied with probability ``p``."""

    name: str
    op: AugmentFn
    p: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)

    def spec(self) -> str:
        """This step as a compact spec token."""
        parts = [self.name] + [f"{k}{v:g}" if isinstance(v, float) else f"{k}{v}" for k, v in self.params.items()]
        return "-".join(parts)


class Pipeline:
    """Per-image callable ``pipeline(img, rng) -> img`` applying its steps in order."""

    def __init__(self, steps: list[Step]):
        self.steps = steps

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for step in self.steps:
            if step.p >= 1.0 or rng.random() < step.p:
                img = step.op(img, rng)
        return img

    def traced(self, img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
        """Augment and return the names of the ops actually applied (RandAugment names its picks)."""
        names: list[str] = []
        for step in self.steps:
            if step.p >= 1.0 or rng.random() < step.p:
                traced = getattr(step.op, "traced", None)
                if traced is not None:
                    img, picked = traced(img, rng)
                    names += picked
                else:
                    img = step.op(img, rng)
                    names.append(step.name)
        return img, names

    def spec(self) -> str:
        """The pipeline as a compact spec string."""
        return ",".join(s.spec() for s in self.steps)

    def leading_crop(self) -> tuple[float, Pipeline | None] | None:
        """(smallest area, the steps after it) when the pipeline starts with an always-applied random resized
        crop, which a photo transform then takes from the full-resolution image; else None."""
        first = self.steps[0] if self.steps else None
        if first is None or first.name != "resized-crop" or first.p < 1.0:
            return None
        return float(first.op.smin), Pipeline(self.steps[1:]) if len(self.steps) > 1 else None

    def on_tensors(self):
        """The same pipeline as batch tensor ops (``fn(batch, generator)``), or None if an op has none."""
        from vistrain.augment.tensor_ops import tensor_pipeline

        return tensor_pipeline(self)

    def __repr__(self) -> str:
        return f"Pipeline({self.spec()!r})"


def _value(text: str) -> Any:
    if _NUMBER.match(text):
        number = float(text)
        return int(number) if number.is_integer() and "." not in text and "e" not in text else number
    return text


def parse_token(token: str) -> tuple[str, dict[str, Any]]:
    """Split one spec token such as ``crop-pad4`` into ("crop", {"pad": 4}) using the registry."""
    from vistrain.plugins import registry

    reg = registry("augmentation")
    parts = token.strip().lower().split("-")
    for cut in range(len(parts), 0, -1):
        name = "-".join(parts[:cut])
        if name in reg:
            break
    else:
        # Guess where the name ends (at the first KEYnumber part) so the suggestion is useful.
        cut = next((i for i, p in enumerate(parts) if i and re.match(r"^[a-z_]+=?\d", p)), len(parts))
        _lookup("-".join(parts[:cut]))
        raise AssertionError("unreachable")  # _lookup raised
    params: dict[str, Any] = {}
    for part in parts[cut:]:
        match = _PARAM.match(part)
        if match and "=" not in part and not _NUMBER.match(match.group(2)):
            # 'degabc' would read as degab=c: without '=' the value must be a number
            raise ConfigError(f"augmentation {token!r}: cannot read parameter {part!r}; without '=' its value must "
                              f"be a number", hint="write KEYnumber or KEY=value, e.g. rotate-deg15 or crop-pad=4")
        if not match:
            raise ConfigError(f"augmentation {token!r}: cannot read parameter {part!r}",
                              hint="write parameters as KEYvalue or KEY=value, e.g. crop-pad4 or rand-n2-m9")
        params[match.group(1)] = _value(match.group(2))
    return name, params


def _lookup(name: str):
    """The registry entry for *name*; unknown names suggest the closest and point at ``augment list``."""
    from vistrain.plugins import registry

    return registry("augmentation").entry(name)  # its hint points at `vistrain augment list`


def _accepted(factory: Any) -> set[str] | None:
    """Keyword names a factory accepts, or None when it takes **kwargs (anything goes)."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return {n for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def build_step(name: str, params: dict[str, Any], where: str = "") -> Step:
    """Look *name* up and build it with *params*; bad names and parameters are one-line errors."""
    entry = _lookup(name)
    params = dict(params)
    try:
        p = float(params.pop("p", entry.meta.get("p", 1.0)))
    except (TypeError, ValueError):
        raise ConfigError(f"augmentation {name!r}{where}: p must be a number") from None
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"augmentation {name!r}{where}: p={p:g} is outside [0, 1]")
    factory = entry.load()
    accepted = _accepted(factory)
    for key in params:
        if accepted is not None and key not in accepted:
            known = sorted(accepted | {"p"})
            raise ConfigError(f"augmentation {name!r}{where} has no parameter {key!r}.{suggest(key, known)}",
                              hint=f"it accepts: {', '.join(known)}")
    try:
        op = factory(**params)
    except VistrainError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"augmentation {name!r}{where}: {exc}") from None
    if p != entry.meta.get("p", 1.0):
        params["p"] = p
    return Step(name, op, p, params)


def _step_from_item(item: Any, index: int) -> Step:
    where = f" (step {index + 1})"
    if isinstance(item, str):
        return build_step(*parse_token(item), where=where)
    if isinstance(item, dict) and "op" in item:
        params = {k: v for k, v in item.items() if k != "op"}
        return build_step(str(item["op"]), params, where)
    if isinstance(item, dict) and len(item) == 1:
        (name, params), = item.items()
        if params is not None and not isinstance(params, dict):
            raise ConfigError(f"augmentation step {index + 1}: parameters of {name!r} must be a mapping")
        return build_step(str(name), params or {}, where)
    raise ConfigError(f"augmentation step {index + 1} is {item!r}",
                      hint="write a step as 'name-KEYvalue', {op: name, KEY: value} or {name: {KEY: value}}")


def load_policy(path: str | Path) -> list[Any] | str:
    """Read a pipeline YAML file (a list, or a mapping with ``pipeline:``) into steps or a spec string."""
    from vistrain.config import read_yaml

    path = Path(path).expanduser()
    data = read_yaml(path, "augmentation file")
    if isinstance(data, dict):
        data = data.get("pipeline", data.get("spec"))
    if isinstance(data, (list, str)):
        return data
    raise ConfigError(f"augmentation file {str(path)!r} must hold a list of steps or a 'pipeline:' entry")


def is_policy_path(spec: str) -> bool:
    """True when *spec* names a YAML file rather than being a spec string."""
    return spec.endswith((".yaml", ".yml")) or ("/" in spec and Path(spec).expanduser().exists())


def write_policy(path: Path, policy: dict[str, Any], base: list[Any], **info: Any) -> None:
    """Write a policy file (the form a pipeline file takes): the pipeline (*base* steps then the
    RandAugment step *policy*) and *info* (score, trial...), atomically."""
    import yaml

    from vistrain.durable import atomic_write_text
    from vistrain.errors import OutputError

    data = {"pipeline": list(base) + [policy], **info}
    try:  # searches sharing a folder may write the best policy at once
        atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}", hint="choose a writable --out folder") from None


def extend_spec(spec: str, extra: list[str], *, owner: str, adds: str, key: str) -> str:
    """*spec* followed by the ops *extra* (empty tokens skipped); "none" when nothing is left. A policy file cannot
    be extended: the ConfigError says who (*owner*) cannot add what (*adds*), and *key*, the setting for a full spec."""
    base = spec.strip()
    tokens = [t for t in extra if t]
    if base.endswith((".yaml", ".yml")):
        raise ConfigError(f"{owner} cannot add {adds} to the policy file {base!r}",
                          hint=f"set {key} to the full augmentation spec")
    return ",".join(t for t in (base if base.lower() not in ("", "none") else "", *tokens) if t) or "none"


def build_pipeline(spec: str | list[Any] | None) -> Pipeline | None:
    """A :class:`Pipeline` from a spec string, a YAML list or a YAML file path; None for 'none'."""
    if spec is None:
        return None
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() in ("", "none"):
            return None
        if is_policy_path(text):
            return build_pipeline(load_policy(text))
        items: list[Any] = [t for t in text.split(",") if t.strip()]
    elif isinstance(spec, list):
        items = spec
    else:
        raise ConfigError(f"augmentation spec must be a string or a list, not {type(spec).__name__}")
    steps = [_step_from_item(item, i) for i, item in enumerate(items)]
    return Pipeline(steps) if steps else None


def build_from_config(cfg, num_classes: int | None = None, pipeline=...):
    """Return (per-image pipeline or None, batch CutMix/MixUp transform or None) for an AugmentConfig
    (*pipeline*: ``cfg.spec`` already built, e.g. when the run checked it)."""
    if pipeline is ...:
        pipeline = build_pipeline(cfg.spec)
    batch = None
    if cfg.cutmix_alpha > 0 or cfg.mixup_alpha > 0:
        from vistrain.augment.batch import BatchMix

        batch = BatchMix(cutmix_alpha=cfg.cutmix_alpha, cutmix_prob=cfg.cutmix_prob, mixup_alpha=cfg.mixup_alpha,
                         mixup_prob=cfg.mixup_prob, num_classes=num_classes)
    return pipeline, batch
