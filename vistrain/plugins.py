"""Loads built-in and third-party plugins through one code path and owns the registries.

Built-ins are listed in ``DEFAULT_PLUGINS``; third-party plugins come from the entry-point
group ``vistrain``. ``VISTRAIN_PLUGINS`` restricts which third-party plugins load: a comma
list of entry-point names, or ``none`` for none at all.
"""

from __future__ import annotations

import importlib
import os
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from vistrain import hookspecs
from vistrain.errors import PluginError
from vistrain.registry import Registry

ENTRY_POINT_GROUP = "vistrain"
ENV_VAR = "VISTRAIN_PLUGINS"

DEFAULT_PLUGINS: tuple[str, ...] = (
    "vistrain.models.builtin",
    "vistrain.data.builtin",
    "vistrain.augment.builtin",
    "vistrain.strategies.builtin",
    "vistrain.engine.optim",
    "vistrain.cli.builtin",
)


@dataclass
class PluginInfo:
    """What ``vistrain plugins list`` shows about one plugin."""

    name: str
    source: str  # "builtin" or "entry point (dist version)"
    status: str = "ok"  # ok | failed | disabled
    error: str = ""
    hooks: list[str] = field(default_factory=list)


_lock = threading.RLock()
_pm: pluggy.PluginManager | None = None
_infos: dict[str, PluginInfo] = {}
_registries: dict[str, Registry] = {}

REGISTRY_HOOKS = {
    "model": "register_models",
    "dataset": "register_datasets",
    "augmentation": "register_augmentations",
    "strategy": "register_strategies",
    "optimizer": "register_optimizers",
    "scheduler": "register_schedulers",
    "command": "register_commands",
}


def _allowed_names() -> set[str] | None:
    raw = os.environ.get(ENV_VAR)
    if raw is None or raw.strip() == "" or raw.strip().lower() == "all":
        return None
    if raw.strip().lower() == "none":
        return set()
    return {part.strip() for part in raw.split(",") if part.strip()}


def _entry_points() -> list[metadata.EntryPoint]:
    """Installed entry points of the ``vistrain`` group (patched by tests)."""
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def _hooks_of(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    return sorted(h.name for h in pm.get_hookcallers(plugin) or [])


def _register(pm: pluggy.PluginManager, obj: Any, name: str, source: str) -> None:
    try:
        pm.register(obj, name=name)
    except Exception as exc:  # noqa: BLE001 - a bad plugin must not crash the host
        _infos[name] = PluginInfo(name, source, "failed", f"{type(exc).__name__}: {exc}")
        return
    _infos[name] = PluginInfo(name, source, hooks=_hooks_of(pm, obj))


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, created and filled on first use."""
    global _pm
    with _lock:
        if _pm is not None:
            return _pm
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        _pm = pm
        for module_name in DEFAULT_PLUGINS:
            _register(pm, importlib.import_module(module_name), module_name, "builtin")
        allowed = _allowed_names()
        for ep in _entry_points():
            dist = getattr(ep, "dist", None)
            source = f"entry point ({dist.name} {dist.version})" if dist is not None else "entry point"
            if allowed is not None and ep.name not in allowed:
                _infos[ep.name] = PluginInfo(ep.name, source, "disabled", f"not listed in {ENV_VAR}")
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # noqa: BLE001 - reported by `plugins list` and on lookup
                _infos[ep.name] = PluginInfo(ep.name, source, "failed", f"{type(exc).__name__}: {exc}")
                continue
            _register(pm, obj, ep.name, source)
        return pm


def plugin_infos() -> list[PluginInfo]:
    """Every plugin seen, loaded or not."""
    get_plugin_manager()
    return list(_infos.values())


def failed_plugins_note() -> str:
    """A hint suffix naming plugins that failed to load, so a missing name is explained."""
    failed = [i.name for i in _infos.values() if i.status == "failed"]
    return f"; plugin(s) {', '.join(failed)} failed to load, see 'vistrain plugins list'" if failed else ""


def _fill(registry: Registry) -> None:
    pm = get_plugin_manager()
    caller = getattr(pm.hook, registry.hook_name)
    for impl in caller.get_hookimpls():  # registration order: builtins first
        plugin_name = impl.plugin_name

        def register(name: str, factory: Any, /, _plugin: str = plugin_name, **meta: Any) -> None:
            registry.add(name, factory, _plugin, **meta)

        try:
            impl.function(register=register)
        except PluginError:
            raise
        except Exception as exc:  # noqa: BLE001 - isolate the broken plugin
            registry.remove_plugin(plugin_name)
            info = _infos.get(plugin_name)
            if info is not None:
                info.status, info.error = "failed", f"{registry.hook_name}: {type(exc).__name__}: {exc}"


def registry(kind: str) -> Registry:
    """The registry of *kind*: model, dataset, augmentation, strategy, optimizer, scheduler, command."""
    with _lock:
        reg = _registries.get(kind)
        if reg is None:
            reg = Registry(kind, REGISTRY_HOOKS[kind], loader=_fill)
            _registries[kind] = reg
        return reg


def reset() -> None:
    """Forget all plugins and registries (tests use this after changing entry points)."""
    global _pm
    with _lock:
        _pm = None
        _infos.clear()
        _registries.clear()


def register_plugin(obj: Any, name: str) -> None:
    """Register an in-process plugin (a listener or a test plugin) and refresh the registries."""
    pm = get_plugin_manager()
    pm.register(obj, name=name)
    _infos[name] = PluginInfo(name, "in-process", hooks=_hooks_of(pm, obj))
    for reg in _registries.values():
        reg.reset()


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered with :func:`register_plugin`."""
    pm = get_plugin_manager()
    obj = pm.get_plugin(name)
    if obj is not None:
        pm.unregister(obj)
    _infos.pop(name, None)
    for reg in _registries.values():
        reg.reset()
