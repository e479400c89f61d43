"""Textual messages that carry engine events from the training thread to the dashboard."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from vistrain.events import BatchEnd, Event, SystemSample


class RunEvent(Message):
    """One engine event, posted thread-safely by the bridge or the events.jsonl follower."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class CoalescingRunEvent(RunEvent):
    """A high-rate event where only the newest matters: queued runs of them collapse to the last."""

    def can_replace(self, message: Message) -> bool:
        """Textual drops this message when the next queued one is of the same type."""
        return type(message) is type(self)


class BatchProgress(CoalescingRunEvent):
    """A :class:`~vistrain.events.BatchEnd`; several queued ones coalesce into the newest."""


class SystemUpdate(CoalescingRunEvent):
    """A :class:`~vistrain.events.SystemSample`; only the newest queued sample is drawn."""


class RunEnded(Message):
    """The engine thread returned (``result``) or raised (``error``); attach mode sends neither."""

    def __init__(self, result: Any = None, error: BaseException | None = None) -> None:
        super().__init__()
        self.result = result
        self.error = error


def message_for(event: Event) -> RunEvent:
    """Wrap *event* in the message class that fits its rate."""
    if isinstance(event, BatchEnd):
        return BatchProgress(event)
    if isinstance(event, SystemSample):
        return SystemUpdate(event)
    return RunEvent(event)
