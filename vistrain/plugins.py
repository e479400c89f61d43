"""Loads built-in and third-party plugins through one code path and owns the registries.

Built-ins are listed in ``DEFAULT_PLUGINS``; third-party plugins come from the entry-point
group ``vistrain``. ``VISTRAIN_PLUGINS`` restricts which third-party plugins load: a comma
list of entry-point names, or ``none`` for none at all.

Trust: only the modules vistrain lists itself (``DEFAULT_PLUGINS``, see :func:`is_builtin`) and
the listeners a run registers for itself may raise through vistrain; a plugin's name proves
nothing, so an entry point called ``vistrain.x`` is third-party like any other.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from vistrain import hookspecs
from vistrain.errors import PluginError, suggest
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
    source: str  # "builtin", "in-process" or "dist version" of the distribution holding the entry point
    status: str = "ok"  # ok | disabled | broken
    error: str = ""
    hooks: list[str] = field(default_factory=list)
    dist: str = ""  # distribution name (entry-point plugins)
    version: str = ""
    target: str = ""  # the entry point's "module:attr" or the built-in module
    import_s: float = 0.0  # time to import the plugin object, in load order

    @property
    def builtin(self) -> bool:
        """Whether vistrain lists this plugin itself."""
        return is_builtin(self.name)


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
    "distill_loss": "register_distill_losses",
}


def is_builtin(name: str) -> bool:
    """Whether *name* is a plugin vistrain lists itself (``DEFAULT_PLUGINS``), not a third-party one."""
    return name in DEFAULT_PLUGINS


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


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _unknown_hooks(pm: pluggy.PluginManager, obj: Any) -> list[str]:
    """Hooks *obj* implements that vistrain does not define (misspelt), unless marked optional."""
    unknown = []
    for caller in pm.get_hookcallers(obj) or []:
        if caller.spec is None and any(i.plugin is obj and not i.optionalhook for i in caller.get_hookimpls()):
            unknown.append(caller.name)
    return unknown


def _register(pm: pluggy.PluginManager, obj: Any, info: PluginInfo) -> None:
    """Register one plugin object; a plugin that does not fit the hook specs is recorded as broken."""
    _infos[info.name] = info
    try:
        pm.register(obj, name=info.name)
    except Exception as exc:  # noqa: BLE001 - a bad plugin must not crash the host
        info.status, info.error = "broken", _one_line(exc)
        return
    unknown = _unknown_hooks(pm, obj)
    if unknown:
        pm.unregister(obj)
        known = [n for n in vars(hookspecs) if hasattr(getattr(hookspecs, n), f"{hookspecs.PROJECT}_spec")]
        info.status = "broken"
        info.error = "; ".join(f"implements unknown hook {u!r}.{suggest(u, known, n=1)}" for u in unknown)
        return
    info.hooks = _hooks_of(pm, obj)


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
            t0 = time.perf_counter()
            module = importlib.import_module(module_name)
            info = PluginInfo(module_name, "builtin", target=module_name, import_s=time.perf_counter() - t0)
            _register(pm, module, info)
        allowed = _allowed_names()
        for ep in _entry_points():
            dist = getattr(ep, "dist", None)
            info = PluginInfo(ep.name, f"{dist.name} {dist.version}" if dist is not None else "entry point",
                              dist=getattr(dist, "name", ""), version=getattr(dist, "version", ""),
                              target=getattr(ep, "value", ""))
            if ep.name in _infos:  # two distributions, one entry-point name
                info.status, info.error = "broken", f"entry-point name {ep.name!r} is already used by {_infos[ep.name].source}"
                _infos[f"{ep.name} ({info.source})"] = info
                continue
            if allowed is not None and ep.name not in allowed:
                info.status, info.error = "disabled", f"not listed in {ENV_VAR}"
                _infos[ep.name] = info
                continue
            t0 = time.perf_counter()
            try:
                obj = ep.load()
            except Exception as exc:  # noqa: BLE001 - reported by `plugins list` and on lookup
                info.status, info.error = "broken", f"import failed: {_one_line(exc)}"
                _infos[ep.name] = info
                continue
            info.import_s = time.perf_counter() - t0
            _register(pm, obj, info)
        return pm


def plugin_infos() -> list[PluginInfo]:
    """Every plugin seen, loaded or not."""
    get_plugin_manager()
    return list(_infos.values())


def failed_plugins_note() -> str:
    """A hint suffix naming plugins that failed to load, so a missing name is explained."""
    failed = [i.name for i in _infos.values() if i.status == "broken"]
    return f"; plugin(s) {', '.join(map(repr, failed))} failed to load, see 'vistrain plugins list'" if failed else ""


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
                info.status, info.error = "broken", f"{registry.hook_name} raised {_one_line(exc)}"


def registry(kind: str) -> Registry:
    """The registry of *kind*: model, dataset, augmentation, strategy, optimizer, scheduler, command."""
    with _lock:
        reg = _registries.get(kind)
        if reg is None:
            reg = Registry(kind, REGISTRY_HOOKS[kind], loader=_fill, unknown_note=failed_plugins_note)
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
    _infos[name] = PluginInfo(name, "in-process", hooks=_hooks_of(pm, obj), target=type(obj).__name__)
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


def registered_by_plugin() -> tuple[dict[str, dict[str, list[str]]], list[str]]:
    """``{plugin: {kind: [names]}}`` over every registry, and the errors of registries that failed to fill."""
    out: dict[str, dict[str, list[str]]] = {}
    errors = []
    for kind in REGISTRY_HOOKS:
        try:
            entries = list(registry(kind))
        except PluginError as exc:
            errors.append(str(exc))
            continue
        for entry in entries:
            out.setdefault(entry.plugin, {}).setdefault(kind, []).append(entry.name)
    return out, errors
