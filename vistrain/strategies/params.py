"""Typed strategy parameters: each strategy declares a pydantic model for ``strategy.params``.

A strategy registers its model as meta, ``register(name, factory, params="module:Class")`` (or the
class itself); the runner validates ``strategy.params`` against it before any data is loaded, so
a misspelt or mistyped parameter is one line and exit 2. This module does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from vistrain.errors import ConfigError, PluginError, suggest


class StrategyParams(BaseModel):
    """Base for a strategy's parameters: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def params_model(strategy: str) -> type[StrategyParams] | None:
    """The parameter model *strategy* registered (``params`` meta), or None when it declared none."""
    from vistrain.plugins import registry

    entry, _ = registry("strategy").get(strategy)
    model = entry.meta.get("params")
    if isinstance(model, str):
        module_name, _, attr = model.partition(":")
        try:
            model = getattr(importlib.import_module(module_name), attr)
        except Exception as exc:  # noqa: BLE001 - any import failure is the plugin's
            raise PluginError(f"plugin {entry.plugin!r} could not import parameters {entry.meta['params']!r} "
                              f"of strategy {strategy!r}: {type(exc).__name__}: {exc}") from exc
        entry.meta["params"] = model
    if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise PluginError(f"strategy {strategy!r} from plugin {entry.plugin!r} declared params that are not a "
                          f"pydantic model: {model!r}")
    return model


def parse_params(strategy: str, raw: dict[str, Any]) -> Any:
    """Validate *raw* against *strategy*'s parameter model; a plain dict passes through when it has none."""
    model = params_model(strategy)
    if model is None:
        return dict(raw)
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        fields = list(model.model_fields)
        more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        if err["type"] == "extra_forbidden":
            hint = suggest(str(err["loc"][-1]), fields)
            raise ConfigError(f"unknown parameter 'strategy.params.{key}' for strategy {strategy!r}.{hint}{more}",
                              hint=f"its parameters are: {', '.join(fields)}") from None
        got = err.get("input")
        got_text = f" (got {got!r})" if not isinstance(got, dict) else ""
        hint = "see 'vistrain strategies list' and docs/strategies.md for its parameters"
        if not key:  # a rule across parameters (a model validator): its own words say which
            message = str(err["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"strategy {strategy!r} parameters: {message}{more}", hint=hint) from None
        raise ConfigError(f"strategy {strategy!r} parameter 'strategy.params.{key}': {err['msg'].lower()}{got_text}{more}",
                          hint=hint) from None

