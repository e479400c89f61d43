"""The run folder: its layout, creating it for a run, and reading its events back.

::

    runs/NAME/
      config.yaml     the resolved configuration the run trained with
      events.jsonl    every event, one JSON object per line (attach, report and compare read it)
      metrics.csv     one row per epoch: train and val figures
      checkpoints/    last.pt, best.pt, step-N.pt; <stage>-last.pt and <stage>-best.pt of multi-stage strategies

Everything that names these files, creates a run folder or reads ``events.jsonl`` goes through this
module. It does not import torch.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from vistrain.errors import DataError, OutputError
from vistrain.events import Event, RunFailed, RunFinished, parse_event

CONFIG = "config.yaml"
EVENTS = "events.jsonl"
METRICS = "metrics.csv"
CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class RunFolder:
    """Where a run's files are."""

    path: Path

    @property
    def config(self) -> Path:
        """``config.yaml``: the resolved configuration."""
        return self.path / CONFIG

    @property
    def events(self) -> Path:
        """``events.jsonl``: every event of the run (and of each resume), one per line."""
        return self.path / EVENTS

    @property
    def metrics(self) -> Path:
        """``metrics.csv``: one row per epoch."""
        return self.path / METRICS

    @property
    def checkpoints(self) -> Path:
        """The ``checkpoints/`` folder."""
        return self.path / CHECKPOINTS

    def checkpoint(self, name: str) -> Path:
        """A checkpoint file by name, e.g. ``best.pt`` or ``teacher-last.pt``."""
        return self.checkpoints / name

    def write_config(self, text: str) -> None:
        """Write ``config.yaml`` (and make sure ``checkpoints/`` exists); an unwritable folder is an OutputError."""
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
            self.config.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write {self.config}: {exc.strerror or exc}",
                              hint="choose a writable folder with --out DIR") from None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60] or "run"


def default_run_name(model: str, data: str) -> str:
    """``<model>-<dataset>-<YYYYmmdd-HHMMSS>``."""
    return _slug(f"{model}-{data.split(':')[0]}-{datetime.now():%Y%m%d-%H%M%S}")


def named(output_dir: str, name: str) -> RunFolder:
    """The folder a run called *name* under *output_dir* has (or will have)."""
    return RunFolder(Path(output_dir).expanduser() / name)


def create(output_dir: str, name: str | None, model: str, data: str) -> RunFolder:
    """A fresh run folder under *output_dir*; an existing non-empty one gets a ``-2``, ``-3``... suffix."""
    base = Path(output_dir).expanduser()
    name = name or default_run_name(model, data)
    path, n = base / name, 2
    while path.exists() and any(path.iterdir()):
        path = base / f"{name}-{n}"
        n += 1
    folder = RunFolder(path)
    try:
        folder.checkpoints.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write the run folder {path}: {exc.strerror or exc}",
                          hint="choose a writable folder with --out DIR") from None
    return folder


def existing(run_dir: str | Path, hint: str = "pass the folder that 'vistrain run' printed, e.g. runs/NAME") -> RunFolder:
    """A run folder that exists and has events; otherwise a one-line :class:`DataError` with *hint*."""
    folder = RunFolder(Path(run_dir).expanduser())
    if not folder.path.is_dir():
        raise DataError(f"run folder {str(run_dir)!r} does not exist", hint=hint)
    if not folder.events.is_file():
        raise DataError(f"no {EVENTS} in {str(run_dir)!r}: it is not a vistrain run folder, or its run has not "
                        "started", hint=hint)
    return folder


def check_events(folder: RunFolder) -> Path:
    """The folder's ``events.jsonl`` after a look at its first line: a file of something else is a DataError."""
    path = folder.events
    with open(path, "rb") as fh:
        first = fh.readline()
    # A line still being written may be incomplete, but every event line starts with '{'.
    complete_but_foreign = first.endswith(b"\n") and first.strip() and parse_event(first) is None
    if complete_but_foreign or (first.strip() and not first.lstrip().startswith(b"{")):
        raise DataError(f"{str(path)!r} does not start with a vistrain event: "
                        f"{first[:60].decode(errors='replace').strip()!r}",
                        hint="pass the folder that 'vistrain run' printed; its events.jsonl has one JSON event per line")
    return path


def read_events(path: Path) -> tuple[list[Event], int]:
    """Events of an ``events.jsonl``; lines that do not parse (a torn last line) are counted and skipped."""
    events, skipped = [], 0
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            event = parse_event(line)
            if event is None:
                skipped += 1
            else:
                events.append(event)
    return events, skipped


def follow_events(path: Path, on_event: Callable[[Event], None], stop: threading.Event | None = None,
                  poll_s: float = 0.25, until_end: bool = True) -> bool:
    """Feed every event of *path* to *on_event*, tailing the file until RunFinished/RunFailed.

    Returns True when the run's last event was seen, False when *stop* was set first. With *until_end* False it
    tails until *stop* (a tune trial preempted and resumed appends a second run after its first run's end).
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
                    if until_end and isinstance(event, (RunFinished, RunFailed)):
                        return True
            elif stop.wait(poll_s):
                break
    return False
