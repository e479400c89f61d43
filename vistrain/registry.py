"""Named registries filled by plugins through ``register(name, factory, **meta)`` callbacks."""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from vistrain.errors import PluginError, UnknownNameError, suggest


# The command that lists each kind of name, for the hint of an unknown name; kinds without one list the names.
LIST_COMMANDS = {"model": "vistrain models list", "dataset": "vistrain datasets list",
                 "strategy": "vistrain strategies list", "augmentation": "vistrain augment list"}


@dataclass
class Entry:
    """One registered item: its name, factory, the plugin that registered it and free-form meta."""

    name: str
    factory: Any
    plugin: str
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Callable[..., Any]:
        """Return the factory, importing it first when it was registered as ``"module:attr"``."""
        if isinstance(self.factory, str):
            module_name, _, attr = self.factory.partition(":")
            try:
                obj: Any = importlib.import_module(module_name)
                for part in attr.split("."):
                    obj = getattr(obj, part)
            except Exception as exc:  # noqa: BLE001 - report any import failure by plugin name
                raise PluginError(
                    f"plugin {self.plugin!r} could not import {self.factory!r} for {self.name!r}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            self.factory = obj
        return self.factory

    @property
    def description(self) -> str:
        """One-line description from the meta, or ''."""
        return str(self.meta.get("description", ""))


class Registry:
    """A dictionary of entries of one kind (models, datasets, ...), filled lazily from plugins."""

    def __init__(self, kind: str, hook_name: str, loader: Callable[[Registry], None] | None = None,
                 unknown_note: Callable[[], str] = str):
        self.kind = kind
        self.hook_name = hook_name
        self._entries: dict[str, Entry] = {}
        self._loader = loader
        self._loaded = loader is None
        self._unknown_note = unknown_note  # appended to an unknown name's hint (e.g. which plugins failed to load)

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True
            assert self._loader is not None
            self._loader(self)

    def reset(self) -> None:
        """Forget every entry; the next access asks the plugins again."""
        self._entries.clear()
        self._loaded = self._loader is None

    def add(self, name: str, factory: Any, plugin: str, **meta: Any) -> None:
        """Add an entry; a name already registered by a plugin is an error naming both."""
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {self.kind} with an empty or non-string name")
        if name in self._entries:
            other = self._entries[name].plugin
            raise PluginError(
                f"{self.kind} {name!r} is registered by both plugin {other!r} and plugin {plugin!r}",
                hint="uninstall one of them or restrict plugins with VISTRAIN_PLUGINS",
            )
        self._entries[name] = Entry(name, factory, plugin, dict(meta))

    def remove_plugin(self, plugin: str) -> None:
        """Drop every entry registered by *plugin* (used when its hook raised half-way)."""
        for name in [n for n, e in self._entries.items() if e.plugin == plugin]:
            del self._entries[name]

    def names(self) -> list[str]:
        """All registered names, sorted."""
        self._ensure_loaded()
        return sorted(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        self._ensure_loaded()
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __contains__(self, name: str) -> bool:
        self._ensure_loaded()
        return name in self._entries

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._entries)

    def match(self, pattern: str | None) -> list[Entry]:
        """Entries whose name matches a shell-style wildcard (a bare word matches as a substring)."""
        entries = list(self)
        if not pattern:
            return entries
        if not any(ch in pattern for ch in "*?["):
            pattern = f"*{pattern}*"
        return [e for e in entries if fnmatch.fnmatch(e.name, pattern)]

    def get(self, spec: str) -> tuple[Entry, str | None]:
        """Look up ``name`` or ``name:arg``; unknown names raise with the closest suggestions."""
        self._ensure_loaded()
        if spec in self._entries:
            return self._entries[spec], None
        prefix, sep, arg = spec.partition(":")
        if sep:
            entry = self._entries.get(prefix)
            if entry is not None and entry.meta.get("takes_arg"):
                return entry, arg
        command = LIST_COMMANDS.get(self.kind)
        where = f"run '{command}' to see them all" if command else "known: " + ", ".join(sorted(self._entries))
        raise UnknownNameError(
            f"unknown {self.kind} {spec!r}.{suggest(prefix if sep else spec, self._entries)}",
            hint=f"{where}{self._unknown_note()}",
        )

    def entry(self, spec: str) -> Entry:
        """The entry for *spec*, ignoring any ``:arg`` part."""
        return self.get(spec)[0]

