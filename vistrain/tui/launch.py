"""Front-end entry points: ``vistrain run`` with the dashboard, and ``vistrain attach``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from vistrain.tui.bridge import events_file, follow_events


def run_with_dashboard(cfg, *, resume: dict | None = None, run_dir: Path | None = None) -> Any:
    """Train *cfg* in a worker thread under the dashboard; returns the RunResult, re-raises run errors.

    The terminal is restored before an error propagates, so the CLI prints its one line cleanly.
    """
    from vistrain.engine.control import TrainControl
    from vistrain.runner import execute
    from vistrain.tui.app import DashboardApp

    def job(bridge, control):
        return execute(cfg, listeners=[bridge], control=control, resume=resume, run_dir=run_dir)

    app = DashboardApp(job=job, control=TrainControl())
    app.run()
    return finish(app)


def finish(app) -> Any:
    """After the app closed: make sure training ended, then return its result or raise its error."""
    if not app.job_done.is_set():
        app.control.request_stop()  # the UI went away first (it crashed): stop with a checkpoint
        app.job_done.wait()
    if app.error is not None:
        raise app.error
    if app.return_code not in (0, None):
        raise RuntimeError("the dashboard closed with an error; training was stopped and a checkpoint saved")
    return app.result


def attach_dashboard(run_dir: str | Path) -> None:
    """Watch *run_dir*'s events.jsonl: the dashboard in a terminal, plain lines otherwise."""
    path = events_file(run_dir)
    if not sys.stdout.isatty():
        from vistrain.reporters.console import ConsoleReporter

        reporter = ConsoleReporter(plain=True)
        follow_events(path, reporter.on_event)
        reporter.close()
        return
    from vistrain.tui.app import DashboardApp

    DashboardApp(events_path=path).run()
