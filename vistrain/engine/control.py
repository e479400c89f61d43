"""Thread-safe requests from a front end (dashboard keys, signals) to the training loop."""

from __future__ import annotations

import threading


class StopRequested(Exception):
    """Raised inside the loop when the user asked to stop; the run saves and ends cleanly."""


class TrainControl:
    """Pause, resume, stop and save-now flags, checked by the loop between steps."""

    def __init__(self) -> None:
        self._running = threading.Event()
        self._running.set()
        self._stop = threading.Event()
        self._save = threading.Event()

    def pause(self) -> None:
        """Hold the loop before its next step."""
        self._running.clear()

    def resume(self) -> None:
        """Let a paused loop continue."""
        self._running.set()

    def toggle_pause(self) -> bool:
        """Pause if running, resume if paused; returns True when now paused."""
        if self._running.is_set():
            self.pause()
            return True
        self.resume()
        return False

    @property
    def paused(self) -> bool:
        """Whether the loop is held."""
        return not self._running.is_set()

    def request_stop(self) -> None:
        """Ask the loop to save a checkpoint and end at the next step."""
        self._stop.set()
        self._running.set()

    @property
    def stop_requested(self) -> bool:
        """Whether a stop was asked for."""
        return self._stop.is_set()

    def request_save(self) -> None:
        """Ask the loop to write a checkpoint after the current step."""
        self._save.set()

    def take_save_request(self) -> bool:
        """True once per save request."""
        if self._save.is_set():
            self._save.clear()
            return True
        return False

    def wait_if_paused(self) -> None:
        """Block while paused (wakes up on resume or stop)."""
        while not self._running.wait(timeout=0.2):
            if self._stop.is_set():
                return
