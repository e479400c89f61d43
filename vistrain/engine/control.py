"""Requests from a front end (dashboard keys, signals) to the training loop.

Every request only stores a flag, without taking a lock: a Python signal handler runs on the main
thread between two bytecodes, possibly while that thread is inside a lock the handler would need
(``threading.Event.set()`` from a SIGTERM handler that landed inside ``Event.wait()`` on the same
event hung the run for good). A plain attribute store is atomic and cannot block, so any thread
and any signal handler may call every method here. The loop polls the flags between steps.
"""

from __future__ import annotations

import time

# how often a paused loop looks at its flags again: a resume or stop is seen within this long
PAUSE_POLL_S = 0.05


class StopRequested(Exception):
    """Raised inside the loop when the user asked to stop; the run saves and ends cleanly."""


class TrainControl:
    """Pause, resume, stop and save-now flags, checked by the loop between steps."""

    def __init__(self) -> None:
        self._paused = False
        self._stop = False
        self._save = False

    def pause(self) -> None:
        """Hold the loop before its next step."""
        self._paused = True

    def resume(self) -> None:
        """Let a paused loop continue."""
        self._paused = False

    def toggle_pause(self) -> bool:
        """Pause if running, resume if paused; returns True when now paused."""
        (self.resume if self._paused else self.pause)()
        return self._paused

    @property
    def paused(self) -> bool:
        """Whether the loop is held."""
        return self._paused

    def request_stop(self) -> None:
        """Ask the loop to save a checkpoint and end at the next step (safe in a signal handler)."""
        self._stop = True

    @property
    def stop_requested(self) -> bool:
        """Whether a stop was asked for."""
        return self._stop

    def request_save(self) -> None:
        """Ask the loop to write a checkpoint after the current step."""
        self._save = True

    def take_save_request(self) -> bool:
        """True once per save request (two requests before the loop looks count as one)."""
        if self._save:
            self._save = False
            return True
        return False

    def wait_if_paused(self) -> None:
        """Block while paused; returns at once on resume or stop."""
        while self._paused and not self._stop:
            time.sleep(PAUSE_POLL_S)
