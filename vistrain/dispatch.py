"""One dispatch method for events: calls every ``on_event`` listener, isolating third-party ones."""

from __future__ import annotations

import sys
import threading

import pluggy

from vistrain.events import Event, Log


class EventDispatcher:
    """Callable ``emit(event)``. Built-in listener errors propagate; a third-party listener that
    raises is reported once (as a Log event and on stderr) and skipped for the rest of the run."""

    def __init__(self, pm: pluggy.PluginManager, trusted: set[str] | None = None):
        self._pm = pm
        self._lock = threading.RLock()
        self._trusted = set(trusted or ())
        self.disabled: dict[str, str] = {}

    def trust(self, plugin_name: str) -> None:
        """Let errors from this listener propagate (used for the run's own writers)."""
        self._trusted.add(plugin_name)

    def _is_trusted(self, name: str) -> bool:
        from vistrain.plugins import is_builtin

        return name in self._trusted or is_builtin(name)

    def __call__(self, event: Event) -> None:
        with self._lock:
            for impl in self._pm.hook.on_event.get_hookimpls():
                name = impl.plugin_name
                if name in self.disabled:
                    continue
                try:
                    impl.function(event=event)
                except Exception as exc:
                    if self._is_trusted(name):
                        raise
                    message = f"listener plugin {name!r} raised {type(exc).__name__}: {exc}; it is disabled for this run"
                    self.disabled[name] = message
                    print(f"warning: {message}", file=sys.stderr)
                    self(Log(level="warning", message=message, source=name))
