"""Where torchrun placed this process, read from its environment without importing torch.

``vistrain run`` asks before torch is imported (the dashboard process starts while this one
imports it); :mod:`vistrain.engine.distributed` uses the same readings once training runs.
"""

from __future__ import annotations

import os


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)) or default)


def launched_by_torchrun() -> bool:
    """Whether the environment describes a multi-process job (``WORLD_SIZE`` > 1)."""
    return _env_int("WORLD_SIZE", 1) > 1


def env_rank() -> int:
    """This process's global rank as torchrun set it (0 outside torchrun)."""
    return _env_int("RANK", 0)


def env_local_rank() -> int:
    """This process's rank on its node as torchrun set it (0 outside torchrun)."""
    return _env_int("LOCAL_RANK", 0)
