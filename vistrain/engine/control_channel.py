"""A small control channel between a training process and a front end in another process.

The front end holds a :class:`RemoteControl` (the same methods the dashboard calls on a
:class:`~vistrain.engine.control.TrainControl`) that writes one command per line to a pipe;
the training process runs :func:`serve_control`, a thread that applies each command to its own
TrainControl. When the front end goes away (end of file without ``bye``), training is asked to
stop with a checkpoint, as when the in-process dashboard closes mid-run.
"""

from __future__ import annotations

import os
import threading

from vistrain.engine.control import TrainControl

COMMANDS = ("pause", "resume", "save", "stop", "bye")


def serve_control(fd: int, control: TrainControl) -> threading.Thread:
    """Start a daemon thread applying the commands read from *fd* to *control*; it closes *fd* at the end."""

    def loop() -> None:
        said_bye = False
        with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as stream:
            for line in stream:
                command = line.strip()
                if command == "pause":
                    control.pause()
                elif command == "resume":
                    control.resume()
                elif command == "save":
                    control.request_save()
                elif command == "stop":
                    control.request_stop()
                elif command == "bye":
                    said_bye = True
        if not said_bye:  # the front end died or closed mid-run: stop with a checkpoint
            control.request_stop()

    thread = threading.Thread(target=loop, name="vistrain-control", daemon=True)
    thread.start()
    return thread


class RemoteControl(TrainControl):
    """TrainControl's front-end methods, also sent as commands over a pipe to the training process.

    Its own flags say what this front end asked for (the dashboard shows them); the training
    process's TrainControl is the one the loop reads.
    """

    def __init__(self, fd: int):
        super().__init__()
        self._stream = os.fdopen(fd, "w", encoding="utf-8", buffering=1)

    def _send(self, command: str) -> None:
        try:
            self._stream.write(command + "\n")
            self._stream.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass  # training already ended and closed its side

    def pause(self) -> None:
        """Hold the training loop before its next step."""
        super().pause()
        self._send("pause")

    def resume(self) -> None:
        """Let a paused loop continue."""
        super().resume()
        self._send("resume")

    def request_stop(self) -> None:
        """Ask training to save a checkpoint and end at the next step."""
        super().request_stop()
        self._paused = False
        self._send("stop")

    def request_save(self) -> None:
        """Ask training to write a checkpoint after the current step."""
        self._send("save")

    def close(self, bye: bool = True) -> None:
        """Close the channel; with *bye*, training goes on (the front end closed after the run)."""
        if bye:
            self._send("bye")
        try:
            self._stream.close()
        except OSError:
            pass
