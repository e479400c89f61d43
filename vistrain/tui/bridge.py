"""From the engine to the dashboard: a listener plugin, and a follower of ``events.jsonl``."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

from vistrain.errors import DataError
from vistrain.events import Event, RunFailed, RunFinished, from_dict
from vistrain.hookspecs import hookimpl


class DashboardBridge:
    """``on_event`` listener that hands every event to *receive* (``DashboardApp.receive``, thread-safe)."""

    def __init__(self, receive: Callable[[Event], object]):
        self._receive = receive

    @hookimpl
    def on_event(self, event: Event) -> None:
        """Hand the event to the UI; never blocks the training loop."""
        self._receive(event)


def events_file(run_dir: str | Path) -> Path:
    """The ``events.jsonl`` of *run_dir*, or a one-line :class:`DataError` when it is not a run folder."""
    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        raise DataError(f"run folder {str(run_dir)!r} does not exist",
                        hint="pass a run folder, e.g. vistrain attach runs/NAME")
    path = run_dir / "events.jsonl"
    if not path.is_file():
        raise DataError(f"no events.jsonl in {str(run_dir)!r}; it is not a vistrain run folder or the run has not started",
                        hint="pass the folder that 'vistrain run' printed")
    with open(path, "rb") as fh:
        first = fh.readline()
    # A line still being written may be incomplete, but every event line starts with '{'.
    complete_but_foreign = first.endswith(b"\n") and first.strip() and parse_event(first) is None
    if complete_but_foreign or (first.strip() and not first.lstrip().startswith(b"{")):
        raise DataError(f"{str(path)!r} does not start with a vistrain event: {first[:60].decode(errors='replace').strip()!r}",
                        hint="pass the folder that 'vistrain run' printed; its events.jsonl has one JSON event per line")
    return path


def parse_event(line: bytes) -> Event | None:
    """One events.jsonl line as an Event; None for a torn or foreign line (not a JSON object with a kind)."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        return None
    try:
        return from_dict(data)
    except (TypeError, ValueError):
        return None


def follow_events(path: Path, on_event: Callable[[Event], None], stop: threading.Event | None = None,
                  poll_s: float = 0.25) -> bool:
    """Feed every event of *path* to *on_event*, tailing the file until RunFinished/RunFailed.

    Returns True when the run's last event was seen, False when *stop* was set first.
    Only complete lines are read, so a line being written is picked up on the next poll.
    """
    stop = stop or threading.Event()
    pending = b""
    with open(path, "rb") as fh:
        while not stop.is_set():
            chunk = fh.read()
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = parse_event(line)
                    if event is None:
                        continue  # a torn or foreign line must not end the watch
                    on_event(event)
                    if isinstance(event, (RunFinished, RunFailed)):
                        return True
            elif stop.wait(poll_s):
                break
    return False

