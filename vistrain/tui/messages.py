"""Textual messages that carry engine events from the training thread to the dashboard."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from vistrain.events import Event


class RunEvent(Message):
    """One engine event, posted thread-safely by :meth:`DashboardApp.receive` for the UI thread."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class RunEnded(Message):
    """The engine thread returned (``result``) or raised (``error``); attach mode sends neither."""

    def __init__(self, result: Any = None, error: BaseException | None = None) -> None:
        super().__init__()
        self.result = result
        self.error = error
