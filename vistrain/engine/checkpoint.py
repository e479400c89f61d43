"""Checkpoints: plain dicts written atomically and loaded with ``weights_only=True``."""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from vistrain.errors import CheckpointError, OutputError

FORMAT = "vistrain-checkpoint"
FORMAT_VERSION = 1


TEMP_MARK = ".tmp-"


def _fsync_dir(folder: Path) -> None:
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def _write_unnamed(obj: Any, path: Path, tmp: Path) -> bool:
    """Write into an unnamed file (Linux ``O_TMPFILE``) and give it the temporary name only once
    it is complete and synced, so a kill during the write leaves nothing behind. False if unsupported."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None:
        return False
    try:
        fd = os.open(path.parent, flag | os.O_WRONLY, 0o644)
    except OSError:
        return False
    with os.fdopen(fd, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
        try:
            os.link(f"/proc/self/fd/{fh.fileno()}", tmp, follow_symlinks=True)
        except OSError:
            return False
    return True


def _nearly_full(folder: Path) -> bool:
    """Whether *folder*'s file system has under 1 MiB free: torch's zip writer reports a full disk only
    as a failed write ("unexpected pos ..."), without ENOSPC."""
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """Write *path* atomically: a temporary file in the same folder, fsync, rename, fsync of the folder.

    The old file survives any failure. On Linux the data goes into an unnamed file first, so a
    SIGKILL mid-write leaves no temporary file; elsewhere :func:`clean_stale_temps` removes it later.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
        if not _write_unnamed(obj, path, tmp):
            tmp.unlink(missing_ok=True)
            with open(tmp, "wb") as fh:
                torch.save(obj, fh)
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        err = getattr(exc, "errno", None)
        if err == errno.ENOSPC or "No space left" in str(exc) or "file write failed" in str(exc) or _nearly_full(path.parent):
            raise OutputError(f"disk full while writing checkpoint {path}; the previous checkpoint is intact",
                              hint="free some space or choose another --out folder") from None
        raise OutputError(f"cannot write checkpoint {path}: {exc}", hint="check the folder is writable") from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def clean_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove temporary checkpoint files whose writer process is gone; returns what was removed."""
    removed = []
    for tmp in Path(folder).glob(f".*{TEMP_MARK}*"):
        pid_text = tmp.name.rsplit(TEMP_MARK, 1)[-1]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and _pid_alive(int(pid_text)):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def step_checkpoint_name(prefix: str, global_step: int) -> str:
    """``{prefix}step-00001234.pt``: sorts by step."""
    return f"{prefix}step-{global_step:08d}.pt"


def prune_step_checkpoints(folder: str | os.PathLike, prefix: str, keep: int) -> list[Path]:
    """Delete all but the newest *keep* step checkpoints of *prefix*; returns the deleted paths."""
    files = sorted(Path(folder).glob(f"{prefix}step-*.pt"))
    files = [f for f in files if f.name[len(prefix) + 5:-3].isdigit()]
    doomed = files[:-keep] if keep > 0 else files
    for f in doomed:
        f.unlink(missing_ok=True)
    return doomed


def resume_candidates(folder: str | os.PathLike) -> list[Path]:
    """Checkpoints a run could continue from, newest first: ``*last.pt`` and ``*step-N.pt`` (not best)."""
    folder = Path(folder)
    files = [p for p in folder.glob("*.pt") if not p.name.startswith(".") and not p.name.endswith("best.pt")]

    def key(p: Path):
        try:
            return (p.stat().st_mtime_ns, p.name)
        except OSError:
            return (0, p.name)

    return sorted(files, key=key, reverse=True)


def find_resume_checkpoint(run_dir: str | os.PathLike) -> tuple[dict | None, Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint of *run_dir* that loads: (checkpoint, path, [(skipped path, why)])."""
    skipped: list[tuple[Path, str]] = []
    for path in resume_candidates(Path(run_dir) / "checkpoints"):
        try:
            return load_checkpoint(path), path, skipped
        except CheckpointError as exc:
            skipped.append((path, exc.message))
    return None, None, skipped


def _load_failure(exc: BaseException) -> str:
    """The part of torch.load's error that says what is wrong, without its multi-line advice."""
    text = str(exc).strip()
    if "Weights only load failed" in text:
        detail = text.split("WeightsUnpickler error:", 1)[-1].strip().splitlines()
        reason = detail[0].strip() if "WeightsUnpickler error:" in text and detail else "refused"
        return f"a weights-only load refused it ({reason[:80]}); nothing in it was run"
    return (text.splitlines()[0] if text else type(exc).__name__)[:160]


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a vistrain checkpoint safely; missing, corrupt or foreign files raise CheckpointError."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} not found", hint="check the path, e.g. runs/<name>/checkpoints/best.pt")
    if path.is_dir():
        raise CheckpointError(f"{str(path)!r} is a folder, not a checkpoint", hint="pass runs/<name>/checkpoints/best.pt")
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of files it then refuses
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or not a safe torch checkpoint: {_load_failure(exc)}",
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
