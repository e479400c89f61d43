"""From the engine to the dashboard: a listener plugin handing each event to the UI."""

from __future__ import annotations

from collections.abc import Callable

from vistrain.events import Event
from vistrain.hookspecs import hookimpl


class DashboardBridge:
    """``on_event`` listener that hands every event to *receive* (``DashboardApp.receive``, thread-safe)."""

    def __init__(self, receive: Callable[[Event], object]):
        self._receive = receive

    @hookimpl
    def on_event(self, event: Event) -> None:
        """Hand the event to the UI; never blocks the training loop."""
        self._receive(event)
