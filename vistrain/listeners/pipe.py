"""``on_event`` listener writing events as JSON lines to a pipe, for a front end in another process.

Writing happens in a thread behind a queue, so a slow reader (a dashboard busy drawing) never
blocks the training loop; the events arrive in order and the last one is flushed on :meth:`close`.
Batch events (several a second, and only drawn at the dashboard's next frame), and the statistics a
consistency stage emits with them, are sent in bundles, every ``batch_interval_s`` or with the next other
event, so neither this writer's thread nor the dashboard wakes for each: every wake-up takes one of the
cores training is using. A bundle is never held longer than about twice that interval, even when no event
follows (a pause).
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time

from vistrain.events import BatchEnd, ConsistencyStats, Event
from vistrain.hookspecs import hookimpl

BUNDLED = (BatchEnd, ConsistencyStats)  # drawn at the dashboard's next frame: no need to wake it for each


class EventPipeWriter:
    """Send every event to *fd* as one JSON line; the reader sees the same stream as ``events.jsonl``."""

    def __init__(self, fd: int, batch_interval_s: float = 0.5):
        self._stream = os.fdopen(fd, "wb", buffering=0)
        self.batch_interval_s = batch_interval_s
        self._held: list[bytes] = []  # batch events not yet sent
        self._sent_at = time.monotonic()
        self._lock = threading.Lock()  # events come from the training thread and the system sampler's
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._drain, name="vistrain-event-pipe", daemon=True)
        self._thread.start()

    @hookimpl
    def on_event(self, event: Event) -> None:
        """Queue the event's JSON line (serialised here, so later mutation cannot change it); a batch
        event waits for the next bundle."""
        line = json.dumps(event.to_dict(), default=str).encode() + b"\n"
        with self._lock:
            self._held.append(line)
            now = time.monotonic()
            if not isinstance(event, BUNDLED) or now - self._sent_at >= self.batch_interval_s:
                self._send(now)

    def _send(self, now: float) -> None:  # with the lock held
        if self._held:
            self._queue.put(b"".join(self._held))
            self._held = []
        self._sent_at = now

    def _drain(self) -> None:
        while True:
            try:
                line = self._queue.get(timeout=self.batch_interval_s or None)
            except queue.Empty:  # no event for a while (a pause, a long evaluation): send what is held
                with self._lock:
                    now = time.monotonic()
                    if self._held and now - self._sent_at >= self.batch_interval_s:
                        self._send(now)
                continue
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
        with self._lock:
            self._send(time.monotonic())
        self._queue.put(None)
        self._thread.join(timeout)
