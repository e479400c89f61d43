"""Durable file writes: the old file survives any failure, and a kill leaves nothing half-written.

An object is serialised once into a file with no name (Linux ``O_TMPFILE``; elsewhere a pid-named
temporary file), fsynced, then given each of its names by an atomic rename, and the folder is
fsynced. :class:`DurableWriter` can leave the fsync and renames to a worker thread, beside
training. Checkpoints are written this way (see :mod:`vistrain.checkpoint`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from vistrain.errors import OutputError

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


def _output_error(exc: BaseException, path: Path) -> OutputError:
    """The one-line error for a checkpoint that could not be written (a full disk says so)."""
    err = getattr(exc, "errno", None)
    if err == errno.ENOSPC or "No space left" in str(exc) or "file write failed" in str(exc) or _nearly_full(path.parent):
        return OutputError(f"disk full while writing checkpoint {path}; the previous checkpoint is intact",
                           hint="free some space or choose another --out folder")
    return OutputError(f"cannot write checkpoint {path}: {exc}", hint="check the folder is writable")


def _nearly_full(folder: Path) -> bool:
    """Whether *folder*'s file system has under 1 MiB free: torch's zip writer reports a full disk only
    as a failed write ("unexpected pos ..."), without ENOSPC."""
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")


class _Serialised:
    """A checkpoint serialised to disk but not yet durable or visible: an unnamed file (Linux
    ``O_TMPFILE``, so a kill leaves nothing behind) or, elsewhere, a pid-named temporary file.
    Either way ``fd`` is open on it, for the fsync and for :meth:`commit`'s names."""

    def __init__(self, obj: Any, path: Path):
        self.fd: int | None = None
        self.tmp: Path | None = None  # the named file's path, when there is no unnamed one
        path.parent.mkdir(parents=True, exist_ok=True)
        flag = getattr(os, "O_TMPFILE", None)
        if flag is not None:
            try:
                self.fd = os.open(path.parent, flag | os.O_RDWR, 0o644)
            except OSError:
                self.fd = None
        try:
            if self.fd is None:  # its own name, apart from the per-destination temporaries of commit()
                self.tmp = path.with_name(f".{path.name}.w{TEMP_MARK}{os.getpid()}")
                self.tmp.unlink(missing_ok=True)
                self.fd = os.open(self.tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            with os.fdopen(os.dup(self.fd), "wb") as fh:
                torch.save(obj, fh)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Forget the data (the unnamed file vanishes with its descriptor; a named one is removed)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
            self.tmp = None

    def _place(self, dest: Path) -> None:
        """Give the data the name *dest*: a hard link under a temporary name, renamed over *dest*."""
        tmp = _temp_name(dest)
        tmp.unlink(missing_ok=True)
        try:
            if self.tmp is not None:
                os.link(self.tmp, tmp)
            else:
                os.link(f"/proc/self/fd/{self.fd}", tmp, follow_symlinks=True)
        except OSError:  # no /proc or no hard links here: copy the bytes into a named file instead
            with open(tmp, "wb") as out:
                offset = 0
                while chunk := os.pread(self.fd, 1 << 22, offset):
                    out.write(chunk)
                    offset += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, dest)

    def commit(self, paths: list[Path]) -> None:
        """fsync the data, give it every name in *paths* (each by an atomic rename), fsync the folders."""
        try:
            os.fsync(self.fd)
            for dest in paths:
                self._place(dest)
            for folder in dict.fromkeys(p.parent for p in paths):
                _fsync_dir(folder)
        finally:
            for dest in paths:
                _temp_name(dest).unlink(missing_ok=True)
            self.discard()


@contextlib.contextmanager
def atomic_text_file(path: str | os.PathLike, newline: str | None = None):
    """A text file to write *path* through: this process's own temporary file, renamed over *path* when the block
    ends without an error and removed otherwise. Readers see the old file or the new one, and processes writing
    the same file at once never rename each other's temporary away."""
    path = Path(path)
    tmp = _temp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8", newline=newline) as fh:
            yield fh
        tmp.replace(path)
    finally:
        with contextlib.suppress(OSError):  # e.g. a parent that is a file: there is no temporary to remove
            tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write *text* to *path* atomically (see :func:`atomic_text_file`)."""
    with atomic_text_file(path) as fh:
        fh.write(text)


def atomic_torch_save(obj: Any, path: str | os.PathLike, *also: str | os.PathLike) -> None:
    """Write *path* (and the same bytes under each of *also*) atomically: serialise once into a file
    with no name, fsync it, then give it each name by an atomic rename and fsync the folder.

    The old files survive any failure, and a SIGKILL mid-write leaves no temporary file on Linux
    (elsewhere :func:`clean_stale_temps` removes it later). A full disk is an :class:`OutputError`
    that says so.
    """
    DurableWriter().save(obj, [Path(path), *(Path(p) for p in also)])


class DurableWriter:
    """Durable writes (of checkpoints) whose slow part happens beside training.

    :meth:`save` serialises at once (so the saved tensors are the current ones) and, with
    ``background=True``, leaves the fsync and the renames to one worker thread, then calls *then*
    there. Training goes on meanwhile: the fsync of a small model's checkpoint costs as much as a
    few training steps. Writes are committed in order, one at a time; a failed one raises its
    :class:`OutputError` at the next :meth:`save` or :meth:`wait`. Until a write is committed, the
    previous file under each name is the one on disk.
    """

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    def save(self, obj: Any, paths: list[Path], *, background: bool = False,
             then: Callable[[], None] | None = None) -> None:
        """Write *obj* under every name in *paths* (one folder or several); see the class."""
        self.wait()
        paths = [Path(p) for p in paths]
        try:
            written = _Serialised(obj, paths[0])
        except (OSError, RuntimeError) as exc:
            raise _output_error(exc, paths[0]) from None

        def commit() -> None:
            try:
                written.commit(paths)
            except (OSError, RuntimeError) as exc:
                raise _output_error(exc, paths[0]) from None
            if then is not None:
                then()

        if not background:
            commit()
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vistrain-checkpoint")
        self._pending = self._executor.submit(commit)

    def wait(self) -> None:
        """Block until the pending write is committed; raises its error if it failed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self, *, quiet: bool = False) -> None:
        """Wait for the pending write and stop the worker; *quiet* swallows a failed write's error
        (for when another error is already on its way)."""
        try:
            self.wait()
        except Exception:  # noqa: BLE001 - the caller's error matters more
            if not quiet:
                raise
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None


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
