"""``vistrain plugins doctor``: check every loaded plugin against the hook specs and each other.

Checks, per plugin: it imports and fits the hook specs (unknown hooks and wrong hook arguments
are found when it is registered, see :mod:`vistrain.plugins`); each registry hook runs; no name
is registered by two plugins; every lazy ``"module:attr"`` factory imports to a callable;
module functions named like a hook but not marked ``@hookimpl`` (vistrain would ignore them).
Also measures what each plugin costs at start-up: its import plus its ``register_commands``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import time
from dataclasses import dataclass, field
from typing import Any

from vistrain import hookspecs

HOOK_NAMES = tuple(n for n, obj in vars(hookspecs).items() if hasattr(obj, f"{hookspecs.PROJECT}_spec"))


@dataclass
class PluginCheck:
    """The doctor's findings for one plugin."""

    name: str
    source: str
    status: str
    import_s: float = 0.0
    commands_s: float = 0.0  # time of its register_commands hook, paid by every `vistrain` call
    registered: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def help_cost_s(self) -> float:
        """What this plugin adds to ``vistrain --help``: its import and its command registration."""
        return self.import_s + self.commands_s


def _resolve(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part) if part else obj
    return obj


def _unmarked_hooks(obj: Any) -> list[str]:
    """Functions defined by a plugin module that look like hooks but lack ``@hookimpl``."""
    if not inspect.ismodule(obj):
        return []
    found = []
    for attr, value in vars(obj).items():
        if not inspect.isfunction(value) or value.__module__ != obj.__name__:
            continue
        if hasattr(value, f"{hookspecs.PROJECT}_impl"):
            continue
        close = difflib.get_close_matches(attr, HOOK_NAMES, n=1, cutoff=0.85)
        if close:
            found.append(f"function {attr!r} looks like hook {close[0]!r} but is not marked @hookimpl, "
                         f"so vistrain ignores it")
    return found


def diagnose(include_builtin: bool = False) -> list[PluginCheck]:
    """Check every plugin (third-party only unless *include_builtin*); returns one check per plugin."""
    from vistrain.plugins import REGISTRY_HOOKS, get_plugin_manager, is_builtin, plugin_infos

    pm = get_plugin_manager()
    checks: dict[str, PluginCheck] = {}
    for info in plugin_infos():
        if info.source == "in-process" or (is_builtin(info.name) and not include_builtin):
            continue
        check = PluginCheck(info.name, info.source, info.status, info.import_s)
        if info.status == "broken":
            check.problems.append(info.error)
        checks[info.name] = check
        obj = pm.get_plugin(info.name)
        if obj is not None:
            check.problems.extend(_unmarked_hooks(obj))

    owners: dict[tuple[str, str], list[str]] = {}
    for kind, hook_name in REGISTRY_HOOKS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            plugin = impl.plugin_name
            items: list[tuple[str, Any]] = []

            def register(name: str, factory: Any, /, _items: list = items, **meta: Any) -> None:
                _items.append((name, factory))

            t0 = time.perf_counter()
            try:
                impl.function(register=register)
            except Exception as exc:  # noqa: BLE001 - reported, like a run would
                if plugin in checks:
                    checks[plugin].problems.append(f"{hook_name} raised {type(exc).__name__}: {exc}")
                continue
            finally:
                if plugin in checks and hook_name == "register_commands":
                    checks[plugin].commands_s += time.perf_counter() - t0
            for name, factory in items:
                owners.setdefault((kind, name), []).append(plugin)
                if plugin not in checks:
                    continue
                checks[plugin].registered += 1
                try:
                    target = _resolve(factory) if isinstance(factory, str) else factory
                except Exception as exc:  # noqa: BLE001 - any import failure is the finding
                    checks[plugin].problems.append(f"{kind} {name!r}: cannot import {factory!r}: "
                                                   f"{type(exc).__name__}: {exc}")
                    continue
                if not callable(target):
                    checks[plugin].problems.append(f"{kind} {name!r}: factory {factory!r} is not callable")

    for (kind, name), plugins_of in owners.items():
        if len(plugins_of) > 1:
            message = f"{kind} {name!r} is registered by {' and '.join(repr(p) for p in plugins_of)}"
            for plugin in plugins_of:
                if plugin in checks:
                    checks[plugin].problems.append(message)
    return list(checks.values())
