"""``events.jsonl``: one event per line, flushed as written, so ``vistrain attach`` can follow it."""

from __future__ import annotations

import json
from pathlib import Path

from vistrain.errors import OutputError
from vistrain.events import Event
from vistrain.hookspecs import hookimpl


class JsonlWriter:
    """Listener writing every event of a run to ``events.jsonl``."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._fh = open(path, "a", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}", hint="choose a writable --out folder") from None

    @hookimpl
    def on_event(self, event: Event) -> None:
        """Append the event as one JSON line and flush."""
        try:
            self._fh.write(json.dumps(event.to_dict(), default=str) + "\n")
            self._fh.flush()
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}",
                              hint="free disk space; checkpoints already written are intact") from None

    def close(self) -> None:
        """Close the file."""
        try:
            self._fh.close()
        except OSError:
            pass
