"""``on_event`` listener writing events as JSON lines to a pipe, for a front end in another process.

Writing happens in a thread behind a queue, so a slow reader (a dashboard busy drawing) never
blocks the training loop; the events arrive in order and the last one is flushed on :meth:`close`.
"""

from __future__ import annotations

import json
import os
import queue
import threading

from vistrain.events import Event
from vistrain.hookspecs import hookimpl


class EventPipeWriter:
    """Send every event to *fd* as one JSON line; the reader sees the same stream as ``events.jsonl``."""

    def __init__(self, fd: int):
        self._stream = os.fdopen(fd, "wb", buffering=0)
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._drain, name="vistrain-event-pipe", daemon=True)
        self._thread.start()

    @hookimpl
    def on_event(self, event: Event) -> None:
        """Queue the event's JSON line (serialised here, so later mutation cannot change it)."""
        self._queue.put(json.dumps(event.to_dict(), default=str).encode() + b"\n")

    def _drain(self) -> None:
        while True:
            line = self._queue.get()
            if line is None:
                break
            try:
                self._stream.write(line)
            except (BrokenPipeError, OSError):
                break  # the front end is gone; training carries on
        try:
            self._stream.close()
        except OSError:
            pass

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued, then close the pipe."""
        self._queue.put(None)
        self._thread.join(timeout)
