"""The live dashboard in its own process: it follows the run's events on a pipe and controls it through another.

``vistrain run`` (see :func:`vistrain.tui.launch.run_with_dashboard`) trains in its own main
thread, exactly as headless, and starts ``python -m vistrain.tui.process --events-fd R
--control-fd W`` on the same terminal. Drawing then never holds the training process's GIL; the
keys reach the training loop as one-line commands (:class:`~vistrain.engine.control_channel.RemoteControl`).
Exit code 0 when the run finished or was stopped, 2 when it failed.
"""

from __future__ import annotations

import argparse
import os
import sys

from vistrain.engine.control_channel import RemoteControl
from vistrain.events import RunFailed, RunFinished, parse_event


class RunFailedElsewhere(Exception):
    """The training process reported a failure; it prints the error itself."""


def pipe_job(fd: int):
    """A dashboard job that replays the events arriving on *fd* until the run's last one."""

    def job(bridge, control):
        with os.fdopen(fd, "rb") as stream:
            for line in stream:
                event = parse_event(line)
                if event is None:
                    continue
                bridge.on_event(event)
                if isinstance(event, RunFailed):
                    raise RunFailedElsewhere(event.message)
                if isinstance(event, RunFinished):
                    return event
        return None  # the training process ended without a last event (killed): nothing more will come

    return job


def lower_priority(niceness: int) -> int | None:
    """Add *niceness* to this process (before Textual is imported, so its start-up yields too) and
    return the new value; None where the platform has no ``os.nice`` or refuses it.

    The dashboard then takes a core only when training leaves one free or the scheduler's fair share
    comes round, instead of waking in the middle of a step: every redraw and event it handles at the
    same priority takes one of the cores both training threads need (benchmarks/README.md, "Dashboard overhead").
    A lower priority never starves it: it still gets its share of a busy core, several times what it
    uses, and a key press is answered at once.
    """
    if niceness <= 0 or not hasattr(os, "nice"):
        return None
    try:
        return os.nice(niceness)
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    """Run the dashboard on this terminal for the run whose events arrive on ``--events-fd``."""
    parser = argparse.ArgumentParser(prog="python -m vistrain.tui.process")
    parser.add_argument("--events-fd", type=int, required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--refresh-s", type=float, default=2.0, help="seconds between redraws of the busy panels")
    parser.add_argument("--headless", default=None, metavar="WxH",
                        help="draw with Textual's headless driver at this size, and close when the run ends "
                             "(benchmarks and tests)")
    parser.add_argument("--nice", type=int, default=0, help="niceness to add to this process before drawing")
    args = parser.parse_args(argv)
    lower_priority(args.nice)
    from vistrain.tui.app import DashboardApp

    control = RemoteControl(args.control_fd)
    job = pipe_job(args.events_fd)
    if args.headless:
        inner = job

        def job(bridge, control):  # noqa: F811 - the same job, then close: nobody is there to press q
            try:
                return inner(bridge, control)
            finally:
                app.call_from_thread(app.exit)

    app = DashboardApp(job=job, control=control, refresh_s=args.refresh_s)
    try:
        if args.headless:
            width, height = (int(v) for v in args.headless.lower().split("x"))
            app.run(headless=True, size=(width, height))
        else:
            app.run()
    finally:
        # Closing after the run (or after a stop was asked) lets training end as it is; closing
        # mid-run without a stop makes the training process stop with a checkpoint.
        control.close(bye=app.job_done.is_set() or control.stop_requested)
    return 2 if isinstance(app.error, RunFailedElsewhere) or app.return_code not in (0, None) else 0


if __name__ == "__main__":
    sys.exit(main())
