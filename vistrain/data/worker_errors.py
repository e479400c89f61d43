"""Errors from DataLoader worker processes as the user reads them: one line, and a fix where there is one.

torch hands the training process a worker's exception as ``exc_type("Caught X in DataLoader worker process N.
Original Traceback ...")``: the worker's whole traceback inside the message, so the CLI's one line would hold it
all. A worker that dies (the kernel's out-of-memory killer, a bus error on a full ``/dev/shm``) reaches the training
process as a ``RuntimeError`` naming its pid, possibly in the middle of a training step (torch raises it from its
SIGCHLD handler). :func:`translate` turns both into what the CLI prints (:mod:`vistrain.cli.exits`):

- a vistrain error raised in a worker (64 unreadable images in a row) is raised again as itself, its own message;
- shared memory that ran out (``/dev/shm``, through which every batch travels) is a :class:`DataError` that says
  how much there is and how to get by (``--shm-size``, fewer workers, ``data.num_workers=0``);
- a worker killed by a signal or gone without a word is a :class:`DataError` with what usually causes it;
- anything else is a :class:`WorkerError`: the original type and message, and the worker's frames as
  (module, function), so that a third-party plugin's augmentation raising in a worker is blamed on the plugin.

This module imports neither torch nor NumPy: the CLI's error path uses it.
"""

from __future__ import annotations

import os
import re
import sys

from vistrain.errors import DataError, VistrainError

SHM_DIR = "/dev/shm"

_CAUGHT = re.compile(r"\ACaught (?P<type>\w+) in DataLoader worker process (?P<worker>\d+)\.\s*\n"
                     r"Original (?P<traceback>Traceback \(most recent call last\):\n.*)\Z", re.S)
_FRAME = re.compile(r'^  File "(?P<file>[^"]+)", line \d+, in (?P<function>\S+)$', re.M)
_SHM_FULL = re.compile(r"unable to allocate shared memory|unable to write to file </torch_|"
                       r"No space left on device.*shm|shm.*No space left on device|out of shared memory", re.I)
_KILLED = re.compile(r"DataLoader worker \(pid (?P<pid>\d+)\) is killed by signal: (?P<signal>[^.]+)\.")
_GONE = re.compile(r"DataLoader worker \(pid(?:\(s\))? (?P<pid>[\d, ]+)\) exited unexpectedly"
                   r"(?: with exit code (?P<code>-?\d+))?")

FEWER_WORKERS = "lower data.num_workers or --batch-size, or set data.num_workers=0 to load in the training process"


class WorkerError(Exception):
    """An exception raised in a DataLoader worker process that is not vistrain's own: *type_name* and the message are
    the original's, *frames* the worker's stack as (module, function), innermost last."""

    def __init__(self, type_name: str, message: str, frames: list[tuple[str, str]], worker: int, traceback: str):
        super().__init__(message)
        self.type_name = type_name
        self.frames = frames
        self.worker = worker
        self.traceback = traceback


def shm_space() -> tuple[int, int] | None:
    """(size, free bytes) of :data:`SHM_DIR`, or None where there is none (not Linux: torch's shared memory lives
    elsewhere)."""
    try:
        stat = os.statvfs(SHM_DIR)
    except OSError:
        return None
    return stat.f_blocks * stat.f_frsize, stat.f_bavail * stat.f_frsize


def shm_full_error() -> DataError:
    """Shared memory ran out under the loader workers: how much there is, and the ways out."""
    space = shm_space()
    size = f" ({space[0] / 1e6:.0f} MB, {space[1] / 1e6:.0f} MB free)" if space else ""
    return DataError(f"shared memory is full: loader workers send every batch through {SHM_DIR}{size}",
                     hint="give the container more, e.g. docker run --shm-size=2g, or " + FEWER_WORKERS +
                          "; checkpoints written so far are intact")


def _loaded_module_files() -> dict[str, str]:
    """Real path of each loaded module's file -> its name (a spawned worker runs the same files)."""
    files = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str):
            files.setdefault(os.path.realpath(path), name)
    return files


def _final_exception(traceback: str) -> tuple[str, str]:
    """(qualified type name, message) of the last exception of a formatted traceback."""
    lines = traceback.rstrip("\n").split("\n")
    last_frame = max((i for i, line in enumerate(lines) if _FRAME.match(line)), default=-1)
    tail = [line for line in lines[last_frame + 1:] if line and not line.startswith(" ")]
    if not tail:
        return "", ""
    head, _, message = tail[0].partition(": ")
    return head.strip(), "\n".join([message, *tail[1:]]).strip()


def _vistrain_class(qualified: str) -> type[VistrainError] | None:
    module, _, name = qualified.rpartition(".")
    if module != "vistrain" and not module.startswith("vistrain."):
        return None
    cls = getattr(sys.modules.get(module), name, None)  # the training process raises the same classes
    return cls if isinstance(cls, type) and issubclass(cls, VistrainError) else None


def translate(exc: BaseException) -> BaseException | None:
    """What the user should read for *exc*, when it came from a loader worker; None for any other exception."""
    text = str(exc)
    caught = _CAUGHT.match(text)
    if caught is not None:
        traceback = caught["traceback"]
        qualified, message = _final_exception(traceback)
        if _SHM_FULL.search(message):
            return shm_full_error()
        vistrain_class = _vistrain_class(qualified)
        if vistrain_class is not None:
            try:
                return vistrain_class(message)  # its message already ends with the hint: 'what (how to fix)'
            except TypeError:
                return DataError(message)
        modules = _loaded_module_files()
        frames = [(modules.get(os.path.realpath(m["file"]), ""), m["function"]) for m in _FRAME.finditer(traceback)]
        return WorkerError(qualified.rpartition(".")[2] or caught["type"], message, frames, int(caught["worker"]),
                           traceback)
    if not isinstance(exc, RuntimeError):
        return None
    chain, seen = [], exc  # torch's 'exited unexpectedly' is raised from the 'killed by signal' that told it
    while isinstance(seen, BaseException) and len(chain) < 8:
        chain.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    killed = next((m for m in map(_KILLED.search, chain) if m is not None), None)
    if killed is not None:
        signal = killed["signal"].strip()
        if signal.lower().startswith("bus error"):  # torch: a write to a /dev/shm segment with no room left
            return shm_full_error()
        if signal.lower() == "killed":
            return DataError(f"a loader worker (pid {killed['pid']}) was killed (SIGKILL); the kernel's "
                             f"out-of-memory killer does that when memory runs out",
                             hint=FEWER_WORKERS + "; checkpoints written so far are intact")
        return None  # a segfault in a decoder or a plugin: a bug, reported as one
    gone = _GONE.search(text)
    if gone is not None:
        code = f" with exit code {gone['code']}" if gone["code"] else ""
        return DataError(f"a loader worker (pid {gone['pid'].strip()}) ended unexpectedly{code}; most often it ran "
                         f"out of memory", hint=FEWER_WORKERS + "; checkpoints written so far are intact")
    return None
