"""User-facing errors: one clear line, exit code 2, no traceback unless --debug."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class VistrainError(Exception):
    """An error caused by input the user can fix; the CLI prints it as one line and exits 2."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(VistrainError):
    """Malformed or invalid configuration."""


class UnknownNameError(VistrainError):
    """A registry lookup found no entry with the given name."""


class PluginError(VistrainError):
    """A plugin failed to load, registered a clashing name, or raised inside a hook."""


class DataError(VistrainError):
    """A dataset is missing, empty, unreadable or inconsistent."""


class CheckpointError(VistrainError):
    """A checkpoint is missing, corrupt, or does not match the model or classes."""


class NonFiniteLossError(VistrainError):
    """Training produced a NaN or infinite loss."""


class OutputError(VistrainError):
    """The run folder or an output file cannot be written."""


def suggest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return a ' did you mean ...?' suffix for *name*, or '' when nothing is close."""
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    if not close:
        lowered = name.lower()
        close = [c for c in choices if lowered and (lowered in c.lower() or c.lower() in lowered)][:n]
    if not close:
        return ""
    return " did you mean " + " or ".join(repr(c) for c in close) + "?"
