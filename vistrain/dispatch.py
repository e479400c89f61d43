"""One dispatch method for a run's events, with the run's own listener list.

Each :class:`EventDispatcher` builds a private pluggy manager holding the ``on_event`` plugins
loaded at the run's start plus the run's own listeners (writers, console reporter, dashboard
bridge), so two runs in one process never see each other's listeners. Pluggy calls the hook,
so its semantics hold: ``tryfirst``/``trylast`` order, and ``wrapper=True`` (or old-style
``hookwrapper=True``) listeners wrap every other listener's call.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from typing import Any

import pluggy

from vistrain import hookspecs
from vistrain.events import Event, Log


def _opts(impl: pluggy.HookImpl) -> dict[str, Any]:
    names = ("tryfirst", "trylast", "wrapper", "hookwrapper", "optionalhook", "specname")
    return {name: getattr(impl, name) for name in names if getattr(impl, name, None)}


class _Guarded:
    """Stands in for a third-party plain listener: an error disables it instead of ending the run."""

    def __init__(self, dispatcher: EventDispatcher, name: str, impl: pluggy.HookImpl):
        self._dispatcher, self._name, self._function = dispatcher, name, impl.function

        def on_event(event: Event) -> None:
            dispatcher._call_guarded(name, self._function, event)

        self.on_event = hookspecs.hookimpl(**_opts(impl))(on_event)


class _Passthrough:
    """Registers a hook implementation's function as it is (wrappers, trusted listeners)."""

    def __init__(self, impl: pluggy.HookImpl):
        function = impl.function

        def on_event(event: Event):
            return function(event=event)

        if impl.wrapper or impl.hookwrapper:  # a generator function must stay one for pluggy
            def on_event(event: Event):  # noqa: F811
                return (yield from function(event=event))

        self.on_event = hookspecs.hookimpl(**_opts(impl))(on_event)


class EventDispatcher:
    """Callable ``emit(event)`` for one run. Built-in and the run's own listener errors propagate; a
    third-party listener that raises is reported once (as a Log event and on stderr) and skipped
    for the rest of the run."""

    def __init__(self, pm: pluggy.PluginManager | None = None, listeners: Iterable[tuple[str, Any]] = (),
                 trusted: set[str] | None = None):
        self._lock = threading.RLock()
        self._trusted = set(trusted or ())
        self.disabled: dict[str, str] = {}
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        if pm is not None:
            for impl in pm.hook.on_event.get_hookimpls():
                self._add_impl(impl.plugin_name, impl)
        for name, obj in listeners:
            self.add_listener(name, obj)

    def _add_impl(self, name: str, impl: pluggy.HookImpl) -> None:
        plain = not (impl.wrapper or impl.hookwrapper)
        proxy = _Guarded(self, name, impl) if plain and not self._is_trusted(name) else _Passthrough(impl)
        self._pm.register(proxy, name=name)

    def add_listener(self, name: str, obj: Any) -> None:
        """Add one of the run's own listeners (an object with ``on_event``); its errors propagate."""
        self._trusted.add(name)
        self._pm.register(obj, name=name)

    def trust(self, plugin_name: str) -> None:
        """Let errors from this listener propagate (used for the run's own writers)."""
        self._trusted.add(plugin_name)

    def _is_trusted(self, name: str) -> bool:
        from vistrain.plugins import is_builtin

        # built-in listeners are part of vistrain: their errors are bugs to surface, not plugins to disable
        return name in self._trusted or is_builtin(name)

    def _call_guarded(self, name: str, function, event: Event) -> None:
        if name in self.disabled:
            return
        try:
            function(event=event)
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not end the run
            message = f"listener plugin {name!r} raised {type(exc).__name__}: {exc}; it is disabled for this run"
            self.disabled[name] = message
            print(f"warning: {message}", file=sys.stderr)
            self(Log(level="warning", message=message, source=name))

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._pm.hook.on_event(event=event)

    def close(self) -> None:
        """Drop every listener (the run is over)."""
        for name, _ in list(self._pm.list_name_plugin()):
            self._pm.unregister(name=name)
