"""Checkpoints: plain dicts written atomically and loaded with ``weights_only=True``."""

from __future__ import annotations

import errno
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from vistrain.errors import CheckpointError, OutputError

FORMAT = "vistrain-checkpoint"
FORMAT_VERSION = 1


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """Save to a temporary file, fsync, then rename over *path*; the old file survives failures."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        try:
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError:
            pass
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        err = getattr(exc, "errno", None)
        if err == errno.ENOSPC or "No space left" in str(exc) or "file write failed" in str(exc):
            raise OutputError(f"disk full while writing checkpoint {path}; the previous checkpoint is intact",
                              hint="free some space or choose another --out folder") from None
        raise OutputError(f"cannot write checkpoint {path}: {exc}", hint="check the folder is writable") from None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a vistrain checkpoint safely; missing, corrupt or foreign files raise CheckpointError."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} not found", hint="check the path, e.g. runs/<name>/checkpoints/best.pt")
    if path.is_dir():
        raise CheckpointError(f"{str(path)!r} is a folder, not a checkpoint", hint="pass runs/<name>/checkpoints/best.pt")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or not a safe torch checkpoint: {first[:160]}",
                              hint="use a checkpoint written by vistrain") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a vistrain checkpoint", hint="use runs/<name>/checkpoints/best.pt")
    if int(ckpt.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{str(path)!r} was written by a newer vistrain (format {ckpt['format_version']})",
                              hint="upgrade vistrain")
    return ckpt


def make_checkpoint(*, model, model_spec: dict, input_spec: dict, classes: list[str], epoch: int, global_step: int,
                    optimizer=None, scheduler=None, scaler=None, metrics: dict | None = None,
                    config: dict | None = None, rng: dict | None = None, extra: dict | None = None) -> dict:
    """Assemble the checkpoint dict: everything needed to predict, evaluate or resume."""
    module = model.module if hasattr(model, "module") else model
    ckpt = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model_spec,
        "input": input_spec,
        "classes": list(classes),
        "epoch": int(epoch),
        "global_step": int(global_step),
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "metrics": dict(metrics or {}),
        "config": config or {},
    }
    if optimizer is not None:
        ckpt["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        ckpt["scheduler"] = scheduler.state_dict()
    if scaler is not None:
        ckpt["scaler"] = scaler.state_dict()
    if rng is not None:
        ckpt["rng"] = rng
    if extra:
        ckpt.update(extra)
    return ckpt
